//! One tenant's pool of ready sandboxes, and the fair queue of callers waiting for one.
//!
//! ms-enclave's pool (reference §5.2) lets a new caller barge ahead of waiters, loses a wake-up
//! when a waiter times out just after being notified, and makes callers of an all-dead pool wait
//! the whole budget. Here a freed sandbox is handed straight to the oldest live waiter (never
//! parked where a newcomer could grab it), a waiter that gives up returns whatever it was handed
//! (checked under the lock, so nothing is in flight), and a pool with no members left answers
//! `Empty` to everyone at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// What a waiter is handed.
#[derive(Debug, PartialEq, Eq)]
enum Handoff {
    Member(String),
    /// The pool lost its last member: waiting is pointless.
    Empty,
}

/// Why no sandbox was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    Empty,
    TimedOut,
    /// The caller went away while it waited.
    Cancelled,
}

#[derive(Default)]
struct Pool {
    /// Free members, least recently used first (ms-enclave's round-robin order).
    free: VecDeque<String>,
    /// Every member, free or lent.
    members: HashSet<String>,
    /// Members being made (a replacement, an initialisation): the pool is not empty while
    /// they may still arrive.
    pending: usize,
    /// Callers waiting for a member, oldest first.
    waiters: VecDeque<oneshot::Sender<Handoff>>,
    /// A pool was initialised for this tenant at least once.
    initialized: bool,
}

impl Pool {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending == 0
    }

    /// Hands `id` to the oldest waiter still waiting, else parks it at the back.
    fn give_back(&mut self, id: String) {
        let mut handoff = Handoff::Member(id);
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.send(handoff) {
                Ok(()) => return,
                Err(returned) => handoff = returned,
            }
        }
        if let Handoff::Member(id) = handoff {
            self.free.push_back(id);
        }
    }

    /// Tells every waiter the pool is empty, once it is.
    fn wake_if_empty(&mut self) {
        if self.is_empty() {
            for waiter in self.waiters.drain(..) {
                let _ = waiter.send(Handoff::Empty);
            }
        }
    }
}

/// A tenant's pool in numbers, for `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct PoolStats {
    pub(super) free: usize,
    pub(super) members: usize,
    pub(super) pending: usize,
    pub(super) waiters: usize,
    pub(super) initialized: bool,
}

/// Every tenant's pool. Its lock is never held across an await.
#[derive(Default)]
pub(super) struct Pools {
    pools: Mutex<HashMap<String, Pool>>,
}

impl Pools {
    fn with<T>(&self, tenant: &str, f: impl FnOnce(&mut Pool) -> T) -> T {
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(pools.entry(tenant.to_string()).or_default())
    }

    /// `count` members are being made for `tenant`'s pool; each arrives by `add` or is given
    /// up by `abandon`.
    pub(super) fn expect(&self, tenant: &str, count: usize) {
        self.with(tenant, |pool| {
            pool.pending += count;
            pool.initialized = true;
        });
    }

    /// A new member, free at once (to the oldest waiter if any).
    pub(super) fn add(&self, tenant: &str, id: String, was_expected: bool) {
        self.with(tenant, |pool| {
            if was_expected {
                pool.pending = pool.pending.saturating_sub(1);
            }
            pool.initialized = true;
            pool.members.insert(id.clone());
            pool.give_back(id);
        });
    }

    /// An expected member that will not come.
    pub(super) fn abandon(&self, tenant: &str) {
        self.with(tenant, |pool| {
            pool.pending = pool.pending.saturating_sub(1);
            pool.wake_if_empty();
        });
    }

    /// A lent member comes back healthy.
    pub(super) fn release(&self, tenant: &str, id: &str) {
        self.with(tenant, |pool| {
            if pool.members.contains(id) {
                pool.give_back(id.to_string());
            }
        });
    }

    /// Drops `id` from the pool (removed, dead, stopped). With `replacing`, a replacement is
    /// expected, so waiters keep waiting for it. Whether it was a member.
    pub(super) fn remove(&self, tenant: &str, id: &str, replacing: bool) -> bool {
        self.with(tenant, |pool| {
            let was = pool.members.remove(id);
            pool.free.retain(|m| m != id);
            if was && replacing {
                pool.pending += 1;
            }
            pool.wake_if_empty();
            was
        })
    }

    /// Takes `id` out of the pool if it is free (not lent); a replacement is expected.
    /// Whether it was free.
    pub(super) fn take_free(&self, tenant: &str, id: &str) -> bool {
        self.with(tenant, |pool| {
            let Some(at) = pool.free.iter().position(|m| m == id) else {
                return false;
            };
            pool.free.remove(at);
            pool.members.remove(id);
            pool.pending += 1;
            true
        })
    }

    pub(super) fn is_member(&self, tenant: &str, id: &str) -> bool {
        self.with(tenant, |pool| pool.members.contains(id))
    }

    pub(super) fn stats(&self, tenant: &str) -> PoolStats {
        self.with(tenant, |pool| PoolStats {
            free: pool.free.len(),
            members: pool.members.len(),
            pending: pool.pending,
            waiters: pool.waiters.iter().filter(|w| !w.is_closed()).count(),
            initialized: pool.initialized,
        })
    }

    /// The least recently used free member, waiting up to `wait` in arrival order. A caller
    /// that goes away (`cancel`) leaves the queue at once, passing on what it was handed.
    pub(super) async fn acquire(
        &self,
        tenant: &str,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<String, Refusal> {
        let rx = self.with(tenant, |pool| {
            if pool.is_empty() {
                return Err(Refusal::Empty);
            }
            pool.waiters.retain(|w| !w.is_closed());
            if pool.waiters.is_empty() {
                if let Some(id) = pool.free.pop_front() {
                    return Ok(Err(id));
                }
            }
            let (tx, rx) = oneshot::channel();
            pool.waiters.push_back(tx);
            Ok(Ok(rx))
        })?;
        let rx = match rx {
            Ok(rx) => rx,
            Err(id) => return Ok(id),
        };
        let mut waiter = Waiter {
            pools: self,
            tenant,
            rx: Some(rx),
        };
        let handed = match waiter.rx.as_mut() {
            Some(rx) => tokio::select! {
                handed = tokio::time::timeout(wait, rx) => handed,
                // Dropping the waiter closes its place in the queue.
                () = cancel.cancelled() => return Err(Refusal::Cancelled),
            },
            None => unreachable!("the receiver is set above"),
        };
        match handed {
            Ok(Ok(handoff)) => {
                waiter.rx = None;
                into_result(handoff)
            }
            // The sender went without a word: only if the pool itself went.
            Ok(Err(_)) => {
                waiter.rx = None;
                Err(Refusal::Empty)
            }
            Err(_) => waiter.give_up(),
        }
    }
}

fn into_result(handoff: Handoff) -> Result<String, Refusal> {
    match handoff {
        Handoff::Member(id) => Ok(id),
        Handoff::Empty => Err(Refusal::Empty),
    }
}

/// A caller in the queue. Dropped (the caller went away) or timed out, it closes its channel
/// under the pool's lock, so a member handed to it at that moment is not lost but passed on.
struct Waiter<'a> {
    pools: &'a Pools,
    tenant: &'a str,
    rx: Option<oneshot::Receiver<Handoff>>,
}

impl Waiter<'_> {
    /// The wait expired: keeps a member handed over meanwhile, else reports the timeout.
    fn give_up(&mut self) -> Result<String, Refusal> {
        let Some(mut rx) = self.rx.take() else {
            return Err(Refusal::TimedOut);
        };
        self.pools.with(self.tenant, |_| {
            rx.close();
            match rx.try_recv() {
                Ok(handoff) => into_result(handoff),
                Err(_) => Err(Refusal::TimedOut),
            }
        })
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        self.pools.with(self.tenant, |pool| {
            rx.close();
            if let Ok(Handoff::Member(id)) = rx.try_recv() {
                pool.give_back(id);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const LONG: Duration = Duration::from_secs(30);

    /// A caller that never goes away.
    fn never() -> CancellationToken {
        CancellationToken::new()
    }

    fn pool_of(ids: &[&str]) -> Arc<Pools> {
        let pools = Arc::new(Pools::default());
        for id in ids {
            pools.add("t", (*id).to_string(), false);
        }
        pools
    }

    #[tokio::test]
    async fn an_empty_pool_refuses_at_once() {
        let pools = Pools::default();
        let started = std::time::Instant::now();
        assert_eq!(
            pools.acquire("t", LONG, &never()).await,
            Err(Refusal::Empty)
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn members_go_round_robin_least_recently_used_first() {
        let pools = pool_of(&["a", "b"]);
        let mut order = Vec::new();
        for _ in 0..4 {
            let id = pools.acquire("t", LONG, &never()).await.unwrap();
            pools.release("t", &id);
            order.push(id);
        }
        assert_eq!(order, ["a", "b", "a", "b"]);
    }

    #[tokio::test]
    async fn waiters_are_served_in_arrival_order_without_barging() {
        let pools = pool_of(&["a"]);
        let held = pools.acquire("t", LONG, &never()).await.unwrap();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        for n in 0..3 {
            let mine = pools.clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                let id = mine.acquire("t", LONG, &never()).await.unwrap();
                done.send(n).unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                mine.release("t", &id);
            });
            // Let each one queue before the next arrives.
            while pools.stats("t").waiters < n + 1 {
                tokio::task::yield_now().await;
            }
        }
        pools.release("t", &held);
        // A newcomer arriving now queues behind the three rather than taking the freed member.
        let late = pools.acquire("t", LONG, &never()).await.unwrap();
        assert_eq!(late, "a");
        let served: Vec<usize> = (0..3).map(|_| done_rx.try_recv().unwrap()).collect();
        assert_eq!(served, [0, 1, 2]);
    }

    #[tokio::test]
    async fn a_waiter_times_out_and_the_member_is_not_lost() {
        let pools = pool_of(&["a"]);
        let held = pools.acquire("t", LONG, &never()).await.unwrap();
        let waited = pools
            .acquire("t", Duration::from_millis(50), &never())
            .await;
        assert_eq!(waited, Err(Refusal::TimedOut));
        pools.release("t", &held);
        assert_eq!(pools.acquire("t", LONG, &never()).await.unwrap(), "a");
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_passes_its_member_on() {
        let pools = pool_of(&["a"]);
        let held = pools.acquire("t", LONG, &never()).await.unwrap();
        let gone = {
            let pools = pools.clone();
            tokio::spawn(async move { pools.acquire("t", LONG, &never()).await })
        };
        while pools.stats("t").waiters == 0 {
            tokio::task::yield_now().await;
        }
        // Handed over and dropped before it ran: the member must come back, not vanish.
        pools.release("t", &held);
        gone.abort();
        let _ = gone.await;
        let stats = pools.stats("t");
        assert_eq!((stats.members, stats.waiters), (1, 0));
        assert_eq!(
            pools
                .acquire("t", Duration::from_millis(200), &never())
                .await,
            Ok("a".into())
        );
    }

    #[tokio::test]
    async fn losing_the_last_member_wakes_every_waiter_with_empty() {
        let pools = pool_of(&["a"]);
        let held = pools.acquire("t", LONG, &never()).await.unwrap();
        let waiter = {
            let pools = pools.clone();
            tokio::spawn(async move { pools.acquire("t", LONG, &never()).await })
        };
        while pools.stats("t").waiters == 0 {
            tokio::task::yield_now().await;
        }
        assert!(pools.remove("t", &held, false));
        let result = tokio::time::timeout(Duration::from_secs(2), waiter).await;
        assert_eq!(result.unwrap().unwrap(), Err(Refusal::Empty));
    }

    #[tokio::test]
    async fn a_replacement_keeps_waiters_waiting_and_serves_them() {
        let pools = pool_of(&["a"]);
        let held = pools.acquire("t", LONG, &never()).await.unwrap();
        let waiter = {
            let pools = pools.clone();
            tokio::spawn(async move { pools.acquire("t", LONG, &never()).await })
        };
        while pools.stats("t").waiters == 0 {
            tokio::task::yield_now().await;
        }
        pools.remove("t", &held, true);
        pools.add("t", "b".into(), true);
        assert_eq!(waiter.await.unwrap(), Ok("b".into()));
        assert_eq!(pools.stats("t").pending, 0);
    }

    #[tokio::test]
    async fn tenants_have_separate_pools() {
        let pools = pool_of(&["a"]);
        assert_eq!(
            pools
                .acquire("other", Duration::from_millis(10), &never())
                .await,
            Err(Refusal::Empty)
        );
        assert!(!pools.is_member("other", "a"));
        assert!(pools.is_member("t", "a"));
    }

    #[tokio::test]
    async fn a_departed_waiter_leaves_the_queue_at_once_and_delays_no_one() {
        let pools = pool_of(&["a"]);
        let held = pools.acquire("t", LONG, &never()).await.unwrap();
        let gone = CancellationToken::new();
        let departed = {
            let pools = pools.clone();
            let gone = gone.clone();
            tokio::spawn(async move { pools.acquire("t", LONG, &gone).await })
        };
        while pools.stats("t").waiters == 0 {
            tokio::task::yield_now().await;
        }
        // The caller goes away, but its task is still alive (as a spawned request's is).
        gone.cancel();
        let left = tokio::time::timeout(Duration::from_secs(1), departed).await;
        assert_eq!(left.unwrap().unwrap(), Err(Refusal::Cancelled));
        assert_eq!(pools.stats("t").waiters, 0);
        // The next caller is served the moment the member is freed.
        let next = {
            let pools = pools.clone();
            tokio::spawn(async move { pools.acquire("t", LONG, &never()).await })
        };
        while pools.stats("t").waiters == 0 {
            tokio::task::yield_now().await;
        }
        pools.release("t", &held);
        let served = tokio::time::timeout(Duration::from_secs(1), next).await;
        assert_eq!(served.unwrap().unwrap(), Ok("a".into()));
    }
}

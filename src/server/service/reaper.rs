//! The reaper: every `cleanup_interval` (first at start) it checks the engine's view of the
//! server's sandboxes once, then removes the errored, those past their TTL and those idle past
//! their idle timeout. A sandbox with a call running, or lent by the pool, is never taken;
//! dead or expired free pool members are replaced.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::Instant;

use chrono::Utc;
use tokio::time::MissedTickBehavior;

use super::registry::{reap_reason, Entry, Reap};
use super::{Replacement, Service};
use crate::model::{Sandbox, SandboxStatus};

pub(super) async fn run(service: Weak<Service>) {
    let Some((period, stopping)) = service
        .upgrade()
        .map(|s| (s.options.cleanup_interval, s.stopping.clone()))
    else {
        return;
    };
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Some(service) = service.upgrade() else {
            return;
        };
        // A round is let finish: stopping halfway could forget a sandbox not yet removed.
        service.reconcile().await;
        service.reap().await;
    }
}

impl Service {
    /// Takes in what happened outside the server: containers removed or stopped behind its
    /// back. Entries newer than the listing are left alone.
    async fn reconcile(&self) {
        let listed_at = Instant::now();
        let Ok(found) = self.manager.list().await else {
            return; // The engine does not answer: nothing learnt; `health` says so.
        };
        let found: HashMap<String, Sandbox> =
            found.into_iter().map(|s| (s.id.clone(), s)).collect();
        let mut registry = self.lock();
        for entry in registry.entries.values_mut() {
            if entry.registered > listed_at || !entry.is_active() {
                continue;
            }
            let now = found
                .get(&entry.sandbox.id)
                .map_or(SandboxStatus::Gone, |s| s.status);
            if now == SandboxStatus::Running {
                continue;
            }
            entry.sandbox.status = now;
            if entry.status != SandboxStatus::Busy {
                entry.set_status(match now {
                    SandboxStatus::Gone => SandboxStatus::Error,
                    other => other,
                });
            }
        }
    }

    /// Removes what is due; dead or expired free pool members are replaced.
    async fn reap(&self) {
        let now = Utc::now();
        let instant = Instant::now();
        let mut removed: Vec<(Entry, Reap)> = Vec::new();
        let mut replacements: Vec<(Replacement, String)> = Vec::new();
        {
            let mut registry = self.lock();
            let due: Vec<(String, Reap)> = registry
                .entries
                .values()
                .filter_map(|e| reap_reason(e, now, instant).map(|r| (e.sandbox.id.clone(), r)))
                .collect();
            for (id, reason) in due {
                let Some(entry) = registry.entries.get_mut(&id) else {
                    continue;
                };
                if entry.pooled {
                    // Only a free member: one lent right now is the borrower's until returned.
                    if self.pools.take_free(&entry.tenant, &id) {
                        entry.pooled = false;
                        entry.set_status(SandboxStatus::Error);
                        replacements.push((Replacement::of(entry), id));
                    }
                    continue;
                }
                if let Some(entry) = registry.entries.remove(&id) {
                    removed.push((entry, reason));
                }
            }
            // Free pool members that died (reconcile found them stopped or gone).
            for entry in registry.entries.values_mut() {
                let dead = entry.pooled && entry.sandbox.status != SandboxStatus::Running;
                if dead && self.pools.take_free(&entry.tenant, &entry.sandbox.id) {
                    entry.pooled = false;
                    entry.set_status(SandboxStatus::Error);
                    replacements.push((Replacement::of(entry), entry.sandbox.id.clone()));
                }
            }
        }
        for (replacement, dead) in replacements {
            eprintln!("enclave server: replacing pool sandbox `{dead}`");
            self.spawn_replacement(replacement, Some(dead));
        }
        for (entry, reason) in removed {
            eprintln!(
                "enclave server: removing `{}` ({})",
                entry.sandbox.id,
                reason.as_str()
            );
            self.remove_entry(entry).await;
        }
    }
}

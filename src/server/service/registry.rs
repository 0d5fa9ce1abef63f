//! The server's memory of its sandboxes: who owns each, what it is doing, when it was last used
//! and when it expires. Reads are answered from here, without asking the engine.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::model::{Sandbox, SandboxInfo, SandboxStatus};

/// Labels a server keeps on its sandboxes, so they outlive it.
pub(super) const LABEL_TENANT: &str = "enclave.tenant";
pub(super) const LABEL_POOL: &str = "enclave.pool";
pub(super) const LABEL_TTL: &str = "enclave.ttl";
pub(super) const LABEL_IDLE: &str = "enclave.idle-timeout";

/// One sandbox this server owns.
pub(super) struct Entry {
    /// As the manager made or found it; handed back to it for every call.
    pub(super) sandbox: Sandbox,
    /// Its `SandboxInfo` when it was registered (tools' schemas included); `status` and
    /// `updated_at` are overlaid from here when shown.
    pub(super) info: SandboxInfo,
    pub(super) tenant: String,
    /// running, idle (free in the pool), busy (lent by the pool), stopped, paused, error.
    pub(super) status: SandboxStatus,
    pub(super) updated_at: DateTime<Utc>,
    /// The last call's end (or registration); the idle timeout counts from here.
    pub(super) last_used: Instant,
    /// When it was put in the registry, to tell an engine listing older than the entry.
    pub(super) registered: Instant,
    pub(super) ttl: Option<Duration>,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) pooled: bool,
    /// Calls running on it now; the reaper never takes a sandbox with calls.
    pub(super) calls: usize,
}

impl Entry {
    pub(super) fn new(
        sandbox: Sandbox,
        info: SandboxInfo,
        tenant: String,
        status: SandboxStatus,
    ) -> Self {
        let labels = &sandbox.labels;
        let ttl = labels.get(LABEL_TTL).and_then(|v| parse_secs(v));
        let idle_timeout = labels.get(LABEL_IDLE).and_then(|v| parse_secs(v));
        let pooled = labels.get(LABEL_POOL).is_some_and(|v| v == "1");
        let now = Instant::now();
        Entry {
            updated_at: info.updated_at,
            sandbox,
            info,
            tenant,
            status,
            last_used: now,
            registered: now,
            ttl,
            idle_timeout,
            pooled,
            calls: 0,
        }
    }

    /// What a client sees.
    pub(super) fn info(&self) -> SandboxInfo {
        let mut info = self.info.clone();
        info.status = self.status;
        info.updated_at = self.updated_at;
        info
    }

    pub(super) fn set_status(&mut self, status: SandboxStatus) {
        if self.status != status {
            self.status = status;
            self.updated_at = Utc::now();
        }
    }

    /// Accepts calls: running, or in a pool (free or lent; a pool member may be used directly).
    pub(super) fn is_active(&self) -> bool {
        matches!(
            self.status,
            SandboxStatus::Running | SandboxStatus::Idle | SandboxStatus::Busy
        )
    }

    pub(super) fn expired(&self, now: DateTime<Utc>) -> bool {
        let created = self.info.created_at;
        self.ttl
            .is_some_and(|ttl| chrono::Duration::from_std(ttl).is_ok_and(|ttl| now - created > ttl))
    }

    /// Unused for longer than its idle timeout. Free pool members wait by design: exempt.
    pub(super) fn idle_too_long(&self, now: Instant) -> bool {
        !self.pooled
            && self
                .idle_timeout
                .is_some_and(|limit| now.duration_since(self.last_used) > limit)
    }

    /// The config and labels a replacement is made from: the caller's, without ours.
    pub(super) fn user_labels(&self) -> BTreeMap<String, String> {
        self.sandbox
            .labels
            .iter()
            .filter(|(k, _)| !k.starts_with("enclave."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Why the reaper takes a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reap {
    Errored,
    Expired,
    Idle,
}

impl Reap {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Reap::Errored => "in error",
            Reap::Expired => "past its ttl",
            Reap::Idle => "idle past its idle timeout",
        }
    }
}

/// What the reaper should do with `entry` now, if anything. A sandbox with a call running, or
/// lent by the pool, is never taken.
pub(super) fn reap_reason(entry: &Entry, now: DateTime<Utc>, instant: Instant) -> Option<Reap> {
    if entry.calls > 0 || entry.status == SandboxStatus::Busy {
        return None;
    }
    if entry.status == SandboxStatus::Error {
        return Some(Reap::Errored);
    }
    if entry.expired(now) {
        return Some(Reap::Expired);
    }
    if entry.idle_too_long(instant) {
        return Some(Reap::Idle);
    }
    None
}

/// Every entry, by id.
#[derive(Default)]
pub(super) struct Registry {
    pub(super) entries: HashMap<String, Entry>,
    /// Sandboxes being created, per tenant (they count against `max_sandboxes`).
    pub(super) creating: HashMap<String, usize>,
}

impl Registry {
    pub(super) fn count(&self, tenant: &str) -> usize {
        self.entries.values().filter(|e| e.tenant == tenant).count()
            + self.creating.get(tenant).copied().unwrap_or(0)
    }
}

/// Seconds as a label value: whole seconds without a fraction.
pub(super) fn secs_label(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        d.as_secs_f64().to_string()
    }
}

fn parse_secs(v: &str) -> Option<Duration> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// `value` as JSON, for stats.
pub(super) fn count_map(counts: BTreeMap<&str, usize>) -> Value {
    counts
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;
    use serde_json::Map;

    use super::*;
    use crate::model::{DockerSandboxConfig, Location, SandboxType};

    fn entry(labels: &[(&str, &str)], created_secs_ago: i64) -> Entry {
        let created = Utc::now() - chrono::Duration::seconds(created_secs_ago);
        let sandbox = Sandbox {
            id: "abc".into(),
            sandbox_type: SandboxType::Docker,
            image: "i".into(),
            status: SandboxStatus::Running,
            tools: vec![],
            created_at: Some(created),
            container_id: Some("c".into()),
            location: Location::Docker,
            tracked: true,
            config: DockerSandboxConfig::default(),
            volcengine: None,
            revive_hint: None,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        };
        let info = SandboxInfo {
            id: "abc".into(),
            status: SandboxStatus::Running,
            sandbox_type: SandboxType::Docker,
            config: Value::Null,
            created_at: created,
            updated_at: created,
            metadata: Map::new(),
            available_tools: IndexMap::new(),
            agent: None,
        };
        Entry::new(sandbox, info, "t".into(), SandboxStatus::Running)
    }

    #[test]
    fn lifetimes_come_from_labels() {
        let e = entry(
            &[(LABEL_TTL, "2"), (LABEL_IDLE, "1.5"), (LABEL_POOL, "1")],
            0,
        );
        assert_eq!(e.ttl, Some(Duration::from_secs(2)));
        assert_eq!(e.idle_timeout, Some(Duration::from_millis(1500)));
        assert!(e.pooled);
        let e = entry(&[(LABEL_TTL, "nonsense"), (LABEL_IDLE, "0")], 0);
        assert_eq!((e.ttl, e.idle_timeout, e.pooled), (None, None, false));
        assert_eq!(secs_label(Duration::from_secs(300)), "300");
        assert_eq!(secs_label(Duration::from_millis(1500)), "1.5");
    }

    #[test]
    fn the_reaper_takes_errors_expired_and_idle_but_never_a_sandbox_in_use() {
        let now = Utc::now();
        let later = Instant::now() + Duration::from_secs(10);
        let fresh = entry(&[(LABEL_TTL, "60")], 0);
        assert_eq!(reap_reason(&fresh, now, Instant::now()), None);

        let old = entry(&[(LABEL_TTL, "60")], 120);
        assert_eq!(reap_reason(&old, now, Instant::now()), Some(Reap::Expired));

        let idle = entry(&[(LABEL_IDLE, "5")], 0);
        assert_eq!(reap_reason(&idle, now, later), Some(Reap::Idle));

        let mut pooled = entry(&[(LABEL_IDLE, "5"), (LABEL_POOL, "1")], 0);
        assert_eq!(reap_reason(&pooled, now, later), None);
        pooled.status = SandboxStatus::Error;
        assert_eq!(reap_reason(&pooled, now, later), Some(Reap::Errored));

        let mut busy = entry(&[(LABEL_TTL, "60")], 120);
        busy.calls = 1;
        assert_eq!(reap_reason(&busy, now, later), None);
        busy.calls = 0;
        busy.status = SandboxStatus::Busy;
        assert_eq!(reap_reason(&busy, now, later), None);
    }

    #[test]
    fn user_labels_leave_ours_out() {
        let e = entry(&[(LABEL_TENANT, "a"), ("enclave-test", "run1")], 0);
        assert_eq!(
            e.user_labels().into_iter().collect::<Vec<_>>(),
            [("enclave-test".to_string(), "run1".to_string())]
        );
    }
}

//! Idle expiry that outlives the process that set it: a sandbox labelled
//! `enclave.idle-expiry=SECS` is removed by whichever enclave process looks first once it has
//! gone SECS without use (`enclave mcp` labels its sandboxes so, and a client or server that
//! dies leaves nothing behind for long). Use is recorded in the state file as `last_used`, at
//! most once per `TOUCH_EVERY` for each sandbox, and only for labelled ones: the others never
//! pay for it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::Warn;
use crate::manager::Manager;
use crate::model::{Sandbox, LABEL_IDLE_EXPIRY};
use crate::state::{SandboxRecord, StateStore};

/// How stale `last_used` may get: a sandbox is removed at most this late.
const TOUCH_EVERY: Duration = Duration::from_secs(30);

/// A manager's side of idle expiry: when it last recorded each sandbox's use.
#[derive(Default)]
pub(super) struct IdleExpiry {
    touched: Mutex<HashMap<String, Instant>>,
}

impl IdleExpiry {
    /// Records in `state` that `sandbox` was used just now, when it has an idle expiry.
    pub(super) async fn record_use(&self, state: &StateStore, sandbox: &Sandbox) -> Result<()> {
        if !sandbox.labels.contains_key(LABEL_IDLE_EXPIRY) || !sandbox.tracked {
            return Ok(());
        }
        {
            let mut touched = self
                .touched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if touched
                .get(&sandbox.id)
                .is_some_and(|at| at.elapsed() < TOUCH_EVERY)
            {
                return Ok(());
            }
            touched.insert(sandbox.id.clone(), Instant::now());
        }
        let now = Utc::now();
        state
            .update(|s| {
                if let Some(record) = s.sandboxes.get_mut(&sandbox.id) {
                    record.last_used = Some(now);
                }
            })
            .await
    }
}

/// Removes, through `manager`, the sandboxes among `records` (its own) that are past their idle
/// expiry, saying so through `warn`; `true` when there were any.
pub(super) async fn sweep<'r>(
    manager: &dyn Manager,
    records: impl IntoIterator<Item = &'r SandboxRecord>,
    warn: &Warn,
) -> bool {
    let now = Utc::now();
    let expired: Vec<&SandboxRecord> = records.into_iter().filter(|r| is_expired(r, now)).collect();
    for record in &expired {
        let Ok(sandbox) = manager.find(&record.id).await else {
            continue;
        };
        if manager.remove(&sandbox).await.is_ok() {
            warn(&format!(
                "removed sandbox `{}`: unused for longer than its idle expiry ({} s)",
                record.id,
                record
                    .labels
                    .get(LABEL_IDLE_EXPIRY)
                    .map_or("?", String::as_str)
            ));
        }
    }
    !expired.is_empty()
}

/// Whether `record` has an idle expiry that has passed at `now`.
fn is_expired(record: &SandboxRecord, now: DateTime<Utc>) -> bool {
    let Some(secs) = record
        .labels
        .get(LABEL_IDLE_EXPIRY)
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return false;
    };
    let last = record
        .last_used
        .unwrap_or(record.created_at)
        .max(record.created_at);
    now - last > chrono::Duration::seconds(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DockerSandboxConfig, Location, SandboxType};

    fn record(labels: &[(&str, &str)], age_secs: i64, used_secs_ago: Option<i64>) -> SandboxRecord {
        let now = Utc::now();
        SandboxRecord {
            id: "abc".into(),
            location: Location::Docker,
            container_id: Some("c".into()),
            sandbox_type: SandboxType::Docker,
            image: "i".into(),
            tools: vec![],
            config: DockerSandboxConfig::default(),
            created_at: now - chrono::Duration::seconds(age_secs),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            agent_socket: None,
            volcengine: None,
            last_used: used_secs_ago.map(|s| now - chrono::Duration::seconds(s)),
        }
    }

    #[test]
    fn only_labelled_sandboxes_unused_past_their_expiry_are_expired() {
        let now = Utc::now();
        assert!(!is_expired(&record(&[], 10_000, None), now));
        assert!(is_expired(
            &record(&[(LABEL_IDLE_EXPIRY, "60")], 120, None),
            now
        ));
        assert!(!is_expired(
            &record(&[(LABEL_IDLE_EXPIRY, "60")], 120, Some(30)),
            now
        ));
        assert!(is_expired(
            &record(&[(LABEL_IDLE_EXPIRY, "60")], 300, Some(90)),
            now
        ));
        assert!(!is_expired(
            &record(&[(LABEL_IDLE_EXPIRY, "junk")], 300, None),
            now
        ));
    }
}

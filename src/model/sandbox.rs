//! The sandbox as clients see it: id, type, status and `SandboxInfo`.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// ms-enclave's id alphabet: no `0`, `1` or `l`, so ids survive being read aloud or retyped.
const ID_ALPHABET: &[u8] = b"23456789abcdefghijkmnopqrstuvwxyz";
const ID_LEN: usize = 8;

pub fn new_sandbox_id() -> String {
    let mut rng = rand::rng();
    (0..ID_LEN)
        .map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxType {
    Docker,
    DockerNotebook,
}

impl SandboxType {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxType::Docker => "docker",
            SandboxType::DockerNotebook => "docker_notebook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "docker" => Some(SandboxType::Docker),
            "docker_notebook" => Some(SandboxType::DockerNotebook),
            _ => None,
        }
    }
}

/// ms-enclave's statuses, plus `gone`: recorded by us, but its container no longer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxStatus {
    Initializing,
    Running,
    Idle,
    Busy,
    Stopping,
    Stopped,
    Error,
    Gone,
}

impl SandboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxStatus::Initializing => "initializing",
            SandboxStatus::Running => "running",
            SandboxStatus::Idle => "idle",
            SandboxStatus::Busy => "busy",
            SandboxStatus::Stopping => "stopping",
            SandboxStatus::Stopped => "stopped",
            SandboxStatus::Error => "error",
            SandboxStatus::Gone => "gone",
        }
    }

    /// Maps Docker's container state (`running`, `exited`, …) onto a sandbox status.
    pub fn from_container_state(state: &str) -> Self {
        match state {
            "running" => SandboxStatus::Running,
            "created" | "restarting" => SandboxStatus::Initializing,
            "removing" => SandboxStatus::Stopping,
            "exited" | "paused" | "dead" => SandboxStatus::Stopped,
            _ => SandboxStatus::Error,
        }
    }
}

/// ms-enclave's `SandboxInfo` (reference §4.3), key order as it emits them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxInfo {
    pub id: String,
    pub status: SandboxStatus,
    #[serde(rename = "type")]
    pub sandbox_type: SandboxType,
    pub config: Value,
    #[serde(with = "super::timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "super::timestamp")]
    pub updated_at: DateTime<Utc>,
    pub metadata: Map<String, Value>,
    pub available_tools: IndexMap<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_use_the_unambiguous_alphabet() {
        for _ in 0..200 {
            let id = new_sandbox_id();
            assert_eq!(id.len(), 8);
            assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)), "{id}");
        }
    }

    #[test]
    fn enum_wire_strings() {
        assert_eq!(
            serde_json::to_string(&SandboxType::DockerNotebook).unwrap(),
            "\"docker_notebook\""
        );
        assert_eq!(
            serde_json::to_string(&SandboxStatus::Running).unwrap(),
            "\"running\""
        );
        assert_eq!(
            SandboxStatus::from_container_state("exited"),
            SandboxStatus::Stopped
        );
    }
}

//! The sandbox as clients see it: id, type, status, where it lives, and `SandboxInfo`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{DockerSandboxConfig, VolcengineSandboxConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxType {
    Docker,
    DockerNotebook,
    /// A handle on a SandboxFusion service: no container, code runs through its HTTP API.
    Volcengine,
}

impl SandboxType {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxType::Docker => "docker",
            SandboxType::DockerNotebook => "docker_notebook",
            SandboxType::Volcengine => "volcengine",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "docker" => Some(SandboxType::Docker),
            "docker_notebook" => Some(SandboxType::DockerNotebook),
            "volcengine" => Some(SandboxType::Volcengine),
            _ => None,
        }
    }
}

/// ms-enclave's statuses, plus enclave's `paused` (frozen outside enclave) and `gone` (recorded
/// by us, but the sandbox no longer exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxStatus {
    Initializing,
    Running,
    Idle,
    Busy,
    Stopping,
    Stopped,
    Paused,
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
            SandboxStatus::Paused => "paused",
            SandboxStatus::Error => "error",
            SandboxStatus::Gone => "gone",
        }
    }
}

/// Where a sandbox lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Location {
    /// The Docker engine this process talks to (`DOCKER_HOST` or the default socket).
    Docker,
    /// An `enclave server` (or ms-enclave server) at this URL.
    Server { url: String },
    /// A Pod in this namespace of the cluster a kubeconfig context names (`None`: the
    /// kubeconfig's current context, or the cluster this process runs in).
    Kubernetes {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
        namespace: String,
    },
}

/// A sandbox as a manager found it: what `enclave ls` shows, and enough to act on it without
/// looking it up again.
#[derive(Debug, Clone, Serialize)]
pub struct Sandbox {
    pub id: String,
    #[serde(rename = "type")]
    pub sandbox_type: SandboxType,
    pub image: String,
    pub status: SandboxStatus,
    pub tools: Vec<String>,
    #[serde(with = "super::timestamp::option")]
    pub created_at: Option<DateTime<Utc>>,
    pub container_id: Option<String>,
    pub location: Location,
    /// Recorded in the state file (false: found only through its labels).
    pub tracked: bool,
    /// The full config; `inspect` shows it, `ls` does not.
    #[serde(skip)]
    pub config: DockerSandboxConfig,
    /// A `volcengine` sandbox's config (secrets included), which it has instead of a
    /// container: set exactly when `sandbox_type` is `Volcengine`, and `config` is then unused.
    #[serde(skip)]
    pub volcengine: Option<VolcengineSandboxConfig>,
    /// For a sandbox that is not running: how to bring it back, in the backend's words.
    #[serde(skip)]
    pub revive_hint: Option<String>,
    /// The labels its creator added (`CreateRequest::extra_labels`): a server keeps a sandbox's
    /// tenant, lifetime and pool there, so they outlive the server.
    #[serde(skip)]
    pub labels: BTreeMap<String, String>,
}

impl Sandbox {
    /// The sandbox `info` describes, with its typed `config`, living at `location`.
    pub fn from_info(info: &SandboxInfo, config: DockerSandboxConfig, location: Location) -> Self {
        Sandbox {
            id: info.id.clone(),
            sandbox_type: info.sandbox_type,
            image: config.image.clone(),
            status: info.status,
            tools: info.available_tools.keys().cloned().collect(),
            created_at: Some(info.created_at),
            container_id: info
                .metadata
                .get("container_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            location,
            tracked: true,
            config,
            volcengine: None,
            revive_hint: None,
            labels: BTreeMap::new(),
        }
    }
}

/// What `remove` did to one sandbox.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub id: String,
    pub result: Removal,
}

/// How a sandbox was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    /// The sandbox was killed and removed.
    Removed,
    /// It was already gone; the record was dropped.
    Forgotten,
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
    /// How enclave reaches the sandbox (enclave's own; not in ms-enclave's shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
}

/// Whether commands reach a sandbox through its resident agent, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// `socket` (a Unix socket on the engine's host), `exec` (one `docker exec` bridging to the
    /// agent) or `off` (every command is its own `docker exec`).
    pub mode: String,
    /// Why it is off, or why the agent could not be reached (commands then use `docker exec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The agent's build, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}

//! The seam between commands and where sandboxes live: `Manager`, implemented for the local
//! Docker engine now and for a remote `enclave server` later.

mod local;

use anyhow::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

pub use local::LocalManager;

use crate::backend::{ExecOutcome, ExecSpec, OutputSink, PullObserver};
use crate::model::{DockerSandboxConfig, SandboxInfo, SandboxStatus, SandboxType, ToolResult};
use crate::state::Location;

/// A sandbox to create.
pub struct CreateRequest {
    pub sandbox_type: SandboxType,
    pub config: DockerSandboxConfig,
    /// Extra container labels beyond the config's (tests use them to find what they made).
    pub extra_labels: Vec<(String, String)>,
}

/// One row of `enclave ls`.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxSummary {
    pub id: String,
    #[serde(rename = "type")]
    pub sandbox_type: SandboxType,
    pub image: String,
    pub status: SandboxStatus,
    pub tools: Vec<String>,
    #[serde(with = "crate::model::timestamp::option")]
    pub created_at: Option<DateTime<Utc>>,
    pub container_id: Option<String>,
    pub location: Location,
    /// Recorded in the state file (false: found only through Docker labels).
    pub tracked: bool,
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
    /// The container was killed and removed.
    Removed,
    /// The container was already gone; the record was dropped.
    Forgotten,
}

#[async_trait]
pub trait Manager: Send + Sync {
    /// Creates and starts a sandbox. Cancelling removes whatever was created.
    async fn create(
        &self,
        request: CreateRequest,
        progress: &dyn PullObserver,
        cancel: &CancellationToken,
    ) -> Result<SandboxInfo>;

    /// Every sandbox we know of, reconciled with the engine.
    async fn list(&self) -> Result<Vec<SandboxSummary>>;

    /// The full id for an id or a unique prefix of one.
    async fn resolve(&self, id_or_prefix: &str) -> Result<String>;

    async fn info(&self, id: &str) -> Result<SandboxInfo>;

    /// Runs a command in the sandbox, streaming its output.
    async fn exec(
        &self,
        id: &str,
        spec: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome>;

    async fn remove(&self, id: &str) -> Result<Removed>;

    /// Runs one command in a fresh sandbox that is removed afterwards (`enclave run`).
    /// Cancelling kills the command and removes the sandbox.
    async fn run(
        &self,
        request: CreateRequest,
        spec: ExecSpec,
        progress: &dyn PullObserver,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome> {
        let cancel = spec.cancel.clone();
        let info = self.create(request, progress, &cancel).await?;
        let outcome = self.exec(&info.id, spec, sink).await;
        let removed = self.remove(&info.id).await;
        let outcome = outcome?;
        removed?;
        Ok(outcome)
    }

    /// The enabled tools' schemas, by tool name.
    async fn tools(&self, id: &str) -> Result<IndexMap<String, Value>>;

    /// Runs one tool call; arguments are validated against the tool's schema first.
    async fn execute_tool(
        &self,
        id: &str,
        tool: &str,
        args: Map<String, Value>,
        cancel: &CancellationToken,
    ) -> Result<ToolResult>;
}

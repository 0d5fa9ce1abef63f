//! The seam between commands and where sandboxes live: `Manager`, implemented for the local
//! Docker engine and for a remote `enclave server`. It speaks only the domain types
//! of `model/`, so an implementation needs nothing of another's.

mod agents;
mod expiry;
pub(crate) mod files;
mod kubernetes;
mod local;
mod records;
mod remote;
mod tool_call;

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

pub use kubernetes::KubeManager;
pub use local::LocalManager;
pub use remote::RemoteManager;

use crate::model::{
    ArchiveStream, DockerSandboxConfig, ExecOutcome, ExecSpec, OutputSink, PullObserver, Removed,
    Sandbox, SandboxInfo, SandboxType, ToolResult, VolcengineSandboxConfig,
};
use crate::session::{Session, SessionOptions};

/// Where notes for the user go (the CLI prints them on stderr; the server logs them).
pub(crate) type Warn = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// A sandbox to create.
pub struct CreateRequest {
    pub sandbox_type: SandboxType,
    pub config: DockerSandboxConfig,
    /// A `volcengine` sandbox's config, used instead of `config` when `sandbox_type` is
    /// `Volcengine` (`None` then means the defaults, which lack the required `base_url`).
    pub volcengine: Option<VolcengineSandboxConfig>,
    /// Extra labels beyond the config's (tests use them to find what they made).
    pub extra_labels: Vec<(String, String)>,
}

/// One tool call.
pub struct ToolCall {
    /// The tool's name in the sandbox (after any `tools_config` rename).
    pub tool: String,
    pub args: Map<String, Value>,
    /// When to give up: the call is cancelled, what it started is killed, and the result is a
    /// `timeout`. The tool's own `timeout` argument still applies within it.
    pub deadline: Option<Duration>,
    /// Cancelling stops the call (Ctrl-C, a client that went away); the result is `cancelled`.
    pub cancel: CancellationToken,
}

/// What answers behind a manager, when it does.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Health {
    /// In words: `docker 20.10.24 at unix:///var/run/docker.sock`, an enclave server's URL.
    pub backend: String,
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

    /// Every sandbox we know of, oldest first.
    async fn list(&self) -> Result<Vec<Sandbox>>;

    /// The sandbox with this id, or with an id this is a unique prefix of.
    async fn find(&self, id_or_prefix: &str) -> Result<Sandbox>;

    /// The sandbox's full `SandboxInfo`, tools' schemas included.
    async fn info(&self, sandbox: &Sandbox) -> Result<SandboxInfo>;

    /// Runs a command in the sandbox, streaming its output.
    async fn exec(
        &self,
        sandbox: &Sandbox,
        spec: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome>;

    /// Kills and removes the sandbox, and forgets it.
    async fn remove(&self, sandbox: &Sandbox) -> Result<Removed>;

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
        let sandbox = self.find(&info.id).await?;
        let outcome = self.exec(&sandbox, spec, sink).await;
        let removed = self.remove(&sandbox).await;
        let outcome = outcome?;
        removed?;
        Ok(outcome)
    }

    /// Stops the sandbox's processes; it stays, `stopped`, until removed.
    async fn stop(&self, sandbox: &Sandbox) -> Result<()>;

    /// Extracts a tar archive into `dir` in the sandbox, creating `dir` first.
    async fn put_archive(&self, sandbox: &Sandbox, dir: &str, tar: Bytes) -> Result<()>;

    /// `path` in the sandbox (a file or a directory) as a tar archive, `docker cp`'s layout:
    /// one top entry named after it. `Error::PathNotFound` when nothing is there.
    async fn get_archive(&self, sandbox: &Sandbox, path: &str) -> Result<ArchiveStream>;

    /// Checks that what holds the sandboxes answers (the engine, a server).
    async fn health(&self) -> Result<Health>;

    /// Runs one tool call; arguments are validated against the tool's schema first.
    async fn execute_tool(&self, sandbox: &Sandbox, call: ToolCall) -> Result<ToolResult>;

    /// Records that the sandbox was just used, for an idle expiry that any later process
    /// enforces (`enclave mcp`'s sandboxes). Nothing where there is none to record.
    async fn touch(&self, _sandbox: &Sandbox) -> Result<()> {
        Ok(())
    }

    /// Opens an interactive session in the sandbox (`enclave shell`): a live interpreter that
    /// keeps its state between inputs until it is closed.
    async fn open_session(
        &self,
        sandbox: &Sandbox,
        options: SessionOptions,
    ) -> Result<Box<dyn Session>>;
}

//! `enclave mcp`: sandboxes as Model Context Protocol tools, over stdio or streamable HTTP. It
//! sits on the `Manager` seam as the HTTP server does, so it serves the local engine or, with
//! `--server`, a remote `enclave server`.
//!
//! One `Core` holds what outlives a request: the manager, the sandboxes each tenant owns, the
//! background jobs. A `Handler` answers one connection's requests on behalf of one tenant.

mod args;
mod calls;
mod catalog;
mod files;
mod handler;
mod http;
mod jobs;
mod lifetime;
mod python;
mod reply;
mod sandboxes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

use crate::manager::Manager;

pub(crate) use http::HttpOptions;

/// The label every sandbox `enclave mcp` makes carries.
pub(crate) const LABEL_MCP: &str = "enclave.mcp";

/// What `enclave mcp` was told on its command line.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// `--tools`: the tools offered (all when `None`).
    pub(crate) tools: Option<Vec<String>>,
    /// `--sandbox`: where calls without `sandbox_id` run, instead of a throwaway sandbox.
    pub(crate) sandbox: Option<String>,
    /// The image of throwaway sandboxes and the default of `sandbox_create`.
    pub(crate) image: String,
    /// Host directories `upload_file` may read and `download_file` may write under.
    pub(crate) allow_dirs: Vec<PathBuf>,
    /// How long one call may run before it is killed (under the ~60 s hosts wait).
    pub(crate) call_timeout: Duration,
    /// How long a sandbox from `sandbox_create` may sit unused before any enclave removes it.
    pub(crate) idle_expiry: Duration,
    /// Whether new sandboxes reach the network unless `sandbox_create` says otherwise.
    pub(crate) network: bool,
    /// Labels added to every sandbox made (tests find theirs this way).
    pub(crate) labels: Vec<(String, String)>,
    /// Leave `sandbox_create`'s sandboxes behind at exit (their idle expiry still applies).
    pub(crate) keep: bool,
    /// Sandboxes live on an `enclave server` (`--server`): its own `--idle-timeout` and reaper
    /// apply there, and it reserves the `enclave.` labels.
    pub(crate) remote: bool,
}

/// Who is calling. Sandboxes belong to the tenant that created them and are invisible to any
/// other: over stdio the one client, over HTTP the holder of one bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Tenant(Arc<str>);

impl Tenant {
    pub(crate) fn new(name: &str) -> Self {
        Tenant(name.into())
    }

    pub(crate) fn stdio() -> Self {
        Tenant::new("stdio")
    }
}

/// What every connection shares.
pub(crate) struct Core {
    manager: Arc<dyn Manager>,
    options: Options,
    /// The tools offered, in `tools/list` order.
    tools: Vec<&'static str>,
    sandboxes: sandboxes::Owned,
    jobs: jobs::Jobs,
    /// The live interpreters of `python_executor` in kept sandboxes.
    sessions: python::Sessions,
    /// Cancelled at shutdown: every running call stops and cleans up.
    stop: CancellationToken,
}

impl Core {
    pub(crate) fn new(manager: Arc<dyn Manager>, options: Options) -> Result<Arc<Self>> {
        let tools = catalog::select(options.tools.as_deref())
            .map_err(|e| crate::error::Error::Usage(format!("--tools: {e}")))?;
        Ok(Arc::new(Core {
            manager,
            options,
            tools,
            sandboxes: sandboxes::Owned::default(),
            jobs: jobs::Jobs::default(),
            sessions: python::Sessions::default(),
            stop: CancellationToken::new(),
        }))
    }
}

/// Serves one client over stdin and stdout until it closes stdin, its parent process dies, or
/// `cancel` (a signal); then removes what this process made.
pub(crate) async fn serve_stdio(core: Arc<Core>, cancel: CancellationToken) -> Result<()> {
    let handler = handler::Handler::new(core.clone(), Some(Tenant::stdio()));
    let served = async {
        let service = handler
            .serve_with_ct(rmcp::transport::stdio_pipes(), cancel.clone())
            .await;
        if let Ok(service) = service {
            // Ends at stdin's EOF (or a transport error); `cancel` ends it too.
            let _ = service.waiting().await;
        }
    };
    tokio::select! {
        () = served => {}
        () = cancel.cancelled() => {}
        () = lifetime::parent_gone() => {}
    }
    core.shut_down().await;
    Ok(())
}

/// Serves streamable HTTP until `cancel`; then removes what this process made.
pub(crate) async fn serve_http(
    core: Arc<Core>,
    options: HttpOptions,
    cancel: CancellationToken,
) -> Result<()> {
    let served = http::serve(core.clone(), options, cancel.clone()).await;
    core.shut_down().await;
    served
}

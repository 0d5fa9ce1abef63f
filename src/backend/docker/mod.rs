//! The Docker engine, through bollard: the only module that imports bollard. `DockerEngine`
//! creates, lists and removes containers; `DockerSandbox` is one container seen through the
//! `Backend` trait (exec, the archive API).

mod agent;
mod archive;
mod container;
mod exec;
mod image;
mod kill;
mod notebook;
mod run;
mod stdin;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use bollard::Docker;
use bytes::Bytes;

use super::{Backend, FileStat, NewEntry};
use crate::error::Error;
use crate::model::{ArchiveStream, ExecOutcome, ExecSpec, ExitCause, OutputSink, SandboxStatus};

pub(crate) use agent::{AgentAccess, AgentSetup};
pub(crate) use archive::tar_of;
pub(crate) use container::{AgentChoice, ContainerRecord, ContainerState, CreateSpec, Workload};
pub(crate) use notebook::NotebookSetup;

/// What an image provides itself, which decides our fallbacks.
#[derive(Debug, Clone, Default)]
pub(crate) struct ImageDefaults {
    pub(crate) has_command: bool,
    pub(crate) has_path: bool,
    /// The image's own entrypoint and command: what the agent starts under itself.
    pub(crate) entrypoint: Vec<String>,
    pub(crate) cmd: Vec<String>,
    /// The image's CPU architecture in Go's words (`amd64`, `arm64`); empty when unknown.
    pub(crate) architecture: String,
}

/// How long a single non-streaming engine request may take before we call the engine wedged.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long an idle connection to the engine is kept for reuse.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept at most (calls in flight use more).
const POOL_MAX_IDLE: usize = 16;
/// How long connecting and agreeing on an API version may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection to one Docker-compatible engine (Docker or Podman), shared by every call.
#[derive(Clone)]
pub struct DockerEngine {
    client: Arc<EngineClient>,
}

/// The client before and after agreeing on an API version with the engine.
struct EngineClient {
    unversioned: Docker,
    agreed: tokio::sync::OnceCell<Docker>,
}

impl DockerEngine {
    /// A client for the engine (honouring `DOCKER_HOST`). It agrees on an API version with the
    /// engine at its first request, not here: a command that finds its sandbox's agent without
    /// the engine never waits for it. [`DockerEngine::ready`] asks at once.
    pub fn connect() -> Result<Self> {
        let unversioned = client()
            .map_err(|e| unavailable(&e))?
            .with_timeout(REQUEST_TIMEOUT);
        Ok(DockerEngine {
            client: Arc::new(EngineClient {
                unversioned,
                agreed: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// Agrees on an API version now, which proves the engine answers.
    pub async fn ready(&self) -> Result<()> {
        self.api().await.map(|_| ())
    }

    /// The client, once it has agreed on an API version with the engine (the first call asks).
    pub(crate) async fn api(&self) -> Result<&Docker> {
        let client = &self.client;
        let agreed = client.agreed.get_or_try_init(|| async {
            // Agreeing on a version is our ping: one round trip proves the engine answers, and
            // Debian's engine speaks API 1.41 where bollard defaults to a newer one.
            tokio::time::timeout(
                CONNECT_TIMEOUT,
                client.unversioned.clone().negotiate_version(),
            )
            .await
            .map_err(|_| unavailable(&"no answer within 10 s"))?
            .map_err(|e| unavailable(&e))
        });
        Ok(agreed.await?)
    }

    pub fn address(&self) -> String {
        engine_address()
    }

    /// Whether the engine sees this host's paths: reached through a local Unix socket, so a
    /// directory here can be bind-mounted into its containers.
    pub(crate) fn shares_host_paths(&self) -> bool {
        unix_socket().is_some()
    }

    /// Asks the engine whether it answers; its version when it does.
    pub async fn ping(&self) -> Result<String> {
        let answer = tokio::time::timeout(CONNECT_TIMEOUT, self.api().await?.version())
            .await
            .map_err(|_| unavailable(&"no answer within 10 s"))?
            .map_err(|e| unavailable(&e))?;
        Ok(answer.version.unwrap_or_default())
    }

    /// The API version agreed with the engine (agreeing now if not yet).
    pub async fn api_version(&self) -> Result<String> {
        let v = self.api().await?.client_version();
        Ok(format!("{}.{}", v.major_version, v.minor_version))
    }

    /// One container, as a `Backend`.
    pub(crate) fn sandbox(&self, container_id: &str) -> DockerSandbox {
        DockerSandbox {
            engine: self.clone(),
            container: container_id.to_string(),
        }
    }
}

/// One sandbox container.
#[derive(Clone)]
pub(crate) struct DockerSandbox {
    engine: DockerEngine,
    container: String,
}

impl DockerSandbox {
    /// For a command that died of `SIGKILL` we did not send: whether the sandbox ran out of
    /// memory or went away meanwhile (the engine's record of it since `since`).
    pub(crate) async fn why_killed(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Option<ExitCause> {
        self.engine.why_killed(&self.container, since).await
    }

    /// A byte stream to the sandbox's agent through one `docker exec` (see `agent_bridge`).
    pub(crate) async fn agent_bridge(&self) -> Result<tokio::io::DuplexStream> {
        self.engine.agent_bridge(&self.container).await
    }
}

#[async_trait]
impl Backend for DockerSandbox {
    async fn exec(&self, spec: ExecSpec, sink: &mut dyn OutputSink) -> Result<ExecOutcome> {
        self.engine.exec(&self.container, spec, sink).await
    }

    async fn stat(&self, path: &str) -> Result<Option<FileStat>> {
        self.engine.stat_path(&self.container, path).await
    }

    async fn read_file(&self, path: &str, max_bytes: u64) -> Result<Option<Vec<u8>>> {
        self.engine
            .read_file(&self.container, path, max_bytes)
            .await
    }

    async fn put(&self, dir: &str, entries: Vec<NewEntry>) -> Result<()> {
        self.engine.put(&self.container, dir, entries).await
    }

    async fn make_dirs(&self, dir: &str) -> Result<()> {
        self.engine.make_dirs(&self.container, dir).await
    }

    async fn put_archive(&self, dir: &str, tar: Bytes) -> Result<()> {
        self.engine.put_archive(&self.container, dir, tar).await
    }

    async fn get_archive(&self, path: &str) -> Result<Option<ArchiveStream>> {
        self.engine.get_archive(&self.container, path).await
    }

    async fn stop(&self) -> Result<()> {
        self.engine.stop_container(&self.container).await
    }

    async fn remove(&self) -> Result<bool> {
        self.engine.remove_container(&self.container).await
    }
}

/// A client for `DOCKER_HOST` (or the default socket).
fn client() -> Result<Docker, bollard::errors::Error> {
    match unix_socket() {
        Some(path) if std::path::Path::new(&path).exists() => Ok(pooled_unix_client(&path)),
        _ => Docker::connect_with_defaults(),
    }
}

/// The engine's Unix socket, when that is how it is reached.
fn unix_socket() -> Option<String> {
    engine_address().strip_prefix("unix://").map(String::from)
}

/// A client over the Unix socket that keeps idle connections for the next request. bollard's
/// own opens one per request, so each exec (create, start, inspect) cost three connects here and
/// three accepts in the engine; with reuse only the start, which the engine takes over for the
/// stream, needs a new one.
fn pooled_unix_client(path: &str) -> Docker {
    let mut builder =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
    builder
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE);
    let client = Arc::new(builder.build(hyperlocal::UnixConnector));
    let transport = move |request: bollard::BollardRequest| {
        let client = Arc::clone(&client);
        async move {
            client
                .request(request)
                .await
                .map_err(bollard::errors::Error::from)
        }
    };
    // hyperlocal finds the socket in the URL's host, hex-encoded.
    let host = path.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    Docker::connect_with_custom_transport(
        transport,
        Some(format!("unix://{host}")),
        REQUEST_TIMEOUT.as_secs(),
        bollard::API_DEFAULT_VERSION,
    )
    .expect("a custom transport needs no I/O to set up")
}

/// `DOCKER_HOST`, or the default socket when it is unset or empty.
fn engine_address() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
}

fn unavailable(err: &dyn std::fmt::Display) -> Error {
    Error::Unavailable {
        kind: "docker_unavailable",
        what: "the Docker engine".into(),
        detail: format!("{}: {err}", engine_address()),
        hint: "start the engine (`sudo systemctl start docker`, or `sudo dockerd &`), or point \
               DOCKER_HOST at one"
            .into(),
    }
}

/// The engine's own words for a refusal, never empty.
fn refused(message: String, status: u16) -> Error {
    let message = if message.trim().is_empty() {
        format!("HTTP {status} without a message")
    } else {
        message
    };
    Error::Refused {
        by: "the Docker engine".into(),
        message,
    }
}

/// Turns a bollard error into a domain error where callers branch on it.
fn engine_error(err: bollard::errors::Error) -> anyhow::Error {
    use bollard::errors::Error as B;
    match err {
        B::DockerResponseServerError {
            message,
            status_code,
        } => refused(message, status_code).into(),
        B::HyperResponseError { .. } | B::IOError { .. } | B::RequestTimeoutError => {
            unavailable(&err).into()
        }
        other => anyhow::Error::new(other),
    }
}

fn status_code(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn label_filter(labels: &[String]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), labels.to_vec())])
}

/// Docker's state word (`running`, `exited`, …) as a sandbox status.
fn status_of(state: &str) -> SandboxStatus {
    match state {
        "running" => SandboxStatus::Running,
        "created" | "restarting" => SandboxStatus::Initializing,
        "removing" => SandboxStatus::Stopping,
        "paused" => SandboxStatus::Paused,
        "exited" | "dead" => SandboxStatus::Stopped,
        _ => SandboxStatus::Error,
    }
}

/// For a container that is not running: how to bring it back.
fn revive_hint(sandbox_id: &str, status: SandboxStatus) -> Option<String> {
    let name = container::container_name(sandbox_id);
    match status {
        SandboxStatus::Paused => Some(format!(
            "its container was paused outside enclave: `docker unpause {name}` resumes it, \
             or `enclave rm {sandbox_id}` removes it"
        )),
        SandboxStatus::Stopped => Some(format!(
            "its container is stopped (by `enclave stop`, or outside enclave): \
             `docker start {name}` brings it back, or `enclave rm {sandbox_id}` removes it"
        )),
        SandboxStatus::Running => None,
        _ => Some(format!("`enclave rm {sandbox_id}` removes it")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_states_map_to_statuses_with_a_way_back() {
        assert_eq!(status_of("exited"), SandboxStatus::Stopped);
        assert_eq!(status_of("paused"), SandboxStatus::Paused);
        assert_eq!(status_of("running"), SandboxStatus::Running);
        assert!(revive_hint("k3x9", SandboxStatus::Paused)
            .unwrap()
            .contains("docker unpause enclave-k3x9"));
        assert!(revive_hint("k3x9", SandboxStatus::Stopped)
            .unwrap()
            .contains("docker start enclave-k3x9"));
        assert_eq!(revive_hint("k3x9", SandboxStatus::Running), None);
    }

    #[test]
    fn a_refusal_is_never_empty() {
        let e = refused(String::new(), 400);
        assert_eq!(
            e.to_string(),
            "the Docker engine refused the request: HTTP 400 without a message"
        );
    }
}

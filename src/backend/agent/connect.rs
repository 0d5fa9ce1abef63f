//! Reaching a sandbox's agent: its Unix socket on this host, or one `docker exec` bridging to
//! it; then the handshake, which proves that the agent reached is this sandbox's.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use enclave_agent::client::Client;
use enclave_agent::proto::auth;
use tokio::net::UnixStream;

use crate::backend::docker::{AgentAccess, DockerSandbox};

/// Between tries while a just-started agent binds its socket.
const RETRY_EVERY: Duration = Duration::from_millis(10);

/// How a connection to an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Socket,
    Exec,
}

impl Transport {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Transport::Socket => "socket",
            Transport::Exec => "exec",
        }
    }
}

/// Connects to the agent `access` describes and completes the handshake. `patience` is how long
/// a socket that is not there yet is waited for (a sandbox that has just started).
pub(crate) async fn connect(
    access: &AgentAccess,
    docker: &DockerSandbox,
    patience: Duration,
) -> Result<(Client, Transport)> {
    match access {
        AgentAccess::Socket { path, secret } => {
            let stream = connect_socket(path, patience).await?;
            Ok((handshake(stream, secret).await?, Transport::Socket))
        }
        AgentAccess::Exec { secret } => {
            let stream = docker.agent_bridge().await?;
            Ok((handshake(stream, secret).await?, Transport::Exec))
        }
        AgentAccess::Off { reason } => Err(anyhow!("the sandbox runs without the agent: {reason}")),
    }
}

/// Connects to an agent socket that should be listening already, and completes the handshake,
/// all within `within`: a quick way in that proves the sandbox runs without asking the engine.
pub(crate) async fn connect_listening_socket(
    path: &str,
    secret: &str,
    within: Duration,
) -> Result<Client> {
    let connect = async {
        let stream = UnixStream::connect(path)
            .await
            .with_context(|| format!("connecting to `{path}`"))?;
        handshake(stream, secret).await
    };
    tokio::time::timeout(within, connect)
        .await
        .map_err(|_| anyhow!("the agent did not answer within {within:?}"))?
}

async fn handshake<S>(stream: S, secret: &str) -> Result<Client>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let secret = auth::from_hex(secret)
        .ok_or_else(|| anyhow!("the sandbox's agent secret label is not hex"))?;
    Client::handshake(stream, &secret)
        .await
        .context("the agent's handshake failed")
}

/// The socket, retried while it does not exist or nobody listens yet, up to `patience`.
async fn connect_socket(path: &str, patience: Duration) -> Result<UnixStream> {
    let give_up = tokio::time::Instant::now() + patience;
    loop {
        match UnixStream::connect(path).await {
            Ok(stream) => return Ok(stream),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) && tokio::time::Instant::now() < give_up =>
            {
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Err(e) => return Err(e).with_context(|| format!("connecting to `{path}`")),
        }
    }
}

//! The in-sandbox agent (`agent/`): the binary this build carries, how to reach a sandbox's
//! agent, and `AgentSandbox`, the backend that runs commands and moves files through it.

mod connect;
mod exec;
mod files;

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use bytes::Bytes;
use enclave_agent::client::{Client, ClientError};
use enclave_agent::proto::{self, Request};

use super::docker::DockerSandbox;
use super::{Backend, FileStat, NewEntry};
use crate::model::{ArchiveStream, ExecOutcome, ExecSpec, ExitCause, OutputSink};

pub(crate) use connect::{connect, connect_listening_socket, Transport};

/// The static `enclave-agent` binary built with this `enclave` (build.rs); `None` when this
/// build has none (a host that could not build it).
pub(crate) fn binary() -> Option<&'static [u8]> {
    static AGENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/enclave-agent"));
    Some(AGENT).filter(|b| !b.is_empty())
}

/// A fingerprint of [`binary`], so each build's agent gets its own volume.
pub(crate) fn fingerprint() -> &'static str {
    include_str!(concat!(env!("OUT_DIR"), "/enclave-agent.hash"))
}

/// The CPU architecture the agent was built for, in Go's words as images report theirs.
pub(crate) fn architecture() -> &'static str {
    go_arch(std::env::consts::ARCH)
}

/// Rust's architecture names in Go's (`x86_64` → `amd64`); unknown ones as they are.
pub(crate) fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// What a sandbox with an agent is underneath (a Docker container, a Pod): the way to do what
/// the agent cannot (stop, remove, a call whose connection was lost), and the one that knows why
/// a command was killed.
#[async_trait]
pub(crate) trait AgentHost: Backend {
    /// For a command that died of `SIGKILL` we did not send: whether the sandbox ran out of
    /// memory or went away meanwhile (since `since`).
    async fn why_killed(&self, since: chrono::DateTime<chrono::Utc>) -> Option<ExitCause>;
}

#[async_trait]
impl AgentHost for DockerSandbox {
    async fn why_killed(&self, since: chrono::DateTime<chrono::Utc>) -> Option<ExitCause> {
        DockerSandbox::why_killed(self, since).await
    }
}

/// One sandbox reached through its agent; the sandbox's own operations (stop, remove) and
/// anything the agent cannot answer go through the host beneath it.
pub(crate) struct AgentSandbox<H: AgentHost = DockerSandbox> {
    client: Client,
    docker: H,
}

impl<H: AgentHost> AgentSandbox<H> {
    pub(crate) fn new(client: Client, host: H) -> Self {
        AgentSandbox {
            client,
            docker: host,
        }
    }
}

/// The connection failed under a call (not the call itself): the agent went away.
fn connection_lost(err: &ClientError) -> bool {
    matches!(err, ClientError::Closed | ClientError::Io(_))
}

/// How long the host waits past a command's own timeout before it cancels the call itself: the
/// agent enforces the timeout, this only covers an agent that stopped answering.
const BACKSTOP: Duration = Duration::from_secs(2);

#[async_trait]
impl<H: AgentHost> Backend for AgentSandbox<H> {
    async fn exec(&self, spec: ExecSpec, sink: &mut dyn OutputSink) -> Result<ExecOutcome> {
        if spec.argv.is_empty() {
            anyhow::bail!("no command given");
        }
        let request = Request::Exec(proto::ExecRequest {
            command: proto::Command::Argv(spec.argv.clone()),
            env: exec::env_pairs(&spec.env),
            cwd: spec.workdir.clone(),
            stdin: spec.stdin.is_some(),
            timeout_ms: exec::millis(spec.timeout),
        });
        match self.client.call(request).await {
            Ok(call) => exec::follow(call, spec, sink, &self.docker).await,
            // The agent went away before the call started: Docker still reaches the sandbox.
            Err(e) if connection_lost(&e) => self.docker.exec(spec, sink).await,
            Err(e) => Err(e.into()),
        }
    }

    async fn run_python(
        &self,
        code: &str,
        interpreter: Option<&str>,
        spec: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<Option<ExecOutcome>> {
        let request = Request::Python(proto::PythonRequest {
            code: code.to_string(),
            interpreter: interpreter.map(String::from),
            env: exec::env_pairs(&spec.env),
            cwd: spec.workdir.clone(),
            timeout_ms: exec::millis(spec.timeout),
        });
        let call = match self.client.call(request).await {
            Ok(call) => call,
            Err(e) if connection_lost(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        exec::follow_python(call, spec, sink, &self.docker).await
    }

    async fn stat(&self, path: &str) -> Result<Option<FileStat>> {
        match files::stat(&self.client, path).await {
            Err(e) if connection_lost(&e) => self.docker.stat(path).await,
            other => Ok(other?),
        }
    }

    async fn read_file(&self, path: &str, max_bytes: u64) -> Result<Option<Vec<u8>>> {
        match files::read_file(&self.client, path, max_bytes).await {
            Err(e) if connection_lost(&e) => self.docker.read_file(path, max_bytes).await,
            other => Ok(other?),
        }
    }

    async fn put(&self, dir: &str, entries: Vec<NewEntry>) -> Result<()> {
        if self.client.is_closed() {
            return self.docker.put(dir, entries).await;
        }
        files::put(&self.client, dir, entries).await
    }

    async fn make_dirs(&self, dir: &str) -> Result<()> {
        match files::make_dirs(&self.client, dir).await {
            Err(e) if connection_lost(&e) => self.docker.make_dirs(dir).await,
            other => Ok(other?),
        }
    }

    async fn put_archive(&self, dir: &str, tar: Bytes) -> Result<()> {
        if dir.trim().is_empty() {
            return Err(crate::error::Error::Usage(
                "the target directory must not be empty".into(),
            )
            .into());
        }
        if self.client.is_closed() {
            return self.docker.put_archive(dir, tar).await;
        }
        Ok(files::put_archive(&self.client, dir, tar).await?)
    }

    async fn get_archive(&self, path: &str) -> Result<Option<ArchiveStream>> {
        match files::get_archive(&self.client, path).await {
            Err(e) if connection_lost(&e) => self.docker.get_archive(path).await,
            other => Ok(other?),
        }
    }

    async fn stop(&self) -> Result<()> {
        self.docker.stop().await
    }

    async fn remove(&self) -> Result<bool> {
        self.docker.remove().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_are_named_as_images_name_them() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("riscv64"), "riscv64");
    }
}

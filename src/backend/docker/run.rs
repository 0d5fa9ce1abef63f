//! Ephemeral runs: the command is the container's main process, as with `docker run --rm`.
//! Cheaper than a kept-alive container plus an exec, and a timeout simply kills the container.

use std::time::Instant;

use anyhow::{Context, Result};
use bollard::query_parameters::{
    AttachContainerOptions, KillContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::exec::{deliver, kill_and_collect, pump_output};
use super::stdin::StdinPump;
use super::{engine_error, CreateSpec, DockerEngine, ImageDefaults};
use crate::backend::deadline_after;
use crate::model::{ExecEnd, ExecOutcome, ExecSpec, KillReport, OutputSink, Stream};

impl DockerEngine {
    /// Creates a container whose main process is `spec.workload`'s command, streams its output,
    /// and removes it afterwards, whatever happened. The container is also marked for the
    /// engine to remove by itself, in case we die first.
    pub(crate) async fn run_container(
        &self,
        spec: &CreateSpec<'_>,
        image: &ImageDefaults,
        io: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome> {
        let container = self.create_container(spec, image).await?;
        let outcome = self.attach_start_wait(&container, io, sink).await;
        let removed = self.remove_container(&container).await;
        let outcome = outcome?;
        removed?;
        Ok(outcome)
    }

    async fn attach_start_wait(
        &self,
        container: &str,
        io: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome> {
        let options = AttachContainerOptions {
            stream: true,
            stdin: io.stdin.is_some(),
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let attached = self
            .api()
            .await?
            .attach_container(container, Some(options))
            .await
            .map_err(engine_error)
            .context("attaching to the container")?;
        let mut output = attached.output;
        let stdin = StdinPump::start(io.stdin, attached.input);
        // Waiting for removal is asked before the start: the engine removes the container as
        // soon as it exits, and a wait asked after that finds nothing to wait for.
        let exit = self.wait_for_removal(container).await?;
        tokio::task::yield_now().await;
        let started = Instant::now();
        if let Err(e) = self.api().await?.start_container(container, None).await {
            stdin.stop().await;
            exit.abort();
            return start_failure(e, sink, started).await;
        }
        let deadline = deadline_after(io.timeout);
        let stopped = pump_output(&mut output, sink, deadline, &io.cancel).await;
        let mut outcome = ExecOutcome::new(ExecEnd::Exited(None), started.elapsed());
        match stopped {
            Ok(None) => {
                outcome.end = ExecEnd::Exited(exit.await.ok().flatten());
            }
            Ok(Some(end)) => {
                // Killing PID 1 takes everything else in the container with it.
                let kill = async {
                    let options = KillContainerOptions {
                        signal: "SIGKILL".into(),
                    };
                    let Ok(docker) = self.api().await else {
                        return KillReport::Unverified;
                    };
                    match docker.kill_container(container, Some(options)).await {
                        Ok(()) => KillReport::Verified { killed: 1 },
                        Err(_) => KillReport::Unverified,
                    }
                };
                let (kill, rest) = kill_and_collect(&mut output, kill).await;
                outcome.kill = Some(kill);
                if end != ExecEnd::OutputClosed {
                    deliver(rest, sink).await;
                }
                outcome.end = end;
                exit.abort();
            }
            Err(e) => {
                exit.abort();
                stdin.stop().await;
                return Err(e);
            }
        }
        stdin.stop().await;
        outcome.duration = started.elapsed();
        Ok(outcome)
    }

    /// The container's exit status, once the engine has removed it.
    async fn wait_for_removal(&self, container: &str) -> Result<JoinHandle<Option<i64>>> {
        let docker = self.api().await?.clone();
        let container = container.to_string();
        Ok(tokio::spawn(async move {
            let options = WaitContainerOptions {
                condition: "removed".into(),
            };
            let mut wait = docker.wait_container(&container, Some(options));
            match wait.next().await {
                Some(Ok(response)) => Some(response.status_code),
                // bollard reports a non-zero status as an error carrying the code.
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    Some(code)
                }
                _ => None,
            }
        }))
    }
}

/// A command that could not start: the engine's reason on stderr and a shell's exit code
/// (127 not found, 126 not executable), as `docker run` does.
async fn start_failure(
    err: bollard::errors::Error,
    sink: &mut dyn OutputSink,
    started: Instant,
) -> Result<ExecOutcome> {
    let bollard::errors::Error::DockerResponseServerError { message, .. } = &err else {
        return Err(engine_error(err)).context("starting the container");
    };
    let code = if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") {
        126
    } else {
        return Err(engine_error(err)).context("starting the container");
    };
    let _ = sink
        .write(Stream::Stderr, format!("{message}\n").as_bytes())
        .await;
    Ok(ExecOutcome::new(
        ExecEnd::Exited(Some(code)),
        started.elapsed(),
    ))
}

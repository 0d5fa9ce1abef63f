//! Ephemeral runs: the command is the container's main process, as with `docker run --rm`.
//! Cheaper than a kept-alive container plus an exec, and a timeout simply kills the container.

use std::time::Instant;

use anyhow::{Context, Result};
use bollard::query_parameters::{
    AttachContainerOptions, KillContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::exec::{deadline_after, drain, pump_output};
use super::{
    engine_error, CreateSpec, DockerBackend, ExecEnd, ExecOutcome, ExecSpec, ImageDefaults,
    OutputSink,
};

impl DockerBackend {
    /// Creates a container whose main process is `spec.workload`'s command, streams its output,
    /// and removes it afterwards, whatever happened.
    pub async fn run_container(
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
            .docker
            .attach_container(container, Some(options))
            .await
            .map_err(engine_error)
            .context("attaching to the container")?;
        let mut output = attached.output;
        let stdin_pump = io.stdin.map(|mut reader| {
            let mut input = attached.input;
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut reader, &mut input).await;
                let _ = input.shutdown().await;
            })
        });
        let started = Instant::now();
        if let Err(e) = self.docker.start_container(container, None).await {
            return start_failure(e, sink, started);
        }
        let deadline = deadline_after(io.timeout);
        let end = match pump_output(&mut output, sink, deadline, &io.cancel).await? {
            None => ExecEnd::Exited(Some(self.exit_status(container).await?)),
            Some(end) => {
                let kill = KillContainerOptions {
                    signal: "SIGKILL".into(),
                };
                let _ = self.docker.kill_container(container, Some(kill)).await;
                drain(&mut output, sink).await;
                end
            }
        };
        if let Some(pump) = stdin_pump {
            pump.abort();
        }
        Ok(ExecOutcome {
            end,
            duration: started.elapsed(),
        })
    }

    async fn exit_status(&self, container: &str) -> Result<i64> {
        let options = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let mut wait = self.docker.wait_container(container, Some(options));
        match wait.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero status as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(engine_error(e)).context("waiting for the command"),
            None => Err(anyhow::anyhow!(
                "the engine did not report the command's exit status"
            )),
        }
    }
}

/// A command that could not start: the engine's reason on stderr and a shell's exit code
/// (127 not found, 126 not executable), as `docker run` does.
fn start_failure(
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
    sink.stderr(format!("{message}\n").as_bytes());
    Ok(ExecOutcome {
        end: ExecEnd::Exited(Some(code)),
        duration: started.elapsed(),
    })
}

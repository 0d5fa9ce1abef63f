//! Running a command in a container: streamed, demultiplexed output written with back-pressure,
//! forwarded stdin, and a timeout, a cancel or a closed reader that kill the whole process tree.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{EventsOptions, InspectContainerOptions};
use chrono::Utc;
use futures_util::{Stream as FutureStream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::stdin::StdinPump;
use super::{engine_error, status_code, DockerEngine};
use crate::backend::deadline_after;
use crate::backend::kill_tree::{self, DRAIN_AFTER_KILL, TOKEN_VAR};
use crate::error::Error;
use crate::model::{
    random_hex, ExecEnd, ExecOutcome, ExecSpec, ExitCause, KillReport, OutputSink, Stream,
};

/// How long our own helper commands (`mkdir`) may take.
pub(super) const HELPER_TIMEOUT: Duration = Duration::from_secs(60);
/// The exit status of a process killed with `SIGKILL`: by us, the OOM killer, or a removal.
const SIGKILL_STATUS: i64 = 137;
/// How the engine reports, on the command's stdout, a command it could not start.
const START_FAILURE: &[u8] = b"OCI runtime exec failed";

/// An exec that was started, as `follow` needs it.
struct Running<'a> {
    container: &'a str,
    exec_id: &'a str,
    token: &'a str,
    workdir: Option<&'a str>,
    started: Instant,
    started_at: chrono::DateTime<Utc>,
}

pub(super) type OutputStream =
    std::pin::Pin<Box<dyn FutureStream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

impl DockerEngine {
    /// Runs `spec` in the container, streaming output to `sink`.
    pub(super) async fn exec(
        &self,
        container: &str,
        spec: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome> {
        if spec.argv.is_empty() {
            bail!("no command given");
        }
        let token = random_hex();
        let mut env = spec.env;
        env.push(format!("{TOKEN_VAR}={token}"));
        let workdir = spec.workdir.clone();
        let options = CreateExecOptions {
            cmd: Some(spec.argv),
            env: Some(env),
            working_dir: spec.workdir,
            attach_stdin: Some(spec.stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        };
        let started = Instant::now();
        let started_at = Utc::now();
        let begin = self.create_and_start(container, options);
        let (exec_id, output, input) = tokio::select! {
            begun = begin => begun?,
            () = spec.cancel.cancelled() => {
                // The command may have started as the engine answered: kill what carries its
                // token, which is nothing if it did not.
                let kill = self.kill_tree(container, &token).await;
                let mut outcome = ExecOutcome::new(ExecEnd::Cancelled, started.elapsed());
                outcome.kill = Some(kill);
                return Ok(outcome);
            }
        };
        let mut output = output;
        let stdin = StdinPump::start(spec.stdin, input);
        let run = Running {
            container,
            exec_id: &exec_id,
            token: &token,
            workdir: workdir.as_deref(),
            started,
            started_at,
        };
        let outcome = self
            .follow(&run, &mut output, sink, spec.timeout, &spec.cancel)
            .await;
        stdin.stop().await;
        outcome
    }

    async fn create_and_start(
        &self,
        container: &str,
        options: CreateExecOptions<String>,
    ) -> Result<(
        String,
        OutputStream,
        std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    )> {
        let exec_id = self
            .api()
            .await?
            .create_exec(container, options)
            .await
            .map_err(engine_error)
            .context("creating the exec")?
            .id;
        let start = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: Some(64 * 1024),
        };
        let StartExecResults::Attached { output, input } = self
            .api()
            .await?
            .start_exec(&exec_id, Some(start))
            .await
            .map_err(engine_error)
            .context("starting the exec")?
        else {
            bail!("the engine started the exec detached");
        };
        Ok((exec_id, output, input))
    }

    /// Streams a started exec's output until it ends or is stopped, and says how it ended.
    async fn follow(
        &self,
        run: &Running<'_>,
        output: &mut OutputStream,
        sink: &mut dyn OutputSink,
        timeout: Option<Duration>,
        cancel: &CancellationToken,
    ) -> Result<ExecOutcome> {
        let mut probe = StartFailureProbe::new(sink);
        let stopped = pump_output(output, &mut probe, deadline_after(timeout), cancel).await;
        let mut outcome = ExecOutcome::new(ExecEnd::Exited(None), run.started.elapsed());
        match stopped {
            Ok(None) => match self.exit_code(run.exec_id).await {
                Ok(Some(code)) => {
                    if let Some(failure) = probe.start_failure(code, run.workdir).await {
                        outcome.end = ExecEnd::Exited(Some(failure?));
                        return Ok(outcome);
                    }
                    outcome.end = ExecEnd::Exited(Some(code));
                    if code == SIGKILL_STATUS {
                        outcome.cause = self.why_killed(run.container, run.started_at).await;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    outcome.cause = Some(self.gone_or(run.container, run.started_at, e).await?);
                }
            },
            Ok(Some(end)) => {
                let (kill, rest) =
                    kill_and_collect(output, self.kill_tree(run.container, run.token)).await;
                outcome.kill = Some(kill);
                if end != ExecEnd::OutputClosed {
                    deliver(rest, probe.inner).await;
                }
                outcome.end = end;
            }
            Err(e) => {
                self.kill_tree(run.container, run.token).await;
                outcome.cause = Some(self.gone_or(run.container, run.started_at, e).await?);
            }
        }
        outcome.duration = run.started.elapsed();
        Ok(outcome)
    }

    async fn exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        // The stream can end a moment before the engine records the exit code.
        for _ in 0..50 {
            let inspect = self
                .api()
                .await?
                .inspect_exec(exec_id)
                .await
                .map_err(engine_error)?;
            if inspect.running != Some(true) {
                return Ok(inspect.exit_code);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(None)
    }

    /// For a command that died of `SIGKILL` without us, from the engine's record of what
    /// happened to its container meanwhile: removed or stopped (a kill, a death, a removal), or
    /// out of memory.
    pub(super) async fn why_killed(
        &self,
        container: &str,
        since: chrono::DateTime<Utc>,
    ) -> Option<ExitCause> {
        if !self.exists(container).await {
            return Some(ExitCause::SandboxGone);
        }
        let options = EventsOptions {
            since: Some(unix_time(since)),
            until: Some(unix_time(Utc::now())),
            filters: Some(std::collections::HashMap::from([
                ("container".to_string(), vec![container.to_string()]),
                (
                    "event".to_string(),
                    ["oom", "kill", "die", "destroy"].map(String::from).to_vec(),
                ),
            ])),
        };
        let events = self
            .api()
            .await
            .ok()?
            .events(Some(options))
            .take(64)
            .collect::<Vec<_>>();
        let events = tokio::time::timeout(Duration::from_secs(5), events)
            .await
            .unwrap_or_default();
        let mut cause = None;
        for event in events.into_iter().flatten() {
            let action = event.action.unwrap_or_default();
            let signal = event
                .actor
                .and_then(|a| a.attributes)
                .and_then(|a| a.get("signal").cloned())
                .unwrap_or_default();
            match action.as_str() {
                "die" | "destroy" => return Some(ExitCause::SandboxGone),
                "kill" if signal == "9" || signal == "SIGKILL" => {
                    return Some(ExitCause::SandboxGone)
                }
                "oom" => cause = Some(ExitCause::OutOfMemory),
                _ => {}
            }
        }
        cause
    }

    async fn exists(&self, container: &str) -> bool {
        // An engine that cannot be asked cannot say the container is gone.
        let Ok(docker) = self.api().await else {
            return true;
        };
        match docker
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
        {
            Ok(_) => true,
            Err(e) => status_code(&e) != Some(404),
        }
    }

    /// `SandboxGone` when the sandbox went away under the command (which explains `err`), else
    /// `err` itself.
    async fn gone_or(
        &self,
        container: &str,
        since: chrono::DateTime<Utc>,
        err: anyhow::Error,
    ) -> Result<ExitCause> {
        match self.why_killed(container, since).await {
            Some(ExitCause::SandboxGone) => Ok(ExitCause::SandboxGone),
            _ => Err(err),
        }
    }

    /// A plain exec without token or kill handling, for our own helper commands. How it ended
    /// (`None` for the exit code when the engine did not say).
    pub(super) async fn exec_untracked(
        &self,
        container: &str,
        spec: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecEnd> {
        let options = CreateExecOptions {
            cmd: Some(spec.argv),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec_id = self
            .api()
            .await?
            .create_exec(container, options)
            .await
            .map_err(engine_error)?
            .id;
        if let StartExecResults::Attached { mut output, .. } = self
            .api()
            .await?
            .start_exec(&exec_id, None)
            .await
            .map_err(engine_error)?
        {
            let deadline = deadline_after(spec.timeout);
            if let Some(end) = pump_output(&mut output, sink, deadline, &spec.cancel).await? {
                return Ok(end);
            }
        }
        Ok(ExecEnd::Exited(self.exit_code(&exec_id).await?))
    }
}

fn unix_time(t: chrono::DateTime<Utc>) -> String {
    format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())
}

/// Copies output to the sink until the stream ends (`None`), the deadline passes, the token is
/// cancelled or the sink stops taking output. The deadline and the token are watched while a
/// write waits, so a stalled reader cannot hold a timeout off.
pub(super) async fn pump_output(
    output: &mut OutputStream,
    sink: &mut dyn OutputSink,
    deadline: Option<tokio::time::Instant>,
    cancel: &CancellationToken,
) -> Result<Option<ExecEnd>> {
    let copy = async {
        while let Some(item) = output.next().await {
            let chunk = item
                .map_err(engine_error)
                .context("reading the command's output")?;
            if forward(chunk, sink).await.is_err() {
                return Ok(Some(ExecEnd::OutputClosed));
            }
        }
        Ok(None)
    };
    let expired = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        () = cancel.cancelled() => Ok(Some(ExecEnd::Cancelled)),
        () = expired => Ok(Some(ExecEnd::TimedOut)),
        ended = copy => ended,
    }
}

/// Runs `kill` while reading what is left of `output` (see `kill_tree::kill_and_collect`).
pub(super) async fn kill_and_collect(
    output: &mut OutputStream,
    kill: impl std::future::Future<Output = KillReport>,
) -> (KillReport, Vec<LogOutput>) {
    kill_tree::kill_and_collect(output, kill).await
}

// For every lifetime of the boxed stream: the compiler asks for that inside `async_trait` futures.
impl<'a> kill_tree::Output
    for std::pin::Pin<
        Box<dyn FutureStream<Item = Result<LogOutput, bollard::errors::Error>> + Send + 'a>,
    >
{
    type Chunk = LogOutput;

    async fn next_chunk(&mut self) -> Option<LogOutput> {
        self.next().await.and_then(Result::ok)
    }

    fn size(chunk: &LogOutput) -> usize {
        chunk.as_ref().len()
    }
}

/// Hands what a killed command had left to the sink, without waiting long on a stalled reader.
pub(super) async fn deliver(rest: Vec<LogOutput>, sink: &mut dyn OutputSink) {
    let write = async {
        for chunk in rest {
            if forward(chunk, sink).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_AFTER_KILL, write).await;
}

async fn forward(chunk: LogOutput, sink: &mut dyn OutputSink) -> std::io::Result<()> {
    match chunk {
        LogOutput::StdOut { message } | LogOutput::Console { message } => {
            sink.write(Stream::Stdout, &message).await
        }
        LogOutput::StdErr { message } => sink.write(Stream::Stderr, &message).await,
        LogOutput::StdIn { .. } => Ok(()),
    }
}

/// Holds back stdout that starts with the engine's report of a command it could not start, so
/// the report goes to stderr (or becomes our own error) instead of passing as the command's
/// output.
struct StartFailureProbe<'a> {
    inner: &'a mut dyn OutputSink,
    seen_stdout: bool,
    held: Option<Vec<u8>>,
}

impl<'a> StartFailureProbe<'a> {
    fn new(inner: &'a mut dyn OutputSink) -> Self {
        StartFailureProbe {
            inner,
            seen_stdout: false,
            held: None,
        }
    }

    /// For an exec the engine could not start: the shell's exit code (127 not found, 126 not
    /// executable) with the reason on stderr, or an error for a missing working directory.
    /// `None` for a command that started.
    async fn start_failure(&mut self, code: i64, workdir: Option<&str>) -> Option<Result<i64>> {
        let held = self.held.take()?;
        let text = String::from_utf8_lossy(&held);
        if text.contains("chdir to cwd") {
            return Some(Err(
                Error::NoWorkdir(workdir.unwrap_or("?").to_string()).into()
            ));
        }
        let missing = text.contains("executable file not found")
            || text.contains("no such file or directory");
        // The reason goes where errors go; a reader that went away changes nothing now.
        let _ = self.inner.write(Stream::Stderr, &held).await;
        Some(Ok(if code == 126 && missing { 127 } else { code }))
    }
}

#[async_trait::async_trait]
impl OutputSink for StartFailureProbe<'_> {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        if stream == Stream::Stdout && !self.seen_stdout {
            self.seen_stdout = true;
            if data.starts_with(START_FAILURE) {
                self.held = Some(data.to_vec());
                return Ok(());
            }
        }
        if stream == Stream::Stdout {
            if let Some(held) = &mut self.held {
                if held.len() < 4096 {
                    held.extend_from_slice(data);
                }
                return Ok(());
            }
        }
        self.inner.write(stream, data).await
    }
}

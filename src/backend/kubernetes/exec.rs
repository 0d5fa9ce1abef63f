//! Running a command in a Pod through the exec subresource (`v5.channel.k8s.io`, else
//! `v4.channel.k8s.io`, as kube-rs offers them): its output streamed with back-pressure, its
//! stdin forwarded, its exit code read from the channel-3 status frame, and a timeout, a cancel
//! or a closed reader that kill the whole process tree through a second exec.
//!
//! The exec subresource takes an argv only: no environment, working directory or user. The
//! environment and working directory are set by a small `sh` wrapper in front of the command
//! (see [`wrap`]); the user is the container's, as on Docker where `ExecSpec` has none either.
//!
//! Stdin: only `v5.channel.k8s.io` can close a command's stdin (a `[255, 0]` frame). On `v4`,
//! kube-rs closes the whole WebSocket when our stdin ends, which loses the rest of the output
//! and the status frame. Our own commands that take stdin (file writes, archive extraction) know
//! its length and read it through `head -c N`, so they end without a close on either version;
//! an open-ended stdin (`ExecSpec::stdin`) is only reliable where the API server speaks `v5`
//! (Kubernetes 1.30 and later).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachedProcess;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, SimplexStream, WriteHalf};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::api::{api_error, attach_params, refused, STREAM_BUFFER};
use super::exec_status::{exec_end, ExecEnd as StatusEnd};
use super::pod::PodSandbox;
use crate::backend::deadline_after;
use crate::backend::kill_tree::{
    self, kill_tree_argv, parse_report, DRAIN_AFTER_KILL, KILL_BUDGET, TOKEN_VAR,
};
use crate::error::Error;
use crate::model::{
    random_hex, ExecEnd, ExecOutcome, ExecSpec, ExitCause, KillReport, OutputSink, Stream,
};

/// Once the status frame came (or the connection ended without one), how long we wait for
/// output already on its way: kube-rs closes its pipes only on a clean end.
const DRAIN_AFTER_STATUS: Duration = Duration::from_secs(1);
/// How long our own helper commands (`mkdir`, `stat`, `tar`) may take.
pub(super) const HELPER_TIMEOUT: Duration = Duration::from_secs(60);
/// The exit status of a process killed with `SIGKILL`: by us, the OOM killer, or a removal.
const SIGKILL_STATUS: i32 = 137;
/// What the wrapper prints on stderr, followed by the token, when the working directory is
/// missing; it then exits with `NO_WORKDIR_STATUS`.
const NO_WORKDIR_MARKER: &str = "enclave-no-workdir:";
const NO_WORKDIR_STATUS: i32 = 126;

/// Sets the environment and working directory, then execs the command. `$1`: the working
/// directory (empty: the container's own); `$2`: how many `KEY=VALUE` entries follow; then the
/// entries, then the command's argv. Every value travels as its own argument, never through
/// the script's text, so no quoting can break it.
const WRAPPER: &str = r#"w=$1
n=$2
shift 2
while [ "$n" -gt 0 ]; do
  export "$1"
  shift
  n=$((n-1))
done
if [ -n "$w" ]; then
  cd -- "$w" 2>/dev/null || { echo "enclave-no-workdir:$ENCLAVE_EXEC_TOKEN" >&2; exit 126; }
fi
exec "$@""#;

/// What feeds a command's stdin.
pub(super) enum Input {
    None,
    /// A stream of unknown length: its end closes the command's stdin (see the module's note
    /// on `v4`).
    Stream(Box<dyn AsyncRead + Send + Unpin>),
    /// Bytes the command reads exactly (`head -c N`): written, and stdin left open so no close
    /// is needed.
    Known(Bytes),
}

/// The argv that runs `argv` with `env` (plus the kill token) in `workdir`.
pub(super) fn wrap(
    argv: Vec<String>,
    env: &[String],
    workdir: Option<&str>,
    token: &str,
) -> Result<Vec<String>> {
    if argv.is_empty() {
        bail!("no command given");
    }
    for entry in env {
        check_env_entry(entry)?;
    }
    let mut wrapped = vec![
        "sh".to_string(),
        "-c".to_string(),
        WRAPPER.to_string(),
        "sh".to_string(),
        workdir.unwrap_or_default().to_string(),
        (env.len() + 1).to_string(),
        format!("{TOKEN_VAR}={token}"),
    ];
    wrapped.extend(env.iter().cloned());
    wrapped.extend(argv);
    Ok(wrapped)
}

/// The wrapper sets variables with `sh`'s `export`, which takes portable names only.
fn check_env_entry(entry: &str) -> Result<()> {
    let name = entry.split_once('=').map_or(entry, |(name, _)| name);
    let mut chars = name.chars();
    let portable = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if portable && entry.contains('=') {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "env `{}`: a Kubernetes sandbox sets variables through `sh`, which takes KEY=VALUE with \
         a KEY of letters, digits and `_` (not starting with a digit)",
        entry.escape_debug()
    ))
    .into())
}

/// A started exec: its two output pipes and its status, read together.
struct Attached {
    /// Kept alive: dropping it aborts kube-rs's WebSocket task.
    _process: AttachedProcess,
    output: Output,
    stdin: Option<JoinHandle<()>>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(task) = &self.stdin {
            task.abort();
        }
    }
}

type StatusFuture = Pin<Box<dyn Future<Output = Option<Status>> + Send>>;

/// stdout and stderr, read concurrently (kube-rs's task blocks on whichever pipe is full, so
/// waiting on one alone can deadlock), and the status that ends them.
pub(super) struct Output {
    stdout: Option<ReadHalf<SimplexStream>>,
    stderr: Option<ReadHalf<SimplexStream>>,
    status: Option<StatusFuture>,
    ended: Option<Option<Status>>,
    stdout_buf: Vec<u8>,
    stderr_buf: Vec<u8>,
}

impl Output {
    fn new(process: &mut AttachedProcess) -> Self {
        Output {
            stdout: process.stdout(),
            stderr: process.stderr(),
            status: process
                .take_status()
                .map(|status| Box::pin(status) as StatusFuture),
            ended: None,
            stdout_buf: vec![0; STREAM_BUFFER],
            stderr_buf: vec![0; STREAM_BUFFER],
        }
    }

    /// The next chunk of output; `None` once both streams ended. kube-rs closes its pipes only
    /// on a clean end: after a dropped connection, what was buffered is read and then we stop.
    pub(super) async fn next(&mut self) -> Option<std::io::Result<(Stream, Bytes)>> {
        loop {
            if self.stdout.is_none() && self.stderr.is_none() {
                return None;
            }
            let ended = self.ended.is_some();
            tokio::select! {
                read = read_some(&mut self.stdout, &mut self.stdout_buf) => match read {
                    Ok(Some(data)) => return Some(Ok((Stream::Stdout, data))),
                    Ok(None) => self.stdout = None,
                    Err(e) => return Some(Err(e)),
                },
                read = read_some(&mut self.stderr, &mut self.stderr_buf) => match read {
                    Ok(Some(data)) => return Some(Ok((Stream::Stderr, data))),
                    Ok(None) => self.stderr = None,
                    Err(e) => return Some(Err(e)),
                },
                status = wait_status(&mut self.status), if !ended => {
                    self.ended = Some(status);
                    self.status = None;
                }
                () = tokio::time::sleep(DRAIN_AFTER_STATUS), if ended => {
                    self.stdout = None;
                    self.stderr = None;
                }
            }
        }
    }

    /// The status frame, once the output ended; `None` when the connection ended without one.
    async fn status(&mut self) -> Option<Status> {
        if let Some(ended) = self.ended.take() {
            return ended;
        }
        let status = self.status.take()?;
        tokio::time::timeout(DRAIN_AFTER_KILL, status)
            .await
            .ok()
            .flatten()
    }
}

/// Reads what is there from one pipe; `Ok(None)` at its end. Pends for ever on a pipe already
/// ended, so `select!` waits on the other.
async fn read_some(
    pipe: &mut Option<ReadHalf<SimplexStream>>,
    buf: &mut [u8],
) -> std::io::Result<Option<Bytes>> {
    let Some(reader) = pipe else {
        return std::future::pending().await;
    };
    let n = reader.read(buf).await?;
    Ok((n > 0).then(|| Bytes::copy_from_slice(&buf[..n])))
}

async fn wait_status(status: &mut Option<StatusFuture>) -> Option<Status> {
    match status {
        Some(status) => status.await,
        None => std::future::pending().await,
    }
}

/// The status frame as the JSON `exec_status` reads.
fn status_json(status: &Status) -> Vec<u8> {
    serde_json::to_vec(status).unwrap_or_default()
}

impl PodSandbox {
    /// Runs `spec` in the Pod as `Backend::exec` does, its stdin an open-ended stream.
    pub(super) async fn run_spec(
        &self,
        mut spec: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome> {
        let input = spec.stdin.take().map_or(Input::None, Input::Stream);
        self.run(spec, input, sink).await
    }

    /// Runs `spec` (its `stdin` replaced by `input`) in the Pod, streaming output to `sink`.
    pub(super) async fn run(
        &self,
        spec: ExecSpec,
        input: Input,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome> {
        let token = random_hex();
        let argv = wrap(spec.argv, &spec.env, spec.workdir.as_deref(), &token)?;
        let started = Instant::now();
        let begin = self.attach(argv, input);
        let mut attached = tokio::select! {
            begun = begin => begun?,
            () = spec.cancel.cancelled() => {
                // The command may have started as the API server answered: kill what carries
                // its token, which is nothing if it did not.
                let mut outcome = ExecOutcome::new(ExecEnd::Cancelled, started.elapsed());
                outcome.kill = Some(self.kill_tree(&token).await);
                return Ok(outcome);
            }
        };
        let mut probe = WorkdirProbe::new(sink, &token);
        let stopped = pump_output(
            &mut attached.output,
            &mut probe,
            deadline_after(spec.timeout),
            &spec.cancel,
        )
        .await;
        let mut outcome = ExecOutcome::new(ExecEnd::Exited(None), started.elapsed());
        match stopped {
            Ok(None) => {
                let status = attached.output.status().await;
                if status.is_none() {
                    // The connection ended without the command's end: on a real cluster the
                    // command goes on running, unread. Ours to stop, as on any other failure.
                    self.kill_tree(&token).await;
                }
                probe.finish().await;
                let code = self.exit_code(status.as_ref()).await?;
                if probe.saw_no_workdir && code == Some(NO_WORKDIR_STATUS) {
                    return Err(Error::NoWorkdir(spec.workdir.unwrap_or_default()).into());
                }
                outcome.end = ExecEnd::Exited(code.map(i64::from));
                if code.is_none() || code == Some(SIGKILL_STATUS) {
                    outcome.cause = self.why_killed().await;
                }
            }
            Ok(Some(end)) => {
                let (kill, rest) =
                    kill_and_collect(&mut attached.output, self.kill_tree(&token)).await;
                outcome.kill = Some(kill);
                if end != ExecEnd::OutputClosed {
                    deliver(rest, probe.inner).await;
                }
                outcome.end = end;
            }
            Err(e) => {
                self.kill_tree(&token).await;
                match self.why_killed().await {
                    Some(ExitCause::SandboxGone) => outcome.cause = Some(ExitCause::SandboxGone),
                    _ => return Err(e),
                }
            }
        }
        outcome.duration = started.elapsed();
        Ok(outcome)
    }

    /// The command's exit code from its status frame. `None` only when the Pod went away under
    /// it (the caller then says so); any other failure, a missing frame included, is an error,
    /// never a success.
    async fn exit_code(&self, status: Option<&Status>) -> Result<Option<i32>> {
        let json = status.map(status_json);
        match exec_end(json.as_deref()) {
            StatusEnd::Exited(code) => Ok(Some(code)),
            StatusEnd::Failed(message) => {
                if self.why_killed().await == Some(ExitCause::SandboxGone) {
                    return Ok(None);
                }
                if status.is_some() {
                    Err(refused(message))
                } else {
                    bail!("the command in Pod `{}`: {message}", self.pod)
                }
            }
        }
    }

    /// Starts `argv` in the sandbox container with stdout and stderr attached, and stdin when
    /// there is input.
    async fn attach(&self, argv: Vec<String>, input: Input) -> Result<Attached> {
        let params = attach_params(!matches!(input, Input::None));
        let mut process = self
            .pods()
            .exec(&self.pod, argv, &params)
            .await
            .map_err(|e| api_error(e, &self.pod))?;
        let stdin = feed_stdin(&mut process, input);
        let output = Output::new(&mut process);
        Ok(Attached {
            _process: process,
            output,
            stdin,
        })
    }

    /// Kills every process of the command marked with `token`; bounded in time.
    async fn kill_tree(&self, token: &str) -> KillReport {
        let run = self.run_plain(kill_tree_argv(token), 4096);
        match tokio::time::timeout(KILL_BUDGET, run).await {
            Ok(Ok((Some(0), stdout))) => parse_report(&String::from_utf8_lossy(&stdout)),
            _ => KillReport::Unverified,
        }
    }

    /// A plain exec without wrapper, token or kill handling, for our own helper commands: its
    /// exit code (`None` when unknown) and up to `limit` bytes of its stdout.
    async fn run_plain(&self, argv: Vec<String>, limit: usize) -> Result<(Option<i32>, Vec<u8>)> {
        let mut attached = self.attach(argv, Input::None).await?;
        let mut stdout = Vec::new();
        while let Some(chunk) = attached.output.next().await {
            if let (Stream::Stdout, data) = chunk? {
                let room = limit.saturating_sub(stdout.len());
                stdout.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
        let status = attached.output.status().await;
        let json = status.as_ref().map(status_json);
        let code = match exec_end(json.as_deref()) {
            StatusEnd::Exited(code) => Some(code),
            StatusEnd::Failed(_) => None,
        };
        Ok((code, stdout))
    }

    /// For a command that died without us: whether its Pod went away (deleted, or being
    /// deleted) meanwhile. An API server that cannot be asked cannot say it is gone.
    pub(super) async fn why_killed(&self) -> Option<ExitCause> {
        match self.pods().get_opt(&self.pod).await {
            Ok(None) => Some(ExitCause::SandboxGone),
            Ok(Some(pod)) if pod.metadata.deletion_timestamp.is_some() => {
                Some(ExitCause::SandboxGone)
            }
            Ok(Some(pod)) if pod_ended(&pod) => Some(ExitCause::SandboxGone),
            _ => None,
        }
    }
}

/// A Pod whose phase says its containers ended (they never restart: `restartPolicy: Never`).
fn pod_ended(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// Copies `input` into the command's stdin in the background.
fn feed_stdin(process: &mut AttachedProcess, input: Input) -> Option<JoinHandle<()>> {
    let mut writer = process.stdin()?;
    match input {
        Input::None => None,
        Input::Stream(mut reader) => Some(tokio::spawn(async move {
            // The command may stop reading or end first; neither is our error. Shutting down
            // is what sends the close (v5), as dropping alone would not.
            let _ = tokio::io::copy(&mut reader, &mut writer).await;
            let _ = writer.shutdown().await;
        })),
        Input::Known(bytes) => Some(tokio::spawn(async move {
            let _ = writer.write_all(&bytes).await;
            let _ = writer.flush().await;
            // Held open until the command ends (this task is aborted then): on v4 a close
            // would end the whole exec.
            hold(writer).await;
        })),
    }
}

async fn hold(_writer: WriteHalf<SimplexStream>) {
    std::future::pending::<()>().await;
}

/// Copies output to the sink until it ends (`None`), the deadline passes, the token is
/// cancelled or the sink stops taking output. The deadline and the token are watched while a
/// write waits, so a stalled reader cannot hold a timeout off.
async fn pump_output(
    output: &mut Output,
    sink: &mut dyn OutputSink,
    deadline: Option<tokio::time::Instant>,
    cancel: &CancellationToken,
) -> Result<Option<ExecEnd>> {
    let copy = async {
        while let Some(chunk) = output.next().await {
            let (stream, data) = chunk?;
            if sink.write(stream, &data).await.is_err() {
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
async fn kill_and_collect(
    output: &mut Output,
    kill: impl Future<Output = KillReport>,
) -> (KillReport, Vec<(Stream, Bytes)>) {
    kill_tree::kill_and_collect(output, kill).await
}

impl kill_tree::Output for Output {
    type Chunk = (Stream, Bytes);

    async fn next_chunk(&mut self) -> Option<Self::Chunk> {
        self.next().await.and_then(Result::ok)
    }

    fn size(chunk: &Self::Chunk) -> usize {
        chunk.1.len()
    }
}

/// Hands what a killed command had left to the sink, without waiting long on a stalled reader.
async fn deliver(rest: Vec<(Stream, Bytes)>, sink: &mut dyn OutputSink) {
    let write = async {
        for (stream, data) in rest {
            if sink.write(stream, &data).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_AFTER_KILL, write).await;
}

/// Holds back the start of stderr while it could be the wrapper's report of a missing working
/// directory (which carries the token, so a command cannot pass for it by accident), so that
/// report becomes `Error::NoWorkdir` instead of output.
struct WorkdirProbe<'a> {
    inner: &'a mut dyn OutputSink,
    marker: Vec<u8>,
    held: Vec<u8>,
    decided: bool,
    saw_no_workdir: bool,
}

impl<'a> WorkdirProbe<'a> {
    fn new(inner: &'a mut dyn OutputSink, token: &str) -> Self {
        WorkdirProbe {
            inner,
            marker: format!("{NO_WORKDIR_MARKER}{token}").into_bytes(),
            held: Vec::new(),
            decided: false,
            saw_no_workdir: false,
        }
    }

    /// Passes on stderr still held (a short output that looked like the marker's start).
    async fn finish(&mut self) {
        if !self.decided && !self.held.is_empty() {
            self.decided = true;
            let held = std::mem::take(&mut self.held);
            let _ = self.inner.write(Stream::Stderr, &held).await;
        }
    }
}

#[async_trait::async_trait]
impl OutputSink for WorkdirProbe<'_> {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        if stream == Stream::Stdout || self.decided {
            if self.saw_no_workdir && stream == Stream::Stderr {
                return Ok(());
            }
            return self.inner.write(stream, data).await;
        }
        self.held.extend_from_slice(data);
        let n = self.held.len().min(self.marker.len());
        if self.held[..n] != self.marker[..n] {
            self.decided = true;
            let held = std::mem::take(&mut self.held);
            return self.inner.write(Stream::Stderr, &held).await;
        }
        if self.held.len() >= self.marker.len() {
            self.decided = true;
            self.saw_no_workdir = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Capture;

    /// Runs the wrapped argv with the local `sh`, as the container would.
    fn run_locally(argv: &[String]) -> std::process::Output {
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    }

    #[test]
    fn the_wrapper_passes_any_argv_env_and_workdir_through_unchanged() {
        let odd = [
            "a b",
            "\"q\"",
            "'s'",
            "$(touch /tmp/enclave-pwned)",
            "`x`",
            "*",
            "-n",
            "--",
            "",
            "é\n\t\\",
        ];
        let mut argv = vec!["printf".to_string(), "[%s]".to_string()];
        argv.extend(odd.iter().map(ToString::to_string));
        let env = vec!["ODD=$HOME 'x' \"y\"\nz".to_string(), "EMPTY=".to_string()];
        let out = run_locally(&wrap(argv, &env, Some("/"), "tok").unwrap());
        let expected: String = odd.iter().map(|a| format!("[{a}]")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
        assert!(!std::path::Path::new("/tmp/enclave-pwned").exists());

        let show = vec![
            "sh".into(),
            "-c".into(),
            "printf '%s|%s|%s|%s' \"$ODD\" \"${EMPTY-unset}\" \"$ENCLAVE_EXEC_TOKEN\" \"$PWD\""
                .into(),
        ];
        let out = run_locally(&wrap(show, &env, Some("/usr/bin"), "t0k").unwrap());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "$HOME 'x' \"y\"\nz||t0k|/usr/bin"
        );
    }

    #[test]
    fn the_wrapper_reports_a_missing_workdir_and_exits_as_the_shell_does() {
        let out = run_locally(&wrap(vec!["true".into()], &[], Some("/nope"), "tok").unwrap());
        assert_eq!(out.status.code(), Some(NO_WORKDIR_STATUS));
        assert_eq!(out.stderr, b"enclave-no-workdir:tok\n");
        let out = run_locally(&wrap(vec!["no-such-command".into()], &[], None, "t").unwrap());
        assert_eq!(out.status.code(), Some(127));
        let out = run_locally(&wrap(vec!["/etc/passwd".into()], &[], None, "t").unwrap());
        assert_eq!(out.status.code(), Some(126));
        let out = run_locally(
            &wrap(
                vec!["sh".into(), "-c".into(), "exit 7".into()],
                &[],
                None,
                "t",
            )
            .unwrap(),
        );
        assert_eq!(out.status.code(), Some(7));
    }

    #[test]
    fn names_sh_cannot_export_and_empty_commands_are_refused() {
        assert!(wrap(vec![], &[], None, "t").is_err());
        for bad in ["A-B=1", "1A=x", "=x", "NOEQUALS", "A B=1"] {
            let err = wrap(vec!["true".into()], &[bad.to_string()], None, "t").unwrap_err();
            assert!(
                matches!(crate::error::find(&err), Some(Error::Usage(_))),
                "{bad}"
            );
        }
        assert!(wrap(vec!["true".into()], &["_a1=x=y".into()], None, "t").is_ok());
    }

    #[tokio::test]
    async fn the_probe_swallows_the_marker_even_split_and_passes_anything_else() {
        let mut capture = Capture::new(4096);
        let mut probe = WorkdirProbe::new(&mut capture, "tok");
        probe.write(Stream::Stderr, b"enclave-no-").await.unwrap();
        probe.write(Stream::Stderr, b"workdir:tok\n").await.unwrap();
        probe.finish().await;
        assert!(probe.saw_no_workdir);
        assert!(capture.stderr.into_text().0.is_empty());

        let mut capture = Capture::new(4096);
        let mut probe = WorkdirProbe::new(&mut capture, "tok");
        probe.write(Stream::Stderr, b"encl").await.unwrap();
        probe.write(Stream::Stdout, b"out").await.unwrap();
        probe.write(Stream::Stderr, b"ave is fine").await.unwrap();
        probe.write(Stream::Stderr, b"!").await.unwrap();
        probe.finish().await;
        assert!(!probe.saw_no_workdir);
        assert_eq!(capture.stderr.into_text().0, "enclave is fine!");
        assert_eq!(capture.stdout.into_text().0, "out");

        // A short stderr that is only the marker's start is still output.
        let mut capture = Capture::new(4096);
        let mut probe = WorkdirProbe::new(&mut capture, "tok");
        probe.write(Stream::Stderr, b"enc").await.unwrap();
        probe.finish().await;
        assert_eq!(capture.stderr.into_text().0, "enc");
    }
}

//! Running a command in a sandbox: streamed, demultiplexed output, forwarded stdin, and a
//! timeout that kills the whole process tree.
//!
//! Every exec carries a random token in its environment. Children inherit it, whatever process
//! group or session they move to (`setsid`, daemons), so on timeout a small `sh` script run in
//! the container kills every process whose environment holds the token. That needs only `sh`
//! and `grep` in the image, not GNU `timeout`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::{Stream, StreamExt};
use rand::Rng;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{engine_error, DockerBackend};

const TOKEN_VAR: &str = "ENCLAVE_EXEC_TOKEN";
/// After a kill, how long we keep reading the remaining output before giving up on the stream.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(3);
/// Bound on the kill script itself, so a wedged engine cannot hang us.
const KILL_BUDGET: Duration = Duration::from_secs(10);

/// Freezes every process carrying the token (repeating until no new one appears, so nothing can
/// fork or react to a child's death), then kills them all. Killing without freezing first lets
/// a shell whose child was killed run its next command.
const KILL_TREE_SCRIPT: &str = r#"tok="ENCLAVE_EXEC_TOKEN=$1"
scan() {
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    grep -qF "$tok" "$d/environ" 2>/dev/null && printf '%s ' "$p"
  done
}
prev=
n=0
while [ $n -lt 50 ]; do
  cur=$(scan)
  [ -z "$cur" ] && exit 0
  kill -STOP $cur 2>/dev/null
  [ "$cur" = "$prev" ] && break
  prev=$cur
  n=$((n+1))
done
n=0
while [ -n "$cur" ] && [ $n -lt 20 ]; do
  kill -KILL $cur 2>/dev/null
  cur=$(scan)
  n=$((n+1))
done"#;

/// Where the command's output goes, chunk by chunk, as it arrives.
pub trait OutputSink: Send {
    fn stdout(&mut self, data: &[u8]);
    fn stderr(&mut self, data: &[u8]);
}

/// One command to run in a container.
pub struct ExecSpec {
    pub argv: Vec<String>,
    /// Extra `KEY=VALUE` entries.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub timeout: Option<Duration>,
    /// Cancelling kills the command's process tree (Ctrl-C, a client that went away).
    pub cancel: CancellationToken,
}

impl ExecSpec {
    pub fn new(argv: Vec<String>) -> Self {
        ExecSpec {
            argv,
            env: Vec::new(),
            workdir: None,
            stdin: None,
            timeout: None,
            cancel: CancellationToken::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecEnd {
    /// The command ended by itself with this status (`None`: the engine did not say).
    Exited(Option<i64>),
    TimedOut,
    Cancelled,
}

#[derive(Debug, Clone, Copy)]
pub struct ExecOutcome {
    pub end: ExecEnd,
    pub duration: Duration,
}

impl DockerBackend {
    /// Runs `spec` in the container, streaming output to `sink`.
    pub async fn exec(
        &self,
        container: &str,
        spec: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome> {
        if spec.argv.is_empty() {
            bail!("no command given");
        }
        let token = new_token();
        let mut env = spec.env;
        env.push(format!("{TOKEN_VAR}={token}"));
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
        let exec_id = self
            .docker
            .create_exec(container, options)
            .await
            .map_err(engine_error)
            .context("creating the exec")?
            .id;
        let started = Instant::now();
        let start = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: Some(64 * 1024),
        };
        let StartExecResults::Attached { mut output, input } = self
            .docker
            .start_exec(&exec_id, Some(start))
            .await
            .map_err(engine_error)
            .context("starting the exec")?
        else {
            bail!("the engine started the exec detached");
        };
        let stdin_pump = spec.stdin.map(|mut reader| {
            let mut input = input;
            tokio::spawn(async move {
                // Shutting the write half down is what delivers EOF to the command.
                let _ = tokio::io::copy(&mut reader, &mut input).await;
                let _ = input.shutdown().await;
            })
        });

        let deadline = deadline_after(spec.timeout);
        let mut probe = StartFailureProbe::new(sink);
        let stopped = pump_output(&mut output, &mut probe, deadline, &spec.cancel).await;
        let sink = probe.inner;
        let end = match stopped {
            Ok(None) => {
                let code = self.exit_code(&exec_id).await?;
                ExecEnd::Exited(code.map(|c| probe.head.adjust(c)))
            }
            Ok(Some(end)) => {
                self.kill_tree(container, &token).await;
                drain(&mut output, sink).await;
                end
            }
            Err(e) => {
                self.kill_tree(container, &token).await;
                return Err(e);
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

    async fn exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        // The stream can end a moment before the engine records the exit code.
        for _ in 0..50 {
            let inspect = self
                .docker
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

    /// Kills every process in the container that carries `token`; best effort, bounded in time.
    async fn kill_tree(&self, container: &str, token: &str) {
        let mut ignore = Discard;
        let spec = ExecSpec {
            timeout: None,
            ..ExecSpec::new(vec![
                "sh".into(),
                "-c".into(),
                KILL_TREE_SCRIPT.into(),
                "sh".into(),
                token.into(),
            ])
        };
        let run = self.exec_untracked(container, spec, &mut ignore);
        let _ = tokio::time::timeout(KILL_BUDGET, run).await;
    }

    /// A plain exec without token or kill handling, for our own helper commands.
    async fn exec_untracked(
        &self,
        container: &str,
        spec: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<()> {
        let options = CreateExecOptions {
            cmd: Some(spec.argv),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec_id = self
            .docker
            .create_exec(container, options)
            .await
            .map_err(engine_error)?
            .id;
        if let StartExecResults::Attached { mut output, .. } = self
            .docker
            .start_exec(&exec_id, None)
            .await
            .map_err(engine_error)?
        {
            let never = CancellationToken::new();
            pump_output(&mut output, sink, None, &never).await?;
        }
        Ok(())
    }
}

pub(super) type OutputStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// When a timeout expires; one too far away to represent is no timeout at all.
pub(super) fn deadline_after(timeout: Option<Duration>) -> Option<tokio::time::Instant> {
    timeout.and_then(|t| tokio::time::Instant::now().checked_add(t))
}

/// Copies output to the sink until the stream ends (`None`), the deadline passes or the token is
/// cancelled.
pub(super) async fn pump_output(
    output: &mut OutputStream,
    sink: &mut dyn OutputSink,
    deadline: Option<tokio::time::Instant>,
    cancel: &CancellationToken,
) -> Result<Option<ExecEnd>> {
    let expired = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    loop {
        tokio::select! {
            biased;
            item = output.next() => match item {
                Some(Ok(chunk)) => forward(chunk, sink),
                Some(Err(e)) => return Err(engine_error(e)).context("reading the command's output"),
                None => return Ok(None),
            },
            () = &mut expired => return Ok(Some(ExecEnd::TimedOut)),
            () = cancel.cancelled() => return Ok(Some(ExecEnd::Cancelled)),
        }
    }
}

/// Keeps what the killed command had already written, without waiting on a wedged stream.
pub(super) async fn drain(output: &mut OutputStream, sink: &mut dyn OutputSink) {
    let rest = async {
        while let Some(Ok(chunk)) = output.next().await {
            forward(chunk, sink);
        }
    };
    let _ = tokio::time::timeout(DRAIN_AFTER_KILL, rest).await;
}

fn forward(chunk: LogOutput, sink: &mut dyn OutputSink) {
    match chunk {
        LogOutput::StdOut { message } | LogOutput::Console { message } => sink.stdout(&message),
        LogOutput::StdErr { message } => sink.stderr(&message),
        LogOutput::StdIn { .. } => {}
    }
}

/// Remembers the start of stdout, where the engine reports a command it could not start.
struct StartFailureProbe<'a> {
    inner: &'a mut dyn OutputSink,
    head: Head,
}

impl<'a> StartFailureProbe<'a> {
    fn new(inner: &'a mut dyn OutputSink) -> Self {
        StartFailureProbe {
            inner,
            head: Head(Vec::new()),
        }
    }
}

impl OutputSink for StartFailureProbe<'_> {
    fn stdout(&mut self, data: &[u8]) {
        let room = 512usize.saturating_sub(self.head.0.len());
        self.head.0.extend_from_slice(&data[..data.len().min(room)]);
        self.inner.stdout(data);
    }

    fn stderr(&mut self, data: &[u8]) {
        self.inner.stderr(data);
    }
}

struct Head(Vec<u8>);

impl Head {
    /// The engine reports every failed start as 126; a missing program is 127, as in a shell.
    fn adjust(&self, code: i64) -> i64 {
        let text = String::from_utf8_lossy(&self.0);
        let missing = text.starts_with("OCI runtime exec failed")
            && (text.contains("executable file not found")
                || text.contains("no such file or directory"));
        if code == 126 && missing {
            127
        } else {
            code
        }
    }
}

struct Discard;

impl OutputSink for Discard {
    fn stdout(&mut self, _: &[u8]) {}
    fn stderr(&mut self, _: &[u8]) {}
}

fn new_token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

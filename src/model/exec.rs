//! The vocabulary of running a command in a sandbox: what to run, where its output goes, and how
//! it ended. Every backend and every manager speaks it, so none of them needs another's types.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream as FutureStream;
use tokio::io::AsyncRead;
use tokio_util::sync::CancellationToken;

/// One command to run in a sandbox.
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

/// One `KEY=VALUE` environment entry, checked as every caller (the CLI, the server) checks it:
/// the key is not empty and holds no whitespace, and nothing holds a NUL byte (the engine would
/// refuse it later, as an engine error rather than a mistake to fix).
pub fn parse_env_entry(entry: &str) -> Result<(&str, &str), String> {
    let bad = || format!("env `{}`: expected KEY=VALUE", entry.escape_debug());
    let (key, value) = entry.split_once('=').ok_or_else(bad)?;
    if key.is_empty() || key.contains(char::is_whitespace) || entry.contains('\0') {
        return Err(bad());
    }
    Ok((key, value))
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecEnd {
    /// The command ended by itself with this status (`None`: the backend did not say).
    Exited(Option<i64>),
    /// Its timeout expired; it was killed.
    TimedOut,
    /// It was cancelled; it was killed.
    Cancelled,
    /// Whoever read its output went away (a closed pipe); it was killed, as a pipeline's
    /// writer is by `SIGPIPE`.
    OutputClosed,
}

impl ExecEnd {
    /// Ended by us rather than by itself.
    pub fn was_killed(self) -> bool {
        !matches!(self, ExecEnd::Exited(_))
    }
}

/// What killing a command's process tree achieved, as far as it could be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReport {
    /// `killed` processes were found and killed; a last look found none of them left.
    Verified { killed: u32 },
    /// `left` processes were still there after the kill (a fork bomb at the pids limit, say).
    Survivors { killed: u32, left: u32 },
    /// The kill could not be run or checked (the sandbox lacks the tools it needs, or is out
    /// of process slots); what the command started may still run.
    Unverified,
}

/// Why a command's end deserves a word beyond its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCause {
    /// The kernel killed a process because the sandbox hit its memory limit.
    OutOfMemory,
    /// The sandbox itself was removed (or stopped) while the command ran.
    SandboxGone,
}

#[derive(Debug, Clone, Copy)]
pub struct ExecOutcome {
    pub end: ExecEnd,
    pub duration: Duration,
    /// Set when we killed the command: what the kill achieved.
    pub kill: Option<KillReport>,
    /// Set when the command died of something outside it.
    pub cause: Option<ExitCause>,
}

impl ExecOutcome {
    pub fn new(end: ExecEnd, duration: Duration) -> Self {
        ExecOutcome {
            end,
            duration,
            kill: None,
            cause: None,
        }
    }
}

/// Which of a command's output streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Where a command's output goes, chunk by chunk, as it arrives. Writing may wait (a slow
/// reader slows the command down) and may fail (a reader that went away stops the command).
#[async_trait]
pub trait OutputSink: Send {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()>;
}

/// Drops everything.
pub struct Discard;

#[async_trait]
impl OutputSink for Discard {
    async fn write(&mut self, _: Stream, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// Receives image pull progress; `output/` renders it (or not, when stderr is no terminal).
pub trait PullObserver: Send + Sync {
    fn started(&self, image: &str);
    /// Bytes done and total of one layer.
    fn layer(&self, layer: &str, current: u64, total: u64);
    fn finished(&self);
    /// One line of an image build's progress (`Step 2/5 : RUN ...`), for images enclave builds
    /// itself (the notebook image).
    fn build_step(&self, _image: &str, _line: &str) {}
}

/// Ignores pull progress.
pub struct NoProgress;

impl PullObserver for NoProgress {
    fn started(&self, _: &str) {}
    fn layer(&self, _: &str, _: u64, _: u64) {}
    fn finished(&self) {}
}

/// A tar archive, streamed as it is read (`cp` out of a sandbox, a server's download).
pub type ArchiveStream = Pin<Box<dyn FutureStream<Item = anyhow::Result<Bytes>> + Send>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_entries_are_key_equals_value_with_a_real_key() {
        assert_eq!(parse_env_entry("A=1"), Ok(("A", "1")));
        assert_eq!(parse_env_entry("A="), Ok(("A", "")));
        assert_eq!(parse_env_entry("A=b=c"), Ok(("A", "b=c")));
        for bad in ["A", "=x", "=", "A B=1", " A=1", "A=x\0y", ""] {
            let err = parse_env_entry(bad).unwrap_err();
            assert!(err.contains("expected KEY=VALUE"), "{bad:?}: {err}");
        }
    }
}

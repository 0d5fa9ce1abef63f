//! How commands and files reach a sandbox: the `Backend` trait, and its implementations.
//!
//! Tools and managers are written against `Backend` only. Docker (exec and the archive API) and
//! the in-sandbox agent (`agent/`, over Docker for what it cannot do) implement it; a Kubernetes
//! backend will next.
//! Each implementation keeps its engine's words (container states, archive modes, CLI hints)
//! to itself and speaks the domain types of `model/`.

pub(crate) mod agent;
pub(crate) mod docker;
pub(crate) mod kill_tree;
pub(crate) mod kubernetes;

use anyhow::Result;
use async_trait::async_trait;
use bytes::Bytes;

use crate::model::{ArchiveStream, ExecOutcome, ExecSpec, OutputSink};

pub use docker::DockerEngine;

/// When a command's timeout expires; one too far away to represent is no timeout at all.
pub(crate) fn deadline_after(timeout: Option<std::time::Duration>) -> Option<tokio::time::Instant> {
    timeout.and_then(|t| tokio::time::Instant::now().checked_add(t))
}

/// What a path in a sandbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    /// A device, pipe or socket.
    Other,
}

/// What a backend reports about a path (`lstat`: a symlink is reported as itself).
#[derive(Debug, Clone)]
pub struct FileStat {
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits, `0o7777` at most.
    pub mode: u32,
    /// Where a symlink leads (as written in the link); empty otherwise.
    pub link_target: String,
}

/// One entry to write into a directory; paths are relative to it.
#[derive(Debug, Clone)]
pub enum NewEntry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        content: Vec<u8>,
        mode: u32,
    },
}

/// The operations tools and managers need from one sandbox.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Runs a command, streaming its output into `sink`. Its timeout, its cancel token and a
    /// sink that stops taking output each kill the command and everything it started.
    async fn exec(&self, spec: ExecSpec, sink: &mut dyn OutputSink) -> Result<ExecOutcome>;

    /// Runs Python `code` in a fresh interpreter state (`interpreter`, else `python3`, else
    /// `python`), as `python FILE` would, with `spec`'s env, timeout and cancel token (its argv
    /// and stdin are not used). `None` when this backend has no faster way than the caller's own
    /// runner over `exec` (which then runs it).
    async fn run_python(
        &self,
        _code: &str,
        _interpreter: Option<&str>,
        _spec: ExecSpec,
        _sink: &mut dyn OutputSink,
    ) -> Result<Option<ExecOutcome>> {
        Ok(None)
    }

    /// What is at `path` (a final symlink not followed); `None` when nothing is.
    async fn stat(&self, path: &str) -> Result<Option<FileStat>>;

    /// The content of the regular file at `path`; `None` when it is larger than `max_bytes`.
    async fn read_file(&self, path: &str, max_bytes: u64) -> Result<Option<Vec<u8>>>;

    /// Writes `entries` into the existing directory `dir`, owned by the sandbox's user. An entry
    /// that would replace a directory with a file, or the other way round, is an error.
    async fn put(&self, dir: &str, entries: Vec<NewEntry>) -> Result<()>;

    /// Creates `dir` and any missing parents, as the sandbox's user.
    async fn make_dirs(&self, dir: &str) -> Result<()>;

    /// Extracts the tar archive `tar` into `dir`, creating `dir` first (`enclave cp`, the server's
    /// archive upload). Existing files are overwritten, as `docker cp` does.
    async fn put_archive(&self, dir: &str, tar: Bytes) -> Result<()>;

    /// `path` (a file or a whole directory) as a tar archive whose single top entry is its
    /// base name, as `docker cp` produces; `None` when nothing is at `path`.
    async fn get_archive(&self, path: &str) -> Result<Option<ArchiveStream>>;

    /// Stops the sandbox's processes and leaves it stopped (not removed).
    async fn stop(&self) -> Result<()>;

    /// Kills the sandbox at once and removes it; `false` when it was already gone.
    async fn remove(&self) -> Result<bool>;
}

//! Files in a Pod. The API server has no archive API (Docker's `docker cp`), so files travel
//! through the exec subresource to POSIX tools in the container: `stat`, `readlink`, `head`,
//! `mkdir` and GNU or BusyBox `tar` (Debian's minbase has them all). Paths are passed as
//! arguments, never inside a script's text. File contents we send have a known length and are
//! read with `head -c N`, so no stdin close is needed (which `v4.channel.k8s.io` cannot send).
//!
//! Relative paths are taken from `/`, as `docker cp` takes them.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::api::sandbox_id;
use super::exec::{Input, HELPER_TIMEOUT};
use super::pod::PodSandbox;
use crate::backend::docker::tar_of;
use crate::backend::{FileKind, FileStat, NewEntry};
use crate::error::Error;
use crate::model::{ArchiveStream, ExecEnd, ExecSpec, OutputSink, Stream};

/// The status our scripts exit with when nothing is at the path.
const MISSING: i64 = 40;
/// How much of a helper's stderr we keep for its error message.
const STDERR_CAP: usize = 4096;

/// Prints `MODE_HEX SIZE`, and for a symlink a second line with its target; exits `MISSING`
/// when nothing is at `$1`. `stat` without `-L` is `lstat`: a symlink is reported as itself.
const STAT_SCRIPT: &str = r#"p=$1
[ -e "$p" ] || [ -L "$p" ] || exit 40
LC_ALL=C stat -c '%f %s' -- "$p" || exit 1
if [ -L "$p" ]; then readlink -- "$p" || exit 1; fi"#;

/// Prints the first `$2` bytes of the file `$1`.
const READ_SCRIPT: &str = r#"p=$1
[ -e "$p" ] || exit 40
if [ -d "$p" ]; then echo "$p: is a directory" >&2; exit 1; fi
exec head -c "$2" -- "$p""#;

/// `$1`: the directory; `$2`: the archive's length; then pairs of `d`/`f` and a path. Refuses to
/// replace a directory with a file or the other way round, then extracts the archive from
/// stdin as the container's user.
const PUT_SCRIPT: &str = r#"cd -- "$1" || exit 1
n=$2
shift 2
while [ $# -gt 0 ]; do
  k=$1
  p=$2
  shift 2
  if [ "$k" = d ]; then
    if [ -L "$p" ] || { [ -e "$p" ] && [ ! -d "$p" ]; }; then
      echo "cannot replace the file \`$p' with a directory" >&2
      exit 1
    fi
  elif [ -d "$p" ] && [ ! -L "$p" ]; then
    echo "cannot replace the directory \`$p' with a file" >&2
    exit 1
  fi
done
head -c "$n" | tar -x -p --no-same-owner -f -"#;

/// Extracts the `$2` bytes of archive on stdin into `$1`, overwriting what is there.
const EXTRACT_SCRIPT: &str = r#"head -c "$2" | tar -x -p --no-same-owner -C "$1" -f -"#;

/// Gathers a helper's stdout (up to a limit, noting what went past it) and the start of its
/// stderr.
struct Collect {
    stdout: Vec<u8>,
    limit: usize,
    over: bool,
    stderr: Vec<u8>,
}

impl Collect {
    fn new(limit: usize) -> Self {
        Collect {
            stdout: Vec::new(),
            limit,
            over: false,
            stderr: Vec::new(),
        }
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim_end().to_string()
    }
}

#[async_trait::async_trait]
impl OutputSink for Collect {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        match stream {
            Stream::Stdout => {
                let room = self.limit.saturating_sub(self.stdout.len());
                self.over |= data.len() > room;
                self.stdout.extend_from_slice(&data[..data.len().min(room)]);
            }
            Stream::Stderr => {
                let room = STDERR_CAP.saturating_sub(self.stderr.len());
                self.stderr.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
        Ok(())
    }
}

/// `path` taken from `/` when it is relative, as `docker cp` does.
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// `sh -c SCRIPT sh ARGS...`
fn script(text: &str, args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut argv = vec!["sh".into(), "-c".into(), text.into(), "sh".into()];
    argv.extend(args);
    argv
}

/// Reads `STAT_SCRIPT`'s output.
fn parse_stat(out: &[u8]) -> Result<FileStat> {
    let text = String::from_utf8_lossy(out);
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let mut words = first.split_whitespace();
    let (Some(mode), Some(size), None) = (words.next(), words.next(), words.next()) else {
        bail!("unexpected output from `stat`: {first:?}");
    };
    let mode = u32::from_str_radix(mode, 16).with_context(|| format!("`stat` mode {mode:?}"))?;
    let size = size
        .parse()
        .with_context(|| format!("`stat` size {size:?}"))?;
    let kind = kind_of(mode);
    // `readlink` ends its line with one newline of its own.
    let link_target = match kind {
        FileKind::Symlink => rest.strip_suffix('\n').unwrap_or(rest).to_string(),
        _ => String::new(),
    };
    Ok(FileStat {
        kind,
        size,
        mode: mode & 0o7777,
        link_target,
    })
}

/// The file type in `st_mode` (`S_IFMT`).
fn kind_of(mode: u32) -> FileKind {
    match mode & 0o170_000 {
        0o100_000 => FileKind::File,
        0o040_000 => FileKind::Dir,
        0o120_000 => FileKind::Symlink,
        _ => FileKind::Other,
    }
}

/// The directory to archive from and the name to archive, so the archive's single top entry is
/// the base name, as `docker cp` lays it out.
fn parent_and_base(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return ("/".into(), ".".into());
    }
    match trimmed.rsplit_once('/') {
        Some(("", base)) => ("/".into(), base.into()),
        Some((parent, base)) => (parent.into(), base.into()),
        None => ("/".into(), trimmed.into()),
    }
}

impl PodSandbox {
    /// Runs one of our helper scripts with a bounded time; how it ended.
    async fn helper(&self, argv: Vec<String>, input: Input, out: &mut Collect) -> Result<ExecEnd> {
        let mut spec = ExecSpec::new(argv);
        spec.timeout = Some(HELPER_TIMEOUT);
        Ok(self.run(spec, input, out).await?.end)
    }

    fn path_not_found(&self, path: &str) -> anyhow::Error {
        Error::PathNotFound {
            sandbox: sandbox_id(&self.pod).to_string(),
            path: path.to_string(),
        }
        .into()
    }

    /// What is at `path` (`lstat`); `None` when nothing is.
    pub(super) async fn stat_path(&self, path: &str) -> Result<Option<FileStat>> {
        let mut out = Collect::new(64 * 1024);
        let argv = script(STAT_SCRIPT, [absolute(path)]);
        match self.helper(argv, Input::None, &mut out).await? {
            ExecEnd::Exited(Some(0)) => parse_stat(&out.stdout).map(Some),
            ExecEnd::Exited(Some(MISSING)) => Ok(None),
            end => Err(helper_failed("looking up", path, end, &out)),
        }
    }

    /// The content of the file at `path`; `None` when it is larger than `max_bytes`.
    pub(super) async fn read_bounded(&self, path: &str, max_bytes: u64) -> Result<Option<Vec<u8>>> {
        let limit = usize::try_from(max_bytes.saturating_add(1)).unwrap_or(usize::MAX);
        let mut out = Collect::new(limit);
        let argv = script(
            READ_SCRIPT,
            [absolute(path), max_bytes.saturating_add(1).to_string()],
        );
        match self.helper(argv, Input::None, &mut out).await? {
            ExecEnd::Exited(Some(0)) if out.over || out.stdout.len() as u64 > max_bytes => Ok(None),
            ExecEnd::Exited(Some(0)) => Ok(Some(out.stdout)),
            ExecEnd::Exited(Some(MISSING)) => Err(self.path_not_found(path)),
            end => Err(helper_failed("reading", path, end, &out)),
        }
    }

    /// Writes `entries` into the existing `dir`, refusing to replace a directory with a file or
    /// the other way round.
    pub(super) async fn put_entries(&self, dir: &str, entries: Vec<NewEntry>) -> Result<()> {
        let mut args = vec![absolute(dir), String::new()];
        for entry in &entries {
            let (kind, path) = match entry {
                NewEntry::Dir { path, .. } => ("d", path),
                NewEntry::File { path, .. } => ("f", path),
            };
            args.push(kind.into());
            args.push(path.trim_end_matches('/').to_string());
        }
        let tar = Bytes::from(tar_of(entries).context("packing the files")?);
        args[1] = tar.len().to_string();
        let mut out = Collect::new(0);
        match self
            .helper(script(PUT_SCRIPT, args), Input::Known(tar), &mut out)
            .await?
        {
            ExecEnd::Exited(Some(0)) => Ok(()),
            end => Err(helper_failed("copying files into", dir, end, &out)),
        }
    }

    /// `mkdir -p`, as the container's user so the directories are theirs.
    pub(super) async fn mkdir_p(&self, dir: &str) -> Result<()> {
        let argv = vec!["mkdir".into(), "-p".into(), "--".into(), absolute(dir)];
        let mut out = Collect::new(0);
        let end = self.helper(argv, Input::None, &mut out).await?;
        if end == ExecEnd::Exited(Some(0)) {
            return Ok(());
        }
        let stderr = out.stderr_text();
        bail!(
            "cannot create `{dir}`: {}",
            if stderr.is_empty() {
                format!("`mkdir` ended with {end:?}")
            } else {
                stderr
            }
        )
    }

    /// Extracts a caller's tar archive into `dir`, made first; existing files are overwritten.
    pub(super) async fn extract(&self, dir: &str, tar: Bytes) -> Result<()> {
        if dir.trim().is_empty() {
            return Err(Error::Usage("the target directory must not be empty".into()).into());
        }
        self.mkdir_p(dir).await?;
        let argv = script(EXTRACT_SCRIPT, [absolute(dir), tar.len().to_string()]);
        let mut out = Collect::new(0);
        match self.helper(argv, Input::Known(tar), &mut out).await? {
            ExecEnd::Exited(Some(0)) => Ok(()),
            end => Err(helper_failed("extracting the archive into", dir, end, &out)),
        }
    }

    /// `path` as a tar stream whose single top entry is its base name; `None` when nothing is
    /// there. The archive streams from `tar`'s stdout while the reader reads; a reader that
    /// drops the stream kills the `tar`.
    pub(super) async fn archive(&self, path: &str) -> Result<Option<ArchiveStream>> {
        if self.stat_path(path).await?.is_none() {
            return Ok(None);
        }
        let (parent, base) = parent_and_base(&absolute(path));
        let argv = vec![
            "tar".into(),
            "-c".into(),
            "-f".into(),
            "-".into(),
            "-C".into(),
            parent,
            "--".into(),
            base,
        ];
        let (tx, rx) = mpsc::channel(16);
        let sandbox = self.clone();
        let path = path.to_string();
        tokio::spawn(async move {
            let mut sink = ArchiveSink {
                tx: tx.clone(),
                stderr: Vec::new(),
            };
            // No timeout: a large directory takes as long as its reader.
            let spec = ExecSpec::new(argv);
            let ended = sandbox.run(spec, Input::None, &mut sink).await;
            let failure = match ended.map(|o| o.end) {
                // 1: a file changed while it was read; the archive is still whole.
                Ok(ExecEnd::Exited(Some(0 | 1)) | ExecEnd::OutputClosed) => None,
                Ok(end) => Some(anyhow::anyhow!(
                    "`tar` ended with {end:?}: {}",
                    String::from_utf8_lossy(&sink.stderr).trim_end()
                )),
                Err(e) => Some(e),
            };
            if let Some(e) = failure {
                let _ = tx.send(Err(e.context(format!("reading `{path}`")))).await;
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Some(stream.boxed()))
    }
}

/// Sends `tar`'s stdout to the archive's reader; a reader gone stops the command.
struct ArchiveSink {
    tx: mpsc::Sender<Result<Bytes>>,
    stderr: Vec<u8>,
}

#[async_trait::async_trait]
impl OutputSink for ArchiveSink {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        match stream {
            Stream::Stdout => self
                .tx
                .send(Ok(Bytes::copy_from_slice(data)))
                .await
                .map_err(|_| std::io::ErrorKind::BrokenPipe.into()),
            Stream::Stderr => {
                let room = STDERR_CAP.saturating_sub(self.stderr.len());
                self.stderr.extend_from_slice(&data[..data.len().min(room)]);
                Ok(())
            }
        }
    }
}

/// A helper that did not succeed, with its own words when it said any.
fn helper_failed(doing: &str, path: &str, end: ExecEnd, out: &Collect) -> anyhow::Error {
    let stderr = out.stderr_text();
    let why = if stderr.is_empty() {
        format!("the command ended with {end:?}")
    } else {
        stderr
    };
    anyhow::anyhow!("{doing} `{path}`: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_output_becomes_lstat_results() {
        let file = parse_stat(b"81a4 12\n").unwrap();
        assert_eq!(file.kind, FileKind::File);
        assert_eq!((file.size, file.mode), (12, 0o644));
        assert!(file.link_target.is_empty());
        let dir = parse_stat(b"43ff 4096\n").unwrap();
        assert_eq!((dir.kind, dir.mode), (FileKind::Dir, 0o1777));
        let link = parse_stat(b"a1ff 11\n../a b\nc\n").unwrap();
        assert_eq!(link.kind, FileKind::Symlink);
        assert_eq!(link.link_target, "../a b\nc");
        let setuid = parse_stat(b"89ed 10\n").unwrap();
        assert_eq!(setuid.mode, 0o4755);
        assert_eq!(parse_stat(b"2190 0\n").unwrap().kind, FileKind::Other);
        assert!(parse_stat(b"stat: cannot stat").is_err());
        assert!(parse_stat(b"").is_err());
    }

    #[test]
    fn the_real_stat_agrees_with_the_parser() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"hello").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink("f", &link).unwrap();
        let run = |p: &std::path::Path| {
            std::process::Command::new("sh")
                .args(["-c", STAT_SCRIPT, "sh"])
                .arg(p)
                .output()
                .unwrap()
        };
        let out = run(&file);
        let stat = parse_stat(&out.stdout).unwrap();
        assert_eq!((stat.kind, stat.size), (FileKind::File, 5));
        let stat = parse_stat(&run(&link).stdout).unwrap();
        assert_eq!(
            (stat.kind, stat.link_target.as_str()),
            (FileKind::Symlink, "f")
        );
        let missing = run(&dir.path().join("nothing"));
        assert_eq!(missing.status.code(), Some(MISSING as i32));
    }

    #[test]
    fn archives_are_taken_from_the_parent_with_the_base_name() {
        let cases = [
            ("/a/b/c", ("/a/b", "c")),
            ("/a/b/", ("/a", "b")),
            ("/top", ("/", "top")),
            ("/", ("/", ".")),
            ("/-rf", ("/", "-rf")),
        ];
        for (path, (parent, base)) in cases {
            assert_eq!(
                parent_and_base(path),
                (parent.to_string(), base.to_string()),
                "{path}"
            );
        }
        assert_eq!(absolute("tmp/x"), "/tmp/x");
        assert_eq!(absolute("/tmp/x"), "/tmp/x");
    }
}

//! `file_operation`: create, read, write, delete, list and test files in the sandbox.
//!
//! Reads and writes go through the engine's archive API (binary-safe, exact, no process in the
//! container); `delete` and `list` run `rm` / `ls` with the path as an argv entry. No path is
//! ever part of a shell string. The `max_file_size`, `allowed_paths` and `blocked_paths`
//! options of the tool's `tools_config` entry apply to every operation.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use tokio_util::sync::CancellationToken;

use super::capture::Capture;
use super::encoding::Encoding;
use super::options::ToolOptions;
use super::paths::{self, Policy};
use super::run::{self, Command, Finished};
use super::{Tool, ToolContext, ToolInfo};
use crate::backend::{ExecEnd, ExecSpec, OutputSink, PathStat};
use crate::model::{SandboxType, ToolResult};

pub struct FileOperation;

static INFO: ToolInfo = ToolInfo {
    key: "file_operation",
    description: DESCRIPTION,
    sandbox_types: &[SandboxType::Docker],
    parameters: parameters_schema,
};

/// Symlinks followed before a read gives up.
const MAX_LINKS: usize = 8;

/// Prints the canonical form of `$1`: the longest existing prefix resolved with `readlink -f`
/// (GNU and busybox), the missing rest appended as given.
const RESOLVE_SCRIPT: &str = r#"p=$1 rest=
until r=$(readlink -f -- "$p" 2>/dev/null) && [ -n "$r" ]; do
  [ "$p" = / ] && exit 1
  rest=/${p##*/}$rest
  p=${p%/*}
  [ -n "$p" ] || p=/
done
printf '%s%s\n' "$r" "$rest""#;

#[async_trait]
impl Tool for FileOperation {
    fn info(&self) -> &'static ToolInfo {
        &INFO
    }

    async fn execute(
        &self,
        ctx: &ToolContext<'_>,
        name: &str,
        args: &Map<String, Value>,
        options: &Map<String, Value>,
    ) -> ToolResult {
        let text = |key: &str| args.get(key).and_then(Value::as_str);
        let shown = text("file_path").unwrap_or("");
        if shown.trim().is_empty() {
            return ToolResult::failure(name, "No file path provided");
        }
        let options = match ToolOptions::parse(options) {
            Ok(o) => o,
            Err(e) => return ToolResult::failure(name, format!("Operation failed: {e}")),
        };
        let op = Op {
            ctx,
            name,
            shown,
            path: paths::absolute(ctx.working_dir, shown),
            policy: Policy {
                allowed: options.allowed_paths.clone(),
                blocked: options.blocked_paths.clone(),
            },
            options,
        };
        let encoding = text("encoding").unwrap_or("utf-8");
        match text("operation").unwrap_or("") {
            "read" => op.read(encoding).await,
            "write" => match text("content") {
                Some(content) => op.write(content, encoding).await,
                None => ToolResult::failure(name, "Content is required for write operation"),
            },
            "create" => op.write(text("content").unwrap_or(""), encoding).await,
            "delete" => op.delete().await,
            "list" => op.list().await,
            "exists" => op.exists().await,
            other => ToolResult::failure(name, format!("Unknown operation: {other}")),
        }
    }
}

/// One call: the path as given (`shown`, used in every message) and made absolute (`path`).
struct Op<'a> {
    ctx: &'a ToolContext<'a>,
    name: &'a str,
    shown: &'a str,
    path: String,
    policy: Policy,
    options: ToolOptions,
}

impl Op<'_> {
    fn fail(&self, error: String) -> ToolResult {
        ToolResult::failure(self.name, error)
    }

    /// The policy, checked on the path as written and on where it really leads (symlinks
    /// resolved in the container). Best effort: a process in the sandbox can still swap a
    /// symlink between the check and the operation.
    async fn check_access(&self, path: &str) -> Result<(), String> {
        if self.policy.is_open() {
            return Ok(());
        }
        self.policy.check(path, self.shown)?;
        let resolved = run::helper(self.ctx, &["sh", "-c", RESOLVE_SCRIPT, "sh", path])
            .await
            .map_err(|e| format!("Access check failed: {}", run::one_line(&e)))?;
        let canonical = resolved.stdout.trim_end_matches('\n');
        if resolved.end != ExecEnd::Exited(Some(0)) || !canonical.starts_with('/') {
            return Err(format!(
                "Access denied: cannot resolve {} in the sandbox",
                self.shown
            ));
        }
        self.policy.check(&paths::normalize(canonical), self.shown)
    }

    /// Follows symlinks to what `path` names; `None` when nothing is there.
    async fn stat_following(&self, path: &str) -> anyhow::Result<Option<(String, PathStat)>> {
        let mut target = path.to_string();
        for _ in 0..MAX_LINKS {
            let Some(stat) = self
                .ctx
                .backend
                .stat_path(self.ctx.container_id, &target)
                .await?
            else {
                return Ok(None);
            };
            if !stat.is_symlink() {
                return Ok(Some((target, stat)));
            }
            let dir = paths::split(&target).map_or("/", |(d, _)| d);
            target = paths::absolute(dir, &stat.link_target);
        }
        anyhow::bail!("too many levels of symbolic links")
    }

    async fn read(&self, encoding: &str) -> ToolResult {
        let encoding = match Encoding::parse(encoding) {
            Ok(e) => e,
            Err(e) => return self.fail(format!("Read failed: {e}")),
        };
        if let Err(e) = self.check_access(&self.path).await {
            return self.fail(e);
        }
        let failed = |why: &str| self.fail(format!("Failed to read file: {}: {why}", self.shown));
        let max = self.options.max_file_size;
        let read = match self.lookup(&self.path).await {
            Some((_, stat)) if stat.is_dir() => return failed("is a directory"),
            Some((_, stat)) if !stat.is_file() => return failed("not a regular file"),
            Some((_, stat)) if stat.size > max => return failed(&too_large(stat.size, max)),
            Some((target, stat)) if stat.size > 0 => self.download(&target, max).await,
            // Empty, or out of the archive API's sight (`/proc`, `/sys`): ask `cat`.
            _ => self.cat(max).await,
        };
        let bytes = match read {
            Ok(Read::Bytes(b)) => b,
            Ok(Read::TooLarge) => {
                return failed(&format!("larger than max_file_size ({max} bytes)"))
            }
            Ok(Read::Failed(stderr)) => {
                return self.fail(or_text(
                    stderr,
                    format!("Failed to read file: {}", self.shown),
                ))
            }
            Err(e) => return self.fail(format!("Read failed: {}", run::one_line(&e))),
        };
        let size = bytes.len();
        let (text, lossy) = encoding.decode(&bytes);
        let mut result = ToolResult::success(self.name, text);
        let m = &mut result.metadata;
        m.insert("size".into(), Value::from(size));
        m.insert("encoding".into(), Value::from(encoding.name()));
        if lossy {
            // Bytes that are not valid in `encoding` became U+FFFD; `base64` reads them exactly.
            m.insert("lossy".into(), Value::Bool(true));
        }
        result
    }

    /// What `path` leads to, symlinks followed, when the archive API can see it.
    async fn lookup(&self, path: &str) -> Option<(String, PathStat)> {
        self.stat_following(path).await.ok().flatten()
    }

    /// The file's bytes from the archive API.
    async fn download(&self, target: &str, max: u64) -> anyhow::Result<Read> {
        // Tar headers, long-name records and padding come on top of the content.
        let slack = 64 * 1024;
        let Some(tar) = self
            .ctx
            .backend
            .download_tar_capped(self.ctx.container_id, target, max + slack)
            .await?
        else {
            return Ok(Read::TooLarge);
        };
        let mut archive = tar::Archive::new(&tar[..]);
        let mut entries = archive.entries()?;
        let Some(entry) = entries.next() else {
            anyhow::bail!("the engine sent an empty archive");
        };
        let mut entry = entry?;
        if entry.size() > max {
            return Ok(Read::TooLarge);
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        std::io::Read::read_to_end(&mut entry, &mut bytes)?;
        Ok(Read::Bytes(bytes))
    }

    /// The file's bytes from `cat`, stopped as soon as they pass `max`.
    async fn cat(&self, max: u64) -> anyhow::Result<Read> {
        let limit = usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX);
        let cancel = self.ctx.cancel.child_token();
        let mut sink = Limited {
            capture: Capture::new(limit),
            max,
            cancel: cancel.clone(),
        };
        let mut spec = ExecSpec::new(vec!["cat".into(), "--".into(), self.path.clone()]);
        spec.timeout = Some(run::HELPER_TIMEOUT);
        spec.cancel = cancel;
        let outcome = self
            .ctx
            .backend
            .exec(self.ctx.container_id, spec, &mut sink)
            .await?;
        let capture = sink.capture;
        if capture.stdout.total() > max {
            return Ok(Read::TooLarge);
        }
        Ok(match outcome.end {
            ExecEnd::Exited(Some(0)) => Read::Bytes(capture.stdout.into_bytes().0),
            ExecEnd::Cancelled => anyhow::bail!("cancelled"),
            ExecEnd::TimedOut => anyhow::bail!("`cat` took longer than {:?}", run::HELPER_TIMEOUT),
            ExecEnd::Exited(_) => Read::Failed(capture.stderr.into_text().0),
        })
    }

    async fn write(&self, content: &str, encoding: &str) -> ToolResult {
        let bytes = match Encoding::parse(encoding).and_then(|e| e.encode(content)) {
            Ok(b) => b,
            Err(e) => return self.fail(format!("Write failed: {e}")),
        };
        let max = self.options.max_file_size;
        if bytes.len() as u64 > max {
            return self.fail(format!(
                "Write failed: {}",
                too_large(bytes.len() as u64, max)
            ));
        }
        if self.shown.ends_with('/') || paths::split(&self.path).is_none() {
            return self.fail(format!("Write failed: {} names a directory", self.shown));
        }
        if let Err(e) = self.check_access(&self.path).await {
            return self.fail(e);
        }
        let copy_failed =
            |why: String| self.fail(format!("Failed to copy file to target location: {why}"));
        // Like ms-enclave's `cp`, write through a symlink and keep an existing file's mode.
        let (target, mode) = match self.stat_following(&self.path).await {
            Ok(Some((_, stat))) if stat.is_dir() => {
                return copy_failed(format!("{} is a directory", self.shown))
            }
            Ok(Some((target, stat))) => (target, stat.mode & 0o7777),
            // Missing, or out of the archive API's sight: the upload will tell.
            Ok(None) | Err(_) => (self.path.clone(), 0o644),
        };
        let Some((dir, file)) = paths::split(&target) else {
            return copy_failed(format!("{} is a directory", self.shown));
        };
        let tar = match file_tar(file, &bytes, mode) {
            Ok(t) => t,
            Err(e) => return self.fail(format!("Write failed: {e}")),
        };
        let backend = self.ctx.backend;
        let container = self.ctx.container_id;
        if let Err(first) = backend
            .upload_tar_keeping_dirs(container, dir, tar.clone())
            .await
        {
            // Most likely the directory is missing: make it, as ms-enclave's `mkdir -p` does.
            let made = run::helper(self.ctx, &["mkdir", "-p", "--", dir]).await;
            match made {
                Ok(f) if f.end == ExecEnd::Exited(Some(0)) => {
                    if let Err(e) = backend.upload_tar_keeping_dirs(container, dir, tar).await {
                        return copy_failed(engine_message(&e));
                    }
                }
                Ok(f) if !f.stderr.is_empty() => return copy_failed(f.stderr.trim_end().into()),
                _ => return copy_failed(engine_message(&first)),
            }
        }
        ToolResult::success(
            self.name,
            format!("File written successfully: {}", self.shown),
        )
    }

    async fn delete(&self) -> ToolResult {
        if let Err(e) = self.check_access(&self.path).await {
            return self.fail(e);
        }
        match self.command(&["rm", "-rf", "--"]).await {
            Ok(f) if f.end == ExecEnd::Exited(Some(0)) => {
                ToolResult::success(self.name, format!("Successfully deleted: {}", self.shown))
            }
            Ok(f) => self.fail(or_text(
                f.stderr,
                format!("Failed to delete: {}", self.shown),
            )),
            Err(e) => self.fail(format!("Delete failed: {}", run::one_line(&e))),
        }
    }

    async fn list(&self) -> ToolResult {
        if let Err(e) = self.check_access(&self.path).await {
            return self.fail(e);
        }
        match self.command(&["ls", "-la", "--"]).await {
            Ok(f) if f.end == ExecEnd::Exited(Some(0)) => {
                let mut result = ToolResult::success(self.name, f.stdout);
                result
                    .metadata
                    .insert("truncated".into(), Value::Bool(f.truncated));
                result
            }
            Ok(f) => self.fail(or_text(
                f.stderr,
                format!("Failed to list directory: {}", self.shown),
            )),
            Err(e) => self.fail(format!("List failed: {}", run::one_line(&e))),
        }
    }

    async fn exists(&self) -> ToolResult {
        if let Err(e) = self.check_access(&self.path).await {
            return self.fail(e);
        }
        // The archive API answers most paths without a process; what it cannot see (`/proc`, a
        // dangling symlink) is asked of `test -e`, ms-enclave's own check.
        if self.lookup(&self.path).await.is_some() {
            return ToolResult::success(self.name, "exists");
        }
        let test = vec!["test".into(), "-e".into(), self.path.clone()];
        match Command::new(test, 4096)
            .run(self.ctx, self.ctx.cancel.clone())
            .await
        {
            Ok(f) => match f.end {
                ExecEnd::Exited(Some(0)) => ToolResult::success(self.name, "exists"),
                ExecEnd::Exited(Some(1)) => ToolResult::success(self.name, "does not exist"),
                end => self.fail(format!(
                    "Exists check failed: {}",
                    or_text(f.stderr, format!("`test -e` ended with {end:?}"))
                )),
            },
            Err(e) => self.fail(format!("Exists check failed: {}", run::one_line(&e))),
        }
    }

    /// `argv` followed by the absolute path, cancellable.
    async fn command(&self, argv: &[&str]) -> anyhow::Result<Finished> {
        let mut argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        argv.push(self.path.clone());
        let command = Command::new(argv, self.options.max_output_size);
        command.run(self.ctx, self.ctx.cancel.clone()).await
    }
}

/// How a read ended.
enum Read {
    Bytes(Vec<u8>),
    TooLarge,
    /// The reader failed; its stderr.
    Failed(String),
}

/// A capture that cancels the command once stdout passes `max` bytes.
struct Limited {
    capture: Capture,
    max: u64,
    cancel: CancellationToken,
}

impl OutputSink for Limited {
    fn stdout(&mut self, data: &[u8]) {
        self.capture.stdout.push(data);
        if self.capture.stdout.total() > self.max {
            self.cancel.cancel();
        }
    }

    fn stderr(&mut self, data: &[u8]) {
        self.capture.stderr.push(data);
    }
}

fn too_large(size: u64, max: u64) -> String {
    format!("the file is {size} bytes, more than max_file_size ({max} bytes)")
}

fn or_text(stderr: String, fallback: String) -> String {
    if stderr.is_empty() {
        fallback
    } else {
        stderr.trim_end().to_string()
    }
}

/// The engine's own words when it refused, else the whole chain.
fn engine_message(err: &anyhow::Error) -> String {
    match crate::error::find(err) {
        Some(crate::error::Error::Engine(message)) => message.clone(),
        _ => run::one_line(err),
    }
}

/// A tar holding one regular file.
fn file_tar(name: &str, bytes: &[u8], mode: u32) -> std::io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_entry_type(tar::EntryType::Regular);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    header.set_mtime(now);
    let mut builder = tar::Builder::new(Vec::with_capacity(bytes.len() + 2048));
    builder.append_data(&mut header, name, bytes)?;
    builder.into_inner()
}

const DESCRIPTION: &str = "Perform file operations like read, write, delete, and list files";

fn parameters_schema() -> Value {
    json!({"type":"object","properties":{"operation":{"type":"string","description":"Type of file operation to perform","enum":["create","read","write","delete","list","exists"]},"file_path":{"type":"string","description":"Path to the file or directory"},"content":{"type":"string","description":"Content to write to file (only for write operation)"},"encoding":{"type":"string","description":"File encoding","default":"utf-8"}},"required":["operation","file_path"],"additionalProperties":false})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_tar_round_trips_with_odd_names() {
        let name = "a \"b\" $(touch x) 'c' é.txt";
        let tar = file_tar(name, b"\x00\xffdata", 0o755).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str().unwrap(), name);
        assert_eq!(entry.header().mode().unwrap(), 0o755);
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        assert_eq!(bytes, b"\x00\xffdata");
    }

    #[test]
    fn long_names_survive() {
        let name = "n".repeat(200);
        let tar = file_tar(&name, b"x", 0o644).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.path().unwrap().to_str().unwrap(), name);
    }
}

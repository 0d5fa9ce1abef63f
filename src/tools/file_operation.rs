//! `file_operation`: create, read, write, delete, list and test files in the sandbox.
//!
//! Reads and writes go through the engine's archive API (binary-safe, exact, no process in the
//! container); `delete` and `list` run `rm` / `ls` with the path as an argv entry. No path is
//! ever part of a shell string. The `max_file_size`, `allowed_paths` and `blocked_paths`
//! options of the tool's `tools_config` entry apply to every operation.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::encoding::Encoding;
use super::options::ToolOptions;
use super::paths::{self, Policy};
use super::run::{self, Command, Finished};
use super::{Tool, ToolContext, ToolInfo};
use crate::backend::{FileKind, FileStat, NewEntry};
use crate::model::{Capped, ExecEnd, ExecSpec, OutputSink, SandboxType, Stream, ToolResult};

pub(super) struct FileOperation;

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
        options: &ToolOptions,
    ) -> ToolResult {
        let text = |key: &str| args.get(key).and_then(Value::as_str);
        let shown = text("file_path").unwrap_or("");
        if shown.trim().is_empty() {
            return ToolResult::failure(name, "No file path provided");
        }
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
    options: &'a ToolOptions,
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
    async fn stat_following(&self, path: &str) -> anyhow::Result<Option<(String, FileStat)>> {
        let mut target = path.to_string();
        for _ in 0..MAX_LINKS {
            let Some(stat) = self.ctx.backend.stat(&target).await? else {
                return Ok(None);
            };
            if stat.kind != FileKind::Symlink {
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
            Some((_, stat)) if stat.kind == FileKind::Dir => return failed("is a directory"),
            Some((_, stat)) if stat.kind != FileKind::File => return failed("not a regular file"),
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
    async fn lookup(&self, path: &str) -> Option<(String, FileStat)> {
        self.stat_following(path).await.ok().flatten()
    }

    /// The file's bytes, read by the backend without a process in the sandbox.
    async fn download(&self, target: &str, max: u64) -> anyhow::Result<Read> {
        Ok(match self.ctx.backend.read_file(target, max).await? {
            Some(bytes) => Read::Bytes(bytes),
            None => Read::TooLarge,
        })
    }

    /// The file's bytes from `cat`, stopped as soon as they pass `max`.
    async fn cat(&self, max: u64) -> anyhow::Result<Read> {
        let mut sink = Limited {
            stdout: Vec::new(),
            stderr: Capped::new(4096),
            max,
        };
        let mut spec = ExecSpec::new(vec!["cat".into(), "--".into(), self.path.clone()]);
        spec.timeout = Some(run::HELPER_TIMEOUT);
        spec.cancel = self.ctx.cancel.clone();
        let outcome = self.ctx.backend.exec(spec, &mut sink).await?;
        Ok(match outcome.end {
            ExecEnd::OutputClosed => Read::TooLarge,
            ExecEnd::Exited(Some(0)) => Read::Bytes(sink.stdout),
            ExecEnd::Cancelled => anyhow::bail!("cancelled"),
            ExecEnd::TimedOut => anyhow::bail!("`cat` took longer than {:?}", run::HELPER_TIMEOUT),
            ExecEnd::Exited(_) => Read::Failed(sink.stderr.into_text().0),
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
            Ok(Some((_, stat))) if stat.kind == FileKind::Dir => {
                return copy_failed(format!("{} is a directory", self.shown))
            }
            Ok(Some((_, stat))) if stat.kind != FileKind::File => {
                // A device or a pipe would swallow the content and report success.
                return self.fail(format!(
                    "Write failed: {} is not a regular file",
                    self.shown
                ));
            }
            Ok(Some((target, stat))) => (target, stat.mode),
            // Missing, or out of the backend's sight: the write will tell.
            Ok(None) | Err(_) => (self.path.clone(), 0o644),
        };
        let Some((dir, file)) = paths::split(&target) else {
            return copy_failed(format!("{} is a directory", self.shown));
        };
        let entry = || {
            vec![NewEntry::File {
                path: file.to_string(),
                content: bytes.clone(),
                mode,
            }]
        };
        let backend = self.ctx.backend;
        if backend.put(dir, entry()).await.is_err() {
            // Most likely the directory is missing: make it, as ms-enclave's `mkdir -p` does.
            if let Err(e) = backend.make_dirs(dir).await {
                return copy_failed(run::one_line(&e));
            }
            if let Err(e) = backend.put(dir, entry()).await {
                return copy_failed(engine_message(&e));
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
        let mut argv: Vec<String> = argv.iter().map(std::string::ToString::to_string).collect();
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

/// Keeps stdout whole up to `max` bytes, and stops taking output past it, which stops the
/// command.
struct Limited {
    stdout: Vec<u8>,
    stderr: Capped,
    max: u64,
}

#[async_trait]
impl OutputSink for Limited {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        match stream {
            Stream::Stdout if (self.stdout.len() + data.len()) as u64 > self.max => {
                Err(std::io::ErrorKind::FileTooLarge.into())
            }
            Stream::Stdout => {
                self.stdout.extend_from_slice(data);
                Ok(())
            }
            Stream::Stderr => {
                self.stderr.push(data);
                Ok(())
            }
        }
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

/// The backend's own words when it refused, else the whole chain.
fn engine_message(err: &anyhow::Error) -> String {
    match crate::error::find(err) {
        Some(crate::error::Error::Refused { message, .. }) => message.clone(),
        _ => run::one_line(err),
    }
}

const DESCRIPTION: &str = "Perform file operations like read, write, delete, and list files";

fn parameters_schema() -> Value {
    json!({"type":"object","properties":{"operation":{"type":"string","description":"Type of file operation to perform","enum":["create","read","write","delete","list","exists"]},"file_path":{"type":"string","description":"Path to the file or directory"},"content":{"type":"string","description":"Content to write to file (only for write operation)"},"encoding":{"type":"string","description":"File encoding","default":"utf-8"}},"required":["operation","file_path"],"additionalProperties":false})
}

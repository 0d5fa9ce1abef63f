//! `upload_file` and `download_file`: between a sandbox and the host directories `--allow-dir`
//! names, and nowhere else on the host. One regular file at a time, at most `MAX_BYTES`.
//!
//! A host path is checked where it really leads: the file read (or the directory written) is
//! canonicalized, links resolved, and must lie inside an allowed directory; a download never
//! writes through a link at its last component and never replaces a directory. The file is
//! written to a temporary name beside it and renamed into place, so a failed or refused copy
//! leaves nothing half-written.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;
use tokio_util::io::SyncIoBridge;
use tokio_util::sync::CancellationToken;

use super::args::Args;
use super::jobs::in_sandbox;
use super::reply::{Link, Reply};
use super::{Core, Tenant};
use crate::error::Error;
use crate::manager::files::{probe, reader_of, split_sandbox_path, Kind};
use crate::model::{ArchiveStream, Sandbox};
use crate::output::human_size;

/// The largest file either tool copies (both hold it in memory on the way).
const MAX_BYTES: u64 = 100 * 1024 * 1024;

/// A refusal or failure, as the model reads it.
#[derive(Debug)]
struct Refusal {
    kind: &'static str,
    message: String,
    next: String,
}

impl Refusal {
    fn new(kind: &'static str, message: impl Into<String>, next: impl Into<String>) -> Self {
        Refusal {
            kind,
            message: message.into(),
            next: next.into(),
        }
    }

    fn io(what: &str, e: &io::Error) -> Self {
        Refusal::new(
            "io_error",
            format!("{what}: {e}"),
            "Check the path, or ask the user to check it.",
        )
    }

    fn reply(self) -> Reply {
        Reply::failed(self.kind, &self.message, &self.next)
    }
}

impl Core {
    /// `upload_file`.
    pub(super) async fn upload_file(
        &self,
        tenant: &Tenant,
        args: Args,
        cancel: &CancellationToken,
    ) -> Reply {
        let (host_path, sandbox_path, sandbox_id) = match transfer_args(args) {
            Ok(parsed) => parsed,
            Err(message) => return Reply::invalid_arguments("upload_file", &message),
        };
        let allow = self.options.allow_dirs.clone();
        if allow.is_empty() {
            return no_allowed_dirs("upload_file");
        }
        let shown = host_path.clone();
        let source = tokio::task::spawn_blocking(move || read_host_file(&allow, &host_path)).await;
        let source = match source {
            Ok(Ok(source)) => source,
            Ok(Err(refusal)) => return refusal.reply(),
            Err(e) => return Reply::failed("internal", &format!("reading {shown}: {e}"), ""),
        };
        let sandbox = match self
            .kept_sandbox(tenant, sandbox_id.as_deref(), "upload_file")
            .await
        {
            Ok(sandbox) => sandbox,
            Err(reply) => return reply,
        };
        let path = in_sandbox(&sandbox, &sandbox_path);
        // Into an existing directory (or one named with a trailing `/`): under the file's name.
        let is_dir = path.ends_with('/')
            || matches!(
                probe(self.manager.as_ref(), &sandbox, &path).await,
                Ok(Some(Kind::Dir))
            );
        let (dir, name) = if is_dir {
            (path.trim_end_matches('/').to_string(), source.name.clone())
        } else {
            split_sandbox_path(&path)
        };
        let dir = if dir.is_empty() { "/".to_string() } else { dir };
        if name.is_empty() || name == "." || name == ".." {
            return Reply::invalid_arguments(
                "upload_file",
                &format!("`sandbox_path` {sandbox_path} names no file"),
            );
        }
        let written = if dir == "/" {
            format!("/{name}")
        } else {
            format!("{dir}/{name}")
        };
        let bytes = source.data.len() as u64;
        let tar = match pack(&name, source) {
            Ok(tar) => tar,
            Err(e) => return Reply::failed("internal", &format!("packing {shown}: {e}"), ""),
        };
        let put = self.manager.put_archive(&sandbox, &dir, Bytes::from(tar));
        let put = tokio::select! {
            put = put => put,
            () = cancel.cancelled() => return cancelled(),
        };
        if let Err(e) = put {
            return Reply::from_error(
                &e,
                "Check sandbox_path (a directory on the way may be a file), then call again.",
            );
        }
        let _ = self.manager.touch(&sandbox).await;
        Reply::ok(
            format!(
                "Copied {shown} ({}) to {written} in sandbox {}.",
                human_size(bytes),
                sandbox.id
            ),
            json!({
                "sandbox_id": sandbox.id,
                "host_path": shown,
                "sandbox_path": written,
                "bytes": bytes,
            }),
        )
    }

    /// `download_file`.
    pub(super) async fn download_file(
        &self,
        tenant: &Tenant,
        args: Args,
        cancel: &CancellationToken,
    ) -> Reply {
        let (host_path, sandbox_path, sandbox_id) = match transfer_args(args) {
            Ok(parsed) => parsed,
            Err(message) => return Reply::invalid_arguments("download_file", &message),
        };
        let allow = &self.options.allow_dirs;
        if allow.is_empty() {
            return no_allowed_dirs("download_file");
        }
        // The host side is checked before anything is asked of the sandbox.
        let dest = match host_destination(allow, &host_path) {
            Ok(dest) => dest,
            Err(refusal) => return refusal.reply(),
        };
        let sandbox = match self
            .kept_sandbox(tenant, sandbox_id.as_deref(), "download_file")
            .await
        {
            Ok(sandbox) => sandbox,
            Err(reply) => return reply,
        };
        let path = in_sandbox(&sandbox, &sandbox_path);
        let archive = match self.get(&sandbox, &path, cancel).await {
            Ok(archive) => archive,
            Err(reply) => return reply,
        };
        // Cancelling ends the stream: the unpacking stops and its temporary file goes.
        let archive: ArchiveStream = Box::pin(archive.take_until(cancel.clone().cancelled_owned()));
        let reader = SyncIoBridge::new(reader_of(archive));
        let target = dest.clone();
        let shown = path.clone();
        let allow = allow.clone();
        let unpacked =
            tokio::task::spawn_blocking(move || unpack_one(reader, &target, &allow, &shown)).await;
        if cancel.is_cancelled() {
            return cancelled();
        }
        let bytes = match unpacked {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(refusal)) => return refusal.reply(),
            Err(e) => return Reply::failed("internal", &format!("unpacking {path}: {e}"), ""),
        };
        let _ = self.manager.touch(&sandbox).await;
        let written = dest.path();
        let name = dest.name.to_string_lossy().into_owned();
        let mut reply = Reply::ok(
            format!(
                "Copied {path} from sandbox {} to {} on this machine ({}).",
                sandbox.id,
                written.display(),
                human_size(bytes)
            ),
            json!({
                "sandbox_id": sandbox.id,
                "sandbox_path": path,
                "host_path": written,
                "bytes": bytes,
                "uri": file_uri(&written),
            }),
        );
        reply.links.push(Link {
            uri: file_uri(&written),
            mime_type: mime_type(&name).map(str::to_string),
            name,
            size: Some(bytes),
        });
        reply
    }

    /// `path` in the sandbox as a tar stream, or what to tell the model.
    async fn get(
        &self,
        sandbox: &Sandbox,
        path: &str,
        cancel: &CancellationToken,
    ) -> Result<ArchiveStream, Reply> {
        let got = tokio::select! {
            got = self.manager.get_archive(sandbox, path) => got,
            () = cancel.cancelled() => return Err(cancelled()),
        };
        got.map_err(|e| match crate::error::find(&e) {
            Some(Error::PathNotFound { .. }) => Reply::failed(
                "not_found",
                &format!("There is no file at {path} in sandbox {}.", sandbox.id),
                "Check the path (shell_executor with `ls -la DIR` shows what is there; relative \
                 paths start at the sandbox's working directory), then call again.",
            ),
            _ => Reply::from_error(&e, ""),
        })
    }
}

fn transfer_args(mut args: Args) -> Result<(String, String, Option<String>), String> {
    let host_path = args.required_string("host_path")?;
    let sandbox_path = args.required_string("sandbox_path")?;
    let sandbox_id = args.optional_string("sandbox_id")?;
    args.finish()?;
    for (key, value) in [("host_path", &host_path), ("sandbox_path", &sandbox_path)] {
        if value.is_empty() || value.contains('\0') {
            return Err(format!("`{key}` must be a path"));
        }
    }
    Ok((host_path, sandbox_path, sandbox_id))
}

fn no_allowed_dirs(tool: &str) -> Reply {
    Reply::failed(
        "no_allowed_dirs",
        &format!("{tool} cannot reach this machine's files: the user allowed no directory."),
        "Tell the user that enclave mcp must be started with --allow-dir DIR (repeatable) for \
         file transfers; meanwhile work with files inside the sandbox (file_operation).",
    )
}

fn cancelled() -> Reply {
    Reply::failed(
        "cancelled",
        "The call was cancelled; nothing was copied.",
        "Call again if the file is still needed.",
    )
}

/// `text` as an absolute path: relative paths start at the first allowed directory.
fn host_path(allow: &[PathBuf], text: &str) -> PathBuf {
    let path = Path::new(text);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        allow[0].join(path)
    }
}

fn inside(allow: &[PathBuf], real: &Path) -> bool {
    allow.iter().any(|dir| real.starts_with(dir))
}

fn outside(text: &str, allow: &[PathBuf]) -> Refusal {
    let dirs: Vec<String> = allow.iter().map(|d| d.display().to_string()).collect();
    Refusal::new(
        "outside_allowed_dirs",
        format!(
            "{text} is outside the directories the user allowed ({}), once `..` and links are \
             followed.",
            dirs.join(", ")
        ),
        "Use a path inside one of them; only the user can allow more (enclave mcp --allow-dir).",
    )
}

/// A host file to upload, read.
struct Source {
    name: String,
    data: Vec<u8>,
    mode: u32,
    mtime: u64,
}

fn read_host_file(allow: &[PathBuf], text: &str) -> Result<Source, Refusal> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let path = host_path(allow, text);
    let real = fs::canonicalize(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Refusal::new(
            "not_found",
            format!("There is no file at {text} on this machine."),
            "Check the path; it must be inside a directory the user allowed.",
        ),
        _ => Refusal::io(&format!("reading {text}"), &e),
    })?;
    if !inside(allow, &real) {
        return Err(outside(text, allow));
    }
    // No link at the end (canonical paths have none, unless one was just put there), and no
    // waiting on a fifo.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&real)
        .map_err(|e| Refusal::io(&format!("opening {text}"), &e))?;
    if !opened_inside(&file, allow) {
        return Err(outside(text, allow));
    }
    let meta = file
        .metadata()
        .map_err(|e| Refusal::io(&format!("reading {text}"), &e))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(Refusal::new(
            "not_a_file",
            format!("{text} is {what}; upload_file copies one regular file."),
            "Name a file; for a directory, ask the user to archive it (tar) first.",
        ));
    }
    if meta.len() > MAX_BYTES {
        return Err(too_large(text, meta.len()));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| Refusal::io(&format!("reading {text}"), &e))?;
    if data.len() as u64 > MAX_BYTES {
        return Err(too_large(text, data.len() as u64));
    }
    let name = real
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    Ok(Source {
        name,
        data,
        mode: meta.mode() & 0o777,
        mtime: u64::try_from(meta.mtime()).unwrap_or(0),
    })
}

/// Where the open file really is, from the kernel: a path swapped for a link between the
/// check and the open is caught here. Where `/proc` cannot say, the earlier check stands.
fn opened_inside(file: &File, allow: &[PathBuf]) -> bool {
    use std::os::fd::AsRawFd;
    match fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        Ok(real) => inside(allow, &real),
        Err(_) => true,
    }
}

fn too_large(what: &str, bytes: u64) -> Refusal {
    Refusal::new(
        "too_large",
        format!(
            "{what} is {}, over the {} limit of a file transfer.",
            human_size(bytes),
            human_size(MAX_BYTES)
        ),
        "Compress it or split it (e.g. with `split -b 50M` in shell_executor) and copy the \
         parts.",
    )
}

fn pack(name: &str, source: Source) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(source.data.len() as u64);
    header.set_mode(source.mode);
    header.set_mtime(source.mtime);
    let mut builder = tar::Builder::new(Vec::with_capacity(source.data.len() + 2048));
    builder.append_data(&mut header, name, source.data.as_slice())?;
    builder.into_inner()
}

/// Where a download goes: `name` in the directory `dir`, inside an allowed one: canonical, or
/// (`make`) an allowed directory's canonical path plus names of directories still to make.
#[derive(Debug, Clone)]
struct Destination {
    dir: PathBuf,
    name: OsString,
    make: bool,
}

impl Destination {
    fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Makes the missing directories, once there is a file to put there, and checks that they
    /// are where they were meant to be (no link slipped in on the way).
    fn prepare(&self, allow: &[PathBuf]) -> Result<(), Refusal> {
        if !self.make {
            return Ok(());
        }
        let shown = self.dir.display();
        fs::create_dir_all(&self.dir).map_err(|e| Refusal::io(&format!("creating {shown}"), &e))?;
        let real = fs::canonicalize(&self.dir)
            .map_err(|e| Refusal::io(&format!("looking at {shown}"), &e))?;
        if real != self.dir || !inside(allow, &real) {
            return Err(outside(&shown.to_string(), allow));
        }
        Ok(())
    }
}

/// Checks where `text` leads on this machine; directories missing on the way are made only
/// when the file is written (`Destination::prepare`).
fn host_destination(allow: &[PathBuf], text: &str) -> Result<Destination, Refusal> {
    let path = host_path(allow, text);
    let no_file = || {
        Refusal::new(
            "not_a_file",
            format!("{text} names a directory, not a file to write."),
            "Give the path of the file to write, e.g. DIR/name.ext.",
        )
    };
    if text.ends_with('/') {
        return Err(no_file());
    }
    let Some(Component::Normal(name)) = path.components().next_back() else {
        return Err(no_file());
    };
    let name = name.to_os_string();
    let parent = path.parent().unwrap_or(Path::new("/"));
    // The deepest directory on the way that exists; what is missing below it is made.
    let mut existing = parent;
    let mut missing = Vec::new();
    while fs::symlink_metadata(existing).is_err() {
        match existing.components().next_back() {
            Some(Component::Normal(part)) => missing.push(part.to_os_string()),
            _ => return Err(outside(text, allow)),
        }
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    let real = fs::canonicalize(existing)
        .map_err(|e| Refusal::io(&format!("looking at {}", existing.display()), &e))?;
    if !inside(allow, &real) {
        return Err(outside(text, allow));
    }
    if !missing.is_empty() {
        let mut dir = real;
        dir.extend(missing.iter().rev());
        return Ok(Destination {
            dir,
            name,
            make: true,
        });
    }
    let dir = real;
    if !dir.is_dir() {
        return Err(Refusal::new(
            "not_a_directory",
            format!("{} is not a directory.", dir.display()),
            "Choose a host_path whose directory exists or can be made.",
        ));
    }
    let dest = Destination {
        dir,
        name,
        make: false,
    };
    match fs::symlink_metadata(dest.path()) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Refusal::new(
            "symlink",
            format!("{text} is a symbolic link; download_file does not write through links."),
            "Choose another host_path (a new name, or the file the link points to).",
        )),
        Ok(meta) if meta.is_dir() => Err(Refusal::new(
            "is_a_directory",
            format!("{text} is an existing directory; download_file will not replace it."),
            "Give the path of a file inside it, e.g. DIR/name.ext.",
        )),
        Ok(meta) if !meta.is_file() => Err(Refusal::new(
            "not_a_file",
            format!("{text} exists and is not a regular file."),
            "Choose another host_path.",
        )),
        // A regular file is replaced; a new name is made.
        _ => Ok(dest),
    }
}

/// Unpacks the one regular file a sandbox's archive of `shown` holds into `dest`, refusing
/// anything else; returns its size.
fn unpack_one(
    reader: impl Read,
    dest: &Destination,
    allow: &[PathBuf],
    shown: &str,
) -> Result<u64, Refusal> {
    use std::os::unix::fs::PermissionsExt;
    use tar::EntryType;
    let broken = |e: io::Error| Refusal::io(&format!("reading {shown} from the sandbox"), &e);
    let mut archive = tar::Archive::new(reader);
    let mut entries = archive.entries().map_err(broken)?;
    let mut entry = entries
        .next()
        .ok_or_else(|| broken(io::Error::other("an empty archive")))?
        .map_err(broken)?;
    match entry.header().entry_type() {
        EntryType::Regular | EntryType::Continuous => {}
        EntryType::Directory => {
            return Err(Refusal::new(
                "is_a_directory",
                format!("{shown} is a directory in the sandbox; download_file copies one file."),
                "Archive it first (shell_executor: `tar czf /tmp/out.tar.gz -C DIR .`) and \
                 download the archive.",
            ))
        }
        EntryType::Symlink => {
            let target = entry
                .link_name()
                .ok()
                .flatten()
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            return Err(Refusal::new(
                "symlink",
                format!("{shown} is a symbolic link in the sandbox (to {target})."),
                "Download the file it points to instead.",
            ));
        }
        other => {
            return Err(Refusal::new(
                "not_a_file",
                format!("{shown} is not a regular file in the sandbox ({other:?})."),
                "Name a regular file.",
            ))
        }
    }
    let expected = entry.size();
    if expected > MAX_BYTES {
        return Err(too_large(shown, expected));
    }
    let exec = entry.header().mode().unwrap_or(0o644) & 0o111 != 0;
    let write_err = |e: io::Error| Refusal::io(&format!("writing {}", dest.path().display()), &e);
    dest.prepare(allow)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".enclave-download-")
        .tempfile_in(&dest.dir)
        .map_err(write_err)?;
    let copied =
        io::copy(&mut (&mut entry).take(MAX_BYTES + 1), temp.as_file_mut()).map_err(broken)?;
    if copied != expected {
        return Err(broken(io::Error::other(format!(
            "{copied} bytes arrived of {expected}"
        ))));
    }
    drop(entry);
    if let Some(Ok(_)) = entries.next() {
        return Err(Refusal::new(
            "not_a_file",
            format!("the sandbox sent more than one file for {shown}."),
            "Name a single regular file.",
        ));
    }
    let mode = if exec { 0o755 } else { 0o644 };
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(write_err)?;
    // A rename: it replaces a file, never follows a link there, and fails on a directory.
    temp.persist(dest.path()).map_err(|e| write_err(e.error))?;
    Ok(copied)
}

/// `file://` and the path, its bytes percent-encoded where a URI needs it.
fn file_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file://");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

/// The MIME type a file's extension suggests, for the common kinds.
fn mime_type(name: &str) -> Option<&'static str> {
    let ext = Path::new(name).extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "txt" | "log" | "out" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" => "text/javascript",
        "py" => "text/x-python",
        "sh" => "application/x-sh",
        "json" => "application/json",
        "ipynb" => "application/x-ipynb+json",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/yaml",
        "toml" => "application/toml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        "parquet" => "application/vnd.apache.parquet",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> (tempfile::TempDir, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let real = fs::canonicalize(dir.path()).unwrap();
        (dir, vec![real])
    }

    #[test]
    fn reads_stay_inside_the_allowed_directories() {
        let (_dir, allow) = allowed();
        let root = &allow[0];
        fs::write(root.join("a.bin"), [0u8, 1, 2]).unwrap();
        assert_eq!(read_host_file(&allow, "a.bin").unwrap().data, [0, 1, 2]);
        let abs = root.join("a.bin");
        assert_eq!(
            read_host_file(&allow, abs.to_str().unwrap()).unwrap().name,
            "a.bin"
        );
        let outside_file = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside_file.path(), root.join("link")).unwrap();
        for bad in ["../x", "link", "/etc/hostname"] {
            let refusal = read_host_file(&allow, bad).err();
            assert!(
                matches!(
                    refusal,
                    Some(Refusal {
                        kind: "outside_allowed_dirs" | "not_found",
                        ..
                    })
                ),
                "{bad}: {refusal:?}"
            );
        }
        assert_eq!(
            read_host_file(&allow, ".").err().unwrap().kind,
            "not_a_file"
        );
    }

    #[test]
    fn writes_stay_inside_never_through_links_nor_over_directories() {
        let (_dir, allow) = allowed();
        let root = &allow[0];
        let dest = host_destination(&allow, "new/sub/out.txt").unwrap();
        assert_eq!(dest.path(), root.join("new/sub/out.txt"));
        assert!(
            !root.join("new").exists(),
            "made before there is a file to write"
        );
        dest.prepare(&allow).unwrap();
        assert!(root.join("new/sub").is_dir());
        fs::create_dir(root.join("d")).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("pw")).unwrap();
        for (bad, kind) in [
            ("d", "is_a_directory"),
            ("d/", "not_a_file"),
            ("pw", "symlink"),
            ("out/x", "outside_allowed_dirs"),
            ("../x", "outside_allowed_dirs"),
            ("missing/../../x", "outside_allowed_dirs"),
            ("/tmp/elsewhere.txt", "outside_allowed_dirs"),
            ("x/..", "not_a_file"),
        ] {
            let refusal = host_destination(&allow, bad).err();
            assert_eq!(refusal.map(|r| r.kind), Some(kind), "{bad}");
        }
    }

    #[test]
    fn one_regular_file_is_unpacked_and_anything_else_refused() {
        let (_dir, allow) = allowed();
        let source = Source {
            name: "f".into(),
            data: vec![7; 10],
            mode: 0o600,
            mtime: 0,
        };
        let tar = pack("f", source).unwrap();
        let dest = host_destination(&allow, "got.bin").unwrap();
        assert_eq!(unpack_one(tar.as_slice(), &dest, &allow, "/f").unwrap(), 10);
        assert_eq!(fs::read(dest.path()).unwrap(), vec![7; 10]);
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        builder.append_data(&mut header, "d/", io::empty()).unwrap();
        let tar = builder.into_inner().unwrap();
        let refusal = unpack_one(tar.as_slice(), &dest, &allow, "/d").unwrap_err();
        assert_eq!(refusal.kind, "is_a_directory");
        // Nothing but the one file is left in the directory.
        assert_eq!(fs::read_dir(&allow[0]).unwrap().count(), 1);
    }

    #[test]
    fn links_name_the_file_and_its_type() {
        assert_eq!(
            file_uri(Path::new("/tmp/a b/ü.png")),
            "file:///tmp/a%20b/%C3%BC.png"
        );
        assert_eq!(mime_type("plot.PNG"), Some("image/png"));
        assert_eq!(mime_type("data"), None);
    }
}

//! The file calls: write, read, stat, list, remove, mkdir -p, and tar archives in and out.
//! Blocking file-system work runs on tokio's blocking pool.

use std::fs::{self, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::call::Replies;
use crate::proto::{self, Entry, Failure, FailureKind, FileKind, Reply, Request, StatInfo};

/// Chunks of an archive in flight between the blocking tar code and the call.
const ARCHIVE_QUEUE: usize = 4;

pub(crate) async fn run(request: Request, replies: Replies) {
    let outcome = match request {
        Request::WriteFile(req) => write_file(req, &replies).await,
        Request::ReadFile { path, max } => read_file(path, max, &replies).await,
        Request::Stat { path } => blocking(move || stat(&path).map(Reply::Stat)).await,
        Request::List { path } => blocking(move || list(&path).map(Reply::Entries)).await,
        Request::Remove { path, recursive } => {
            blocking(move || remove(&path, recursive).map(|()| Reply::Done)).await
        }
        Request::MakeDirs { path } => {
            blocking(move || {
                fs::create_dir_all(&path)
                    .map(|()| Reply::Done)
                    .map_err(|e| failure(&path, &e))
            })
            .await
        }
        Request::PutArchive { dir } => put_archive(dir, &replies).await,
        Request::GetArchive { path } => get_archive(path, &replies).await,
        other => Err(Failure::new(
            FailureKind::InvalidInput,
            format!("`{}` does not start a call", request_name(&other)),
        )),
    };
    let last = outcome.unwrap_or_else(Reply::Error);
    replies.finish(last).await;
}

fn request_name(request: &Request) -> String {
    let debug = format!("{request:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Runs blocking file work off the runtime's thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(Failure::new(
            FailureKind::Io,
            format!("file task failed: {e}"),
        ))
    })
}

/// The failure kind of an I/O error.
pub(crate) fn failure_kind(e: &io::Error) -> FailureKind {
    match e.kind() {
        io::ErrorKind::NotFound => FailureKind::NotFound,
        io::ErrorKind::PermissionDenied => FailureKind::PermissionDenied,
        io::ErrorKind::NotADirectory => FailureKind::NotADirectory,
        io::ErrorKind::IsADirectory => FailureKind::IsADirectory,
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidFilename => FailureKind::InvalidInput,
        _ => FailureKind::Io,
    }
}

/// An I/O error about `path`, for the host.
fn failure(path: impl AsRef<Path>, e: &io::Error) -> Failure {
    Failure::new(
        failure_kind(e),
        format!("`{}`: {e}", path.as_ref().display()),
    )
}

fn stat_info(path: &Path, meta: &Metadata) -> StatInfo {
    let kind = if meta.file_type().is_symlink() {
        FileKind::Symlink
    } else if meta.is_dir() {
        FileKind::Dir
    } else if meta.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    let link_target = match kind {
        FileKind::Symlink => fs::read_link(path)
            .map(|target| target.to_string_lossy().into_owned())
            .unwrap_or_default(),
        _ => String::new(),
    };
    StatInfo {
        kind,
        size: meta.len(),
        mode: meta.mode() & 0o7777,
        link_target,
    }
}

fn stat(path: &str) -> Result<Option<StatInfo>, Failure> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(stat_info(Path::new(path), &meta))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(failure(path, &e)),
    }
}

fn list(path: &str) -> Result<Vec<Entry>, Failure> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(path).map_err(|e| failure(path, &e))? {
        let entry = entry.map_err(|e| failure(path, &e))?;
        let full = entry.path();
        // An entry removed meanwhile is simply not listed.
        let Ok(meta) = fs::symlink_metadata(&full) else {
            continue;
        };
        entries.push(Entry {
            name: entry.file_name().to_string_lossy().into_owned(),
            stat: stat_info(&full, &meta),
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

fn remove(path: &str, recursive: bool) -> Result<(), Failure> {
    let meta = fs::symlink_metadata(path).map_err(|e| failure(path, &e))?;
    let removed = match (meta.is_dir(), recursive) {
        (true, true) => fs::remove_dir_all(path),
        (true, false) => fs::remove_dir(path),
        (false, _) => fs::remove_file(path),
    };
    removed.map_err(|e| failure(path, &e))
}

async fn write_file(req: proto::WriteFile, replies: &Replies) -> Result<Reply, Failure> {
    let path = PathBuf::from(&req.path);
    let file = blocking({
        let path = path.clone();
        move || open_for_writing(&path, &req)
    })
    .await?;
    let mut file = tokio::fs::File::from_std(file);
    while let Some(chunk) = replies.inbox().take().await {
        file.write_all(&chunk)
            .await
            .map_err(|e| failure(&path, &e))?;
        replies.credit(chunk.len()).await;
    }
    file.flush().await.map_err(|e| failure(&path, &e))?;
    Ok(Reply::Done)
}

fn open_for_writing(path: &Path, req: &proto::WriteFile) -> Result<fs::File, Failure> {
    if req.make_parents {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| failure(parent, &e))?;
        }
    }
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .append(req.append)
        .truncate(!req.append)
        .mode(req.mode & 0o7777)
        .open(path)
        .map_err(|e| failure(path, &e))
}

async fn read_file(path: String, max: Option<u64>, replies: &Replies) -> Result<Reply, Failure> {
    let file = blocking({
        let path = path.clone();
        move || open_for_reading(&path, max)
    })
    .await?;
    let mut file = tokio::fs::File::from_std(file);
    loop {
        let mut chunk = vec![0; proto::CHUNK];
        let n = file
            .read(&mut chunk)
            .await
            .map_err(|e| failure(&path, &e))?;
        if n == 0 {
            return Ok(Reply::Done);
        }
        chunk.truncate(n);
        if !replies.send_payload(Reply::Data(chunk), n).await {
            return Ok(Reply::Done);
        }
    }
}

fn open_for_reading(path: &str, max: Option<u64>) -> Result<fs::File, Failure> {
    let file = fs::File::open(path).map_err(|e| failure(path, &e))?;
    let meta = file.metadata().map_err(|e| failure(path, &e))?;
    if meta.is_dir() {
        let message = format!("`{path}` is a directory");
        return Err(Failure::new(FailureKind::IsADirectory, message));
    }
    if !meta.is_file() {
        let message = format!("`{path}` is not a regular file");
        return Err(Failure::new(FailureKind::InvalidInput, message));
    }
    match max {
        Some(max) if meta.len() > max => Err(Failure::new(
            FailureKind::TooLarge,
            format!("`{path}` is {} bytes, more than {max}", meta.len()),
        )),
        _ => Ok(file),
    }
}

/// Reads the chunks of an archive arriving from the host, for the blocking tar code.
struct ChunkReader {
    chunks: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.chunks.blocking_recv() {
                Some(chunk) => {
                    self.current = chunk;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

async fn put_archive(dir: String, replies: &Replies) -> Result<Reply, Failure> {
    let (chunks, queue) = mpsc::channel(ARCHIVE_QUEUE);
    let target = dir.clone();
    let unpacking = tokio::task::spawn_blocking(move || unpack(&target, queue));
    // A chunk the tar code no longer wants (it failed, or the archive ended) is dropped; the
    // upload still drains and is acknowledged, so the host is never stuck.
    while let Some(chunk) = replies.inbox().take().await {
        let n = chunk.len();
        let _ = chunks.send(chunk).await;
        replies.credit(n).await;
    }
    drop(chunks);
    match unpacking.await {
        Ok(Ok(())) => Ok(Reply::Done),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(Failure::new(
            FailureKind::Io,
            format!("unpacking failed: {e}"),
        )),
    }
}

fn unpack(dir: &str, queue: mpsc::Receiver<Vec<u8>>) -> Result<(), Failure> {
    fs::create_dir_all(dir).map_err(|e| failure(dir, &e))?;
    let reader = ChunkReader {
        chunks: queue,
        current: Vec::new(),
        at: 0,
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    archive.set_preserve_mtime(true);
    archive
        .unpack(dir)
        .map_err(|e| Failure::new(failure_kind(&e), format!("extracting into `{dir}`: {e}")))
}

/// Hands the blocking tar code's output to the call in chunks of at most `CHUNK`.
struct ChunkWriter {
    chunks: mpsc::Sender<Vec<u8>>,
    pending: Vec<u8>,
}

impl ChunkWriter {
    fn send_pending(&mut self) -> io::Result<()> {
        let chunk = std::mem::take(&mut self.pending);
        self.chunks
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the call ended"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(proto::CHUNK - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == proto::CHUNK {
            self.send_pending()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.send_pending()
    }
}

async fn get_archive(path: String, replies: &Replies) -> Result<Reply, Failure> {
    let (chunks, mut queue) = mpsc::channel(ARCHIVE_QUEUE);
    let source = path.clone();
    let packing = tokio::task::spawn_blocking(move || pack(&source, chunks));
    let mut connected = true;
    while let Some(chunk) = queue.recv().await {
        if connected {
            let n = chunk.len();
            connected = replies.send_payload(Reply::Data(chunk), n).await;
        }
    }
    match packing.await {
        Ok(Ok(())) => Ok(Reply::Done),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(Failure::new(
            FailureKind::Io,
            format!("archiving failed: {e}"),
        )),
    }
}

fn pack(path: &str, chunks: mpsc::Sender<Vec<u8>>) -> Result<(), Failure> {
    let source = Path::new(path);
    let meta = fs::symlink_metadata(source).map_err(|e| failure(path, &e))?;
    let name = source
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let writer = ChunkWriter {
        chunks,
        pending: Vec::with_capacity(proto::CHUNK),
    };
    let mut builder = tar::Builder::new(writer);
    builder.follow_symlinks(false);
    let added = if meta.is_dir() {
        builder.append_dir_all(&name, source)
    } else {
        builder.append_path_with_name(source, &name)
    };
    added.map_err(|e| failure(path, &e))?;
    let mut writer = builder.into_inner().map_err(|e| failure(path, &e))?;
    writer.flush().map_err(|e| failure(path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_failure_kinds() {
        let kind = |errno| failure_kind(&io::Error::from_raw_os_error(errno));
        assert_eq!(kind(libc::ENOENT), FailureKind::NotFound);
        assert_eq!(kind(libc::EACCES), FailureKind::PermissionDenied);
        assert_eq!(kind(libc::ENOTDIR), FailureKind::NotADirectory);
        assert_eq!(kind(libc::EISDIR), FailureKind::IsADirectory);
        assert_eq!(kind(libc::EIO), FailureKind::Io);
    }

    #[test]
    fn request_names_are_their_variant() {
        assert_eq!(request_name(&Request::End), "End");
        assert_eq!(request_name(&Request::Credit(3)), "Credit");
    }
}

//! Files through the agent: one call per operation, content streamed in `Data` frames, as the
//! sandbox's user (the agent runs as the container's user).

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use enclave_agent::client::{Client, ClientError};
use enclave_agent::proto::{self, FailureKind, Reply, Request, StatInfo};

use crate::backend::{FileKind, FileStat, NewEntry};
use crate::model::ArchiveStream;

pub(super) async fn stat(client: &Client, path: &str) -> Result<Option<FileStat>, ClientError> {
    let path = path.to_string();
    match only_reply(client, Request::Stat { path }).await? {
        Reply::Stat(stat) => Ok(stat.map(file_stat)),
        other => Err(unexpected(&other)),
    }
}

pub(super) async fn read_file(
    client: &Client,
    path: &str,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, ClientError> {
    let request = Request::ReadFile {
        path: path.to_string(),
        max: Some(max_bytes),
    };
    let (_, mut reader) = client.call(request).await?.split();
    let mut content = Vec::new();
    loop {
        match reader.next().await {
            Ok(Reply::Data(chunk)) => content.extend_from_slice(&chunk),
            Ok(Reply::Done) => return Ok(Some(content)),
            Ok(other) => return Err(unexpected(&other)),
            Err(ClientError::Failed(f)) if f.kind == FailureKind::TooLarge => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Writes each entry, refusing to replace a directory with a file or the other way round (the
/// Docker path's archive extraction refuses the same).
pub(super) async fn put(client: &Client, dir: &str, entries: Vec<NewEntry>) -> Result<()> {
    for entry in entries {
        match entry {
            NewEntry::Dir { path, .. } => {
                let path = join(dir, &path);
                if let Some(existing) = stat(client, &path).await? {
                    if existing.kind != FileKind::Dir {
                        bail!("cannot replace `{path}` with a directory: it is not one");
                    }
                    continue;
                }
                make_dirs(client, &path).await?;
            }
            NewEntry::File {
                path,
                content,
                mode,
            } => {
                let path = join(dir, &path);
                if stat(client, &path)
                    .await?
                    .is_some_and(|s| s.kind == FileKind::Dir)
                {
                    bail!("cannot replace the directory `{path}` with a file");
                }
                let request = Request::WriteFile(proto::WriteFile {
                    path,
                    mode,
                    make_parents: true,
                    append: false,
                });
                upload(client, request, content.into()).await?;
            }
        }
    }
    Ok(())
}

pub(super) async fn make_dirs(client: &Client, dir: &str) -> Result<(), ClientError> {
    let path = dir.to_string();
    match only_reply(client, Request::MakeDirs { path }).await? {
        Reply::Done => Ok(()),
        other => Err(unexpected(&other)),
    }
}

pub(super) async fn put_archive(client: &Client, dir: &str, tar: Bytes) -> Result<(), ClientError> {
    let request = Request::PutArchive {
        dir: dir.to_string(),
    };
    upload(client, request, tar).await
}

/// `path` as a tar stream; `None` when nothing is there. The first reply is awaited here, so a
/// missing path is known before the stream is handed out.
pub(super) async fn get_archive(
    client: &Client,
    path: &str,
) -> Result<Option<ArchiveStream>, ClientError> {
    let request = Request::GetArchive {
        path: path.to_string(),
    };
    let (_, mut reader) = client.call(request).await?.split();
    let first = match reader.next().await {
        Ok(reply) => reply,
        Err(ClientError::Failed(f)) if f.kind == FailureKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let path = path.to_string();
    let stream = futures_util::stream::unfold(
        (Some(first), reader, false),
        move |(first, mut reader, done)| {
            let path = path.clone();
            async move {
                if done {
                    return None;
                }
                let reply = match first {
                    Some(reply) => Ok(reply),
                    None => reader.next().await,
                };
                match reply {
                    Ok(Reply::Data(chunk)) => Some((Ok(Bytes::from(chunk)), (None, reader, false))),
                    Ok(Reply::Done) => None,
                    Ok(other) => Some((Err(anyhow!(unexpected(&other))), (None, reader, true))),
                    Err(e) => Some((
                        Err(anyhow::Error::new(e).context(format!("reading `{path}`"))),
                        (None, reader, true),
                    )),
                }
            }
        },
    );
    Ok(Some(Box::pin(stream)))
}

/// A request followed by `content` as `Data` and an `End`; `Done` when it was written.
async fn upload(client: &Client, request: Request, content: Bytes) -> Result<(), ClientError> {
    let (writer, mut reader) = client.call(request).await?.split();
    let send = async {
        writer.send(content.to_vec()).await?;
        writer.end().await
    };
    // An agent that refuses the request early answers while we still send: its answer wins.
    let (sent, reply) = tokio::join!(send, reader.next());
    match reply? {
        Reply::Done => sent,
        other => Err(unexpected(&other)),
    }
}

/// Calls whose whole answer is one reply.
async fn only_reply(client: &Client, request: Request) -> Result<Reply, ClientError> {
    let (_, mut reader) = client.call(request).await?.split();
    reader.next().await
}

fn unexpected(reply: &Reply) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {reply:?}"))
}

fn join(dir: &str, path: &str) -> String {
    format!(
        "{}/{}",
        dir.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

fn file_stat(stat: StatInfo) -> FileStat {
    FileStat {
        kind: match stat.kind {
            proto::FileKind::File => FileKind::File,
            proto::FileKind::Dir => FileKind::Dir,
            proto::FileKind::Symlink => FileKind::Symlink,
            proto::FileKind::Other => FileKind::Other,
        },
        size: stat.size,
        mode: stat.mode & 0o7777,
        link_target: stat.link_target,
    }
}

#[cfg(test)]
mod tests {
    use super::join;

    #[test]
    fn entries_join_their_directory() {
        assert_eq!(join("/w", "a/b"), "/w/a/b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/w/", "a"), "/w/a");
    }
}

//! Files in a sandbox seen through a `Manager`'s archives: what is at a path, an archive as a
//! byte stream, a path's parent and name. `enclave cp` and `enclave mcp`'s file tools share them.

use std::io;

use anyhow::{Context, Result};
use futures_util::TryStreamExt;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::Manager;
use crate::error::Error;
use crate::model::{ArchiveStream, Sandbox};

/// What there is at a path (a sandbox's or ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    /// A file, a symlink, anything else that is not a directory.
    Other,
}

/// `/a/b/c` → (`/a/b`, `c`); a trailing `/` is ignored.
pub(crate) fn split_sandbox_path(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some(("", name)) => ("/".into(), name.into()),
        Some((parent, name)) => (parent.into(), name.into()),
        None => ("/".into(), trimmed.into()),
    }
}

/// What is at `path` in the sandbox, from the first entry of its archive (the rest is never
/// read).
pub(crate) async fn probe(
    manager: &dyn Manager,
    sandbox: &Sandbox,
    path: &str,
) -> Result<Option<Kind>> {
    let archive = match manager.get_archive(sandbox, path).await {
        Ok(archive) => archive,
        Err(e) if matches!(crate::error::find(&e), Some(Error::PathNotFound { .. })) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let reader = SyncIoBridge::new(reader_of(archive));
    let kind = tokio::task::spawn_blocking(move || -> Result<Kind> {
        let mut archive = tar::Archive::new(reader);
        let first = archive.entries()?.next().context("an empty archive")??;
        Ok(if first.header().entry_type().is_dir() {
            Kind::Dir
        } else {
            Kind::Other
        })
    })
    .await
    .context("looking at the destination")?
    .with_context(|| format!("looking at `{path}` in the sandbox"))?;
    Ok(Some(kind))
}

pub(crate) fn reader_of(archive: ArchiveStream) -> impl tokio::io::AsyncRead + Send + Unpin {
    StreamReader::new(archive.map_err(|e| io::Error::other(format!("{e:#}"))))
}

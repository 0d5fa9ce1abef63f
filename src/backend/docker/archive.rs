//! Files in a container through the engine's archive API (tar), so paths never pass through a
//! shell and file contents never pass through a process in the container.

use std::io::Read;

use anyhow::{Context, Result};
use bollard::query_parameters::{
    ContainerArchiveInfoOptions, DownloadFromContainerOptions, UploadToContainerOptions,
};
use bytes::Bytes;
use futures_util::TryStreamExt;

use super::{engine_error, status_code, DockerEngine};
use crate::backend::{FileKind, FileStat, NewEntry};
use crate::error::Error;
use crate::model::{ArchiveStream, Capture, ExecEnd, ExecSpec};

/// Go's `os.FileMode` bits, as the engine reports modes.
mod go_mode {
    pub(super) const DIR: u32 = 1 << 31;
    pub(super) const SYMLINK: u32 = 1 << 27;
    pub(super) const SETUID: u32 = 1 << 23;
    pub(super) const SETGID: u32 = 1 << 22;
    pub(super) const STICKY: u32 = 1 << 20;
    /// Every type bit: dir, symlink, device, pipe, socket, char device, irregular.
    pub(super) const TYPE: u32 =
        DIR | SYMLINK | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19);
}

/// Tar headers, long-name records and padding come on top of a file's content.
const TAR_SLACK: u64 = 64 * 1024;

impl DockerEngine {
    /// Stats `path` without a process in the container; `None` when it does not exist.
    pub(super) async fn stat_path(&self, container: &str, path: &str) -> Result<Option<FileStat>> {
        let options = ContainerArchiveInfoOptions {
            path: path.to_string(),
        };
        match self
            .api()
            .await?
            .get_container_archive_info(container, Some(options))
            .await
        {
            Ok(stat) => Ok(Some(FileStat {
                kind: kind_of(stat.file_mode),
                size: u64::try_from(stat.size).unwrap_or(0),
                mode: permissions_of(stat.file_mode),
                link_target: stat.link_target,
            })),
            Err(e) if status_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(engine_error(e)).with_context(|| format!("looking up `{path}`")),
        }
    }

    /// The content of the file at `path`, from a tar of it; `None` once it passes `max_bytes`.
    pub(super) async fn read_file(
        &self,
        container: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>> {
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let mut stream = self
            .api()
            .await?
            .download_from_container(container, Some(options));
        let mut tar = Vec::new();
        let limit = max_bytes.saturating_add(TAR_SLACK);
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(engine_error)
            .with_context(|| format!("copying `{path}` out of the container"))?
        {
            if (tar.len() + chunk.len()) as u64 > limit {
                return Ok(None);
            }
            tar.extend_from_slice(&chunk);
        }
        let mut archive = tar::Archive::new(&tar[..]);
        let mut entries = archive.entries()?;
        let Some(entry) = entries.next() else {
            anyhow::bail!("the engine sent an empty archive for `{path}`");
        };
        let mut entry = entry?;
        if entry.size() > max_bytes {
            return Ok(None);
        }
        let mut content = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry.read_to_end(&mut content)?;
        Ok(Some(content))
    }

    /// Extracts `entries` into `dir` (which must exist). An entry that would replace a directory
    /// with a file (or the other way round) is an error instead of deleting the directory, and
    /// what is written belongs to the container's user rather than root.
    pub(super) async fn put(
        &self,
        container: &str,
        dir: &str,
        entries: Vec<NewEntry>,
    ) -> Result<()> {
        let tar = tar_of(entries).context("packing the files")?;
        let options = UploadToContainerOptions {
            path: dir.to_string(),
            no_overwrite_dir_non_dir: Some("true".into()),
            copy_uidgid: Some("true".into()),
        };
        self.api()
            .await?
            .upload_to_container(
                container,
                Some(options),
                bollard::body_full(Bytes::from(tar)),
            )
            .await
            .map_err(engine_error)
            .with_context(|| format!("copying files into `{dir}`"))
    }

    /// Extracts a caller's tar archive into `dir`, made first. Extraction is the engine's own, so
    /// no process in the container sees the bytes.
    pub(super) async fn put_archive(&self, container: &str, dir: &str, tar: Bytes) -> Result<()> {
        if dir.trim().is_empty() {
            return Err(Error::Usage("the target directory must not be empty".into()).into());
        }
        self.make_dirs(container, dir).await?;
        let options = UploadToContainerOptions {
            path: dir.to_string(),
            no_overwrite_dir_non_dir: None,
            copy_uidgid: None,
        };
        self.api()
            .await?
            .upload_to_container(container, Some(options), bollard::body_full(tar))
            .await
            .map_err(engine_error)
            .with_context(|| format!("extracting the archive into `{dir}`"))
    }

    /// `path` as a tar stream, as `docker cp` reads it; `None` when nothing is there.
    pub(super) async fn get_archive(
        &self,
        container: &str,
        path: &str,
    ) -> Result<Option<ArchiveStream>> {
        if self.stat_path(container, path).await?.is_none() {
            return Ok(None);
        }
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let path = path.to_string();
        let stream = self
            .api()
            .await?
            .download_from_container(container, Some(options))
            .map_err(move |e| engine_error(e).context(format!("reading `{path}`")));
        Ok(Some(Box::pin(stream)))
    }

    /// `mkdir -p`, run as the container's user so the directories are theirs.
    pub(super) async fn make_dirs(&self, container: &str, dir: &str) -> Result<()> {
        let mut spec = ExecSpec::new(vec!["mkdir".into(), "-p".into(), "--".into(), dir.into()]);
        spec.timeout = Some(super::exec::HELPER_TIMEOUT);
        let mut capture = Capture::new(4096);
        let outcome = self.exec(container, spec, &mut capture).await?;
        if outcome.end == ExecEnd::Exited(Some(0)) {
            return Ok(());
        }
        let (stderr, _) = capture.stderr.into_text();
        anyhow::bail!(
            "cannot create `{dir}`: {}",
            if stderr.trim().is_empty() {
                format!("`mkdir` ended with {:?}", outcome.end)
            } else {
                stderr.trim_end().to_string()
            }
        )
    }
}

fn kind_of(mode: u32) -> FileKind {
    if mode & go_mode::DIR != 0 {
        FileKind::Dir
    } else if mode & go_mode::SYMLINK != 0 {
        FileKind::Symlink
    } else if mode & go_mode::TYPE == 0 {
        FileKind::File
    } else {
        FileKind::Other
    }
}

/// Go's mode bits to the `0o7777` permission bits everyone else uses.
fn permissions_of(mode: u32) -> u32 {
    let mut bits = mode & 0o777;
    for (go, unix) in [
        (go_mode::SETUID, 0o4000),
        (go_mode::SETGID, 0o2000),
        (go_mode::STICKY, 0o1000),
    ] {
        if mode & go != 0 {
            bits |= unix;
        }
    }
    bits
}

pub(crate) fn tar_of(entries: Vec<NewEntry>) -> std::io::Result<Vec<u8>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(now);
        match entry {
            NewEntry::Dir { path, mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(mode);
                header.set_size(0);
                builder.append_data(&mut header, format!("{path}/"), std::io::empty())?;
            }
            NewEntry::File {
                path,
                content,
                mode,
            } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(mode);
                header.set_size(content.len() as u64);
                builder.append_data(&mut header, path, &content[..])?;
            }
        }
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_modes_become_kinds_and_permissions() {
        assert_eq!(kind_of(go_mode::DIR | 0o755), FileKind::Dir);
        assert_eq!(kind_of(go_mode::SYMLINK | 0o777), FileKind::Symlink);
        assert_eq!(kind_of(0o644), FileKind::File);
        assert_eq!(kind_of((1 << 26) | (1 << 21) | 0o666), FileKind::Other);
        assert_eq!(permissions_of(go_mode::SETUID | 0o755), 0o4755);
        assert_eq!(
            permissions_of(go_mode::DIR | go_mode::STICKY | 0o777),
            0o1777
        );
    }

    #[test]
    fn entries_round_trip_with_odd_names() {
        let name = "a \"b\" $(touch x) 'c' é.txt";
        let long = "n".repeat(200);
        let tar = tar_of(vec![
            NewEntry::Dir {
                path: "d".into(),
                mode: 0o700,
            },
            NewEntry::File {
                path: format!("d/{name}"),
                content: b"\x00\xffdata".to_vec(),
                mode: 0o755,
            },
            NewEntry::File {
                path: long.clone(),
                content: b"x".to_vec(),
                mode: 0o644,
            },
        ])
        .unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut entries = archive.entries().unwrap();
        let dir = entries.next().unwrap().unwrap();
        assert_eq!(dir.header().entry_type(), tar::EntryType::Directory);
        let mut file = entries.next().unwrap().unwrap();
        assert_eq!(file.path().unwrap().to_str().unwrap(), format!("d/{name}"));
        assert_eq!(file.header().mode().unwrap(), 0o755);
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, b"\x00\xffdata");
        let last = entries.next().unwrap().unwrap();
        assert_eq!(last.path().unwrap().to_str().unwrap(), long);
    }
}

//! Copying files into and out of a container through the engine's archive API (tar), so paths
//! never pass through a shell.

use anyhow::{Context, Result};
use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use bytes::Bytes;
use futures_util::TryStreamExt;

use super::{engine_error, DockerBackend};

/// What the engine reports about a path (`lstat`; for a symlink, `link_target` is where it
/// leads, resolved inside the container).
#[derive(Debug, Clone)]
pub struct PathStat {
    pub size: u64,
    /// Go's `os.FileMode` bits.
    pub mode: u32,
    pub link_target: String,
}

impl PathStat {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    /// Every type bit of `os.FileMode`: dir, symlink, device, pipe, socket, char device, irregular.
    const TYPE: u32 =
        Self::DIR | Self::SYMLINK | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19);

    pub fn is_dir(&self) -> bool {
        self.mode & Self::DIR != 0
    }

    pub fn is_symlink(&self) -> bool {
        self.mode & Self::SYMLINK != 0
    }

    pub fn is_file(&self) -> bool {
        self.mode & Self::TYPE == 0
    }
}

impl DockerBackend {
    /// Stats `path` without a process in the container; `None` when it does not exist.
    pub async fn stat_path(&self, container: &str, path: &str) -> Result<Option<PathStat>> {
        let options = bollard::query_parameters::ContainerArchiveInfoOptions {
            path: path.to_string(),
        };
        match self
            .docker
            .get_container_archive_info(container, Some(options))
            .await
        {
            Ok(stat) => Ok(Some(PathStat {
                size: u64::try_from(stat.size).unwrap_or(0),
                mode: stat.file_mode,
                link_target: stat.link_target,
            })),
            Err(e) if super::status_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(engine_error(e)).with_context(|| format!("looking up `{path}`")),
        }
    }

    /// A tar archive of `path` (a file or a directory) in the container; gives up (`None`)
    /// once the archive passes `max_bytes`.
    pub async fn download_tar_capped(
        &self,
        container: &str,
        path: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>> {
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let mut stream = self
            .docker
            .download_from_container(container, Some(options));
        let mut tar = Vec::new();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(engine_error)
            .with_context(|| format!("copying `{path}` out of the container"))?
        {
            if (tar.len() + chunk.len()) as u64 > max_bytes {
                return Ok(None);
            }
            tar.extend_from_slice(&chunk);
        }
        Ok(Some(tar))
    }

    /// Extracts a tar archive into `dir` in the container (which must exist). An entry that
    /// would replace a directory with a file (or the other way round) is an error instead of
    /// deleting the directory, and the files belong to the container's user rather than root.
    pub async fn upload_tar_keeping_dirs(
        &self,
        container: &str,
        dir: &str,
        tar: Vec<u8>,
    ) -> Result<()> {
        let options = UploadToContainerOptions {
            path: dir.to_string(),
            no_overwrite_dir_non_dir: Some("true".into()),
            copy_uidgid: Some("true".into()),
        };
        self.docker
            .upload_to_container(
                container,
                Some(options),
                bollard::body_full(Bytes::from(tar)),
            )
            .await
            .map_err(engine_error)
            .with_context(|| format!("copying files into `{dir}`"))
    }
}

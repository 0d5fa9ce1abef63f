//! Copying files into and out of a container through the engine's archive API (tar), so paths
//! never pass through a shell.

use anyhow::{Context, Result};
use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use bytes::Bytes;
use futures_util::TryStreamExt;

use super::{engine_error, DockerBackend};

impl DockerBackend {
    /// Extracts a tar archive into `dir` in the container (the directory must exist).
    pub async fn upload_tar(&self, container: &str, dir: &str, tar: Vec<u8>) -> Result<()> {
        let options = UploadToContainerOptions {
            path: dir.to_string(),
            ..Default::default()
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

    /// A tar archive of `path` (a file or a directory) in the container.
    pub async fn download_tar(&self, container: &str, path: &str) -> Result<Vec<u8>> {
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let chunks: Vec<Bytes> = self
            .docker
            .download_from_container(container, Some(options))
            .map_err(engine_error)
            .try_collect()
            .await
            .with_context(|| format!("copying `{path}` out of the container"))?;
        Ok(chunks.concat())
    }
}

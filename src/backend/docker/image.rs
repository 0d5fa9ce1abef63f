//! Images: use what is local, pull what is missing (with progress), read the image's defaults.

use anyhow::Result;
use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;

use super::{engine_error, status_code, DockerEngine, ImageDefaults};
use crate::error::Error;
use crate::model::PullObserver;

impl DockerEngine {
    /// Makes sure `image` exists locally, pulling it when it does not.
    pub(crate) async fn ensure_image(
        &self,
        image: &str,
        platform: Option<&str>,
        observer: &dyn PullObserver,
    ) -> Result<ImageDefaults> {
        match self.image_defaults(image).await {
            Ok(Some(defaults)) => return Ok(defaults),
            Ok(None) => {}
            Err(e) => return Err(e),
        }
        observer.started(image);
        let pulled = self.pull(image, platform, observer).await;
        observer.finished();
        pulled?;
        self.image_defaults(image).await?.ok_or_else(|| {
            Error::ImageUnavailable {
                image: image.to_string(),
                detail: "the pull finished but the engine does not list the image".into(),
            }
            .into()
        })
    }

    async fn pull(
        &self,
        image: &str,
        platform: Option<&str>,
        observer: &dyn PullObserver,
    ) -> Result<()> {
        let (repo, tag) = split_reference(image);
        let options = CreateImageOptions {
            from_image: Some(repo.to_string()),
            tag: Some(tag.to_string()),
            platform: platform.unwrap_or_default().to_string(),
            ..Default::default()
        };
        let unavailable = |detail: String| Error::ImageUnavailable {
            image: image.to_string(),
            detail,
        };
        let mut stream = self.api().await?.create_image(Some(options), None, None);
        while let Some(event) = stream.next().await {
            let event = event.map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError { message, .. } => {
                    anyhow::Error::from(unavailable(message))
                }
                bollard::errors::Error::DockerStreamError { error } => unavailable(error).into(),
                other => engine_error(other),
            })?;
            if let Some(detail) = event.error_detail.and_then(|d| d.message) {
                return Err(unavailable(detail).into());
            }
            if let (Some(id), Some(progress)) = (event.id.as_deref(), event.progress_detail) {
                if let (Some(current), Some(total)) = (progress.current, progress.total) {
                    observer.layer(id, current.max(0) as u64, total.max(0) as u64);
                }
            }
        }
        Ok(())
    }

    /// What the image provides, or `None` when the engine does not have it.
    pub(super) async fn image_defaults(&self, image: &str) -> Result<Option<ImageDefaults>> {
        let inspect = match self.api().await?.inspect_image(image).await {
            Ok(inspect) => inspect,
            Err(e) if status_code(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(engine_error(e)),
        };
        let config = inspect.config.unwrap_or_default();
        let entrypoint = config.entrypoint.unwrap_or_default();
        let cmd = config.cmd.unwrap_or_default();
        Ok(Some(ImageDefaults {
            has_command: !cmd.is_empty() || !entrypoint.is_empty(),
            has_path: config
                .env
                .unwrap_or_default()
                .iter()
                .any(|e| e.starts_with("PATH=")),
            entrypoint,
            cmd,
            architecture: inspect.architecture.unwrap_or_default(),
        }))
    }
}

/// `repo[:tag][@digest]` → (repo, tag-or-digest); the tag defaults to `latest`.
fn split_reference(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    match image.rsplit_once(':') {
        // A colon before the last slash belongs to a registry port, not a tag.
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references_split_into_repo_and_tag() {
        assert_eq!(split_reference("python:3.11-slim"), ("python", "3.11-slim"));
        assert_eq!(split_reference("python"), ("python", "latest"));
        assert_eq!(split_reference("reg:5000/app"), ("reg:5000/app", "latest"));
        assert_eq!(split_reference("reg:5000/app:v1"), ("reg:5000/app", "v1"));
        assert_eq!(split_reference("app@sha256:abc"), ("app", "sha256:abc"));
    }
}

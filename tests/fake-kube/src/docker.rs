//! The local Docker engine: connecting, and finding or removing this fake's containers.

use std::collections::HashMap;

use anyhow::{Context, Result};
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use bollard::Docker;

pub(crate) const LABEL_INSTANCE: &str = "fake-kube.instance";
pub(crate) const LABEL_POD: &str = "fake-kube.pod";

/// Connects to the local engine at the API version it speaks (Debian's speaks 1.41).
pub(crate) async fn connect() -> Result<Docker> {
    Docker::connect_with_local_defaults()
        .context("connecting to the local Docker engine")?
        .negotiate_version()
        .await
        .context("negotiating the Docker API version")
}

/// The ids of the containers labelled with fake instance `instance`.
pub(crate) async fn list_instance(instance: &str) -> Result<Vec<String>> {
    let docker = connect().await?;
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_INSTANCE}={instance}")],
    )]);
    let options = ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(options))
        .await
        .context("listing the fake's containers")?;
    Ok(containers.into_iter().filter_map(|c| c.id).collect())
}

/// Removes every container of fake instance `instance`.
pub(crate) async fn remove_instance(instance: &str) -> Result<()> {
    let docker = connect().await?;
    for id in list_instance(instance).await? {
        remove(&docker, &id).await?;
    }
    Ok(())
}

/// Kills and removes a container; one already gone is fine.
pub(crate) async fn remove(docker: &Docker, id: &str) -> Result<()> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing container {id}")),
    }
}

/// Whether the engine answered 404.
pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

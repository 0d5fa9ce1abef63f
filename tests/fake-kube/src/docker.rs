//! The local Docker engine: connecting, and finding or removing this fake's containers and
//! volumes.

use std::collections::HashMap;

use anyhow::{Context, Result};
use bollard::query_parameters::{
    ListContainersOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
};
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
    let options = ListContainersOptions {
        all: true,
        filters: Some(instance_filter(instance)),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(options))
        .await
        .context("listing the fake's containers")?;
    Ok(containers.into_iter().filter_map(|c| c.id).collect())
}

/// The names of the volumes labelled with fake instance `instance`.
pub(crate) async fn list_instance_volumes(instance: &str) -> Result<Vec<String>> {
    let docker = connect().await?;
    let options = ListVolumesOptions {
        filters: Some(instance_filter(instance)),
    };
    let volumes = docker
        .list_volumes(Some(options))
        .await
        .context("listing the fake's volumes")?;
    Ok(volumes
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect())
}

fn instance_filter(instance: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_INSTANCE}={instance}")],
    )])
}

/// Removes every container of fake instance `instance`, then its volumes (which a container
/// still using them would keep).
pub(crate) async fn remove_instance(instance: &str) -> Result<()> {
    let docker = connect().await?;
    for id in list_instance(instance).await? {
        remove(&docker, &id).await?;
    }
    for name in list_instance_volumes(instance).await? {
        remove_volume(&docker, &name).await?;
    }
    Ok(())
}

/// Creates the Docker volume `name` for an `emptyDir` of pod `pod` (`namespace/name`).
pub(crate) async fn create_volume(
    docker: &Docker,
    name: &str,
    instance: &str,
    pod: &str,
) -> Result<()> {
    let request = bollard::models::VolumeCreateRequest {
        name: Some(name.to_string()),
        driver: Some("local".to_string()),
        labels: Some(HashMap::from([
            (LABEL_INSTANCE.to_string(), instance.to_string()),
            (LABEL_POD.to_string(), pod.to_string()),
        ])),
        ..Default::default()
    };
    docker
        .create_volume(request)
        .await
        .with_context(|| format!("creating volume {name}"))?;
    Ok(())
}

/// Removes a volume; one already gone is fine.
pub(crate) async fn remove_volume(docker: &Docker, name: &str) -> Result<()> {
    match docker
        .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing volume {name}")),
    }
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

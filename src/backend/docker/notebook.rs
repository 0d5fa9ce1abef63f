//! What makes a container a notebook sandbox: Jupyter Kernel Gateway as its command, with a
//! token, on a loopback port; reading that port and token back; and building the notebook image.

use std::collections::HashMap;

use anyhow::{Context, Result};
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{BuildImageOptions, InspectContainerOptions, LogsOptions};
use futures_util::StreamExt;

use super::{engine_error, DockerEngine, ImageDefaults};
use crate::backend::NewEntry;
use crate::error::Error;
use crate::model::PullObserver;

/// The gateway's auth token, so a later command (another process) can reach it.
pub(super) const LABEL_TOKEN: &str = "enclave.notebook.token";
/// Where the gateway listens in the container.
const GATEWAY_PORT: &str = "8888/tcp";
/// The gateway is configured through its environment, so a config's own `command` (say, a
/// gateway with more options) still gets the token, the port and kernel listing.
const GATEWAY_COMMAND: [&str; 2] = ["jupyter", "kernelgateway"];
/// Where enclave's gateway configuration goes in the container (`gateway_config.py`: why).
const CONFIG_DIR: &str = ".enclave-notebook";
const GATEWAY_CONFIG: &str = include_str!("gateway_config.py");

/// A notebook container's gateway settings.
#[derive(Debug, Clone)]
pub(crate) struct NotebookSetup {
    pub(crate) token: String,
    /// The host port on 127.0.0.1; empty: a free one the engine picks.
    pub(crate) host_port: String,
}

/// Where a notebook sandbox's gateway answers, on this host.
#[derive(Debug, Clone)]
pub(crate) struct GatewayEndpoint {
    pub(crate) port: u16,
    pub(crate) token: String,
}

impl NotebookSetup {
    pub(super) fn labels(&self) -> [(String, String); 1] {
        [(LABEL_TOKEN.into(), self.token.clone())]
    }

    /// Runs the gateway (unless the config named a command) and publishes its port on loopback
    /// only: whoever reaches the port can run code, so only this host may, and with the token.
    pub(super) fn apply(
        &self,
        body: &mut ContainerCreateBody,
        host_config: &mut HostConfig,
        own_command: bool,
    ) {
        if !own_command {
            body.cmd = Some(GATEWAY_COMMAND.iter().map(ToString::to_string).collect());
        }
        body.env.get_or_insert_with(Vec::new).extend([
            format!("KG_AUTH_TOKEN={}", self.token),
            "KG_IP=0.0.0.0".into(),
            "KG_PORT=8888".into(),
            "KG_PORT_RETRIES=0".into(),
            // Off by default in the gateway; enclave finds a sandbox's kernel by listing.
            "KG_LIST_KERNELS=True".into(),
            format!("JUPYTER_CONFIG_PATH=/{CONFIG_DIR}"),
        ]);
        body.exposed_ports
            .get_or_insert_with(Default::default)
            .push(GATEWAY_PORT.into());
        host_config
            .port_bindings
            .get_or_insert_with(HashMap::new)
            .insert(
                GATEWAY_PORT.into(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(self.host_port.clone()),
                }]),
            );
    }
}

impl DockerEngine {
    /// Puts enclave's gateway configuration into the created (not yet started) container.
    pub(super) async fn put_gateway_config(&self, container_id: &str) -> Result<()> {
        let entries = vec![
            NewEntry::Dir {
                path: CONFIG_DIR.into(),
                mode: 0o755,
            },
            NewEntry::File {
                path: format!("{CONFIG_DIR}/jupyter_kernel_gateway_config.py"),
                content: GATEWAY_CONFIG.as_bytes().to_vec(),
                mode: 0o644,
            },
        ];
        self.put(container_id, "/", entries)
            .await
            .context("writing the kernel gateway's configuration into the container")
    }

    /// The gateway's host port (as the engine published it) and token (from the label).
    pub(crate) async fn gateway_endpoint(&self, container_id: &str) -> Result<GatewayEndpoint> {
        let info = self
            .api()
            .await?
            .inspect_container(container_id, None::<InspectContainerOptions>)
            .await
            .map_err(engine_error)
            .context("looking up the notebook gateway's port")?;
        let token = info
            .config
            .and_then(|c| c.labels)
            .and_then(|mut l| l.remove(LABEL_TOKEN))
            .ok_or_else(|| {
                anyhow::anyhow!("the container has no `{LABEL_TOKEN}` label: it was not made as a notebook sandbox")
            })?;
        let port = info
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|mut p| p.remove(GATEWAY_PORT).flatten())
            .and_then(|bindings| {
                bindings
                    .into_iter()
                    .find_map(|b| b.host_port.and_then(|p| p.parse::<u16>().ok()))
            })
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the container publishes no host port for the gateway ({GATEWAY_PORT})"
                )
            })?;
        Ok(GatewayEndpoint { port, token })
    }

    /// The last `lines` lines the container printed, for an error that needs them.
    pub(crate) async fn log_tail(&self, container_id: &str, lines: usize) -> String {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let Ok(api) = self.api().await else {
            return String::new();
        };
        let mut stream = api.logs(container_id, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        text.trim_end().to_string()
    }

    /// Makes sure `image` exists, building it from `dockerfile` when it does not (the notebook
    /// image is on no registry: enclave carries its recipe, as ms-enclave does).
    pub(crate) async fn ensure_built(
        &self,
        image: &str,
        dockerfile: &str,
        build_args: HashMap<String, String>,
        observer: &dyn PullObserver,
    ) -> Result<ImageDefaults> {
        if let Some(defaults) = self.image_defaults(image).await? {
            return Ok(defaults);
        }
        // Steps, not a pull's bytes: the observer shows the build from its first line.
        observer.build_step(image, "starting the build");
        let built = self
            .build_image(image, dockerfile, build_args, observer)
            .await;
        observer.finished();
        built?;
        self.image_defaults(image).await?.ok_or_else(|| {
            Error::ImageUnavailable {
                image: image.to_string(),
                detail: "the build finished but the engine does not list the image".into(),
            }
            .into()
        })
    }

    /// Builds `tag` from a Dockerfile alone (no other context), reporting each step.
    pub(crate) async fn build_image(
        &self,
        tag: &str,
        dockerfile: &str,
        build_args: HashMap<String, String>,
        observer: &dyn PullObserver,
    ) -> Result<()> {
        let context = dockerfile_tar(dockerfile).context("packing the Dockerfile")?;
        let options = BuildImageOptions {
            t: Some(tag.to_string()),
            buildargs: Some(build_args),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        let failed = |detail: String| Error::ImageUnavailable {
            image: tag.to_string(),
            detail: format!("building it failed: {detail}"),
        };
        let api = self.api().await?;
        let mut stream = api.build_image(options, None, Some(bollard::body_full(context.into())));
        while let Some(event) = stream.next().await {
            let event = event.map_err(|e| match e {
                bollard::errors::Error::DockerStreamError { error } => failed(error).into(),
                bollard::errors::Error::DockerResponseServerError { message, .. } => {
                    failed(message).into()
                }
                other => engine_error(other),
            })?;
            if let Some(detail) = event.error_detail.and_then(|d| d.message) {
                return Err(failed(detail).into());
            }
            if let Some(line) = event.stream {
                let line = line.trim();
                if !line.is_empty() {
                    observer.build_step(tag, line);
                }
            }
        }
        Ok(())
    }
}

/// A build context holding one file, `Dockerfile`.
fn dockerfile_tar(dockerfile: &str) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_is_published_on_loopback_with_its_token() {
        let setup = NotebookSetup {
            token: "t0k".into(),
            host_port: String::new(),
        };
        let mut body = ContainerCreateBody::default();
        let mut host = HostConfig::default();
        setup.apply(&mut body, &mut host, false);
        assert_eq!(body.cmd.unwrap(), ["jupyter", "kernelgateway"]);
        assert!(body.env.unwrap().contains(&"KG_AUTH_TOKEN=t0k".to_string()));
        let binding = &host.port_bindings.unwrap()[GATEWAY_PORT];
        let binding = &binding.as_ref().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some(""));
    }

    #[test]
    fn the_build_context_is_the_dockerfile_alone() {
        let tar = dockerfile_tar("FROM scratch\n").unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["Dockerfile"]);
    }
}

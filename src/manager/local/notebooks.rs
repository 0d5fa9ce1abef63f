//! `docker_notebook` sandboxes on the local engine: the image (built when it is the default and
//! missing), the gateway's token and port, its kernel at create, and the kernel each later call
//! or session uses.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};

use super::LocalManager;
use crate::backend::docker::{ImageDefaults, NotebookSetup};
use crate::error::Error;
use crate::model::{
    random_hex, DockerSandboxConfig, PullObserver, Sandbox, SandboxType, DEFAULT_NOTEBOOK_IMAGE,
};
use crate::notebook::{self, Gateway, Kernel, SharedKernel};

/// How long a new sandbox's gateway may take to answer (Python imports on a busy host).
const GATEWAY_PATIENCE: Duration = Duration::from_secs(90);
/// Lines of the container's output an error about its gateway shows.
const LOG_LINES: usize = 20;

/// The image a notebook sandbox runs when its config names none.
pub(super) fn default_image() -> String {
    std::env::var("ENCLAVE_NOTEBOOK_IMAGE")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_NOTEBOOK_IMAGE.to_string())
}

/// The base the default image is built from (`ARG BASE` of the Dockerfile).
fn build_args() -> HashMap<String, String> {
    std::env::var("ENCLAVE_NOTEBOOK_BASE")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|base| HashMap::from([("BASE".to_string(), base)]))
        .unwrap_or_default()
}

/// The gateway's settings for a new notebook sandbox: the config's token or a random one, the
/// config's port when it is free here, else one the engine picks.
pub(super) fn setup(config: &DockerSandboxConfig, warn: &dyn Fn(&str)) -> NotebookSetup {
    let host_port = match config.port {
        Some(port) if port > 0 => {
            if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
                port.to_string()
            } else {
                warn(&format!(
                    "port {port} is taken on 127.0.0.1; the notebook gateway gets a free port instead"
                ));
                String::new()
            }
        }
        _ => String::new(),
    };
    NotebookSetup {
        token: config.token.clone().unwrap_or_else(random_hex),
        host_port,
    }
}

impl LocalManager {
    /// The notebook image, built from the Dockerfile enclave carries when it is the default
    /// one and missing; any other image is pulled as usual.
    pub(super) async fn notebook_image(
        &self,
        image: &str,
        progress: &dyn PullObserver,
    ) -> Result<Option<ImageDefaults>> {
        if image != default_image() {
            return Ok(None);
        }
        let built = self
            .engine
            .ensure_built(image, notebook::DOCKERFILE, build_args(), progress)
            .await?;
        Ok(Some(built))
    }

    /// Waits for a new sandbox's gateway and starts its kernel. The caller removes the sandbox
    /// when this fails.
    pub(super) async fn start_kernel(
        &self,
        id: &str,
        container_id: &str,
        config: &DockerSandboxConfig,
    ) -> Result<()> {
        let ready = async {
            let gateway = self.gateway(container_id, config).await?;
            gateway.wait_ready(GATEWAY_PATIENCE).await?;
            Ok::<_, anyhow::Error>(gateway)
        };
        let gateway = match ready.await {
            Ok(gateway) => gateway,
            Err(e) => {
                let tail = self.engine.log_tail(container_id, LOG_LINES).await;
                let shown = if tail.is_empty() {
                    "(it printed nothing)".to_string()
                } else {
                    tail
                };
                return Err(Error::Refused {
                    by: "the notebook sandbox".into(),
                    message: format!(
                        "{e:#}. A docker_notebook sandbox runs `jupyter kernelgateway`: its image \
                         must have Jupyter Kernel Gateway (see docs/notebook.md). The container's \
                         last output:\n{shown}"
                    ),
                }
                .into());
            }
        };
        let (kernel_id, _) = gateway
            .find_or_start()
            .await
            .context("starting the sandbox's kernel")?;
        self.notebooks
            .insert(id, Kernel::with_id(gateway, kernel_id));
        Ok(())
    }

    async fn gateway(&self, container_id: &str, config: &DockerSandboxConfig) -> Result<Gateway> {
        let endpoint = self.engine.gateway_endpoint(container_id).await?;
        let host = config.host.as_deref().unwrap_or("127.0.0.1");
        Ok(Gateway::new(host, endpoint.port, endpoint.token))
    }

    /// The sandbox's kernel for a tool call or a session: kept from an earlier call of this
    /// process, or found through its container's gateway.
    pub(super) async fn kernel_of(&self, sandbox: &Sandbox) -> Result<SharedKernel> {
        if sandbox.sandbox_type != SandboxType::DockerNotebook {
            return Err(Error::Usage(format!(
                "sandbox `{}` is a `{}` sandbox: only `docker_notebook` sandboxes have a kernel",
                sandbox.id,
                sandbox.sandbox_type.as_str()
            ))
            .into());
        }
        if let Some(kernel) = self.notebooks.get(&sandbox.id) {
            return Ok(kernel);
        }
        let container = self.running_container(sandbox)?;
        let gateway = self.gateway(container, &sandbox.config).await?;
        Ok(self.notebooks.insert(&sandbox.id, Kernel::new(gateway)))
    }
}

//! The Docker engine, through bollard. The only module that imports bollard: everything above it
//! speaks domain types.

mod archive;
mod container;
mod exec;
mod image;
mod run;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use bollard::Docker;

use crate::error::Error;

pub use archive::PathStat;
pub use container::{
    ContainerRecord, CreateSpec, Workload, LABEL_CONFIG, LABEL_CREATED, LABEL_ID, LABEL_TOOLS,
    LABEL_TYPE,
};
pub use exec::{ExecEnd, ExecOutcome, ExecSpec, OutputSink};
pub use image::PullObserver;

/// What an image provides itself, which decides our fallbacks.
#[derive(Debug, Clone, Copy)]
pub struct ImageDefaults {
    pub has_command: bool,
    pub has_path: bool,
}

/// How long a single non-streaming engine request may take before we call the engine wedged.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// One connection to one Docker-compatible engine (Docker or Podman), shared by every call.
#[derive(Clone)]
pub struct DockerBackend {
    docker: Docker,
}

impl DockerBackend {
    /// Connects (honouring `DOCKER_HOST`) and agrees on an API version.
    pub async fn connect() -> Result<Self> {
        let unavailable = |e: &dyn std::fmt::Display| Error::DockerUnavailable {
            detail: format!("{}: {e}", engine_address()),
        };
        let docker = Docker::connect_with_defaults()
            .map_err(|e| unavailable(&e))?
            .with_timeout(REQUEST_TIMEOUT);
        // Agreeing on a version is our ping: one round trip proves the engine answers, and
        // Debian's engine speaks API 1.41 where bollard defaults to a newer one.
        let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
            .await
            .map_err(|_| unavailable(&"no answer within 10 s"))?
            .map_err(|e| unavailable(&e))?;
        Ok(DockerBackend { docker })
    }
}

impl DockerBackend {
    pub fn address(&self) -> String {
        engine_address()
    }

    /// The API version agreed with the engine.
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }
}

fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Turns a bollard error into a domain error where callers branch on it.
fn engine_error(err: bollard::errors::Error) -> anyhow::Error {
    use bollard::errors::Error as B;
    match err {
        B::DockerResponseServerError { message, .. } => Error::Engine(message).into(),
        B::HyperResponseError { .. } | B::IOError { .. } | B::RequestTimeoutError => {
            Error::DockerUnavailable {
                detail: format!("{}: {err}", engine_address()),
            }
            .into()
        }
        other => anyhow::Error::new(other),
    }
}

fn status_code(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn label_filter(labels: &[String]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), labels.to_vec())])
}

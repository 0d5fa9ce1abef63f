//! Creating, listing and removing sandbox containers, and the labels that identify them.

use std::collections::HashMap;

use anyhow::{Context, Result};
use bollard::models::{ContainerCreateBody, ContainerSummary, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions,
};
use chrono::{DateTime, Utc};

use super::{engine_error, label_filter, status_code, DockerBackend, ImageDefaults};
use crate::error::Error;
use crate::model::{Command, DockerSandboxConfig, SandboxType};

pub const LABEL_ID: &str = "enclave.id";
pub const LABEL_TYPE: &str = "enclave.type";
pub const LABEL_TOOLS: &str = "enclave.tools";
pub const LABEL_CREATED: &str = "enclave.created";
pub const LABEL_CONFIG: &str = "enclave.config";

/// Used when an image sets no PATH (images made by `docker import` carry no environment).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything needed to create one sandbox container.
pub struct CreateSpec<'a> {
    pub id: &'a str,
    pub sandbox_type: SandboxType,
    pub config: &'a DockerSandboxConfig,
    pub tools: &'a [String],
    pub created: DateTime<Utc>,
    /// Extra labels, e.g. to let tests find what they created.
    pub extra_labels: &'a [(String, String)],
    pub workload: Workload,
}

/// What the container's main process is.
#[derive(Debug, Clone)]
pub enum Workload {
    /// The image's command on an open TTY, kept waiting; commands run as execs.
    KeepAlive,
    /// One command as the main process (ephemeral `run`); the container ends with it.
    Command { argv: Vec<String>, stdin: bool },
}

/// A container that carries our labels, as the engine reports it.
#[derive(Debug, Clone)]
pub struct ContainerRecord {
    pub container_id: String,
    pub sandbox_id: String,
    pub sandbox_type: Option<SandboxType>,
    pub image: String,
    /// Docker's state word: `running`, `exited`, `created`, …
    pub state: String,
    pub tools: Vec<String>,
    pub created: Option<DateTime<Utc>>,
    pub config: Option<DockerSandboxConfig>,
}

impl DockerBackend {
    /// Creates (not starts) the container; returns its id.
    pub async fn create_container(
        &self,
        spec: &CreateSpec<'_>,
        image: &ImageDefaults,
    ) -> Result<String> {
        let body = container_body(spec, image);
        let options = CreateContainerOptions {
            name: Some(container_name(spec.id)),
            platform: spec.config.platform.clone().unwrap_or_default(),
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(engine_error)
            .with_context(|| format!("creating the container for sandbox `{}`", spec.id))?;
        Ok(created.id)
    }

    /// Starts the container and checks that it stays up.
    pub async fn start_container(&self, container_id: &str) -> Result<()> {
        self.docker
            .start_container(container_id, None::<StartContainerOptions>)
            .await
            .map_err(engine_error)
            .context("starting the container")?;
        let info = self
            .docker
            .inspect_container(container_id, None::<InspectContainerOptions>)
            .await
            .map_err(engine_error)?;
        let state = info.state.unwrap_or_default();
        if state.running != Some(true) {
            return Err(Error::Engine(format!(
                "the container exited right after starting (exit code {}); its image's command \
                 must keep running, e.g. a shell reading the TTY",
                state.exit_code.unwrap_or(-1)
            ))
            .into());
        }
        Ok(())
    }

    /// Kills and removes a container with its anonymous volumes. `Ok(false)`: it was already gone.
    pub async fn remove_container(&self, container_id: &str) -> Result<bool> {
        // `force` kills with SIGKILL at once: no 10 s SIGTERM grace for a shell that ignores it.
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self
            .docker
            .remove_container(container_id, Some(options))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if status_code(&e) == Some(404) => Ok(false),
            // 409: a removal is already under way (another `enclave rm`); it will finish it.
            Err(e) if status_code(&e) == Some(409) => Ok(true),
            Err(e) => Err(engine_error(e)).context("removing the container"),
        }
    }

    /// Every container carrying our labels, running or not.
    pub async fn list_sandbox_containers(&self) -> Result<Vec<ContainerRecord>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(label_filter(&[LABEL_ID.to_string()])),
            ..Default::default()
        };
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(engine_error)
            .context("listing containers")?;
        Ok(summaries
            .into_iter()
            .filter_map(record_from_summary)
            .collect())
    }

    /// Docker's state word for one container, or `None` when it no longer exists.
    pub async fn container_state(&self, container_id: &str) -> Result<Option<String>> {
        match self
            .docker
            .inspect_container(container_id, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => Ok(Some(
                info.state
                    .and_then(|s| s.status)
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
            )),
            Err(e) if status_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(engine_error(e)),
        }
    }
}

pub fn container_name(id: &str) -> String {
    format!("enclave-{id}")
}

fn record_from_summary(s: ContainerSummary) -> Option<ContainerRecord> {
    let labels = s.labels.unwrap_or_default();
    let sandbox_id = labels.get(LABEL_ID)?.clone();
    Some(ContainerRecord {
        container_id: s.id.unwrap_or_default(),
        sandbox_id,
        sandbox_type: labels.get(LABEL_TYPE).and_then(|t| SandboxType::parse(t)),
        image: s.image.unwrap_or_default(),
        state: s.state.map(|s| s.to_string()).unwrap_or_default(),
        tools: labels
            .get(LABEL_TOOLS)
            .map(|t| {
                t.split(',')
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        created: labels
            .get(LABEL_CREATED)
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map(|c| c.with_timezone(&Utc)),
        config: labels
            .get(LABEL_CONFIG)
            .and_then(|c| DockerSandboxConfig::from_json(c).ok()),
    })
}

fn labels(spec: &CreateSpec<'_>) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = spec
        .config
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(spec.extra_labels.iter().cloned());
    labels.insert(LABEL_ID.into(), spec.id.into());
    labels.insert(LABEL_TYPE.into(), spec.sandbox_type.as_str().into());
    labels.insert(LABEL_TOOLS.into(), spec.tools.join(","));
    labels.insert(LABEL_CREATED.into(), spec.created.to_rfc3339());
    labels.insert(LABEL_CONFIG.into(), spec.config.to_wire().to_string());
    labels
}

fn container_body(spec: &CreateSpec<'_>, image: &ImageDefaults) -> ContainerCreateBody {
    let config = spec.config;
    let mut env: Vec<String> = config
        .env_vars
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !image.has_path && !config.env_vars.contains_key("PATH") {
        env.push(DEFAULT_PATH.into());
    }
    let port_bindings = port_bindings(config);
    let mut body = ContainerCreateBody {
        image: Some(config.image.clone()),
        env: Some(env),
        working_dir: Some(config.working_dir.clone()),
        labels: Some(labels(spec)),
        exposed_ports: Some(port_bindings.keys().cloned().collect()),
        host_config: Some(host_config(config, port_bindings)),
        ..Default::default()
    };
    match &spec.workload {
        Workload::KeepAlive => {
            body.cmd = match &config.command {
                Some(Command::Argv(argv)) => Some(argv.clone()),
                Some(Command::Text(text)) => {
                    Some(text.split_whitespace().map(String::from).collect())
                }
                None if !image.has_command => Some(vec!["/bin/sh".into()]),
                None => None,
            };
            // An open TTY keeps the image's shell or REPL waiting: the container stays up
            // with whatever command the image has, as in ms-enclave.
            body.tty = Some(true);
            body.open_stdin = Some(true);
        }
        Workload::Command { argv, stdin } => {
            // The command itself, as an exec would run it: the image's entrypoint is bypassed.
            body.entrypoint = Some(argv[..1].to_vec());
            body.cmd = Some(argv[1..].to_vec());
            body.open_stdin = Some(*stdin);
            body.stdin_once = Some(*stdin);
            body.attach_stdin = Some(*stdin);
            body.attach_stdout = Some(true);
            body.attach_stderr = Some(true);
        }
    }
    body
}

fn port_bindings(config: &DockerSandboxConfig) -> HashMap<String, Option<Vec<PortBinding>>> {
    config
        .ports
        .iter()
        .filter_map(|(container_port, spec)| {
            let (ip, port) = spec.host_binding().ok()?;
            let key = if container_port.contains('/') {
                container_port.clone()
            } else {
                format!("{container_port}/tcp")
            };
            Some((
                key,
                Some(vec![PortBinding {
                    host_ip: Some(ip),
                    host_port: Some(port),
                }]),
            ))
        })
        .collect()
}

fn host_config(
    config: &DockerSandboxConfig,
    port_bindings: HashMap<String, Option<Vec<PortBinding>>>,
) -> HostConfig {
    let memory = Some(config.memory_bytes()).filter(|m| *m > 0);
    HostConfig {
        // An init as PID 1 reaps the orphans a killed process tree leaves behind.
        init: Some(true),
        memory,
        // Swap capped at the memory limit: no extra swap beyond it.
        memory_swap: memory,
        cpu_period: Some(100_000),
        cpu_quota: Some((config.cpu_limit * 100_000.0) as i64),
        pids_limit: Some(config.pids_limit).filter(|p| *p > 0),
        security_opt: Some(vec!["no-new-privileges".into()]),
        privileged: Some(config.privileged),
        binds: Some(
            config
                .volumes
                .iter()
                .map(|(host, v)| format!("{host}:{}:{}", v.bind, v.mode))
                .collect(),
        ),
        port_bindings: Some(port_bindings),
        network_mode: if config.network_enabled {
            config.network.clone()
        } else {
            Some("none".into())
        },
        extra_hosts: Some(
            config
                .extra_hosts
                .iter()
                .map(|(host, ip)| format!("{host}:{ip}"))
                .collect(),
        ),
        runtime: config.runtime.clone(),
        ..Default::default()
    }
}

//! Creating, listing and removing sandbox containers, and the labels that identify them.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use bollard::models::{
    ContainerCreateBody, ContainerSummary, HostConfig, Mount, MountType, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions, StopContainerOptions,
};
use chrono::{DateTime, Utc};

use super::agent::{AgentAccess, AgentSetup};
use super::notebook::NotebookSetup;
use super::{
    engine_error, label_filter, revive_hint, status_code, status_of, DockerEngine, ImageDefaults,
};
use crate::error::Error;
use crate::model::{DockerSandboxConfig, SandboxStatus, SandboxType};

const LABEL_ID: &str = "enclave.id";
const LABEL_TYPE: &str = "enclave.type";
const LABEL_TOOLS: &str = "enclave.tools";
const LABEL_CREATED: &str = "enclave.created";
const LABEL_CONFIG: &str = "enclave.config";
/// Which state file created the container (a hash; see `StateStore::owner`).
const LABEL_OWNER: &str = "enclave.owner";

/// Seconds a stopped sandbox's processes get between SIGTERM and SIGKILL.
const STOP_GRACE_SECS: i32 = 1;

/// Used when an image sets no PATH (images made by `docker import` carry no environment).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything needed to create one sandbox container.
pub(crate) struct CreateSpec<'a> {
    pub(crate) id: &'a str,
    pub(crate) sandbox_type: SandboxType,
    pub(crate) config: &'a DockerSandboxConfig,
    pub(crate) tools: &'a [String],
    pub(crate) created: DateTime<Utc>,
    pub(crate) owner: &'a str,
    /// Extra labels, e.g. to let tests find what they created.
    pub(crate) extra_labels: &'a [(String, String)],
    pub(crate) workload: Workload,
    /// Whether a kept-alive sandbox starts under the agent.
    pub(crate) agent: AgentChoice,
    /// A notebook sandbox's gateway (`docker_notebook`).
    pub(crate) notebook: Option<NotebookSetup>,
}

/// Whether a sandbox starts under the in-sandbox agent.
#[derive(Debug, Clone)]
pub(crate) enum AgentChoice {
    Use(AgentSetup),
    /// Not, for this reason (recorded in a label for `inspect`).
    Off(String),
}

/// What the container's main process is.
#[derive(Debug, Clone)]
pub(crate) enum Workload {
    /// The image's command on an open TTY, kept waiting; commands run as execs.
    KeepAlive,
    /// One command as the main process (ephemeral `run`); the container ends with it and the
    /// engine removes it, even if we are killed before we can.
    Command { argv: Vec<String>, stdin: bool },
}

/// A sandbox container's state, in domain words.
#[derive(Debug, Clone)]
pub(crate) struct ContainerState {
    pub(crate) status: SandboxStatus,
    /// For a container that is not running: how to bring it back.
    pub(crate) revive_hint: Option<String>,
}

impl ContainerState {
    fn from_docker(sandbox_id: &str, state: &str) -> Self {
        let status = status_of(state);
        ContainerState {
            status,
            revive_hint: revive_hint(sandbox_id, status),
        }
    }
}

/// A container that carries our labels, as the engine reports it.
#[derive(Debug, Clone)]
pub(crate) struct ContainerRecord {
    pub(crate) container_id: String,
    pub(crate) sandbox_id: String,
    pub(crate) sandbox_type: Option<SandboxType>,
    pub(crate) image: String,
    pub(crate) state: ContainerState,
    pub(crate) tools: Vec<String>,
    pub(crate) created: Option<DateTime<Utc>>,
    pub(crate) config: Option<DockerSandboxConfig>,
    pub(crate) owner: Option<String>,
    /// The creator's extra labels (`CreateSpec::extra_labels`): everything but ours and the
    /// config's.
    pub(crate) extra_labels: BTreeMap<String, String>,
}

impl DockerEngine {
    /// Creates (not starts) the container; returns its id.
    pub(crate) async fn create_container(
        &self,
        spec: &CreateSpec<'_>,
        image: &ImageDefaults,
    ) -> Result<String> {
        let body = container_body(spec, image)?;
        let options = CreateContainerOptions {
            name: Some(container_name(spec.id)),
            platform: spec.config.platform.clone().unwrap_or_default(),
        };
        let created = self
            .api()
            .await?
            .create_container(Some(options), body)
            .await
            .map_err(|e| config_refusal(e, spec.config))
            .with_context(|| format!("creating the container for sandbox `{}`", spec.id))?;
        if spec.notebook.is_some() {
            if let Err(e) = self.put_gateway_config(&created.id).await {
                let _ = self.remove_container(&created.id).await;
                return Err(e);
            }
        }
        Ok(created.id)
    }

    /// Starts the container and checks that it stays up.
    pub(crate) async fn start_container(&self, container_id: &str) -> Result<()> {
        self.api()
            .await?
            .start_container(container_id, None::<StartContainerOptions>)
            .await
            .map_err(engine_error)
            .context("starting the container")?;
        let info = self
            .api()
            .await?
            .inspect_container(container_id, None::<InspectContainerOptions>)
            .await
            .map_err(engine_error)?;
        let state = info.state.unwrap_or_default();
        if state.running != Some(true) {
            return Err(Error::Refused {
                by: "the sandbox".into(),
                message: format!(
                    "its container exited right after starting (exit code {}); its image's \
                     command must keep running, e.g. a shell reading the TTY",
                    state.exit_code.unwrap_or(-1)
                ),
            }
            .into());
        }
        Ok(())
    }

    /// Stops a container: its init forwards SIGTERM, and what still runs after a short grace is
    /// killed (shells on a TTY ignore SIGTERM; waiting Docker's 10 s for them helps no one).
    pub(crate) async fn stop_container(&self, container_id: &str) -> Result<()> {
        let options = StopContainerOptions {
            signal: None,
            t: Some(STOP_GRACE_SECS),
        };
        match self
            .api()
            .await?
            .stop_container(container_id, Some(options))
            .await
        {
            // 304: it was not running.
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(304) => Ok(()),
            Err(e) => Err(engine_error(e)).context("stopping the container"),
        }
    }

    /// Kills and removes a container with its anonymous volumes. `Ok(false)`: it was already gone.
    pub(crate) async fn remove_container(&self, container_id: &str) -> Result<bool> {
        // `force` kills with SIGKILL at once: no 10 s SIGTERM grace for a shell that ignores it.
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        match self
            .api()
            .await?
            .remove_container(container_id, Some(options))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if status_code(&e) == Some(404) => Ok(false),
            // 409: a removal is already under way (another `enclave rm`, or auto-removal).
            Err(e) if status_code(&e) == Some(409) => Ok(true),
            Err(e) => Err(engine_error(e)).context("removing the container"),
        }
    }

    /// Every container carrying our labels, running or not.
    pub(crate) async fn list_sandbox_containers(&self) -> Result<Vec<ContainerRecord>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(label_filter(&[LABEL_ID.to_string()])),
            ..Default::default()
        };
        let summaries = self
            .api()
            .await?
            .list_containers(Some(options))
            .await
            .map_err(engine_error)
            .context("listing containers")?;
        Ok(summaries
            .into_iter()
            .filter_map(record_from_summary)
            .collect())
    }

    /// The state of sandbox `sandbox_id`'s container, or `None` when it no longer exists.
    pub(crate) async fn container_state(
        &self,
        container_id: &str,
        sandbox_id: &str,
    ) -> Result<Option<ContainerState>> {
        match self
            .api()
            .await?
            .inspect_container(container_id, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => {
                let state = info.state.and_then(|s| s.status).map(|s| s.to_string());
                Ok(Some(ContainerState::from_docker(
                    sandbox_id,
                    state.as_deref().unwrap_or_default(),
                )))
            }
            Err(e) if status_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(engine_error(e)),
        }
    }
}

pub(crate) fn container_name(id: &str) -> String {
    format!("enclave-{id}")
}

/// An engine refusal of a config value, as an invalid config naming the field.
fn config_refusal(err: bollard::errors::Error, config: &DockerSandboxConfig) -> anyhow::Error {
    let bollard::errors::Error::DockerResponseServerError { message, .. } = &err else {
        return engine_error(err);
    };
    if message.contains("Range of CPUs") {
        return Error::InvalidConfig(format!(
            "cpu_limit {} is more than the engine has: {message}",
            config.cpu_limit
        ))
        .into();
    }
    if let Some(path) = message.split("bind source path does not exist: ").nth(1) {
        return Error::InvalidConfig(format!(
            "volume `{}`: the host path does not exist",
            path.trim()
        ))
        .into();
    }
    engine_error(err)
}

fn record_from_summary(s: ContainerSummary) -> Option<ContainerRecord> {
    let labels = s.labels.unwrap_or_default();
    let sandbox_id = labels.get(LABEL_ID)?.clone();
    let state = s.state.map(|s| s.to_string()).unwrap_or_default();
    let config = labels
        .get(LABEL_CONFIG)
        .and_then(|c| DockerSandboxConfig::from_json(c).ok());
    Some(ContainerRecord {
        container_id: s.id.unwrap_or_default(),
        sandbox_type: labels.get(LABEL_TYPE).and_then(|t| SandboxType::parse(t)),
        image: s.image.unwrap_or_default(),
        state: ContainerState::from_docker(&sandbox_id, &state),
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
        owner: labels.get(LABEL_OWNER).cloned(),
        extra_labels: extra_labels(&labels, config.as_ref()),
        config,
        sandbox_id,
    })
}

/// The labels a creator added beyond enclave's own and those the config asked for.
fn extra_labels(
    labels: &HashMap<String, String>,
    config: Option<&DockerSandboxConfig>,
) -> BTreeMap<String, String> {
    let configured = |key: &str| config.is_some_and(|c| c.labels.contains_key(key));
    let ours = [
        LABEL_ID,
        LABEL_TYPE,
        LABEL_TOOLS,
        LABEL_CREATED,
        LABEL_CONFIG,
        LABEL_OWNER,
        super::agent::LABEL_AGENT,
        super::agent::LABEL_SECRET,
        super::notebook::LABEL_TOKEN,
    ];
    labels
        .iter()
        .filter(|(k, _)| !ours.contains(&k.as_str()) && !configured(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
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
    labels.insert(LABEL_OWNER.into(), spec.owner.into());
    if matches!(spec.workload, Workload::KeepAlive) {
        let access = match &spec.agent {
            AgentChoice::Use(setup) => setup.access(),
            AgentChoice::Off(reason) => AgentAccess::Off {
                reason: reason.clone(),
            },
        };
        labels.extend(access.labels());
    }
    if let Some(notebook) = &spec.notebook {
        labels.extend(notebook.labels());
    }
    labels
}

fn container_body(spec: &CreateSpec<'_>, image: &ImageDefaults) -> Result<ContainerCreateBody> {
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
    let exposed_ports = port_bindings.keys().cloned().collect();
    let mut host_config = host_config(config, port_bindings);
    let mut body = ContainerCreateBody {
        image: Some(config.image.clone()),
        env: Some(env),
        working_dir: Some(config.working_dir.clone()),
        labels: Some(labels(spec)),
        exposed_ports: Some(exposed_ports),
        ..Default::default()
    };
    match &spec.workload {
        Workload::KeepAlive => {
            let under_agent = matches!(spec.agent, AgentChoice::Use(_));
            body.cmd = match &config.command {
                Some(command) => Some(command.argv().map_err(Error::InvalidConfig)?),
                // Something must keep the container up; under the agent, the agent does, so an
                // image with no command (and perhaps no shell) needs none.
                None if !image.has_command && !under_agent => Some(vec!["/bin/sh".into()]),
                None => None,
            };
            if let Some(notebook) = &spec.notebook {
                notebook.apply(&mut body, &mut host_config, config.command.is_some());
            }
            if let AgentChoice::Use(setup) = &spec.agent {
                start_under_agent(&mut body, &mut host_config, setup, image);
            }
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
            // The backstop: should we die before removing it, the engine still does.
            host_config.auto_remove = Some(true);
        }
    }
    body.host_config = Some(host_config);
    Ok(body)
}

/// The agent becomes the container's init, running what would have run without it (the image's
/// entrypoint with the command chosen above, or the image's own) as its child; an image with
/// neither gets the agent alone.
fn start_under_agent(
    body: &mut ContainerCreateBody,
    host_config: &mut HostConfig,
    setup: &AgentSetup,
    image: &ImageDefaults,
) {
    let cmd = body.cmd.take().unwrap_or_else(|| image.cmd.clone());
    let mut command = image.entrypoint.clone();
    command.extend(cmd);
    body.entrypoint = Some(vec![
        enclave_agent::proto::BINARY_PATH.into(),
        "init".into(),
        "--".into(),
    ]);
    body.cmd = Some(command);
    // Docker sets TERM for a TTY container, but an exec without a TTY never sees it: the
    // agent's commands must not either, unless the config asked for it.
    let env = body.env.get_or_insert_with(Vec::new);
    let drop: &[&str] = if env.iter().any(|e| e.starts_with("TERM=")) {
        &[]
    } else {
        &["TERM"]
    };
    env.extend(setup.env(drop));
    // The agent reaps and forwards signals itself; docker-init would only stand in its way.
    host_config.init = Some(false);
    host_config
        .mounts
        .get_or_insert_with(Vec::new)
        .extend(setup.mounts());
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

/// Volumes as mounts rather than `Binds`: a missing host path is then refused by the engine
/// instead of being created on the host, as root.
fn mounts(config: &DockerSandboxConfig) -> Vec<Mount> {
    config
        .volumes
        .iter()
        .map(|(source, v)| Mount {
            target: Some(v.bind.clone()),
            source: Some(source.clone()),
            typ: Some(if source.starts_with('/') {
                MountType::BIND
            } else {
                MountType::VOLUME
            }),
            read_only: Some(v.mode == "ro"),
            ..Default::default()
        })
        .collect()
}

/// CPU limits in the engine's own unit (billionths of a CPU), which the engine checks against
/// the CPUs it has.
fn nano_cpus(cpus: f64) -> i64 {
    (cpus * 1e9).round() as i64
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
        nano_cpus: Some(nano_cpus(config.cpu_limit)),
        pids_limit: Some(config.pids_limit).filter(|p| *p > 0),
        security_opt: Some(vec!["no-new-privileges".into()]),
        privileged: Some(config.privileged),
        mounts: Some(mounts(config)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_in_the_engines_unit() {
        assert_eq!(nano_cpus(0.5), 500_000_000);
        assert_eq!(nano_cpus(2.0), 2_000_000_000);
        assert_eq!(nano_cpus(0.01), 10_000_000);
    }

    #[test]
    fn volumes_become_bind_or_volume_mounts() {
        let config = DockerSandboxConfig::from_value(serde_json::json!({
            "volumes": {"/data": {"bind": "/in", "mode": "ro"}, "cache": {"bind": "/cache"}}
        }))
        .unwrap();
        let m = mounts(&config);
        assert_eq!(m[0].typ, Some(MountType::BIND));
        assert_eq!(m[0].read_only, Some(true));
        assert_eq!(m[1].typ, Some(MountType::VOLUME));
        assert_eq!(m[1].read_only, Some(false));
    }
}

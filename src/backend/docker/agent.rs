//! The engine's side of the in-sandbox agent: the volume that carries the agent binary into
//! sandboxes, the labels that say how to reach a sandbox's agent, and the `docker exec` bridge
//! to it for engines that do not share this host's paths.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions, VolumeCreateRequest,
};
use bollard::query_parameters::{
    ContainerArchiveInfoOptions, CreateContainerOptions, InspectContainerOptions,
    RemoveContainerOptions, UploadToContainerOptions,
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::{engine_error, status_code, DockerEngine};
use enclave_agent::proto;

/// The volume's label: which agent build it holds.
const LABEL_VOLUME: &str = "enclave.agent";
/// The container's label: how its agent is reached (`socket:<host path>`, `exec`, or
/// `off:<why>`).
pub(super) const LABEL_AGENT: &str = "enclave.agent";
/// The container's label holding its agent's secret (hex).
pub(super) const LABEL_SECRET: &str = "enclave.agent.secret";
/// A volume younger than this may still be being filled by another `enclave create`: its file is
/// checked before use. Older ones were filled long ago (or their creator died: then the check
/// fills them).
const FRESH_VOLUME: Duration = Duration::from_secs(120);
/// Bytes the bridge buffers each way.
const BRIDGE_BUFFER: usize = 256 * 1024;

/// How a sandbox's agent is reached, as its labels record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AgentAccess {
    /// Through this Unix socket on this host.
    Socket { path: String, secret: String },
    /// Through `enclave-agent connect` in a `docker exec`.
    Exec { secret: String },
    /// The sandbox runs without the agent, for this reason.
    Off { reason: String },
}

impl AgentAccess {
    /// The labels that record it.
    pub(super) fn labels(&self) -> Vec<(String, String)> {
        match self {
            AgentAccess::Socket { path, secret } => vec![
                (LABEL_AGENT.into(), format!("socket:{path}")),
                (LABEL_SECRET.into(), secret.clone()),
            ],
            AgentAccess::Exec { secret } => vec![
                (LABEL_AGENT.into(), "exec".into()),
                (LABEL_SECRET.into(), secret.clone()),
            ],
            AgentAccess::Off { reason } => vec![(LABEL_AGENT.into(), format!("off:{reason}"))],
        }
    }

    /// From a container's labels; `None` for one created before enclave had an agent.
    pub(super) fn from_labels(labels: &HashMap<String, String>) -> Option<Self> {
        let value = labels.get(LABEL_AGENT)?;
        let secret = || labels.get(LABEL_SECRET).cloned().unwrap_or_default();
        if let Some(reason) = value.strip_prefix("off:") {
            return Some(AgentAccess::Off {
                reason: reason.to_string(),
            });
        }
        if let Some(path) = value.strip_prefix("socket:") {
            return Some(AgentAccess::Socket {
                path: path.to_string(),
                secret: secret(),
            });
        }
        (value == "exec").then(|| AgentAccess::Exec { secret: secret() })
    }
}

/// What a sandbox container needs to start under the agent.
#[derive(Debug, Clone)]
pub(crate) struct AgentSetup {
    /// The volume holding the binary.
    pub(crate) volume: String,
    /// The per-sandbox secret, hex.
    pub(crate) secret: String,
    /// The host directory bind-mounted at `/.enclave-run` (the socket transport); `None` for the
    /// exec bridge.
    pub(crate) socket_dir: Option<String>,
    /// Start the Python fork server with the agent, so the first `python_executor` call finds
    /// it warm.
    pub(crate) warm_python: bool,
}

impl AgentSetup {
    pub(crate) fn access(&self) -> AgentAccess {
        match &self.socket_dir {
            Some(dir) => AgentAccess::Socket {
                path: format!("{dir}/agent.sock"),
                secret: self.secret.clone(),
            },
            None => AgentAccess::Exec {
                secret: self.secret.clone(),
            },
        }
    }

    /// The mounts: the binary read-only, and the socket directory when there is one.
    pub(super) fn mounts(&self) -> Vec<Mount> {
        let mut mounts = vec![volume_mount(&self.volume, true)];
        if let Some(dir) = &self.socket_dir {
            mounts.push(Mount {
                target: Some(proto::SOCKET_DIR.into()),
                source: Some(dir.clone()),
                typ: Some(MountType::BIND),
                read_only: Some(false),
                ..Default::default()
            });
        }
        mounts
    }

    /// The agent's environment; it removes all of it (and `drop`) from what it runs.
    pub(super) fn env(&self, drop: &[&str]) -> Vec<String> {
        let mut env = vec![format!("{}={}", proto::SECRET_ENV, self.secret)];
        if self.socket_dir.is_some() {
            env.push(format!("{}={}", proto::SOCKET_ENV, proto::SOCKET_PATH));
        }
        if !drop.is_empty() {
            env.push(format!("ENCLAVE_AGENT_DROP={}", drop.join(",")));
        }
        if self.warm_python {
            env.push(format!("{}=1", proto::WARM_PYTHON_ENV));
        }
        env
    }
}

/// The volume at `/.enclave`; `no_copy`, so nothing of an image is ever copied into it.
fn volume_mount(volume: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(proto::MOUNT_DIR.into()),
        source: Some(volume.to_string()),
        typ: Some(MountType::VOLUME),
        read_only: Some(read_only),
        volume_options: Some(MountVolumeOptions {
            no_copy: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The volume name of an agent build.
pub(crate) fn agent_volume_name(fingerprint: &str) -> String {
    format!("enclave-agent-{fingerprint}")
}

/// Volumes this process already knows to be complete, so a server pays the check once.
fn known_complete() -> &'static Mutex<HashSet<String>> {
    static KNOWN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    KNOWN.get_or_init(Mutex::default)
}

impl DockerEngine {
    /// Makes sure the volume holding this agent build exists and holds the whole binary; its
    /// name. Once per build per engine it costs a throwaway container (created, never started)
    /// to copy the binary in; afterwards one volume inspect, and nothing within this process.
    /// Racing creators each create the volume (the engine makes that idempotent) and each copy
    /// the same bytes; a volume found while it may still be filling is checked before use.
    pub(crate) async fn ensure_agent_volume(
        &self,
        fingerprint: &str,
        binary: &'static [u8],
        image: &str,
    ) -> Result<String> {
        let name = agent_volume_name(fingerprint);
        if known_complete().lock().expect("lock").contains(&name) {
            return Ok(name);
        }
        let fill = match self.api().await?.inspect_volume(&name).await {
            Ok(volume) => created_recently(volume.created_at.as_deref()),
            Err(e) if status_code(&e) == Some(404) => {
                self.create_agent_volume(&name, fingerprint).await?;
                true
            }
            Err(e) => return Err(engine_error(e)).context("looking up the agent's volume"),
        };
        if fill {
            self.fill_agent_volume(&name, binary, image).await?;
        }
        known_complete().lock().expect("lock").insert(name.clone());
        Ok(name)
    }

    async fn create_agent_volume(&self, name: &str, fingerprint: &str) -> Result<()> {
        let options = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(HashMap::from([(
                LABEL_VOLUME.to_string(),
                fingerprint.to_string(),
            )])),
            ..Default::default()
        };
        self.api()
            .await?
            .create_volume(options)
            .await
            .map_err(engine_error)
            .context("creating the agent's volume")?;
        Ok(())
    }

    /// Copies the binary into the volume through a container that is never started, unless a
    /// complete copy is already there.
    async fn fill_agent_volume(&self, volume: &str, binary: &[u8], image: &str) -> Result<()> {
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            // Never run; a command only because the engine wants one for images without.
            cmd: Some(vec![proto::BINARY_PATH.into()]),
            labels: Some(HashMap::from([(
                LABEL_VOLUME.to_string(),
                "filler".to_string(),
            )])),
            host_config: Some(HostConfig {
                mounts: Some(vec![volume_mount(volume, false)]),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let container = self
            .api()
            .await?
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(engine_error)
            .context("creating a container to fill the agent's volume")?
            .id;
        let filled = self.copy_agent_in(&container, binary).await;
        let options = RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        let _ = self
            .api()
            .await?
            .remove_container(&container, Some(options))
            .await;
        filled
    }

    async fn copy_agent_in(&self, container: &str, binary: &[u8]) -> Result<()> {
        if self.holds_agent(container, binary.len()).await {
            return Ok(());
        }
        let tar = agent_tar(binary).context("packing the agent")?;
        let options = UploadToContainerOptions {
            path: proto::MOUNT_DIR.to_string(),
            ..Default::default()
        };
        self.api()
            .await?
            .upload_to_container(container, Some(options), bollard::body_full(tar))
            .await
            .map_err(engine_error)
            .context("copying the agent into its volume")
    }

    /// Whether the volume already holds a whole, executable binary of this size.
    async fn holds_agent(&self, container: &str, size: usize) -> bool {
        let options = ContainerArchiveInfoOptions {
            path: proto::BINARY_PATH.to_string(),
        };
        let Ok(docker) = self.api().await else {
            return false;
        };
        match docker
            .get_container_archive_info(container, Some(options))
            .await
        {
            Ok(stat) => stat.size == size as i64 && stat.file_mode & 0o111 == 0o111,
            Err(_) => false,
        }
    }

    /// The labels of a container saying how its agent is reached; `None` when it has none.
    pub(crate) async fn agent_access(&self, container: &str) -> Result<Option<AgentAccess>> {
        let info = self
            .api()
            .await?
            .inspect_container(container, None::<InspectContainerOptions>)
            .await
            .map_err(engine_error)?;
        let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
        Ok(AgentAccess::from_labels(&labels))
    }

    /// One `docker exec` of `enclave-agent connect`, its stdin and demultiplexed stdout joined
    /// into one byte stream to the agent. It ends when the exec does.
    pub(crate) async fn agent_bridge(&self, container: &str) -> Result<DuplexStream> {
        let options = CreateExecOptions::<String> {
            cmd: Some(vec![proto::BINARY_PATH.into(), "connect".into()]),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        };
        let exec = self
            .api()
            .await?
            .create_exec(container, options)
            .await
            .map_err(engine_error)
            .context("creating the agent's bridge")?
            .id;
        let start = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: Some(BRIDGE_BUFFER),
        };
        let StartExecResults::Attached {
            mut output,
            mut input,
        } = self
            .api()
            .await?
            .start_exec(&exec, Some(start))
            .await
            .map_err(engine_error)
            .context("starting the agent's bridge")?
        else {
            anyhow::bail!("the engine started the agent's bridge detached");
        };
        let (ours, theirs) = tokio::io::duplex(BRIDGE_BUFFER);
        let (mut from_host, mut to_host) = tokio::io::split(theirs);
        tokio::spawn(async move {
            while let Some(Ok(chunk)) = output.next().await {
                // Only stdout carries the protocol; the bridge's stderr is its own complaints.
                if let bollard::container::LogOutput::StdOut { message } = chunk {
                    if to_host.write_all(&message).await.is_err() {
                        break;
                    }
                }
            }
            let _ = to_host.shutdown().await;
        });
        tokio::spawn(async move {
            let mut buf = vec![0; 64 * 1024];
            loop {
                match from_host.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if input.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        if input.flush().await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = input.shutdown().await;
        });
        Ok(ours)
    }
}

/// A volume created within [`FRESH_VOLUME`] (or of unknown age): another creator may still be
/// filling it.
fn created_recently(created_at: Option<&str>) -> bool {
    let Some(created) = created_at.and_then(|c| DateTime::parse_from_rfc3339(c).ok()) else {
        return true;
    };
    let age = Utc::now().signed_duration_since(created.with_timezone(&Utc));
    age.to_std().map_or(true, |age| age < FRESH_VOLUME)
}

/// A tar holding the binary as `enclave-agent`, mode 0755, owned by root.
fn agent_tar(binary: &[u8]) -> std::io::Result<Bytes> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(binary.len() as u64);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, "enclave-agent", binary)?;
    Ok(Bytes::from(builder.into_inner()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_round_trips_through_labels() {
        for access in [
            AgentAccess::Socket {
                path: "/s/agents/k3/agent.sock".into(),
                secret: "ab".into(),
            },
            AgentAccess::Exec {
                secret: "cd".into(),
            },
            AgentAccess::Off {
                reason: "ENCLAVE_AGENT=off".into(),
            },
        ] {
            let labels: HashMap<_, _> = access.labels().into_iter().collect();
            assert_eq!(AgentAccess::from_labels(&labels), Some(access));
        }
        assert_eq!(AgentAccess::from_labels(&HashMap::new()), None);
    }

    #[test]
    fn only_old_or_unknown_volumes_are_trusted_unchecked() {
        assert!(created_recently(None));
        assert!(created_recently(Some(&Utc::now().to_rfc3339())));
        assert!(!created_recently(Some("2020-01-01T00:00:00Z")));
    }
}

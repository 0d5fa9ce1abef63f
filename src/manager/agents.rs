//! The local manager's side of the in-sandbox agent: whether a new sandbox starts under it (and
//! why not), its private socket directory on this host, and one connection per sandbox, reused
//! by every call this process makes.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use enclave_agent::client::Client;
use enclave_agent::proto::auth;

use crate::backend::agent::{self, Transport};
use crate::backend::docker::{AgentAccess, AgentChoice, AgentSetup, DockerSandbox, ImageDefaults};
use crate::backend::DockerEngine;
use crate::model::AgentInfo;
use crate::state::AgentSocket;

/// `ENCLAVE_AGENT=off`: new sandboxes start without the agent.
const AGENT_ENV: &str = "ENCLAVE_AGENT";
/// `ENCLAVE_AGENT_TRANSPORT=exec`: reach new sandboxes' agents through `docker exec` even when a
/// socket would do.
const TRANSPORT_ENV: &str = "ENCLAVE_AGENT_TRANSPORT";
/// The longest socket path we use: `sun_path` holds 108 bytes, some systems fewer.
const MAX_SOCKET_PATH: usize = 100;
/// How long a sandbox that has just started may take to answer on its socket.
pub(super) const START_PATIENCE: Duration = Duration::from_secs(3);
/// How long an existing sandbox's socket may take to accept (it is there, or the agent is gone).
const LIVE_PATIENCE: Duration = Duration::from_millis(200);
/// How long a recorded socket may take to connect and prove itself before the engine is asked
/// instead (it does not answer at all when the sandbox is paused).
const QUICK_PATIENCE: Duration = Duration::from_millis(500);

/// Decides whether a new sandbox starts under the agent, and prepares what it needs; the reason
/// when it does not.
pub(super) async fn choose(
    engine: &DockerEngine,
    state_dir: &Path,
    sandbox_id: &str,
    image_name: &str,
    image: &ImageDefaults,
) -> AgentChoice {
    match setup(engine, state_dir, sandbox_id, image_name, image).await {
        Ok(setup) => AgentChoice::Use(setup),
        Err(why) => AgentChoice::Off(format!("{why:#}")),
    }
}

async fn setup(
    engine: &DockerEngine,
    state_dir: &Path,
    sandbox_id: &str,
    image_name: &str,
    image: &ImageDefaults,
) -> Result<AgentSetup> {
    if std::env::var(AGENT_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
        bail!("{AGENT_ENV}=off");
    }
    let Some(binary) = agent::binary() else {
        bail!("this enclave was built without the agent");
    };
    let ours = agent::architecture();
    let theirs = agent::go_arch(&image.architecture);
    if !theirs.is_empty() && theirs != ours {
        bail!("the image is for {theirs}, the agent for {ours}");
    }
    let volume = engine
        .ensure_agent_volume(agent::fingerprint(), binary, image_name)
        .await
        .context("the agent's volume could not be set up")?;
    let socket_dir = if uses_socket(engine) {
        // No private directory for the socket: the exec bridge still reaches the agent.
        socket_dir(state_dir, sandbox_id).ok()
    } else {
        None
    };
    Ok(AgentSetup {
        volume,
        secret: auth::to_hex(&rand::random::<[u8; 32]>()),
        socket_dir: socket_dir.map(|d| d.to_string_lossy().into_owned()),
        warm_python: false,
    })
}

/// A socket on this host reaches the sandbox only when the engine shares this host's paths.
fn uses_socket(engine: &DockerEngine) -> bool {
    engine.shares_host_paths()
        && !std::env::var(TRANSPORT_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("exec"))
}

/// Creates the sandbox's socket directory inside a directory only this user can enter.
fn socket_dir(state_dir: &Path, sandbox_id: &str) -> Result<PathBuf> {
    let base = agents_base(state_dir, sandbox_id)?;
    make_private(&base)?;
    let dir = base.join(sandbox_id);
    // Whoever the sandbox runs as must be able to create its socket here; the parent keeps
    // everyone else out.
    std::fs::DirBuilder::new()
        .mode(0o777)
        .create(&dir)
        .with_context(|| format!("creating `{}`", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
    Ok(dir)
}

/// `<state dir>/agents`, or a shorter private place when a socket path there would be too long.
fn agents_base(state_dir: &Path, sandbox_id: &str) -> Result<PathBuf> {
    let preferred = state_dir.join("agents");
    if fits(&preferred, sandbox_id) {
        return Ok(preferred);
    }
    let short = short_base()?;
    if fits(&short, sandbox_id) {
        return Ok(short);
    }
    bail!("no directory for the agent's socket has a path short enough")
}

fn fits(base: &Path, sandbox_id: &str) -> bool {
    base.join(sandbox_id).join("agent.sock").as_os_str().len() <= MAX_SOCKET_PATH
}

/// `$XDG_RUNTIME_DIR/enclave/agents`, else `/tmp/enclave-<uid>/agents`.
fn short_base() -> Result<PathBuf> {
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(runtime).join("enclave").join("agents"));
    }
    let uid = std::fs::metadata("/proc/self")?.uid();
    let top = PathBuf::from(format!("/tmp/enclave-{uid}"));
    make_private(&top)?;
    Ok(top.join("agents"))
}

/// Makes `dir` (and its parents), then insists it is ours and private: a directory someone else
/// made in `/tmp` must not hold our sockets.
fn make_private(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating `{}`", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir)?;
    let me = std::fs::metadata("/proc/self")?.uid();
    if !meta.is_dir() || meta.uid() != me {
        bail!("`{}` is not a directory of this user", dir.display());
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Removes a sandbox's socket directory, wherever it was made.
pub(super) fn remove_socket_dir(state_dir: &Path, sandbox_id: &str) {
    let mut bases = vec![state_dir.join("agents")];
    if let Ok(short) = short_base_path() {
        bases.push(short);
    }
    for base in bases {
        let dir = base.join(sandbox_id);
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// [`short_base`] without creating anything.
fn short_base_path() -> Result<PathBuf> {
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(runtime).join("enclave").join("agents"));
    }
    let uid = std::fs::metadata("/proc/self")?.uid();
    Ok(PathBuf::from(format!("/tmp/enclave-{uid}/agents")))
}

/// One connection per sandbox, for every call this process makes to it (the server makes many).
#[derive(Default)]
pub(super) struct Connections {
    clients: Mutex<HashMap<String, Client>>,
    /// Sandboxes whose labels say they run without the agent, which never changes: a server
    /// need not ask the engine again at each of their calls.
    without: Mutex<HashSet<String>>,
}

impl Connections {
    /// The open connection to the sandbox's agent, if this process has one.
    pub(super) fn get(&self, sandbox_id: &str) -> Option<Client> {
        let mut clients = self.clients.lock().expect("connections lock");
        match clients.get(sandbox_id) {
            Some(client) if !client.is_closed() => Some(client.clone()),
            Some(_) => {
                clients.remove(sandbox_id);
                None
            }
            None => None,
        }
    }

    pub(super) fn insert(&self, sandbox_id: &str, client: Client) {
        self.clients
            .lock()
            .expect("connections lock")
            .insert(sandbox_id.to_string(), client);
    }

    pub(super) fn forget(&self, sandbox_id: &str) {
        self.clients
            .lock()
            .expect("connections lock")
            .remove(sandbox_id);
        self.without
            .lock()
            .expect("connections lock")
            .remove(sandbox_id);
    }

    /// Connects to the agent socket the state file recorded for a sandbox, and keeps the
    /// connection; `false` when it does not answer at once (a stopped or paused sandbox, say).
    pub(super) async fn open_recorded(&self, sandbox_id: &str, socket: &AgentSocket) -> bool {
        if self.get(sandbox_id).is_some() {
            return true;
        }
        match agent::connect_listening_socket(&socket.path, &socket.secret, QUICK_PATIENCE).await {
            Ok(client) => {
                self.insert(sandbox_id, client);
                true
            }
            Err(_) => false,
        }
    }

    /// Connects to a sandbox's agent as its labels say, and keeps the connection. `Ok(None)`
    /// for a sandbox that runs without one.
    pub(super) async fn open(
        &self,
        engine: &DockerEngine,
        sandbox_id: &str,
        container: &str,
        docker: &DockerSandbox,
    ) -> Result<Option<(Client, Transport)>> {
        if self
            .without
            .lock()
            .expect("connections lock")
            .contains(sandbox_id)
        {
            return Ok(None);
        }
        let access = match engine.agent_access(container).await? {
            None | Some(AgentAccess::Off { .. }) => {
                self.without
                    .lock()
                    .expect("connections lock")
                    .insert(sandbox_id.to_string());
                return Ok(None);
            }
            Some(access) => access,
        };
        let (client, transport) = agent::connect(&access, docker, LIVE_PATIENCE).await?;
        self.insert(sandbox_id, client.clone());
        Ok(Some((client, transport)))
    }
}

/// What `inspect` says about a sandbox's agent.
pub(super) fn info_of(
    access: Option<&AgentAccess>,
    reached: Option<Result<&Client, &anyhow::Error>>,
) -> AgentInfo {
    let mode = match access {
        Some(AgentAccess::Socket { .. }) => "socket",
        Some(AgentAccess::Exec { .. }) => "exec",
        Some(AgentAccess::Off { .. }) | None => "off",
    };
    let mut info = AgentInfo {
        mode: mode.into(),
        reason: None,
        version: None,
    };
    match (access, reached) {
        (Some(AgentAccess::Off { reason }), _) => info.reason = Some(reason.clone()),
        (None, _) => info.reason = Some("created without the agent".into()),
        (_, Some(Ok(client))) => info.version = Some(client.agent().to_string()),
        (_, Some(Err(e))) => {
            info.reason = Some(format!(
                "the agent cannot be reached ({e:#}); commands fall back to docker exec"
            ));
        }
        (_, None) => info.reason = Some("not checked: the sandbox is not running".into()),
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_state_dirs_move_sockets_somewhere_shorter() {
        assert!(fits(Path::new("/tmp/.tmpAbc/agents"), "k3x9m2pa"));
        let long = PathBuf::from(format!("/{}", "d".repeat(90)));
        assert!(!fits(&long.join("agents"), "k3x9m2pa"));
    }

    #[test]
    fn socket_dirs_are_private_and_removed() {
        let state = tempfile::tempdir().unwrap();
        let dir = socket_dir(state.path(), "abc").unwrap();
        let base = std::fs::metadata(state.path().join("agents")).unwrap();
        assert_eq!(base.mode() & 0o777, 0o700);
        assert!(dir.is_dir());
        remove_socket_dir(state.path(), "abc");
        assert!(!dir.exists());
    }
}

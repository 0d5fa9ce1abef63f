//! The agent in a Pod. No registry and no volume carry it there: at create its binary is copied
//! in over exec, and it is started beside the Pod's own command (as a subreaper, not PID 1).
//! From then on one long-lived exec of `enclave-agent connect` carries the agent's protocol, so
//! every call after the first costs no new exec: the API server, the kubelet and the runtime
//! are crossed once per connection instead of once per command.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use enclave_agent::client::Client;
use enclave_agent::proto::auth;

use super::manifest::AGENT_DIR;
use super::pod::PodSandbox;
use crate::backend::{agent, Backend, NewEntry};
use crate::model::{Capture, ExecEnd, ExecSpec};

// The binary goes in AGENT_DIR, a directory of its own under /tmp, which any image can write (or,
// from an agent image, the read-only volume its init container filled).
const AGENT_FILE: &str = "enclave-agent";
const AGENT_PATH: &str = "/tmp/.enclave/enclave-agent";
/// Where the agent listens: the place `enclave-agent connect` looks when no socket is mounted.
const SOCKET_DIR: &str = "/tmp/.enclave-agent";
const AGENT_LOG: &str = "/tmp/.enclave-agent/agent.log";
pub(crate) const SOCKET: &str = "/tmp/.enclave-agent/agent.sock";
/// How long a just-started agent may take to listen.
const START_PATIENCE: Duration = Duration::from_secs(5);
const RETRY_EVERY: Duration = Duration::from_millis(50);
/// Bound on each setup step.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// `$1` the binary, `$2` the socket, `$3` `1` to warm Python, `$4` the log; the secret comes
/// on stdin, so it is in no command line. The agent runs in its own session, detached from
/// this exec, and serves until the Pod goes.
const START_SCRIPT: &str = r#"IFS= read -r secret || exit 3
ENCLAVE_AGENT_SECRET=$secret
ENCLAVE_AGENT_SOCKET=$2
export ENCLAVE_AGENT_SECRET ENCLAVE_AGENT_SOCKET
[ "$3" = 1 ] && { ENCLAVE_AGENT_WARM_PYTHON=1; export ENCLAVE_AGENT_WARM_PYTHON; }
if command -v setsid >/dev/null 2>&1; then
  setsid "$1" init </dev/null >"$4" 2>&1 &
else
  "$1" init </dev/null >"$4" 2>&1 &
fi"#;

/// How the agent gets into a Pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Copied in over exec once the Pod runs.
    Copy,
    /// Put there by the Pod's init container, from an agent image.
    InitContainer,
}

/// Puts the agent into the Pod (unless its init container did), starts it, and returns a
/// connection that has proved itself. A new random secret is made; it is returned for the state
/// file, so later processes can connect too.
pub(crate) async fn install(
    pod: &PodSandbox,
    delivery: Delivery,
    warm_python: bool,
) -> Result<(Client, String)> {
    let secret = auth::to_hex(&rand::random::<[u8; 32]>());
    pod.make_dirs(SOCKET_DIR)
        .await
        .context("making the agent's socket directory")?;
    if delivery == Delivery::Copy {
        copy_in(pod).await?;
    }
    start(pod, &secret, warm_python).await?;
    let client = connect(pod, &secret, START_PATIENCE).await?;
    Ok((client, secret))
}

/// Copies the binary this `enclave` carries into the Pod, when the Pod's CPU can run it.
async fn copy_in(pod: &PodSandbox) -> Result<()> {
    let Some(binary) = agent::binary() else {
        bail!("this build of enclave carries no agent binary");
    };
    check_architecture(pod).await?;
    let copy = async {
        pod.make_dirs(AGENT_DIR).await?;
        pod.put(
            AGENT_DIR,
            vec![NewEntry::File {
                path: AGENT_FILE.into(),
                content: binary.to_vec(),
                mode: 0o700,
            }],
        )
        .await
    };
    tokio::time::timeout(STEP_TIMEOUT, copy)
        .await
        .context("copying the agent into the Pod took over 60 s")?
        .context("copying the agent into the Pod")
}

/// A connection to the Pod's agent over one exec, retried while a just-started agent does not
/// listen yet, up to `patience`.
pub(crate) async fn connect(pod: &PodSandbox, secret: &str, patience: Duration) -> Result<Client> {
    let secret = auth::from_hex(secret).context("the recorded agent secret is not hex")?;
    let give_up = tokio::time::Instant::now() + patience;
    loop {
        let tried = async {
            let stream = pod
                .bridge(vec![AGENT_PATH.into(), "connect".into()])
                .await?;
            Client::handshake(stream, &secret)
                .await
                .context("the agent's handshake failed")
        };
        match tokio::time::timeout(STEP_TIMEOUT, tried).await {
            Ok(Ok(client)) => return Ok(client),
            Ok(Err(e)) if tokio::time::Instant::now() >= give_up => return Err(e),
            Err(_) => bail!("the agent's bridge did not answer within 60 s"),
            Ok(Err(_)) => tokio::time::sleep(RETRY_EVERY).await,
        }
    }
}

/// The agent is built for this host's CPU; a Pod on a node of another kind runs without it.
async fn check_architecture(pod: &PodSandbox) -> Result<()> {
    let (code, out) = run(pod, &["uname", "-m"], None).await?;
    let theirs = out.trim();
    if code != Some(0) || theirs.is_empty() {
        bail!("cannot tell the Pod's CPU architecture (`uname -m` failed)");
    }
    let ours = std::env::consts::ARCH;
    if theirs != ours && !(theirs == "arm64" && ours == "aarch64") {
        bail!("the Pod's node is {theirs}, and the agent is built for {ours}");
    }
    Ok(())
}

async fn start(pod: &PodSandbox, secret: &str, warm_python: bool) -> Result<()> {
    let argv = [
        "sh",
        "-c",
        START_SCRIPT,
        "sh",
        AGENT_PATH,
        SOCKET,
        if warm_python { "1" } else { "0" },
        AGENT_LOG,
    ];
    let (code, _) = run(pod, &argv, Some(format!("{secret}\n"))).await?;
    if code != Some(0) {
        bail!("starting the agent in the Pod failed (exit {code:?})");
    }
    Ok(())
}

/// Runs a short setup command; its exit status and stdout.
async fn run(
    pod: &PodSandbox,
    argv: &[&str],
    stdin: Option<String>,
) -> Result<(Option<i64>, String)> {
    let mut spec = ExecSpec::new(argv.iter().map(|a| (*a).to_string()).collect());
    spec.timeout = Some(STEP_TIMEOUT);
    if let Some(input) = stdin {
        spec.stdin = Some(Box::new(std::io::Cursor::new(input.into_bytes())));
    }
    let mut capture = Capture::new(64 * 1024);
    let outcome = pod.exec(spec, &mut capture).await?;
    let code = match outcome.end {
        ExecEnd::Exited(code) => code,
        _ => None,
    };
    Ok((code, capture.stdout.into_text().0))
}

#[async_trait::async_trait]
impl agent::AgentHost for PodSandbox {
    async fn why_killed(
        &self,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> Option<crate::model::ExitCause> {
        // Kubernetes records the OOM kill of a container's main process only, not of a
        // command exec'd beside it; what can be told is whether the Pod went away.
        let gone = match self.pods().get_opt(&self.pod).await {
            Ok(None) => true,
            Ok(Some(pod)) => pod.metadata.deletion_timestamp.is_some(),
            Err(_) => false,
        };
        gone.then_some(crate::model::ExitCause::SandboxGone)
    }
}

//! `enclave-agent init`: the sandbox's PID 1. Reaps every process, runs the image's command
//! with the container's terminal, forwards signals to it, and serves calls on a Unix socket.

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::env;
use super::exit::Exit;
use super::kill::Killer;
use super::python::Python;
use super::reaper::Reaper;
use super::{conn, sys, Agent};
use crate::proto::{self, auth};

/// Where the agent listens when the mounted socket directory is unusable.
const FALLBACK_DIR: &str = "/tmp/.enclave-agent";
const FALLBACK_SOCKET: &str = "/tmp/.enclave-agent/agent.sock";
/// How long the command has to end after a terminating signal is forwarded.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Exit code for a missing or malformed secret: the agent cannot serve anyone.
const EXIT_USAGE: i32 = 2;
const EXIT_FAILURE: i32 = 1;

/// The signals forwarded to the image's command.
const FORWARDED: [i32; 7] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// Signals that end the agent (once the command has ended).
fn is_terminating(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGTERM | libc::SIGINT | libc::SIGHUP | libc::SIGQUIT
    )
}

pub(crate) fn run(args: &[OsString]) -> i32 {
    let command: Vec<OsString> = match args.first() {
        Some(first) if first == "--" => args[1..].to_vec(),
        _ => args.to_vec(),
    };
    let agent_env: Vec<(String, String)> = std::env::vars_os()
        .map(|(n, v)| {
            (
                n.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let secret = match read_secret() {
        Ok(secret) => secret,
        Err(message) => {
            eprintln!("enclave-agent: {message}");
            return EXIT_USAGE;
        }
    };
    sys::keep_memory_small();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("enclave-agent: starting the runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    runtime.block_on(async_run(secret, agent_env, command))
}

fn read_secret() -> Result<Vec<u8>, String> {
    let hex = std::env::var(proto::SECRET_ENV).map_err(|_| {
        format!(
            "`{}` is not set: no secret to serve with",
            proto::SECRET_ENV
        )
    })?;
    match auth::from_hex(hex.trim()) {
        Some(secret) if !secret.is_empty() => Ok(secret),
        _ => Err(format!("`{}` is not a hex string", proto::SECRET_ENV)),
    }
}

async fn async_run(
    secret: Vec<u8>,
    agent_env: Vec<(String, String)>,
    command: Vec<OsString>,
) -> i32 {
    sys::hide_secret_from_proc();
    if std::process::id() != 1 {
        sys::become_subreaper();
    }
    let (reaper, killer) = match (Reaper::start(), Killer::start()) {
        (Ok(reaper), Ok(killer)) => (reaper, killer),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("enclave-agent: starting: {e}");
            return EXIT_FAILURE;
        }
    };
    let listener = match listen() {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("enclave-agent: cannot listen: {e}");
            return EXIT_FAILURE;
        }
    };
    let agent = Arc::new(Agent {
        secret,
        env: env::for_calls(&agent_env),
        reaper: reaper.clone(),
        killer,
        python: Python::new(),
        running: Arc::default(),
    });
    if std::env::var(proto::WARM_PYTHON_ENV).as_deref() == Ok("1") {
        agent.python.prewarm();
    }
    tokio::spawn(accept(listener, agent));
    let signals = match forward_signals() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("enclave-agent: handling signals: {e}");
            return EXIT_FAILURE;
        }
    };
    let child = match command.split_first() {
        None => None,
        Some((program, args)) => {
            let mut cmd = std::process::Command::new(program);
            cmd.args(args)
                .env_clear()
                .envs(env::for_command(&agent_env))
                .stdin(Stdio::inherit())
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit());
            sys::take_terminal(&mut cmd);
            match reaper.spawn(&mut cmd) {
                Ok((child, exit)) => Some((child.id() as i32, exit)),
                Err(e) => {
                    eprintln!("enclave-agent: cannot start {program:?}: {e}");
                    return if e.kind() == std::io::ErrorKind::NotFound {
                        127
                    } else {
                        126
                    };
                }
            }
        }
    };
    supervise_command(child, signals).await
}

/// Listens at `$ENCLAVE_AGENT_SOCKET` (or the default), else at the fallback under /tmp.
fn listen() -> std::io::Result<UnixListener> {
    let wanted = std::env::var_os(proto::SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(proto::SOCKET_PATH));
    match bind(&wanted) {
        Ok(listener) => Ok(listener),
        Err(e) => {
            eprintln!(
                "enclave-agent: cannot listen at {}: {e}; listening at {FALLBACK_SOCKET} instead",
                wanted.display()
            );
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(FALLBACK_DIR)?;
            bind(Path::new(FALLBACK_SOCKET))
        }
    }
}

/// Binds `path`, replacing a stale socket; anyone may connect (the directory around it, 0700
/// on the host, is the guard, and the handshake is the proof).
fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

async fn accept(listener: UnixListener, agent: Arc<Agent>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(conn::serve(agent.clone(), stream));
            }
            Err(e) => {
                eprintln!("enclave-agent: accept: {e}");
                // Out of file descriptors, say: let some calls end before trying again.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The forwarded signals, as they arrive.
fn forward_signals() -> std::io::Result<mpsc::UnboundedReceiver<i32>> {
    let (tx, rx) = mpsc::unbounded_channel();
    for sig in FORWARDED {
        let mut stream = signal(SignalKind::from_raw(sig))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(sig).is_err() {
                    return;
                }
            }
        });
    }
    Ok(rx)
}

/// Runs until the agent should exit; its exit code.
async fn supervise_command(
    mut child: Option<(i32, tokio::sync::oneshot::Receiver<Exit>)>,
    mut signals: mpsc::UnboundedReceiver<i32>,
) -> i32 {
    let mut forwarded = HashSet::new();
    let mut stopping: Option<i32> = None;
    let grace = tokio::time::sleep(Duration::MAX);
    tokio::pin!(grace);
    loop {
        let exit = async {
            match child.as_mut() {
                Some((_, exit)) => exit.await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            exit = exit => {
                let pid = child.take().map(|(pid, _)| pid).unwrap_or(0);
                match exit {
                    Some(Exit::Code(code)) => return code,
                    Some(Exit::Signal(sig)) if forwarded.contains(&sig) || stopping.is_some() => {
                        return 128 + sig;
                    }
                    Some(Exit::Signal(sig)) => eprintln!(
                        "enclave-agent: the command (pid {pid}) was killed by signal {sig}, \
                         which the agent did not send; staying up so the sandbox stays usable"
                    ),
                    None => return EXIT_FAILURE,
                }
            }
            Some(sig) = signals.recv() => {
                if let Some((pid, _)) = &child {
                    if let Ok(signal) = Signal::try_from(sig) {
                        let _ = kill(Pid::from_raw(*pid), signal);
                    }
                    forwarded.insert(sig);
                }
                if is_terminating(sig) {
                    if child.is_none() {
                        return 0;
                    }
                    if stopping.is_none() {
                        stopping = Some(sig);
                        grace.as_mut().reset(tokio::time::Instant::now() + STOP_GRACE);
                    }
                }
            }
            _ = &mut grace, if stopping.is_some() => {
                eprintln!("enclave-agent: the command did not end within {STOP_GRACE:?}; exiting");
                return 128 + stopping.unwrap_or(libc::SIGTERM);
            }
        }
    }
}

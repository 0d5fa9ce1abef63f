//! The agent itself: what runs as each sandbox's init and serves the protocol of `proto`.
//!
//! `init` is the container's entrypoint: it reaps every process, runs the image's command, and
//! serves calls on a Unix socket. `connect` bridges stdin/stdout to that socket, for hosts that
//! reach the sandbox only through `docker exec`. `install` copies the binary out of an agent
//! image, for a Pod's init container.

mod bridge;
mod call;
mod conn;
mod env;
mod exec;
mod exit;
mod files;
mod init;
mod install;
mod kill;
mod python;
mod reaper;
mod sys;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use tokio::sync::mpsc;

use self::call::{Control, Replies};
use self::env::Env;
use self::kill::Killer;
use self::python::Python;
use self::reaper::Reaper;
use crate::proto::{AgentStatus, Reply, Request};

/// The `enclave-agent` binary's entry point: its exit code.
pub fn main() -> i32 {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match args.first().and_then(|a| a.to_str()) {
        Some("init") => init::run(&args[1..]),
        Some("connect") => bridge::run(),
        Some("install") => install::run(&args[1..]),
        Some("--version") | Some("version") => {
            println!("{}", agent_name());
            0
        }
        _ => {
            eprintln!("usage: enclave-agent init [--] [COMMAND ARGS...] | connect | install DEST | --version");
            2
        }
    }
}

/// The agent's build, as `Welcome` and `Status` report it.
pub(crate) fn agent_name() -> String {
    format!("enclave-agent {}", env!("CARGO_PKG_VERSION"))
}

/// What every connection and call of one agent shares.
pub(crate) struct Agent {
    secret: Vec<u8>,
    /// The environment every call starts from.
    env: Env,
    reaper: Arc<Reaper>,
    killer: Killer,
    python: Python,
    /// Calls running now, over all connections.
    running: Arc<AtomicU32>,
}

/// Runs one call to its end, replying as it goes.
async fn run_call(
    agent: Arc<Agent>,
    request: Request,
    replies: Replies,
    control: mpsc::UnboundedReceiver<Control>,
) {
    match request {
        Request::Exec(req) => exec::run_exec(&agent, req, replies, control).await,
        Request::Python(req) => exec::run_python(&agent, req, replies, control).await,
        Request::Status => replies.finish(Reply::Status(status(&agent))).await,
        request => files::run(request, replies).await,
    }
}

fn status(agent: &Agent) -> AgentStatus {
    AgentStatus {
        agent: agent_name(),
        pid: std::process::id(),
        rss_bytes: own_rss().unwrap_or(0),
        calls: agent.running.load(std::sync::atomic::Ordering::SeqCst),
        python: agent.python.warm(),
    }
}

/// Resident memory from `/proc/self/statm` (its second field, in pages).
fn own_rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    Some(pages * page as u64)
}

//! Reaping: the agent waits for every child and orphan, and hands the statuses of the
//! processes it started to whoever waits for them.
//!
//! One loop owns `waitpid(-1)`. Spawning happens under the same lock as reaping, so a child
//! that exits at once is never reaped before its waiter is registered — and std's own
//! `waitpid` on a child whose exec failed never finds it already gone.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

use super::exit::Exit;

pub(crate) struct Reaper {
    waiters: Mutex<HashMap<i32, oneshot::Sender<Exit>>>,
}

impl Reaper {
    /// Starts the reaping loop; the SIGCHLD handler is in place when this returns.
    pub(crate) fn start() -> std::io::Result<Arc<Reaper>> {
        let mut sigchld = signal(SignalKind::child())?;
        let reaper = Arc::new(Reaper {
            waiters: Mutex::new(HashMap::new()),
        });
        let looping = reaper.clone();
        tokio::spawn(async move {
            loop {
                looping.reap_all();
                if sigchld.recv().await.is_none() {
                    return;
                }
            }
        });
        Ok(reaper)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i32, oneshot::Sender<Exit>>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawns `cmd`; its exit status arrives on the receiver. Never call `Child::wait`.
    pub(crate) fn spawn(
        &self,
        cmd: &mut Command,
    ) -> std::io::Result<(Child, oneshot::Receiver<Exit>)> {
        let mut waiters = self.lock();
        let child = cmd.spawn()?;
        let (tx, rx) = oneshot::channel();
        waiters.insert(child.id() as i32, tx);
        Ok((child, rx))
    }

    /// Collects every child that has ended; statuses nobody waits for (orphans) are dropped.
    fn reap_all(&self) {
        let mut waiters = self.lock();
        loop {
            let (pid, exit) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, Exit::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, Exit::Signal(sig as i32)),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) | Ok(_) => continue,
                Err(e) => {
                    eprintln!("enclave-agent: waitpid: {e}");
                    return;
                }
            };
            if let Some(waiter) = waiters.remove(&pid.as_raw()) {
                let _ = waiter.send(exit);
            }
        }
    }
}

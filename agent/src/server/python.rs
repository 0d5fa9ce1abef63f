//! The Python runner for `Python` calls. (Stub: always asks for a fresh interpreter; the warm
//! fork server replaces it.)

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use tokio::sync::oneshot;

use super::exit::Exit;
use crate::proto::{Failure, FailureKind, PythonRequest};

/// The warm interpreters of one agent, shared by all its calls.
pub(crate) struct Python {}

/// How a `Python` call was started.
pub(crate) enum PyStart {
    /// Forked from a warm interpreter: the child's pid, and its exit status when it ends (the
    /// fork server is its parent and reports it). Its stdout and stderr are the fds given.
    Forked {
        pid: u32,
        exit: oneshot::Receiver<Exit>,
    },
    /// No warm interpreter: run `argv` as an ordinary command (with the call's env and cwd, and
    /// `stdout`/`stderr` handed back here), then remove `script`.
    Fresh {
        argv: Vec<String>,
        script: PathBuf,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

impl Python {
    pub(crate) fn new() -> Self {
        Python {}
    }

    /// Starts `req.code`. `env` is the child's whole environment, `cwd` its working directory
    /// (the agent's own when `None`); stdin is `/dev/null`.
    pub(crate) async fn start(
        &self,
        req: &PythonRequest,
        env: &[(String, String)],
        cwd: Option<&str>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> Result<PyStart, Failure> {
        let _ = (env, cwd);
        let script = std::env::temp_dir().join(format!("enclave_py_{}.py", std::process::id()));
        std::fs::write(&script, &req.code)
            .map_err(|e| Failure::new(FailureKind::Io, format!("writing the script: {e}")))?;
        let interpreter = req.interpreter.clone().unwrap_or_else(|| "python3".into());
        Ok(PyStart::Fresh {
            argv: vec![interpreter, script.display().to_string()],
            script,
            stdout,
            stderr,
        })
    }

    /// The interpreters held warm, for `Status`.
    pub(crate) fn warm(&self) -> Vec<String> {
        Vec::new()
    }
}

//! `Exec` and `Python` calls: start the process, stream its output within the call's window,
//! and end it — by itself, or by killing its whole tree at the deadline or on `Cancel`.

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::call::{Control, Replies};
use super::env::{self, Env};
use super::exit::Exit;
use super::files::failure_kind;
use super::python::PyStart;
use super::{sys, Agent};
use crate::proto::{
    Command, Ending, ExecRequest, Failure, FailureKind, How, OutputStream, PythonRequest,
    PythonRunner, Reply,
};

/// After the root process exits, output is forwarded until the pipes close or stay idle this
/// long: a background process holding them open must not hold the call.
const IDLE_AFTER_EXIT: Duration = Duration::from_millis(200);
/// ... and never longer than this, even while a background process keeps writing.
const MAX_AFTER_EXIT: Duration = Duration::from_secs(5);
/// How long to wait for the root's status after killing its tree.
const EXIT_AFTER_KILL: Duration = Duration::from_secs(1);
/// Bytes read from a pipe at once (a pipe holds 64 KiB by default); at most `CHUNK`.
const READ_SIZE: usize = 64 * 1024;

/// A started process the call supervises. For a forked Python it is not our child: its status
/// comes from the fork server.
struct Process {
    pid: u32,
    exit: oneshot::Receiver<Exit>,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

pub(crate) async fn run_exec(
    agent: &Agent,
    req: ExecRequest,
    replies: Replies,
    control: mpsc::UnboundedReceiver<Control>,
) {
    let env = env::with_request(&agent.env, &req.env);
    let argv = match req.command {
        Command::Argv(argv) => argv,
        Command::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script],
    };
    let stdin = if req.stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let cwd = req.cwd.as_deref();
    let spawned = spawn(
        agent,
        &argv,
        &env,
        cwd,
        [stdin, Stdio::piped(), Stdio::piped()],
    );
    let (mut child, exit) = match spawned {
        Ok(spawned) => spawned,
        Err(failure) => return replies.finish(Reply::Error(failure)).await,
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        unreachable!("stdout and stderr were asked to be pipes");
    };
    let feeder = child
        .stdin
        .take()
        .map(|stdin| tokio::spawn(feed_stdin(stdin.into(), replies.clone())));
    let process = Process {
        pid: child.id(),
        exit,
        stdout: stdout.into(),
        stderr: stderr.into(),
    };
    let ending = supervise(agent, process, req.timeout_ms, &replies, control).await;
    if let Some(feeder) = feeder {
        feeder.abort();
    }
    replies.finish(Reply::Ended(ending)).await;
}

pub(crate) async fn run_python(
    agent: &Agent,
    req: PythonRequest,
    replies: Replies,
    control: mpsc::UnboundedReceiver<Control>,
) {
    let env = env::with_request(&agent.env, &req.env);
    let cwd = req.cwd.as_deref();
    let pipes = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .and_then(|out| Ok((out, nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)));
    let ((out_read, out_write), (err_read, err_write)) = match pipes {
        Ok(pipes) => pipes,
        Err(e) => {
            let failure = Failure::new(FailureKind::Io, format!("making pipes: {e}"));
            return replies.finish(Reply::Error(failure)).await;
        }
    };
    let started = agent
        .python
        .start(&req, &env, cwd, out_write, err_write)
        .await;
    let (pid, exit, runner, script) = match started {
        Err(failure) => return replies.finish(Reply::Error(failure)).await,
        Ok(PyStart::Forked { pid, exit }) => (pid, exit, PythonRunner::Forked, None),
        Ok(PyStart::Fresh {
            argv,
            script,
            stdout,
            stderr,
        }) => {
            let stdio = [Stdio::null(), stdout.into(), stderr.into()];
            match spawn(agent, &argv, &env, cwd, stdio) {
                Ok((child, exit)) => (child.id(), exit, PythonRunner::Fresh, Some(script)),
                Err(failure) => {
                    let _ = std::fs::remove_file(&script);
                    return replies.finish(Reply::Error(failure)).await;
                }
            }
        }
    };
    let process = Process {
        pid,
        exit,
        stdout: out_read,
        stderr: err_read,
    };
    let mut ending = supervise(agent, process, req.timeout_ms, &replies, control).await;
    ending.runner = Some(runner);
    if let Some(script) = script {
        let _ = std::fs::remove_file(script);
    }
    replies.finish(Reply::Ended(ending)).await;
}

/// Starts `argv` in its own process group, as a subreaper, with exactly `env`.
fn spawn(
    agent: &Agent,
    argv: &[String],
    env: &Env,
    cwd: Option<&str>,
    [stdin, stdout, stderr]: [Stdio; 3],
) -> Result<(Child, oneshot::Receiver<Exit>), Failure> {
    let (name, args) = argv
        .split_first()
        .ok_or_else(|| Failure::new(FailureKind::InvalidInput, "the command is empty"))?;
    if let Some(dir) = cwd {
        if !Path::new(dir).is_dir() {
            let message = format!("the working directory `{dir}` does not exist");
            return Err(Failure::new(FailureKind::NoWorkdir, message));
        }
    }
    let program = resolve(name, env::path_of(env))?;
    let mut cmd = std::process::Command::new(program);
    cmd.arg0(name)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    sys::keep_descendants_below(&mut cmd);
    agent
        .reaper
        .spawn(&mut cmd)
        .map_err(|e| spawn_failure(name, &e))
}

/// Finds a program the way `docker exec` (Go's `exec.LookPath`) does: a name with a `/` is
/// used as it is, anything else is the first executable file of that name on `path`.
pub(crate) fn resolve(name: &str, path: &str) -> Result<PathBuf, Failure> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    for dir in path.split(':') {
        let candidate = Path::new(if dir.is_empty() { "." } else { dir }).join(name);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(Failure::new(
        FailureKind::CommandNotFound,
        format!("exec: \"{name}\": executable file not found in $PATH"),
    ))
}

/// Why `execve` failed, in the words `docker exec` uses.
pub(crate) fn spawn_failure(name: &str, e: &std::io::Error) -> Failure {
    let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0));
    let kind = match errno {
        nix::errno::Errno::ENOENT => FailureKind::CommandNotFound,
        nix::errno::Errno::EACCES | nix::errno::Errno::ENOEXEC | nix::errno::Errno::EISDIR => {
            FailureKind::NotExecutable
        }
        _ => match failure_kind(e) {
            FailureKind::PermissionDenied => FailureKind::NotExecutable,
            _ => FailureKind::Io,
        },
    };
    let why = match errno {
        nix::errno::Errno::UnknownErrno => e.to_string(),
        errno => errno.desc().to_lowercase(),
    };
    Failure::new(kind, format!("exec: \"{name}\": {why}"))
}

/// Feeds the host's `Data` to the process's stdin, acknowledging each chunk; closes stdin at
/// `End`. A process that closed its stdin has the rest discarded, still acknowledged.
async fn feed_stdin(stdin: OwnedFd, replies: Replies) {
    let mut pipe = pipe::Sender::from_owned_fd(stdin).ok();
    while let Some(chunk) = replies.inbox().take().await {
        if let Some(sink) = pipe.as_mut() {
            if sink.write_all(&chunk).await.is_err() {
                pipe = None;
            }
        }
        replies.credit(chunk.len()).await;
    }
}

/// Watches a started process to its end: output, controls, the deadline.
async fn supervise(
    agent: &Agent,
    process: Process,
    timeout_ms: Option<u64>,
    replies: &Replies,
    mut control: mpsc::UnboundedReceiver<Control>,
) -> Ending {
    replies.send(Reply::Started { pid: process.pid }).await;
    let pid = process.pid as i32;
    let activity = Arc::new(Activity::new());
    let pumps = [
        (process.stdout, OutputStream::Stdout),
        (process.stderr, OutputStream::Stderr),
    ]
    .map(|(fd, stream)| tokio::spawn(pump(fd, stream, replies.clone(), activity.clone())));

    let deadline = async move {
        match timeout_ms {
            Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut exit = process.exit;
    let mut controls_open = true;
    let (how, status, kill) = loop {
        tokio::select! {
            status = &mut exit => break (How::Exited, status.ok(), None),
            _ = &mut deadline => {
                let stats = agent.killer.kill(pid).await;
                break (How::TimedOut, status_soon(&mut exit).await, Some(stats));
            }
            control = control.recv(), if controls_open => match control {
                Some(Control::Signal(sig)) => signal_group(pid, sig),
                Some(Control::Cancel) => {
                    let stats = agent.killer.kill(pid).await;
                    break (How::Cancelled, status_soon(&mut exit).await, Some(stats));
                }
                None => controls_open = false,
            },
        }
    };
    drain(pumps, &activity).await;
    Ending {
        how,
        code: match status {
            Some(Exit::Code(code)) => Some(code),
            _ => None,
        },
        signal: match status {
            Some(Exit::Signal(sig)) => Some(sig),
            _ => None,
        },
        kill,
        runner: None,
    }
}

async fn status_soon(exit: &mut oneshot::Receiver<Exit>) -> Option<Exit> {
    tokio::time::timeout(EXIT_AFTER_KILL, exit).await.ok()?.ok()
}

/// `Signal`: to the call's process group (its root's pid), or to the root alone when it has
/// no group of its own (a forked Python).
fn signal_group(pid: i32, sig: i32) {
    let Ok(sig) = Signal::try_from(sig) else {
        return;
    };
    if killpg(Pid::from_raw(pid), sig).is_err() {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// When the output pumps last made progress, to tell a quiet pipe from a slow host.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    /// Pumps waiting for the host (its credit or the socket): not idle.
    waiting: AtomicU32,
}

impl Activity {
    fn new() -> Self {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            waiting: AtomicU32::new(0),
        }
    }

    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::SeqCst);
    }

    fn idle_for(&self) -> Duration {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::SeqCst));
        self.started.elapsed().saturating_sub(last)
    }
}

/// Forwards one pipe as `Output` until it closes. Once the host is gone, reads on and discards,
/// so the process never blocks on a full pipe.
async fn pump(fd: OwnedFd, stream: OutputStream, replies: Replies, activity: Arc<Activity>) {
    let Ok(mut pipe) = pipe::Receiver::from_owned_fd(fd) else {
        return;
    };
    let mut buf = vec![0; READ_SIZE];
    let mut connected = true;
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        activity.touch();
        if connected {
            let output = Reply::Output {
                stream,
                data: buf[..n].to_vec(),
            };
            activity.waiting.fetch_add(1, Ordering::SeqCst);
            connected = replies.send_payload(output, n).await;
            activity.waiting.fetch_sub(1, Ordering::SeqCst);
            activity.touch();
        }
    }
}

/// After the root ended: lets the pumps finish what the pipes still hold, unless they stay
/// idle (a background process holds them open) or it takes too long.
async fn drain(pumps: [JoinHandle<()>; 2], activity: &Activity) {
    let started = Instant::now();
    activity.touch();
    let aborts = pumps.each_ref().map(|pump| pump.abort_handle());
    let [out, err] = pumps;
    let both = async {
        let _ = out.await;
        let _ = err.await;
    };
    tokio::pin!(both);
    while activity.idle_for() < IDLE_AFTER_EXIT && started.elapsed() < MAX_AFTER_EXIT {
        if tokio::time::timeout(Duration::from_millis(50), &mut both)
            .await
            .is_ok()
        {
            return;
        }
    }
    for abort in aborts {
        abort.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_like_docker_exec() {
        assert_eq!(
            resolve("sh", "/nonexistent:/bin").unwrap(),
            Path::new("/bin/sh")
        );
        assert_eq!(resolve("./x", "").unwrap(), Path::new("./x"));
        let missing = resolve("no-such-program-here", "/bin:/usr/bin").unwrap_err();
        assert_eq!(missing.kind, FailureKind::CommandNotFound);
        assert_eq!(
            missing.message,
            "exec: \"no-such-program-here\": executable file not found in $PATH"
        );
        // Not executable files are skipped.
        assert!(resolve("passwd", "/etc").is_err());
    }

    #[test]
    fn exec_errors_map_to_shell_like_kinds() {
        let of = |errno: i32| spawn_failure("x", &std::io::Error::from_raw_os_error(errno)).kind;
        assert_eq!(of(libc::ENOENT), FailureKind::CommandNotFound);
        assert_eq!(of(libc::EACCES), FailureKind::NotExecutable);
        assert_eq!(of(libc::ENOEXEC), FailureKind::NotExecutable);
        assert_eq!(of(libc::EAGAIN), FailureKind::Io);
    }
}

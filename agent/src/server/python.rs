//! The Python runner for `Python` calls: a warm fork server per interpreter.
//!
//! Each call runs its code as `python FILE` would, with a fresh interpreter state: the code is
//! written to `/tmp/enclave_py_<hex>.py`, and a process forked from an already started
//! interpreter (the fork server, `forkserver.py`) runs it with the call's environment, working
//! directory, stdout and stderr, stdin `/dev/null`, and prints and exits as `python FILE` does.
//! The server is started lazily (or by [`Python::prewarm`]) with `python FILE` itself, so the
//! forked child has the `sys.path` and modules a fresh `python FILE` has; and restarted when it
//! died (sandboxed code may kill it). When no server can be had (an old Python, one without
//! `AF_UNIX`/`recvmsg`, one that fails to start: retried with a backoff), the call falls back to
//! [`PyStart::Fresh`], an ordinary `python FILE`.
//!
//! A server is kept per interpreter *and* per value of the variables Python reads at start-up
//! (`PYTHON*`, `HOME`, `LANG`, `LC_ALL`, `LC_CTYPE`), so a call never gets an interpreter started
//! with other flags, paths or encodings than its own `python FILE` would have. It also restarts
//! itself when a site-packages directory changed (`pip install`), which `python FILE` would see.
//!
//! ## Talking to a server
//! Its stdin is one end of a socketpair. A request is a 4-byte big-endian length and
//! NUL-separated fields (script, cwd or empty, `KEY=VALUE`...), with the child's stdout and
//! stderr as `SCM_RIGHTS`. The server answers with ASCII lines: `R pid` (ready), `U why`
//! (unsupported), `F pid` (forked), `E why` (not forked), `S` (stale: it exits), and, whenever a
//! child ends, `X pid status` (its `waitpid` status). Requests are serialized per server; a
//! background task reads the lines, so exits are reported while other calls start. A forked
//! child runs the code only after the server said `F`, so when the server dies before saying it,
//! the code has not run and the call can safely fall back to `Fresh`.
//!
//! ## Known differences from `python FILE`
//! - All children of one server share its hash seed (`PYTHONHASHSEED`), chosen at its start.
//! - The modules the server needs are already imported (`_socket`, `select`, `ctypes`).
//! - The fork server's frames are below the code's `<module>` frame (`traceback.print_stack()`
//!   shows them; tracebacks of uncaught exceptions do not).
//! - The child is a child subreaper, so orphaned descendants are reparented to it.
//! - Variables the server's environment has in common with the call's keep the server's order
//!   in `os.environ` (only the differences are applied, for speed).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{self, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType};
use nix::unistd::{access, AccessFlags, Pid};
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::sync::{oneshot, watch};

use super::exit::Exit;
use crate::proto::{Failure, FailureKind, PythonRequest};

/// The fork server, run as `python /tmp/enclave_forkserver_<hex>.py` (it removes the file).
const FORKSERVER: &str = include_str!("forkserver.py");
/// Servers held at most (distinct interpreters or start-up environments); more go `Fresh`.
const MAX_SERVERS: usize = 4;
/// How long a server may take to start (an interpreter on a cold, loaded machine is slow).
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a started server may take to fork; then it is deemed stuck and killed.
const FORK_TIMEOUT: Duration = Duration::from_secs(3);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Where `python` looks when the environment has no `PATH` (as `execvp`).
const DEFAULT_PATH: &str = "/usr/bin:/bin";
const NO_PYTHON: &str =
    "python_executor: no python3 or python on the PATH of this image (set the python_path tool option)";

/// The warm interpreters of one agent, shared by all its calls.
pub(crate) struct Python {
    slots: Arc<Mutex<HashMap<Key, Arc<Slot>>>>,
}

/// How a `Python` call was started.
pub(crate) enum PyStart {
    /// Forked from a warm interpreter: the child's pid, and its exit status when it ends (the
    /// fork server is its parent and reports it). Its stdout and stderr are the fds given.
    /// `exit` is closed without a value only when the fork server died (was killed) before the
    /// child ended: it is then closed once the child is gone, its status unknown.
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
        Python {
            slots: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Starts the default interpreter's server in the background, for calls with the agent's
    /// environment plus `PYTHONUNBUFFERED=1` (what `python_executor` sends). Needs a runtime.
    pub(crate) fn prewarm(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| !k.starts_with("ENCLAVE_AGENT_") && k != "PYTHONUNBUFFERED")
            .collect();
        env.push(("PYTHONUNBUFFERED".into(), "1".into()));
        let Ok(interpreter) = resolve_interpreter(None, &env, None) else {
            return;
        };
        let Some(slot) = self.slot(Key::new(&interpreter, &env)) else {
            return;
        };
        runtime.spawn(async move {
            let _turn = slot.turn.lock().await;
            let _ = slot.server().await;
        });
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
        check_env(env)?;
        let interpreter = resolve_interpreter(req.interpreter.as_deref(), env, cwd)?;
        if let Some(dir) = cwd {
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Failure::new(
                        FailureKind::NoWorkdir,
                        format!("the working directory {dir} is not a directory"),
                    ))
                }
                Err(e) => {
                    return Err(Failure::new(
                        FailureKind::NoWorkdir,
                        format!("the working directory {dir}: {e}"),
                    ))
                }
            }
        }
        let script = write_script(&req.code)?;
        if let Some(slot) = self.slot(Key::new(&interpreter, env)) {
            let request = encode_request(&script, cwd, env);
            if let Some((pid, exit)) = slot.fork(&request, &script, &stdout, &stderr).await {
                // Our copies of stdout/stderr close here: the child holds its own.
                return Ok(PyStart::Forked { pid, exit });
            }
        }
        Ok(PyStart::Fresh {
            argv: vec![interpreter, script.display().to_string()],
            script,
            stdout,
            stderr,
        })
    }

    /// The interpreters held warm, for `Status`.
    pub(crate) fn warm(&self) -> Vec<String> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut warm: Vec<String> = slots
            .values()
            .filter(|slot| slot.warm().is_some())
            .map(|slot| slot.key.interpreter.clone())
            .collect();
        warm.sort();
        warm.dedup();
        warm
    }

    /// The slot for `key`, made when there is room.
    fn slot(&self, key: Key) -> Option<Arc<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(&key) {
            return Some(slot.clone());
        }
        if slots.len() >= MAX_SERVERS {
            return None;
        }
        let slot = Arc::new(Slot {
            key: key.clone(),
            turn: tokio::sync::Mutex::new(()),
            state: Mutex::new(State {
                server: None,
                failures: 0,
                retry_at: None,
                unsupported: None,
            }),
        });
        slots.insert(key, slot.clone());
        Some(slot)
    }
}

/// What a server is for: an interpreter, and the variables Python reads when it starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    interpreter: String,
    startup: Vec<(String, String)>,
}

impl Key {
    fn new(interpreter: &str, env: &[(String, String)]) -> Self {
        // The last value of a name wins, as in the child's environment.
        let startup: BTreeMap<&str, &str> = env
            .iter()
            .filter(|(k, _)| read_at_startup(k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Key {
            interpreter: interpreter.to_string(),
            startup: startup
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The server's environment: the agent's, minus its own variables, with the start-up
    /// variables of the calls it serves (each child gets its call's whole environment anyway).
    fn server_env(&self) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| {
                let k = k.to_string_lossy();
                !k.starts_with("ENCLAVE_AGENT_") && !read_at_startup(&k)
            })
            .collect();
        env.extend(self.startup.iter().map(|(k, v)| (k.into(), v.into())));
        env
    }
}

/// Variables that change what an interpreter is once started: flags, paths, encodings.
fn read_at_startup(name: &str) -> bool {
    name.starts_with("PYTHON") || matches!(name, "HOME" | "LANG" | "LC_ALL" | "LC_CTYPE")
}

/// One server's place: started, restarted, or given up on.
struct Slot {
    key: Key,
    /// Held while starting the server and while a request is in flight.
    turn: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

struct State {
    server: Option<Arc<Server>>,
    /// Starts that failed (or servers that died mid-request) since the last success.
    failures: u32,
    retry_at: Option<Instant>,
    /// Why this interpreter cannot have a fork server; it is never tried again.
    unsupported: Option<String>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn warm(&self) -> Option<Arc<Server>> {
        self.lock().server.clone().filter(|s| s.alive())
    }

    fn failed(&self, why: &str) {
        let mut state = self.lock();
        state.server = None;
        state.failures += 1;
        let backoff = BACKOFF_FIRST
            .saturating_mul(1 << (state.failures - 1).min(16))
            .min(BACKOFF_MAX);
        state.retry_at = Some(Instant::now() + backoff);
        eprintln!(
            "enclave-agent: python fork server for {}: {why}; running Python fresh for {}s",
            self.key.interpreter,
            backoff.as_secs()
        );
    }

    /// The running server, started if need be. The caller holds `turn`.
    async fn server(&self) -> Option<Arc<Server>> {
        {
            let state = self.lock();
            if state.unsupported.is_some() {
                return None;
            }
            if let Some(server) = state.server.as_ref().filter(|s| s.alive()) {
                return Some(server.clone());
            }
            if state.retry_at.is_some_and(|t| Instant::now() < t) {
                return None;
            }
        }
        match Server::start(&self.key).await {
            Ok(server) => {
                self.lock().server = Some(server.clone());
                Some(server)
            }
            Err(Started::Unsupported(why)) => {
                eprintln!(
                    "enclave-agent: {} cannot run a fork server ({why}); running Python fresh",
                    self.key.interpreter
                );
                let mut state = self.lock();
                state.server = None;
                state.unsupported = Some(why);
                None
            }
            Err(Started::Failed(why)) => {
                self.failed(&why);
                None
            }
        }
    }

    /// Forks a child for `request`; `None` when the call must run fresh.
    async fn fork(
        &self,
        request: &[u8],
        script: &Path,
        stdout: &OwnedFd,
        stderr: &OwnedFd,
    ) -> Option<(u32, oneshot::Receiver<Exit>)> {
        let _turn = self.turn.lock().await;
        // A second try after the server found itself stale, or had died (killed by some code,
        // most likely, while idle): it did not run the code, so a new server may.
        for attempt in 0..2 {
            let server = self.server().await?;
            match server.fork(request, script, stdout, stderr).await {
                Answer::Forked(pid, exit) => {
                    let mut state = self.lock();
                    state.failures = 0;
                    state.retry_at = None;
                    return Some((pid, exit));
                }
                Answer::Stale => self.lock().server = None,
                Answer::Failed(why) => {
                    // The server lives (e.g. fork hit EAGAIN): this call runs fresh.
                    eprintln!("enclave-agent: python fork server: {why}");
                    return None;
                }
                Answer::Dead if attempt == 0 => self.lock().server = None,
                Answer::Dead => {
                    self.failed("it died during a request");
                    return None;
                }
            }
        }
        None
    }
}

/// A server's answer to a request.
enum Answer {
    Forked(u32, oneshot::Receiver<Exit>),
    Failed(String),
    Stale,
    Dead,
}

enum Started {
    Unsupported(String),
    Failed(String),
}

/// One running fork server.
struct Server {
    pid: u32,
    sock: UnixStream,
    shared: Mutex<Shared>,
    /// Becomes true when the server's socket reached its end.
    dead: watch::Receiver<bool>,
}

#[derive(Default)]
struct Shared {
    /// The request in flight: its script, and where the answer goes.
    pending: Option<(PathBuf, oneshot::Sender<Answer>)>,
    /// Forked children not yet reported ended: their scripts and exit senders.
    running: HashMap<u32, (PathBuf, oneshot::Sender<Exit>)>,
}

impl Server {
    async fn start(key: &Key) -> Result<Arc<Server>, Started> {
        let failed =
            |what: &str, e: &dyn std::fmt::Display| Started::Failed(format!("{what}: {e}"));
        let (ours, theirs) = socket::socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| failed("socketpair", &e))?;
        let file = PathBuf::from(format!("/tmp/enclave_forkserver_{}.py", random_hex()));
        write_new(&file, FORKSERVER.as_bytes()).map_err(|e| failed("writing the server", &e))?;
        let mut command = std::process::Command::new(&key.interpreter);
        command
            .arg(&file)
            .env_clear()
            .envs(key.server_env())
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0);
        let spawned = command.spawn();
        // The command holds the server's end of the socket: close ours of it now, so that the
        // server's death shows as the end of the stream.
        drop(command);
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_file(&file);
                return Err(failed("starting it", &e));
            }
        };
        // Never waited for here: as PID 1 the agent reaps every child itself.
        let pid = child.id();
        drop(child);
        let sock = std::os::unix::net::UnixStream::from(ours);
        let sock = sock
            .set_nonblocking(true)
            .and_then(|()| UnixStream::from_std(sock))
            .map_err(|e| failed("socket", &e));
        let sock = match sock {
            Ok(sock) => sock,
            Err(e) => {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                let _ = std::fs::remove_file(&file);
                return Err(e);
            }
        };
        let mut buf = Vec::new();
        let hello = tokio::time::timeout(START_TIMEOUT, read_line(&sock, &mut buf)).await;
        let _ = std::fs::remove_file(&file);
        let line = match hello {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => return Err(Started::Failed("it exited as it started".into())),
            Ok(Err(e)) => return Err(failed("reading its hello", &e)),
            Err(_) => {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                return Err(Started::Failed(format!(
                    "it did not start in {}s",
                    START_TIMEOUT.as_secs()
                )));
            }
        };
        if let Some(why) = line.strip_prefix("U ") {
            return Err(Started::Unsupported(why.to_string()));
        }
        if !line.starts_with("R ") {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            return Err(Started::Failed(format!("it said {line:?}")));
        }
        let (dead_tx, dead) = watch::channel(false);
        let server = Arc::new(Server {
            pid,
            sock,
            shared: Mutex::new(Shared::default()),
            dead,
        });
        tokio::spawn(server.clone().read_loop(buf, dead_tx));
        Ok(server)
    }

    fn alive(&self) -> bool {
        !*self.dead.borrow()
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn fork(
        &self,
        request: &[u8],
        script: &Path,
        stdout: &OwnedFd,
        stderr: &OwnedFd,
    ) -> Answer {
        let (tx, mut rx) = oneshot::channel();
        {
            let mut shared = self.shared();
            if !self.alive() {
                return Answer::Dead;
            }
            shared.pending = Some((script.to_path_buf(), tx));
        }
        if self
            .send(request, [stdout.as_raw_fd(), stderr.as_raw_fd()])
            .await
            .is_err()
        {
            self.shared().pending = None;
            self.kill();
            return Answer::Dead;
        }
        match tokio::time::timeout(FORK_TIMEOUT, &mut rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Answer::Dead,
            Err(_) => {
                // Stuck (stopped?): kill it, and read what it said before it died. If it said F,
                // the child may run; if not, the child (if any) never runs the code.
                self.kill();
                let mut dead = self.dead.clone();
                let _ = tokio::time::timeout(FORK_TIMEOUT, dead.wait_for(|d| *d)).await;
                self.shared().pending = None;
                match rx.try_recv() {
                    Ok(answer @ Answer::Forked(..)) => answer,
                    _ => Answer::Dead,
                }
            }
        }
    }

    fn kill(&self) {
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
    }

    /// Sends one request and its two fds.
    async fn send(&self, request: &[u8], fds: [i32; 2]) -> io::Result<()> {
        let len = u32::try_from(request.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "request too large"))?;
        let mut message = Vec::with_capacity(4 + request.len());
        message.extend_from_slice(&len.to_be_bytes());
        message.extend_from_slice(request);
        let fd = self.sock.as_raw_fd();
        let mut sent = self
            .sock
            .async_io(Interest::WRITABLE, || {
                let iov = [IoSlice::new(&message)];
                let cmsgs = [ControlMessage::ScmRights(&fds)];
                socket::sendmsg::<()>(fd, &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None)
                    .map_err(io::Error::from)
            })
            .await?;
        while sent < message.len() {
            sent += self
                .sock
                .async_io(Interest::WRITABLE, || {
                    socket::send(fd, &message[sent..], MsgFlags::MSG_NOSIGNAL)
                        .map_err(io::Error::from)
                })
                .await?;
        }
        Ok(())
    }

    /// Reads the server's lines until its end: answers, and exits of its children.
    async fn read_loop(self: Arc<Self>, mut buf: Vec<u8>, dead: watch::Sender<bool>) {
        while let Ok(Some(line)) = read_line(&self.sock, &mut buf).await {
            self.handle(&line);
        }
        let (pending, running) = {
            let mut shared = self.shared();
            let _ = dead.send(true);
            (shared.pending.take(), std::mem::take(&mut shared.running))
        };
        drop(pending);
        // The children it did not report are now the agent's (or gone): close their `exit`
        // once they are gone, and remove their scripts.
        for (pid, (script, exit)) in running {
            tokio::spawn(async move {
                while !gone(pid) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = std::fs::remove_file(script);
                drop(exit);
            });
        }
    }

    fn handle(&self, line: &str) {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mut shared = self.shared();
        match word {
            "F" => {
                let (Ok(pid), Some((script, reply))) = (rest.parse::<u32>(), shared.pending.take())
                else {
                    return;
                };
                let (tx, rx) = oneshot::channel();
                shared.running.insert(pid, (script, tx));
                if reply.send(Answer::Forked(pid, rx)).is_err() {
                    // The call was abandoned as it started: do not leave its code running.
                    let _ = kill(Pid::from_raw(-(pid as i32)), Signal::SIGKILL);
                }
            }
            "E" => {
                if let Some((_, reply)) = shared.pending.take() {
                    let _ = reply.send(Answer::Failed(rest.to_string()));
                }
            }
            "S" => {
                if let Some((_, reply)) = shared.pending.take() {
                    let _ = reply.send(Answer::Stale);
                }
            }
            "X" => {
                let mut it = rest.split(' ').map(str::parse::<i32>);
                let (Some(Ok(pid)), Some(Ok(status))) = (it.next(), it.next()) else {
                    return;
                };
                if let Some((script, exit)) = shared.running.remove(&(pid as u32)) {
                    drop(shared);
                    // Removed before the exit is known, so the caller never sees it linger.
                    let _ = std::fs::remove_file(script);
                    let _ = exit.send(exit_of(status));
                }
            }
            _ => {}
        }
    }
}

/// One `\n`-terminated line from `sock` (bytes after it stay in `buf`); `None` at the end.
async fn read_line(sock: &UnixStream, buf: &mut Vec<u8>) -> io::Result<Option<String>> {
    loop {
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            return Ok(Some(String::from_utf8_lossy(&line[..i]).into_owned()));
        }
        sock.readable().await?;
        let mut chunk = [0u8; 4096];
        match sock.try_read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether a process no longer runs (gone, or a zombie waiting for its reaper).
fn gone(pid: u32) -> bool {
    if kill(Pid::from_raw(pid as i32), None).is_err() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        Err(_) => false,
    }
}

fn exit_of(status: i32) -> Exit {
    if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    }
}

/// Script, cwd (empty: none), then the environment, NUL-separated.
fn encode_request(script: &Path, cwd: Option<&str>, env: &[(String, String)]) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    out.extend_from_slice(script.as_os_str().as_bytes());
    out.push(0);
    out.extend_from_slice(cwd.unwrap_or("").as_bytes());
    for (k, v) in env {
        out.push(0);
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn check_env(env: &[(String, String)]) -> Result<(), Failure> {
    for (k, v) in env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(Failure::new(
                FailureKind::InvalidInput,
                format!("invalid environment variable {k:?}"),
            ));
        }
    }
    Ok(())
}

/// `interpreter` as the call asked (a path, or a name on the env's `PATH`), else `python3`,
/// else `python` on the env's `PATH`.
fn resolve_interpreter(
    interpreter: Option<&str>,
    env: &[(String, String)],
    cwd: Option<&str>,
) -> Result<String, Failure> {
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    let find = |name: &str| -> Option<String> {
        path.split(':').find_map(|dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            let candidate = Path::new(dir).join(name);
            let at = match cwd {
                Some(cwd) if candidate.is_relative() => Path::new(cwd).join(&candidate),
                _ => candidate.clone(),
            };
            executable(&at).then(|| at.display().to_string())
        })
    };
    match interpreter {
        Some(given) if given.contains('/') => {
            let at = match cwd {
                Some(cwd) if Path::new(given).is_relative() => Path::new(cwd).join(given),
                _ => PathBuf::from(given),
            };
            if executable(&at) {
                Ok(at.display().to_string())
            } else if at.is_file() {
                Err(Failure::new(
                    FailureKind::NotExecutable,
                    format!("python_executor: {given} is not executable"),
                ))
            } else {
                Err(Failure::new(
                    FailureKind::CommandNotFound,
                    format!("python_executor: {given} not found"),
                ))
            }
        }
        Some(given) => find(given).ok_or_else(|| {
            Failure::new(
                FailureKind::CommandNotFound,
                format!("python_executor: {given} not found on the PATH of this image"),
            )
        }),
        None => find("python3")
            .or_else(|| find("python"))
            .ok_or_else(|| Failure::new(FailureKind::CommandNotFound, NO_PYTHON)),
    }
}

fn executable(path: &Path) -> bool {
    path.is_file() && access(path, AccessFlags::X_OK).is_ok()
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        // No /dev/urandom: unique enough, and the file is created exclusively anyway.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_new(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content)
}

/// The code in a new `/tmp/enclave_py_<hex>.py`.
fn write_script(code: &str) -> Result<PathBuf, Failure> {
    let script = PathBuf::from(format!("/tmp/enclave_py_{}.py", random_hex()));
    write_new(&script, code.as_bytes()).map_err(|e| {
        Failure::new(
            FailureKind::Io,
            format!("python_executor: writing {}: {e}", script.display()),
        )
    })?;
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::sync::OnceLock;

    /// The real interpreter behind `python3` (not a pyenv shim, which edits the environment).
    fn python3() -> String {
        static PY: OnceLock<String> = OnceLock::new();
        PY.get_or_init(|| {
            let out = std::process::Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .expect("python3 on this host");
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .clone()
    }

    fn env_with(unbuffered: bool) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| !k.starts_with("PYENV") && k != "PYTHONUNBUFFERED")
            .collect();
        env.push(("ENCLAVE_TEST_VAR".into(), "hello there".into()));
        if unbuffered {
            env.push(("PYTHONUNBUFFERED".into(), "1".into()));
        }
        env
    }

    #[derive(Debug, PartialEq)]
    struct Outcome {
        out: String,
        err: String,
        exit: Option<Exit>,
    }

    /// What the call printed, with the script's random name replaced by `SCRIPT`.
    fn normalize(text: &[u8]) -> String {
        let text = String::from_utf8_lossy(text);
        let mut out = String::new();
        let mut rest = &text[..];
        while let Some(i) = rest.find("/tmp/enclave_py_") {
            out.push_str(&rest[..i]);
            let tail = &rest[i + "/tmp/enclave_py_".len()..];
            let hex = tail.chars().take_while(char::is_ascii_hexdigit).count();
            if hex == 32 && tail[hex..].starts_with(".py") {
                out.push_str("SCRIPT");
                rest = &tail[hex + 3..];
            } else {
                out.push_str("/tmp/enclave_py_");
                rest = tail;
            }
        }
        out.push_str(rest);
        // Object addresses differ from run to run.
        let mut masked = String::with_capacity(out.len());
        let mut chars = out.chars().peekable();
        while let Some(c) = chars.next() {
            masked.push(c);
            if c == '0' && chars.peek() == Some(&'x') {
                masked.push(chars.next().unwrap());
                masked.push('?');
                while chars.peek().is_some_and(char::is_ascii_hexdigit) {
                    chars.next();
                }
            }
        }
        masked
    }

    /// `python FILE` as a fresh process: the reference.
    fn reference(code: &str, interp: &str, env: &[(String, String)], cwd: Option<&str>) -> Outcome {
        let script = write_script(code).unwrap();
        let mut command = std::process::Command::new(interp);
        command
            .arg(&script)
            .env_clear()
            .envs(env.iter().cloned())
            .stdin(Stdio::null())
            .process_group(0);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let output = command.output().unwrap();
        std::fs::remove_file(&script).unwrap();
        Outcome {
            out: normalize(&output.stdout),
            err: normalize(&output.stderr),
            exit: Some(match output.status.code() {
                Some(code) => Exit::Code(code),
                None => Exit::Signal(output.status.signal().unwrap()),
            }),
        }
    }

    struct Ran {
        outcome: Outcome,
        pid: u32,
        forked: bool,
    }

    fn read_all(fd: OwnedFd) -> Vec<u8> {
        let mut buf = Vec::new();
        std::fs::File::from(fd).read_to_end(&mut buf).unwrap();
        buf
    }

    /// A call through the runner, run to its end as the agent would.
    async fn run(
        py: &Python,
        code: &str,
        interp: Option<&str>,
        env: &[(String, String)],
        cwd: Option<&str>,
    ) -> Ran {
        let (out_r, out_w) = nix::unistd::pipe().unwrap();
        let (err_r, err_w) = nix::unistd::pipe().unwrap();
        let out = tokio::task::spawn_blocking(move || read_all(out_r));
        let err = tokio::task::spawn_blocking(move || read_all(err_r));
        let req = PythonRequest {
            code: code.into(),
            interpreter: interp.map(Into::into),
            env: Vec::new(),
            cwd: cwd.map(Into::into),
            timeout_ms: None,
        };
        let (pid, exit, forked) = match py.start(&req, env, cwd, out_w, err_w).await.unwrap() {
            PyStart::Forked { pid, exit } => (pid, exit.await.ok(), true),
            PyStart::Fresh {
                argv,
                script,
                stdout,
                stderr,
            } => {
                let env = env.to_vec();
                let cwd = cwd.map(String::from);
                tokio::task::spawn_blocking(move || {
                    let mut command = std::process::Command::new(&argv[0]);
                    command
                        .args(&argv[1..])
                        .env_clear()
                        .envs(env)
                        .stdin(Stdio::null())
                        .stdout(Stdio::from(stdout))
                        .stderr(Stdio::from(stderr))
                        .process_group(0);
                    if let Some(cwd) = cwd {
                        command.current_dir(cwd);
                    }
                    let mut child = command.spawn().unwrap();
                    drop(command);
                    let status = child.wait().unwrap();
                    std::fs::remove_file(&script).unwrap();
                    let exit = match status.code() {
                        Some(code) => Exit::Code(code),
                        None => Exit::Signal(status.signal().unwrap()),
                    };
                    (child.id(), Some(exit), false)
                })
                .await
                .unwrap()
            }
        };
        Ran {
            outcome: Outcome {
                out: normalize(&out.await.unwrap()),
                err: normalize(&err.await.unwrap()),
                exit,
            },
            pid,
            forked,
        }
    }

    fn server_pid(py: &Python) -> Option<u32> {
        let slots = py.slots.lock().unwrap();
        slots.values().find_map(|slot| slot.warm()).map(|s| s.pid)
    }

    const SNIPPETS: &[&str] = &[
        "print(1)",
        "import sys\nsys.stderr.write('to stderr\\n')\nprint('to stdout')",
        "def f(x):\n    return 1 / x\nprint('before')\nf(0)\n",
        "print('never')\ndef f(:\n    pass\n",
        "x = (1,\n",
        "import sys\nprint('a')\nsys.exit(3)",
        "import sys\nsys.exit('a message')",
        "import sys\nsys.exit()",
        "raise SystemExit(True)",
        "import sys\nsys.exit(256 + 7)",
        "import os\nprint('x', flush=True)\nos._exit(5)",
        "print('partial', end='')",
        "import os\nprint('lost unless unbuffered')\nos._exit(0)",
        "raise KeyboardInterrupt",
        "import time\ntry:\n    raise KeyboardInterrupt\nfinally:\n    print('finally')",
        "import sys, os\nprint(sys.argv == [__file__], __name__, os.path.exists(__file__), __file__)",
        "import sys\nprint(repr(sys.stdin.read()))",
        "import json\nprint(json.dumps({'a': [1, 2]}))",
        "import threading\nout = []\nts = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]\n\
         [t.start() for t in ts]\n[t.join() for t in ts]\nprint(sorted(out))",
        "import threading, time\ndef late():\n    time.sleep(0.1)\n    print('late thread')\n\
         threading.Thread(target=late).start()\nprint('main done')",
        "import atexit\natexit.register(print, 'bye')\nprint('hi')",
        "import atexit\natexit.register(print, 'bye')\n1 / 0",
        "import atexit, sys\natexit.register(print, 'bye')\nsys.exit('msg')",
        "import atexit\ndef bad():\n    raise ValueError('in atexit')\natexit.register(bad)",
        "try:\n    1 / 0\nexcept Exception:\n    raise ValueError('chained')",
        "import sys\nsys.excepthook = lambda t, v, tb: print('hooked', t.__name__, v)\nraise OSError(2, 'x')",
        "import sys\ndef hook(t, v, tb):\n    raise RuntimeError('bad hook')\nsys.excepthook = hook\n1 / 0",
        "class E(Exception):\n    def __str__(self):\n        return 'custom'\nraise E()",
        "print(sorted(globals()))\nprint(__loader__.name, __loader__.path == __file__, __spec__, __doc__,\
         __cached__, __package__, __builtins__)",
        "'''doc'''\nprint(__doc__)",
        "import sys\nprint(sys.path[0], sys.argv == [__file__], sys.orig_argv[1:] == [__file__])\n\
         print(sys.path, sys.flags)",
        "import sys\nprint(sys.stdin, sys.stdout, sys.stderr, sys.stdin.seekable())\n\
         print(sys.stdout.line_buffering, sys.stdout.write_through)\n\
         print(sys.stderr.line_buffering, sys.stderr.write_through, sys.stdout.encoding, sys.stderr.errors)",
        "import signal\nprint(signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGPIPE),\
         signal.getsignal(signal.SIGCHLD), signal.getsignal(signal.SIGTERM))",
        "import os, subprocess\nprint(os.environ['ENCLAVE_TEST_VAR'], os.getenv('PYTHONUNBUFFERED'))\n\
         print(subprocess.run(['sh', '-c', 'echo $ENCLAVE_TEST_VAR'], capture_output=True, text=True).stdout)",
        "import os\nprint(os.getcwd())",
        "import warnings\nwarnings.warn('careful')\nprint('after')",
        "print('\\u00e9\\u4e2d')",
        "import sys\nprint(len(sys.argv), sys.version_info >= (3,))\nexit(4)",
        "import multiprocessing as mp\nwith mp.Pool(2) as p:\n    print(p.map(abs, [-1, -2]))",
    ];

    #[tokio::test]
    async fn python_forked_matches_python_file() {
        let interp = python3();
        let py = Python::new();
        let dir = std::env::temp_dir();
        let cwd = dir.to_str().unwrap();
        for unbuffered in [true, false] {
            let env = env_with(unbuffered);
            for code in SNIPPETS {
                for cwd in [None, Some(cwd)] {
                    let want = reference(code, &interp, &env, cwd);
                    let got = run(&py, code, Some(&interp), &env, cwd).await;
                    assert!(got.forked, "{code}");
                    assert_eq!(
                        got.outcome, want,
                        "unbuffered {unbuffered}, cwd {cwd:?}: {code}"
                    );
                }
            }
        }
        assert_eq!(py.warm(), vec![interp]);
    }

    #[tokio::test]
    async fn python_children_are_fresh_and_their_own() {
        let interp = python3();
        let py = Python::new();
        let env = env_with(true);
        let first = run(
            &py,
            "x = 1\nimport json, os\njson.marker = 1\nos.environ['LEAK'] = '1'\nprint(__file__)",
            Some(&interp),
            &env,
            None,
        )
        .await;
        assert!(first.forked);
        assert_eq!(first.outcome.exit, Some(Exit::Code(0)));
        let script = first.outcome.out.trim().to_string();
        assert_eq!(script, "SCRIPT");
        let server = server_pid(&py).unwrap();
        let code = "import json, os, ctypes\nprint('x' in globals(), hasattr(json, 'marker'), \
                    os.environ.get('LEAK'))\nprint(os.getpid(), os.getppid(), os.getpgid(0))\n\
                    v = ctypes.c_int()\nctypes.CDLL(None).prctl(37, ctypes.byref(v))\nprint(v.value)";
        let second = run(&py, code, Some(&interp), &env, None).await;
        assert!(second.forked);
        let lines: Vec<&str> = second.outcome.out.lines().collect();
        assert_eq!(lines[0], "False False None", "{:?}", second.outcome);
        let pid = second.pid.to_string();
        assert_eq!(lines[1], format!("{pid} {server} {pid}"));
        assert_ne!(second.pid, server);
        assert_eq!(lines[2], "1", "the child is a child subreaper");
        let code = "print(__file__)";
        let third = run(&py, code, Some(&interp), &env, None).await;
        assert!(third.forked);
    }

    #[tokio::test]
    async fn python_scripts_are_removed_after_the_call() {
        let interp = python3();
        let py = Python::new();
        let env = env_with(true);
        let (out_r, out_w) = nix::unistd::pipe().unwrap();
        let (_err_r, err_w) = nix::unistd::pipe().unwrap();
        let req = PythonRequest {
            code: "print(__file__)".into(),
            interpreter: Some(interp),
            env: Vec::new(),
            cwd: None,
            timeout_ms: None,
        };
        let PyStart::Forked { exit, .. } = py.start(&req, &env, None, out_w, err_w).await.unwrap()
        else {
            panic!("not forked");
        };
        assert_eq!(exit.await.unwrap(), Exit::Code(0));
        let out = String::from_utf8(read_all(out_r)).unwrap();
        let script = out.trim();
        assert!(script.starts_with("/tmp/enclave_py_"), "{script}");
        assert!(!Path::new(script).exists(), "{script} is left");
    }

    #[tokio::test]
    async fn python_server_killed_is_restarted() {
        let interp = python3();
        let py = Python::new();
        let env = env_with(true);
        assert!(run(&py, "print(1)", Some(&interp), &env, None).await.forked);
        let first = server_pid(&py).unwrap();
        kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
        // Its death may not be seen yet: the call must work either way.
        let ran = run(&py, "print(2)", Some(&interp), &env, None).await;
        assert_eq!(ran.outcome.out, "2\n");
        let ran = run(&py, "print(3)", Some(&interp), &env, None).await;
        assert!(ran.forked);
        assert_eq!(ran.outcome.out, "3\n");
        let second = server_pid(&py).unwrap();
        assert_ne!(first, second);

        // Code that kills its own server: it still runs to its end; its status is lost.
        let code =
            "import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(0.05)\n\
                    print('still here', flush=True)";
        let ran = run(&py, code, Some(&interp), &env, None).await;
        assert!(ran.forked);
        assert_eq!(ran.outcome.out, "still here\n");
        assert_eq!(ran.outcome.exit, None);
        let ran = run(&py, "print(4)", Some(&interp), &env, None).await;
        assert!(ran.forked);
        assert_ne!(server_pid(&py).unwrap(), second);
    }

    #[tokio::test]
    async fn python_many_calls_at_once() {
        let interp = python3();
        let py = Python::new();
        let env = env_with(true);
        let calls = (0..16).map(|i| {
            let code = format!("import time\ntime.sleep(0.05)\nprint({i})\nraise SystemExit({i})");
            let (py, interp, env) = (&py, &interp, &env);
            async move { (i, run(py, &code, Some(interp), env, None).await) }
        });
        for (i, ran) in futures_util::future::join_all(calls).await {
            assert!(ran.forked);
            assert_eq!(ran.outcome.out, format!("{i}\n"));
            assert_eq!(ran.outcome.exit, Some(Exit::Code(i)));
        }
    }

    #[tokio::test]
    async fn python_user_site_appearing_restarts_the_server() {
        let interp = python3();
        let py = Python::new();
        let base = PathBuf::from(format!("/tmp/enclave_test_userbase_{}", random_hex()));
        let mut env = env_with(true);
        env.push(("PYTHONUSERBASE".into(), base.display().to_string()));
        let code = "import enclave_probe_mod\nprint(enclave_probe_mod.X)";
        let before = run(&py, code, Some(&interp), &env, None).await;
        assert!(before.forked);
        assert_eq!(before.outcome.exit, Some(Exit::Code(1)));
        let out = std::process::Command::new(&interp)
            .args(["-c", "import site; print(site.getusersitepackages())"])
            .env("PYTHONUSERBASE", &base)
            .output()
            .unwrap();
        let site = String::from_utf8(out.stdout).unwrap().trim().to_string();
        std::fs::create_dir_all(&site).unwrap();
        std::fs::write(Path::new(&site).join("enclave_probe_mod.py"), "X = 42\n").unwrap();
        let want = reference(code, &interp, &env, None);
        let after = run(&py, code, Some(&interp), &env, None).await;
        std::fs::remove_dir_all(&base).unwrap();
        assert!(after.forked);
        assert_eq!(want.out, "42\n");
        assert_eq!(after.outcome, want);
    }

    /// A fake interpreter: logs each start to `log`, then runs `body`.
    fn fake_interpreter(body: &str) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = PathBuf::from(format!("/tmp/enclave_test_fake_{}", random_hex()));
        std::fs::create_dir(&dir).unwrap();
        let log = dir.join("log");
        let bin = dir.join("python3");
        std::fs::write(
            &bin,
            format!("#!/bin/sh\necho start >> {}\n{body}\n", log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        (bin, log)
    }

    async fn start_fresh(py: &Python, interp: &Path) -> Vec<String> {
        let (_r1, w1) = nix::unistd::pipe().unwrap();
        let (_r2, w2) = nix::unistd::pipe().unwrap();
        let req = PythonRequest {
            code: "print(1)".into(),
            interpreter: Some(interp.display().to_string()),
            env: Vec::new(),
            cwd: None,
            timeout_ms: None,
        };
        match py.start(&req, &env_with(true), None, w1, w2).await.unwrap() {
            PyStart::Fresh { argv, script, .. } => {
                assert_eq!(std::fs::read_to_string(&script).unwrap(), "print(1)");
                std::fs::remove_file(&script).unwrap();
                assert_eq!(argv[1], script.display().to_string());
                argv
            }
            PyStart::Forked { .. } => panic!("forked by a fake interpreter"),
        }
    }

    #[tokio::test]
    async fn python_unsupported_interpreter_runs_fresh_and_is_not_retried() {
        let py = Python::new();
        let (bin, log) = fake_interpreter("printf 'U Python 2.7 is older than 3.3\\n' >&0");
        for _ in 0..3 {
            assert_eq!(start_fresh(&py, &bin).await[0], bin.display().to_string());
        }
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
        assert!(py.warm().is_empty());
        std::fs::remove_dir_all(bin.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn python_broken_interpreter_runs_fresh_with_a_backoff() {
        let py = Python::new();
        let (bin, log) = fake_interpreter("exit 3");
        for _ in 0..3 {
            start_fresh(&py, &bin).await;
        }
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
        std::fs::remove_dir_all(bin.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn python_interpreter_resolution() {
        let py = Python::new();
        let env = vec![("PATH".to_string(), "/nonexistent:/also-not".to_string())];
        let (_r1, w1) = nix::unistd::pipe().unwrap();
        let (_r2, w2) = nix::unistd::pipe().unwrap();
        let mut req = PythonRequest {
            code: "print(1)".into(),
            interpreter: None,
            env: Vec::new(),
            cwd: None,
            timeout_ms: None,
        };
        let Err(e) = py.start(&req, &env, None, w1, w2).await else {
            panic!("started without a python");
        };
        assert_eq!(
            (e.kind, e.message.as_str()),
            (FailureKind::CommandNotFound, NO_PYTHON)
        );

        req.interpreter = Some("/nonexistent/python".into());
        let env = env_with(true);
        let (_r1, w1) = nix::unistd::pipe().unwrap();
        let (_r2, w2) = nix::unistd::pipe().unwrap();
        let Err(e) = py.start(&req, &env, None, w1, w2).await else {
            panic!("started a missing python");
        };
        assert_eq!(e.kind, FailureKind::CommandNotFound);

        req.interpreter = None;
        let (_r1, w1) = nix::unistd::pipe().unwrap();
        let (_r2, w2) = nix::unistd::pipe().unwrap();
        let Err(e) = py.start(&req, &env, Some("/nonexistent-dir"), w1, w2).await else {
            panic!("started in a missing directory");
        };
        assert_eq!(e.kind, FailureKind::NoWorkdir);

        let path = env.iter().find(|(k, _)| k == "PATH").unwrap().1.clone();
        let found = resolve_interpreter(None, &env, None).unwrap();
        let first = path
            .split(':')
            .map(|d| Path::new(d).join("python3"))
            .find(|p| executable(p))
            .unwrap();
        assert_eq!(found, first.display().to_string());
    }

    #[tokio::test]
    async fn python_prewarm_starts_the_default_interpreter() {
        let py = Python::new();
        py.prewarm();
        let deadline = Instant::now() + START_TIMEOUT;
        while py.warm().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let env = env_with(false);
        let default = resolve_interpreter(None, &env, None).unwrap();
        assert_eq!(py.warm(), vec![default]);
    }

    /// Not an assertion: the time of a `print(1)` through the runner, start to exit and EOF.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn python_print_latency() {
        let interp = python3();
        let py = Python::new();
        let env = env_with(true);
        let req = PythonRequest {
            code: "print(1)".into(),
            interpreter: Some(interp.clone()),
            env: Vec::new(),
            cwd: None,
            timeout_ms: None,
        };
        let (mut started, mut exited, mut ended) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..220 {
            let t = Instant::now();
            let (out_r, out_w) = nix::unistd::pipe().unwrap();
            let (err_r, err_w) = nix::unistd::pipe().unwrap();
            let PyStart::Forked { exit, .. } =
                py.start(&req, &env, None, out_w, err_w).await.unwrap()
            else {
                panic!("not forked");
            };
            let t_started = t.elapsed();
            assert_eq!(exit.await.unwrap(), Exit::Code(0));
            let t_exited = t.elapsed();
            // The child is gone: its pipes are at their end, read without blocking for long.
            assert_eq!(read_all(out_r), b"1\n");
            assert!(read_all(err_r).is_empty());
            if i >= 20 {
                started.push(t_started);
                exited.push(t_exited);
                ended.push(t.elapsed());
            }
        }
        for (what, times) in [
            ("forked", &mut started),
            ("exit known", &mut exited),
            ("output read", &mut ended),
        ] {
            times.sort();
            let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
            eprintln!(
                "python print(1) through the fork server, {what}: p50 {:?}, p90 {:?}, p99 {:?}",
                at(0.5),
                at(0.9),
                at(0.99)
            );
        }
        let t = Instant::now();
        let _ = reference("print(1)", &interp, &env, None);
        eprintln!("python print(1) as a fresh python FILE: {:?}", t.elapsed());
    }
}

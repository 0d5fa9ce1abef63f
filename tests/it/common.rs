//! Shared test plumbing: an isolated state dir, a label that marks what a test created, and
//! cleanup that removes it whatever happened.

#![allow(dead_code)]

use std::process::{Command as StdCommand, Output};
use std::sync::Once;

use assert_cmd::Command;
use rand::Rng;

pub(crate) const LABEL_KEY: &str = "enclave-test";

/// The image tests run: built locally by `scripts/ensure-docker.sh`.
pub(crate) fn test_image() -> String {
    std::env::var("ENCLAVE_TEST_IMAGE").unwrap_or_else(|_| "enclave-test-python:bookworm".into())
}

/// Panics, with what to do, when no engine answers or the test image is missing.
pub(crate) fn require_docker() {
    static CHECK: Once = Once::new();
    CHECK.call_once(|| {
        let out = StdCommand::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", &test_image()])
            .output()
            .expect("the `docker` CLI must be installed for the integration tests");
        assert!(
            out.status.success(),
            "Docker or the test image `{}` is not available: {}\nrun ./scripts/test.sh, which sets both up",
            test_image(),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// One test's world: its own state dir and its own label on every container it makes.
pub(crate) struct TestEnv {
    pub(crate) state_dir: tempfile::TempDir,
    pub(crate) run_label: String,
}

impl TestEnv {
    pub(crate) fn new() -> Self {
        require_docker();
        let tag: u64 = rand::rng().random();
        TestEnv {
            state_dir: tempfile::tempdir().expect("temp dir"),
            run_label: format!("{tag:016x}"),
        }
    }

    /// The `enclave` binary with this test's state dir and no colour.
    pub(crate) fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("enclave").expect("enclave binary");
        cmd.env("ENCLAVE_STATE_DIR", self.state_dir.path())
            .env("NO_COLOR", "1")
            .env_remove("ENCLAVE_SERVER")
            .timeout(std::time::Duration::from_secs(120));
        cmd
    }

    /// `--label` arguments that mark a sandbox as this test's.
    pub(crate) fn label_args(&self) -> [String; 2] {
        ["--label".into(), format!("{LABEL_KEY}={}", self.run_label)]
    }

    /// Creates a sandbox from the test image with extra `create` arguments; returns its id.
    pub(crate) fn create(&self, extra: &[&str]) -> String {
        let out = self
            .cmd()
            .arg("create")
            .args(["--image", &test_image()])
            .args(self.label_args())
            .args(extra)
            .output()
            .expect("run enclave create");
        assert!(
            out.status.success(),
            "create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert_eq!(id.len(), 8, "create printed `{id}`");
        id
    }

    /// Ids of the containers (running or not) this test created, from Docker itself.
    pub(crate) fn containers(&self) -> Vec<String> {
        docker_ids(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label={LABEL_KEY}={}", self.run_label),
        ])
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let ids = self.containers();
        if !ids.is_empty() {
            let _ = StdCommand::new("docker")
                .args(["rm", "-fv"])
                .args(&ids)
                .output();
        }
    }
}

pub(crate) fn docker(args: &[&str]) -> Output {
    StdCommand::new("docker")
        .args(args)
        .output()
        .expect("run docker")
}

pub(crate) fn docker_ids(args: &[&str]) -> Vec<String> {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `enclave args…` started in the background with this test's state dir, all streams piped.
pub(crate) fn spawn(env: &TestEnv, args: &[&str]) -> std::process::Child {
    spawn_with(env, args, &[])
}

/// `spawn` with extra environment variables.
pub(crate) fn spawn_with(
    env: &TestEnv,
    args: &[&str],
    vars: &[(&str, &str)],
) -> std::process::Child {
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("enclave"));
    cmd.env("ENCLAVE_STATE_DIR", env.state_dir.path())
        .env("NO_COLOR", "1")
        .env_remove("ENCLAVE_SERVER")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start enclave")
}

/// Waits for `child` to exit; a child still running after `secs` is killed and the test fails,
/// so a regression that hangs fails instead of hanging the suite.
pub(crate) fn wait_within(mut child: std::process::Child, secs: u64, what: &str) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if child.try_wait().expect("wait for enclave").is_some() {
            return child.wait_with_output().expect("collect enclave's output");
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what}: still running after {secs}s\nstdout: {}\nstderr: {}",
                stdout(&out),
                stderr(&out)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends `signal` (`INT`, `TERM`, `HUP`, `KILL`) to a process.
pub(crate) fn send_signal(pid: u32, signal: &str) {
    let sent = StdCommand::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// Polls `check` until it holds; fails the test after `secs`.
pub(crate) fn poll_until(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {secs}s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Reads `n` bytes of a child's stdout (its first line, say), failing if it ends first.
pub(crate) fn read_stdout(child: &mut std::process::Child, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    std::io::Read::read_exact(child.stdout.as_mut().expect("piped stdout"), &mut buf)
        .expect("read the child's stdout");
    buf
}

/// `enclave args…` started in the background, once it has printed `ready` on stdout.
pub(crate) fn spawn_ready(env: &TestEnv, args: &[&str]) -> std::process::Child {
    let mut child = spawn(env, args);
    assert_eq!(read_stdout(&mut child, 6), b"ready\n", "{args:?}");
    child
}

/// Starts `enclave args…`, waits until it printed `ready`, sends `signal`, and waits (bounded)
/// for it to exit.
pub(crate) fn signal_when_ready(env: &TestEnv, args: &[&str], signal: &str) -> Output {
    let child = spawn_ready(env, args);
    send_signal(child.id(), signal);
    wait_within(child, 30, &format!("{args:?} after SIG{signal}"))
}

/// Holds the state file's lock of `env`, as another enclave process would, until dropped.
pub(crate) fn hold_state_lock(env: &TestEnv) -> std::fs::File {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(env.state_dir.path().join("state.lock"))
        .expect("open the lock file");
    lock.lock().expect("take the lock");
    lock
}

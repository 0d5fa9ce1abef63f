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
    pub state_dir: tempfile::TempDir,
    pub run_label: String,
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

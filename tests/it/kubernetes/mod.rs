//! The kubernetes backend. `dry_run` needs no cluster. The rest runs the real `enclave` binary
//! against a cluster: always against the fake API server (tests/fake-kube: a strict, test-only
//! fake that runs Pods as containers on the local Docker engine), and against a real cluster
//! too when `KUBECONFIG` is given (`ENCLAVE_K8S_NAMESPACE` picks the namespace, default
//! `default`; `ENCLAVE_K8S_TEST_IMAGE` the image, default `python:3.12-slim`). Without it the
//! real-cluster tests say loudly that they were skipped, and scripts/test.sh says so too.

mod dry_run;
mod e2e;
mod faults;
mod in_cluster;
mod mcp;
mod server;

use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;
use enclave_fake_kube::FakeKube;
use serde_json::Value;

use crate::common::{stderr, stdout, test_image, TestEnv, LABEL_KEY};

/// One test's cluster: the fake (its own instance) or the real one, with the test's state dir
/// and label.
pub(crate) struct Cluster {
    /// `None` on a real cluster.
    fake: Option<FakeKube>,
    kubeconfig: PathBuf,
    pub(crate) namespace: String,
    pub(crate) image: String,
    pub(crate) env: TestEnv,
}

impl Cluster {
    /// A fresh fake API server.
    pub(crate) fn fake() -> Cluster {
        let env = TestEnv::new();
        let fake = FakeKube::start_blocking().expect("start the fake API server");
        Cluster {
            kubeconfig: fake.kubeconfig().to_path_buf(),
            fake: Some(fake),
            namespace: "default".into(),
            image: test_image(),
            env,
        }
    }

    /// The real cluster `KUBECONFIG` names; `None` (said loudly) when it is not given.
    pub(crate) fn real(test: &str) -> Option<Cluster> {
        let Some(kubeconfig) = std::env::var_os("KUBECONFIG").filter(|k| !k.is_empty()) else {
            eprintln!(
                "SKIPPED on a real cluster: {test} (KUBECONFIG is not set; only the fake API server ran it)"
            );
            return None;
        };
        Some(Cluster {
            fake: None,
            kubeconfig: PathBuf::from(kubeconfig),
            namespace: std::env::var("ENCLAVE_K8S_NAMESPACE").unwrap_or_else(|_| "default".into()),
            image: std::env::var("ENCLAVE_K8S_TEST_IMAGE")
                .unwrap_or_else(|_| "python:3.12-slim".into()),
            env: TestEnv::new(),
        })
    }

    pub(crate) fn is_fake(&self) -> bool {
        self.fake.is_some()
    }

    pub(crate) fn fake_server(&self) -> &FakeKube {
        self.fake.as_ref().expect("a fake-only test")
    }

    /// `enclave` aimed at this cluster: `--backend kubernetes` through the environment.
    pub(crate) fn cmd(&self) -> Command {
        let mut cmd = self.env.cmd();
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("ENCLAVE_BACKEND", "kubernetes")
            .env("ENCLAVE_K8S_NAMESPACE", &self.namespace)
            .env_remove("ENCLAVE_K8S_CONTEXT")
            .timeout(std::time::Duration::from_secs(180));
        cmd
    }

    /// Creates a sandbox from the test image, labelled as this test's; its id.
    pub(crate) fn create(&self, extra: &[&str]) -> String {
        let out = self.try_create(extra);
        assert!(out.status.success(), "create failed: {}", stderr(&out));
        let id = stdout(&out).trim().to_string();
        assert_eq!(id.len(), 8, "create printed `{id}`");
        id
    }

    /// `create` with `extra` arguments (the test image unless they name another).
    pub(crate) fn try_create(&self, extra: &[&str]) -> Output {
        let image: &[&str] = if extra.contains(&"--image") {
            &[]
        } else {
            &["--image", &self.image]
        };
        self.cmd()
            .arg("create")
            .args(image)
            .args(self.env.label_args())
            .args(extra)
            .output()
            .expect("run enclave create")
    }

    /// `kubectl` against this cluster: a second, independent client.
    pub(crate) fn kubectl(&self, args: &[&str]) -> Output {
        std::process::Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", &self.namespace])
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// The Pods this test made, as kubectl sees them.
    pub(crate) fn pods(&self) -> Vec<Value> {
        let selector = format!("{LABEL_KEY}={}", self.env.run_label);
        let out = self.kubectl(&["get", "pods", "-l", &selector, "-o", "json"]);
        assert!(out.status.success(), "kubectl get pods: {}", stderr(&out));
        let list: Value = serde_json::from_str(&stdout(&out)).expect("kubectl's JSON");
        list["items"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Nothing this test made may outlive it, whatever happened.
        if self.fake.is_none() {
            let selector = format!("{LABEL_KEY}={}", self.env.run_label);
            let _ = self.kubectl(&[
                "delete",
                "pods,networkpolicies",
                "-l",
                &selector,
                "--wait=false",
            ]);
        }
    }
}

/// An agent image for this cluster: on the fake, an image holding only the agent binary this
/// build carries (`/enclave-agent`), made with `docker import` once per build of the agent; on a
/// real cluster `ENCLAVE_K8S_AGENT_IMAGE` (a registry the cluster pulls from), or `None`.
pub(crate) fn agent_image(k: &Cluster) -> Option<String> {
    static IMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if !k.is_fake() {
        return std::env::var("ENCLAVE_K8S_AGENT_IMAGE").ok();
    }
    Some(IMAGE.get_or_init(import_agent_image).clone())
}

fn import_agent_image() -> String {
    use std::hash::{Hash, Hasher};
    use std::io::Write;
    // target/<profile>/enclave → target/agent/<triple>/agent/enclave-agent (build.rs).
    let enclave = assert_cmd::cargo::cargo_bin("enclave");
    let target = enclave
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir");
    let binary = std::fs::read_dir(target.join("agent"))
        .expect("target/agent: the agent's build (build.rs)")
        .filter_map(Result::ok)
        .map(|e| e.path().join("agent/enclave-agent"))
        .find(|p| p.is_file())
        .expect("the agent binary under target/agent/<triple>/agent/");
    let bytes = std::fs::read(&binary).unwrap();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    let name = format!("enclave-test-agent:{:016x}", hasher.finish());
    let have = std::process::Command::new("docker")
        .args(["image", "inspect", &name])
        .output()
        .unwrap();
    if have.status.success() {
        return name;
    }
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, "enclave-agent", bytes.as_slice())
        .unwrap();
    let tar = tar.into_inner().unwrap();
    let mut import = std::process::Command::new("docker")
        .args(["import", "-", &name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    import.stdin.take().unwrap().write_all(&tar).unwrap();
    assert!(import.wait().unwrap().success(), "docker import of {name}");
    // Earlier builds' agent images are of no more use.
    let old = std::process::Command::new("docker")
        .args(["images", "-q", "--filter", "reference=enclave-test-agent"])
        .output()
        .unwrap();
    let mine = std::process::Command::new("docker")
        .args(["images", "-q", &name])
        .output()
        .unwrap();
    for id in String::from_utf8_lossy(&old.stdout).lines() {
        if !String::from_utf8_lossy(&mine.stdout).contains(id) {
            let _ = std::process::Command::new("docker")
                .args(["rmi", "-f", id])
                .output();
        }
    }
    name
}

/// The kubectl to run: `KUBECTL`, else the one on PATH.
fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

/// Runs `test` on the fake, and on a real cluster when one is given.
#[macro_export]
macro_rules! on_fake_and_real {
    ($name:ident) => {
        mod $name {
            #[test]
            fn on_the_fake() {
                super::$name(&$crate::kubernetes::Cluster::fake());
            }

            #[test]
            fn on_a_real_cluster() {
                if let Some(cluster) = $crate::kubernetes::Cluster::real(stringify!($name)) {
                    super::$name(&cluster);
                }
            }
        }
    };
}

//! In a cluster: no kubeconfig, only what a Pod's service account gives a process
//! (`KUBERNETES_SERVICE_HOST`/`_PORT`, and `token`, `ca.crt`, `namespace` under
//! /var/run/secrets/kubernetes.io/serviceaccount). kube-rs's in-cluster config always speaks
//! HTTPS, so the fake runs in its TLS mode and requires the token. The service-account files are
//! a temp dir bind-mounted at that path inside a private mount namespace (`unshare`), so nothing
//! outside the test sees them. Needs root (or the right to unshare and mount): without it the
//! tests say `SKIPPED` loudly.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use enclave_fake_kube::{FakeKube, Options};
use serde_json::{json, Value};

use crate::common::{stderr, stdout, test_image, TestEnv, LABEL_KEY};
use crate::server::{call, Server};

const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The namespace the service account's `namespace` file names: not kube-rs's `default`, so a
/// Pod found there was put there because of the file.
const NAMESPACE: &str = "enclave-in-cluster";
const TOKEN: &str = "in-cluster-token-0f3c";

/// Makes the service-account dir visible at its path, then runs the rest of the arguments. The
/// path is made on a tmpfs over /var/run that only this mount namespace sees, so the host's
/// /var/run is never written (a kubernetes-backend enclave needs nothing there).
const MOUNT_THEN_EXEC: &str = "mount -t tmpfs -o size=1m enclave-test /var/run && mkdir -p \"$1\" \
     && mount --bind \"$0\" \"$1\" && shift && exec \"$@\"";

/// The fake in its TLS mode requiring [`TOKEN`], and a service-account dir for it.
struct InCluster {
    fake: FakeKube,
    /// `token`, `ca.crt`, `namespace`: what the kubelet mounts into a Pod.
    service_account: tempfile::TempDir,
    /// An empty HOME: no `~/.kube/config` to fall back on.
    home: tempfile::TempDir,
    env: TestEnv,
}

impl InCluster {
    /// `None` (said loudly) when this machine does not let the test make a mount namespace.
    fn start(test: &str, token_in_file: &str) -> Option<InCluster> {
        let fake = FakeKube::start_blocking_with(Options {
            tls: true,
            token: Some(TOKEN.into()),
        })
        .expect("start the fake API server with TLS");
        let service_account = tempfile::tempdir().expect("a temp dir");
        let ca = fake.ca_pem().expect("the TLS mode's CA");
        write(service_account.path(), "ca.crt", ca);
        write(service_account.path(), "token", token_in_file);
        write(service_account.path(), "namespace", NAMESPACE);
        let k = InCluster {
            fake,
            service_account,
            home: tempfile::tempdir().expect("a temp dir"),
            env: TestEnv::new(),
        };
        if let Err(why) = k.can_mount() {
            eprintln!(
                "SKIPPED: {test}: cannot bind-mount a service account at {SERVICE_ACCOUNT_DIR} \
                 in a private mount namespace ({why}); enclave's in-cluster connection is untested"
            );
            return None;
        }
        Some(k)
    }

    /// Tries the mount with `cat` in place of enclave.
    fn can_mount(&self) -> Result<(), String> {
        let token_file = format!("{SERVICE_ACCOUNT_DIR}/token");
        let out = self
            .wrapped(Path::new("cat"), &[&token_file])
            .output()
            .map_err(|e| format!("running unshare: {e}"))?;
        if out.status.success() && stdout(&out).starts_with("in-cluster-token") {
            Ok(())
        } else {
            Err(format!("{}: {}", out.status, stderr(&out).trim()))
        }
    }

    /// `program args…` in a mount namespace of its own where the service-account dir is
    /// mounted, with the in-cluster environment and no kubeconfig.
    fn wrapped(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(MOUNT_THEN_EXEC)
            .arg(self.service_account.path())
            .arg(SERVICE_ACCOUNT_DIR)
            .arg(program)
            .args(args)
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", self.fake.port().to_string())
            .env("KUBECONFIG", self.home.path().join("no-such-kubeconfig"))
            .env("HOME", self.home.path())
            .env("ENCLAVE_STATE_DIR", self.env.state_dir.path())
            .env("ENCLAVE_BACKEND", "kubernetes")
            .env("NO_COLOR", "1")
            .env_remove("ENCLAVE_K8S_NAMESPACE")
            .env_remove("ENCLAVE_K8S_CONTEXT")
            .env_remove("ENCLAVE_SERVER")
            .env_remove("ENCLAVE_API_KEY")
            .stdin(Stdio::null());
        cmd
    }

    /// `enclave args…` in the service account's mount namespace.
    fn enclave(&self, args: &[&str]) -> Command {
        self.wrapped(&assert_cmd::cargo::cargo_bin("enclave"), args)
    }

    /// `enclave server --port 0` in the service account's mount namespace.
    fn server_command(&self) -> Command {
        let mut cmd = self.enclave(&["server", "--port", "0"]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// The Pods with this test's label in `namespace`, as the fake sees them (through kubectl
    /// with the fake's kubeconfig: its CA and the right token).
    fn pods_in(&self, namespace: &str) -> Vec<Value> {
        let selector = format!("{LABEL_KEY}={}", self.env.run_label);
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.fake.kubeconfig())
            .args(["--namespace", namespace, "get", "pods", "-l", &selector])
            .args(["-o", "json"])
            .output()
            .expect("run kubectl");
        assert!(out.status.success(), "kubectl get pods: {}", stderr(&out));
        let list: Value = serde_json::from_str(&stdout(&out)).expect("kubectl's JSON");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// This test's Pods that are not being deleted, in the service account's namespace.
    fn live_pods(&self) -> Vec<Value> {
        self.pods_in(NAMESPACE)
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect()
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write a service-account file");
}

#[test]
fn the_server_reaches_the_cluster_with_the_service_account() {
    let Some(k) = InCluster::start(
        "the_server_reaches_the_cluster_with_the_service_account",
        TOKEN,
    ) else {
        return;
    };
    let server = Server::start_command(k.server_command());
    assert!(
        server.log().contains(&format!(
            "at https://127.0.0.1:{}, namespace {NAMESPACE}",
            k.fake.port()
        )),
        "the server says where it went: {}",
        server.log()
    );
    let (status, health) = call(server.get("/v1/health"));
    assert_eq!(status, 200, "{health}");
    let backend = health["backend"].as_str().unwrap_or_default();
    assert!(
        backend.starts_with("kubernetes ") && backend.contains(&format!("(namespace {NAMESPACE})")),
        "{health}"
    );

    let config = json!({
        "image": test_image(),
        "tools_config": {"shell_executor": {}},
        "labels": {LABEL_KEY: k.env.run_label},
    });
    let (status, body) = call(
        server
            .post("/sandbox/create?sandbox_type=docker")
            .json(&config),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["sandbox_id"]
        .as_str()
        .expect("a sandbox id")
        .to_string();
    let pods = k.live_pods();
    assert_eq!(pods.len(), 1, "one Pod, in the namespace file's namespace");
    assert_eq!(pods[0]["metadata"]["labels"]["enclave.id"], id.as_str());
    assert!(
        k.pods_in("default").is_empty(),
        "nothing in kube-rs's default"
    );

    let (status, result) = call(server.post("/sandbox/tool/execute").json(&json!({
        "sandbox_id": id,
        "tool_name": "shell_executor",
        "parameters": {"command": "echo in-cluster; cat /etc/hostname"},
    })));
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "success", "{result}");
    let output = result["output"].as_str().unwrap_or_default();
    assert!(output.starts_with("in-cluster\n"), "{result}");

    let (status, body) = call(server.delete(&format!("/sandbox/{id}")));
    assert_eq!(status, 200, "{body}");
    assert!(k.live_pods().is_empty(), "the Pod is being deleted");
}

#[test]
fn the_server_with_a_wrong_token_is_refused_in_the_clusters_words() {
    let Some(k) = InCluster::start(
        "the_server_with_a_wrong_token_is_refused_in_the_clusters_words",
        "in-cluster-token-but-not-the-one",
    ) else {
        return;
    };
    // The server checks the cluster before it listens: it must stop, saying why.
    let child = k.server_command().spawn().expect("start enclave server");
    let out = wait_for_exit(child, 60);
    let said = stderr(&out);
    assert!(
        !out.status.success(),
        "it served with a wrong token: {said}"
    );
    assert!(!said.contains("listening on"), "{said}");
    assert!(said.contains("Unauthorized"), "the cluster's 401: {said}");
    assert!(k.live_pods().is_empty());
}

#[test]
fn the_cli_creates_execs_and_removes_with_the_service_account() {
    let Some(k) = InCluster::start(
        "the_cli_creates_execs_and_removes_with_the_service_account",
        TOKEN,
    ) else {
        return;
    };
    let image = test_image();
    let label = format!("{LABEL_KEY}={}", k.env.run_label);
    let out = k
        .enclave(&["create", "--image", &image, "--label", &label])
        .output()
        .expect("run enclave create");
    assert!(out.status.success(), "create: {}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    assert_eq!(id.len(), 8, "create printed `{id}`");
    let pods = k.live_pods();
    assert_eq!(pods.len(), 1, "one Pod, in the namespace file's namespace");
    assert_eq!(pods[0]["metadata"]["labels"]["enclave.id"], id.as_str());

    let out = k
        .enclave(&["exec", &id, "echo from-the-pod; exit 4"])
        .output()
        .expect("run enclave exec");
    assert_eq!(out.status.code(), Some(4), "exec: {}", stderr(&out));
    assert_eq!(stdout(&out), "from-the-pod\n");

    let out = k.enclave(&["rm", &id]).output().expect("run enclave rm");
    assert!(out.status.success(), "rm: {}", stderr(&out));
    assert!(k.live_pods().is_empty(), "the Pod is being deleted");

    // The same CLI with a wrong token in the file is refused by the cluster.
    write(k.service_account.path(), "token", "in-cluster-token-wrong");
    let out = k.enclave(&["ls"]).output().expect("run enclave ls");
    assert!(
        !out.status.success(),
        "ls with a wrong token: {}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
}

/// Waits (at most `secs`) for `child` to exit; kills it and fails the test if it does not.
fn wait_for_exit(mut child: std::process::Child, secs: u64) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().expect("wait for the child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("its output");
            panic!(
                "still running after {secs}s: {}{}",
                stdout(&out),
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("its output")
}

//! kubectl 1.32, an independent client, against the fake: create/apply, wait, get (table and
//! JSON), exec (output, exit code, stdin), delete, NotFound and a watch that sees the delete.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use enclave_fake_kube::{containers_of_instance, FakeKube, Fault};

/// kubectl as installed: Google Cloud SDK's dispatcher, which runs the kubectl matching the
/// server's minor version (the fake says 1.33, so kubectl 1.33).
const DISPATCHER: &str = "/usr/bin/kubectl";
/// kubectl 1.32 itself, bypassing the dispatcher.
const KUBECTL_1_32: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";
const IMAGE: &str = "enclave-test-python:bookworm";

std::thread_local! {
    /// The kubectl this test's thread runs.
    static KUBECTL: std::cell::Cell<&'static str> = const { std::cell::Cell::new(DISPATCHER) };
}

/// Picks kubectl `bin` for this test, or says loudly that the test was skipped.
fn kubectl_present(test: &str, bin: &'static str) -> bool {
    KUBECTL.set(bin);
    if Path::new(bin).exists() {
        return true;
    }
    eprintln!("\n!!!!! SKIPPED {test}: {bin} is missing, this kubectl test did NOT run !!!!!\n");
    false
}

fn pod_manifest(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: demo, test: kubectl}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {IMAGE}
    command: [sleep, "3600"]
    env: [{{name: PATH, value: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}}]
"#
    )
}

fn kubectl(fake: &FakeKube, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(KUBECTL.get())
        .arg("--kubeconfig")
        .arg(fake.kubeconfig())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        input
            .write_all(text.as_bytes())
            .expect("kubectl reads stdin");
    }
    drop(input);
    child.wait_with_output().expect("kubectl ends")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "kubectl failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Creates pod `name` from a manifest file with `verb` (`create` or `apply`) and waits for Ready.
fn create_ready(fake: &FakeKube, verb: &str, name: &str) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("pod.yaml");
    std::fs::write(&file, pod_manifest(name)).expect("the manifest is written");
    // Client-side validation downloads the OpenAPI schema, which the fake does not serve.
    let file = file.to_string_lossy().into_owned();
    ok(&kubectl(
        fake,
        &[verb, "--validate=false", "-f", &file],
        None,
    ));
    let pod = format!("pod/{name}");
    ok(&kubectl(
        fake,
        &["wait", "--for=condition=Ready", &pod, "--timeout=60s"],
        None,
    ));
}

/// `kubectl apply` of pod `name` with `extra` added to its spec fails with `kind` naming `field`.
fn refused_with(fake: &FakeKube, name: &str, extra: &str, kind: &str, field: &str) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("pod.yaml");
    let manifest = pod_manifest(name).replace(
        "  restartPolicy: Never\n",
        &format!("  restartPolicy: Never\n  {extra}\n"),
    );
    std::fs::write(&file, manifest).expect("the manifest is written");
    let file = file.to_string_lossy().into_owned();
    let refused = kubectl(fake, &["apply", "-f", &file], None);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains(kind) && said.contains(field), "{said}");
}

fn assert_no_leak(instance: &str) {
    let left = containers_of_instance(instance).expect("docker lists containers");
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

#[test]
fn kubectl_create_get_exec_delete() {
    if kubectl_present("kubectl_create_get_exec_delete", DISPATCHER) {
        create_get_exec_delete();
    }
}

#[test]
fn kubectl_1_32_create_get_exec_delete() {
    if kubectl_present("kubectl_1_32_create_get_exec_delete", KUBECTL_1_32) {
        create_get_exec_delete();
    }
}

fn create_get_exec_delete() {
    let fake = FakeKube::start_blocking().expect("the fake starts");
    let instance = fake.instance().to_string();
    create_ready(&fake, "create", "x");

    let table = ok(&kubectl(&fake, &["get", "pods", "-l", "app=demo"], None));
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], ["x", "1/1", "Running", "0"], "{table}");
    let none = kubectl(&fake, &["get", "pods", "-l", "app!=demo"], None);
    assert!(String::from_utf8_lossy(&none.stderr).contains("No resources found"));

    let json: serde_json::Value = serde_json::from_str(&ok(&kubectl(
        &fake,
        &["get", "pods", "-l", "test in (kubectl)", "-o", "json"],
        None,
    )))
    .expect("kubectl prints JSON");
    assert_eq!(json["items"][0]["metadata"]["name"], "x");
    assert_eq!(json["items"][0]["status"]["phase"], "Running");

    let exec = kubectl(
        &fake,
        &[
            "exec",
            "x",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "out\n");
    assert!(String::from_utf8_lossy(&exec.stderr).starts_with("err\n"));
    assert_eq!(exec.status.code(), Some(3));

    let echoed = kubectl(
        &fake,
        &["exec", "-i", "x", "--", "tr", "a-z", "A-Z"],
        Some("hello\n"),
    );
    assert_eq!(ok(&echoed), "HELLO\n");

    // RBAC's refusal, for the WebSocket request and kubectl's SPDY retry alike.
    fake.set_fault(Fault::Forbidden);
    let refused = kubectl(&fake, &["exec", "x", "--", "true"], None);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("forbidden"), "{said}");
    fake.clear_fault();

    ok(&kubectl(&fake, &["delete", "pod", "x"], None));
    let missing = kubectl(&fake, &["get", "pod", "x"], None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("(NotFound): pods \"x\" not found"));
    assert!(fake.containers().expect("docker lists").is_empty());
    drop(fake);
    assert_no_leak(&instance);
}

#[test]
fn kubectl_apply_and_watch_sees_the_delete() {
    if kubectl_present("kubectl_apply_and_watch_sees_the_delete", DISPATCHER) {
        apply_and_watch_sees_the_delete();
    }
}

#[test]
fn kubectl_1_32_apply_and_watch_sees_the_delete() {
    if kubectl_present("kubectl_1_32_apply_and_watch_sees_the_delete", KUBECTL_1_32) {
        apply_and_watch_sees_the_delete();
    }
}

fn apply_and_watch_sees_the_delete() {
    let fake = FakeKube::start_blocking().expect("the fake starts");
    let instance = fake.instance().to_string();
    refused_with(
        &fake,
        "w",
        "hostNetwork: true",
        "(BadRequest)",
        "spec.hostNetwork",
    );
    refused_with(
        &fake,
        "Bad_Name",
        "",
        "The Pod \"Bad_Name\" is invalid",
        "metadata.name",
    );
    create_ready(&fake, "apply", "w");
    let watch = Command::new(KUBECTL.get())
        .arg("--kubeconfig")
        .arg(fake.kubeconfig())
        .args([
            "get",
            "pods",
            "-w",
            "--output-watch-events",
            "--request-timeout=20s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl watch starts");
    std::thread::sleep(std::time::Duration::from_secs(1));
    ok(&kubectl(&fake, &["delete", "pod", "w"], None));
    std::thread::sleep(std::time::Duration::from_secs(1));
    // The fake ends the watch when it stops.
    drop(fake);
    let output = watch.wait_with_output().expect("the watch ends");
    let seen = String::from_utf8_lossy(&output.stdout);
    assert!(
        seen.lines()
            .any(|l| l.starts_with("DELETED") && l.contains(" w ")),
        "the watch printed: {seen}"
    );
    assert_no_leak(&instance);
}

//! kubectl against the fake's init containers and `emptyDir` volumes: `apply -f` with
//! client-side validation on (the fake's empty OpenAPI document lets the fields through), the
//! STATUS column through `Init:0/1`, `PodInitializing`, `Running` and `Init:Error`, and the init
//! statuses in `-o json`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use enclave_fake_kube::{containers_of_instance, volumes_of_instance, FakeKube};

/// kubectl as installed (Google Cloud SDK's dispatcher picks the kubectl for the server's minor).
const KUBECTL: &str = "/usr/bin/kubectl";
const IMAGE: &str = "enclave-test-python:bookworm";

fn kubectl_present(test: &str) -> bool {
    if Path::new(KUBECTL).exists() {
        return true;
    }
    eprintln!(
        "\n!!!!! SKIPPED {test}: {KUBECTL} is missing, this kubectl test did NOT run !!!!!\n"
    );
    false
}

/// A pod whose init container runs `init_script` with the `emptyDir` at `/shared`; the main
/// container sleeps with it read-only at `/mnt`.
fn manifest(name: &str, init_script: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  volumes:
  - name: shared
    emptyDir: {{sizeLimit: 64Mi}}
  initContainers:
  - name: fill
    image: {IMAGE}
    command: [sh, -c, "{init_script}"]
    env: [{{name: PATH, value: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}}]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
    securityContext: {{allowPrivilegeEscalation: false, privileged: false, capabilities: {{drop: [ALL]}}}}
  containers:
  - name: main
    image: {IMAGE}
    command: [sleep, "3600"]
    env: [{{name: PATH, value: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}}]
    volumeMounts: [{{name: shared, mountPath: /mnt, readOnly: true}}]
"#
    )
}

fn kubectl(fake: &FakeKube, args: &[&str]) -> Output {
    Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(fake.kubeconfig())
        .args(args)
        .output()
        .expect("kubectl runs")
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

/// `kubectl apply -f` of the manifest, validation left on.
fn apply(fake: &FakeKube, name: &str, init_script: &str) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("pod.yaml");
    std::fs::write(&file, manifest(name, init_script)).expect("the manifest is written");
    let file = file.to_string_lossy().into_owned();
    ok(&kubectl(fake, &["apply", "-f", &file]));
}

/// The READY and STATUS cells of pod `name` in `kubectl get pods`.
fn ready_and_status(fake: &FakeKube, name: &str) -> (String, String) {
    let table = ok(&kubectl(fake, &["get", "pods", name]));
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row.first(), Some(&name), "{table}");
    (row[1].to_string(), row[2].to_string())
}

/// Polls the STATUS column of pod `name` until it is `wanted`; every distinct value seen.
fn status_until(fake: &FakeKube, name: &str, wanted: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<String> = Vec::new();
    while Instant::now() < deadline {
        let (_, status) = ready_and_status(fake, name);
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == wanted {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("pod {name} never showed {wanted}; it showed {seen:?}");
}

#[test]
fn kubectl_applies_init_containers_and_shows_their_status() {
    if !kubectl_present("kubectl_applies_init_containers_and_shows_their_status") {
        return;
    }
    let fake = FakeKube::start_blocking().expect("the fake starts");
    let instance = fake.instance().to_string();

    // The init container sleeps so that polling sees it run.
    apply(&fake, "filled", "sleep 2; echo from-init > /shared/f");
    let seen = status_until(&fake, "filled", "Running");
    assert!(seen.contains(&"Init:0/1".to_string()), "{seen:?}");
    let first_init = seen.iter().position(|s| s == "Init:0/1");
    let running = seen.iter().position(|s| s == "Running");
    assert!(first_init < running, "{seen:?}");
    assert_eq!(ready_and_status(&fake, "filled").0, "1/1");

    let json: serde_json::Value = serde_json::from_str(&ok(&kubectl(
        &fake,
        &["get", "pod", "filled", "-o", "json"],
    )))
    .expect("kubectl prints JSON");
    let init = &json["status"]["initContainerStatuses"][0];
    assert_eq!(init["name"], "fill");
    assert_eq!(init["state"]["terminated"]["exitCode"], 0);
    assert_eq!(init["state"]["terminated"]["reason"], "Completed");
    assert_eq!(
        ok(&kubectl(&fake, &["exec", "filled", "--", "cat", "/mnt/f"])),
        "from-init\n"
    );

    apply(&fake, "broken", "exit 3");
    status_until(&fake, "broken", "Init:Error");
    let phase = ok(&kubectl(
        &fake,
        &["get", "pod", "broken", "-o", "jsonpath={.status.phase}"],
    ));
    assert_eq!(phase, "Failed");
    // Only pod filled's main container: broken's init container is gone and its main never ran.
    assert_eq!(fake.containers().expect("docker lists").len(), 1);

    ok(&kubectl(&fake, &["delete", "pod", "filled", "broken"]));
    assert!(fake.containers().expect("docker lists").is_empty());
    assert!(fake.volumes().expect("docker lists").is_empty());
    drop(fake);
    assert!(containers_of_instance(&instance)
        .expect("docker lists")
        .is_empty());
    assert!(volumes_of_instance(&instance)
        .expect("docker lists")
        .is_empty());
}

#[test]
fn kubectl_is_refused_a_mount_of_an_unknown_volume() {
    if !kubectl_present("kubectl_is_refused_a_mount_of_an_unknown_volume") {
        return;
    }
    let fake = FakeKube::start_blocking().expect("the fake starts");
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("pod.yaml");
    let text = manifest("stray", "true").replace(
        "{name: shared, mountPath: /mnt",
        "{name: nowhere, mountPath: /mnt",
    );
    std::fs::write(&file, text).expect("the manifest is written");
    let file = file.to_string_lossy().into_owned();
    let refused = kubectl(&fake, &["apply", "-f", &file]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("is invalid")
            && said.contains("spec.containers[0].volumeMounts[0].name: Not found: \"nowhere\""),
        "{said}"
    );
}

//! `enclave create --backend kubernetes --dry-run` prints the manifests a create would send
//! (validated against the API's schemas by scripts/validate-k8s-manifests.sh), and creates
//! nothing; what the backend refuses is refused before a cluster is asked.

use serde_json::Value;

use crate::common::{stderr, stdout, TestEnv};

#[test]
fn dry_run_prints_a_pod_and_a_network_policy_and_creates_nothing() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args([
            "create",
            "--backend",
            "kubernetes",
            "--dry-run",
            "--namespace",
            "sandboxes",
        ])
        .args([
            "--no-network",
            "--tool",
            "python_executor",
            "--runtime",
            "gvisor",
        ])
        .args(env.label_args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(list["kind"], "List");
    let pod = &list["items"][0];
    assert_eq!(pod["kind"], "Pod");
    let id = pod["metadata"]["labels"]["enclave.id"].as_str().unwrap();
    assert_eq!(pod["metadata"]["name"], format!("enclave-{id}"));
    assert_eq!(pod["metadata"]["namespace"], "sandboxes");
    assert_eq!(
        pod["metadata"]["labels"]["enclave-test"],
        env.run_label.as_str()
    );
    assert_eq!(
        pod["metadata"]["annotations"]["enclave.tools"],
        "python_executor"
    );
    assert_eq!(pod["spec"]["runtimeClassName"], "gvisor");
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    assert_eq!(list["items"][1]["kind"], "NetworkPolicy");
    assert!(env.containers().is_empty(), "a dry run makes nothing");
    let listed = env.cmd().args(["ls", "-q"]).output().unwrap();
    assert_eq!(stdout(&listed).trim(), "", "nor records anything");
}

#[test]
fn what_the_kubernetes_backend_cannot_do_is_said_plainly() {
    let env = TestEnv::new();
    for (args, says, code) in [
        (&["--dry-run"][..], "add --backend kubernetes", 2),
        (
            &["--backend", "kubernetes", "--dry-run", "--privileged"][..],
            "privileged",
            1,
        ),
        (
            &[
                "--backend",
                "kubernetes",
                "--dry-run",
                "--namespace",
                "No_Such",
            ][..],
            "namespace",
            1,
        ),
        (
            &[
                "--backend",
                "kubernetes",
                "--dry-run",
                "--type",
                "docker_notebook",
            ][..],
            "docker_notebook",
            2,
        ),
    ] {
        let out = env.cmd().arg("create").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
}

#[test]
fn without_a_cluster_to_reach_the_create_says_how_to_give_one() {
    let env = TestEnv::new();
    let home = tempfile::tempdir().unwrap();
    let out = env
        .cmd()
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .args(["create", "--backend", "kubernetes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("a Kubernetes cluster"), "{said}");
    assert!(said.contains("KUBECONFIG"), "{said}");
    assert!(env.containers().is_empty());
}

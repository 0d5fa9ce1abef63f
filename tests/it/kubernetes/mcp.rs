//! `enclave mcp --backend kubernetes`: the same MCP tools, with Pods behind them.

use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::json;

use super::Cluster;
use crate::mcp::{call, create, field, is_error, serve, text, Version};
use crate::on_fake_and_real;

/// `enclave mcp --backend kubernetes` with `extra` flags, on this cluster.
async fn connect(k: &Cluster, extra: &[&str]) -> crate::mcp::Client {
    let command =
        tokio::process::Command::new(assert_cmd::cargo::cargo_bin("enclave")).configure(|cmd| {
            cmd.arg("mcp")
                .args(["--image", &k.image])
                .args(k.env.label_args())
                .args(extra)
                .env("ENCLAVE_STATE_DIR", k.env.state_dir.path())
                .env("KUBECONFIG", &k.kubeconfig)
                .env("ENCLAVE_BACKEND", "kubernetes")
                .env("ENCLAVE_K8S_NAMESPACE", &k.namespace)
                .env("NO_COLOR", "1")
                .env_remove("ENCLAVE_SERVER");
        });
    serve(TokioChildProcess::new(command).unwrap(), Version::Handshake).await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn tools_run_in_pods_and_python_keeps_its_state(k: &Cluster) {
    runtime().block_on(async {
        let client = connect(k, &[]).await;
        let id = create(&client, json!({})).await;
        assert_eq!(k.pods().len(), 1, "a Pod for the sandbox");

        let result = call(
            &client,
            "python_executor",
            json!({"code": "x = 41", "sandbox_id": id}),
        )
        .await;
        assert!(!is_error(&result), "{}", text(&result));
        let result = call(
            &client,
            "python_executor",
            json!({"code": "print(x + 1)", "sandbox_id": id}),
        )
        .await;
        assert!(!is_error(&result), "{}", text(&result));
        assert_eq!(text(&result).trim(), "42", "state kept between calls");

        let result = call(
            &client,
            "shell_executor",
            json!({"command": "echo $((6 * 7))", "sandbox_id": id}),
        )
        .await;
        assert_eq!(text(&result).trim(), "42");

        // A call without a sandbox runs in a throwaway Pod, gone afterwards.
        let result = call(&client, "shell_executor", json!({"command": "hostname"})).await;
        assert!(!is_error(&result), "{}", text(&result));
        assert_eq!(
            k.pods()
                .iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .count(),
            1
        );

        let result = call(&client, "sandbox_remove", json!({"sandbox_id": id})).await;
        assert!(!is_error(&result), "{}", text(&result));
        assert_eq!(field(&result, "sandbox_id"), json!(id));
        client.cancel().await.unwrap();
    });
    assert!(
        k.pods()
            .iter()
            .all(|p| p["metadata"]["deletionTimestamp"].is_string()),
        "nothing left running"
    );
}
on_fake_and_real!(tools_run_in_pods_and_python_keeps_its_state);

fn an_idle_pod_is_removed_by_the_next_enclave_process_that_looks(k: &Cluster) {
    let (idle, busy) = runtime().block_on(async {
        let client = connect(k, &["--keep", "--idle-expiry", "0.05"]).await;
        let idle = create(&client, json!({})).await;
        let busy = create(&client, json!({"idle_minutes": 60})).await;
        client.cancel().await.unwrap();
        (idle, busy)
    });
    let live = |k: &Cluster| {
        k.pods()
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .count()
    };
    assert_eq!(live(k), 2, "--keep kept both");
    std::thread::sleep(std::time::Duration::from_secs(5));
    let out = k.cmd().args(["ls", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let listed = crate::common::stdout(&out);
    assert!(
        !listed.contains(&idle) && listed.contains(&busy),
        "{listed}"
    );
    assert!(
        crate::common::stderr(&out).contains(&format!("removed sandbox `{idle}`")),
        "{}",
        crate::common::stderr(&out)
    );
    assert_eq!(live(k), 1);
}
on_fake_and_real!(an_idle_pod_is_removed_by_the_next_enclave_process_that_looks);

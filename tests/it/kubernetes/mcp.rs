//! `enclave mcp --backend kubernetes`: the same MCP tools, with Pods behind them.

use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::json;

use super::Cluster;
use crate::mcp::{call, create, field, is_error, serve, text, Version};
use crate::on_fake_and_real;

fn tools_run_in_pods_and_python_keeps_its_state(k: &Cluster) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let command = tokio::process::Command::new(assert_cmd::cargo::cargo_bin("enclave"))
            .configure(|cmd| {
                cmd.arg("mcp")
                    .args(["--image", &k.image])
                    .args(k.env.label_args())
                    .env("ENCLAVE_STATE_DIR", k.env.state_dir.path())
                    .env("KUBECONFIG", &k.kubeconfig)
                    .env("ENCLAVE_BACKEND", "kubernetes")
                    .env("ENCLAVE_K8S_NAMESPACE", &k.namespace)
                    .env("NO_COLOR", "1")
                    .env_remove("ENCLAVE_SERVER");
            });
        let client = serve(TokioChildProcess::new(command).unwrap(), Version::Handshake).await;
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

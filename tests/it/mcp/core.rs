//! The core of `enclave mcp` over stdio: tools, state across calls, throwaway sandboxes, results
//! a model can act on, time limits, cancellation and cleanup.

use serde_json::json;

use super::{call, connect, create, field, is_error, text, Version};
use crate::common::TestEnv;

#[tokio::test]
async fn both_protocol_revisions_list_the_tools_and_keep_python_state_across_calls() {
    for version in [Version::Handshake, Version::Stateless] {
        let env = TestEnv::new();
        let client = connect(&env, &[], version).await;
        let tools = client.list_all_tools().await.expect("tools/list");
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        for expected in [
            "sandbox_create",
            "sandbox_list",
            "sandbox_remove",
            "python_executor",
            "shell_executor",
            "file_operation",
            "multi_code_executor",
            "notebook_executor",
            "job_start",
            "job_read",
            "job_kill",
            "upload_file",
            "download_file",
        ] {
            assert!(
                names.contains(&expected),
                "{version:?}: {expected} missing from {names:?}"
            );
        }
        let id = create(&client, json!({})).await;
        let first = call(
            &client,
            "python_executor",
            json!({"code": "x = 41", "sandbox_id": id}),
        )
        .await;
        assert!(!is_error(&first), "{version:?}: {}", text(&first));
        let second = call(
            &client,
            "python_executor",
            json!({"code": "print(x + 1)", "sandbox_id": id}),
        )
        .await;
        assert!(!is_error(&second), "{version:?}: {}", text(&second));
        assert_eq!(text(&second).trim(), "42", "{version:?}");
        assert_eq!(field(&second, "sandbox_id"), json!(id));
        assert_eq!(
            env.containers().len(),
            1,
            "{version:?}: the sandbox is there"
        );
        client.cancel().await.expect("close the client");
        crate::common::poll_until("sandbox_create's sandbox removed at exit", 20, || {
            env.containers().is_empty()
        });
    }
}

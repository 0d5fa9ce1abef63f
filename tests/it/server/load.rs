//! Many calls at once on one sandbox through the server (which keeps one agent connection per
//! sandbox): every call gets its own answer, none is lost or crossed with another.

use std::sync::Arc;

use serde_json::json;

use super::{call, Server};
use crate::common::TestEnv;

#[test]
fn a_hundred_concurrent_calls_on_one_sandbox_each_get_their_own_answer() {
    let env = TestEnv::new();
    let server = Arc::new(Server::start(&env, &[]));
    let id = server.create(&env, &["shell_executor"]);
    let calls: Vec<_> = (0..100)
        .map(|i| {
            let server = Arc::clone(&server);
            let id = id.clone();
            std::thread::spawn(move || {
                let (status, body) = call(server.post("/sandbox/tool/execute").json(&json!({
                    "sandbox_id": id,
                    "tool_name": "shell_executor",
                    "parameters": {"command": format!("echo call-{i}; echo err-{i} >&2")},
                })));
                (i, status, body)
            })
        })
        .collect();
    for handle in calls {
        let (i, status, body) = handle.join().unwrap();
        assert_eq!(status, 200, "call {i}: {body}");
        assert_eq!(body["status"], "success", "call {i}: {body}");
        assert_eq!(body["output"], format!("call-{i}\n"), "call {i}: {body}");
        assert_eq!(
            body["metadata"]["stderr"],
            format!("err-{i}\n"),
            "call {i}: {body}"
        );
    }
}

//! `enclave server --backend kubernetes`: ms-enclave's HTTP API with Pods behind it, and a
//! restarted server that re-adopts its Pods from their labels.

use serde_json::{json, Value};

use super::Cluster;
use crate::common::LABEL_KEY;
use crate::on_fake_and_real;
use crate::server::{call, Server};

fn server_on(k: &Cluster) -> Server {
    let mut command = Server::command(&k.env, &[]);
    command
        .env("KUBECONFIG", k.kubeconfig.as_os_str())
        .env("ENCLAVE_BACKEND", "kubernetes")
        .env("ENCLAVE_K8S_NAMESPACE", &k.namespace);
    Server::start_command(command)
}

fn serves_pods_and_readopts_them_after_a_restart(k: &Cluster) {
    let mut server = server_on(k);
    let (status, health) = call(server.get("/health"));
    assert_eq!(status, 200, "{health}");
    let config = json!({
        "image": k.image,
        "tools_config": {"python_executor": {}, "shell_executor": {}},
        "labels": {LABEL_KEY: k.env.run_label},
    });
    let (status, body) = call(
        server
            .post("/sandbox/create?sandbox_type=docker")
            .json(&config),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["sandbox_id"].as_str().unwrap().to_string();
    assert_eq!(k.pods().len(), 1, "one Pod per sandbox");

    let call_tool = |server: &Server, code: &str| -> Value {
        let (status, body) = call(server.post("/sandbox/tool/execute").json(&json!({
            "sandbox_id": id,
            "tool_name": "python_executor",
            "parameters": {"code": code},
        })));
        assert_eq!(status, 200, "{body}");
        body
    };
    let result = call_tool(&server, "print(sum(range(10)))");
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(result["output"].as_str().unwrap().trim(), "45", "{result}");

    // A new server over the same state finds the sandbox, and runs tools in it.
    server.terminate(30);
    let server = server_on(k);
    let (status, list) = call(server.get("/sandboxes"));
    assert_eq!(status, 200, "{list}");
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == id.as_str()),
        "re-adopted: {list}"
    );
    let result = call_tool(&server, "print('again')");
    assert_eq!(
        result["output"].as_str().unwrap().trim(),
        "again",
        "{result}"
    );

    let (status, body) = call(server.delete(&format!("/sandbox/{id}")));
    assert_eq!(status, 200, "{body}");
    assert!(
        k.pods()
            .iter()
            .all(|p| p["metadata"]["deletionTimestamp"].is_string()),
        "the Pod is gone"
    );
}
on_fake_and_real!(serves_pods_and_readopts_them_after_a_restart);

fn a_warm_pool_is_a_pool_of_ready_pods(k: &Cluster) {
    let server = server_on(k);
    let config = json!({
        "image": k.image,
        "tools_config": {"shell_executor": {}},
        "labels": {LABEL_KEY: k.env.run_label},
    });
    let (status, body) = call(
        server
            .post("/pool/initialize?pool_size=2&sandbox_type=docker")
            .json(&config),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["sandbox_ids"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    let running: Vec<Value> = k
        .pods()
        .into_iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .collect();
    assert_eq!(running.len(), 2, "two Pods, ready before any call");
    let (status, result) = call(
        server
            .post("/pool/execute?tool_name=shell_executor")
            .json(&json!({"command": "echo pooled"})),
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        result["output"].as_str().unwrap().trim(),
        "pooled",
        "{result}"
    );
}
on_fake_and_real!(a_warm_pool_is_a_pool_of_ready_pods);

//! `volcengine` sandboxes against a SandboxFusion stand-in started by the test: what each
//! executor sends, how every answer maps to a ToolResult, secrets, concurrency, and the same
//! through `enclave server` (ms-enclave's routes and `/v1`) under the operator's allow-list.

mod fusion;

use serde_json::{json, Value};

use crate::common::{stderr, stdout, TestEnv};
use crate::server::{call, Server};
use fusion::Fusion;

const EXECUTORS: [&str; 6] = [
    "--tool",
    "python_executor",
    "--tool",
    "shell_executor",
    "--tool",
    "multi_code_executor",
];

/// `enclave create --type volcengine --base-url URL extra…`; its id.
fn create(env: &TestEnv, fusion: &Fusion, extra: &[&str]) -> String {
    let out = env
        .cmd()
        .args(["create", "--type", "volcengine", "--base-url", &fusion.url])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "create: {}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    assert_eq!(id.len(), 8, "{id}");
    id
}

/// `enclave --json run-tool ID TOOL --args JSON`: the exit code and the ToolResult.
fn run_tool(env: &TestEnv, id: &str, tool: &str, args: Value) -> (i32, Value) {
    let out = env
        .cmd()
        .args(["--json", "run-tool", id, tool, "--args", &args.to_string()])
        .output()
        .unwrap();
    let result: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}{}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap(), result)
}

#[test]
fn the_three_executors_map_to_run_code() {
    let env = TestEnv::new();
    let fusion = Fusion::start();
    let id = create(&env, &fusion, &EXECUTORS);

    let (code, result) = run_tool(&env, &id, "python_executor", json!({"code": "print(6*7)"}));
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["status"], "success");
    assert_eq!(result["output"], "language=python bytes=10\n");
    assert_eq!(result["error"], Value::Null);
    let seen = fusion.last();
    assert_eq!(seen.path, "/run_code");
    assert_eq!(seen.headers["content-type"], "application/json");
    assert!(!seen.headers.contains_key("authorization"), "{seen:?}");
    assert_eq!(
        seen.body,
        json!({"code": "print(6*7)", "language": "python", "run_timeout": 30.0})
    );

    let (code, _) = run_tool(
        &env,
        &id,
        "shell_executor",
        json!({"command": ["printf", "%s", "a b"], "timeout": 5}),
    );
    assert_eq!(code, 0);
    assert_eq!(
        fusion.last().body,
        json!({"code": "printf '%s' 'a b'", "language": "bash", "run_timeout": 5.0})
    );

    // The language map: ms-enclave's defaults; anything else passes as given.
    for (given, sent) in [
        ("ts", "typescript"),
        ("r", "R"),
        ("d_ut", "D_ut"),
        ("go", "go"),
    ] {
        let (code, result) = run_tool(
            &env,
            &id,
            "multi_code_executor",
            json!({"language": given, "code": "x", "run_timeout": 7}),
        );
        assert_eq!(code, 0, "{result}");
        assert_eq!(result["output"], format!("language={sent} bytes=1\n"));
        assert_eq!(
            fusion.last().body,
            json!({"code": "x", "language": sent, "run_timeout": 7.0})
        );
    }

    // Bad input never reaches the service, and reads as ms-enclave's.
    let calls = fusion.seen().len();
    let (code, result) = run_tool(&env, &id, "python_executor", json!({"code": "  "}));
    assert_eq!((code, &result["error"]), (1, &json!("No code provided")));
    assert_eq!(fusion.seen().len(), calls);
}

#[test]
fn answers_and_failures_map_to_tool_results() {
    let env = TestEnv::new();
    let fusion = Fusion::start();
    let config = env.state_dir.path().join("v.json");
    std::fs::write(
        &config,
        json!({"request_timeout": 1, "tools_config": ["python_executor", "multi_code_executor"]})
            .to_string(),
    )
    .unwrap();
    let id = create(&env, &fusion, &["--config", config.to_str().unwrap()]);
    let py = |code: &str| run_tool(&env, &id, "python_executor", json!({"code": code}));

    let (code, result) = py("@fail");
    assert_eq!(code, 1, "the program's exit code: {result}");
    assert_eq!(result["status"], "error");
    assert_eq!(result["output"], "partial\n");
    assert_eq!(result["error"], "Traceback: boom\n");

    let (_, result) = run_tool(
        &env,
        &id,
        "multi_code_executor",
        json!({"language": "go", "code": "@compile"}),
    );
    assert_eq!(result["status"], "error");
    assert_eq!(result["error"], "main.go:1: syntax error\ncompile error");

    let (_, result) = py("@runresult-string");
    assert_eq!(
        (&result["status"], &result["output"], &result["error"]),
        (&json!("error"), &json!(""), &json!("no run"))
    );

    let failed = |code: &str| {
        let (exit, result) = py(code);
        assert_eq!((exit, &result["status"]), (1, &json!("error")), "{result}");
        let error = result["error"].as_str().unwrap().to_string();
        assert!(error.starts_with("Execution failed: "), "{error}");
        error
    };
    let e = failed("@500");
    assert!(
        e.contains("answered HTTP 500") && e.contains("internal boom"),
        "{e}"
    );
    let e = failed("@notjson");
    assert!(e.contains("not JSON: <html>gateway</html>"), "{e}");
    let e = failed("@array");
    assert!(e.contains("JSON that is not an object"), "{e}");

    // The code's own timeout plus request_timeout: 1 + 1 seconds, then a timeout that says so.
    let (_, result) = run_tool(
        &env,
        &id,
        "python_executor",
        json!({"code": "@sleep=5000", "timeout": 1}),
    );
    assert_eq!(result["status"], "error");
    let e = result["error"].as_str().unwrap();
    assert!(
        e.starts_with("Execution failed: ") && e.contains("did not answer within 2 seconds"),
        "{e}"
    );

    // A service that is not there.
    let gone = create(&env, &fusion, &["--tool", "python_executor"]);
    let state = env.state_dir.path().join("state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    std::fs::write(&state, text.replace(&fusion.url, "http://127.0.0.1:9")).unwrap();
    let (_, result) = run_tool(&env, &gone, "python_executor", json!({"code": "1"}));
    let e = result["error"].as_str().unwrap();
    assert!(
        e.starts_with("Execution failed: ") && e.contains("127.0.0.1:9"),
        "{e}"
    );
}

#[test]
fn the_api_key_and_headers_are_sent_and_never_shown() {
    let env = TestEnv::new();
    let fusion = Fusion::start();
    let config = env.state_dir.path().join("v.json");
    std::fs::write(
        &config,
        json!({
            "extra_headers": {"X-Tenant": "hdr-secret-1"},
            "dataset_language_map": {"ts": "TypeScript", "py3": "python"},
            "run_code_path": "api/run",
            "tools_config": ["multi_code_executor"]
        })
        .to_string(),
    )
    .unwrap();
    let out = env
        .cmd()
        .args(["create", "--type", "volcengine", "--base-url"])
        .arg(format!("{}/", fusion.url))
        .args(["--config", config.to_str().unwrap()])
        .env("ENCLAVE_VOLCENGINE_API_KEY", "key-secret-2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();

    let (code, _) = run_tool(
        &env,
        &id,
        "multi_code_executor",
        json!({"language": "ts", "code": "1"}),
    );
    assert_eq!(code, 0);
    let seen = fusion.last();
    assert_eq!(seen.path, "/api/run");
    assert_eq!(seen.headers["authorization"], "key-secret-2");
    assert_eq!(seen.headers["x-tenant"], "hdr-secret-1");
    assert_eq!(seen.body["language"], "TypeScript");

    let out = env.cmd().args(["inspect", &id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["type"], "volcengine");
    assert_eq!(info["status"], "running");
    assert_eq!(info["config"]["base_url"], fusion.url);
    assert_eq!(info["config"]["api_key"], "***");
    assert_eq!(info["config"]["extra_headers"]["X-Tenant"], "***");
    assert_eq!(info["config"]["max_concurrency"], 16);
    let tools: Vec<&String> = info["available_tools"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(tools, ["multi_code_executor"]);
    for listing in [&["inspect", &id][..], &["--json", "ls"], &["ls"]] {
        let out = env.cmd().args(listing).output().unwrap();
        let text = stdout(&out);
        assert!(
            !text.contains("secret"),
            "{listing:?} shows a secret: {text}"
        );
    }
    // `ls`: the service's host and port where a container's image would be.
    let out = env.cmd().args(["ls"]).output().unwrap();
    let host = fusion.url.trim_start_matches("http://");
    let row = stdout(&out)
        .lines()
        .find(|l| l.contains(&id))
        .unwrap()
        .to_string();
    assert!(row.contains("volcengine") && row.contains(host), "{row}");
}

#[test]
fn no_shell_no_files_and_remove_forgets_it() {
    let env = TestEnv::new();
    let fusion = Fusion::start();
    let id = create(&env, &fusion, &["--tool", "python_executor"]);

    for args in [
        vec!["exec", id.as_str(), "true"],
        vec!["stop", id.as_str()],
        vec!["cp", "/etc/hostname", &format!("{id}:/tmp/x")],
    ] {
        let out = env.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("it is a `volcengine` sandbox, with no shell or files")
                && err.contains("run-tool"),
            "{args:?}: {err}"
        );
    }

    // Tools it cannot have are refused when it is made.
    for tool in ["file_operation", "notebook_executor"] {
        let out = env
            .cmd()
            .args(["create", "--type", "volcengine", "--base-url", &fusion.url])
            .args(["--tool", tool])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains(tool), "{}", stderr(&out));
    }
    let out = env
        .cmd()
        .args(["create", "--type", "volcengine", "--image", "x"])
        .args(["--base-url", &fusion.url])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("`--image` does not apply"),
        "{}",
        stderr(&out)
    );
    let out = env
        .cmd()
        .args(["create", "--type", "volcengine"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("base_url is required"),
        "{}",
        stderr(&out)
    );

    let out = env.cmd().args(["--json", "rm", &id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let removed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(removed[0]["result"], "removed", "{removed}");
    let out = env.cmd().args(["-q", "ls"]).output().unwrap();
    assert!(!stdout(&out).contains(&id));
    let out = env.cmd().args(["inspect", &id]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// A volcengine config for the server's routes.
fn server_config(fusion: &Fusion, extra: Value) -> Value {
    let mut config = json!({
        "base_url": fusion.url,
        "api_key": "srv-secret-3",
        "tools_config": {"python_executor": {}, "shell_executor": {}},
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    config
}

#[test]
fn the_server_refuses_services_its_operator_did_not_allow() {
    let env = TestEnv::new();
    let fusion = Fusion::start();
    let server = Server::start(&env, &[]);
    let (status, body) = call(
        server
            .post("/sandbox/create?sandbox_type=volcengine")
            .json(&server_config(&fusion, json!({}))),
    );
    assert_eq!(status, 400, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Failed to create sandbox: ")
            && detail.contains("volcengine sandboxes are not allowed")
            && detail.contains("--allow-volcengine"),
        "{detail}"
    );
    let (status, body) = call(
        server
            .post("/v1/sandboxes")
            .json(&json!({"type": "volcengine", "config": server_config(&fusion, json!({}))})),
    );
    assert_eq!(
        (status, &body["error"]["kind"]),
        (400, &json!("policy")),
        "{body}"
    );

    let other = Server::start(&env, &["--allow-volcengine", "http://127.0.0.1:1"]);
    let (status, body) = call(
        other
            .post("/v1/sandboxes")
            .json(&json!({"type": "volcengine", "config": server_config(&fusion, json!({}))})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("is not a service this server may call"),
        "{body}"
    );
    assert!(fusion.seen().is_empty(), "the service was called");
}

#[test]
fn through_the_server_ms_enclave_routes_v1_and_the_cli() {
    let env = TestEnv::new();
    let fusion = Fusion::start();
    let server = Server::start(&env, &["--allow-volcengine", &fusion.url]);

    // ms-enclave's routes.
    let (status, body) = call(
        server
            .post("/sandbox/create?sandbox_type=volcengine")
            .json(&server_config(&fusion, json!({"max_concurrency": 2}))),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["sandbox_id"].as_str().unwrap().to_string();
    let (status, info) = call(server.get(&format!("/sandbox/{id}")));
    assert_eq!(status, 200);
    assert_eq!(info["type"], "volcengine");
    assert_eq!(info["status"], "running");
    assert_eq!(info["config"]["api_key"], "***");
    let (_, list) = call(server.get("/sandboxes"));
    assert!(!list.to_string().contains("srv-secret"), "{list}");
    let (status, result) = call(server.post("/sandbox/tool/execute").json(&json!({
        "sandbox_id": id, "tool_name": "python_executor",
        "parameters": {"code": "print(1)", "timeout": 9}
    })));
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "success");
    assert_eq!(result["output"], "language=python bytes=8\n");
    let seen = fusion.last();
    assert_eq!(seen.headers["authorization"], "srv-secret-3");
    assert_eq!(seen.body["run_timeout"], 9.0);
    let (status, tools) = call(server.get(&format!("/sandbox/{id}/tools")));
    assert_eq!(status, 200);
    assert!(tools.get("shell_executor").is_some(), "{tools}");

    // max_concurrency: six slow calls at once, at most two at the service.
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let request = server.post("/sandbox/tool/execute").json(&json!({
                "sandbox_id": id, "tool_name": "shell_executor",
                "parameters": {"command": "@sleep=400"}
            }));
            std::thread::spawn(move || call(request))
        })
        .collect();
    for handle in calls {
        let (status, result) = handle.join().unwrap();
        assert_eq!(
            (status, &result["status"]),
            (200, &json!("success")),
            "{result}"
        );
    }
    assert_eq!(fusion.peak(), 2, "calls in flight at once");

    // No shell through the server either.
    let (status, body) = call(
        server
            .post(&format!("/v1/sandboxes/{id}/exec"))
            .json(&json!({"argv": ["true"]})),
    );
    assert_eq!(
        (status, &body["error"]["kind"]),
        (400, &json!("no_shell")),
        "{body}"
    );

    let (status, _) = call(server.delete(&format!("/sandbox/{id}")));
    assert_eq!(status, 200);
    let (status, _) = call(server.get(&format!("/sandbox/{id}")));
    assert_eq!(status, 404);

    // /v1, as the CLI's remote mode uses it.
    let out = server
        .client(&env)
        .args(["create", "--type", "volcengine", "--base-url", &fusion.url])
        .args(["--tool", "shell_executor"])
        .env("ENCLAVE_VOLCENGINE_API_KEY", "cli-secret-4")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let out = server
        .client(&env)
        .args([
            "run-tool",
            &id,
            "shell_executor",
            "--arg",
            "command=echo hi",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "language=bash bytes=7\n");
    assert_eq!(fusion.last().headers["authorization"], "cli-secret-4");
    let out = server.client(&env).args(["ls"]).output().unwrap();
    assert!(stdout(&out).contains(&id) && !stdout(&out).contains("secret"));
    let out = server.client(&env).args(["rm", &id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_restarted_server_adopts_its_volcengine_sandboxes_secrets_and_all() {
    let env = TestEnv::new();
    let fusion = Fusion::start();
    let allow = ["--allow-volcengine", fusion.url.as_str()];
    let mut first = Server::start(&env, &allow);
    let (status, body) = call(
        first
            .post("/sandbox/create?sandbox_type=volcengine")
            .json(&server_config(&fusion, json!({}))),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["sandbox_id"].as_str().unwrap().to_string();
    // A pool is for containers: said plainly, before anything is made.
    let (status, body) = call(
        first
            .post("/pool/initialize?sandbox_type=volcengine&pool_size=1")
            .json(&server_config(&fusion, json!({}))),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("one by one"),
        "{body}"
    );
    let exit = first.terminate(30);
    assert!(exit.success(), "{exit}\n{}", first.log());

    let second = Server::start(&env, &allow);
    let (status, info) = call(second.get(&format!("/sandbox/{id}")));
    assert_eq!(
        (status, &info["status"]),
        (200, &json!("running")),
        "{info}"
    );
    let (status, result) = call(second.post("/sandbox/tool/execute").json(&json!({
        "sandbox_id": id, "tool_name": "python_executor", "parameters": {"code": "1"}
    })));
    assert_eq!(
        (status, &result["status"]),
        (200, &json!("success")),
        "{result}"
    );
    assert_eq!(fusion.last().headers["authorization"], "srv-secret-3");
}

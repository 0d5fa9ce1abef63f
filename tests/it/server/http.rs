//! The HTTP layer of `enclave server`: every route's statuses and JSON shapes, ms-enclave's
//! and enclave's own, authentication, CORS, limits, the streaming exec and graceful shutdown.

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use super::{call, config, read_json, Server};
use crate::common::{docker, poll_until, TestEnv};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn detail(body: &Value) -> &str {
    body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no string detail: {body}"))
}

#[test]
fn the_key_is_required_and_the_header_wins_over_the_query() {
    let env = TestEnv::new();
    let key = "sekrit-key-4242";
    let server = Server::start(&env, &["--api-key", key]);

    let (status, body) = call(server.client.get(server.url("/health")));
    assert_eq!(status, 401);
    assert_eq!(body["detail"], "Unauthorized");
    assert_eq!(body["error"]["kind"], "unauthorized");

    let (status, body) = call(
        server
            .client
            .get(server.url("/health"))
            .header("x-api-key", key),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["healthy"], true);

    let (status, _) = call(
        server
            .client
            .get(server.url(&format!("/stats?api_key={key}"))),
    );
    assert_eq!(status, 200);

    // A wrong header is not rescued by a right query parameter.
    let (status, _) = call(
        server
            .client
            .get(server.url(&format!("/stats?api_key={key}")))
            .header("X-API-Key", "wrong"),
    );
    assert_eq!(status, 401);
    let (status, _) = call(
        server
            .client
            .get(server.url("/health"))
            .header("x-api-key", ""),
    );
    assert_eq!(status, 401);

    // Unknown paths are behind the key too; with it they are a JSON 404.
    let (status, _) = call(server.client.get(server.url("/nowhere")));
    assert_eq!(status, 401);
    let (status, body) = call(server.get("/nowhere").header("x-api-key", key));
    assert_eq!((status, body["detail"].as_str()), (404, Some("Not Found")));

    // One line per request on stderr, without the query string (or the key in it).
    let log = server.log();
    assert!(log.contains("GET /stats 200"), "{log}");
    assert!(log.contains("GET /health 401"), "{log}");
    assert!(!log.contains(key), "the key is in the log:\n{log}");
}

#[test]
fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let env = TestEnv::new();
    let server = Server::start(&env, &["--max-body", "2k"]);

    let (status, body) = call(server.get("/no/such/route"));
    assert_eq!((status, detail(&body)), (404, "Not Found"));
    let (status, body) = call(server.delete("/health"));
    assert_eq!((status, detail(&body)), (405, "Method Not Allowed"));

    let (status, body) = call(server.post("/sandbox/create"));
    assert_eq!(status, 422);
    assert_eq!(
        body["detail"],
        json!([{"type":"missing","loc":["query","sandbox_type"],"msg":"Field required","input":null}])
    );
    let (status, body) = call(server.post("/sandbox/create?sandbox_type=bogus"));
    assert_eq!(status, 422);
    assert_eq!(
        body["detail"],
        json!([{"type":"enum","loc":["query","sandbox_type"],
            "msg":"Input should be 'docker', 'docker_notebook', 'volcengine' or 'dummy'",
            "input":"bogus",
            "ctx":{"expected":"'docker', 'docker_notebook', 'volcengine' or 'dummy'"}}])
    );
    let (status, body) = call(
        server
            .post("/sandbox/create?sandbox_type=docker")
            .json(&json!([1])),
    );
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "dict_type");
    assert_eq!(body["detail"][0]["loc"], json!(["body"]));
    let (status, body) = call(
        server
            .post("/sandbox/create?sandbox_type=docker")
            .header("content-type", "application/json")
            .body("{\"image\": "),
    );
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "json_invalid");
    assert_eq!(body["error"]["kind"], "invalid_request");

    // Failures to create are ms-enclave's 400 `Failed to create sandbox: …`.
    let (status, body) = call(server.post("/sandbox/create?sandbox_type=dummy"));
    assert_eq!(status, 400);
    assert!(
        detail(&body).starts_with("Failed to create sandbox: "),
        "{body}"
    );
    let (status, body) = call(
        server
            .post("/sandbox/create?sandbox_type=docker")
            .json(&json!({"memory_limit": "lots"})),
    );
    assert_eq!(status, 400);
    assert!(detail(&body).contains("memory_limit"), "{body}");
    let (status, body) = call(
        server
            .post("/sandbox/create?sandbox_type=docker")
            .json(&json!({"privileged": true})),
    );
    assert_eq!(status, 400);
    assert!(detail(&body).contains("privileged"), "{body}");
    assert_eq!(body["error"]["kind"], "policy");

    let (status, body) = call(server.get("/sandboxes?status=bogus"));
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "enum");
    assert_eq!(body["detail"][0]["loc"], json!(["query", "status"]));

    let (status, body) = call(
        server
            .post("/sandbox/tool/execute")
            .json(&json!({"tool_name": 1})),
    );
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "sandbox_id"]));
    assert_eq!(body["detail"][1]["type"], "string_type");
    let (status, body) = call(server.post("/sandbox/tool/execute").json(&json!("x")));
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "model_attributes_type");

    for (status_wanted, path, text) in [
        (404, "/sandbox/nosuchid", "Sandbox not found"),
        (404, "/sandbox/nosuchid/tools", "Sandbox nosuchid not found"),
    ] {
        let (status, body) = call(server.get(path));
        assert_eq!((status, detail(&body)), (status_wanted, text), "{path}");
    }
    let (status, body) = call(server.post("/sandbox/nosuchid/stop"));
    assert_eq!((status, detail(&body)), (404, "Sandbox not found"));
    let (status, body) = call(server.delete("/sandbox/nosuchid"));
    assert_eq!((status, detail(&body)), (404, "Sandbox not found"));
    let (status, body) = call(
        server
            .post("/sandbox/tool/execute")
            .json(&json!({"sandbox_id": "nosuchid", "tool_name": "shell_executor"})),
    );
    assert_eq!((status, detail(&body)), (404, "Sandbox nosuchid not found"));

    let (status, body) = call(server.post("/sandbox/nosuchid/archive").body("x"));
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["query", "target_dir"]));
    let (status, body) = call(server.post("/sandbox/nosuchid/archive?target_dir=/tmp"));
    assert_eq!(
        (status, detail(&body)),
        (400, "Archive body must not be empty")
    );
    let (status, body) = call(
        server
            .post("/sandbox/nosuchid/archive?target_dir=/tmp")
            .body("x"),
    );
    assert_eq!((status, detail(&body)), (404, "Sandbox nosuchid not found"));

    let (status, body) = call(server.post("/pool/execute?tool_name=shell_executor"));
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body"]));
    let (status, body) = call(
        server
            .post("/pool/execute?tool_name=shell_executor")
            .json(&json!({"command": "true"})),
    );
    assert_eq!(
        (status, detail(&body)),
        (400, "Sandbox pool is empty, call initialize_pool first")
    );

    // Bodies past --max-body are refused before they are read.
    let big = format!("{{\"image\": \"{}\"}}", "x".repeat(4096));
    let (status, body) = call(
        server
            .post("/sandbox/create?sandbox_type=docker")
            .header("content-type", "application/json")
            .body(big),
    );
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["kind"], "too_large");

    let (status, body) = call(server.get("/v1/sandboxes/nosuchid"));
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = call(server.post("/v1/sandboxes").body("{nope"));
    assert_eq!(status, 400);
    assert!(detail(&body).contains("invalid create request"), "{body}");

    // After all of that, the server still serves.
    let (status, body) = call(server.get("/health"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptime"].as_f64().unwrap() > 0.0);
    assert_eq!(body["active_sandboxes"], 0);
    assert_eq!(body["system_info"]["total_sandboxes"], 0);
    assert!(
        env.containers().is_empty(),
        "a refused create left a container"
    );
}

/// A tar archive holding one file.
fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, name, data).unwrap();
    builder.into_inner().unwrap()
}

/// The file `name` in a tar archive.
fn file_in_tar(archive: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_string_lossy() == name {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            return Some(data);
        }
    }
    None
}

fn execute(server: &Server, id: &str, tool: &str, parameters: Value) -> (u16, Value) {
    call(server.post("/sandbox/tool/execute").json(&json!({
        "sandbox_id": id, "tool_name": tool, "parameters": parameters, "timeout": null
    })))
}

#[test]
fn a_sandbox_lives_its_whole_life_through_ms_enclaves_routes() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    let id = server.create(&env, &["python_executor", "shell_executor"]);
    assert_eq!(env.containers().len(), 1);

    let (status, info) = call(server.get(&format!("/sandbox/{id}")));
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["id"], id.as_str());
    assert_eq!(info["status"], "running");
    assert_eq!(info["type"], "docker");
    assert_eq!(info["config"]["image"], crate::common::test_image());
    let tools: Vec<&String> = info["available_tools"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(tools, ["python_executor", "shell_executor"]);
    for key in ["created_at", "updated_at", "metadata"] {
        assert!(info.get(key).is_some(), "{key} missing: {info}");
    }

    let (_, all) = call(server.get("/sandboxes"));
    assert_eq!(all.as_array().unwrap().len(), 1);
    let (_, running) = call(server.get("/sandboxes?status=running"));
    assert_eq!(running[0]["id"], id.as_str());
    let (_, stopped) = call(server.get("/sandboxes?status=stopped"));
    assert_eq!(stopped, json!([]));
    let (status, tools) = call(server.get(&format!("/sandbox/{id}/tools")));
    assert_eq!(status, 200);
    assert_eq!(tools["python_executor"]["type"], "function");

    let (status, result) = execute(
        &server,
        &id,
        "python_executor",
        json!({"code": "print(40 + 2)"}),
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(result["output"], "42\n");
    assert_eq!(result["tool_name"], "python_executor");
    let (_, result) = execute(
        &server,
        &id,
        "shell_executor",
        json!({"command": "echo hi; exit 3"}),
    );
    assert_eq!(
        result["status"], "error",
        "a failing command is a 200 with status error"
    );
    assert!(
        result["output"].as_str().unwrap().contains("hi"),
        "{result}"
    );

    // `timeout` is the call's deadline.
    let started = Instant::now();
    let (status, result) = call(server.post("/sandbox/tool/execute").json(&json!({
        "sandbox_id": id, "tool_name": "shell_executor",
        "parameters": {"command": "sleep 30", "timeout": 60}, "timeout": 1
    })));
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], "timeout", "{result}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );

    let (status, body) = execute(&server, &id, "python_executor", json!({"cod": 1}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["kind"], "invalid_arguments");
    let (status, body) = execute(&server, &id, "file_operation", json!({}));
    assert_eq!(
        (status, detail(&body)),
        (404, "Tool file_operation is not available")
    );

    // An archive goes in through ms-enclave's route and comes out through enclave's.
    let (status, body) = call(
        server
            .post(&format!("/sandbox/{id}/archive?target_dir=/tmp/up"))
            .header("content-type", "application/x-tar")
            .body(tar_of("hello.txt", b"hello\x00world")),
    );
    assert_eq!((status, body.clone()), (200, json!({"ok": true})), "{body}");
    let response = server
        .get(&format!(
            "/v1/sandboxes/{id}/archive?path=/tmp/up/hello.txt"
        ))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    let archive = response.bytes().unwrap();
    assert_eq!(
        file_in_tar(&archive, "hello.txt").unwrap(),
        b"hello\x00world"
    );

    let (_, stats) = call(server.get("/stats"));
    assert_eq!(stats["total_sandboxes"], 1, "{stats}");

    let (status, body) = call(server.post(&format!("/sandbox/{id}/stop")));
    assert_eq!(
        (status, body),
        (200, json!({"message": "Sandbox stopped successfully"}))
    );
    let (_, info) = call(server.get(&format!("/sandbox/{id}")));
    assert_eq!(info["status"], "stopped");
    let (status, body) = execute(&server, &id, "shell_executor", json!({"command": "true"}));
    assert_eq!(status, 404, "{body}");
    assert!(detail(&body).contains("is not active"), "{body}");
    let (status, body) = call(
        server
            .post(&format!("/sandbox/{id}/archive?target_dir=/tmp"))
            .body(tar_of("x", b"x")),
    );
    assert_eq!(status, 400, "{body}");

    let started = Instant::now();
    let (status, body) = call(server.delete(&format!("/sandbox/{id}")));
    assert_eq!(
        (status, body),
        (200, json!({"message": "Sandbox deleted successfully"}))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "delete took {:?}",
        started.elapsed()
    );
    let (status, _) = call(server.get(&format!("/sandbox/{id}")));
    assert_eq!(status, 404);
    assert!(env.containers().is_empty(), "the container is still there");
}

/// The events of a streaming exec: stdout, stderr, and the last event.
struct Streamed {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    last: Value,
}

fn read_events(response: reqwest::blocking::Response, sse: bool) -> Streamed {
    let mut out = Streamed {
        stdout: Vec::new(),
        stderr: Vec::new(),
        last: Value::Null,
    };
    for line in BufReader::new(response).lines() {
        let line = line.unwrap();
        let json = if sse {
            match line.strip_prefix("data: ") {
                Some(data) => data.to_string(),
                None => {
                    assert!(line.is_empty(), "not SSE: {line}");
                    continue;
                }
            }
        } else {
            line
        };
        let event: Value = serde_json::from_str(&json).unwrap();
        assert!(out.last.is_null(), "an event after the last: {event}");
        match event["type"].as_str().unwrap() {
            "stdout" => out
                .stdout
                .extend(B64.decode(event["data"].as_str().unwrap()).unwrap()),
            "stderr" => out
                .stderr
                .extend(B64.decode(event["data"].as_str().unwrap()).unwrap()),
            "end" | "error" => out.last = event,
            other => panic!("unknown event {other}"),
        }
    }
    out
}

fn exec(server: &Server, id: &str, request: Value) -> Streamed {
    let response = server
        .post(&format!("/v1/sandboxes/{id}/exec"))
        .json(&request)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    read_events(response, false)
}

#[test]
fn enclaves_own_routes_create_exec_copy_stop_and_remove() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);

    let (status, info) = call(server.post("/v1/sandboxes").json(&json!({
        "type": "docker",
        "config": config(&env, &["shell_executor"]),
        "labels": {"purpose": "http-test"},
    })));
    assert_eq!(status, 200, "{info}");
    let id = info["id"].as_str().unwrap().to_string();
    assert_eq!(info["status"], "running");
    let (status, found) = call(server.get(&format!("/v1/sandboxes/{}", &id[..4])));
    assert_eq!(status, 200, "a unique prefix finds it: {found}");
    assert_eq!(found["id"], id.as_str());
    let (_, all) = call(server.get("/v1/sandboxes"));
    assert_eq!(all[0]["id"], id.as_str());

    let (status, result) = call(
        server
            .post(&format!(
                "/v1/sandboxes/{id}/tools/shell_executor?timeout=30"
            ))
            .json(&json!({"command": "echo via-path"})),
    );
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["output"], "via-path\n");
    let (status, body) = call(
        server
            .post(&format!("/v1/sandboxes/{id}/tools/nope"))
            .json(&json!({})),
    );
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (404, Some("tool_unavailable"))
    );

    // Streaming exec: output as it comes, then how it ended.
    let s = exec(
        &server,
        &id,
        json!({"argv": ["sh", "-c", "echo out; echo err >&2; exit 7"]}),
    );
    assert_eq!(s.stdout, b"out\n");
    assert_eq!(s.stderr, b"err\n");
    assert_eq!(s.last["type"], "end", "{}", s.last);
    assert_eq!(s.last["outcome"]["end"], "exited");
    assert_eq!(s.last["outcome"]["exit_code"], 7);

    // stdin follows the request's line in the body.
    let mut body = serde_json::to_vec(&json!({"argv": ["cat"], "stdin": true})).unwrap();
    body.push(b'\n');
    body.extend_from_slice(b"piped\x00bytes");
    let response = server
        .post(&format!("/v1/sandboxes/{id}/exec"))
        .body(body)
        .send()
        .unwrap();
    let s = read_events(response, false);
    assert_eq!(s.stdout, b"piped\x00bytes");
    assert_eq!(s.last["outcome"]["exit_code"], 0);

    // The same events as Server-Sent Events.
    let response = server
        .post(&format!("/v1/sandboxes/{id}/exec"))
        .header("accept", "text/event-stream")
        .json(&json!({"argv": ["echo", "sse"]}))
        .send()
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let s = read_events(response, true);
    assert_eq!(s.stdout, b"sse\n");
    assert_eq!(s.last["outcome"]["exit_code"], 0);

    // A timeout kills the command and everything it started.
    let started = Instant::now();
    let s = exec(
        &server,
        &id,
        json!({"argv": ["sh", "-c", "sleep 300 & sleep 301"], "timeout": 1}),
    );
    assert_eq!(s.last["outcome"]["end"], "timed_out", "{}", s.last);
    assert!(started.elapsed() < Duration::from_secs(20));
    let s = exec(
        &server,
        &id,
        json!({"argv": ["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]}),
    );
    let procs = String::from_utf8_lossy(&s.stdout);
    assert!(
        !procs.contains("sleep 30"),
        "the timed-out tree survived: {procs}"
    );

    // Errors before the command starts are plain JSON errors.
    let (status, body) = call(
        server
            .post("/v1/sandboxes/nosuchid/exec")
            .json(&json!({"argv": ["true"]})),
    );
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = call(
        server
            .post(&format!("/v1/sandboxes/{id}/exec"))
            .json(&json!({"argv": []})),
    );
    assert_eq!(status, 400, "{body}");

    // Archives in and out, binary-safe; a missing path is a 404.
    let (status, body) = call(
        server
            .put(&format!("/v1/sandboxes/{id}/archive?path=/tmp/v1"))
            .body(tar_of("data.bin", &[0, 255, 1, 254])),
    );
    assert_eq!((status, body.clone()), (200, json!({"ok": true})), "{body}");
    let archive = server
        .get(&format!("/v1/sandboxes/{id}/archive?path=/tmp/v1"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(
        file_in_tar(&archive, "v1/data.bin").unwrap(),
        [0, 255, 1, 254]
    );
    let (status, body) = call(server.get(&format!("/v1/sandboxes/{id}/archive?path=/no/such")));
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (404, Some("path_not_found"))
    );

    let (status, body) = call(server.get("/v1/health"));
    assert_eq!(status, 200);
    assert_eq!(body["healthy"], true);
    assert!(
        body["backend"].as_str().unwrap().contains("docker"),
        "{body}"
    );

    let (status, body) = call(server.post(&format!("/v1/sandboxes/{id}/stop")));
    assert_eq!(
        (status, body),
        (200, json!({"id": id, "status": "stopped"}))
    );
    let (status, body) = call(
        server
            .post(&format!("/v1/sandboxes/{id}/exec"))
            .json(&json!({"argv": ["true"]})),
    );
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (409, Some("not_running")),
        "{body}"
    );
    let (status, body) = call(server.delete(&format!("/v1/sandboxes/{id}")));
    assert_eq!(
        (status, body),
        (200, json!({"id": id, "result": "removed"}))
    );
    let (status, _) = call(server.get(&format!("/v1/sandboxes/{id}")));
    assert_eq!(status, 404);
    assert!(env.containers().is_empty());
}

#[test]
fn a_client_that_goes_away_gets_its_command_killed() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    let id = server.create(&env, &[]);
    let response = server
        .post(&format!("/v1/sandboxes/{id}/exec"))
        .json(&json!({"argv": ["sh", "-c", "echo started; sleep 312"]}))
        .send()
        .unwrap();
    let mut lines = BufReader::new(response).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        B64.decode(first["data"].as_str().unwrap()).unwrap(),
        b"started\n"
    );
    drop(lines);

    poll_until("the command is killed after its client left", 15, || {
        let s = exec(
            &server,
            &id,
            json!({"argv": ["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]}),
        );
        !String::from_utf8_lossy(&s.stdout).contains("sleep 312")
    });
    server.delete(&format!("/sandbox/{id}")).send().unwrap();
}

#[test]
fn a_tool_call_whose_client_goes_away_is_killed() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    let id = server.create(&env, &["shell_executor"]);
    // The client gives up after a second; ms-enclave's server would let the command run on.
    let gave_up = server
        .post("/sandbox/tool/execute")
        .timeout(Duration::from_secs(1))
        .json(&json!({"sandbox_id": id, "tool_name": "shell_executor",
                      "parameters": {"command": "sleep 313", "timeout": 120}}))
        .send();
    assert!(gave_up.is_err(), "the call should still be running");

    poll_until(
        "the tool's command is killed after its client left",
        15,
        || {
            let s = exec(
                &server,
                &id,
                json!({"argv": ["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]}),
            );
            !String::from_utf8_lossy(&s.stdout).contains("sleep 313")
        },
    );
    // And the sandbox serves the next call.
    let (status, result) = execute(
        &server,
        &id,
        "shell_executor",
        json!({"command": "echo next"}),
    );
    assert_eq!(
        (status, result["output"].as_str()),
        (200, Some("next\n")),
        "{result}"
    );
    server.delete(&format!("/sandbox/{id}")).send().unwrap();
}

#[test]
fn cors_preflights_are_answered_before_the_key_and_only_for_listed_origins() {
    let env = TestEnv::new();
    let server = Server::start(
        &env,
        &["--api-key", "k", "--cors-origin", "http://app.example:3000"],
    );
    let preflight = |origin: &str| {
        server
            .client
            .request(reqwest::Method::OPTIONS, server.url("/sandbox/create"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-api-key, content-type")
            .send()
            .unwrap()
    };
    let ok = preflight("http://app.example:3000");
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://app.example:3000"
    );
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    assert!(ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("x-api-key"));

    let other = preflight("http://evil.example");
    assert_eq!(other.status(), 403);
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let (_, body) = read_json(other);
    assert_eq!(body["detail"], "Disallowed CORS origin");

    let server = server.with_key("k");
    let listed = server
        .get("/health")
        .header("origin", "http://app.example:3000")
        .send()
        .unwrap();
    assert_eq!(
        listed.headers()["access-control-allow-origin"],
        "http://app.example:3000"
    );
    let unlisted = server
        .get("/health")
        .header("origin", "http://evil.example")
        .send()
        .unwrap();
    assert_eq!(unlisted.status(), 200);
    assert!(unlisted
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[test]
fn a_public_address_without_a_key_is_refused() {
    let env = TestEnv::new();
    let out = Server::command(&env, &["--host", "0.0.0.0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0"), "{stderr}");
    assert!(stderr.contains("--api-key"), "{stderr}");
}

#[test]
fn openapi_json_lists_every_route_the_server_serves() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    let (status, doc) = call(server.get("/openapi.json"));
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/health",
        "/stats",
        "/sandbox/create",
        "/sandboxes",
        "/sandbox/{sandbox_id}",
        "/sandbox/{sandbox_id}/stop",
        "/sandbox/tool/execute",
        "/sandbox/{sandbox_id}/tools",
        "/sandbox/{sandbox_id}/archive",
        "/pool/initialize",
        "/pool/execute",
        "/v1/sandboxes/{id}/exec",
        "/v1/sandboxes/{id}/archive",
    ] {
        assert!(paths.contains_key(route), "{route} is not listed");
    }
    // Every listed route is served: none answers the router's own 404 or 405.
    for (path, ops) in paths {
        let path = path
            .replace("{sandbox_id}", "nosuchid")
            .replace("{id}", "nosuchid")
            .replace("{tool}", "shell_executor");
        for method in ops.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = server
                .client
                .request(method.clone(), server.url(&path))
                .send()
                .unwrap();
            let status = response.status().as_u16();
            let text = response.text().unwrap();
            assert!(
                status != 405 && !(status == 404 && text.contains("\"Not Found\"")),
                "{method} {path} is listed but not served: {status} {text}"
            );
        }
    }
}

#[test]
fn a_graceful_shutdown_finishes_calls_and_leaves_sandboxes_running() {
    let env = TestEnv::new();
    let mut server = Server::start(&env, &["--shutdown-grace", "20"]);
    let id = server.create(&env, &["shell_executor"]);
    let container = env.containers();

    let client = server.client.clone();
    let url = server.url("/sandbox/tool/execute");
    let call_id = id.clone();
    let slow = std::thread::spawn(move || {
        let response = client
            .post(url)
            .json(
                &json!({"sandbox_id": call_id, "tool_name": "shell_executor",
                "parameters": {"command": "sleep 2; echo finished"}}),
            )
            .send()
            .unwrap();
        read_json(response)
    });
    std::thread::sleep(Duration::from_millis(700));
    let status = server.terminate(30);
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let (code, result) = slow.join().unwrap();
    assert_eq!(code, 200, "{result}");
    assert_eq!(
        result["output"], "finished\n",
        "the call under way was cut: {result}"
    );

    let out = docker(&["inspect", "--format", "{{.State.Running}}", &container[0]]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "true",
        "the sandbox did not stay"
    );
}

#[test]
fn the_json_flag_prints_the_address_on_stdout() {
    let env = TestEnv::new();
    let mut child = Server::command(&env, &["--json", "--log-format", "json"])
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let doc: Value = serde_json::from_str(&line).unwrap();
    let url = doc["listening"].as_str().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let health = reqwest::blocking::get(format!("{url}/health")).unwrap();
    assert_eq!(health.status(), 200);
    crate::common::send_signal(child.id(), "TERM");
    let out = crate::common::wait_within(child, 20, "enclave server after SIGTERM");
    assert_eq!(out.status.code(), Some(0));
    // With --log-format json every stderr line is a JSON object.
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(v["time"].is_string(), "{line}");
    }
}

#[test]
fn exec_errors_before_the_command_are_json_and_after_it_are_events() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    let id = server.create(&env, &[]);
    // What the request or the registry shows is refused before any stream, whatever the timing.
    for (request, kind) in [
        (json!({"argv": ["true"], "env": ["=x"]}), "usage"),
        (json!({"argv": ["true"], "env": ["A B=1"]}), "usage"),
    ] {
        let (status, body) = call(
            server
                .post(&format!("/v1/sandboxes/{id}/exec"))
                .json(&request),
        );
        assert_eq!(
            (status, body["error"]["kind"].as_str()),
            (400, Some(kind)),
            "{request}: {body}"
        );
        assert!(detail(&body).contains("KEY=VALUE"), "{body}");
    }
    // What only the engine finds (a missing working directory) is the stream's `error` event.
    let s = exec(
        &server,
        &id,
        json!({"argv": ["true"], "workdir": "/no/such/dir"}),
    );
    assert_eq!(s.last["type"], "error", "{}", s.last);
    assert_eq!(s.last["error"]["kind"], "no_workdir", "{}", s.last);
    server.delete(&format!("/sandbox/{id}")).send().unwrap();
}

#[test]
fn a_delete_whose_client_disconnects_still_removes_the_sandbox() {
    use std::io::Write as _;
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    for route in ["/v1/sandboxes/", "/sandbox/"] {
        let id = server.create(&env, &[]);
        // The request, then the connection closed before the answer comes.
        let address = server.base.trim_start_matches("http://").to_string();
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "DELETE {route}{id} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        stream.flush().unwrap();
        // Gone once the server has started on it; then the client leaves mid-removal.
        poll_until("the delete is under way", 10, || {
            server
                .get(&format!("/v1/sandboxes/{id}"))
                .send()
                .unwrap()
                .status()
                == 404
        });
        stream.shutdown(std::net::Shutdown::Both).unwrap();
        drop(stream);
        let gone = || {
            !docker(&["ps", "-aq", "--filter", &format!("label=enclave.id={id}")])
                .stdout
                .iter()
                .any(|b| !b.is_ascii_whitespace())
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !gone() {
            assert!(
                Instant::now() < deadline,
                "{route}{id} was not removed; the server's log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (status, body) = call(server.get(&format!("/v1/sandboxes/{id}")));
        assert_eq!(status, 404, "{body}");
        // And forgotten for good: the state file a next run adopts from no longer has it.
        poll_until("the state file forgets it", 10, || {
            let state = env.state_dir.path().join("server").join("state.json");
            !std::fs::read_to_string(state)
                .unwrap_or_default()
                .contains(&id)
        });
    }
}

#[test]
fn a_call_past_the_shutdown_grace_is_killed_before_the_server_exits() {
    let env = TestEnv::new();
    let mut server = Server::start(&env, &["--shutdown-grace", "1"]);
    let id = server.create(&env, &["shell_executor"]);
    let client = server.client.clone();
    let url = server.url("/sandbox/tool/execute");
    let call_id = id.clone();
    let slow = std::thread::spawn(move || {
        client
            .post(url)
            .json(
                &json!({"sandbox_id": call_id, "tool_name": "shell_executor",
                          "parameters": {"command": "sleep 314", "timeout": 600}}),
            )
            .send()
    });
    let running = |server: &Server| {
        let s = exec(
            server,
            &id,
            json!({"argv": ["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]}),
        );
        String::from_utf8_lossy(&s.stdout).contains("sleep 314")
    };
    poll_until("the long call runs", 15, || running(&server));
    let status = server.terminate(60);
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let _ = slow.join();

    // The sandbox stays for the next run, without the command the grace period cut short.
    let next = Server::start(&env, &[]);
    assert!(!running(&next), "the call outlived the server");
    next.delete(&format!("/sandbox/{id}")).send().unwrap();
}

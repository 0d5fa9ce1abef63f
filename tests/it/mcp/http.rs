//! `enclave mcp --http`: streamable HTTP with rmcp's client for both protocol revisions, who
//! may call (tokens, Host, Origin), sandboxes scoped to their token, and cleanup on SIGTERM.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::ProtocolVersion;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{json, Value};

use super::{call, create, field, is_error, serve, text, Client, Version};
use crate::common::{poll_until, send_signal, test_image, TestEnv};

const TOKEN_A: &str = "token-a-0123456789abcdef";
const TOKEN_B: &str = "token-b-fedcba9876543210";

/// A running `enclave mcp --http`, killed when dropped (the test env removes what it left).
struct Server {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `enclave mcp --http --port 0` with this test's state dir, image, label and
    /// `extra` flags; returns once it says where it listens.
    fn start(env: &TestEnv, extra: &[&str]) -> Server {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("enclave"))
            .args(["mcp", "--http", "--port", "0", "--image", &test_image()])
            .args(env.label_args())
            .args(extra)
            .env("ENCLAVE_STATE_DIR", env.state_dir.path())
            .env("NO_COLOR", "1")
            .env_remove("ENCLAVE_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start enclave mcp --http");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = std::io::BufReader::new(child.stderr.take().expect("piped stderr"));
        let seen = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("enclave mcp: listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
                seen.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "no `listening on` line within 60 s; stderr:\n{}",
                    stderr.lock().unwrap()
                )
            });
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
            "listening on `{url}`"
        );
        Server { child, url, stderr }
    }

    /// Sends SIGTERM and waits up to `secs` for the process to end.
    fn terminate(&mut self, secs: u64) -> std::process::ExitStatus {
        send_signal(self.child.id(), "TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for enclave mcp") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "enclave mcp still running {secs} s after SIGTERM; stderr:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token file holding A's and B's tokens.
fn token_file(env: &TestEnv) -> String {
    let path = env.state_dir.path().join("tokens.txt");
    std::fs::write(&path, format!("# who may call\n{TOKEN_A}\n\n{TOKEN_B}\n"))
        .expect("write the token file");
    path.to_string_lossy().into_owned()
}

/// rmcp's client over streamable HTTP, with a bearer token when given.
async fn connect_http(url: &str, token: Option<&str>, version: Version) -> Client {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    if let Some(token) = token {
        config = config.auth_header(token.to_string());
    }
    serve(StreamableHttpClientTransport::from_config(config), version).await
}

/// The protocol revision the client and server agreed on.
fn negotiated(client: &Client) -> ProtocolVersion {
    client
        .peer_info()
        .expect("the server's info")
        .protocol_version
        .clone()
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"plain","version":"1"}}}"#;

/// A plain `initialize` POST with extra headers; returns status, headers and body.
async fn post_initialize(
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(Duration::from_secs(30), request.send())
        .await
        .expect("an answer within 30 s")
        .expect("POST /mcp");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = if status == 200 {
        // An SSE stream that stays open: its headers are enough.
        String::new()
    } else {
        response.text().await.expect("the body")
    };
    (status, headers, body)
}

fn json_body(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn both_protocol_revisions_work_over_http_and_keep_python_state() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    for (version, expected) in [
        (Version::Handshake, ProtocolVersion::V_2025_11_25),
        (Version::Stateless, ProtocolVersion::V_2026_07_28),
    ] {
        let client = connect_http(&server.url, None, version).await;
        assert_eq!(negotiated(&client), expected, "{version:?}");
        let tools = client.list_all_tools().await.expect("tools/list");
        assert!(
            tools.iter().any(|t| t.name == "python_executor"),
            "{version:?}: {tools:?}"
        );
        let id = super::assert_python_state_kept(&client, &format!("{version:?}")).await;
        let removed = call(&client, "sandbox_remove", json!({"sandbox_id": id})).await;
        assert!(!is_error(&removed), "{version:?}: {}", text(&removed));
        client.cancel().await.expect("close the client");
    }
    assert!(env.containers().is_empty(), "every sandbox was removed");
}

#[tokio::test]
async fn a_sandbox_is_invisible_to_every_token_but_the_one_that_made_it() {
    let env = TestEnv::new();
    let tokens = token_file(&env);
    let server = Server::start(&env, &["--token-file", &tokens]);
    let a = connect_http(&server.url, Some(TOKEN_A), Version::Handshake).await;
    let b = connect_http(&server.url, Some(TOKEN_B), Version::Stateless).await;
    let id = create(&a, json!({})).await;

    let listed = call(&b, "sandbox_list", json!({})).await;
    assert!(!is_error(&listed), "{}", text(&listed));
    assert_eq!(field(&listed, "sandboxes"), json!([]), "B sees none");
    assert!(!text(&listed).contains(&id), "{}", text(&listed));

    for (tool, args) in [
        (
            "shell_executor",
            json!({"command": "echo hi", "sandbox_id": id}),
        ),
        (
            "python_executor",
            json!({"code": "print(1)", "sandbox_id": id}),
        ),
        (
            "shell_executor",
            json!({"command": "echo hi", "sandbox_id": &id[..4]}),
        ),
        ("sandbox_remove", json!({"sandbox_id": id})),
    ] {
        let result = call(&b, tool, args.clone()).await;
        assert!(is_error(&result), "B's {tool} {args}: {}", text(&result));
        assert!(
            text(&result).contains("No sandbox"),
            "B's {tool} {args}: {}",
            text(&result)
        );
    }
    assert_eq!(env.containers().len(), 1, "A's sandbox is still there");

    let mine = call(&a, "sandbox_list", json!({})).await;
    assert!(
        text(&mine).contains(&id),
        "A sees its sandbox: {}",
        text(&mine)
    );
    let ran = call(
        &a,
        "shell_executor",
        json!({"command": "echo hi", "sandbox_id": id}),
    )
    .await;
    assert!(!is_error(&ran), "{}", text(&ran));
    let removed = call(&a, "sandbox_remove", json!({"sandbox_id": id})).await;
    assert!(!is_error(&removed), "{}", text(&removed));
    assert!(env.containers().is_empty());
    a.cancel().await.expect("close A");
    b.cancel().await.expect("close B");
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401_with_a_json_body() {
    let env = TestEnv::new();
    let tokens = token_file(&env);
    let server = Server::start(&env, &["--token-file", &tokens]);
    let wrong = format!("Bearer {TOKEN_A}x");
    for headers in [
        vec![],
        vec![("authorization", wrong.as_str())],
        vec![("authorization", "Bearer ")],
        vec![("authorization", TOKEN_A)],
    ] {
        let (status, got, body) = post_initialize(&server.url, &headers).await;
        assert_eq!(status, 401, "{headers:?}: {body}");
        let challenge = got
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer"),
            "{headers:?}: `{challenge}`"
        );
        let body = json_body(&body);
        assert_eq!(body["error"], "unauthorized", "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("Bearer"),
            "{body}"
        );
    }
    for token in [TOKEN_A, TOKEN_B] {
        let auth = format!("Bearer {token}");
        let (status, got, body) = post_initialize(&server.url, &[("authorization", &auth)]).await;
        assert_eq!(status, 200, "{token}: {body}");
        assert!(got.contains_key("mcp-session-id"), "a 2025-11-25 session");
    }
    // The rmcp client gets no further without its token either.
    let mut config = StreamableHttpClientTransportConfig::with_uri(server.url.clone());
    config = config.auth_header("not-a-token-of-this-server");
    let refused =
        rmcp::ServiceExt::serve((), StreamableHttpClientTransport::from_config(config)).await;
    assert!(refused.is_err(), "a client with a wrong token connected");
}

#[tokio::test]
async fn a_session_answers_only_the_token_that_opened_it() {
    let env = TestEnv::new();
    let tokens = token_file(&env);
    let server = Server::start(&env, &["--token-file", &tokens]);
    let (auth_a, auth_b) = (format!("Bearer {TOKEN_A}"), format!("Bearer {TOKEN_B}"));
    let (status, got, body) = post_initialize(&server.url, &[("authorization", &auth_a)]).await;
    assert_eq!(status, 200, "{body}");
    let session = got["mcp-session-id"].to_str().unwrap().to_string();
    let send = |method: reqwest::Method, auth: &str| {
        reqwest::Client::new()
            .request(method, &server.url)
            .header("authorization", auth)
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .timeout(Duration::from_secs(10))
    };
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#;
    for (method, body) in [
        (reqwest::Method::POST, list),
        (reqwest::Method::GET, ""),
        (reqwest::Method::DELETE, ""),
    ] {
        let response = send(method.clone(), &auth_b)
            .body(body)
            .send()
            .await
            .expect("B's request");
        assert_eq!(response.status(), 404, "B's {method} on A's session");
    }
    let ended = send(reqwest::Method::DELETE, &auth_a)
        .send()
        .await
        .expect("A's DELETE");
    assert!(
        ended.status().is_success(),
        "A ends its session: {}",
        ended.status()
    );
}

#[tokio::test]
async fn foreign_origins_and_hosts_are_refused_with_403() {
    let env = TestEnv::new();
    let server = Server::start(&env, &["--allow-origin", "http://localhost:6274"]);
    let port = server
        .url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/mcp")
        .to_string();

    for origin in [
        "http://evil.example",
        "http://localhost:6275",
        "https://localhost:6274",
        "null",
    ] {
        let (status, _, body) = post_initialize(&server.url, &[("origin", origin)]).await;
        assert_eq!(status, 403, "Origin {origin}: {body}");
        let body = json_body(&body);
        assert_eq!(body["error"], "forbidden_origin", "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("--allow-origin"),
            "{body}"
        );
    }
    let rebound = format!("evil.example:{port}");
    let (status, _, body) = post_initialize(&server.url, &[("host", &rebound)]).await;
    assert_eq!(status, 403, "Host {rebound}: {body}");
    assert_eq!(json_body(&body)["error"], "forbidden_host", "{body}");

    let (status, got, body) =
        post_initialize(&server.url, &[("origin", "http://localhost:6274")]).await;
    assert_eq!(status, 200, "the allowed origin: {body}");
    assert_eq!(
        got.get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://localhost:6274")
    );
    let local = format!("localhost:{port}");
    let (status, _, body) = post_initialize(&server.url, &[("host", &local)]).await;
    assert_eq!(status, 200, "Host {local}, no Origin: {body}");

    // The server's own origin (the conformance suite's localhost case) is its own page.
    let own = format!("http://127.0.0.1:{port}");
    let (status, _, body) = post_initialize(&server.url, &[("origin", &own)]).await;
    assert_eq!(status, 200, "Origin {own}: {body}");
    // ...but not with another Host, nor another port of this machine.
    let other = format!("http://127.0.0.1:{}", port.parse::<u16>().unwrap() ^ 1);
    let (status, _, body) = post_initialize(&server.url, &[("origin", &other)]).await;
    assert_eq!(status, 403, "Origin {other}: {body}");
    let (status, _, body) =
        post_initialize(&server.url, &[("origin", &own), ("host", &rebound)]).await;
    assert_eq!(status, 403, "Origin {own} with Host {rebound}: {body}");

    // Host and Origin are checked before the token: a rebinding page learns nothing more.
    let tokens = token_file(&env);
    let guarded = Server::start(&env, &["--token-file", &tokens]);
    let (status, _, body) =
        post_initialize(&guarded.url, &[("origin", "http://evil.example")]).await;
    assert_eq!(status, 403, "{body}");
}

#[test]
fn listening_beyond_loopback_without_a_token_is_a_usage_error() {
    let env = TestEnv::new();
    for host in ["0.0.0.0", "::", "192.0.2.1"] {
        let out = env
            .cmd()
            .args(["mcp", "--http", "--host", host, "--port", "0"])
            .output()
            .expect("run enclave mcp");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--host {host}: {stderr}");
        assert!(stderr.contains("--token-file"), "--host {host}: {stderr}");
    }
    let short = env.state_dir.path().join("short.txt");
    std::fs::write(&short, "# a weak one\nshort-token\n").unwrap();
    let empty = env.state_dir.path().join("empty.txt");
    std::fs::write(&empty, "# nothing\n\n").unwrap();
    for (file, says) in [(&short, "line 2"), (&empty, "no tokens")] {
        let out = env
            .cmd()
            .args(["mcp", "--http", "--host", "0.0.0.0", "--port", "0"])
            .arg("--token-file")
            .arg(file)
            .output()
            .expect("run enclave mcp");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{says}: {stderr}");
        assert!(stderr.contains(says), "{says}: {stderr}");
    }
}

#[tokio::test]
async fn sigterm_removes_the_sandboxes_it_made() {
    let env = TestEnv::new();
    let mut server = Server::start(&env, &[]);
    let client = connect_http(&server.url, None, Version::Handshake).await;
    create(&client, json!({})).await;
    let other = connect_http(&server.url, None, Version::Stateless).await;
    create(&other, json!({})).await;
    assert_eq!(env.containers().len(), 2, "both sandboxes are there");

    let status = server.terminate(30);
    assert!(
        status.code().is_some(),
        "enclave mcp was ended by SIGTERM itself instead of handling it: {status:?}"
    );
    poll_until("the sandboxes removed at exit", 10, || {
        env.containers().is_empty()
    });
    drop(client);
    drop(other);
}

//! `enclave mcp` driven by the official Rust SDK's client (rmcp), over stdio and streamable
//! HTTP, on real Docker.

mod core;
mod files;
mod http;
mod jobs;

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, ProtocolVersion};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::{Map, Value};

use crate::common::{test_image, TestEnv};

pub(crate) type Client = RunningService<RoleClient, ()>;

/// Which revision of the protocol a client speaks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Version {
    /// 2025-11-25: the `initialize` handshake.
    Handshake,
    /// 2026-07-28: no handshake, metadata on every request.
    Stateless,
}

/// `enclave mcp` over stdio with this test's state dir, image and label, plus `extra` flags.
pub(crate) fn mcp_command(env: &TestEnv, extra: &[&str]) -> tokio::process::Command {
    let image = test_image();
    let label = env.label_args();
    tokio::process::Command::new(assert_cmd::cargo::cargo_bin("enclave")).configure(|cmd| {
        cmd.arg("mcp")
            .args(["--image", &image])
            .args(&label)
            .args(extra)
            .env("ENCLAVE_STATE_DIR", env.state_dir.path())
            .env("NO_COLOR", "1")
            .env_remove("ENCLAVE_SERVER");
    })
}

/// A client connected to a new `enclave mcp` over stdio.
pub(crate) async fn connect(env: &TestEnv, extra: &[&str], version: Version) -> Client {
    let transport = TokioChildProcess::new(mcp_command(env, extra)).expect("start enclave mcp");
    serve(transport, version).await
}

pub(crate) async fn serve<T, E, A>(transport: T, version: Version) -> Client
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let client = match version {
        Version::Handshake => ().serve(transport).await.expect("initialize"),
        Version::Stateless => ()
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
            )
            .await
            .expect("discover"),
    };
    client
}

/// Calls `tool` with `args` (a JSON object); fails the test on a protocol error.
pub(crate) async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be an object: {args}");
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        client.call_tool(params(tool, args)),
    )
    .await
    .unwrap_or_else(|_| panic!("{tool}: no answer within 120 s"))
    .unwrap_or_else(|e| panic!("{tool}: protocol error: {e}"))
}

pub(crate) fn params(tool: &str, args: Map<String, Value>) -> CallToolRequestParams {
    CallToolRequestParams::new(tool.to_string()).with_arguments(args)
}

/// The first content block's text (always a text block).
pub(crate) fn text(result: &CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map_or_else(
            || panic!("the first content block is not text: {result:?}"),
            |t| t.text.clone(),
        )
}

pub(crate) fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

/// A structured field of the result.
pub(crate) fn field(result: &CallToolResult, key: &str) -> Value {
    result
        .structured_content
        .as_ref()
        .and_then(|s| s.get(key))
        .cloned()
        .unwrap_or(Value::Null)
}

/// `sandbox_create` with `args`; returns the new sandbox's id.
pub(crate) async fn create(client: &Client, args: Value) -> String {
    let result = call(client, "sandbox_create", args).await;
    assert!(
        !is_error(&result),
        "sandbox_create failed: {}",
        text(&result)
    );
    let id = field(&result, "sandbox_id");
    id.as_str().expect("sandbox_id").to_string()
}

/// `x = 41` then `print(x + 1)` in a new sandbox: the second call sees the first's variable.
/// Returns the sandbox's id.
pub(crate) async fn assert_python_state_kept(client: &Client, what: &str) -> String {
    let id = create(client, serde_json::json!({})).await;
    let first = call(
        client,
        "python_executor",
        serde_json::json!({"code": "x = 41", "sandbox_id": id}),
    )
    .await;
    assert!(!is_error(&first), "{what}: {}", text(&first));
    let second = call(
        client,
        "python_executor",
        serde_json::json!({"code": "print(x + 1)", "sandbox_id": id}),
    )
    .await;
    assert!(!is_error(&second), "{what}: {}", text(&second));
    assert_eq!(text(&second).trim(), "42", "{what}");
    assert_eq!(
        field(&second, "sandbox_id"),
        serde_json::json!(id),
        "{what}"
    );
    id
}

/// The command lines of the processes running in `container`, one a line.
pub(crate) fn processes(container: &str) -> String {
    let out = crate::common::docker(&[
        "exec",
        container,
        "sh",
        "-c",
        "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

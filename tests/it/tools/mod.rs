//! `run-tool` and `tools` against a real engine: every tool, every file operation, timeouts that
//! kill whole process trees, output caps, argument validation and the exact schemas.

use std::path::Path;
use std::process::{Command as StdCommand, Output};
use std::time::Duration;

use rand::RngCore;
use serde_json::{json, Value};

use crate::common::{stderr, stdout, TestEnv};

mod executors;
mod files;

const TOOLS: [&str; 4] = [
    "python_executor",
    "shell_executor",
    "file_operation",
    "multi_code_executor",
];

/// A sandbox with a `tools_config` (the map form, with options).
fn sandbox(env: &TestEnv, tools_config: Value) -> String {
    let file = env
        .state_dir
        .path()
        .join(format!("config-{}.json", rand::rng().next_u64()));
    std::fs::write(&file, json!({ "tools_config": tools_config }).to_string()).unwrap();
    env.create(&["--config", file.to_str().unwrap()])
}

/// A sandbox with every tool, default options.
fn all_tools(env: &TestEnv) -> String {
    sandbox(
        env,
        json!({"python_executor": {}, "shell_executor": {}, "file_operation": {}, "multi_code_executor": {}}),
    )
}

/// `run-tool` with the arguments on stdin (`--args -`), plus extra flags.
fn call(env: &TestEnv, id: &str, tool: &str, args: &Value, extra: &[&str]) -> Output {
    env.cmd()
        .args(["run-tool", id, tool, "--args", "-"])
        .args(extra)
        .write_stdin(args.to_string())
        .output()
        .unwrap()
}

/// `run-tool --json`: the `ToolResult` and the exit code.
fn call_json(env: &TestEnv, id: &str, tool: &str, args: &Value) -> (Value, i32) {
    let out = call(env, id, tool, args, &["--json"]);
    let result: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(&out), stderr(&out)));
    (result, out.status.code().unwrap())
}

/// Runs a shell command through `shell_executor`; its exact stdout.
fn sh(env: &TestEnv, id: &str, command: &str) -> String {
    let (r, code) = call_json(env, id, "shell_executor", &json!({ "command": command }));
    assert_eq!(code, 0, "`{command}`: {r}");
    r["output"].as_str().unwrap().to_string()
}

fn assert_markers_never_appear(env: &TestEnv, id: &str, markers: &[&str]) {
    std::thread::sleep(Duration::from_secs(4));
    for marker in markers {
        let listing = sh(
            env,
            id,
            &format!("test -e {marker} && echo present || echo absent"),
        );
        assert_eq!(
            listing, "absent\n",
            "{marker} appeared: a process survived the timeout"
        );
    }
}

fn fixture(tool: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/schemas")
        .join(format!("{tool}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Compact text keeps key order, so this compares order too.
fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

#[test]
fn schemas_match_the_checked_in_fixtures_without_docker() {
    let state = tempfile::tempdir().unwrap();
    let enclave = || {
        let mut cmd = assert_cmd::Command::cargo_bin("enclave").unwrap();
        cmd.env("ENCLAVE_STATE_DIR", state.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
        cmd
    };
    for tool in TOOLS.iter().copied().chain(["notebook_executor"]) {
        let out = enclave()
            .args(["tools", "--schema", tool])
            .output()
            .unwrap();
        assert!(out.status.success(), "{tool}: {}", stderr(&out));
        let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(compact(&schema), compact(&fixture(tool)), "{tool}");
    }
    let out = enclave().args(["tools", "--json"]).output().unwrap();
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = all
        .iter()
        .map(|s| s["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "file_operation",
            "multi_code_executor",
            "notebook_executor",
            "python_executor",
            "shell_executor"
        ]
    );

    let out = enclave()
        .args(["tools", "--schema", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown tool `nope`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tools_lists_a_sandboxs_tools_with_their_overrides() {
    let env = TestEnv::new();
    let id = sandbox(
        &env,
        json!({
            "python_executor": {"name": "py", "description": "Run Python"},
            "shell_executor": {},
            "file_operation": {"enabled": false}
        }),
    );
    let out = env.cmd().args(["tools", &id, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let schemas: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schemas.len(), 2);
    let py = &schemas[0];
    assert_eq!(py["type"], "function");
    assert_eq!(py["function"]["name"], "py");
    assert_eq!(py["function"]["description"], "Run Python");
    assert_eq!(
        compact(&py["function"]["parameters"]),
        compact(&fixture("python_executor")["function"]["parameters"])
    );
    assert_eq!(compact(&schemas[1]), compact(&fixture("shell_executor")));

    let table = env.cmd().args(["tools", &id]).output().unwrap();
    let text = stdout(&table);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(
        text.contains("py ") && text.contains("code [timeout]"),
        "{text}"
    );
    assert!(!text.contains("file_operation"), "{text}");

    let one = env
        .cmd()
        .args(["tools", &id, "--schema", "py"])
        .output()
        .unwrap();
    let schema: Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(schema["function"]["name"], "py");

    let out = call(&env, &id, "py", &json!({"code": "print(6*7)"}), &[]);
    assert_eq!(stdout(&out), "42\n", "{}", stderr(&out));
    let out = call(&env, &id, "python_executor", &json!({"code": "1"}), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("tool `python_executor` is not available"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn invalid_arguments_exit_2_and_name_the_parameter() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    let cases = [
        (
            "python_executor",
            json!({"code": "print(1)", "bogus": 1}),
            "unknown parameter `bogus`",
        ),
        (
            "python_executor",
            json!({}),
            "missing required parameter `code`",
        ),
        (
            "python_executor",
            json!({"code": "1", "timeout": "soon"}),
            "parameter `timeout`",
        ),
        (
            "python_executor",
            json!({"code": 5}),
            "parameter `code` must be a string",
        ),
        (
            "shell_executor",
            json!({"command": {"a": 1}}),
            "parameter `command`",
        ),
        (
            "file_operation",
            json!({"operation": "move", "file_path": "/x"}),
            "parameter `operation` must be one of",
        ),
        (
            "multi_code_executor",
            json!({"language": "bash", "code": "x", "files": {"a": 1}}),
            "parameter `files`[\"a\"]",
        ),
    ];
    for (tool, args, message) in cases {
        let out = call(&env, &id, tool, &args, &[]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{tool} {args}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(message),
            "{tool} {args}: {}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), "");
    }

    let out = call(
        &env,
        &id,
        "python_executor",
        &json!({"code": 1}),
        &["--json"],
    );
    assert_eq!(out.status.code(), Some(2));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["error"]["kind"], "invalid_arguments");

    for flags in [
        &["--args", "{not json"][..],
        &["--args", "[1, 2]"],
        &["--arg", "no-equals-sign"],
        &["--args", "@/nonexistent/args.json"],
    ] {
        let out = env
            .cmd()
            .args(["run-tool", &id, "python_executor"])
            .args(flags)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
    }
}

#[test]
fn run_tool_argument_sources_and_deadline() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    // --arg values are text unless the parameter takes something else and the text is that in JSON.
    let out = env
        .cmd()
        .args([
            "run-tool",
            &id,
            "file_operation",
            "--arg",
            "operation=write",
        ])
        .args(["--arg", "file_path=/sandbox/n.txt", "--arg", "content=123"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "File written successfully: /sandbox/n.txt\n");
    let out = env
        .cmd()
        .args([
            "run-tool",
            &id,
            "shell_executor",
            "--arg",
            r#"command=["cat","/sandbox/n.txt"]"#,
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "123\n");

    // --arg overrides the same key of --args.
    let out = env
        .cmd()
        .args([
            "run-tool",
            &id,
            "shell_executor",
            "--args",
            r#"{"command":"echo a"}"#,
        ])
        .args(["--arg", "command=echo b"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "b\n");

    // The client-side deadline cancels the call and kills what it started.
    let (r, code) = {
        let out = call(
            &env,
            &id,
            "shell_executor",
            &json!({"command": "sleep 2; touch /tmp/late"}),
            &["--json", "--timeout", "0.5"],
        );
        (
            serde_json::from_slice::<Value>(&out.stdout).unwrap(),
            out.status.code().unwrap(),
        )
    };
    assert_eq!(code, 124, "{r}");
    assert_eq!(r["status"], "timeout");
    assert_eq!(r["error"], "Tool call timed out after 0.5 seconds");
    assert_markers_never_appear(&env, &id, &["/tmp/late"]);

    let out = env
        .cmd()
        .args(["run-tool", &id, "no_such_tool", "--arg", "x=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not available"), "{}", stderr(&out));
}

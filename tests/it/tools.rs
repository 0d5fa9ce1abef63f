//! `run-tool` and `tools` against a real engine: every tool, every file operation, timeouts that
//! kill whole process trees, output caps, argument validation and the exact schemas.

use std::path::Path;
use std::process::{Command as StdCommand, Output};
use std::time::Duration;

use rand::RngCore;
use serde_json::{json, Value};

use crate::common::{stderr, stdout, TestEnv};

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
    for tool in TOOLS {
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
fn python_executor_success_error_and_metadata() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    let out = env
        .cmd()
        .args([
            "run-tool",
            &id,
            "python_executor",
            "--arg",
            "code=print(40+2)",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "42\n", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));

    let out = call(&env, &id, "python_executor", &json!({"code": "1/0"}), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("Traceback"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ZeroDivisionError"),
        "{}",
        stderr(&out)
    );

    let (r, code) = call_json(
        &env,
        &id,
        "python_executor",
        &json!({"code": "print('partial')\n1/0"}),
    );
    assert_eq!(code, 1);
    assert_eq!(r["status"], "error");
    assert_eq!(r["tool_name"], "python_executor");
    assert_eq!(r["output"], "partial\n");
    assert!(r["error"].as_str().unwrap().contains("ZeroDivisionError"));
    assert_eq!(r["metadata"]["exit_code"], 1);
    assert_eq!(r["metadata"]["truncated"], false);
    assert!(r["metadata"]["duration_ms"].is_u64(), "{r}");
    assert!(r["execution_time"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["timestamp"].is_string());

    let out = call(
        &env,
        &id,
        "python_executor",
        &json!({"code": "import sys; sys.exit(3)"}),
        &[],
    );
    assert_eq!(out.status.code(), Some(3));

    let (r, code) = call_json(
        &env,
        &id,
        "python_executor",
        &json!({"code": "import sys\nprint('careful', file=sys.stderr)\nprint('é→ok')"}),
    );
    assert_eq!(code, 0);
    assert_eq!(r["status"], "success");
    assert_eq!(r["output"], "é→ok\n");
    assert_eq!(r["error"], Value::Null, "a success carries no error");
    assert_eq!(r["metadata"]["stderr"], "careful\n");

    // Stateless: every call is a fresh interpreter.
    call(&env, &id, "python_executor", &json!({"code": "x = 1"}), &[]);
    let out = call(
        &env,
        &id,
        "python_executor",
        &json!({"code": "print(x)"}),
        &[],
    );
    assert!(stderr(&out).contains("NameError"), "{}", stderr(&out));

    let (r, code) = call_json(&env, &id, "python_executor", &json!({"code": "  \n"}));
    assert_eq!(
        (r["status"].as_str(), r["error"].as_str(), code),
        (Some("error"), Some("No code provided"), 1)
    );

    // The working directory is the sandbox's, and no script is left behind.
    let out = call(
        &env,
        &id,
        "python_executor",
        &json!({"code": "import os; print(os.getcwd())"}),
        &[],
    );
    assert_eq!(stdout(&out), "/sandbox\n");
    assert_eq!(sh(&env, &id, "ls -A /tmp"), "");
}

#[test]
fn python_executor_needs_only_python3_and_honours_python_path() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    sh(&env, &id, "rm -f /usr/bin/python && ! command -v python");
    let out = call(
        &env,
        &id,
        "python_executor",
        &json!({"code": "import sys; print(sys.executable)"}),
        &[],
    );
    assert_eq!(stdout(&out), "/usr/bin/python3\n", "{}", stderr(&out));

    let pinned = sandbox(
        &env,
        json!({"python_executor": {"python_path": "/usr/bin/python3.11"}}),
    );
    let out = call(
        &env,
        &pinned,
        "python_executor",
        &json!({"code": "import sys; print(sys.executable)"}),
        &[],
    );
    assert_eq!(stdout(&out), "/usr/bin/python3.11\n", "{}", stderr(&out));

    let broken = sandbox(
        &env,
        json!({"python_executor": {"python_path": "/nonexistent/python"}}),
    );
    let out = call(
        &env,
        &broken,
        "python_executor",
        &json!({"code": "print(1)"}),
        &[],
    );
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
}

#[test]
fn python_executor_timeout_kills_child_processes() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    let code = "import os\nprint('started')\nos.system('sleep 2; touch /tmp/py_marker')";
    let (r, code) = call_json(
        &env,
        &id,
        "python_executor",
        &json!({"code": code, "timeout": 0.3}),
    );
    assert_eq!(code, 124);
    assert_eq!(r["status"], "timeout");
    assert_eq!(r["output"], "started\n", "output before the kill is kept");
    assert_eq!(r["error"], "Command timed out after 0.3 seconds");
    assert_eq!(r["metadata"]["exit_code"], Value::Null);
    assert_markers_never_appear(&env, &id, &["/tmp/py_marker"]);
    assert_eq!(
        sh(&env, &id, "ls -A /tmp"),
        "",
        "the temp script is removed after a timeout too"
    );
}

#[test]
fn shell_executor_statuses_and_texts() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    let (r, code) = call_json(
        &env,
        &id,
        "shell_executor",
        &json!({"command": "echo \"Hello, Shell!\""}),
    );
    assert_eq!((r["status"].as_str(), code), (Some("success"), 0));
    assert_eq!(r["output"], "Hello, Shell!\n");
    assert_eq!(r["metadata"]["exit_code"], 0);

    let (r, code) = call_json(
        &env,
        &id,
        "shell_executor",
        &json!({"command": "echo out; exit 3"}),
    );
    assert_eq!(code, 3);
    assert_eq!(r["status"], "error");
    assert_eq!(r["output"], "out\n");
    assert_eq!(r["error"], "Command failed with exit code 3");

    // ms-enclave's own cases: neither is a timeout, whatever the exit code says.
    let (r, code) = call_json(
        &env,
        &id,
        "shell_executor",
        &json!({"command": "bash -c 'exit 124'", "timeout": 5}),
    );
    assert_eq!((r["status"].as_str(), code), (Some("error"), 124));
    assert_eq!(r["metadata"]["exit_code"], 124);
    let (r, code) = call_json(
        &env,
        &id,
        "shell_executor",
        &json!({"command": "bash -c 'kill -9 $$'", "timeout": 5}),
    );
    assert_eq!((r["status"].as_str(), code), (Some("error"), 137));

    let (r, _) = call_json(
        &env,
        &id,
        "shell_executor",
        &json!({"command": "echo warn >&2"}),
    );
    assert_eq!(r["status"], "success");
    assert_eq!(r["error"], Value::Null);
    assert_eq!(r["metadata"]["stderr"], "warn\n");
    let (r, _) = call_json(
        &env,
        &id,
        "shell_executor",
        &json!({"command": "echo bad >&2; false"}),
    );
    assert_eq!(r["error"], "bad\n");

    // An array is argv: nothing in it is interpreted.
    let (r, _) = call_json(
        &env,
        &id,
        "shell_executor",
        &json!({"command": ["printf", "%s|", "a b", "$(id)", "*"]}),
    );
    assert_eq!(r["output"], "a b|$(id)|*|");

    // A string always goes through a shell, whatever the timeout (ms-enclave drops it at 0).
    for timeout in [json!(0), Value::Null, json!(5)] {
        let (r, _) = call_json(
            &env,
            &id,
            "shell_executor",
            &json!({"command": "echo hi | tr a-z A-Z", "timeout": timeout}),
        );
        assert_eq!(r["output"], "HI\n", "timeout {timeout}");
    }

    for empty in [json!(""), json!("   "), json!([])] {
        let (r, code) = call_json(&env, &id, "shell_executor", &json!({ "command": empty }));
        assert_eq!(
            (r["error"].as_str(), code),
            (Some("No command provided"), 1)
        );
    }

    let (r, code) = call_json(
        &env,
        &id,
        "shell_executor",
        &json!({"command": ["no-such-program"]}),
    );
    assert_eq!((r["status"].as_str(), code), (Some("error"), 127));
}

#[test]
fn shell_executor_timeout_kills_child_grandchild_and_setsid() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    let cases = [
        ("sleep 2; touch /tmp/child", "/tmp/child"),
        (
            "bash -c '(sleep 2; touch /tmp/grandchild) & wait'",
            "/tmp/grandchild",
        ),
        (
            "setsid sh -c 'sleep 2; touch /tmp/escaped' & wait",
            "/tmp/escaped",
        ),
    ];
    for (command, _) in cases {
        let (r, code) = call_json(
            &env,
            &id,
            "shell_executor",
            &json!({"command": command, "timeout": 0.3}),
        );
        assert_eq!(code, 124, "{command}: {r}");
        assert_eq!(r["status"], "timeout");
        assert_eq!(r["error"], "Command timed out after 0.3 seconds");
    }
    let markers: Vec<&str> = cases.iter().map(|(_, m)| *m).collect();
    assert_markers_never_appear(&env, &id, &markers);
    assert!(!sh(&env, &id, "ps -eo args").contains("sleep"));
}

#[test]
fn file_operation_every_operation_on_injection_shaped_paths() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    let dir = "/sandbox/we ird \"q\" $(touch /tmp/pwned) 'x' `touch /tmp/pwned2`";
    let path = format!("{dir}/-f $(id) ;rm -rf *.txt");
    let op = |args: Value| call_json(&env, &id, "file_operation", &args);

    let (r, code) = op(json!({"operation": "create", "file_path": path}));
    assert_eq!(
        (r["output"].as_str(), code),
        (
            Some(format!("File written successfully: {path}").as_str()),
            0
        ),
        "{r}"
    );
    let (r, _) = op(json!({"operation": "read", "file_path": path}));
    assert_eq!(r["output"], "");

    let content = "line 1\n\"quoted\" $(id) `id` é→✓\n\0binary\u{1}";
    let (r, code) = op(json!({"operation": "write", "file_path": path, "content": content}));
    assert_eq!(code, 0, "{r}");
    let (r, _) = op(json!({"operation": "read", "file_path": path}));
    assert_eq!(r["output"], content);
    assert_eq!(r["metadata"]["size"], content.len());

    let (r, _) = op(json!({"operation": "list", "file_path": dir}));
    assert!(
        r["output"]
            .as_str()
            .unwrap()
            .contains("-f $(id) ;rm -rf *.txt"),
        "{r}"
    );
    let (r, _) = op(json!({"operation": "exists", "file_path": path}));
    assert_eq!(r["output"], "exists");
    let (r, code) = op(json!({"operation": "delete", "file_path": path}));
    assert_eq!(
        (r["output"].as_str(), code),
        (Some(format!("Successfully deleted: {path}").as_str()), 0)
    );
    let (r, _) = op(json!({"operation": "exists", "file_path": path}));
    assert_eq!(r["output"], "does not exist");
    let (r, _) = op(json!({"operation": "exists", "file_path": dir}));
    assert_eq!(r["output"], "exists", "delete removed only the file");

    assert_eq!(
        sh(&env, &id, "ls -A /tmp; ls /sandbox | wc -l"),
        "1\n",
        "nothing was injected, nothing else was created"
    );

    // Relative paths are relative to the working directory.
    op(json!({"operation": "write", "file_path": "rel.txt", "content": "relative"}));
    assert_eq!(sh(&env, &id, "cat /sandbox/rel.txt"), "relative");
}

#[test]
fn file_operation_errors_have_ms_enclave_texts() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    let op = |args: Value| call_json(&env, &id, "file_operation", &args);
    sh(&env, &id, "touch /sandbox/keep");

    let (r, code) = op(json!({"operation": "write", "file_path": "/sandbox/a.txt"}));
    assert_eq!(
        (r["error"].as_str(), code),
        (Some("Content is required for write operation"), 1)
    );
    let (r, _) = op(json!({"operation": "read", "file_path": "  "}));
    assert_eq!(r["error"], "No file path provided");
    let (r, _) = op(json!({"operation": "read", "file_path": "/sandbox/missing.txt"}));
    assert_eq!(r["status"], "error");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("No such file or directory"),
        "{r}"
    );
    let (r, _) = op(json!({"operation": "read", "file_path": "/sandbox"}));
    assert_eq!(r["error"], "Failed to read file: /sandbox: is a directory");
    let (r, _) = op(json!({"operation": "list", "file_path": "/nonexistent"}));
    assert!(r["error"].as_str().unwrap().contains("No such file"), "{r}");
    let (r, _) =
        op(json!({"operation": "write", "file_path": "/x", "content": "é", "encoding": "ebcdic"}));
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("Write failed: unknown encoding: ebcdic"),
        "{r}"
    );

    // Writing onto a directory fails and leaves the directory alone.
    let (r, _) = op(json!({"operation": "write", "file_path": "/sandbox", "content": "x"}));
    assert_eq!(r["status"], "error");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("Failed to copy file to target location"),
        "{r}"
    );
    assert_eq!(sh(&env, &id, "ls /sandbox"), "keep\n");

    // Missing parents are created, files in /proc are readable, symlinks are followed.
    let (r, _) = op(
        json!({"operation": "write", "file_path": "/sandbox/new/deep/f.txt", "content": "deep"}),
    );
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(sh(&env, &id, "cat /sandbox/new/deep/f.txt"), "deep");
    let (r, _) = op(json!({"operation": "read", "file_path": "/proc/self/status"}));
    assert!(r["output"].as_str().unwrap().contains("Pid:"), "{r}");
    sh(
        &env,
        &id,
        "echo target > /sandbox/t; ln -s /sandbox/t /sandbox/link; chmod 750 /sandbox/t",
    );
    let (r, _) = op(json!({"operation": "read", "file_path": "/sandbox/link"}));
    assert_eq!(r["output"], "target\n");
    op(json!({"operation": "write", "file_path": "/sandbox/link", "content": "through"}));
    assert_eq!(
        sh(
            &env,
            &id,
            "cat /sandbox/t; stat -c %a /sandbox/t; test -L /sandbox/link && echo link"
        ),
        "through750\nlink\n",
        "a write follows the symlink and keeps the file's mode"
    );
}

#[test]
fn file_operation_round_trips_10_mb_of_binary_exactly() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("blob.bin");
    let mut bytes = vec![0u8; 10_000_000];
    rand::rng().fill_bytes(&mut bytes);
    std::fs::write(&original, &bytes).unwrap();

    // The host's own base64 and sha256sum are the oracle, not our code.
    let b64 = host(&["base64", "-w0", original.to_str().unwrap()]);
    let args_file = work.path().join("write.json");
    let args = json!({"operation": "write", "file_path": "/sandbox/blob.bin", "content": String::from_utf8(b64).unwrap(), "encoding": "base64"});
    std::fs::write(&args_file, args.to_string()).unwrap();
    let out = env
        .cmd()
        .args(["run-tool", &id, "file_operation", "--args"])
        .arg(format!("@{}", args_file.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let host_sum = String::from_utf8(host(&["sha256sum", original.to_str().unwrap()])).unwrap();
    let host_sum = host_sum.split_whitespace().next().unwrap();
    let sandbox_sum = sh(
        &env,
        &id,
        "stat -c %s /sandbox/blob.bin; sha256sum < /sandbox/blob.bin",
    );
    assert_eq!(sandbox_sum, format!("10000000\n{host_sum}  -\n"));

    let (r, code) = call_json(
        &env,
        &id,
        "file_operation",
        &json!({"operation": "read", "file_path": "/sandbox/blob.bin", "encoding": "base64"}),
    );
    assert_eq!(code, 0, "{}", r["error"]);
    assert_eq!(r["metadata"]["size"], 10_000_000);
    let read_back = work.path().join("read.b64");
    std::fs::write(&read_back, r["output"].as_str().unwrap()).unwrap();
    let decoded = host(&["base64", "-d", read_back.to_str().unwrap()]);
    assert!(
        decoded == bytes,
        "the bytes read back differ from the bytes written"
    );

    // Read as text, invalid UTF-8 is replaced and says so.
    let (r, _) = call_json(
        &env,
        &id,
        "file_operation",
        &json!({"operation": "read", "file_path": "/sandbox/blob.bin"}),
    );
    assert_eq!(r["metadata"]["lossy"], true);
}

fn host(argv: &[&str]) -> Vec<u8> {
    let out = StdCommand::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn file_operation_honours_size_and_path_options() {
    let env = TestEnv::new();
    let id = sandbox(
        &env,
        json!({
            "file_operation": {"max_file_size": 100, "allowed_paths": ["/sandbox/ok"], "blocked_paths": ["/sandbox/ok/secret"]},
            "shell_executor": {}
        }),
    );
    let op = |args: Value| call_json(&env, &id, "file_operation", &args);
    let (r, _) =
        op(json!({"operation": "write", "file_path": "/sandbox/ok/a", "content": "x".repeat(100)}));
    assert_eq!(r["status"], "success", "{r}");
    let (r, _) =
        op(json!({"operation": "write", "file_path": "/sandbox/ok/b", "content": "x".repeat(101)}));
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("max_file_size (100 bytes)"),
        "{r}"
    );
    sh(&env, &id, "head -c 200 /dev/zero > /sandbox/ok/big; mkdir -p /sandbox/ok/secret; echo s > /sandbox/ok/secret/k; ln -s /etc /sandbox/ok/etc");
    let (r, _) = op(json!({"operation": "read", "file_path": "/sandbox/ok/big"}));
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("max_file_size (100 bytes)"),
        "{r}"
    );

    for path in [
        "/sandbox/other.txt",
        "/sandbox/ok/../other.txt",
        "/sandbox/oknot",
        "/sandbox/ok/secret/k",
        "/sandbox/ok/etc/hostname",
        "../etc/passwd",
    ] {
        for operation in ["read", "write", "create", "delete", "list", "exists"] {
            let (r, code) = op(json!({"operation": operation, "file_path": path, "content": "x"}));
            assert_eq!(code, 1, "{operation} {path}: {r}");
            assert!(
                r["error"].as_str().unwrap().starts_with("Access denied"),
                "{operation} {path}: {r}"
            );
        }
    }
    assert_eq!(
        sh(&env, &id, "cat /sandbox/ok/secret/k; ls /sandbox"),
        "s\nok\n"
    );

    let bad = env.state_dir.path().join("bad.json");
    std::fs::write(
        &bad,
        json!({"tools_config": {"file_operation": {"max_file_size": "big"}}}).to_string(),
    )
    .unwrap();
    let out = env
        .cmd()
        .args([
            "create",
            "--image",
            &crate::common::test_image(),
            "--config",
            bad.to_str().unwrap(),
        ])
        .args(env.label_args())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`max_file_size`"), "{}", stderr(&out));
    assert_eq!(
        env.containers().len(),
        1,
        "the refused config created nothing"
    );
}

#[test]
fn multi_code_executor_python_bash_and_cpp() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    let run = |args: Value| call_json(&env, &id, "multi_code_executor", &args);

    let (r, code) = run(json!({
        "language": " Python ",
        "code": "import helper\nprint(helper.VALUE)",
        "files": {"lib/helper.py": "VALUE = 41 + 1"}
    }));
    assert_eq!((r["output"].as_str(), code), (Some("42\n"), 0), "{r}");

    let (r, code) =
        run(json!({"language": "bash", "code": "echo \"$0 ${BASH_VERSION%%.*}\"; pwd"}));
    assert_eq!(code, 0, "{r}");
    let lines: Vec<&str> = r["output"].as_str().unwrap().lines().collect();
    assert_eq!(lines[0], "main.sh 5");
    assert!(lines[1].starts_with("/tmp/mce_"), "{r}");

    let (r, code) = run(json!({
        "language": "cpp",
        "code": "#include <iostream>\nint main(){ std::cout << \"cpp \" << __cplusplus << std::endl; return 0; }"
    }));
    assert_eq!(
        (r["output"].as_str(), code),
        (Some("cpp 201703\n"), 0),
        "{r}"
    );

    let (r, code) = run(json!({"language": "cpp", "code": "int main(){ return 7; }"}));
    assert_eq!((r["status"].as_str(), code), (Some("error"), 7));

    let (r, code) = run(json!({"language": "cpp", "code": "int main(){ return undefined_name; }"}));
    assert_eq!((r["status"].as_str(), code), (Some("error"), 1));
    assert!(
        r["error"].as_str().unwrap().contains("undefined_name"),
        "{r}"
    );

    let (r, code) =
        run(json!({"language": "cpp", "code": "int main(){}", "compile_timeout": 0.001}));
    assert_eq!(
        (r["status"].as_str(), code),
        (Some("timeout"), 124),
        "a compile timeout is a timeout"
    );
    assert_eq!(r["error"], "Compilation timed out after 0.001 seconds");

    let (r, code) = run(
        json!({"language": "python", "code": "print('go', flush=True)\nwhile True: pass", "run_timeout": 1}),
    );
    assert_eq!((r["status"].as_str(), code), (Some("timeout"), 124));
    assert_eq!(r["output"], "go\n");

    let (r, code) = run(json!({"language": "python", "code": "  "}));
    assert_eq!((r["error"].as_str(), code), (Some("Invalid input"), 1));

    assert_eq!(
        sh(&env, &id, "ls -A /tmp | grep mce_ || true"),
        "",
        "every work directory was removed"
    );
}

#[test]
fn multi_code_executor_refuses_an_unknown_language_before_uploading() {
    let env = TestEnv::new();
    let id = all_tools(&env);
    // With /tmp a file, any upload would fail: the refusal must come first.
    sh(&env, &id, "mv /tmp /tmp.real && touch /tmp");
    let (r, code) = call_json(
        &env,
        &id,
        "multi_code_executor",
        &json!({"language": "COBOL", "code": "x"}),
    );
    assert_eq!(
        (r["error"].as_str(), code),
        (Some("Unsupported language: COBOL"), 1)
    );
    let (r, _) = call_json(
        &env,
        &id,
        "multi_code_executor",
        &json!({"language": "python", "code": "print(1)"}),
    );
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("Execution failed: Failed to create workdir: /tmp/mce_"),
        "{r}"
    );
}

#[test]
fn output_is_capped_with_head_and_tail() {
    let env = TestEnv::new();
    let id = sandbox(
        &env,
        json!({"shell_executor": {}, "python_executor": {"max_output_size": 1000}}),
    );
    // `yes` prints as fast as it can until the timeout; what we keep stays bounded.
    let (r, code) = call_json(
        &env,
        &id,
        "shell_executor",
        &json!({"command": "yes", "timeout": 3}),
    );
    assert_eq!(code, 124);
    assert_eq!(r["metadata"]["truncated"], true);
    let output = r["output"].as_str().unwrap();
    assert!(
        output.len() <= 1024 * 1024 + 200,
        "{} bytes kept",
        output.len()
    );
    assert!(output.starts_with("y\ny\n"));
    assert!(output.contains("bytes omitted"));

    let code = "for i in range(1, 100001): print(i)";
    let (r, status) = call_json(&env, &id, "python_executor", &json!({ "code": code }));
    assert_eq!(status, 0);
    assert_eq!(r["metadata"]["truncated"], true);
    let output = r["output"].as_str().unwrap();
    assert!(output.len() < 1200, "{} bytes kept", output.len());
    assert!(output.starts_with("1\n2\n3\n"), "the head survives");
    assert!(output.ends_with("99999\n100000\n"), "the tail survives");

    let (r, _) = call_json(
        &env,
        &id,
        "python_executor",
        &json!({"code": "print('small')"}),
    );
    assert_eq!(r["metadata"]["truncated"], false);
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
    // --arg values are JSON when they parse, strings when the parameter wants one.
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

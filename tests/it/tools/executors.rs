//! python_executor, shell_executor and multi_code_executor on real Docker.

use super::*;

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

//! Messages that say what really happened: paused sandboxes, memory limits, sandboxes removed
//! under a command, commands that could not start, and kills that could not be checked.

use serde_json::{json, Value};

use crate::common::{docker, spawn_ready, stderr, stdout, wait_within, TestEnv};

#[test]
fn a_paused_sandbox_is_paused_not_stopped() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    assert!(docker(&["pause", &format!("enclave-{id}")])
        .status
        .success());
    let out = env.cmd().args(["exec", &id, "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("is not running (status: paused)"), "{err}");
    assert!(
        err.contains(&format!("docker unpause enclave-{id}")),
        "{err}"
    );
    assert!(!err.contains("docker start"), "{err}");
    let out = env.cmd().args(["ls", "--json"]).output().unwrap();
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let me = listed.iter().find(|s| s["id"] == id.as_str()).unwrap();
    assert_eq!(me["status"], "paused");
    assert!(docker(&["unpause", &format!("enclave-{id}")])
        .status
        .success());
}

#[test]
fn hitting_the_memory_limit_says_so() {
    let env = TestEnv::new();
    let id = env.create(&["--memory", "64m", "--tool", "python_executor"]);
    let hog = "x = bytearray(512 << 20); print(len(x))";
    let out = env
        .cmd()
        .args(["exec", &id, "--", "python3", "-c", hog])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the sandbox hit its memory limit"),
        "{}",
        stderr(&out)
    );

    let out = env
        .cmd()
        .args(["--json", "run-tool", &id, "python_executor", "--arg"])
        .arg(format!("code={hog}"))
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["status"], "error");
    assert_eq!(r["metadata"]["oom_killed"], true, "{r}");
    assert!(r["error"].as_str().unwrap().contains("memory limit"), "{r}");

    // A plain SIGKILL is not blamed on memory.
    let out = env
        .cmd()
        .args(["exec", &id, "kill -9 $$"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(137));
    assert!(!stderr(&out).contains("memory"), "{}", stderr(&out));
}

#[test]
fn a_sandbox_removed_under_a_command_is_named() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let child = spawn_ready(&env, &["exec", &id, "echo ready; sleep 60"]);
    assert!(docker(&["rm", "-f", &format!("enclave-{id}")])
        .status
        .success());
    let out = wait_within(child, 20, "exec whose sandbox was removed");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("sandbox `{id}` was removed while the command ran")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn commands_that_cannot_start_say_why_on_stderr() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let out = env
        .cmd()
        .args(["exec", &id, "--", "no-such-program"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        stdout(&out),
        "",
        "the engine's report is not the command's output"
    );
    assert!(
        stderr(&out).contains("executable file not found"),
        "{}",
        stderr(&out)
    );

    let out = env
        .cmd()
        .args(["exec", "-w", "/nope", &id, "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("working directory `/nope` does not exist in the sandbox"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_engine_hint_names_no_script_of_ours() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .arg("ls")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(err.contains("hint: start the engine"), "{err}");
    assert!(!err.contains("scripts/"), "{err}");
}

#[test]
fn a_timeout_claims_only_what_it_checked() {
    let env = TestEnv::new();
    // The docker exec path's kill, whose limits (it needs `grep`) this checks; the agent kills
    // without help from the image (tests/it/agent.rs).
    let out = env
        .cmd()
        .env("ENCLAVE_AGENT", "off")
        .arg("create")
        .args(["--image", &crate::common::test_image()])
        .args(env.label_args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let out = env
        .cmd()
        .args(["exec", "--timeout", "1", &id, "sleep 30 & sleep 30"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124));
    assert!(
        stderr(&out).contains("timed out after 1s; killed 3 processes"),
        "{}",
        stderr(&out)
    );

    // Without grep the kill cannot find what the command started: say so.
    let out = env
        .cmd()
        .args(["exec", &id, "rm -f $(command -v grep)"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env
        .cmd()
        .args(["exec", "--timeout", "1", &id, "sleep 30"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124));
    let err = stderr(&out);
    assert!(
        err.contains("could not check that what it started was killed"),
        "{err}"
    );
    assert!(!err.contains("were killed"), "{err}");
}

#[test]
fn file_operation_refuses_to_write_into_a_device() {
    let env = TestEnv::new();
    let id = env.create(&["--tool", "file_operation"]);
    let out = env
        .cmd()
        .args(["--json", "run-tool", &id, "file_operation", "--args", "-"])
        .write_stdin(
            json!({"operation": "write", "file_path": "/dev/null", "content": "lost"}).to_string(),
        )
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["status"], "error", "{r}");
    assert_eq!(r["error"], "Write failed: /dev/null is not a regular file");
}

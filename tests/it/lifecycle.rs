//! `create / ls / inspect / exec / run / rm` against a real engine.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    docker, docker_ids, signal_when_ready, stderr, stdout, test_image, TestEnv, LABEL_KEY,
};

#[test]
fn create_exec_rm_round_trip() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    assert_eq!(
        env.containers().len(),
        1,
        "one container carries the test label"
    );

    let out = env
        .cmd()
        .args(["exec", &id[..4], "echo hello"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "hello\n");
    assert_eq!(out.status.code(), Some(0));

    let out = env.cmd().args(["rm", &id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), id);
    assert!(env.containers().is_empty(), "rm leaves no container behind");
    assert!(
        ls_json(&env).iter().all(|s| s["id"] != id.as_str()),
        "rm forgets the sandbox"
    );
}

#[test]
fn exec_passes_exit_codes_and_separates_streams() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let out = env
        .cmd()
        .args(["exec", &id, "echo out; echo err >&2; exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");

    let missing = env
        .cmd()
        .args(["exec", &id, "--", "no-such-program"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(127), "{}", stderr(&missing));
    let not_exec = env
        .cmd()
        .args(["exec", &id, "--", "/etc/passwd"])
        .output()
        .unwrap();
    assert_eq!(not_exec.status.code(), Some(126));
    let shell_missing = env
        .cmd()
        .args(["exec", &id, "no-such-program"])
        .output()
        .unwrap();
    assert_eq!(shell_missing.status.code(), Some(127));
}

#[test]
fn argv_form_runs_without_a_shell() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let out = env
        .cmd()
        .args([
            "exec",
            &id,
            "--",
            "python3",
            "-c",
            "import sys; print(sys.argv[1:])",
            "a b",
            "$HOME",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "['a b', '$HOME']\n", "{}", stderr(&out));

    let out = env
        .cmd()
        .args(["exec", &id, "echo $((6*7)) | cat"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "42\n", "a single string runs through sh -c");
}

#[test]
fn stdin_is_forwarded_and_eof_closes_it() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let out = env
        .cmd()
        .args(["exec", &id, "--", "cat"])
        .write_stdin("data\nmore\n")
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "data\nmore\n");
    assert_eq!(out.status.code(), Some(0));

    let out = env
        .cmd()
        .args(["exec", &id, "wc -c"])
        .write_stdin(vec![b'x'; 300_000])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "300000");
}

#[test]
fn exec_env_and_workdir() {
    let env = TestEnv::new();
    let id = env.create(&["--env", "FROM_CREATE=1"]);
    let out = env
        .cmd()
        .args([
            "exec",
            "-e",
            "FROM_EXEC=2",
            "-w",
            "/tmp",
            &id,
            "echo $FROM_CREATE $FROM_EXEC $(pwd)",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "1 2 /tmp\n", "{}", stderr(&out));
}

/// A marker file that a killed process would have written later must never appear.
fn assert_marker_never_appears(env: &TestEnv, id: &str, marker: &str) {
    std::thread::sleep(Duration::from_secs(4));
    let out = env
        .cmd()
        .args([
            "exec",
            id,
            &format!("test -e {marker} && echo present || echo absent"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out),
        "absent\n",
        "{marker} appeared: the process survived the timeout"
    );
}

fn exec_with_one_second_timeout(env: &TestEnv, id: &str, command: &str) -> std::process::Output {
    env.cmd()
        .args(["exec", "--timeout", "1", id, command])
        .output()
        .unwrap()
}

#[test]
fn timeout_kills_grandchildren_and_keeps_output() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let out = exec_with_one_second_timeout(
        &env,
        &id,
        "echo started; bash -c '(sleep 2; touch /tmp/grandchild) & wait'",
    );
    assert_eq!(out.status.code(), Some(124));
    assert_eq!(
        stdout(&out),
        "started\n",
        "output produced before the kill is kept"
    );
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert_marker_never_appears(&env, &id, "/tmp/grandchild");
}

#[test]
fn timeout_kills_a_setsid_child() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let out = exec_with_one_second_timeout(
        &env,
        &id,
        "setsid sh -c 'sleep 2; touch /tmp/escaped' & sleep 100",
    );
    assert_eq!(out.status.code(), Some(124));
    assert_marker_never_appears(&env, &id, "/tmp/escaped");
    let ps = env
        .cmd()
        .args(["exec", &id, "ps -eo args"])
        .output()
        .unwrap();
    assert!(
        !stdout(&ps).contains("sleep"),
        "leftover processes:\n{}",
        stdout(&ps)
    );
}

#[test]
fn run_is_ephemeral() {
    let env = TestEnv::new();
    let label = env.label_args();
    let out = env
        .cmd()
        .args([
            "run",
            "--image",
            &test_image(),
            &label[0],
            &label[1],
            "--",
            "python3",
            "-c",
            "print(6*7)",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "42\n", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
    assert!(env.containers().is_empty(), "run removes its sandbox");

    let out = env
        .cmd()
        .args([
            "run",
            "--image",
            &test_image(),
            &label[0],
            &label[1],
            "exit 7",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(env.containers().is_empty());

    let run = |args: &[&str], stdin: &str| {
        env.cmd()
            .args(["run", "--image", &test_image(), &label[0], &label[1]])
            .args(args)
            .write_stdin(stdin)
            .output()
            .unwrap()
    };
    let out = run(&["--", "cat"], "piped\n");
    assert_eq!(stdout(&out), "piped\n", "stdin reaches the command");
    let out = run(&["--", "no-such-program"], "");
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    let out = run(&["--timeout", "1", "echo early; sleep 30"], "");
    assert_eq!(out.status.code(), Some(124));
    assert_eq!(stdout(&out), "early\n");
    assert!(
        env.containers().is_empty(),
        "a timed-out run leaves no container"
    );
    let tracked: Vec<Value> = ls_json(&env)
        .into_iter()
        .filter(|s| s["tracked"] == true)
        .collect();
    assert!(
        tracked.is_empty(),
        "run leaves nothing in the state file: {tracked:?}"
    );
}

/// Starts `enclave args…`, waits until it printed `ready`, presses Ctrl-C, returns its exit code.
fn interrupt_when_ready(env: &TestEnv, args: &[&str]) -> Option<i32> {
    signal_when_ready(env, args, "INT").status.code()
}

#[test]
fn interrupted_run_removes_its_container() {
    let env = TestEnv::new();
    let label = env.label_args();
    let image = test_image();
    let run = [
        "run",
        "--image",
        &image,
        &label[0],
        &label[1],
        "echo ready; sleep 60",
    ];
    assert_eq!(interrupt_when_ready(&env, &run), Some(130));
    assert!(
        env.containers().is_empty(),
        "Ctrl-C removed the container of `run`"
    );
}

#[test]
fn interrupted_exec_kills_the_command() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let exec = ["exec", &id, "echo ready; sleep 2; touch /tmp/survived"];
    assert_eq!(interrupt_when_ready(&env, &exec), Some(130));
    assert_marker_never_appears(&env, &id, "/tmp/survived");
    assert_eq!(
        env.containers().len(),
        1,
        "exec leaves the sandbox itself alone"
    );
}

#[test]
fn concurrent_creates_all_land_in_the_state_file() {
    let env = TestEnv::new();
    let label = env.label_args();
    let children: Vec<_> = (0..32)
        .map(|_| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("enclave"))
                .env("ENCLAVE_STATE_DIR", env.state_dir.path())
                .args(["create", "--image", &test_image(), &label[0], &label[1]])
                .args(["--memory", "64m", "--cpus", "0.2"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut created = BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        created.insert(stdout(&out).trim().to_string());
    }
    assert_eq!(created.len(), 32);

    let out = env.cmd().args(["ls", "--json"]).output().unwrap();
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let tracked: BTreeSet<String> = listed
        .iter()
        .filter(|s| s["tracked"] == true)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tracked, created,
        "the state file holds exactly the 32 sandboxes"
    );
    for s in listed.iter().filter(|s| s["tracked"] == true) {
        assert_eq!(s["status"], "running");
    }
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(env.state_dir.path().join("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["sandboxes"].as_object().unwrap().len(), 32);

    let out = env.cmd().args(["rm", "--all"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.containers().is_empty());
}

#[test]
fn ls_reconciles_with_docker() {
    let env = TestEnv::new();
    let gone = env.create(&[]);
    let kept = env.create(&[]);
    let container = env.containers();
    assert_eq!(container.len(), 2);
    let rm = docker(&["rm", "-f", &format!("enclave-{gone}")]);
    assert!(rm.status.success());

    let listed = ls_json(&env);
    let keys: Vec<_> = listed[0].as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "id",
            "type",
            "image",
            "status",
            "tools",
            "created_at",
            "container_id",
            "location",
            "tracked"
        ],
        "the documented shape of `ls --json`"
    );
    assert_eq!(status_of(&listed, &gone), "gone");
    assert_eq!(status_of(&listed, &kept), "running");

    let out = env.cmd().args(["exec", &gone, "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no longer exists"),
        "{}",
        stderr(&out)
    );

    let out = env.cmd().args(["rm", &gone]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("forgotten"));
    assert!(ls_json(&env).iter().all(|s| s["id"] != gone.as_str()));

    // A labelled container the state file does not know is still listed, from its labels.
    let other = TestEnv::new();
    let listed = ls_json(&other);
    let entry = listed
        .iter()
        .find(|s| s["id"] == kept.as_str())
        .expect("listed from labels");
    assert_eq!(entry["tracked"], false);
    assert_eq!(entry["image"], test_image().as_str());
    let out = other.cmd().args(["inspect", &kept]).output().unwrap();
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["config"]["image"], test_image().as_str());
}

fn ls_json(env: &TestEnv) -> Vec<Value> {
    let out = env.cmd().args(["ls", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn status_of(listed: &[Value], id: &str) -> String {
    listed
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed"))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn inspect_has_ms_enclave_shape() {
    let env = TestEnv::new();
    let id = env.create(&["--tool", "python_executor", "--memory", "256m"]);
    let out = env.cmd().args(["inspect", &id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<_> = info.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "id",
            "status",
            "type",
            "config",
            "created_at",
            "updated_at",
            "metadata",
            "available_tools",
            // enclave's own, after ms-enclave's keys.
            "agent"
        ]
    );
    assert_eq!(info["id"], id.as_str());
    assert_eq!(info["status"], "running");
    assert_eq!(info["type"], "docker");
    assert_eq!(info["config"]["memory_limit"], "256m");
    assert_eq!(
        info["config"]["tools_config"],
        serde_json::json!({"python_executor": {}})
    );
    assert!(
        info["config"].get("command").is_none(),
        "null fields are omitted"
    );
    assert_eq!(info["metadata"]["container_id"].as_str().unwrap().len(), 64);
    assert_eq!(
        info["available_tools"]["python_executor"]["function"]["name"],
        "python_executor"
    );
}

/// Forks up to 40 sleeping children and prints how many forks succeeded.
const FORK_40: &str = "import os, time
ok = 0
for _ in range(40):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    ok += 1
print(ok)";

#[test]
fn sandboxes_get_safe_defaults() {
    let env = TestEnv::new();
    let id = env.create(&["--memory", "128m", "--cpus", "0.5", "--port", "18080:80"]);
    let out = docker(&[
        "inspect",
        "--format",
        "{{json .HostConfig}}",
        &format!("enclave-{id}"),
    ]);
    let host: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges"])
    );
    assert_eq!(host["PidsLimit"], 1024);
    assert_eq!(host["Memory"], 128 << 20);
    assert_eq!(
        host["MemorySwap"],
        128 << 20,
        "no swap beyond the memory limit"
    );
    assert_eq!(host["NanoCpus"], 500_000_000, "half a CPU");
    assert_eq!(host["Privileged"], false);
    // An init as PID 1: docker-init, or the agent in its place.
    let name = format!("enclave-{id}");
    let entrypoint = docker(&["inspect", "--format", "{{json .Config.Entrypoint}}", &name]);
    assert!(
        host["Init"] == true || stdout(&entrypoint).contains("/.enclave/enclave-agent"),
        "{host}"
    );
    assert_eq!(host["PortBindings"]["80/tcp"][0]["HostIp"], "127.0.0.1");

    let out = docker(&[
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &format!("enclave-{id}"),
    ]);
    let labels: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(labels["enclave.id"], id.as_str());
    assert_eq!(labels["enclave.type"], "docker");

    let pids = env
        .cmd()
        .args(["create", "--image", &test_image()])
        .args(env.label_args())
        .args(["--pids-limit", "20", "--no-network"])
        .output()
        .unwrap();
    let small = stdout(&pids).trim().to_string();
    let out = env
        .cmd()
        .args(["exec", &small, "--", "python3", "-c", FORK_40])
        .output()
        .unwrap();
    let forked: u32 = stdout(&out).trim().parse().expect("a count");
    assert!(
        forked < 20,
        "pids limit not applied: {forked} children forked"
    );
    let net = docker(&[
        "inspect",
        "--format",
        "{{.HostConfig.NetworkMode}}",
        &format!("enclave-{small}"),
    ]);
    assert_eq!(stdout(&net).trim(), "none");
}

#[test]
fn rm_kills_at_once_without_a_sigterm_grace() {
    let env = TestEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "image": test_image(),
        "volumes": {dir.path().to_str().unwrap(): {"bind": "/mnt", "mode": "rw"}},
        // PID 1's child writes a marker if it is ever asked to stop politely.
        "command": ["sh", "-c", "trap 'touch /mnt/got-sigterm; exit 0' TERM; while :; do sleep 0.2; done"],
    });
    let file = dir.path().join("config.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let id = env.create(&["--config", file.to_str().unwrap()]);
    let out = env.cmd().args(["rm", &id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.containers().is_empty());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !dir.path().join("got-sigterm").exists(),
        "rm sent SIGTERM and waited for a grace period instead of killing"
    );
}

#[test]
fn rm_several_and_all() {
    let env = TestEnv::new();
    let a = env.create(&[]);
    let b = env.create(&[]);
    let c = env.create(&[]);
    let out = env.cmd().args(["rm", "--json", &a, &b]).output().unwrap();
    let removed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(removed[0]["id"], a.as_str());
    assert_eq!(removed[0]["result"], "removed");
    assert_eq!(removed[1]["id"], b.as_str());
    assert_eq!(env.containers().len(), 1);
    let out = env.cmd().args(["rm", "--all"]).output().unwrap();
    assert!(stdout(&out).contains(&c));
    assert!(env.containers().is_empty());
}

mod bad_input {
    use super::*;

    fn assert_nothing_created(env: &TestEnv) {
        assert!(env.containers().is_empty(), "a container was left behind");
        let leaked = docker_ids(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label={LABEL_KEY}={}", env.run_label),
        ]);
        assert!(leaked.is_empty());
    }

    fn create_fails(env: &TestEnv, extra: &[&str]) -> std::process::Output {
        let out = env
            .cmd()
            .arg("create")
            .args(env.label_args())
            .args(extra)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(stdout(&out).is_empty() || stdout(&out).contains("\"error\""));
        assert_nothing_created(env);
        out
    }

    #[test]
    fn unknown_id() {
        let env = TestEnv::new();
        let out = env
            .cmd()
            .args(["exec", "zzzzzzzz", "true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains("sandbox `zzzzzzzz` not found"), "{err}");
        assert!(err.contains("hint: `enclave ls`"), "{err}");
    }

    #[test]
    fn ambiguous_prefix_lists_candidates() {
        let env = TestEnv::new();
        // Ids are random; two that share a prefix are written into the state file directly.
        let ids = ["qq2a3b4c", "qq5d6e7f"];
        let record = |id: &str| {
            serde_json::json!({
                "id": id, "location": {"kind": "docker"}, "container_id": null, "type": "docker",
                "image": test_image(), "tools": [], "config": {},
                "created_at": "2026-01-01T00:00:00Z"
            })
        };
        let state = serde_json::json!({
            "version": 1,
            "sandboxes": {ids[0]: record(ids[0]), ids[1]: record(ids[1])}
        });
        std::fs::write(env.state_dir.path().join("state.json"), state.to_string()).unwrap();
        let out = env.cmd().args(["inspect", "qq"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains("ambiguous"), "{err}");
        for id in &ids {
            assert!(err.contains(id), "candidate {id} not listed: {err}");
        }
    }

    #[test]
    fn invalid_memory_limit() {
        let env = TestEnv::new();
        let out = create_fails(&env, &["--image", &test_image(), "--memory", "4gb"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("memory_limit `4gb` is not valid"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn unknown_tool() {
        let env = TestEnv::new();
        let out = create_fails(&env, &["--image", &test_image(), "--tool", "bogus_tool"]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains("unknown tool `bogus_tool`"), "{err}");
        assert!(
            err.contains("python_executor"),
            "the known tools are listed: {err}"
        );
    }

    #[test]
    fn image_that_cannot_be_pulled() {
        let env = TestEnv::new();
        let out = create_fails(&env, &["--image", "enclave-test-does-not-exist:never"]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("image `enclave-test-does-not-exist:never` is not available locally and could not be pulled"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_start_removes_the_container() {
        let env = TestEnv::new();
        // A host port that is taken makes the start fail after the container was created.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let publish = format!("127.0.0.1:{port}:80");
        let out = create_fails(&env, &["--image", &test_image(), "--port", &publish]);
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("starting the container"),
            "{}",
            stderr(&out)
        );
        assert!(
            ls_json(&env).iter().all(|s| s["tracked"] == false),
            "nothing was recorded"
        );
    }

    #[test]
    fn a_stopped_sandbox_says_so() {
        let env = TestEnv::new();
        let id = env.create(&["--tool", "shell_executor"]);
        assert!(docker(&["stop", "-t", "0", &format!("enclave-{id}")])
            .status
            .success());
        let out = env.cmd().args(["exec", &id, "true"]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("sandbox `{id}` is not running (status: stopped)")),
            "{err}"
        );
        assert!(err.contains(&format!("docker start enclave-{id}")), "{err}");
        let out = env
            .cmd()
            .args(["run-tool", &id, "shell_executor", "--arg", "command=true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("is not running"), "{}", stderr(&out));
        let listed = ls_json(&env);
        assert_eq!(status_of(&listed, &id), "stopped");
    }

    #[test]
    fn docker_not_running() {
        let env = TestEnv::new();
        let out = env
            .cmd()
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args(["ls"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125));
        let err = stderr(&out);
        assert!(err.contains("cannot reach the Docker engine"), "{err}");
        assert!(err.contains("/nonexistent/docker.sock"), "{err}");
        assert!(err.contains("hint: start the engine"), "{err}");
    }

    #[test]
    fn malformed_config_says_where() {
        let env = TestEnv::new();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.json");
        std::fs::write(&file, "{\n  \"image\": \"x\",\n  \"memory_limit\": \n}").unwrap();
        let out = create_fails(&env, &["--config", file.to_str().unwrap()]);
        let err = stderr(&out);
        assert!(err.contains("bad.json"), "{err}");
        assert!(err.contains("line 4"), "{err}");

        let out = env
            .cmd()
            .args(["create", "--config", "-"])
            .write_stdin(r#"{"cpu_limit": 0}"#)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("cpu_limit must be greater than 0"),
            "{}",
            stderr(&out)
        );
    }

    #[test]
    fn json_errors_go_to_stdout_too() {
        let env = TestEnv::new();
        let out = env
            .cmd()
            .args(["--json", "inspect", "zzzzzzzz"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let body: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(body["error"]["kind"], "not_found");
        assert!(body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("enclave ls"));
    }

    #[test]
    fn bad_timeout_and_missing_command() {
        let env = TestEnv::new();
        let out = env
            .cmd()
            .args(["exec", "--timeout", "0", "zzzzzzzz", "true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("--timeout must be a positive number"),
            "{}",
            stderr(&out)
        );
        let out = env.cmd().args(["exec", "zzzzzzzz"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("no command given"),
            "{}",
            stderr(&out)
        );
    }
}

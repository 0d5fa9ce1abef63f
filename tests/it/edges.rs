//! The sharp edges a new user hit, each pinned by the behaviour they should have seen:
//! closed pipes, signals, a held state lock, a broken state file, `--json` documents, ids,
//! and messages that say what really happened.

use std::os::unix::net::UnixListener;
use std::sync::mpsc;

use serde_json::{json, Value};

use crate::common::{
    docker, hold_state_lock, poll_until, read_stdout, send_signal, spawn, spawn_ready, spawn_with,
    stderr, stdout, test_image, wait_within, TestEnv,
};

/// What `ps` shows in the sandbox: one command name per line.
fn processes(env: &TestEnv, id: &str) -> String {
    let out = env
        .cmd()
        .args(["exec", id, "ps -eo comm"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn a_closed_pipe_stops_the_command_quietly() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    // `enclave exec ID yes | head -1`
    let mut child = spawn(&env, &["exec", &id, "yes"]);
    assert_eq!(read_stdout(&mut child, 2), b"y\n");
    drop(child.stdout.take());
    let out = wait_within(child, 15, "exec into a closed pipe");
    assert_eq!(out.status.code(), Some(141), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "a broken pipe is not an error");
    assert!(
        !processes(&env, &id).lines().any(|p| p == "yes"),
        "`yes` still runs in the sandbox"
    );
}

#[test]
fn a_stalled_reader_does_not_hold_off_the_timeout() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    // Nobody reads: the pipe fills at once, and every write of ours waits.
    let child = spawn(&env, &["exec", "--timeout", "2", &id, "yes"]);
    let out = wait_within(child, 30, "a timed-out exec whose reader stalled");
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("timed out after 2s"),
        "{}",
        stderr(&out)
    );
    assert!(!processes(&env, &id).lines().any(|p| p == "yes"));
}

#[test]
fn empty_and_blank_ids_are_usage_errors_everywhere() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    for args in [
        &["rm", ""][..],
        &["rm", " "],
        &["rm", &id, ""],
        &["exec", "", "true"],
        &["inspect", ""],
        &["tools", ""],
        &["run-tool", "", "shell_executor"],
    ] {
        let out = env.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("a sandbox id must not be empty"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(env.containers().len(), 1, "`rm \"\"` removed a sandbox");
}

/// A Docker socket that accepts connections and never answers: a hung engine.
struct HungEngine {
    _dir: tempfile::TempDir,
    host: String,
    accepted: mpsc::Receiver<()>,
}

impl HungEngine {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (tx, accepted) = mpsc::channel();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                held.push(conn);
                if tx.send(()).is_err() {
                    return;
                }
            }
        });
        HungEngine {
            host: format!("unix://{}", path.display()),
            _dir: dir,
            accepted,
        }
    }
}

#[test]
fn the_first_signal_stops_every_command_on_a_hung_engine() {
    let env = TestEnv::new();
    let engine = HungEngine::start();
    let image = test_image();
    let commands: [(&[&str], &str, i32); 8] = [
        (&["ls"], "INT", 130),
        (&["inspect", "k3x9"], "INT", 130),
        (&["tools", "k3x9"], "INT", 130),
        (&["rm", "k3x9"], "INT", 130),
        (&["exec", "k3x9", "true"], "TERM", 143),
        (&["run-tool", "k3x9", "shell_executor"], "HUP", 129),
        (&["create", "--image", &image], "INT", 130),
        (&["--json", "ls"], "TERM", 143),
    ];
    for (args, signal, code) in commands {
        let child = spawn_with(&env, args, &[("DOCKER_HOST", &engine.host)]);
        engine
            .accepted
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("enclave connects to the engine");
        send_signal(child.id(), signal);
        // Without the fix these sit out the 10 s connect limit and exit 125.
        let out = wait_within(child, 5, &format!("{args:?} after SIG{signal}"));
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        if args[0] == "--json" {
            let body: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(body["error"]["kind"], "interrupted");
        }
    }
}

#[test]
fn a_held_state_lock_is_waited_for_a_bounded_time_and_named() {
    let env = TestEnv::new();
    let _held = hold_state_lock(&env);
    let image = test_image();
    let label = env.label_args();
    let child = spawn_with(
        &env,
        &["create", "--image", &image, &label[0], &label[1]],
        &[("ENCLAVE_LOCK_WAIT", "1")],
    );
    let out = wait_within(child, 30, "create with the state lock held");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another enclave process holds the lock on the state file"),
        "{}",
        stderr(&out)
    );
    assert!(
        env.containers().is_empty(),
        "the container made before the lock gave out is removed"
    );
}

#[test]
fn create_stopped_by_a_signal_leaks_nothing() {
    let image = test_image();
    for signal in ["INT", "TERM", "HUP"] {
        let env = TestEnv::new();
        // The lock is held while the container already runs: the signal lands between the two.
        let held = hold_state_lock(&env);
        let label = env.label_args();
        let child = spawn(&env, &["create", "--image", &image, &label[0], &label[1]]);
        poll_until("the container exists", 30, || !env.containers().is_empty());
        send_signal(child.id(), signal);
        let out = wait_within(child, 20, &format!("create after SIG{signal}"));
        drop(held);
        let code = match signal {
            "INT" => 130,
            "TERM" => 143,
            _ => 129,
        };
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        assert_eq!(stdout(&out), "", "no id printed");
        assert!(
            env.containers().is_empty(),
            "SIG{signal} during create leaked a container"
        );
    }
}

#[test]
fn run_stopped_by_sigterm_removes_its_container_and_the_engine_backs_it_up() {
    let env = TestEnv::new();
    let image = test_image();
    let label = env.label_args();
    let child = spawn_ready(
        &env,
        &[
            "run",
            "--image",
            &image,
            &label[0],
            &label[1],
            "echo ready; sleep 60",
        ],
    );
    let containers = env.containers();
    assert_eq!(containers.len(), 1);
    let auto_remove = docker(&[
        "inspect",
        "--format",
        "{{.HostConfig.AutoRemove}}",
        &containers[0],
    ]);
    assert_eq!(stdout(&auto_remove).trim(), "true", "the engine's backstop");
    send_signal(child.id(), "TERM");
    let out = wait_within(child, 20, "run after SIGTERM");
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert!(env.containers().is_empty());

    // Killed outright, enclave cleans up nothing; the engine still removes the container once
    // its command ends.
    let mut child = spawn_ready(
        &env,
        &[
            "run",
            "--image",
            &image,
            &label[0],
            &label[1],
            "echo ready; sleep 1",
        ],
    );
    send_signal(child.id(), "KILL");
    let _ = child.wait();
    poll_until("the engine removed the container", 30, || {
        env.containers().is_empty()
    });
}

#[test]
fn exec_and_run_tool_stopped_by_sigterm_or_sighup_kill_their_commands() {
    let env = TestEnv::new();
    let id = env.create(&["--tool", "shell_executor"]);
    for (args, signal, marker) in [
        (
            vec![
                "exec",
                id.as_str(),
                "echo ready; sleep 3; touch /tmp/exec-survived",
            ],
            "TERM",
            "/tmp/exec-survived",
        ),
        (
            vec![
                "run-tool",
                id.as_str(),
                "shell_executor",
                "--arg",
                "command=echo ready >/tmp/started; sleep 3; touch /tmp/tool-survived",
            ],
            "HUP",
            "/tmp/tool-survived",
        ),
    ] {
        let mut child = spawn(&env, &args);
        if args[0] == "exec" {
            assert_eq!(read_stdout(&mut child, 6), b"ready\n");
        } else {
            poll_until("the tool's command started", 20, || {
                let out = docker(&[
                    "exec",
                    &format!("enclave-{id}"),
                    "test",
                    "-e",
                    "/tmp/started",
                ]);
                out.status.success()
            });
        }
        send_signal(child.id(), signal);
        let out = wait_within(child, 20, &format!("{} after SIG{signal}", args[0]));
        let code = if signal == "TERM" { 143 } else { 129 };
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        std::thread::sleep(std::time::Duration::from_secs(4));
        let check = docker(&["exec", &format!("enclave-{id}"), "test", "-e", marker]);
        assert!(
            !check.status.success(),
            "{marker} appeared: the command survived SIG{signal}"
        );
    }
}

#[test]
fn ls_marks_what_is_yours_and_ls_q_lists_only_that() {
    let mine = TestEnv::new();
    let theirs = TestEnv::new();
    let my_id = mine.create(&[]);
    let their_id = theirs.create(&[]);
    let out = mine.cmd().args(["ls", "-q"]).output().unwrap();
    let ids = stdout(&out);
    assert!(ids.lines().any(|l| l == my_id), "{ids}");
    assert!(
        !ids.lines().any(|l| l == their_id),
        "`ls -q` lists someone else's sandbox: {ids}"
    );
    let out = mine.cmd().args(["ls", "-q", "--all"]).output().unwrap();
    assert!(stdout(&out).lines().any(|l| l == their_id));

    let out = mine.cmd().arg("ls").output().unwrap();
    let table = stdout(&out);
    assert!(
        table.lines().next().unwrap().ends_with("TRACKED"),
        "{table}"
    );
    let row = |id: &str| {
        table
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap()
            .to_string()
    };
    assert!(row(&my_id).ends_with("yes"), "{table}");
    assert!(row(&their_id).ends_with("no"), "{table}");
}

#[test]
fn an_empty_or_corrupt_state_file_is_rebuilt_from_labels_once() {
    for broken in ["", "{\"version\": 1, \"sandb"] {
        let env = TestEnv::new();
        let id = env.create(&[]);
        let state = env.state_dir.path().join("state.json");
        std::fs::write(&state, broken).unwrap();

        let out = env
            .cmd()
            .args(["exec", &id, "echo still here"])
            .output()
            .unwrap();
        assert_eq!(stdout(&out), "still here\n", "{}", stderr(&out));
        assert_eq!(out.status.code(), Some(0));
        let warning = stderr(&out);
        assert!(warning.contains("unreadable"), "{warning}");
        assert!(
            warning.contains("recorded again from their labels"),
            "{warning}"
        );

        let listed: Value =
            serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
        assert!(listed["sandboxes"][&id].is_object(), "rebuilt: {listed}");
        let backups: Vec<_> = std::fs::read_dir(env.state_dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("state.json.unreadable-")
            })
            .collect();
        assert_eq!(backups.len(), 1, "one backup of what was unreadable");
        assert_eq!(std::fs::read_to_string(backups[0].path()).unwrap(), broken);

        let again = env.cmd().args(["ls", "-q"]).output().unwrap();
        assert_eq!(stderr(&again), "", "said once");
        assert_eq!(stdout(&again).trim(), id);
    }
}

#[test]
fn rm_with_an_unwritable_state_file_kills_nothing() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    // A directory where the lock file should be: no process can open it for writing, root
    // included.
    let lock = env.state_dir.path().join("state.lock");
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    let out = env.cmd().args(["--json", "rm", &id]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let body: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", stdout(&out)));
    assert_eq!(body[0]["id"], id.as_str());
    assert_eq!(body[0]["result"], "error");
    let message = body[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("was not removed: the state file"),
        "{body}"
    );
    assert!(
        body[0]["error"]["causes"]
            .to_string()
            .contains("state.lock"),
        "{body}"
    );
    assert_eq!(env.containers().len(), 1, "the sandbox was killed anyway");
}

#[test]
fn json_output_is_one_document_always() {
    let env = TestEnv::new();
    let id = env.create(&["--tool", "shell_executor"]);

    let out = env
        .cmd()
        .args(["--json", "ls", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let body: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("usage error: not JSON ({e}): {}", stdout(&out)));
    assert_eq!(body["error"]["kind"], "usage");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--bogus"));

    let out = env
        .cmd()
        .args(["--json", "rm", "zzzzzzzz", &id])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let body: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("rm: not one JSON document ({e}): {}", stdout(&out)));
    assert_eq!(body[0]["result"], "error");
    assert_eq!(body[0]["error"]["kind"], "not_found");
    assert_eq!(body[1], json!({"id": id, "result": "removed"}));

    let id = env.create(&["--tool", "shell_executor"]);
    // The key is there, null, when a tool call times out (as documented).
    let out = env
        .cmd()
        .args([
            "--json",
            "run-tool",
            &id,
            "shell_executor",
            "--arg",
            "command=sleep 5",
        ])
        .args(["--arg", "timeout=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124));
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "timeout");
    assert!(
        result["metadata"]
            .as_object()
            .unwrap()
            .contains_key("exit_code"),
        "{result}"
    );
    assert_eq!(result["metadata"]["exit_code"], Value::Null);
    assert_eq!(result["metadata"]["kill_verified"], true, "{result}");

    let child = spawn(
        &env,
        &[
            "--json",
            "run-tool",
            &id,
            "shell_executor",
            "--arg",
            "command=touch /tmp/started; sleep 30",
        ],
    );
    poll_until("the tool's command started", 20, || {
        docker(&[
            "exec",
            &format!("enclave-{id}"),
            "test",
            "-e",
            "/tmp/started",
        ])
        .status
        .success()
    });
    send_signal(child.id(), "INT");
    let out = wait_within(child, 20, "run-tool --json after Ctrl-C");
    assert_eq!(out.status.code(), Some(130));
    let result: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("run-tool: not JSON ({e}): {}", stdout(&out)));
    assert_eq!(result["status"], "cancelled");

    let child = spawn(&env, &["--json", "exec", &id, "echo out; sleep 30"]);
    // With --json the output is captured, so watch for the command in the sandbox.
    poll_until("the exec started", 20, || {
        stdout(&docker(&[
            "exec",
            &format!("enclave-{id}"),
            "ps",
            "-eo",
            "args",
        ]))
        .contains("sleep 30")
    });
    send_signal(child.id(), "INT");
    let out = wait_within(child, 20, "exec --json after Ctrl-C");
    assert_eq!(out.status.code(), Some(130));
    let result: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("exec: not JSON ({e}): {}", stdout(&out)));
    assert_eq!(result["status"], "cancelled");
    assert_eq!(result["stdout"], "out\n");
    assert!(result.as_object().unwrap().contains_key("exit_code"));
}

#[test]
fn exec_json_reports_how_the_command_ended() {
    let env = TestEnv::new();
    let id = env.create(&[]);
    let out = env
        .cmd()
        .args(["--json", "exec", &id, "echo hi; echo oops >&2; exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["status"], "error");
    assert_eq!(r["exit_code"], 3);
    assert_eq!(r["stdout"], "hi\n");
    assert_eq!(r["stderr"], "oops\n");

    let out = env
        .cmd()
        .args(["--json", "exec", "--timeout", "1", &id, "sleep 10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["status"], "timeout");
    assert!(r.as_object().unwrap().contains_key("exit_code"));
    assert_eq!(r["exit_code"], Value::Null);
    assert!(r["note"].as_str().unwrap().contains("timed out after 1s"));
}

#[test]
fn a_string_command_in_a_config_is_split_as_a_shell_would() {
    let env = TestEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"command": "sh -c 'trap \"exit 0\" TERM; while :; do sleep 1; done'"}).to_string(),
    )
    .unwrap();
    let id = env.create(&["--config", config.to_str().unwrap()]);
    let cmd = docker(&[
        "inspect",
        "--format",
        "{{json .Config.Cmd}}",
        &format!("enclave-{id}"),
    ]);
    let argv: Value = serde_json::from_slice(&cmd.stdout).unwrap();
    assert_eq!(
        argv,
        json!([
            "sh",
            "-c",
            "trap \"exit 0\" TERM; while :; do sleep 1; done"
        ])
    );
    let out = env.cmd().args(["exec", &id, "echo up"]).output().unwrap();
    assert_eq!(stdout(&out), "up\n", "the sandbox runs its command");
}

#[test]
fn a_json_string_literal_in_an_arg_stays_text() {
    let env = TestEnv::new();
    let id = env.create(&["--tool", "file_operation", "--tool", "shell_executor"]);
    let out = env
        .cmd()
        .args([
            "run-tool",
            &id,
            "file_operation",
            "--arg",
            "operation=write",
        ])
        .args([
            "--arg",
            "file_path=/tmp/q.txt",
            "--arg",
            r#"content="quoted""#,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env
        .cmd()
        .args(["exec", &id, "cat /tmp/q.txt"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), r#""quoted""#);
    // A parameter that takes a list still reads JSON.
    let out = env
        .cmd()
        .args([
            "run-tool",
            &id,
            "shell_executor",
            "--arg",
            r#"command=["echo","a b"]"#,
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "a b\n");
}

#[test]
fn configs_that_would_misbehave_are_refused_before_anything_is_made() {
    let env = TestEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-there");
    let missing_volume = format!("{}:/data", missing.display());
    let cases: Vec<(Vec<&str>, Value, &str)> = vec![
        (vec![], json!({"pids_limit": -5}), "pids_limit"),
        (
            vec![],
            json!({"extra_hosts": {"evil\n1.2.3.4 bank": "1.2.3.4"}}),
            "extra_hosts",
        ),
        (
            vec![],
            json!({"extra_hosts": {"db": "not-an-ip"}}),
            "the address of `db`",
        ),
        (vec![], json!({"env_vars": {"A=B": "x"}}), "env_vars: `A=B`"),
        (vec![], json!({"labels": {"": "x"}}), "labels: a label key"),
        (
            vec![],
            json!({"image": "Not A Valid/Image"}),
            "is not a valid reference",
        ),
        (
            vec![],
            json!({"tools_config": {"shell_executor": {"name": "my shell"}}}),
            "is not one model APIs accept",
        ),
        (vec!["--cpus", "512"], json!({}), "cpu_limit 512"),
        (
            vec!["--volume", &missing_volume],
            json!({}),
            "the host path does not exist",
        ),
    ];
    for (flags, config, needle) in cases {
        let file = dir.path().join("c.json");
        let mut config = config;
        if config.get("image").is_none() {
            config["image"] = json!(test_image());
        }
        std::fs::write(&file, config.to_string()).unwrap();
        let out = env
            .cmd()
            .arg("create")
            .args(env.label_args())
            .args(["--config", file.to_str().unwrap()])
            .args(&flags)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{config} {flags:?}: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(
            err.contains("invalid configuration"),
            "{config} {flags:?}: {err}"
        );
        assert!(err.contains(needle), "{config} {flags:?}: {err}");
        assert!(
            env.containers().is_empty(),
            "{config} {flags:?} left a container"
        );
    }
    assert!(
        !missing.exists(),
        "the engine created the missing host path"
    );

    let out = env
        .cmd()
        .arg("create")
        .args(env.label_args())
        .args(["--image", &test_image(), "--no-network"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let file = dir.path().join("host.json");
    std::fs::write(
        &file,
        json!({"image": test_image(), "network": "host"}).to_string(),
    )
    .unwrap();
    let out = env
        .cmd()
        .arg("create")
        .args(env.label_args())
        .args(["--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: network `host`"),
        "host networking passes without a word: {}",
        stderr(&out)
    );
}

//! Remote mode: every command through a real `enclave server` (`server::Server`, on a loopback
//! port of its own), with the same output, JSON shapes and exit codes as locally; ids that find their
//! server through the state file; and `enclave stop`, locally and through a server.

use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

use crate::common::{
    poll_until, read_stdout, send_signal, spawn_with, stderr, stdout, test_image, wait_within,
    TestEnv,
};
use crate::server::Server;

const KEY: &str = "test-key-5b1f";

/// An `enclave server` on a free loopback port that requires `KEY`.
fn start_server(env: &TestEnv) -> Server {
    Server::start_with_key(env, KEY, &[])
}

fn create_on(server: &Server, env: &TestEnv, extra: &[&str]) -> String {
    let out = server
        .client(env)
        .args(["create", "--image", &test_image()])
        .args(env.label_args())
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "remote create: {}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    assert_eq!(id.len(), 8, "create printed `{id}`");
    id
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(out), stderr(out)))
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// The state file's record of `id`, if it holds one.
fn record(env: &TestEnv, id: &str) -> Option<Value> {
    let text = std::fs::read_to_string(env.state_dir.path().join("state.json")).ok()?;
    let state: Value = serde_json::from_str(&text).unwrap();
    state["sandboxes"].get(id).cloned()
}

#[test]
fn a_sandbox_lives_its_whole_life_through_a_server() {
    let env = TestEnv::new();
    let server = start_server(&env);
    let id = create_on(&server, &env, &["--tool", "shell_executor"]);
    // Recorded with where it lives, never with the key.
    let rec = record(&env, &id).expect("recorded");
    assert_eq!(rec["location"]["kind"], "server");
    assert_eq!(rec["location"]["url"], server.base.trim_end_matches('/'));
    assert!(!rec.to_string().contains(KEY));

    // Output, stderr and the exit code pass through.
    let out = server
        .client(&env)
        .args(["exec", &id, "echo out; echo err >&2; exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err"), "{}", stderr(&out));

    // stdin is forwarded, bytes as they are.
    let input: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let out = server
        .client(&env)
        .args(["exec", &id, "--", "cat"])
        .write_stdin(input.clone())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, input);

    // A timeout kills the command: 124, quickly.
    let started = Instant::now();
    let out = server
        .client(&env)
        .args(["exec", "--timeout", "1", &id, "sleep 60"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        stderr(&out).contains("timed out after 1s"),
        "{}",
        stderr(&out)
    );

    // Tools, with their exit status.
    let out = server
        .client(&env)
        .args([
            "run-tool",
            &id,
            "shell_executor",
            "--arg",
            "command=echo hi; exit 4",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi\n");

    // ls, inspect, tools.
    let out = server.client(&env).args(["ls", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = json(&out);
    let mine = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .expect("ls lists it");
    assert_eq!(mine["status"], "running");
    assert_eq!(mine["tracked"], true);
    assert_eq!(mine["location"]["kind"], "server");
    let out = server
        .client(&env)
        .args(["inspect", &id[..5]])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let info = json(&out);
    assert_eq!(info["id"], id.as_str());
    assert!(info["available_tools"]["shell_executor"].is_object());
    let out = server
        .client(&env)
        .args(["tools", &id, "-q"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "shell_executor\n", "{}", stderr(&out));

    // Without --server, the state file says where it lives.
    let out = env
        .cmd()
        .env("ENCLAVE_API_KEY", KEY)
        .args(["exec", &id, "echo found"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "found\n");

    // stop: it stays, refusing commands with the usual error. Two ids, one connection.
    let out = server
        .client(&env)
        .args(["-v", "stop", &id, &id[..6]])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{id}\n{id}\n"));
    assert_eq!(opened(&out, "server: "), 1, "{}", stderr(&out));
    let out = server
        .client(&env)
        .args(["--json", "exec", &id, "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let refused = json(&out);
    assert_eq!(refused["error"]["kind"], "not_running", "{refused}");
    assert_eq!(
        refused["error"]["message"],
        format!("sandbox `{id}` is not running (status: stopped)"),
        "the words a local command uses: {refused}"
    );

    // rm, found through the state file too; the record goes with it.
    let out = env
        .cmd()
        .env("ENCLAVE_API_KEY", KEY)
        .args(["rm", &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{id}\n"));
    assert!(record(&env, &id).is_none());
    assert!(env.containers().is_empty(), "the container is gone");
}

#[test]
fn run_and_cp_work_through_a_server() {
    let env = TestEnv::new();
    let server = start_server(&env);
    let out = server
        .client(&env)
        .args(["run", "--image", &test_image()])
        .args(env.label_args())
        .args(["echo ran; exit 5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ran\n");
    assert!(env.containers().is_empty(), "run removed its sandbox");

    let id = create_on(&server, &env, &[]);
    let local = tempfile::tempdir().unwrap();
    let blob: Vec<u8> = (0..=255u8).rev().cycle().take(70_000).collect();
    let file = local.path().join("blob.bin");
    std::fs::write(&file, &blob).unwrap();
    let out = server
        .client(&env)
        .args(["cp", file.to_str().unwrap(), &format!("{id}:/tmp/")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let back = local.path().join("back.bin");
    let out = server
        .client(&env)
        .args(["cp", &format!("{id}:/tmp/blob.bin"), back.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&back).unwrap(), blob);
    let out = server.client(&env).args(["rm", &id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn json_documents_and_errors_match_local_ones() {
    let env = TestEnv::new();
    let server = start_server(&env);
    let remote_id = create_on(&server, &env, &[]);
    let local_id = env.create(&[]);

    for args in [
        vec!["inspect", "ID"],
        vec!["exec", "ID", "echo x"],
        vec!["stop", "ID"],
        vec!["rm", "ID"],
    ] {
        let run = |cmd: &mut Command, id: &str| {
            let args: Vec<&str> = args
                .iter()
                .map(|a| if *a == "ID" { id } else { a })
                .collect();
            let out = cmd.arg("--json").args(&args).output().unwrap();
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            json(&out)
        };
        let remote = run(&mut server.client(&env), &remote_id);
        let local = run(&mut env.cmd(), &local_id);
        let shape = |v: &Value| match v {
            Value::Array(items) => items.iter().map(keys).collect::<Vec<_>>(),
            other => vec![keys(other)],
        };
        assert_eq!(shape(&remote), shape(&local), "{args:?}");
    }
    let out = server.client(&env).args(["ls", "--json"]).output().unwrap();
    let remote_ls = json(&out);
    let out = env.cmd().args(["ls", "--json"]).output().unwrap();
    let local_ls = json(&out);
    if let (Some(r), Some(l)) = (remote_ls.get(0), local_ls.get(0)) {
        assert_eq!(keys(r), keys(l));
    }

    // The same error, word for word, exit code included.
    let missing = |cmd: &mut Command| {
        cmd.args(["--json", "inspect", "zzzzzzzz"])
            .output()
            .unwrap()
    };
    let remote = missing(&mut server.client(&env));
    let local = missing(&mut env.cmd());
    assert_eq!(remote.status.code(), Some(1), "{}", stderr(&remote));
    assert_eq!(local.status.code(), Some(1));
    let (r, l) = (json(&remote), json(&local));
    assert_eq!(r["error"]["kind"], "not_found");
    assert_eq!(r["error"]["message"], l["error"]["message"]);
    assert_eq!(r["error"]["hint"], l["error"]["hint"]);
}

#[test]
fn an_unreachable_server_exits_125_naming_it() {
    let env = TestEnv::new();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = env.cmd().args(["--server", &url, "ls"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains(&url), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));
    let out = env
        .cmd()
        .args(["--json", "--server", &url, "inspect", "k3x9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(json(&out)["error"]["kind"], "server_unavailable");

    // A URL that is not one is a usage error.
    let out = env
        .cmd()
        .args(["--server", "ftp://x", "ls"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_wrong_key_says_which_setting_to_fix() {
    let env = TestEnv::new();
    let server = start_server(&env);
    let out = server
        .client(&env)
        .env("ENCLAVE_API_KEY", "wrong")
        .args(["ls"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("did not accept the API key"), "{err}");
    assert!(
        err.contains("ENCLAVE_API_KEY") && err.contains("--api-key"),
        "{err}"
    );
    let out = server
        .client(&env)
        .env_remove("ENCLAVE_API_KEY")
        .args(["ls"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("needs an API key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn stop_leaves_a_local_sandbox_that_refuses_commands() {
    let env = TestEnv::new();
    let id = env.create(&["--tool", "shell_executor"]);
    let out = env
        .cmd()
        .args(["stop", "--json", &id, "zzzzzzzz"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "the unknown id fails: {}",
        stderr(&out)
    );
    let doc = json(&out);
    assert_eq!(doc[0]["id"], id.as_str());
    assert_eq!(doc[0]["result"], "stopped");
    assert_eq!(doc[1]["result"], "error");
    assert_eq!(doc[1]["error"]["kind"], "not_found");

    let out = env.cmd().args(["ls", "--json"]).output().unwrap();
    assert_eq!(json(&out)[0]["status"], "stopped");
    let out = env.cmd().args(["exec", &id, "true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("sandbox `{id}` is not running (status: stopped)")),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint:"), "{}", stderr(&out));
    let out = env
        .cmd()
        .args(["run-tool", &id, "shell_executor", "--arg", "command=true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not running"), "{}", stderr(&out));
    // Stopping again is fine; removing works as ever. Several ids, one connection to the
    // engine; an id that fails does not stop the others.
    let out = env.cmd().args(["-v", "stop", &id, &id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{id}\n{id}\n"));
    assert_eq!(opened(&out, "engine: "), 1, "{}", stderr(&out));
    let out = env
        .cmd()
        .args(["-v", "rm", "zzzzzzzz", &id])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{id}\n"));
    assert!(stderr(&out).contains("sandbox `zzzzzzzz` not found"));
    assert_eq!(opened(&out, "engine: "), 1, "{}", stderr(&out));
    assert!(env.containers().is_empty(), "the container is gone");
}

/// How many managers a `-v` command opened, by their `engine: ` or `server: ` notes.
fn opened(out: &std::process::Output, what: &str) -> usize {
    stderr(out).lines().filter(|l| l.starts_with(what)).count()
}

#[test]
fn a_closed_pipe_and_ctrl_c_stop_a_remote_command_and_what_it_started() {
    let env = TestEnv::new();
    let server = start_server(&env);
    let id = create_on(&server, &env, &[]);
    let remote = [
        ("ENCLAVE_SERVER", server.base.as_str()),
        ("ENCLAVE_API_KEY", KEY),
    ];
    let running = |name: &str| {
        let out = server
            .client(&env)
            .args(["exec", &id, "ps -eo comm"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).lines().any(|p| p == name)
    };

    // `enclave exec ID yes | head -1`, through the server.
    let mut child = spawn_with(&env, &["exec", &id, "yes"], &remote);
    assert_eq!(read_stdout(&mut child, 2), b"y\n");
    drop(child.stdout.take());
    let out = wait_within(child, 15, "a remote exec into a closed pipe");
    assert_eq!(out.status.code(), Some(141), "{}", stderr(&out));
    poll_until("`yes` is killed in the sandbox", 15, || !running("yes"));

    // Ctrl-C: 130, and the command is killed on the server's side.
    let mut child = spawn_with(&env, &["exec", &id, "echo ready; exec sleep 314"], &remote);
    assert_eq!(read_stdout(&mut child, 6), b"ready\n");
    send_signal(child.id(), "INT");
    let out = wait_within(child, 15, "a remote exec after Ctrl-C");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    poll_until("`sleep` is killed in the sandbox", 15, || !running("sleep"));

    let out = server.client(&env).args(["rm", &id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

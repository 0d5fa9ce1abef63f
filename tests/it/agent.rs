//! The in-sandbox agent: sandboxes start under it, commands, tools and copies go through it (a
//! socket, or one `docker exec` bridge), and a sandbox without a reachable, authentic agent still
//! works through `docker exec`, saying so.

use std::path::PathBuf;

use serde_json::Value;

use crate::common::{docker, stderr, stdout, test_image, TestEnv};

/// `create` with the agent's own settings as given (never inherited: the suite also runs with
/// `ENCLAVE_AGENT=off`).
pub(crate) fn create(env: &TestEnv, agent_env: &[(&str, &str)], extra: &[&str]) -> String {
    let mut cmd = env.cmd();
    cmd.env_remove("ENCLAVE_AGENT")
        .env_remove("ENCLAVE_AGENT_TRANSPORT");
    for (k, v) in agent_env {
        cmd.env(k, v);
    }
    let out = cmd
        .arg("create")
        .args(["--image", &test_image()])
        .args(env.label_args())
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "create: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// `inspect`'s `agent` object.
fn agent_of(env: &TestEnv, id: &str) -> Value {
    let out = env.cmd().args(["inspect", id]).output().unwrap();
    assert!(out.status.success(), "inspect: {}", stderr(&out));
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    info["agent"].clone()
}

fn container_json(id: &str) -> Value {
    let out = docker(&["inspect", &format!("enclave-{id}")]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

fn socket_of(env: &TestEnv, id: &str) -> PathBuf {
    env.state_dir
        .path()
        .join("agents")
        .join(id)
        .join("agent.sock")
}

#[test]
fn a_sandbox_starts_under_the_agent_and_runs_through_it() {
    let env = TestEnv::new();
    let id = create(&env, &[], &["--tool", "python_executor"]);
    let agent = agent_of(&env, &id);
    assert_eq!(agent["mode"], "socket", "{agent}");
    assert!(
        agent["version"]
            .as_str()
            .unwrap_or("")
            .starts_with("enclave-agent"),
        "{agent}"
    );
    let c = container_json(&id);
    assert_eq!(
        c["Config"]["Entrypoint"][0], "/.enclave/enclave-agent",
        "{c}"
    );
    assert_eq!(
        c["HostConfig"]["Init"], false,
        "no docker-init: the agent is the init"
    );
    assert!(socket_of(&env, &id).exists());

    let out = env
        .cmd()
        .args(["-v", "exec", &id, "echo out; echo err >&2; exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err\n"));
    assert!(
        stderr(&out).contains("through its agent (socket"),
        "{}",
        stderr(&out)
    );

    let out = env
        .cmd()
        .args([
            "run-tool",
            &id,
            "python_executor",
            "--arg",
            "code=print(6*7)",
        ])
        .output()
        .unwrap();
    assert_eq!((out.status.code(), stdout(&out)), (Some(0), "42\n".into()));

    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("f.txt");
    std::fs::write(&file, "copied\n").unwrap();
    let out = env
        .cmd()
        .args(["cp", file.to_str().unwrap(), &format!("{id}:/tmp/")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let back = local.path().join("back.txt");
    let out = env
        .cmd()
        .args(["cp", &format!("{id}:/tmp/f.txt"), back.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(back).unwrap(), "copied\n");

    let out = env.cmd().args(["rm", &id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !socket_of(&env, &id).parent().unwrap().exists(),
        "rm removes the sandbox's socket directory"
    );
}

#[test]
fn agent_off_uses_docker_exec_and_says_why() {
    let env = TestEnv::new();
    let id = create(&env, &[("ENCLAVE_AGENT", "off")], &[]);
    let agent = agent_of(&env, &id);
    assert_eq!(agent["mode"], "off", "{agent}");
    assert_eq!(agent["reason"], "ENCLAVE_AGENT=off", "{agent}");
    assert_eq!(container_json(&id)["HostConfig"]["Init"], true);
    let out = env.cmd().args(["exec", &id, "echo hi"]).output().unwrap();
    assert_eq!((out.status.code(), stdout(&out)), (Some(0), "hi\n".into()));
}

#[test]
fn the_exec_bridge_reaches_the_agent() {
    let env = TestEnv::new();
    let id = create(&env, &[("ENCLAVE_AGENT_TRANSPORT", "exec")], &[]);
    let agent = agent_of(&env, &id);
    assert_eq!(agent["mode"], "exec", "{agent}");
    assert!(!socket_of(&env, &id).exists());
    let out = env
        .cmd()
        .args(["-v", "exec", &id, "--", "cat"])
        .write_stdin("through the bridge\n")
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "through the bridge\n", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("through its agent (exec"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_socket_replaced_by_another_sandboxs_is_refused() {
    let env = TestEnv::new();
    let victim = create(&env, &[], &[]);
    let other = create(&env, &[], &[]);
    let socket = socket_of(&env, &victim);
    std::fs::remove_file(&socket).unwrap();
    std::os::unix::fs::symlink(socket_of(&env, &other), &socket).unwrap();

    let out = env
        .cmd()
        .args(["-v", "exec", &victim, "hostname"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let hostname = container_json(&victim)["Config"]["Hostname"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        stdout(&out).trim(),
        hostname,
        "the command ran in its own sandbox"
    );
    assert!(
        stderr(&out).contains("cannot be reached") && stderr(&out).contains("handshake"),
        "{}",
        stderr(&out)
    );
    let agent = agent_of(&env, &victim);
    assert!(
        agent["reason"]
            .as_str()
            .unwrap_or("")
            .contains("docker exec"),
        "{agent}"
    );
}

#[test]
fn the_agent_serves_a_sandbox_without_a_network() {
    let env = TestEnv::new();
    let id = create(&env, &[], &["--no-network"]);
    assert_eq!(agent_of(&env, &id)["mode"], "socket");
    let out = env
        .cmd()
        .args(["exec", &id, "--", "cat", "/proc/net/route"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_bridge_killed_from_inside_is_noticed_and_opened_again() {
    use crate::server::{call, Server};
    let env = TestEnv::new();
    let mut command = Server::command(&env, &[]);
    command
        .env_remove("ENCLAVE_AGENT")
        .env("ENCLAVE_AGENT_TRANSPORT", "exec");
    let server = Server::start_command(command);
    let id = server.create(&env, &["shell_executor"]);
    let shell = |command: &str| {
        call(
            server
                .post("/sandbox/tool/execute")
                .json(&serde_json::json!({
                    "sandbox_id": id,
                    "tool_name": "shell_executor",
                    "parameters": {"command": command},
                })),
        )
    };
    let (status, body) = shell("echo first");
    assert_eq!(
        (status, body["output"].as_str()),
        (200, Some("first\n")),
        "{body}"
    );
    // The bridge is a process in the sandbox, so sandboxed code can kill it (PID 1, the agent
    // itself, it cannot). The call that does so loses its connection with it.
    let (status, body) = shell("pkill -9 -f 'enclave-agent connect'; sleep 1");
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["status"], "success", "{body}");
    let (status, body) = shell("echo again");
    assert_eq!(
        (status, body["output"].as_str()),
        (200, Some("again\n")),
        "{body}"
    );
    // The first bridge was opened at create; the note is for the one opened after it died.
    assert!(
        server.log().contains("through its agent (exec"),
        "{}",
        server.log()
    );
}

#[test]
fn a_sandbox_that_cannot_start_under_the_agent_is_made_without_it_and_says_why() {
    let env = TestEnv::new();
    // The user's own mount where the agent's volume goes: the engine refuses the agent's
    // container, so the sandbox is made again on the `docker exec` path.
    let mine = tempfile::tempdir().unwrap();
    let volume = format!("{}:/.enclave", mine.path().display());
    let out = env
        .cmd()
        .env_remove("ENCLAVE_AGENT")
        .args([
            "-v",
            "create",
            "--image",
            &test_image(),
            "--volume",
            &volume,
        ])
        .args(env.label_args())
        .output()
        .unwrap();
    assert!(out.status.success(), "create: {}", stderr(&out));
    assert!(
        stderr(&out).contains("made again without it"),
        "{}",
        stderr(&out)
    );
    let id = stdout(&out).trim().to_string();
    let agent = agent_of(&env, &id);
    assert_eq!(agent["mode"], "off", "{agent}");
    assert!(
        agent["reason"]
            .as_str()
            .unwrap()
            .contains("did not start under the agent"),
        "{agent}"
    );
    let out = env
        .cmd()
        .args(["exec", &id, "echo still works"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "still works\n", "{}", stderr(&out));
    assert_eq!(
        env.containers().len(),
        1,
        "the first try's container was left behind"
    );
}

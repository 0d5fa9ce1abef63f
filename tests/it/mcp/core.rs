//! The core of `enclave mcp` over stdio: tools, state across calls, throwaway sandboxes, results
//! a model can act on, time limits, cancellation and cleanup.

use serde_json::json;

use std::io::Write;

use super::{call, connect, create, field, is_error, text, Version};
use crate::common::TestEnv;

#[tokio::test]
async fn both_protocol_revisions_list_the_tools_and_keep_python_state_across_calls() {
    for version in [Version::Handshake, Version::Stateless] {
        let env = TestEnv::new();
        let client = connect(&env, &[], version).await;
        let tools = client.list_all_tools().await.expect("tools/list");
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        for expected in [
            "sandbox_create",
            "sandbox_list",
            "sandbox_remove",
            "python_executor",
            "shell_executor",
            "file_operation",
            "multi_code_executor",
            "notebook_executor",
            "job_start",
            "job_read",
            "job_kill",
            "upload_file",
            "download_file",
        ] {
            assert!(
                names.contains(&expected),
                "{version:?}: {expected} missing from {names:?}"
            );
        }
        super::assert_python_state_kept(&client, &format!("{version:?}")).await;
        assert_eq!(
            env.containers().len(),
            1,
            "{version:?}: the sandbox is there"
        );
        client.cancel().await.expect("close the client");
        crate::common::poll_until("sandbox_create's sandbox removed at exit", 20, || {
            env.containers().is_empty()
        });
    }
}

#[tokio::test]
async fn a_call_without_sandbox_id_runs_in_a_throwaway_sandbox_that_is_removed() {
    let env = TestEnv::new();
    let client = connect(&env, &[], Version::Handshake).await;
    let result = call(
        &client,
        "shell_executor",
        json!({"command": "cat /etc/hostname; echo made > /tmp/f; ls /tmp/f"}),
    )
    .await;
    assert!(!is_error(&result), "{}", text(&result));
    assert!(text(&result).contains("/tmp/f"), "{}", text(&result));
    assert!(
        env.containers().is_empty(),
        "the throwaway sandbox is gone once the call returns"
    );
    // A second call does not see the first one's files.
    let again = call(&client, "shell_executor", json!({"command": "ls /tmp/f"})).await;
    assert!(is_error(&again), "{}", text(&again));
    assert!(env.containers().is_empty());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn failures_are_results_with_is_error_and_a_next_step() {
    let env = TestEnv::new();
    let client = connect(&env, &[], Version::Handshake).await;
    let id = create(&client, json!({})).await;

    let failed = call(
        &client,
        "shell_executor",
        json!({"command": "echo out; exit 3", "sandbox_id": id}),
    )
    .await;
    assert!(is_error(&failed));
    let t = text(&failed);
    assert!(
        t.starts_with("out\n") && t.contains("exit code 3") && t.contains("Fix"),
        "{t}"
    );
    assert_eq!(field(&failed, "metadata")["exit_code"], 3);

    let missing = call(
        &client,
        "shell_executor",
        json!({"command": "true", "sandbox_id": "zzzzzzzz"}),
    )
    .await;
    assert!(is_error(&missing));
    let t = text(&missing);
    assert!(
        t.contains("zzzzzzzz") && t.contains("sandbox_create"),
        "{t}"
    );

    // Arguments that fail the schema: a result, not a protocol error.
    for (tool, args, says) in [
        (
            "shell_executor",
            json!({"command": 5, "sandbox_id": id}),
            "command",
        ),
        ("python_executor", json!({"sandbox_id": id}), "code"),
        (
            "python_executor",
            json!({"code": "1", "colour": "red"}),
            "colour",
        ),
        ("sandbox_create", json!({"memory": "lots"}), "memory"),
        ("sandbox_create", json!({"type": "vm"}), "type"),
        ("sandbox_remove", json!({}), "sandbox_id"),
        ("sandbox_list", json!({"all": true}), "all"),
    ] {
        let r = call(&client, tool, args.clone()).await;
        assert!(is_error(&r), "{tool} {args}: {}", text(&r));
        let t = text(&r);
        assert!(
            t.contains("Invalid arguments") && t.contains(says),
            "{tool} {args}: {t}"
        );
        assert_eq!(field(&r, "error")["kind"], "invalid_arguments", "{tool}");
    }
    assert_eq!(
        env.containers().len(),
        1,
        "no sandbox was made for arguments that failed"
    );

    // A tool this server does not have is the protocol's error, as the spec says.
    let unknown = client
        .call_tool(super::params("rm_rf", serde_json::Map::new()))
        .await;
    assert!(unknown.is_err(), "{unknown:?}");

    let removed = call(&client, "sandbox_remove", json!({"sandbox_id": id})).await;
    assert!(!is_error(&removed), "{}", text(&removed));
    assert!(env.containers().is_empty());
    let gone = call(
        &client,
        "python_executor",
        json!({"code": "1", "sandbox_id": id}),
    )
    .await;
    assert!(
        is_error(&gone) && text(&gone).contains("sandbox_create"),
        "{}",
        text(&gone)
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn long_output_is_capped_with_head_tail_and_a_marker() {
    let env = TestEnv::new();
    let client = connect(&env, &[], Version::Handshake).await;
    let result = call(
        &client,
        "python_executor",
        json!({"code": "print('HEAD'); print('x' * 100000); print('TAIL')"}),
    )
    .await;
    assert!(!is_error(&result));
    let t = text(&result);
    assert!(
        t.chars().count() <= 20_000,
        "{} characters",
        t.chars().count()
    );
    assert!(
        t.starts_with("HEAD") && t.trim_end().ends_with("TAIL"),
        "{}",
        &t[..100]
    );
    assert!(t.contains("characters omitted"));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_call_timeout_kills_what_the_call_started_and_says_what_to_do() {
    let env = TestEnv::new();
    let client = connect(&env, &["--call-timeout", "2"], Version::Handshake).await;
    let id = create(&client, json!({})).await;
    let started = std::time::Instant::now();
    let result = call(
        &client,
        "shell_executor",
        json!({"command": "sleep 311", "sandbox_id": id}),
    )
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(is_error(&result));
    assert_eq!(field(&result, "status"), "timeout");
    assert!(text(&result).contains("job_start"), "{}", text(&result));
    assert_no_process(&env, "sleep 311");

    // In the live Python: interrupted, its variables kept.
    call(
        &client,
        "python_executor",
        json!({"code": "kept = 7", "sandbox_id": id}),
    )
    .await;
    let slow = call(
        &client,
        "python_executor",
        json!({"code": "import time; time.sleep(30)", "sandbox_id": id}),
    )
    .await;
    assert!(
        is_error(&slow) && field(&slow, "status") == "timeout",
        "{}",
        text(&slow)
    );
    let after = call(
        &client,
        "python_executor",
        json!({"code": "print(kept)", "sandbox_id": id}),
    )
    .await;
    assert_eq!(text(&after).trim(), "7");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn cancelling_a_call_kills_its_process() {
    let env = TestEnv::new();
    let client = connect(&env, &[], Version::Handshake).await;
    let id = create(&client, json!({})).await;
    let running = client.call_tool(super::params(
        "shell_executor",
        json!({"command": "sleep 312", "sandbox_id": id})
            .as_object()
            .unwrap()
            .clone(),
    ));
    // Dropping the request sends notifications/cancelled.
    let dropped = tokio::time::timeout(std::time::Duration::from_secs(2), running).await;
    assert!(dropped.is_err(), "the call ended by itself: {dropped:?}");
    poll_async("the cancelled command killed", 15, || {
        !has_process(&env, "sleep 312")
    })
    .await;
    // The sandbox still answers.
    let after = call(
        &client,
        "shell_executor",
        json!({"command": "echo alive", "sandbox_id": id}),
    )
    .await;
    assert_eq!(text(&after).trim(), "alive");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_long_call_reports_progress_to_a_client_that_asks() {
    use rmcp::model::{NumberOrString, ProgressToken, RequestMetaObject};
    let env = TestEnv::new();
    let seen = Progress::default();
    let transport = rmcp::transport::TokioChildProcess::new(super::mcp_command(&env, &[])).unwrap();
    let client = rmcp::ServiceExt::serve(seen.clone(), transport)
        .await
        .unwrap();
    let mut params = super::params(
        "shell_executor",
        json!({"command": "sleep 7; echo done"})
            .as_object()
            .unwrap()
            .clone(),
    );
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::String("p1".into()),
    )));
    let result = client.call_tool(params).await.unwrap();
    assert_eq!(text(&result).trim(), "done");
    let notes = seen.0.lock().unwrap().clone();
    assert!(notes.len() >= 2, "{notes:?}");
    assert!(
        notes.windows(2).all(|w| w[0].progress < w[1].progress),
        "{notes:?}"
    );
    assert!(
        notes[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("running"),
        "{notes:?}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn sandboxes_belong_to_the_process_that_made_them_and_go_with_it_unless_kept() {
    let env = TestEnv::new();
    let first = connect(&env, &[], Version::Handshake).await;
    let theirs = create(&first, json!({})).await;
    let second = connect(&env, &[], Version::Handshake).await;
    let r = call(
        &second,
        "shell_executor",
        json!({"command": "true", "sandbox_id": theirs}),
    )
    .await;
    assert!(
        is_error(&r),
        "another client's sandbox id must not work: {}",
        text(&r)
    );
    let listed = call(&second, "sandbox_list", json!({})).await;
    assert!(!text(&listed).contains(&theirs), "{}", text(&listed));
    let r = call(&second, "sandbox_remove", json!({"sandbox_id": theirs})).await;
    assert!(is_error(&r));
    second.cancel().await.unwrap();
    assert_eq!(
        env.containers().len(),
        1,
        "the other client's exit left it alone"
    );
    first.cancel().await.unwrap();
    crate::common::poll_until("removed with its client", 20, || {
        env.containers().is_empty()
    });

    // --keep leaves them for later; the idle expiry then still applies (below).
    let keeper = connect(&env, &["--keep"], Version::Handshake).await;
    create(&keeper, json!({})).await;
    keeper.cancel().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(env.containers().len(), 1);
}

#[tokio::test]
async fn an_idle_sandbox_is_removed_by_the_next_enclave_process_that_looks() {
    let env = TestEnv::new();
    let client = connect(
        &env,
        &["--keep", "--idle-expiry", "0.05"],
        Version::Handshake,
    )
    .await;
    let idle = create(&client, json!({})).await;
    let busy = create(&client, json!({"idle_minutes": 60})).await;
    client.cancel().await.unwrap();
    assert_eq!(env.containers().len(), 2);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let out = env.cmd().args(["ls", "--json"]).output().unwrap();
    assert!(out.status.success());
    let listed = crate::common::stdout(&out);
    assert!(
        !listed.contains(&idle) && listed.contains(&busy),
        "{listed}"
    );
    assert!(
        crate::common::stderr(&out).contains(&format!("removed sandbox `{idle}`")),
        "{}",
        crate::common::stderr(&out)
    );
    assert_eq!(env.containers().len(), 1);
}

#[tokio::test]
async fn tools_can_be_narrowed_and_calls_can_default_to_one_sandbox() {
    let env = TestEnv::new();
    let own = env.create(&["--tool", "shell_executor", "--tool", "python_executor"]);
    let client = connect(
        &env,
        &[
            "--tools",
            "shell_executor,python_executor",
            "--sandbox",
            &own,
        ],
        Version::Handshake,
    )
    .await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["shell_executor", "python_executor"]);
    call(
        &client,
        "shell_executor",
        json!({"command": "echo kept > /tmp/k"}),
    )
    .await;
    let r = call(&client, "shell_executor", json!({"command": "cat /tmp/k"})).await;
    assert_eq!(text(&r).trim(), "kept", "both calls ran in --sandbox");
    let named = call(
        &client,
        "shell_executor",
        json!({"command": "cat /tmp/k", "sandbox_id": own}),
    )
    .await;
    assert_eq!(
        text(&named).trim(),
        "kept",
        "--sandbox named by its id: {}",
        text(&named)
    );
    client.cancel().await.unwrap();
    assert_eq!(
        env.containers().len(),
        1,
        "--sandbox is the user's: it stays"
    );

    let out = env
        .cmd()
        .args(["mcp", "--tools", "rm_rf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::common::stderr(&out).contains("`rm_rf` is not"),
        "{}",
        crate::common::stderr(&out)
    );
}

#[tokio::test]
async fn stdin_closing_removes_a_throwaway_sandbox_mid_call() {
    let env = TestEnv::new();
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("enclave"));
    cmd.args(["mcp", "--image", &crate::common::test_image()])
        .args(env.label_args())
        .env("ENCLAVE_STATE_DIR", env.state_dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let messages = [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"shell_executor","arguments":{"command":"sleep 313"}}}),
    ];
    for m in messages {
        writeln!(stdin, "{m}").unwrap();
    }
    crate::common::poll_until("the throwaway sandbox runs", 30, || {
        has_process(&env, "sleep 313")
    });
    drop(stdin);
    let out = crate::common::wait_within(child, 30, "enclave mcp after stdin closed");
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    assert!(
        env.containers().is_empty(),
        "the throwaway sandbox was removed at EOF"
    );
}

#[tokio::test]
async fn notebook_plots_come_back_as_image_content() {
    let env = TestEnv::new();
    let image = std::env::var("ENCLAVE_TEST_NOTEBOOK_IMAGE")
        .unwrap_or_else(|_| "enclave-test-notebook:1".into());
    let mut command = super::mcp_command(&env, &[]);
    command.env("ENCLAVE_NOTEBOOK_IMAGE", &image);
    let transport = rmcp::transport::TokioChildProcess::new(command).unwrap();
    let client = super::serve(transport, Version::Handshake).await;
    let id = create(&client, json!({"type": "docker_notebook"})).await;
    call(
        &client,
        "notebook_executor",
        json!({"code": "n = 3", "sandbox_id": id}),
    )
    .await;
    let result = call(
        &client,
        "notebook_executor",
        json!({"code": "import matplotlib.pyplot as plt\nplt.plot(range(n))\nplt.show()", "sandbox_id": id}),
    )
    .await;
    assert!(!is_error(&result), "{}", text(&result));
    let image = result
        .content
        .iter()
        .find_map(|c| c.as_image())
        .expect("an image block");
    assert_eq!(image.mime_type, "image/png");
    let png = base64_decode(&image.data);
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let kept = &field(&result, "metadata")["outputs"];
    assert!(kept.to_string().contains("image content block 1"), "{kept}");
    assert!(
        !kept.to_string().contains(&image.data[..40]),
        "the image travels once"
    );
    client.cancel().await.unwrap();
}

fn base64_decode(data: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64")
}

/// The client side of progress: every notification it got.
#[derive(Clone, Default)]
struct Progress(std::sync::Arc<std::sync::Mutex<Vec<rmcp::model::ProgressNotificationParam>>>);

impl rmcp::ClientHandler for Progress {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        self.0.lock().unwrap().push(params);
    }
}

/// Whether a process whose command line starts with `needle` runs in any of this test's
/// containers.
fn has_process(env: &TestEnv, needle: &str) -> bool {
    env.containers()
        .iter()
        .any(|c| super::processes(c).lines().any(|l| l.starts_with(needle)))
}

fn assert_no_process(env: &TestEnv, needle: &str) {
    assert!(!has_process(env, needle), "`{needle}` still runs");
}

async fn poll_async(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {secs}s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A plain test: the server's helper holds a blocking HTTP client, which may not be dropped
/// inside a runtime.
#[test]
fn against_a_remote_server_the_same_tools_work() {
    let env = TestEnv::new();
    let server = crate::server::Server::start(&env, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = connect(&env, &["--server", &server.base], Version::Stateless).await;
        let id = create(&client, json!({})).await;
        call(
            &client,
            "python_executor",
            json!({"code": "y = 'remote'", "sandbox_id": id}),
        )
        .await;
        let r = call(
            &client,
            "python_executor",
            json!({"code": "print(y)", "sandbox_id": id}),
        )
        .await;
        assert_eq!(text(&r).trim(), "remote", "{}", text(&r));
        let once = call(&client, "shell_executor", json!({"command": "echo once"})).await;
        assert_eq!(text(&once).trim(), "once");
        assert_eq!(
            env.containers().len(),
            1,
            "the throwaway sandbox went, on the server too"
        );
        client.cancel().await.unwrap();
    });
    crate::common::poll_until("the server removed the sandbox", 20, || {
        env.containers().is_empty()
    });
}

/// A client killed with SIGKILL may leave stdin open (a grandchild holds it, as here where the
/// test keeps the pipe): the parent's death alone must end `enclave mcp` and its sandboxes.
#[test]
fn the_parents_death_removes_a_throwaway_sandbox_mid_call_even_with_stdin_open() {
    let env = TestEnv::new();
    let enclave = assert_cmd::cargo::cargo_bin("enclave");
    let label = env.label_args().join(" ");
    let script = format!(
        "exec 3<&0; '{}' mcp --image '{}' {label} <&3 & echo $! ; sleep 600",
        enclave.display(),
        crate::common::test_image()
    );
    let mut parent = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("ENCLAVE_STATE_DIR", env.state_dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = parent.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(parent.stdout.take().unwrap());
    let mut pid = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut pid).unwrap();
    let pid: u32 = pid.trim().parse().expect("the pid of enclave mcp");
    for m in [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"shell_executor","arguments":{"command":"sleep 314"}}}),
    ] {
        writeln!(stdin, "{m}").unwrap();
    }
    crate::common::poll_until("the throwaway sandbox runs", 30, || {
        has_process(&env, "sleep 314")
    });
    parent.kill().unwrap();
    parent.wait().unwrap();
    crate::common::poll_until("enclave mcp gone after its parent", 20, || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    assert!(
        env.containers().is_empty(),
        "the throwaway sandbox was removed"
    );
    drop(stdin);
}

#[test]
fn sigterm_removes_what_it_made_and_exits() {
    let env = TestEnv::new();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("enclave"))
        .args(["mcp", "--image", &crate::common::test_image()])
        .args(env.label_args())
        .env("ENCLAVE_STATE_DIR", env.state_dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for m in [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sandbox_create","arguments":{}}}),
    ] {
        writeln!(stdin, "{m}").unwrap();
    }
    let mut line = String::new();
    while !line.contains("\"id\":2") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0,
            "stdout closed"
        );
    }
    assert!(line.contains("sandbox_id"), "{line}");
    assert_eq!(env.containers().len(), 1);
    crate::common::send_signal(child.id(), "TERM");
    let out = crate::common::wait_within(child, 30, "enclave mcp after SIGTERM");
    // A graceful stop, as `enclave server`'s.
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::common::stderr(&out)
    );
    assert!(env.containers().is_empty(), "its sandbox was removed");
    drop(stdin);
}

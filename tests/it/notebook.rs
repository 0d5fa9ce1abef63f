//! `docker_notebook` sandboxes against a real engine: the kernel's state between calls,
//! ms-enclave's exact texts, timeouts that interrupt and keep the kernel, a kernel that dies,
//! concurrent calls, two sandboxes at once, rich outputs, the gateway's token, the kernel as a
//! `Session`, and the notebook image built when it is missing.

use std::process::Output;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{docker, docker_ids, spawn, stderr, stdout, wait_within, TestEnv};

/// The notebook image tests run: built by `scripts/ensure-notebook-image.sh`.
fn notebook_image() -> String {
    std::env::var("ENCLAVE_TEST_NOTEBOOK_IMAGE")
        .unwrap_or_else(|_| "enclave-test-notebook:1".into())
}

/// A notebook sandbox from the test notebook image, with `notebook_executor`.
pub(crate) fn notebook(env: &TestEnv) -> String {
    let image = notebook_image();
    let present = docker(&["image", "inspect", "--format", "{{.Id}}", &image]);
    assert!(
        present.status.success(),
        "the notebook test image `{image}` is missing: run ./scripts/ensure-docker.sh (it builds it)"
    );
    let out = env
        .cmd()
        .args(["create", "--type", "docker_notebook", "--image", &image])
        .args(["--tool", "notebook_executor", "--tool", "python_executor"])
        .args(env.label_args())
        .output()
        .unwrap();
    assert!(out.status.success(), "create failed: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// `run-tool --json ID notebook_executor`: the `ToolResult`.
fn run(env: &TestEnv, id: &str, args: &Value) -> Value {
    let out = env
        .cmd()
        .args(["--json", "run-tool", id, "notebook_executor", "--args", "-"])
        .write_stdin(args.to_string())
        .output()
        .unwrap();
    parse(&out)
}

fn parse(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(out), stderr(out)))
}

fn code(env: &TestEnv, id: &str, code: &str) -> Value {
    run(env, id, &json!({ "code": code }))
}

/// The gateway's host address, as the engine published it (`docker port`).
fn gateway_address(id: &str) -> String {
    let out = docker(&["port", &format!("enclave-{id}"), "8888/tcp"]);
    assert!(out.status.success(), "docker port: {}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 1, "one binding only: {lines:?}");
    lines[0].clone()
}

#[test]
fn kernel_state_and_ms_enclave_texts() {
    let env = TestEnv::new();
    let id = notebook(&env);

    let r = code(&env, &id, "a = 1\nb = 2\nc = a + b\nprint(c)");
    assert_eq!(r["status"], "success", "{r}");
    assert_eq!(r["output"], "3\n");
    assert_eq!(r["error"], Value::Null);

    // The kernel keeps `c` between calls (each call is its own enclave process).
    let r = code(&env, &id, "c * 10");
    assert_eq!(r["output"], "\nResult: 30", "{r}");

    let r = code(&env, &id, "globals().get('x','ABSENT')");
    assert_eq!(r["output"], "\nResult: 'ABSENT'", "{r}");

    let r = code(&env, &id, "print('before')\n1/0");
    assert_eq!(r["status"], "error", "{r}");
    assert_eq!(r["output"], "");
    let error = r["error"].as_str().unwrap();
    assert!(error.starts_with("before\n"), "{error}");
    assert!(
        error.contains("Traceback")
            && error.contains("ZeroDivisionError")
            && error.contains("division by zero"),
        "{error}"
    );

    let r = code(&env, &id, "");
    assert_eq!(r["error"], "No code provided", "{r}");

    // ms-enclave's compatibility: docker tools run in a notebook sandbox too.
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
    assert_eq!(stdout(&out), "42\n", "{}", stderr(&out));
}

#[test]
fn a_timeout_interrupts_the_input_and_the_kernel_survives() {
    let env = TestEnv::new();
    let id = notebook(&env);
    assert_eq!(code(&env, &id, "kept = 'yes'")["status"], "success");

    let r = run(
        &env,
        &id,
        &json!({"code": "import time\ntime.sleep(5); marker = 1", "timeout": 1}),
    );
    assert_eq!(r["status"], "timeout", "{r}");
    assert_eq!(r["output"], "");
    assert_eq!(r["error"], "\nExecution timed out after 1 seconds");

    let r = code(
        &env,
        &id,
        "print(globals().get('marker', 'undefined'), kept)",
    );
    assert_eq!(r["output"], "undefined yes\n", "{r}");

    // A kernel that dies under its input is restarted, and says so; the next call works.
    let r = code(&env, &id, "import os; os._exit(1)");
    assert_eq!(r["status"], "error", "{r}");
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("The kernel died and was restarted"), "{r}");
    let r = code(&env, &id, "print(globals().get('kept', 'gone'))");
    assert_eq!(r["output"], "gone\n", "{r}");
}

#[test]
fn two_notebook_sandboxes_get_their_own_loopback_ports() {
    let env = TestEnv::new();
    let creating: Vec<_> = (0..2)
        .map(|_| {
            spawn(
                &env,
                &[
                    "create",
                    "--type",
                    "docker_notebook",
                    "--image",
                    &notebook_image(),
                    "--tool",
                    "notebook_executor",
                    "--label",
                    &format!("enclave-test={}", env.run_label),
                ],
            )
        })
        .collect();
    let ids: Vec<String> = creating
        .into_iter()
        .map(|child| {
            let out = wait_within(child, 180, "create a notebook sandbox");
            assert!(out.status.success(), "create: {}", stderr(&out));
            stdout(&out).trim().to_string()
        })
        .collect();
    let addresses: Vec<String> = ids.iter().map(|id| gateway_address(id)).collect();
    for address in &addresses {
        assert!(address.starts_with("127.0.0.1:"), "{address}");
    }
    assert_ne!(addresses[0], addresses[1]);
    for (i, id) in ids.iter().enumerate() {
        let r = code(&env, id, &format!("print('sandbox {i}')"));
        assert_eq!(r["output"], format!("sandbox {i}\n"), "{r}");
    }

    // The gateway answers nothing without the sandbox's token.
    let client = reqwest::blocking::Client::new();
    for path in ["/api", "/api/kernels"] {
        let status = client
            .get(format!("http://{}{path}", addresses[0]))
            .send()
            .unwrap()
            .status();
        assert!(
            status == 401 || status == 403,
            "{path} without a token answered {status}"
        );
    }
}

#[test]
fn concurrent_calls_on_one_kernel_each_get_their_own_output() {
    let env = TestEnv::new();
    let id = notebook(&env);
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let code = format!(
                "import time\nfor j in range(3):\n    print('call{i}', j, flush=True); time.sleep(0.1)"
            );
            let args = json!({ "code": code }).to_string();
            spawn(
                &env,
                &["--json", "run-tool", &id, "notebook_executor", "--args", &args],
            )
        })
        .collect();
    for (i, child) in calls.into_iter().enumerate() {
        let out = wait_within(child, 120, "a concurrent call");
        let r = parse(&out);
        assert_eq!(
            r["output"],
            format!("call{i} 0\ncall{i} 1\ncall{i} 2\n"),
            "{r}"
        );
    }
}

#[test]
fn rich_outputs_are_kept_in_metadata() {
    let env = TestEnv::new();
    let id = notebook(&env);
    // Known bytes through IPython's display: the PNG in metadata is exactly them.
    let bytes: Vec<u8> = b"\x89PNG\r\n\x1a\n"
        .iter()
        .copied()
        .chain((0..=255u8).rev())
        .collect();
    let literal: String = bytes.iter().map(|b| format!("\\x{b:02x}")).collect();
    let r = code(
        &env,
        &id,
        &format!("from IPython.display import Image, display\ndisplay(Image(data=b'{literal}', format='png'))"),
    );
    assert_eq!(r["status"], "success", "{r}");
    let outputs = r["metadata"]["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 1, "{r}");
    assert_eq!(outputs[0]["type"], "display_data");
    let png = outputs[0]["data"]["image/png"].as_str().expect("a PNG");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(png.replace('\n', ""))
        .unwrap();
    assert_eq!(decoded, bytes);

    // A matplotlib figure arrives as a real PNG beside its text form.
    let r = code(
        &env,
        &id,
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()",
    );
    let outputs = r["metadata"]["outputs"].as_array().expect("outputs");
    let png = outputs
        .iter()
        .find_map(|o| o["data"]["image/png"].as_str())
        .unwrap_or_else(|| panic!("no PNG: {r}"));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(png.replace('\n', ""))
        .unwrap();
    assert_eq!(&decoded[..8], b"\x89PNG\r\n\x1a\n");

    // HTML and JSON bundles are kept whole.
    let r = code(
        &env,
        &id,
        "from IPython.display import HTML, JSON, display\ndisplay(HTML('<b>hi</b>'))\ndisplay(JSON({'k': [1, 2]}))",
    );
    let outputs = r["metadata"]["outputs"].as_array().expect("outputs");
    assert_eq!(outputs[0]["data"]["text/html"], "<b>hi</b>", "{r}");
    assert_eq!(
        outputs[1]["data"]["application/json"],
        json!({"k": [1, 2]}),
        "{r}"
    );
}

#[test]
fn notebook_executor_is_refused_in_a_docker_sandbox() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args(["create", "--tool", "notebook_executor"])
        .args(env.label_args())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "tool `notebook_executor` cannot run in a `docker` sandbox (it needs docker_notebook)"
        ),
        "{}",
        stderr(&out)
    );
    assert!(env.containers().is_empty());
}

#[test]
fn an_image_without_the_gateway_is_refused_and_nothing_is_left() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .args([
            "create",
            "--type",
            "docker_notebook",
            "--image",
            &crate::common::test_image(),
        ])
        .args(env.label_args())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("its image must have Jupyter Kernel Gateway"),
        "{}",
        stderr(&out)
    );
    assert!(env.containers().is_empty(), "a container was left behind");
}

#[test]
fn the_kernel_as_a_session() {
    use enclave::backend::DockerEngine;
    use enclave::manager::{LocalManager, Manager};
    use enclave::session::{
        Completeness, DoneStatus, Interrupter, SessionEvent, SessionKind, SessionOptions,
    };
    use enclave::state::StateStore;

    let env = TestEnv::new();
    let id = notebook(&env);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Bounded: a session that stops answering fails the test instead of hanging the suite.
    let bounded = |f| tokio::time::timeout(std::time::Duration::from_secs(240), f);
    let done = runtime.block_on(async { bounded(async {
        let manager = LocalManager::new(
            DockerEngine::connect().unwrap(),
            StateStore::at(env.state_dir.path()),
        );
        let sandbox = manager.find(&id).await.unwrap();
        let mut session = manager
            .open_session(&sandbox, SessionOptions::default())
            .await
            .unwrap();
        assert_eq!(session.info().kind, SessionKind::Notebook);
        assert!(session.info().language.starts_with("python 3"), "{:?}", session.info());

        let mut events = Vec::new();
        let done = session
            .execute("n = 6\nprint('out')\nn * 7", None, &Interrupter::default(), &mut |e| {
                events.push(e);
            })
            .await
            .unwrap();
        assert_eq!(done, DoneStatus::Ok);
        assert!(matches!(&events[0], SessionEvent::Stream { text, .. } if text == "out\n"), "{events:?}");
        assert!(
            matches!(&events[1], SessionEvent::Display { data, result: true, .. } if data["text/plain"] == "42"),
            "{events:?}"
        );
        assert_eq!(events.last(), Some(&SessionEvent::Done { status: DoneStatus::Ok }));

        let (status, _) = session.is_complete("for i in range(3):").await.unwrap();
        assert_eq!(status, Completeness::Incomplete);
        let (status, _) = session.is_complete("n + 1").await.unwrap();
        assert_eq!(status, Completeness::Complete);

        let line = "import os; os.pat";
        let (matches, start, end) = session.complete(line, line.len()).await.unwrap();
        let completed: Vec<String> = matches
            .iter()
            .map(|m| format!("{}{m}{}", &line[..start], &line[end..]))
            .collect();
        assert!(completed.iter().any(|c| c == "import os; os.path"), "{completed:?}");

        // Ctrl-C: the input is interrupted, the kernel and `n` stay.
        let interrupt = Interrupter::default();
        let fire = interrupt.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            fire.fire();
        });
        let mut events = Vec::new();
        let done = session
            .execute("import time\ntime.sleep(30)", None, &interrupt, &mut |e| events.push(e))
            .await
            .unwrap();
        assert_eq!(done, DoneStatus::Interrupted, "{events:?}");

        let done = session
            .execute("import time\ntime.sleep(30)", Some(std::time::Duration::from_secs(1)), &Interrupter::default(), &mut |_| {})
            .await
            .unwrap();
        assert_eq!(done, DoneStatus::Timeout);

        let mut events = Vec::new();
        session
            .execute("1/0", None, &Interrupter::default(), &mut |e| events.push(e))
            .await
            .unwrap();
        assert!(
            events.iter().any(|e| matches!(e, SessionEvent::Error { ename, .. } if ename == "ZeroDivisionError")),
            "{events:?}"
        );

        let mut events = Vec::new();
        session
            .execute("print(n)", None, &Interrupter::default(), &mut |e| events.push(e))
            .await
            .unwrap();
        assert_eq!(stdout_of(&events), "6\n", "{events:?}");

        // Reset: a fresh kernel, `n` gone.
        session.reset().await.unwrap();
        let mut events = Vec::new();
        session
            .execute("print(globals().get('n', 'gone'))", None, &Interrupter::default(), &mut |e| {
                events.push(e);
            })
            .await
            .unwrap();
        assert_eq!(stdout_of(&events), "gone\n", "{events:?}");
        session.close().await.unwrap();
    }).await });
    done.expect("the session test did not finish within 240 s");
}

/// Removes an image when dropped.
struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

#[test]
fn the_default_notebook_image_is_built_when_missing() {
    let env = TestEnv::new();
    let tag: u64 = rand::random();
    let image = format!("enclave-test-built-notebook:{tag:016x}");
    let _cleanup = RemoveImage(image.clone());
    // Built from the Dockerfile enclave carries, over a local base that already has the
    // packages: no registry and no index is needed.
    let out = env
        .cmd()
        .args([
            "create",
            "--type",
            "docker_notebook",
            "--tool",
            "notebook_executor",
        ])
        .args(env.label_args())
        .env("ENCLAVE_NOTEBOOK_IMAGE", &image)
        .env("ENCLAVE_NOTEBOOK_BASE", notebook_image())
        .timeout(std::time::Duration::from_secs(600))
        .output()
        .unwrap();
    assert!(out.status.success(), "create: {}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let ids = docker_ids(&["images", "-q", &image]);
    assert_eq!(ids.len(), 1, "the image was not built");
    let r = code(&env, &id, "import numpy, matplotlib, PIL; print('ok')");
    assert_eq!(r["output"], "ok\n", "{r}");
    let out = env.cmd().args(["--json", "inspect", &id]).output().unwrap();
    assert_eq!(parse(&out)["config"]["image"], image);
}

#[test]
fn notebook_sandboxes_through_the_server() {
    use crate::server::{call, Server};
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    // As ms-enclave's client sends a DockerNotebookConfig: every field, port 8888 included.
    let config = json!({
        "image": notebook_image(),
        "tools_config": {"notebook_executor": {}},
        "labels": {crate::common::LABEL_KEY: env.run_label},
        "host": "127.0.0.1", "port": 8888, "token": null,
    });
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, body) = call(
            server
                .post("/sandbox/create?sandbox_type=docker_notebook")
                .json(&config),
        );
        assert_eq!(status, 200, "{body}");
        ids.push(body["sandbox_id"].as_str().unwrap().to_string());
    }
    // Two at once, though both asked for 8888: neither failed on the port.
    assert_ne!(gateway_address(&ids[0]), gateway_address(&ids[1]));
    for code in ["x = 41", "print(x + 1)"] {
        let (status, body) = call(server.post("/sandbox/tool/execute").json(&json!({
            "sandbox_id": ids[0], "tool_name": "notebook_executor",
            "parameters": {"code": code}, "timeout": null
        })));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "success", "{body}");
        if code.starts_with("print") {
            assert_eq!(body["output"], "42\n", "{body}");
        }
    }
    let (status, body) = call(server.get(&format!("/sandbox/{}", ids[1])));
    assert_eq!(status, 200);
    assert_eq!(body["type"], "docker_notebook", "{body}");
    assert!(
        body["available_tools"]["notebook_executor"].is_object(),
        "{body}"
    );

    // `enclave shell --server` binds to the same kernel, through the server's session endpoint.
    let out = server
        .client(&env)
        .args(["shell", &ids[0]])
        .write_stdin("print('through the server:', x * 2)\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "through the server: 82\n");
}

/// What a session's events printed, joined: a kernel may send one line as several stream
/// messages (`gone`, then `\n`).
fn stdout_of(events: &[enclave::session::SessionEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            enclave::session::SessionEvent::Stream { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

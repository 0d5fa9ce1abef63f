//! The session endpoint (`GET /v1/sandboxes/{id}/session`): a WebSocket carrying
//! `SessionRequest` / `SessionEvent` JSON, as `enclave shell --server` uses it.

use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use super::{call, Server};
use crate::common::{docker, poll_until, stdout, TestEnv};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

fn ws_url(server: &Server, path: &str) -> String {
    server.url(path).replacen("http://", "ws://", 1)
}

fn connect(
    server: &Server,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<Socket, (u16, Value)> {
    let mut request = ws_url(server, path).into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    match tungstenite::connect(request) {
        Ok((socket, _)) => {
            if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
            }
            Ok(socket)
        }
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response.body().clone().unwrap_or_default();
            let body = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("status {status}: not JSON ({e})"));
            Err((status, body))
        }
        Err(e) => panic!("connecting to the session endpoint: {e}"),
    }
}

fn send(socket: &mut Socket, request: Value) {
    socket
        .send(Message::Text(request.to_string().into()))
        .unwrap();
}

fn next(socket: &mut Socket) -> Value {
    loop {
        match socket.read().expect("the server sends an event") {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(frame) => panic!("the server closed the session: {frame:?}"),
            _ => {}
        }
    }
}

/// Runs `code`; every event up to and including `done`.
fn execute(socket: &mut Socket, code: &str) -> Vec<Value> {
    send(socket, json!({"op": "execute", "code": code}));
    until_done(socket)
}

fn until_done(socket: &mut Socket) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = next(socket);
        let done = event["event"] == "done";
        events.push(event);
        if done {
            return events;
        }
    }
}

/// What the events printed: streamed text and the plain text of displayed values.
fn printed(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| match e["event"].as_str() {
            Some("stream") => e["text"].as_str().map(str::to_string),
            Some("display") => e["data"]["text/plain"].as_str().map(|t| format!("{t}\n")),
            _ => None,
        })
        .collect()
}

fn status(events: &[Value]) -> &str {
    events.last().unwrap()["status"].as_str().unwrap()
}

fn driver_processes(container: &str) -> usize {
    // The driver runs as `python3 -u -c <script>`; count interpreters other than the
    // sandbox's own services, from /proc, not through enclave.
    let out = docker(&[
        "exec",
        container,
        "sh",
        "-c",
        "grep -l 'enclave[-]session' /proc/[0-9]*/cmdline 2>/dev/null | wc -l",
    ]);
    stdout(&out).trim().parse().unwrap_or(0)
}

#[test]
fn refusals_are_json_before_any_upgrade() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    let id = server.create(&env, &["python_executor"]);

    // Not a WebSocket request.
    let (status, body) = call(server.get(&format!("/v1/sandboxes/{id}/session")));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("WebSocket"),
        "{body}"
    );

    // A browser page of an origin the operator did not list.
    let (status, body) = connect(
        &server,
        &format!("/v1/sandboxes/{id}/session"),
        &[("Origin", "http://evil.example")],
    )
    .map(|_| ())
    .expect_err("refused");
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("--cors-origin"),
        "{body}"
    );

    let (status, body) = connect(&server, "/v1/sandboxes/nosuch99/session", &[])
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(status, 404, "{body}");

    let (status, body) = connect(
        &server,
        &format!("/v1/sandboxes/{id}/session?kind=perl"),
        &[],
    )
    .map(|_| ())
    .expect_err("refused");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("`python`"),
        "{body}"
    );
}

#[test]
fn a_session_keeps_state_takes_interrupts_and_ends_with_its_socket() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    let id = server.create(&env, &["python_executor"]);
    let container = env.containers().pop().expect("the sandbox's container");

    let mut socket = connect(&server, &format!("/v1/sandboxes/{id}/session"), &[]).unwrap();
    let ready = next(&mut socket);
    assert_eq!(ready["event"], "ready", "{ready}");
    assert_eq!(ready["info"]["kind"], "python", "{ready}");
    assert_eq!(ready["info"]["sandbox"], id.as_str(), "{ready}");

    let events = execute(&mut socket, "import os\nx = 41");
    assert_eq!(status(&events), "ok", "{events:?}");
    let events = execute(&mut socket, "x + 1");
    assert_eq!(printed(&events), "42\n", "{events:?}");

    send(
        &mut socket,
        json!({"op": "is_complete", "code": "for i in range(3):"}),
    );
    let answer = next(&mut socket);
    assert_eq!(answer["event"], "is_complete", "{answer}");
    assert_eq!(answer["status"], "incomplete", "{answer}");

    send(
        &mut socket,
        json!({"op": "complete", "code": "os.pa", "cursor": 5}),
    );
    let answer = next(&mut socket);
    assert_eq!(answer["event"], "completions", "{answer}");
    let matches: Vec<&str> = answer["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(matches.iter().any(|m| m.ends_with("pathsep")), "{answer}");

    // An input that never ends, interrupted over the socket: the state survives.
    send(
        &mut socket,
        json!({"op": "execute", "code": "print('looping', flush=True)\nwhile True: pass"}),
    );
    let first = next(&mut socket);
    assert_eq!(first["event"], "stream", "{first}");
    send(&mut socket, json!({"op": "interrupt"}));
    let events = until_done(&mut socket);
    assert_eq!(status(&events), "interrupted", "{events:?}");
    assert_eq!(printed(&execute(&mut socket, "x")), "41\n");

    // A timeout carried by the request interrupts just that input.
    send(
        &mut socket,
        json!({"op": "execute", "code": "import time; time.sleep(30); y = 1", "timeout_ms": 500}),
    );
    let events = until_done(&mut socket);
    assert_eq!(status(&events), "timeout", "{events:?}");
    let events = execute(&mut socket, "print('y' in globals(), x)");
    assert_eq!(printed(&events), "False 41\n");

    send(&mut socket, json!({"op": "reset"}));
    assert_eq!(next(&mut socket)["event"], "ready");
    let events = execute(&mut socket, "x");
    assert_eq!(status(&events), "error", "{events:?}");

    assert_eq!(driver_processes(&container), 1);
    socket.close(None).unwrap();
    poll_until("the session's process ends with its socket", 30, || {
        driver_processes(&container) == 0
    });
}

#[test]
fn enclave_shell_through_a_server() {
    let env = TestEnv::new();
    let server = Server::start(&env, &[]);
    let id = server.create(&env, &["python_executor"]);
    let out = server
        .client(&env)
        .args(["shell", &id])
        .write_stdin("x = 20\nprint(x * 2 + 2)\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    assert_eq!(stdout(&out), "42\n");

    let out = server
        .client(&env)
        .args(["shell", &id])
        .write_stdin("raise ValueError('nope')\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(crate::common::stderr(&out).contains("ValueError: nope"));
}

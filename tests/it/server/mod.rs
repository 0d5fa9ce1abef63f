//! `enclave server` through plain HTTP: the real binary on a loopback port 0, a real engine.

mod health;
mod http;
mod load;
mod service;
mod session;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{json, Value};

use crate::common::{send_signal, test_image, TestEnv, LABEL_KEY};

/// A running `enclave server --port 0`; SIGTERM when dropped (its sandboxes stay, as a
/// server's do: the `TestEnv` removes them).
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) base: String,
    key: Option<String>,
    pub(crate) client: Client,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the server with `flags` and this test's state dir; calls carry no key.
    pub(crate) fn start(env: &TestEnv, flags: &[&str]) -> Server {
        Self::start_command(Self::command(env, flags))
    }

    /// Starts the server `command` describes (`Server::command` plus changes).
    pub(crate) fn start_command(mut command: Command) -> Server {
        let mut child = command.spawn().expect("start enclave server");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        // Reads stderr to its end, so the server never blocks on its log.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(at) = line.find("listening on http://") {
                    let url = &line[at + "listening on ".len()..];
                    let url = url.split(|c: char| c.is_whitespace() || c == '"').next();
                    let _ = tx.send(url.unwrap_or_default().to_string());
                }
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let Ok(base) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server did not say where it listens; its stderr:\n{}",
                log.lock().unwrap()
            );
        };
        Server {
            child: Some(child),
            base,
            key: None,
            client: Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            log,
        }
    }

    /// `enclave server --port 0 flags…`, with this test's state dir and no key from the
    /// environment.
    pub(crate) fn command(env: &TestEnv, flags: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("enclave"));
        cmd.env("ENCLAVE_STATE_DIR", env.state_dir.path())
            .env("NO_COLOR", "1")
            .env_remove("ENCLAVE_API_KEY")
            .env_remove("ENCLAVE_SERVER")
            .args(["server", "--port", "0"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Starts the server requiring `key` of every caller; its calls, and its `client`s, carry it.
    pub(crate) fn start_with_key(env: &TestEnv, key: &str, flags: &[&str]) -> Server {
        let flags: Vec<&str> = ["--api-key", key].iter().chain(flags).copied().collect();
        Server::start(env, &flags).with_key(key)
    }

    /// The `enclave` binary as a client of this server (`ENCLAVE_SERVER`, and its key if it has
    /// one), with `env`'s state dir: the client's state file, apart from the server's, which
    /// lives in `server/` below it.
    pub(crate) fn client(&self, env: &TestEnv) -> assert_cmd::Command {
        let mut cmd = env.cmd();
        cmd.env("ENCLAVE_SERVER", &self.base);
        match &self.key {
            Some(key) => cmd.env("ENCLAVE_API_KEY", key),
            None => cmd.env_remove("ENCLAVE_API_KEY"),
        };
        cmd
    }

    /// The same server, its calls carrying `key` in `X-API-Key`.
    pub(crate) fn with_key(mut self, key: &str) -> Server {
        self.key = Some(key.to_string());
        self
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn keyed(&self, rb: RequestBuilder) -> RequestBuilder {
        match &self.key {
            Some(k) => rb.header("X-API-Key", k),
            None => rb,
        }
    }

    pub(crate) fn get(&self, path: &str) -> RequestBuilder {
        self.keyed(self.client.get(self.url(path)))
    }

    pub(crate) fn post(&self, path: &str) -> RequestBuilder {
        self.keyed(self.client.post(self.url(path)))
    }

    pub(crate) fn put(&self, path: &str) -> RequestBuilder {
        self.keyed(self.client.put(self.url(path)))
    }

    pub(crate) fn delete(&self, path: &str) -> RequestBuilder {
        self.keyed(self.client.delete(self.url(path)))
    }

    /// What the server wrote on stderr so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits (at most `secs`) for the server to exit.
    pub(crate) fn terminate(&mut self, secs: u64) -> ExitStatus {
        let mut child = self.child.take().expect("still running");
        send_signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server still ran {secs}s after SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Creates a sandbox from the test image with these tools (ms-enclave's route); its id.
    pub(crate) fn create(&self, env: &TestEnv, tools: &[&str]) -> String {
        let (status, body) = call(
            self.post("/sandbox/create?sandbox_type=docker")
                .json(&config(env, tools)),
        );
        assert_eq!(status, 200, "{body}");
        body["sandbox_id"].as_str().unwrap().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("server log:\n{}", self.log());
        }
    }
}

/// A config for the test image, labelled as this test's, with these tools.
pub(crate) fn config(env: &TestEnv, tools: &[&str]) -> Value {
    let tools: serde_json::Map<String, Value> =
        tools.iter().map(|t| (t.to_string(), json!({}))).collect();
    json!({
        "image": test_image(),
        "tools_config": tools,
        "labels": {LABEL_KEY: env.run_label},
    })
}

/// Sends a request: its status and JSON body (`Value::Null` for an empty body). A body that is
/// not JSON fails the test: every answer of the server is JSON.
pub(crate) fn call(rb: RequestBuilder) -> (u16, Value) {
    let response = rb.send().expect("the server answers");
    read_json(response)
}

pub(crate) fn read_json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().expect("read the body");
    if text.is_empty() {
        return (status, Value::Null);
    }
    assert_eq!(
        content_type.as_deref(),
        Some("application/json"),
        "status {status}: {text}"
    );
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("status {status}: not JSON ({e}): {text}"));
    (status, body)
}

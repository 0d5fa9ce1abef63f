//! A small SandboxFusion stand-in: `POST /run_code` on a loopback port, in this test process.
//! It records every request (path, headers, body) and the peak of requests in flight, and
//! answers by markers in the code, so a test chooses the answer and asserts what was sent:
//!
//! - `@sleep=MS`: waits MS milliseconds first (any answer below may follow)
//! - `@500`: HTTP 500; `@notjson`: a 200 HTML page; `@array`: a JSON array
//! - `@runresult-string`: `run_result` is a string; `@fail`: a program that exited 1 with
//!   stderr; `@compile`: a compile error
//! - anything else: success, stdout `language=<language>` and the code's length

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One request as the service saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) path: String,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Value,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

pub(crate) struct Fusion {
    /// `http://127.0.0.1:PORT`, the `base_url` to give a sandbox.
    pub(crate) url: String,
    shared: Arc<Shared>,
}

impl Fusion {
    /// Starts the service on a thread of its own; it lives as long as the test process.
    pub(crate) fn start() -> Fusion {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let state = shared.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the fake service");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(
                    move |uri: Uri, headers: HeaderMap, body: Bytes| {
                        let state = state.clone();
                        async move { answer(&state, &uri, &headers, &body).await }
                    },
                );
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the fake service listens");
        Fusion {
            url: format!("http://{addr}"),
            shared,
        }
    }

    /// Every request so far, oldest first.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The last request.
    pub(crate) fn last(&self) -> Seen {
        self.seen().pop().expect("the service was called")
    }

    /// The most requests that were in flight at once.
    pub(crate) fn peak(&self) -> usize {
        self.shared.peak.load(Ordering::SeqCst)
    }
}

async fn answer(shared: &Shared, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.peak.fetch_max(now, Ordering::SeqCst);
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    shared.seen.lock().unwrap().push(Seen {
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.clone(),
    });
    let code = body["code"].as_str().unwrap_or("").to_string();
    let language = body["language"].as_str().unwrap_or("").to_string();
    if let Some(ms) = code
        .split("@sleep=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let response = canned(&code, &language);
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

fn canned(code: &str, language: &str) -> Response {
    let json = |v: Value| {
        let content_type = [(axum::http::header::CONTENT_TYPE, "application/json")];
        (StatusCode::OK, content_type, v.to_string()).into_response()
    };
    if code.contains("@500") {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal boom").into_response();
    }
    if code.contains("@notjson") {
        return (StatusCode::OK, "<html>gateway</html>").into_response();
    }
    if code.contains("@array") {
        return json(json!([1, 2]));
    }
    if code.contains("@runresult-string") {
        return json(json!({"status": "Failed", "message": "no run", "run_result": "oops"}));
    }
    if code.contains("@fail") {
        return json(json!({
            "status": "Failed", "message": "",
            "compile_result": null,
            "run_result": {"status": "Finished", "stdout": "partial\n",
                           "stderr": "Traceback: boom\n", "return_code": 1}
        }));
    }
    if code.contains("@compile") {
        return json(json!({
            "status": "Failed", "message": "compile error",
            "compile_result": {"status": "Finished", "stderr": "main.go:1: syntax error",
                               "return_code": 1},
            "run_result": null
        }));
    }
    json(json!({
        "status": "Success", "message": "",
        "compile_result": null,
        "run_result": {"status": "Finished",
                       "stdout": format!("language={language} bytes={}\n", code.len()),
                       "stderr": "", "return_code": 0}
    }))
}

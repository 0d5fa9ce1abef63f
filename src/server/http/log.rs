//! The server's log on stderr: one line per request (method, path, status, duration), as text
//! or JSON lines. The query string is never logged: it may carry `api_key`.

use std::io::Write;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{SecondsFormat, Utc};
use serde_json::json;

use super::AppState;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// `2026-01-02T03:04:05.678Z POST /sandbox/create 200 412.1ms`
    Text,
    /// One JSON object a line
    Json,
}

/// Writes log lines to stderr.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Logger {
    pub(crate) format: LogFormat,
}

impl Logger {
    pub(crate) fn request(&self, method: &str, path: &str, status: u16, millis: f64) {
        let time = now();
        let line = match self.format {
            LogFormat::Text => format!("{time} {method} {path} {status} {millis:.1}ms"),
            LogFormat::Json => json!({
                "time": time, "method": method, "path": path, "status": status,
                "duration_ms": (millis * 1000.0).round() / 1000.0,
            })
            .to_string(),
        };
        write_line(&line);
    }

    /// A note for the operator (`level` is `info` or `warning`).
    pub(crate) fn note(&self, level: &str, message: &str) {
        let time = now();
        let line = match self.format {
            LogFormat::Text => format!("{time} {level}: {message}"),
            LogFormat::Json => {
                json!({"time": time, "level": level, "message": message}).to_string()
            }
        };
        write_line(&line);
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One line, written whole; a closed stderr is no reason to fail a request.
fn write_line(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Middleware: logs every request once its response head is ready.
pub(crate) async fn log_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    state.logger.request(
        method.as_str(),
        &path,
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0,
    );
    response
}

//! Interactive sessions: one live interpreter in a sandbox that keeps its state between inputs
//! (`enclave shell`, the server's session endpoint).
//!
//! One vocabulary serves every kind of session, so the REPL, the server and the remote client
//! need nothing of each other:
//! - `python.rs`: a Python driver (`driver.py`) started in the sandbox through the backend's exec
//!   with open stdin (the agent's sessions; `docker exec` without the agent). The driver speaks
//!   `SessionRequest` / `SessionEvent` as JSON lines itself.
//! - `notebook/` (crate root): a Jupyter kernel behind the sandbox's kernel gateway, its
//!   messages translated into these events.
//! - `remote.rs`: a session held by an `enclave server`, over a WebSocket carrying the same JSON.

pub(crate) mod python;
pub(crate) mod remote;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Notify;

/// What a session is asked to do: one JSON object per message, tagged by `op`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SessionRequest {
    /// Run `code`; answered by output events, then `Done`. `timeout_ms`: interrupt the input
    /// when it passes (the session survives, its variables kept).
    Execute {
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Is `code` a complete input (Python's own rules)? Answered by `IsComplete`.
    IsComplete { code: String },
    /// Names that complete `code` at byte offset `cursor`. Answered by `Completions`.
    Complete { code: String, cursor: usize },
    /// Interrupt the running input (KeyboardInterrupt); nothing when idle.
    Interrupt,
    /// Forget all state: a fresh interpreter. Answered by `Ready`.
    Reset,
}

/// What a session says: one JSON object per message, tagged by `event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SessionEvent {
    /// The session is ready for input (at start and after `Reset`).
    Ready { info: SessionInfo },
    /// Output, as it is produced.
    Stream { name: StreamName, text: String },
    /// A rich value: Jupyter's MIME bundle (`text/plain`, `image/png` as base64, ...).
    /// `result` is true for the value of a bare expression (`execute_result`; in a Python
    /// session, what the REPL's displayhook shows), false for `display_data`.
    Display {
        data: Map<String, Value>,
        #[serde(default)]
        metadata: Map<String, Value>,
        #[serde(default)]
        result: bool,
    },
    /// An uncaught exception. `traceback` lines may hold ANSI colours (a kernel's do).
    Error {
        ename: String,
        evalue: String,
        traceback: Vec<String>,
    },
    /// The input finished.
    Done { status: DoneStatus },
    IsComplete {
        status: Completeness,
        /// The indent a continuation line should start with.
        #[serde(default)]
        indent: String,
    },
    Completions {
        matches: Vec<String>,
        cursor_start: usize,
        cursor_end: usize,
    },
    /// Something the user should know that is not the code's output: a kernel restarted, a
    /// session that had to be started again (state lost), a request the session cannot serve.
    Notice { text: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamName {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoneStatus {
    /// Ran to its end.
    Ok,
    /// Raised an uncaught exception (an `Error` event came before).
    Error,
    /// Interrupted on request (Ctrl-C); state kept.
    Interrupted,
    /// Interrupted at its timeout; state kept.
    Timeout,
    /// The interpreter had to be killed and started again (it ignored the interrupt, or died):
    /// state lost. A `Notice` came before, saying why.
    Restarted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Completeness {
    Complete,
    Incomplete,
    /// A syntax error: run it, so the user sees the error.
    Invalid,
    Unknown,
}

/// A `Display` event as a tool result keeps it in `metadata.outputs`: Jupyter's
/// `execute_result` (the value of a bare expression) or `display_data`.
pub fn rich_output(data: Map<String, Value>, metadata: Map<String, Value>, result: bool) -> Value {
    serde_json::json!({
        "type": if result { "execute_result" } else { "display_data" },
        "data": data,
        "metadata": metadata,
    })
}

/// What a session is bound to, for the banner and `:tools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub kind: SessionKind,
    /// `python 3.11.2`, a kernel's `language_info` name and version.
    pub language: String,
    pub sandbox: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// The Python driver, over the agent (or `docker exec`).
    Python,
    /// The sandbox's Jupyter kernel.
    Notebook,
}

/// What to open.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// `None`: the sandbox's own kind (its kernel for a notebook sandbox, else Python).
    pub kind: Option<SessionKind>,
    /// The interpreter for a Python session (`python3`, else `python`).
    pub interpreter: Option<String>,
}

/// Fires an interrupt into a running `execute` from elsewhere (the REPL's Ctrl-C handler, a
/// server reading the client's `interrupt` while the input runs). Each `fire` is remembered
/// until the session takes it.
#[derive(Debug, Clone, Default)]
pub struct Interrupter(Arc<Notify>);

impl Interrupter {
    pub fn fire(&self) {
        self.0.notify_one();
    }

    /// Waits for the next `fire`.
    pub async fn fired(&self) {
        self.0.notified().await;
    }
}

/// One live interpreter. Requests are served one at a time; output events of `execute` go to
/// `events` as they are produced, in order.
#[async_trait]
pub trait Session: Send {
    fn info(&self) -> &SessionInfo;

    /// Runs `code` to its end (or its interrupt, timeout or restart), streaming events into
    /// `events`; the `Done` event is both sent and returned. `interrupt` fires Ctrl-C into it.
    async fn execute(
        &mut self,
        code: &str,
        timeout: Option<Duration>,
        interrupt: &Interrupter,
        events: &mut (dyn FnMut(SessionEvent) + Send),
    ) -> Result<DoneStatus>;

    /// Python's rules (`codeop`; a kernel's `is_complete_request`).
    async fn is_complete(&mut self, code: &str) -> Result<(Completeness, String)>;

    /// `(matches, cursor_start, cursor_end)`; the matches replace `code[cursor_start..cursor_end]`.
    async fn complete(&mut self, code: &str, cursor: usize) -> Result<(Vec<String>, usize, usize)>;

    /// A fresh interpreter: all state forgotten.
    async fn reset(&mut self) -> Result<()>;

    /// Ends the session and kills what it ran. Dropping a session does this too, as far as it
    /// can without waiting (the process is killed when its input closes).
    async fn close(self: Box<Self>) -> Result<()>;
}

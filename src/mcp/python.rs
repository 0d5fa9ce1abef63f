//! `python_executor` in a sandbox from `sandbox_create`: one live interpreter per sandbox (the
//! session `enclave shell` uses), so variables, imports and open files carry from one call to
//! the next as they would in a notebook. A throwaway sandbox needs none and runs the plain tool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::reply::Reply;
use super::Core;
use crate::model::{Capped, ExecutionStatus, Sandbox, ToolResult, DEFAULT_MAX_OUTPUT};
use crate::session::{DoneStatus, Interrupter, Session, SessionEvent, SessionKind, SessionOptions};

/// The tool's own default (`python_executor`'s `timeout`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

type Slot = Arc<tokio::sync::Mutex<Option<Box<dyn Session>>>>;

/// Each sandbox's interpreter; an input waits for the one before it.
#[derive(Default)]
pub(crate) struct Sessions {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Sessions {
    fn slot(&self, sandbox: &str) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(sandbox.to_string()).or_default().clone()
    }

    /// Drops the sandbox's interpreter (its process ends when its input closes).
    pub(super) fn forget(&self, sandbox: &str) {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.remove(sandbox);
    }
}

impl Core {
    /// Runs `args.code` in the sandbox's interpreter, opening it on first use.
    pub(super) async fn run_in_session(
        &self,
        sandbox: &Sandbox,
        args: &Map<String, Value>,
        cancel: &CancellationToken,
    ) -> Reply {
        let code = args.get("code").and_then(Value::as_str).unwrap_or("");
        if code.trim().is_empty() {
            return Reply::from_tool_result(
                ToolResult::failure("python_executor", "No code provided"),
                Some(&sandbox.id),
            );
        }
        let timeout = timeout_of(args).min(self.options.call_timeout);
        let slot = self.sessions.slot(&sandbox.id);
        let mut held = tokio::select! {
            held = slot.lock() => held,
            () = cancel.cancelled() => return cancelled_waiting(&sandbox.id),
        };
        if held.is_none() {
            let options = SessionOptions {
                kind: Some(SessionKind::Python),
                interpreter: None,
            };
            match self.manager.open_session(sandbox, options).await {
                Ok(session) => *held = Some(session),
                Err(e) => return Reply::from_error(&e, ""),
            }
        }
        let Some(session) = held.as_mut() else {
            return Reply::failed("internal", "no Python session", "Call again.");
        };
        let started = Instant::now();
        let mut collected = Collected::new();
        let interrupter = Interrupter::default();
        let mut sink = |event| collected.add(event);
        let done = {
            let execute = session.execute(code, Some(timeout), &interrupter, &mut sink);
            tokio::pin!(execute);
            let mut fired = false;
            loop {
                tokio::select! {
                    done = &mut execute => break done,
                    () = cancel.cancelled(), if !fired => {
                        interrupter.fire();
                        fired = true;
                    }
                }
            }
        };
        match done {
            Ok(status) => {
                let mut result = collected.into_result(status, timeout);
                result.execution_time = Some(started.elapsed().as_secs_f64());
                Reply::from_tool_result(result, Some(&sandbox.id))
            }
            Err(e) => {
                // The interpreter is gone or unusable: the next call opens a new one.
                *held = None;
                Reply::from_error(
                    &e,
                    "The sandbox's Python interpreter was lost with its variables; call again \
                     to start a new one.",
                )
            }
        }
    }
}

fn timeout_of(args: &Map<String, Value>) -> Duration {
    args.get("timeout")
        .and_then(Value::as_f64)
        .filter(|secs| *secs > 0.0 && secs.is_finite())
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64)
}

fn cancelled_waiting(sandbox: &str) -> Reply {
    let mut result = ToolResult::failure(
        "python_executor",
        "Cancelled while waiting for the previous call in this sandbox",
    );
    result.status = ExecutionStatus::Cancelled;
    Reply::from_tool_result(result, Some(sandbox))
}

/// What one input printed and showed.
struct Collected {
    text: Capped,
    error: Option<String>,
    outputs: Vec<Value>,
    notices: Vec<String>,
}

impl Collected {
    fn new() -> Self {
        Collected {
            text: Capped::new(DEFAULT_MAX_OUTPUT),
            error: None,
            outputs: Vec::new(),
            notices: Vec::new(),
        }
    }

    fn add(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Stream { text, .. } => self.text.push(text.as_bytes()),
            SessionEvent::Display {
                data,
                metadata,
                result,
            } => {
                if result {
                    if let Some(plain) = data.get("text/plain").and_then(Value::as_str) {
                        self.text.push(plain.as_bytes());
                        self.text.push(b"\n");
                    }
                }
                self.outputs
                    .push(crate::session::rich_output(data, metadata, result));
            }
            SessionEvent::Error { traceback, .. } => {
                let joined = traceback.join("\n");
                self.text.push(joined.as_bytes());
                self.error = Some(joined);
            }
            SessionEvent::Notice { text } => self.notices.push(text),
            _ => {}
        }
    }

    fn into_result(self, done: DoneStatus, timeout: Duration) -> ToolResult {
        let (text, truncated) = self.text.into_text();
        let (status, error) = match done {
            DoneStatus::Ok => (ExecutionStatus::Success, None),
            DoneStatus::Error => (
                ExecutionStatus::Error,
                self.error
                    .map(|_| "The code raised an exception (traceback above)".to_string()),
            ),
            DoneStatus::Timeout => (
                ExecutionStatus::Timeout,
                Some(format!(
                    "Execution timed out after {} seconds; the code was interrupted and the \
                     interpreter's variables are kept",
                    timeout.as_secs_f64()
                )),
            ),
            DoneStatus::Interrupted => (
                ExecutionStatus::Cancelled,
                Some(crate::tools::CANCELLED.to_string()),
            ),
            DoneStatus::Restarted => (
                ExecutionStatus::Error,
                Some(self.notices.last().cloned().unwrap_or_else(|| {
                    "The interpreter was restarted: its variables are gone".into()
                })),
            ),
        };
        let mut result = ToolResult::new("python_executor", status, text).with_error(error);
        result.metadata.insert("session".into(), json!(true));
        result.metadata.insert("truncated".into(), json!(truncated));
        if !self.outputs.is_empty() {
            result
                .metadata
                .insert("outputs".into(), Value::Array(self.outputs));
        }
        if !self.notices.is_empty() {
            result
                .metadata
                .insert("notices".into(), json!(self.notices));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::StreamName;

    fn collect(events: Vec<SessionEvent>, done: DoneStatus) -> ToolResult {
        let mut c = Collected::new();
        events.into_iter().for_each(|e| c.add(e));
        c.into_result(done, Duration::from_secs(2))
    }

    #[test]
    fn output_and_a_bare_expressions_value_read_as_in_the_repl() {
        let mut data = Map::new();
        data.insert("text/plain".into(), json!("42"));
        let r = collect(
            vec![
                SessionEvent::Stream {
                    name: StreamName::Stdout,
                    text: "hi\n".into(),
                },
                SessionEvent::Display {
                    data,
                    metadata: Map::new(),
                    result: true,
                },
            ],
            DoneStatus::Ok,
        );
        assert_eq!(r.status, ExecutionStatus::Success);
        assert_eq!(r.output, json!("hi\n42\n"));
        assert_eq!(r.metadata["outputs"][0]["type"], "execute_result");
    }

    #[test]
    fn errors_timeouts_and_restarts_say_what_became_of_the_state() {
        let r = collect(
            vec![SessionEvent::Error {
                ename: "NameError".into(),
                evalue: "x".into(),
                traceback: vec!["Traceback".into(), "NameError: x".into()],
            }],
            DoneStatus::Error,
        );
        assert_eq!(r.status, ExecutionStatus::Error);
        assert_eq!(r.output, json!("Traceback\nNameError: x"));
        let r = collect(vec![], DoneStatus::Timeout);
        assert_eq!(r.status, ExecutionStatus::Timeout);
        assert!(r.error.unwrap().contains("variables are kept"));
        let r = collect(
            vec![SessionEvent::Notice {
                text: "restarted: it ignored the interrupt".into(),
            }],
            DoneStatus::Restarted,
        );
        assert_eq!(
            r.error.as_deref(),
            Some("restarted: it ignored the interrupt")
        );
        assert_eq!(
            collect(vec![], DoneStatus::Interrupted).status,
            ExecutionStatus::Cancelled
        );
    }
}

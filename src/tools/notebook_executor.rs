//! `notebook_executor`: code run in the sandbox's Jupyter kernel, its variables kept between
//! calls. Texts as ms-enclave's (reference §3.7); rich outputs (images, HTML, JSON), which
//! ms-enclave drops, are kept in `metadata.outputs`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::options::ToolOptions;
use super::run;
use super::{Tool, ToolContext, ToolInfo};
use crate::model::{ExecutionStatus, SandboxType, ToolResult};
use crate::session::{DoneStatus, Interrupter, SessionEvent};

pub(super) struct NotebookExecutor;

static INFO: ToolInfo = ToolInfo {
    key: "notebook_executor",
    description: DESCRIPTION,
    sandbox_types: &[SandboxType::DockerNotebook],
    parameters: parameters_schema,
};

/// ms-enclave's default: `timeout or 30`.
const DEFAULT_TIMEOUT_SECS: u64 = 30;

#[async_trait]
impl Tool for NotebookExecutor {
    fn info(&self) -> &'static ToolInfo {
        &INFO
    }

    async fn execute(
        &self,
        ctx: &ToolContext<'_>,
        name: &str,
        args: &Map<String, Value>,
        _options: &ToolOptions,
    ) -> ToolResult {
        let code = args.get("code").and_then(Value::as_str).unwrap_or_default();
        if code.is_empty() {
            return ToolResult::failure(name, "No code provided");
        }
        let Some(kernel) = &ctx.notebook else {
            return ToolResult::failure(
                name,
                "Execution failed: Sandbox does not have Jupyter kernel setup",
            );
        };
        let timeout = match args.get("timeout") {
            Some(v) if v.as_f64() == Some(0.0) => None,
            _ => run::timeout_arg(args, "timeout", Some(DEFAULT_TIMEOUT_SECS)),
        };
        let (duration, shown) = match &timeout {
            Some(t) => (t.duration, t.shown.clone()),
            None => (
                Duration::from_secs(DEFAULT_TIMEOUT_SECS),
                DEFAULT_TIMEOUT_SECS.to_string(),
            ),
        };
        let mut collected = Collected::default();
        let done = {
            // The lock is waited for under the cancel: a call queued behind a long one can
            // still be given up.
            let mut kernel = tokio::select! {
                k = kernel.lock() => k,
                () = ctx.cancel.cancelled() => return cancelled(name),
            };
            kernel
                .execute(
                    code,
                    Some(duration),
                    &Interrupter::default(),
                    &ctx.cancel,
                    &mut |event| collected.add(event),
                )
                .await
        };
        match done {
            Ok(_) if ctx.cancel.is_cancelled() => cancelled(name),
            Ok(status) => collected.into_result(name, status, &shown),
            Err(e) => run::execution_failed(name, &e),
        }
    }
}

fn cancelled(name: &str) -> ToolResult {
    let mut r = ToolResult::failure(name, super::CANCELLED);
    r.status = ExecutionStatus::Cancelled;
    r
}

/// What a call's events add up to.
#[derive(Default)]
struct Collected {
    /// Stream and traceback text in arrival order, as ms-enclave joins them.
    text: String,
    /// The last `execute_result`'s `text/plain`.
    result: Option<String>,
    /// The last traceback, joined by newlines.
    error: Option<String>,
    /// The KeyboardInterrupt of a timed-out input: not part of a timeout's text (ms-enclave
    /// reports the timeout alone).
    interrupt: Option<String>,
    outputs: Vec<Value>,
    notices: Vec<String>,
}

impl Collected {
    fn add(&mut self, event: SessionEvent) {
        match event {
            SessionEvent::Stream { text, .. } => self.text.push_str(&text),
            SessionEvent::Display {
                data,
                metadata,
                result,
            } => {
                if result {
                    if let Some(plain) = data.get("text/plain").and_then(Value::as_str) {
                        self.result = Some(plain.to_string());
                    }
                }
                self.outputs
                    .push(crate::session::rich_output(data, metadata, result));
            }
            SessionEvent::Error {
                ename, traceback, ..
            } => {
                let joined = traceback.join("\n");
                if ename == "KeyboardInterrupt" && self.interrupt.is_none() {
                    self.interrupt = Some(joined);
                    return;
                }
                self.text.push_str(&joined);
                self.error = Some(joined);
            }
            SessionEvent::Notice { text } => self.notices.push(text),
            _ => {}
        }
    }

    /// ms-enclave's texts: the output text, `\nResult: …`, then the error or timeout message
    /// unless the text already holds it.
    fn into_result(self, name: &str, done: DoneStatus, timeout_shown: &str) -> ToolResult {
        let mut text = self.text;
        let timed_out = matches!(done, DoneStatus::Timeout | DoneStatus::Interrupted);
        let mut error = self.error;
        if let Some(interrupt) = self.interrupt.filter(|_| !timed_out) {
            // The code's own KeyboardInterrupt: an error like any other.
            text.push_str(&interrupt);
            error = Some(interrupt);
        }
        if let Some(result) = &self.result {
            text.push_str("\nResult: ");
            text.push_str(result);
        }
        let message = match done {
            DoneStatus::Ok => None,
            DoneStatus::Error => error.or_else(|| self.notices.last().cloned()),
            DoneStatus::Timeout | DoneStatus::Interrupted => {
                Some(format!("Execution timed out after {timeout_shown} seconds"))
            }
            DoneStatus::Restarted => Some(
                self.notices
                    .last()
                    .cloned()
                    .unwrap_or_else(|| super::super::notebook::kernel::DIED.into()),
            ),
        };
        if let Some(message) = &message {
            if !text.contains(message.as_str()) {
                text.push('\n');
                text.push_str(message);
            }
        }
        let status = match done {
            DoneStatus::Ok => ExecutionStatus::Success,
            DoneStatus::Timeout | DoneStatus::Interrupted => ExecutionStatus::Timeout,
            DoneStatus::Error | DoneStatus::Restarted => ExecutionStatus::Error,
        };
        let mut r = if status == ExecutionStatus::Success {
            ToolResult::success(name, text)
        } else {
            let mut r = ToolResult::new(name, status, "");
            r.error = Some(text);
            r
        };
        if !self.outputs.is_empty() {
            r.metadata
                .insert("outputs".into(), Value::Array(self.outputs));
        }
        if !self.notices.is_empty() {
            r.metadata.insert("notices".into(), json!(self.notices));
        }
        r
    }
}

const DESCRIPTION: &str = "Execute Python code in a Jupyter kernel environment";

fn parameters_schema() -> Value {
    json!({"type":"object","properties":{"code":{"type":"string","description":"Python code to execute in the notebook kernel"},"timeout":{"type":"integer","description":"Execution timeout in seconds","default":30}},"required":["code"],"additionalProperties":false})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::StreamName;

    fn stream(text: &str) -> SessionEvent {
        SessionEvent::Stream {
            name: StreamName::Stdout,
            text: text.into(),
        }
    }

    #[test]
    fn output_and_result_texts_are_ms_enclaves() {
        let mut c = Collected::default();
        c.add(stream("3\n"));
        let r = c.into_result("notebook_executor", DoneStatus::Ok, "30");
        assert_eq!(
            (r.status, r.output, r.error),
            (ExecutionStatus::Success, json!("3\n"), None)
        );

        let mut c = Collected::default();
        let mut data = Map::new();
        data.insert("text/plain".into(), json!("'ABSENT'"));
        c.add(SessionEvent::Display {
            data,
            metadata: Map::new(),
            result: true,
        });
        let r = c.into_result("notebook_executor", DoneStatus::Ok, "30");
        assert_eq!(r.output, json!("\nResult: 'ABSENT'"));
        assert_eq!(r.metadata["outputs"][0]["type"], "execute_result");
    }

    #[test]
    fn errors_and_timeouts_leave_output_empty() {
        let mut c = Collected::default();
        c.add(stream("before\n"));
        c.add(SessionEvent::Error {
            ename: "ZeroDivisionError".into(),
            evalue: "division by zero".into(),
            traceback: vec![
                "Traceback".into(),
                "ZeroDivisionError: division by zero".into(),
            ],
        });
        let r = c.into_result("notebook_executor", DoneStatus::Error, "30");
        assert_eq!(r.status, ExecutionStatus::Error);
        assert_eq!(r.output, json!(""));
        assert_eq!(
            r.error.as_deref(),
            Some("before\nTraceback\nZeroDivisionError: division by zero")
        );

        let r = Collected::default().into_result("notebook_executor", DoneStatus::Timeout, "1");
        assert_eq!(r.status, ExecutionStatus::Timeout);
        assert_eq!(
            r.error.as_deref(),
            Some("\nExecution timed out after 1 seconds")
        );
    }
}

//! What enclave's own HTTP extensions carry (`docs/server-api.md`): the streaming exec's request
//! and the events of its response. The ms-enclave-compatible routes use `SandboxInfo`,
//! `ToolResult` and the config as they are.

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{ExecEnd, ExecOutcome, ExitCause, KillReport, Stream};
use crate::error::Report;

/// `POST /v1/sandboxes/{id}/exec`: the command. Sent as the JSON body, or, when `stdin` is
/// set, as the body's first line with the command's stdin streamed after it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    /// Extra `KEY=VALUE` entries.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub workdir: Option<String>,
    /// Seconds; the command and everything it started are killed when it passes.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// The request body continues with the command's stdin.
    #[serde(default)]
    pub stdin: bool,
}

/// One line of the exec response (`application/x-ndjson`), or one SSE event's data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecEvent {
    /// A chunk of output, base64 (output is bytes, not always UTF-8).
    Stdout {
        data: String,
    },
    Stderr {
        data: String,
    },
    /// The last event when the command ran: how it ended.
    End {
        outcome: WireOutcome,
    },
    /// The last event when it could not run, or the sandbox failed under it.
    Error {
        error: Report,
    },
}

impl ExecEvent {
    pub fn output(stream: Stream, bytes: &[u8]) -> Self {
        let data = base64::engine::general_purpose::STANDARD.encode(bytes);
        match stream {
            Stream::Stdout => ExecEvent::Stdout { data },
            Stream::Stderr => ExecEvent::Stderr { data },
        }
    }

    /// The bytes of an output event.
    pub fn decode(data: &str) -> Result<Vec<u8>, base64::DecodeError> {
        base64::engine::general_purpose::STANDARD.decode(data)
    }
}

/// `ExecOutcome` on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireOutcome {
    /// `exited`, `timed_out`, `cancelled` or `output_closed`.
    pub end: String,
    /// With `exited`: the status, when the backend knew it.
    #[serde(default)]
    pub exit_code: Option<i64>,
    pub duration_ms: u64,
    /// When enclave killed the command: `verified`, `survivors` or `unverified`.
    #[serde(default)]
    pub kill: Option<String>,
    #[serde(default)]
    pub killed: Option<u32>,
    #[serde(default)]
    pub left: Option<u32>,
    /// `out_of_memory` or `sandbox_gone`.
    #[serde(default)]
    pub cause: Option<String>,
}

impl From<&ExecOutcome> for WireOutcome {
    fn from(o: &ExecOutcome) -> Self {
        let (end, exit_code) = match o.end {
            ExecEnd::Exited(code) => ("exited", code),
            ExecEnd::TimedOut => ("timed_out", None),
            ExecEnd::Cancelled => ("cancelled", None),
            ExecEnd::OutputClosed => ("output_closed", None),
        };
        let (kill, killed, left) = match o.kill {
            Some(KillReport::Verified { killed }) => (Some("verified"), Some(killed), None),
            Some(KillReport::Survivors { killed, left }) => {
                (Some("survivors"), Some(killed), Some(left))
            }
            Some(KillReport::Unverified) => (Some("unverified"), None, None),
            None => (None, None, None),
        };
        WireOutcome {
            end: end.into(),
            exit_code,
            duration_ms: u64::try_from(o.duration.as_millis()).unwrap_or(u64::MAX),
            kill: kill.map(Into::into),
            killed,
            left,
            cause: o.cause.map(|c| {
                match c {
                    ExitCause::OutOfMemory => "out_of_memory",
                    ExitCause::SandboxGone => "sandbox_gone",
                }
                .into()
            }),
        }
    }
}

impl TryFrom<&WireOutcome> for ExecOutcome {
    type Error = String;

    fn try_from(w: &WireOutcome) -> Result<Self, String> {
        let end = match w.end.as_str() {
            "exited" => ExecEnd::Exited(w.exit_code),
            "timed_out" => ExecEnd::TimedOut,
            "cancelled" => ExecEnd::Cancelled,
            "output_closed" => ExecEnd::OutputClosed,
            other => return Err(format!("unknown end `{other}`")),
        };
        let kill = match w.kill.as_deref() {
            None => None,
            Some("verified") => Some(KillReport::Verified {
                killed: w.killed.unwrap_or(0),
            }),
            Some("survivors") => Some(KillReport::Survivors {
                killed: w.killed.unwrap_or(0),
                left: w.left.unwrap_or(0),
            }),
            Some("unverified") => Some(KillReport::Unverified),
            Some(other) => return Err(format!("unknown kill report `{other}`")),
        };
        let cause = match w.cause.as_deref() {
            None => None,
            Some("out_of_memory") => Some(ExitCause::OutOfMemory),
            Some("sandbox_gone") => Some(ExitCause::SandboxGone),
            Some(other) => return Err(format!("unknown cause `{other}`")),
        };
        Ok(ExecOutcome {
            end,
            duration: Duration::from_millis(w.duration_ms),
            kill,
            cause,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_survive_the_wire() {
        let outcomes = [
            ExecOutcome::new(ExecEnd::Exited(Some(3)), Duration::from_millis(12)),
            ExecOutcome {
                end: ExecEnd::TimedOut,
                duration: Duration::from_millis(2000),
                kill: Some(KillReport::Survivors { killed: 3, left: 1 }),
                cause: Some(ExitCause::OutOfMemory),
            },
        ];
        for o in outcomes {
            let json = serde_json::to_string(&WireOutcome::from(&o)).unwrap();
            let back: WireOutcome = serde_json::from_str(&json).unwrap();
            let back = ExecOutcome::try_from(&back).unwrap();
            assert_eq!(back.end, o.end);
            assert_eq!(back.kill, o.kill);
            assert_eq!(back.cause, o.cause);
            assert_eq!(back.duration, o.duration);
        }
    }

    #[test]
    fn output_events_are_tagged_and_binary_safe() {
        let event = ExecEvent::output(Stream::Stderr, &[0xff, b'\n']);
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(json, r#"{"type":"stderr","data":"/wo="}"#);
        let ExecEvent::Stderr { data } = serde_json::from_str(&json).unwrap() else {
            panic!("not stderr")
        };
        assert_eq!(ExecEvent::decode(&data).unwrap(), [0xff, b'\n']);
    }
}

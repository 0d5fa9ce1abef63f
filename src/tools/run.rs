//! Running one command for a tool: bounded capture, the timeout argument, and turning how the
//! command ended into a `ToolResult` with ms-enclave's status mapping and texts.

use std::time::Duration;

use serde_json::{Map, Number, Value};
use tokio_util::sync::CancellationToken;

use super::ToolContext;
use crate::model::{
    Capture, ExecEnd, ExecOutcome, ExecSpec, ExecutionStatus, ExitCause, KillReport, ToolResult,
    MAX_TIMEOUT_SECS,
};

/// The `error` of a call that was cancelled; what it wrote to stderr is in `metadata.stderr`.
pub(crate) const CANCELLED: &str = "Execution cancelled";

/// How long our own helper commands (cleanup, `realpath`) may take.
pub(crate) const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// A timeout argument as given: the duration, and the number as the caller wrote it (for the
/// "timed out after <t> seconds" text, which ms-enclave formats from the value itself).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Timeout {
    pub duration: Duration,
    pub shown: String,
}

/// Reads timeout `key`: absent means `default` seconds; `null`, `0` or more than a year mean no
/// limit.
pub(super) fn timeout_arg(
    args: &Map<String, Value>,
    key: &str,
    default: Option<u64>,
) -> Option<Timeout> {
    let number = match args.get(key) {
        None => Number::from(default?),
        Some(Value::Number(n)) => n.clone(),
        Some(_) => return None,
    };
    let secs = number.as_f64()?;
    if secs <= 0.0 || secs > MAX_TIMEOUT_SECS {
        return None;
    }
    let duration = Duration::try_from_secs_f64(secs).ok()?;
    Some(Timeout {
        duration,
        shown: number.to_string(),
    })
}

/// A command that ran: how it ended and what it printed (capped).
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) end: ExecEnd,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) truncated: bool,
    pub(crate) duration: Duration,
    pub(crate) kill: Option<KillReport>,
    pub(crate) cause: Option<ExitCause>,
}

impl Finished {
    /// How a command ended, with its captured output as text.
    pub(crate) fn of(outcome: ExecOutcome, capture: Capture) -> Self {
        let (stdout, out_cut) = capture.stdout.into_text();
        let (stderr, err_cut) = capture.stderr.into_text();
        Finished {
            end: outcome.end,
            stdout,
            stderr,
            truncated: out_cut || err_cut,
            duration: outcome.duration,
            kill: outcome.kill,
            cause: outcome.cause,
        }
    }
}

/// One command to run for a tool, in the container's working directory (the sandbox's
/// `working_dir`). No tool sets an exec's own working directory: that costs some engines about
/// 10 ms a call.
pub(super) struct Command {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Option<Duration>,
    pub max_output: usize,
}

impl Command {
    pub(super) fn new(argv: Vec<String>, max_output: usize) -> Self {
        Command {
            argv,
            env: Vec::new(),
            stdin: None,
            timeout: None,
            max_output,
        }
    }

    /// Runs it, cancelled with `cancel`.
    pub(super) async fn run(
        self,
        ctx: &ToolContext<'_>,
        cancel: CancellationToken,
    ) -> anyhow::Result<Finished> {
        let (outcome, capture) = self.run_raw(ctx, cancel).await?;
        Ok(Finished::of(outcome, capture))
    }

    /// Runs it and hands back the captured bytes as they are.
    pub(super) async fn run_raw(
        self,
        ctx: &ToolContext<'_>,
        cancel: CancellationToken,
    ) -> anyhow::Result<(ExecOutcome, Capture)> {
        let mut spec = ExecSpec::new(self.argv);
        spec.env = self.env;
        spec.timeout = self.timeout;
        spec.cancel = cancel;
        if let Some(bytes) = self.stdin {
            spec.stdin = Some(Box::new(std::io::Cursor::new(bytes)));
        }
        let mut capture = Capture::new(self.max_output);
        let outcome = ctx.backend.exec(spec, &mut capture).await?;
        Ok((outcome, capture))
    }
}

/// Runs one of our own helper commands (argv, never a shell string with data in it); not
/// cancellable, so cleanup still happens after a Ctrl-C.
pub(super) async fn helper(ctx: &ToolContext<'_>, argv: &[&str]) -> anyhow::Result<Finished> {
    let mut command = Command::new(
        argv.iter().map(std::string::ToString::to_string).collect(),
        64 * 1024,
    );
    command.timeout = Some(HELPER_TIMEOUT);
    command.run(ctx, CancellationToken::new()).await
}

/// The texts one tool uses for a command that did not succeed.
pub(super) struct Texts<'a> {
    /// "Command timed out after <t> seconds" (`<t>` filled in).
    pub timed_out: &'a str,
    /// "Command failed with exit code <n>" (`<n>` filled in).
    pub failed: &'a str,
}

pub(super) const COMMAND_TEXTS: Texts<'static> = Texts {
    timed_out: "Command timed out after {t} seconds",
    failed: "Command failed with exit code {n}",
};

/// ms-enclave's mapping: exit 0 is `success`, a real expiry of our deadline is `timeout`,
/// anything else (including `exit 124` and death by a signal) is `error`. `output` is stdout;
/// `error` is stderr, or the fallback text when stderr is empty.
///
/// Unlike ms-enclave, a successful call never carries an `error`: what it wrote to stderr
/// (warnings) goes to `metadata.stderr`, so `error` alone says whether the call failed. A
/// cancelled call's `error` is always `CANCELLED`, its stderr also in `metadata.stderr`.
pub(crate) fn to_result(
    tool_name: &str,
    finished: Finished,
    timeout: Option<&Timeout>,
    texts: &Texts<'_>,
) -> ToolResult {
    let Finished {
        end,
        stdout,
        stderr,
        truncated,
        duration,
        kill,
        cause,
    } = finished;
    let or_stderr = |fallback: String| {
        if stderr.is_empty() {
            fallback
        } else {
            stderr.clone()
        }
    };
    let (status, error, exit_code) = match (end, cause) {
        (ExecEnd::Exited(code), Some(ExitCause::SandboxGone)) => (
            ExecutionStatus::Error,
            Some("Execution failed: the sandbox was removed while the command ran".to_string()),
            code,
        ),
        (ExecEnd::Exited(Some(0)), _) => (ExecutionStatus::Success, None, Some(0)),
        (ExecEnd::Exited(Some(code)), Some(ExitCause::OutOfMemory)) => (
            ExecutionStatus::Error,
            Some(format!(
                "{}The sandbox hit its memory limit; the kernel killed the command",
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!("{}\n", stderr.trim_end())
                }
            )),
            Some(code),
        ),
        (ExecEnd::Exited(Some(code)), _) => (
            ExecutionStatus::Error,
            Some(or_stderr(texts.failed.replace("{n}", &code.to_string()))),
            Some(code),
        ),
        (ExecEnd::Exited(None), _) => (
            ExecutionStatus::Error,
            Some(or_stderr(
                "Execution failed: the engine did not report an exit code".into(),
            )),
            None,
        ),
        (ExecEnd::TimedOut, _) => {
            let shown = timeout.map_or("?", |t| t.shown.as_str());
            (
                ExecutionStatus::Timeout,
                Some(or_stderr(texts.timed_out.replace("{t}", shown))),
                None,
            )
        }
        (ExecEnd::Cancelled | ExecEnd::OutputClosed, _) => (
            ExecutionStatus::Cancelled,
            Some(CANCELLED.to_string()),
            None,
        ),
    };
    let mut result = ToolResult::new(tool_name, status, stdout).with_error(error);
    let stderr_elsewhere = matches!(
        status,
        ExecutionStatus::Success | ExecutionStatus::Cancelled
    );
    if stderr_elsewhere && !stderr.is_empty() {
        result
            .metadata
            .insert("stderr".into(), Value::String(stderr));
    }
    set_metadata(&mut result, exit_code, duration, truncated);
    if let Some(kill) = kill {
        result.metadata.insert(
            "kill_verified".into(),
            Value::Bool(matches!(kill, KillReport::Verified { .. })),
        );
    }
    if cause == Some(ExitCause::OutOfMemory) {
        result
            .metadata
            .insert("oom_killed".into(), Value::Bool(true));
    }
    result
}

/// The metadata every executor fills in.
pub(crate) fn set_metadata(
    result: &mut ToolResult,
    exit_code: Option<i64>,
    duration: Duration,
    truncated: bool,
) {
    let m = &mut result.metadata;
    m.insert(
        "exit_code".into(),
        exit_code.map_or(Value::Null, Value::from),
    );
    m.insert(
        "duration_ms".into(),
        Value::from(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
    );
    m.insert("truncated".into(), Value::Bool(truncated));
}

/// A call that failed before or around the command: ms-enclave's `"Execution failed: <msg>"`.
pub(super) fn execution_failed(tool_name: &str, err: &anyhow::Error) -> ToolResult {
    ToolResult::failure(tool_name, format!("Execution failed: {}", one_line(err)))
}

/// An error and its causes on one line, for an `error` text.
pub(super) fn one_line(err: &anyhow::Error) -> String {
    let parts: Vec<String> = err.chain().map(std::string::ToString::to_string).collect();
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn finished(end: ExecEnd, stdout: &str, stderr: &str) -> Finished {
        Finished {
            end,
            stdout: stdout.into(),
            stderr: stderr.into(),
            truncated: false,
            duration: Duration::from_millis(1500),
            kill: None,
            cause: None,
        }
    }

    #[test]
    fn timeouts() {
        let t = timeout_arg(&args(json!({})), "timeout", Some(30)).unwrap();
        assert_eq!(
            (t.duration, t.shown.as_str()),
            (Duration::from_secs(30), "30")
        );
        let t = timeout_arg(&args(json!({"timeout": 0.3})), "timeout", Some(30)).unwrap();
        assert_eq!(
            (t.duration, t.shown.as_str()),
            (Duration::from_millis(300), "0.3")
        );
        let t = timeout_arg(&args(json!({"timeout": 60.0})), "timeout", Some(30)).unwrap();
        assert_eq!(t.shown, "60.0");
        assert_eq!(
            timeout_arg(&args(json!({"timeout": 0})), "timeout", Some(30)),
            None
        );
        assert_eq!(
            timeout_arg(&args(json!({"timeout": null})), "timeout", Some(30)),
            None
        );
        assert_eq!(timeout_arg(&args(json!({})), "compile_timeout", None), None);
        assert_eq!(
            timeout_arg(&args(json!({"timeout": 1e300})), "timeout", None),
            None
        );
        assert_eq!(
            timeout_arg(&args(json!({"timeout": 1e19})), "timeout", None),
            None
        );
        // More than a year is no limit.
        assert_eq!(
            timeout_arg(&args(json!({"timeout": 4e7})), "timeout", None),
            None
        );
    }

    #[test]
    fn status_mapping_and_texts() {
        let t = Timeout {
            duration: Duration::from_secs(5),
            shown: "5".into(),
        };
        let r = to_result(
            "sh",
            finished(ExecEnd::Exited(Some(0)), "hi\n", "warn"),
            Some(&t),
            &COMMAND_TEXTS,
        );
        assert_eq!(r.status, ExecutionStatus::Success);
        assert_eq!((r.output, r.error), (json!("hi\n"), None));
        assert_eq!(r.metadata["stderr"], "warn");
        assert_eq!(r.metadata["exit_code"], 0);
        assert_eq!(r.metadata["duration_ms"], 1500);
        assert_eq!(r.metadata["truncated"], false);

        let r = to_result(
            "sh",
            finished(ExecEnd::Exited(Some(124)), "", ""),
            Some(&t),
            &COMMAND_TEXTS,
        );
        assert_eq!(r.status, ExecutionStatus::Error);
        assert_eq!(
            r.error.as_deref(),
            Some("Command failed with exit code 124")
        );
        assert!(!r.metadata.contains_key("stderr"));

        let r = to_result(
            "sh",
            finished(ExecEnd::Exited(Some(1)), "", "boom"),
            Some(&t),
            &COMMAND_TEXTS,
        );
        assert_eq!(r.error.as_deref(), Some("boom"));

        let r = to_result(
            "sh",
            finished(ExecEnd::TimedOut, "partial", ""),
            Some(&t),
            &COMMAND_TEXTS,
        );
        assert_eq!(r.status, ExecutionStatus::Timeout);
        assert_eq!(r.output, json!("partial"));
        assert_eq!(
            r.error.as_deref(),
            Some("Command timed out after 5 seconds")
        );
        assert_eq!(r.metadata["exit_code"], Value::Null);

        let r = to_result(
            "sh",
            finished(ExecEnd::Cancelled, "", "bye"),
            None,
            &COMMAND_TEXTS,
        );
        assert_eq!(r.status, ExecutionStatus::Cancelled);
        assert_eq!(r.error.as_deref(), Some(CANCELLED));
        assert_eq!(r.metadata["stderr"], "bye");
    }

    #[test]
    fn outside_causes_are_named() {
        let mut oom = finished(ExecEnd::Exited(Some(137)), "", "");
        oom.cause = Some(ExitCause::OutOfMemory);
        let r = to_result("py", oom, None, &COMMAND_TEXTS);
        assert_eq!(r.status, ExecutionStatus::Error);
        assert!(r.error.unwrap().contains("memory limit"));
        assert_eq!(r.metadata["oom_killed"], true);

        let mut gone = finished(ExecEnd::Exited(None), "", "");
        gone.cause = Some(ExitCause::SandboxGone);
        let r = to_result("py", gone, None, &COMMAND_TEXTS);
        assert!(r.error.unwrap().contains("sandbox was removed"));

        let mut survived = finished(ExecEnd::TimedOut, "", "");
        survived.kill = Some(KillReport::Survivors { killed: 3, left: 1 });
        let r = to_result("py", survived, None, &COMMAND_TEXTS);
        assert_eq!(r.metadata["kill_verified"], false);
    }
}

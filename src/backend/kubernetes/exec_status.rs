//! The end of an exec through the API server: its last message on channel 3 (the error
//! channel of `v4.channel.k8s.io` and `v5.channel.k8s.io`) is a `metav1.Status`, which says how
//! the command ended. A missing frame says nothing: the connection was dropped and the outcome
//! is unknown, never "exit 0".

use serde_json::Value;

/// How an exec ended, from its status frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExecEnd {
    /// The command ran and exited with this code.
    Exited(i32),
    /// The command did not run or its end is unknown (container not found, exec refused,
    /// a frame that is not a status): the reason in words.
    Failed(String),
}

/// Reads the status frame; `None` (no frame before the stream closed) is a failure too.
pub(crate) fn exec_end(frame: Option<&[u8]>) -> ExecEnd {
    let Some(frame) = frame else {
        return ExecEnd::Failed(
            "the connection closed before the exec's status came: its exit code is unknown".into(),
        );
    };
    let Ok(status) = serde_json::from_slice::<Value>(frame) else {
        return ExecEnd::Failed(format!(
            "the exec's status is not JSON: {}",
            String::from_utf8_lossy(frame)
                .chars()
                .take(200)
                .collect::<String>()
        ));
    };
    match status["status"].as_str() {
        Some("Success") => ExecEnd::Exited(0),
        Some("Failure") if status["reason"] == "NonZeroExitCode" => match exit_code(&status) {
            Some(code) => ExecEnd::Exited(code),
            None => ExecEnd::Failed(format!("a non-zero exit without its code: {status}")),
        },
        Some("Failure") => ExecEnd::Failed(
            status["message"]
                .as_str()
                .unwrap_or("the exec failed without a message")
                .to_string(),
        ),
        _ => ExecEnd::Failed(format!(
            "the exec's status says neither success nor failure: {status}"
        )),
    }
}

/// `details.causes[reason=ExitCode].message`, the code as text.
fn exit_code(status: &Value) -> Option<i32> {
    status["details"]["causes"]
        .as_array()?
        .iter()
        .find(|cause| cause["reason"] == "ExitCode")?["message"]
        .as_str()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_frames_become_exit_codes() {
        assert_eq!(
            exec_end(Some(br#"{"metadata":{},"status":"Success"}"#)),
            ExecEnd::Exited(0)
        );
        let three = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(exec_end(Some(three)), ExecEnd::Exited(3));
        let killed = br#"{"metadata":{},"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"137"}]}}"#;
        assert_eq!(exec_end(Some(killed)), ExecEnd::Exited(137));
    }

    #[test]
    fn anything_else_is_a_failure_in_words_never_a_success() {
        let gone = br#"{"metadata":{},"status":"Failure","message":"container not found (\"sandbox\")","reason":"InternalError","code":500}"#;
        assert_eq!(
            exec_end(Some(gone)),
            ExecEnd::Failed("container not found (\"sandbox\")".into())
        );
        assert!(matches!(exec_end(None), ExecEnd::Failed(m) if m.contains("unknown")));
        assert!(matches!(exec_end(Some(b"garbage")), ExecEnd::Failed(m) if m.contains("not JSON")));
        let no_code = br#"{"status":"Failure","reason":"NonZeroExitCode","details":{}}"#;
        assert!(matches!(exec_end(Some(no_code)), ExecEnd::Failed(_)));
        assert!(matches!(
            exec_end(Some(br#"{"kind":"Status"}"#)),
            ExecEnd::Failed(_)
        ));
    }
}

//! A `run_code` answer as a `ToolResult`, exactly as ms-enclave maps it (reference §3.8), minus
//! its crash on a `run_result` that is not an object.

use serde_json::Value;

use crate::model::{ExecutionStatus, ToolResult};

/// `output` is the run's stdout; `error` is the run's stderr, the compile stderr, then the
/// service's `message` unless already said, joined by newlines; success only for status
/// `Success` with return code 0, `"0"` or none.
pub(crate) fn to_result(tool_name: &str, answer: &Value) -> ToolResult {
    let field = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    // A part that is not an object (null, a string) is read as absent.
    let object = |key: &str| answer.get(key).filter(|v| v.is_object()).cloned();
    let run = object("run_result").unwrap_or(Value::Null);
    let compile = object("compile_result").unwrap_or(Value::Null);
    let status = field(answer, "status");
    let message = field(answer, "message");
    let stdout = field(&run, "stdout");

    let mut errors: Vec<String> = [field(&run, "stderr"), field(&compile, "stderr")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    if !message.is_empty()
        && !stdout.contains(&message)
        && !errors.iter().any(|e| e.contains(&message))
    {
        errors.push(message);
    }
    let error = (!errors.is_empty()).then(|| errors.join("\n"));

    let exited_zero = match run.get("return_code") {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::String(s)) => s == "0",
        Some(_) => false,
    };
    let ok = status == "Success" && exited_zero;
    let status = if ok {
        ExecutionStatus::Success
    } else {
        ExecutionStatus::Error
    };
    let mut result = ToolResult::new(tool_name, status, stdout).with_error(error);
    // enclave's tools say how the program exited, as the Docker path does.
    if let Some(code) = run.get("return_code").and_then(|c| match c {
        Value::String(s) => s.parse::<i64>().ok(),
        other => other.as_i64(),
    }) {
        result.metadata.insert("exit_code".into(), code.into());
    }
    result
}

/// A call that got no usable answer: `Execution failed: <why>`.
pub(crate) fn failed(tool_name: &str, why: &str) -> ToolResult {
    ToolResult::failure(tool_name, format!("Execution failed: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(answer: Value) -> (ExecutionStatus, Value, Option<String>) {
        let r = to_result("t", &answer);
        (r.status, r.output, r.error)
    }

    #[test]
    fn a_success() {
        let (status, output, error) = map(json!({
            "status": "Success", "message": "",
            "run_result": {"status": "Finished", "stdout": "hi\n", "stderr": "", "return_code": 0}
        }));
        assert_eq!(
            (status, output, error),
            (ExecutionStatus::Success, json!("hi\n"), None)
        );
    }

    #[test]
    fn return_codes_that_count_as_success() {
        for code in [json!(0), json!("0"), Value::Null] {
            let (status, ..) =
                map(json!({"status": "Success", "run_result": {"return_code": code}}));
            assert_eq!(status, ExecutionStatus::Success, "{code}");
        }
        let (status, ..) = map(json!({"status": "Success", "run_result": {"stdout": "x"}}));
        assert_eq!(status, ExecutionStatus::Success);
        for code in [json!(1), json!("1"), json!(true)] {
            let (status, ..) =
                map(json!({"status": "Success", "run_result": {"return_code": code}}));
            assert_eq!(status, ExecutionStatus::Error, "{code}");
        }
    }

    #[test]
    fn a_failure_joins_stderr_compile_stderr_and_message() {
        let (status, output, error) = map(json!({
            "status": "Failed", "message": "compile error",
            "compile_result": {"stderr": "main.cpp:1: error"},
            "run_result": {"stdout": "out", "stderr": "boom", "return_code": 1}
        }));
        assert_eq!(status, ExecutionStatus::Error);
        assert_eq!(output, json!("out"));
        assert_eq!(error.unwrap(), "boom\nmain.cpp:1: error\ncompile error");
        let r = to_result(
            "t",
            &json!({"status": "Failed", "run_result": {"return_code": "3"}}),
        );
        assert_eq!(r.metadata["exit_code"], 3);
    }

    #[test]
    fn a_message_already_said_is_not_repeated() {
        let (_, _, error) = map(json!({
            "status": "Failed", "message": "boom",
            "run_result": {"stderr": "Traceback: boom", "return_code": 1}
        }));
        assert_eq!(error.unwrap(), "Traceback: boom");
        let (_, _, error) = map(json!({
            "status": "SandboxError", "message": "x", "run_result": {"stdout": "x"}
        }));
        assert_eq!(error, None);
    }

    #[test]
    fn a_run_result_that_is_not_an_object_does_not_crash() {
        for run in [json!("oops"), json!(null), json!([1]), json!(3)] {
            let (status, output, error) =
                map(json!({"status": "Failed", "message": "no run", "run_result": run}));
            assert_eq!(status, ExecutionStatus::Error);
            assert_eq!(output, json!(""));
            assert_eq!(error.as_deref(), Some("no run"));
        }
        let (status, output, error) = map(json!({}));
        assert_eq!(
            (status, output, error),
            (ExecutionStatus::Error, json!(""), None)
        );
    }

    #[test]
    fn success_needs_status_success() {
        let (status, ..) = map(json!({"status": "Failed", "run_result": {"return_code": 0}}));
        assert_eq!(status, ExecutionStatus::Error);
    }
}

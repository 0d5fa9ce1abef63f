//! `python_executor`: runs a Python snippet in a fresh interpreter (stateless, as in ms-enclave).
//!
//! The code travels on the exec's stdin into a small `sh` script that writes it to a temp file,
//! picks an interpreter (the `python_path` option, else `python3`, else `python`), runs the
//! file and removes it. Nothing of the code is ever part of a shell string. A timeout or a
//! cancellation kills the whole process tree; the temp file is then removed by a second exec.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::options::ToolOptions;
use super::run::{self, Command, COMMAND_TEXTS};
use super::{Tool, ToolContext, ToolInfo};
use crate::model::{random_hex, Capture, ExecSpec, SandboxType, ToolResult};

pub(super) struct PythonExecutor;

static INFO: ToolInfo = ToolInfo {
    key: "python_executor",
    description: DESCRIPTION,
    sandbox_types: &[SandboxType::Docker, SandboxType::Volcengine],
    parameters: parameters_schema,
};

/// `$1`: the temp file, `$2`: the interpreter (empty: find one). The code arrives on stdin.
const RUNNER: &str = r#"f=$1 py=$2
set -C
cat > "$f" || exit 125
set +C
if [ -z "$py" ]; then
  for c in python3 python; do
    if command -v "$c" >/dev/null 2>&1; then py=$c; break; fi
  done
fi
if [ -z "$py" ]; then
  rm -f "$f"
  echo "python_executor: no python3 or python on the PATH of this image (set the python_path tool option)" >&2
  exit 127
fi
"$py" "$f" </dev/null
rc=$?
rm -f "$f"
exit $rc"#;

#[async_trait]
impl Tool for PythonExecutor {
    fn info(&self) -> &'static ToolInfo {
        &INFO
    }

    async fn execute(
        &self,
        ctx: &ToolContext<'_>,
        name: &str,
        args: &Map<String, Value>,
        options: &ToolOptions,
    ) -> ToolResult {
        let code = args.get("code").and_then(Value::as_str).unwrap_or("");
        if code.trim().is_empty() {
            return ToolResult::failure(name, "No code provided");
        }
        let timeout = run::timeout_arg(args, "timeout", Some(30));
        if let Some(result) = through_backend(ctx, name, code, options, timeout.as_ref()).await {
            return result;
        }
        let script = temp_script_path();
        let mut command = Command::new(
            vec![
                "sh".into(),
                "-c".into(),
                RUNNER.into(),
                "sh".into(),
                script.clone(),
                options.python_path.clone().unwrap_or_default(),
            ],
            options.max_output_size,
        );
        // Unbuffered, so what the code printed before a timeout is not lost with it.
        command.env = vec!["PYTHONUNBUFFERED=1".into()];
        command.stdin = Some(code.as_bytes().to_vec());
        command.timeout = timeout.as_ref().map(|t| t.duration);
        match command.run(ctx, ctx.cancel.clone()).await {
            Ok(finished) => {
                let killed = finished.end.was_killed();
                let result = run::to_result(name, finished, timeout.as_ref(), &COMMAND_TEXTS);
                if killed {
                    // The runner died before it could remove the script.
                    let _ = run::helper(ctx, &["rm", "-f", "--", &script]).await;
                }
                result
            }
            Err(e) => {
                let _ = run::helper(ctx, &["rm", "-f", "--", &script]).await;
                run::execution_failed(name, &e)
            }
        }
    }
}

/// Runs the code with the backend's own Python runner (the agent's warm interpreter); `None`
/// when the backend has none, or none for this image, and the script runner must do it.
async fn through_backend(
    ctx: &ToolContext<'_>,
    name: &str,
    code: &str,
    options: &ToolOptions,
    timeout: Option<&run::Timeout>,
) -> Option<ToolResult> {
    let mut spec = ExecSpec::new(Vec::new());
    // Unbuffered, as the script runner runs it.
    spec.env = vec!["PYTHONUNBUFFERED=1".into()];
    spec.timeout = timeout.map(|t| t.duration);
    spec.cancel = ctx.cancel.clone();
    let mut capture = Capture::new(options.max_output_size);
    let interpreter = options.python_path.as_deref().filter(|p| !p.is_empty());
    match ctx
        .backend
        .run_python(code, interpreter, spec, &mut capture)
        .await
    {
        Ok(Some(outcome)) => {
            let finished = run::Finished::of(outcome, capture);
            Some(run::to_result(name, finished, timeout, &COMMAND_TEXTS))
        }
        Ok(None) => None,
        Err(e) => Some(run::execution_failed(name, &e)),
    }
}

fn temp_script_path() -> String {
    format!("/tmp/enclave_py_{}.py", random_hex())
}

const DESCRIPTION: &str = "Execute Python code in an isolated environment using IPython";

fn parameters_schema() -> Value {
    json!({"type":"object","properties":{"code":{"type":"string","description":"Python code to execute"},"timeout":{"type":"integer","description":"Execution timeout in seconds","default":30}},"required":["code"],"additionalProperties":false})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_scripts_are_unique_and_plain() {
        let a = temp_script_path();
        assert_ne!(a, temp_script_path());
        assert!(a.starts_with("/tmp/enclave_py_") && a.ends_with(".py"));
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.".contains(c)));
    }
}

//! `shell_executor`: a string command always runs through `sh -c` (ms-enclave drops the shell
//! when the timeout is 0; we do not), an array runs as argv.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::options::ToolOptions;
use super::run::{self, Command, COMMAND_TEXTS};
use super::{Tool, ToolContext, ToolInfo};
use crate::model::{SandboxType, ToolResult};

pub(super) struct ShellExecutor;

static INFO: ToolInfo = ToolInfo {
    key: "shell_executor",
    description: DESCRIPTION,
    sandbox_types: &[SandboxType::Docker, SandboxType::Volcengine],
    parameters: parameters_schema,
};

#[async_trait]
impl Tool for ShellExecutor {
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
        let Some(argv) = argv(args.get("command")) else {
            return ToolResult::failure(name, "No command provided");
        };
        let timeout = run::timeout_arg(args, "timeout", Some(30));
        let mut command = Command::new(argv, options.max_output_size);
        command.timeout = timeout.as_ref().map(|t| t.duration);
        match command.run(ctx, ctx.cancel.clone()).await {
            Ok(finished) => run::to_result(name, finished, timeout.as_ref(), &COMMAND_TEXTS),
            Err(e) => run::execution_failed(name, &e),
        }
    }
}

/// The argv to run; `None` when there is no command (ms-enclave: a falsy value or blank string).
fn argv(command: Option<&Value>) -> Option<Vec<String>> {
    match command? {
        Value::String(s) if !s.trim().is_empty() => Some(vec!["sh".into(), "-c".into(), s.clone()]),
        Value::Array(items) if !items.is_empty() => {
            items.iter().map(|v| v.as_str().map(String::from)).collect()
        }
        _ => None,
    }
}

const DESCRIPTION: &str = "Execute shell commands in an isolated environment";

fn parameters_schema() -> Value {
    json!({"type":"object","properties":{"command":{"anyOf":[{"type":"string","description":"Shell command to execute"},{"type":"array","description":"List of shell command arguments to execute","items":{"type":"string"}}]},"timeout":{"type":"integer","description":"Execution timeout in seconds","default":30}},"required":["command"],"additionalProperties":false})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_go_through_a_shell_and_arrays_do_not() {
        assert_eq!(
            argv(Some(&json!("echo a | tr a b"))).unwrap(),
            ["sh", "-c", "echo a | tr a b"]
        );
        assert_eq!(
            argv(Some(&json!(["printf", "%s", "$(id)"]))).unwrap(),
            ["printf", "%s", "$(id)"]
        );
    }

    #[test]
    fn no_command() {
        for v in [json!(""), json!("  \n"), json!([]), json!(null)] {
            assert_eq!(argv(Some(&v)), None, "{v}");
        }
        assert_eq!(argv(None), None);
    }
}

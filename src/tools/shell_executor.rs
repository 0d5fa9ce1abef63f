//! `shell_executor`.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::{Tool, ToolContext};
use crate::model::{SandboxType, ToolResult};

pub struct ShellExecutor;

#[async_trait]
impl Tool for ShellExecutor {
    fn key(&self) -> &'static str {
        "shell_executor"
    }

    fn description(&self) -> &'static str {
        DESCRIPTION
    }

    fn parameters(&self) -> Value {
        PARAMETERS()
    }

    fn sandbox_types(&self) -> &'static [SandboxType] {
        &[SandboxType::Docker]
    }

    async fn execute(
        &self,
        _ctx: &ToolContext<'_>,
        name: &str,
        _args: &Map<String, Value>,
        _options: &Map<String, Value>,
    ) -> ToolResult {
        ToolResult::failure(name, "PENDING")
    }
}

const DESCRIPTION: &str = "Execute shell commands in an isolated environment";

#[allow(non_snake_case)]
fn PARAMETERS() -> Value {
    json!({"type":"object","properties":{"command":{"anyOf":[{"type":"string","description":"Shell command to execute"},{"type":"array","description":"List of shell command arguments to execute","items":{"type":"string"}}]},"timeout":{"type":"integer","description":"Execution timeout in seconds","default":30}},"required":["command"],"additionalProperties":false})
}

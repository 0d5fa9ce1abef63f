//! `python_executor`.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::{Tool, ToolContext};
use crate::model::{SandboxType, ToolResult};

pub struct PythonExecutor;

#[async_trait]
impl Tool for PythonExecutor {
    fn key(&self) -> &'static str {
        "python_executor"
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

const DESCRIPTION: &str = "Execute Python code in an isolated environment using IPython";

#[allow(non_snake_case)]
fn PARAMETERS() -> Value {
    json!({"type":"object","properties":{"code":{"type":"string","description":"Python code to execute"},"timeout":{"type":"integer","description":"Execution timeout in seconds","default":30}},"required":["code"],"additionalProperties":false})
}

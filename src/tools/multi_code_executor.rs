//! `multi_code_executor`.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::{Tool, ToolContext};
use crate::model::{SandboxType, ToolResult};

pub struct MultiCodeExecutor;

#[async_trait]
impl Tool for MultiCodeExecutor {
    fn key(&self) -> &'static str {
        "multi_code_executor"
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

const DESCRIPTION: &str = "Execute code in various languages (python, cpp, csharp, go, java, nodejs, ts, rust, php, bash, pytest, jest, go_test, lua, r, perl, d_ut, ruby, scala, julia, kotlin_script, verilog, lean, swift, racket) with runtime tuning";

#[allow(non_snake_case)]
fn PARAMETERS() -> Value {
    json!({"type":"object","properties":{
        "language":{"type":"string","description":"Programming language (python, cpp, csharp, go, java, nodejs, ts, rust, php, bash, pytest, jest, go_test, lua, r, perl, d_ut, ruby, scala, julia, kotlin_script, verilog, lean, swift, racket)"},
        "code":{"type":"string","description":"Source code to execute"},
        "files":{"type":"object","additionalProperties":{"type":"string"},"description":"Optional additional files to write before execution (filename -> content)"},
        "compile_timeout":{"type":"integer","description":"Compile timeout in seconds (omit to disable compilation timeout)"},
        "run_timeout":{"type":"integer","description":"Run timeout in seconds","default":30}
    },"required":["language","code"],"additionalProperties":false})
}

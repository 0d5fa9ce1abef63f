//! `file_operation`.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::{Tool, ToolContext};
use crate::model::{SandboxType, ToolResult};

pub struct FileOperation;

#[async_trait]
impl Tool for FileOperation {
    fn key(&self) -> &'static str {
        "file_operation"
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

const DESCRIPTION: &str = "Perform file operations like read, write, delete, and list files";

#[allow(non_snake_case)]
fn PARAMETERS() -> Value {
    json!({"type":"object","properties":{"operation":{"type":"string","description":"Type of file operation to perform","enum":["create","read","write","delete","list","exists"]},"file_path":{"type":"string","description":"Path to the file or directory"},"content":{"type":"string","description":"Content to write to file (only for write operation)"},"encoding":{"type":"string","description":"File encoding","default":"utf-8"}},"required":["operation","file_path"],"additionalProperties":false})
}

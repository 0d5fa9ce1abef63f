//! `ToolResult`: what every tool call returns, on the wire as ms-enclave shapes it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    Success,
    Error,
    Timeout,
    Cancelled,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolResult {
    pub status: ExecutionStatus,
    /// Seconds the call took.
    pub execution_time: Option<f64>,
    #[serde(with = "super::timestamp")]
    pub timestamp: DateTime<Utc>,
    pub tool_name: String,
    pub output: Value,
    pub metadata: Map<String, Value>,
    pub error: Option<String>,
}

impl ToolResult {
    pub fn new(tool_name: &str, status: ExecutionStatus, output: impl Into<Value>) -> Self {
        ToolResult {
            status,
            execution_time: None,
            timestamp: Utc::now(),
            tool_name: tool_name.to_string(),
            output: output.into(),
            metadata: Map::new(),
            error: None,
        }
    }

    pub fn success(tool_name: &str, output: impl Into<Value>) -> Self {
        Self::new(tool_name, ExecutionStatus::Success, output)
    }

    /// A failed call: empty output and the error text, as ms-enclave reports input errors.
    pub fn failure(tool_name: &str, error: impl Into<String>) -> Self {
        let mut r = Self::new(tool_name, ExecutionStatus::Error, "");
        r.error = Some(error.into());
        r
    }

    pub fn with_error(mut self, error: Option<String>) -> Self {
        self.error = error;
        self
    }
}

//! Wire types shared by the CLI, the manager and (later) the HTTP server and client.
//!
//! Field names, defaults and enum strings follow ms-enclave so its clients interoperate.

mod config;
mod flex;
mod sandbox;
pub mod timestamp;
mod tool_result;

pub use config::{
    parse_memory_limit, Command, DockerSandboxConfig, PortSpec, ToolsConfig, VolumeSpec,
    DEFAULT_PIDS_LIMIT,
};
pub use sandbox::{new_sandbox_id, SandboxInfo, SandboxStatus, SandboxType};
pub use tool_result::{ExecutionStatus, ToolResult};

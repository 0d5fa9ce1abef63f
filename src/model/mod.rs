//! The shared vocabulary: wire types that the CLI, the manager and (later) the HTTP server and
//! client exchange, and the exec and I/O types every backend speaks.
//!
//! Field names, defaults and enum strings follow ms-enclave so its clients interoperate.

mod capture;
mod config;
mod exec;
mod flex;
mod ids;
mod image_ref;
mod sandbox;
pub(crate) mod timestamp;
mod tool_result;
mod volcengine;
mod wire;

pub use capture::{Capped, Capture, DEFAULT_MAX_OUTPUT};
pub use config::{
    parse_memory_limit, Command, DockerSandboxConfig, PortSpec, ToolsConfig, VolumeSpec,
    DEFAULT_IMAGE, DEFAULT_NOTEBOOK_IMAGE, DEFAULT_PIDS_LIMIT,
};
pub use exec::{
    parse_env_entry, ArchiveStream, Discard, ExecEnd, ExecOutcome, ExecSpec, ExitCause, KillReport,
    NoProgress, OutputSink, PullObserver, Stream,
};
pub use ids::{new_sandbox_id, random_hex};
/// Seconds a sandbox may go unused before any enclave process removes it (`enclave mcp`'s).
pub const LABEL_IDLE_EXPIRY: &str = "enclave.idle-expiry";

pub use sandbox::{
    AgentInfo, Location, Removal, Removed, Sandbox, SandboxInfo, SandboxStatus, SandboxType,
};
pub use tool_result::{ExecutionStatus, ToolResult};
pub use volcengine::VolcengineSandboxConfig;
pub use wire::{ExecEvent, ExecRequest, WireOutcome};

/// The longest timeout enclave enforces: a year. Longer is a typo on the command line, and no
/// limit at all in a tool's `timeout` argument (deadlines that far away overflow the clock).
pub const MAX_TIMEOUT_SECS: f64 = 365.0 * 24.0 * 3600.0;

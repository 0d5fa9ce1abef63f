//! The small set of expected failures that callers branch on, each with an exit code and a hint.

use std::fmt;

/// Process exit codes, documented in `docs/cli.md`.
pub mod exit_code {
    pub const SUCCESS: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const TIMEOUT: u8 = 124;
    pub const ENGINE: u8 = 125;
    pub const NOT_EXECUTABLE: u8 = 126;
    pub const NOT_FOUND: u8 = 127;
    pub const INTERRUPTED: u8 = 130;
}

/// An error a user can act on. Anything else travels as a plain `anyhow::Error` and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the Docker engine")]
    DockerUnavailable { detail: String },
    #[error("the Docker engine refused the request: {0}")]
    Engine(String),
    #[error("sandbox `{0}` not found")]
    NotFound(String),
    #[error("sandbox id `{prefix}` is ambiguous: it matches {}", .candidates.join(", "))]
    Ambiguous {
        prefix: String,
        candidates: Vec<String>,
    },
    #[error("sandbox `{id}` is not running (status: {status})")]
    NotRunning { id: String, status: String },
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("image `{image}` is not available locally and could not be pulled")]
    ImageUnavailable { image: String, detail: String },
    #[error("invalid arguments for tool `{tool}`: {message}")]
    InvalidToolArgs { tool: String, message: String },
    #[error("tool `{tool}` is not available in sandbox `{sandbox}`")]
    ToolUnavailable {
        sandbox: String,
        tool: String,
        available: Vec<String>,
    },
    #[error("{0}")]
    Usage(String),
    #[error("interrupted")]
    Interrupted,
}

/// Machine-readable kind, used in `--json` error output.
impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::DockerUnavailable { .. } => "docker_unavailable",
            Error::Engine(_) => "engine_error",
            Error::NotFound(_) => "not_found",
            Error::NotRunning { .. } => "not_running",
            Error::Ambiguous { .. } => "ambiguous",
            Error::InvalidConfig(_) => "invalid_config",
            Error::ImageUnavailable { .. } => "image_unavailable",
            Error::InvalidToolArgs { .. } => "invalid_arguments",
            Error::ToolUnavailable { .. } => "tool_unavailable",
            Error::Usage(_) => "usage",
            Error::Interrupted => "interrupted",
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::DockerUnavailable { .. } | Error::Engine(_) => exit_code::ENGINE,
            Error::InvalidToolArgs { .. } | Error::Usage(_) => exit_code::USAGE,
            Error::Interrupted => exit_code::INTERRUPTED,
            Error::NotFound(_)
            | Error::NotRunning { .. }
            | Error::Ambiguous { .. }
            | Error::InvalidConfig(_)
            | Error::ImageUnavailable { .. }
            | Error::ToolUnavailable { .. } => exit_code::FAILURE,
        }
    }

    /// A detail line shown under the message, when there is one.
    pub fn cause(&self) -> Option<String> {
        match self {
            Error::DockerUnavailable { detail } | Error::ImageUnavailable { detail, .. } => {
                Some(detail.clone())
            }
            _ => None,
        }
    }

    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            Error::DockerUnavailable { .. } => {
                "start the engine (`sudo systemctl start docker`, or `sudo dockerd &`), \
                 or point DOCKER_HOST at one; `./scripts/ensure-docker.sh` does it on Debian"
            }
            Error::NotFound(_) => "`enclave ls` lists the sandboxes you have",
            Error::NotRunning { id, .. } => {
                return Some(format!(
                    "its container was stopped outside enclave: `docker start enclave-{id}` \
                     brings it back, or `enclave rm {id}` removes it"
                ))
            }
            Error::Ambiguous { .. } => "give more characters of the id",
            Error::InvalidConfig(_) => "see docs/config.md for every field and its format",
            Error::ImageUnavailable { .. } => {
                "check the name, `docker pull` it yourself, or build it locally"
            }
            Error::InvalidToolArgs { tool, .. } => {
                return Some(format!(
                    "`enclave tools ID --schema {tool}` shows its parameters"
                ))
            }
            Error::ToolUnavailable { available, .. } if available.is_empty() => {
                "this sandbox has no tools; create one with `--tool NAME`"
            }
            Error::ToolUnavailable { available, .. } => {
                return Some(format!("its tools are: {}", available.join(", ")))
            }
            Error::Usage(_) => "`--help` shows what the command takes",
            Error::Engine(_) | Error::Interrupted => return None,
        };
        Some(hint.to_string())
    }
}

/// The domain error inside an `anyhow::Error` chain, if there is one.
pub fn find(err: &anyhow::Error) -> Option<&Error> {
    err.chain().find_map(|e| e.downcast_ref::<Error>())
}

/// Wraps a string that came from inside a sandbox or the engine, for display in our own messages.
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() && c != '\n' && c != '\t' {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

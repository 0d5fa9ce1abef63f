//! The small set of expected failures that callers branch on, each with an exit code and a hint.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Process exit codes, documented in `docs/cli.md`.
pub mod exit_code {
    pub const SUCCESS: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const TIMEOUT: u8 = 124;
    pub const ENGINE: u8 = 125;
    pub const NOT_EXECUTABLE: u8 = 126;
    pub const NOT_FOUND: u8 = 127;
    /// 128 + `SIGINT`: Ctrl-C (`SIGTERM` gives 143 and `SIGHUP` 129, the same way).
    pub const INTERRUPTED: u8 = 130;
    /// 128 + `SIGPIPE`: what a shell reports for a writer whose reader went away.
    pub const BROKEN_PIPE: u8 = 141;
}

/// A signal that asks enclave to stop: it cleans up what it started, then exits `128 + n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `SIGHUP`: the terminal closed.
    Hangup,
    /// `SIGINT`: Ctrl-C.
    Interrupt,
    /// `SIGTERM`: `timeout(1)`, `kill`, a CI job being cancelled.
    Terminate,
}

impl Signal {
    pub fn number(self) -> u8 {
        match self {
            Signal::Hangup => 1,
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Hangup => "SIGHUP",
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// An error a user can act on. Anything else travels as a plain `anyhow::Error` and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `what` does not answer (an engine that is down, a wrong address).
    #[error("cannot reach {what}")]
    Unavailable {
        /// The JSON `kind`, e.g. `docker_unavailable`.
        kind: &'static str,
        what: String,
        detail: String,
        hint: String,
    },
    /// The backend understood the request and said no.
    #[error("{by} refused the request: {message}")]
    Refused { by: String, message: String },
    #[error("sandbox `{0}` not found")]
    NotFound(String),
    #[error("sandbox `{0}` was removed while the command ran; the command was killed with it")]
    Vanished(String),
    #[error("sandbox id `{prefix}` is ambiguous: it matches {}", .candidates.join(", "))]
    Ambiguous {
        prefix: String,
        candidates: Vec<String>,
    },
    #[error("sandbox `{id}` is not running (status: {status})")]
    NotRunning {
        id: String,
        status: String,
        /// How to bring it back, in the backend's words.
        hint: Option<String>,
    },
    /// Asked of a sandbox that has no shell, files or processes (a `volcengine` one).
    #[error("sandbox `{id}` cannot {what}: it is a `volcengine` sandbox, with no shell or files")]
    NoShell { id: String, what: &'static str },
    #[error("working directory `{0}` does not exist in the sandbox")]
    NoWorkdir(String),
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
    #[error(
        "another enclave process holds the lock on the state file {path} (waited {waited_secs}s)"
    )]
    StateLocked { path: String, waited_secs: u64 },
    #[error("`{path}` does not exist in sandbox `{sandbox}`")]
    PathNotFound { sandbox: String, path: String },
    #[error("{0}")]
    Usage(String),
    #[error("interrupted by {}", .0.name())]
    Interrupted(Signal),
    /// An error that happened in an `enclave server`, as it reported it.
    #[error("{}", .0.message)]
    Remote(Report),
}

/// Machine-readable kind, used in `--json` error output.
impl Error {
    pub fn kind(&self) -> &str {
        match self {
            Error::Unavailable { kind, .. } => kind,
            Error::Remote(report) => &report.kind,
            Error::PathNotFound { .. } => "path_not_found",
            Error::Refused { .. } => "engine_error",
            Error::NotFound(_) | Error::Vanished(_) => "not_found",
            Error::NotRunning { .. } => "not_running",
            Error::NoWorkdir(_) => "no_workdir",
            Error::NoShell { .. } => "no_shell",
            Error::Ambiguous { .. } => "ambiguous",
            Error::InvalidConfig(_) => "invalid_config",
            Error::ImageUnavailable { .. } => "image_unavailable",
            Error::InvalidToolArgs { .. } => "invalid_arguments",
            Error::ToolUnavailable { .. } => "tool_unavailable",
            Error::StateLocked { .. } => "state_locked",
            Error::Usage(_) => "usage",
            Error::Interrupted(_) => "interrupted",
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Unavailable { .. } | Error::Refused { .. } => exit_code::ENGINE,
            Error::InvalidToolArgs { .. } | Error::Usage(_) => exit_code::USAGE,
            Error::Interrupted(signal) => 128 + signal.number(),
            Error::Remote(report) => report.exit_code,
            Error::NotFound(_)
            | Error::PathNotFound { .. }
            | Error::Vanished(_)
            | Error::NotRunning { .. }
            | Error::NoWorkdir(_)
            | Error::NoShell { .. }
            | Error::Ambiguous { .. }
            | Error::InvalidConfig(_)
            | Error::ImageUnavailable { .. }
            | Error::ToolUnavailable { .. }
            | Error::StateLocked { .. } => exit_code::FAILURE,
        }
    }

    /// A detail line shown under the message, when there is one.
    pub fn cause(&self) -> Option<String> {
        match self {
            Error::Unavailable { detail, .. } | Error::ImageUnavailable { detail, .. } => {
                Some(detail.clone())
            }
            _ => None,
        }
    }

    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            Error::Unavailable { hint, .. } => return Some(hint.clone()),
            Error::NotFound(_) => "`enclave ls` lists the sandboxes you have",
            Error::NotRunning { hint, .. } => return hint.clone(),
            Error::NoWorkdir(_) => "create it first, or leave `-w` out to use the sandbox's own",
            Error::NoShell { id, .. } => {
                return Some(format!(
                    "it runs code through its tools only: `enclave run-tool {id} python_executor --arg code=...`"
                ))
            }
            Error::Ambiguous { .. } => "give more characters of the id",
            Error::InvalidConfig(_) => "see docs/config.md for every field and its format",
            Error::ImageUnavailable { .. } => {
                "check the name, pull it yourself, or build it locally"
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
            Error::StateLocked { .. } => {
                "the lock is freed when that process ends; `ENCLAVE_LOCK_WAIT=SECS` waits longer"
            }
            Error::Usage(_) => "`--help` shows what the command takes",
            Error::PathNotFound { .. } => "`enclave exec ID ls DIR` shows what is there",
            Error::Remote(report) => return report.hint.clone(),
            Error::Refused { .. } | Error::Vanished(_) | Error::Interrupted(_) => return None,
        };
        Some(hint.to_string())
    }
}

/// An error as it is shown and as it travels (the `--json` error document, a server's error
/// bodies): the domain error is the headline wherever it sits in the chain; every other link
/// (context added above it, the source below it) reads as a cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub causes: Vec<String>,
    #[serde(default)]
    pub hint: Option<String>,
    /// The exit code a command that failed this way exits with.
    #[serde(default = "failure_code")]
    pub exit_code: u8,
}

fn failure_code() -> u8 {
    exit_code::FAILURE
}

impl Report {
    pub fn of(err: &anyhow::Error) -> Self {
        let domain = find(err);
        if let Some(Error::Remote(report)) = domain {
            let mut report = report.clone();
            // Context added on this side reads as causes before the server's own.
            let local: Vec<String> = err
                .chain()
                .map(ToString::to_string)
                .take_while(|c| *c != report.message)
                .collect();
            report.causes.splice(0..0, local);
            return report;
        }
        let message = domain.map_or_else(|| err.to_string(), ToString::to_string);
        let mut causes: Vec<String> = err
            .chain()
            .map(ToString::to_string)
            .chain(domain.and_then(Error::cause))
            .filter(|c| *c != message)
            .collect();
        causes.dedup();
        Report {
            kind: domain.map_or("error", Error::kind).to_string(),
            message,
            causes,
            hint: domain.and_then(Error::hint),
            exit_code: domain.map_or(exit_code::FAILURE, Error::exit_code),
        }
    }
}

/// The domain error inside an `anyhow::Error` chain, if there is one: the outermost, whether it
/// is the source or context added on the way up.
pub fn find(err: &anyhow::Error) -> Option<&Error> {
    err.downcast_ref::<Error>()
        .or_else(|| err.chain().find_map(|e| e.downcast_ref::<Error>()))
}

/// The process exit code for an error: the domain error's, else 1.
pub fn exit_code_of(err: &anyhow::Error) -> u8 {
    find(err).map_or(exit_code::FAILURE, Error::exit_code)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let cases: Vec<(Error, u8)> = vec![
            (
                Error::Unavailable {
                    kind: "docker_unavailable",
                    what: "x".into(),
                    detail: String::new(),
                    hint: String::new(),
                },
                125,
            ),
            (
                Error::Refused {
                    by: "x".into(),
                    message: "no".into(),
                },
                125,
            ),
            (Error::NotFound("a".into()), 1),
            (Error::Vanished("a".into()), 1),
            (Error::Usage("u".into()), 2),
            (
                Error::InvalidToolArgs {
                    tool: "t".into(),
                    message: "m".into(),
                },
                2,
            ),
            (Error::Interrupted(Signal::Interrupt), 130),
            (Error::Interrupted(Signal::Terminate), 143),
            (Error::Interrupted(Signal::Hangup), 129),
            (
                Error::StateLocked {
                    path: "p".into(),
                    waited_secs: 1,
                },
                1,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error}");
        }
    }

    #[test]
    fn the_exit_code_is_found_anywhere_in_the_chain() {
        let err = anyhow::Error::new(Error::NotFound("k3x9".into())).context("looking it up");
        assert_eq!(exit_code_of(&err), 1);
        let err = anyhow::Error::new(Error::Usage("bad".into())).context("parsing");
        assert_eq!(exit_code_of(&err), 2);
        let err = anyhow::anyhow!("cancelled").context(Error::Interrupted(Signal::Terminate));
        assert_eq!(exit_code_of(&err), 143);
        assert_eq!(exit_code_of(&anyhow::anyhow!("plain")), 1);
    }

    #[test]
    fn quoting_escapes_control_characters_only() {
        assert_eq!(
            Quoted("a\u{1b}[31mb\n\tc").to_string(),
            "a\\u{1b}[31mb\n\tc"
        );
    }
}

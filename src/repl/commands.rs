//! What one line at the `>>> ` prompt asks for: Python, a `!` shell command, or a `:` command.

use std::time::Duration;

/// The longest timeout: a year, as `--timeout` allows.
const MAX_TIMEOUT_SECS: f64 = 365.0 * 24.0 * 3600.0;

/// Seconds as a timeout: positive and at most a year.
pub(crate) fn timeout_from_secs(secs: f64) -> Result<Duration, String> {
    if secs > 0.0 && secs <= MAX_TIMEOUT_SECS {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!(
            "a timeout must be a positive number of seconds, at most a year; got {secs}"
        ))
    }
}

/// A line the REPL handles itself rather than sending as it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Line {
    /// Python source for the session.
    Code(String),
    /// `!cmd`: a shell command in the sandbox.
    Shell(String),
    Command(Command),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Help,
    Reset,
    /// `:timeout SECS` (`Some`) or `:timeout off` (`None`).
    Timeout(Option<Duration>),
    /// `:timeout` alone: say what it is.
    ShowTimeout,
    Upload {
        local: String,
        dest: Option<String>,
    },
    Download {
        path: String,
        local: Option<String>,
    },
    Tools,
    Quit,
}

pub(crate) const HELP: &str = "\
:help                    this list
:reset                   forget all variables and imports (a fresh interpreter)
:timeout SECS | off      interrupt each input after SECS seconds (variables are kept)
:upload LOCAL [DEST]     copy a local file or directory into the sandbox
:download PATH [LOCAL]   copy a file or directory out of the sandbox
:tools                   the sandbox's tools
:quit                    leave (the sandbox stays); Ctrl-D does the same
!CMD                     run a shell command in the sandbox, in the session's directory
Ctrl-C interrupts running code (the session survives); at the prompt it clears the line.";

/// Reads one complete input. Errors are messages for the user.
pub(crate) fn parse(input: &str) -> Result<Line, String> {
    let trimmed = input.trim();
    if let Some(cmd) = trimmed.strip_prefix('!') {
        if cmd.trim().is_empty() {
            return Err("`!` needs a command, as in `!ls -l`".into());
        }
        return Ok(Line::Shell(cmd.trim().to_string()));
    }
    let Some(rest) = trimmed.strip_prefix(':') else {
        return Ok(Line::Code(input.to_string()));
    };
    let words = shell_words::split(rest).map_err(|e| format!("`:{rest}`: {e}"))?;
    let Some((name, args)) = words.split_first() else {
        return Err("`:` needs a command; `:help` lists them".into());
    };
    let command = match (name.as_str(), args) {
        ("help" | "h" | "?", []) => Command::Help,
        ("reset", []) => Command::Reset,
        ("timeout", []) => Command::ShowTimeout,
        ("timeout", [value]) if value == "off" || value == "none" => Command::Timeout(None),
        ("timeout", [value]) => {
            let secs: f64 = value.parse().map_err(|_| {
                format!("`:timeout {value}`: expected a number of seconds or `off`")
            })?;
            Command::Timeout(Some(
                timeout_from_secs(secs).map_err(|e| format!("`:timeout`: {e}"))?,
            ))
        }
        ("upload", [local]) => Command::Upload {
            local: local.clone(),
            dest: None,
        },
        ("upload", [local, dest]) => Command::Upload {
            local: local.clone(),
            dest: Some(dest.clone()),
        },
        ("download", [path]) => Command::Download {
            path: path.clone(),
            local: None,
        },
        ("download", [path, local]) => Command::Download {
            path: path.clone(),
            local: Some(local.clone()),
        },
        ("tools", []) => Command::Tools,
        ("quit" | "q" | "exit", []) => Command::Quit,
        ("help" | "h" | "?" | "reset" | "tools" | "quit" | "q" | "exit", _) => {
            return Err(format!("`:{name}` takes no arguments"))
        }
        ("timeout", _) => return Err("usage: `:timeout SECS` or `:timeout off`".into()),
        ("upload", _) => return Err("usage: `:upload LOCAL [DEST]`".into()),
        ("download", _) => return Err("usage: `:download PATH [LOCAL]`".into()),
        _ => return Err(format!("unknown command `:{name}`; `:help` lists them")),
    };
    Ok(Line::Command(command))
}

/// The Python that runs `!cmd`: a shell in the session's process and directory, its output
/// streamed like any other; `and None` keeps the REPL from showing the result object.
pub(crate) fn shell_code(cmd: &str) -> String {
    let quoted = serde_json::to_string(cmd).unwrap_or_default();
    format!("__import__('subprocess').run({quoted}, shell=True) and None\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_as_code_shell_or_commands() {
        let cases: &[(&str, Result<Line, &str>)] = &[
            ("x = 1", Ok(Line::Code("x = 1".into()))),
            ("  !ls -l /tmp ", Ok(Line::Shell("ls -l /tmp".into()))),
            ("!", Err("needs a command")),
            (":help", Ok(Line::Command(Command::Help))),
            (":quit", Ok(Line::Command(Command::Quit))),
            (":reset", Ok(Line::Command(Command::Reset))),
            (":reset now", Err("takes no arguments")),
            (":timeout", Ok(Line::Command(Command::ShowTimeout))),
            (":timeout off", Ok(Line::Command(Command::Timeout(None)))),
            (
                ":timeout 2.5",
                Ok(Line::Command(Command::Timeout(Some(
                    Duration::from_millis(2500),
                )))),
            ),
            (":timeout -1", Err("positive")),
            (":timeout soon", Err("expected a number")),
            (
                ":upload 'a b.txt'",
                Ok(Line::Command(Command::Upload {
                    local: "a b.txt".into(),
                    dest: None,
                })),
            ),
            (
                ":download /sandbox/x ./y",
                Ok(Line::Command(Command::Download {
                    path: "/sandbox/x".into(),
                    local: Some("./y".into()),
                })),
            ),
            (":download", Err("usage")),
            (":frobnicate", Err("unknown command")),
            (":", Err("needs a command")),
            (":upload 'unclosed", Err("`:upload 'unclosed`")),
        ];
        for (input, expected) in cases {
            match (parse(input), expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{input}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{input}: {got}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn shell_commands_are_quoted_into_python() {
        assert_eq!(
            shell_code("echo \"hi\" 'x'"),
            "__import__('subprocess').run(\"echo \\\"hi\\\" 'x'\", shell=True) and None\n"
        );
    }
}

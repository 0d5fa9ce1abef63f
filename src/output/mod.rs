//! Everything about how results reach a person or a script: JSON or tables, colour, progress,
//! and the one place errors are rendered.

mod progress;

use std::io::{self, IsTerminal, Write};

use comfy_table::{presets, ContentArrangement, Table};
use owo_colors::OwoColorize;
use serde::Serialize;

pub use progress::{PullProgress, Spinner};

use crate::error::{self, Error, Quoted};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Output settings, resolved once from the global flags and the environment.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
    color_stdout: bool,
    color_stderr: bool,
    stderr_tty: bool,
}

impl Output {
    pub fn new(json: bool, quiet: bool, verbose: bool, color: ColorChoice) -> Self {
        let env_allows = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::env::var("TERM").map_or(true, |t| t != "dumb");
        let resolve = |tty: bool| match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => tty && env_allows,
        };
        let stderr_tty = io::stderr().is_terminal();
        Output {
            json,
            quiet,
            verbose,
            color_stdout: !json && resolve(io::stdout().is_terminal()),
            color_stderr: resolve(stderr_tty),
            stderr_tty,
        }
    }

    /// Progress bars and spinners only make sense on a terminal.
    pub fn show_progress(&self) -> bool {
        self.stderr_tty && !self.quiet
    }

    pub fn color_stdout(&self) -> bool {
        self.color_stdout
    }

    /// Prints a value as pretty JSON on stdout.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> io::Result<()> {
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)
    }

    /// Prints a line of data on stdout.
    pub fn line(&self, text: &str) -> io::Result<()> {
        writeln!(io::stdout().lock(), "{text}")
    }

    /// A status note on stderr ("created k3x9 in 0.4s"); silent with `-q`.
    pub fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    pub fn warn(&self, text: &str) {
        if self.color_stderr {
            eprintln!("{} {text}", "warning:".yellow().bold());
        } else {
            eprintln!("warning: {text}");
        }
    }

    /// A table in the `docker ps` style: upper-case headers, no borders.
    pub fn table(&self, headers: &[&str], rows: Vec<Vec<String>>) -> io::Result<()> {
        let mut table = Table::new();
        table
            .load_preset(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(headers.iter().map(|h| h.to_uppercase()));
        for row in rows {
            table.add_row(row);
        }
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        for line in table.to_string().lines() {
            writeln!(io::stdout().lock(), "{}", line.trim_end())?;
        }
        Ok(())
    }

    /// Colours a status word on a terminal; the word itself always carries the meaning.
    pub fn status_word(&self, status: &str) -> String {
        if !self.color_stdout {
            return status.to_string();
        }
        match status {
            "running" => status.green().to_string(),
            "gone" | "error" => status.red().to_string(),
            "stopped" | "stopping" => status.yellow().to_string(),
            _ => status.to_string(),
        }
    }

    /// Renders an error once: to stderr, and with `--json` also to stdout as an object.
    pub fn error(&self, err: &anyhow::Error) {
        let domain = error::find(err);
        // The domain error is the headline wherever it sits in the chain; every other link
        // (context added above it, the source below it) reads as a cause.
        let message = domain.map_or_else(|| err.to_string(), ToString::to_string);
        let mut causes: Vec<String> = err
            .chain()
            .map(ToString::to_string)
            .chain(domain.and_then(Error::cause))
            .filter(|c| *c != message)
            .collect();
        causes.dedup();
        let hint = domain.and_then(|e| e.hint());
        self.render_error(&message, &causes, hint.as_deref());
        if self.json {
            let body = ErrorBody {
                error: ErrorJson {
                    kind: domain.map_or("error", |e| e.kind()),
                    message: &message,
                    causes: &causes,
                    hint: hint.as_deref(),
                },
            };
            let _ = self.json(&body);
        }
    }

    fn render_error(&self, message: &str, causes: &[String], hint: Option<&str>) {
        let mut err = io::stderr().lock();
        let label = if self.color_stderr {
            "error:".red().bold().to_string()
        } else {
            "error:".to_string()
        };
        let _ = writeln!(err, "{label} {}", Quoted(message));
        for cause in causes {
            let _ = writeln!(err, "  caused by: {}", Quoted(cause));
        }
        if let Some(hint) = hint {
            let label = if self.color_stderr {
                "hint:".cyan().bold().to_string()
            } else {
                "hint:".to_string()
            };
            let _ = writeln!(err, "\n{label} {hint}");
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorJson<'a>,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    kind: &'a str,
    message: &'a str,
    causes: &'a [String],
    hint: Option<&'a str>,
}

/// A short relative age: `3s`, `5m`, `2h`, `4d`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn ages_are_short() {
        assert_eq!(age(5), "5s ago");
        assert_eq!(age(125), "2m ago");
        assert_eq!(age(7200), "2h ago");
        assert_eq!(age(200_000), "2d ago");
    }
}

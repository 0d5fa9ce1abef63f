//! Everything about how results reach a person or a script: JSON or tables, colour, progress,
//! and the one place errors are rendered.

mod progress;

use std::io::{self, IsTerminal, Write};

use comfy_table::{presets, ContentArrangement, Table};
use owo_colors::OwoColorize;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

pub(crate) use progress::{PullProgress, Spinner};

use crate::error::{Quoted, Report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub(crate) enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Output settings, resolved once from the global flags and the environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
    color_stdout: bool,
    color_stderr: bool,
    stderr_tty: bool,
}

impl Output {
    pub(crate) fn new(json: bool, quiet: bool, verbose: bool, color: ColorChoice) -> Self {
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

    /// Whether what we write to stderr may be coloured.
    pub(crate) fn color_stderr(&self) -> bool {
        self.color_stderr
    }

    /// Progress bars and spinners only make sense on a terminal.
    pub(crate) fn show_progress(&self) -> bool {
        self.stderr_tty && !self.quiet
    }

    /// Prints a value as pretty JSON on stdout.
    pub(crate) async fn json<T: Serialize + ?Sized>(&self, value: &T) -> io::Result<()> {
        let mut text = serde_json::to_vec_pretty(value)?;
        text.push(b'\n');
        write_stdout(&text).await
    }

    /// Prints a line of data on stdout.
    pub(crate) async fn line(&self, text: &str) -> io::Result<()> {
        write_stdout(format!("{text}\n").as_bytes()).await
    }

    /// A status note on stderr ("created k3x9 in 0.4s"); silent with `-q`.
    pub(crate) fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    pub(crate) fn warn(&self, text: &str) {
        if self.color_stderr {
            eprintln!("{} {text}", "warning:".yellow().bold());
        } else {
            eprintln!("warning: {text}");
        }
    }

    /// A table in the `docker ps` style: upper-case headers, no borders.
    pub(crate) async fn table(&self, headers: &[&str], rows: Vec<Vec<String>>) -> io::Result<()> {
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
        let mut text = String::new();
        for line in table.to_string().lines() {
            text.push_str(line.trim_end());
            text.push('\n');
        }
        write_stdout(text.as_bytes()).await
    }

    /// Colours a status word on a terminal; the word itself always carries the meaning.
    pub(crate) fn status_word(&self, status: &str) -> String {
        if !self.color_stdout {
            return status.to_string();
        }
        match status {
            "running" => status.green().to_string(),
            "gone" | "error" => status.red().to_string(),
            "stopped" | "stopping" | "paused" => status.yellow().to_string(),
            _ => status.to_string(),
        }
    }

    /// Renders an error once: to stderr, and with `--json` also to stdout as an object.
    pub(crate) fn error(&self, err: &anyhow::Error) {
        self.error_text(err);
        if self.json {
            self.error_json(err);
        }
    }

    /// The error as text on stderr: headline, causes, hint.
    pub(crate) fn error_text(&self, err: &anyhow::Error) {
        let text = self.render_error(&Report::of(err));
        let mut stderr = io::stderr().lock();
        let _ = stderr.write_all(text.as_bytes());
        let _ = stderr.flush();
    }

    /// The error as the one JSON document on stdout: `{"error":{kind,message,causes,hint}}`.
    pub(crate) fn error_json(&self, err: &anyhow::Error) {
        let report = Report::of(err);
        let body = ErrorBody { error: &report };
        if let Ok(mut text) = serde_json::to_vec_pretty(&body) {
            text.push(b'\n');
            let mut out = io::stdout().lock();
            let _ = out.write_all(&text);
            let _ = out.flush();
        }
    }

    fn render_error(&self, report: &Report) -> String {
        let paint = |label: &str, colour: fn(&str) -> String| {
            if self.color_stderr {
                colour(label)
            } else {
                label.to_string()
            }
        };
        let mut text = format!(
            "{} {}\n",
            paint("error:", |l| l.red().bold().to_string()),
            Quoted(&report.message)
        );
        for cause in &report.causes {
            text.push_str(&format!("  caused by: {}\n", Quoted(cause)));
        }
        if let Some(hint) = &report.hint {
            text.push_str(&format!(
                "\n{} {hint}\n",
                paint("hint:", |l| l.cyan().bold().to_string())
            ));
        }
        text
    }
}

/// Writes data to stdout without holding the runtime: a reader that stalls makes this wait,
/// while timeouts and signals still fire.
async fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut out = tokio::io::stdout();
    out.write_all(bytes).await?;
    out.flush().await
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a Report,
}

/// A short relative age: `3s`, `5m`, `2h`, `4d`.
pub(crate) fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// `1.2 kB`-style sizes, for notes.
pub(crate) fn human_size(bytes: u64) -> String {
    match bytes {
        0..=999 => format!("{bytes} B"),
        1_000..=999_999 => format!("{:.1} kB", bytes as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} MB", bytes as f64 / 1e6),
        _ => format!("{:.1} GB", bytes as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Error, Signal};

    #[test]
    fn ages_are_short() {
        assert_eq!(age(5), "5s ago");
        assert_eq!(age(125), "2m ago");
        assert_eq!(age(7200), "2h ago");
        assert_eq!(age(200_000), "2d ago");
    }

    fn plain() -> Output {
        Output::new(false, false, false, ColorChoice::Never)
    }

    fn rendered(err: &anyhow::Error) -> String {
        plain().render_error(&Report::of(err))
    }

    #[test]
    fn error_texts() {
        let not_found = anyhow::Error::new(Error::NotFound("k3x9".into()));
        insta::assert_snapshot!(rendered(&not_found), @r"
        error: sandbox `k3x9` not found

        hint: `enclave ls` lists the sandboxes you have
        ");

        let paused = anyhow::Error::new(Error::NotRunning {
            id: "k3x9m2pa".into(),
            status: "paused".into(),
            hint: Some("`docker unpause enclave-k3x9m2pa` resumes it".into()),
        });
        insta::assert_snapshot!(rendered(&paused), @r"
        error: sandbox `k3x9m2pa` is not running (status: paused)

        hint: `docker unpause enclave-k3x9m2pa` resumes it
        ");

        let down = anyhow::Error::new(Error::Unavailable {
            kind: "docker_unavailable",
            what: "the Docker engine".into(),
            detail: "unix:///var/run/docker.sock: connection refused".into(),
            hint: "start the engine".into(),
        });
        insta::assert_snapshot!(rendered(&down), @r"
        error: cannot reach the Docker engine
          caused by: unix:///var/run/docker.sock: connection refused

        hint: start the engine
        ");

        let config = anyhow::Error::new(Error::InvalidConfig(
            "pids_limit must be 0 (unlimited) or a positive number of processes, got -5".into(),
        ));
        insta::assert_snapshot!(rendered(&config), @r"
        error: invalid configuration: pids_limit must be 0 (unlimited) or a positive number of processes, got -5

        hint: see docs/config.md for every field and its format
        ");

        let locked = anyhow::Error::new(Error::StateLocked {
            path: "/home/u/.local/share/enclave/state.lock".into(),
            waited_secs: 10,
        });
        insta::assert_snapshot!(rendered(&locked), @r"
        error: another enclave process holds the lock on the state file /home/u/.local/share/enclave/state.lock (waited 10s)

        hint: the lock is freed when that process ends; `ENCLAVE_LOCK_WAIT=SECS` waits longer
        ");

        let vanished = anyhow::Error::new(Error::Vanished("k3x9".into()));
        insta::assert_snapshot!(rendered(&vanished), @"error: sandbox `k3x9` was removed while the command ran; the command was killed with it");
    }

    #[test]
    fn context_reads_as_causes_under_the_domain_headline() {
        let err = anyhow::Error::new(Error::Refused {
            by: "the Docker engine".into(),
            message: "port is already allocated".into(),
        })
        .context("starting the container");
        insta::assert_snapshot!(rendered(&err), @r"
        error: the Docker engine refused the request: port is already allocated
          caused by: starting the container
        ");
        let plain_err = anyhow::anyhow!("disk full").context("writing the state");
        insta::assert_snapshot!(rendered(&plain_err), @r"
        error: writing the state
          caused by: disk full
        ");
    }

    #[test]
    fn text_from_a_sandbox_cannot_drive_the_terminal() {
        let err = anyhow::Error::new(Error::NotFound("\u{1b}[2Jgotcha".into()));
        assert!(rendered(&err).starts_with("error: sandbox `\\u{1b}[2Jgotcha` not found"));
    }

    #[test]
    fn json_reports_carry_kind_and_hint() {
        let report = Report::of(&anyhow::Error::new(Error::Interrupted(Signal::Terminate)));
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["kind"], "interrupted");
        assert_eq!(v["message"], "interrupted by SIGTERM");
        assert_eq!(v["hint"], serde_json::Value::Null);
    }
}

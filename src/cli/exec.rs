//! `enclave exec`: run a command in a sandbox, streaming its output, exiting with its code.

use std::io;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{bail, Result};
use async_trait::async_trait;
use clap::Args;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::sandbox_args::parse_env;
use super::{parse_sandbox_id, Ctx};
use crate::error::{exit_code, Error};
use crate::model::{
    Capture, ExecEnd, ExecOutcome, ExecSpec, ExitCause, KillReport, OutputSink, Stream,
    MAX_TIMEOUT_SECS,
};

/// What `--json` keeps of each output stream of `exec` and `run`.
const JSON_MAX_OUTPUT: usize = 16 * 1024 * 1024;

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// Sandbox id (a unique prefix is enough)
    #[arg(value_parser = parse_sandbox_id)]
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) command: CommandArgs,
    /// Environment variable for the command (repeatable)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,
    /// Working directory for the command
    #[arg(short = 'w', long, value_name = "DIR")]
    pub(crate) workdir: Option<String>,
}

/// The command to run and how, shared by `exec` and `run`.
#[derive(Debug, Args)]
pub(crate) struct CommandArgs {
    /// The command: one string runs through `sh -c`; several words run as argv
    #[arg(value_name = "COMMAND")]
    pub(crate) words: Vec<String>,
    /// After `--`: the command as argv, no shell
    #[arg(last = true, value_name = "ARGV")]
    pub(crate) argv: Vec<String>,
    /// Kill the command and everything it started after this many seconds (exit 124)
    #[arg(short, long, value_name = "SECS")]
    pub(crate) timeout: Option<f64>,
    /// Forward stdin even when it is a terminal (it is forwarded whenever it is piped)
    #[arg(short, long)]
    pub(crate) interactive: bool,
}

/// `--timeout SECS`: positive, at most a year; checked before anything runs.
pub(crate) fn parse_timeout(secs: Option<f64>) -> Result<Option<Duration>> {
    match secs {
        None => Ok(None),
        Some(t) if t > 0.0 && t <= MAX_TIMEOUT_SECS => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => bail!(Error::Usage(format!(
            "--timeout must be a positive number of seconds, at most a year ({MAX_TIMEOUT_SECS}); got {}",
            if t.abs() < 1e9 { t.to_string() } else { format!("{t:e}") }
        ))),
    }
}

/// How the command was given; checked before anything runs.
pub(crate) struct CommandLine {
    pub(crate) argv: Vec<String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) env: Vec<String>,
    pub(crate) workdir: Option<String>,
    pub(crate) forward_stdin: bool,
}

impl CommandLine {
    pub(crate) fn parse(
        args: CommandArgs,
        env: &[String],
        workdir: Option<String>,
    ) -> Result<Self> {
        let argv = match (args.words.as_slice(), args.argv.as_slice()) {
            ([], []) => bail!(Error::Usage(
                "no command given: pass a shell string, or argv after `--`".into()
            )),
            ([word], []) => vec!["sh".into(), "-c".into(), word.clone()],
            (words, []) => words.to_vec(),
            ([], argv) => argv.to_vec(),
            _ => bail!(Error::Usage(
                "give the command either as words or after `--`, not both".into()
            )),
        };
        let timeout = parse_timeout(args.timeout)?;
        let env = env
            .iter()
            .map(|e| parse_env(e).map(|(k, v)| format!("{k}={v}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::Usage)?;
        if workdir.as_deref().is_some_and(|w| !w.starts_with('/')) {
            bail!(Error::Usage(
                "-w/--workdir must be an absolute path in the sandbox".into()
            ));
        }
        Ok(CommandLine {
            argv,
            timeout,
            env,
            workdir,
            forward_stdin: args.interactive || !std::io::stdin().is_terminal(),
        })
    }

    pub(crate) fn spec(self, ctx: &Ctx) -> ExecSpec {
        let mut spec = ExecSpec::new(self.argv);
        spec.env = self.env;
        spec.workdir = self.workdir;
        spec.timeout = self.timeout;
        spec.cancel = ctx.cancel.clone();
        if self.forward_stdin {
            spec.stdin = Some(Box::new(tokio::io::stdin()));
        }
        spec
    }
}

pub(crate) async fn run(args: ExecArgs, ctx: &Ctx) -> Result<u8> {
    let command = CommandLine::parse(args.command, &args.env, args.workdir)?;
    let manager = ctx.manager_for(&args.id).await?;
    let sandbox = ctx.until_signal(manager.find(&args.id)).await?;
    let timeout = command.timeout;
    let spec = command.spec(ctx);
    let mut output = CommandOutput::new(ctx);
    let outcome = manager.exec(&sandbox, spec, output.sink()).await?;
    output
        .finish(&outcome, timeout, Some(&sandbox.id), ctx)
        .await
}

/// Where a command's output goes: passed through untouched, or with `--json` captured for the
/// one document printed at the end.
pub(crate) enum CommandOutput {
    Passthrough(Passthrough),
    Captured(Capture),
}

impl CommandOutput {
    pub(crate) fn new(ctx: &Ctx) -> Self {
        if ctx.output.json {
            CommandOutput::Captured(Capture::new(JSON_MAX_OUTPUT))
        } else {
            CommandOutput::Passthrough(Passthrough::default())
        }
    }

    pub(crate) fn sink(&mut self) -> &mut dyn OutputSink {
        match self {
            CommandOutput::Passthrough(p) => p,
            CommandOutput::Captured(c) => c,
        }
    }

    /// Says how the command ended (a note, or the JSON document) and returns our exit code.
    pub(crate) async fn finish(
        self,
        outcome: &ExecOutcome,
        timeout: Option<Duration>,
        sandbox: Option<&str>,
        ctx: &Ctx,
    ) -> Result<u8> {
        let code = exit_status(outcome, ctx)?;
        match self {
            CommandOutput::Passthrough(_) => {
                if let Some(note) = end_note(outcome, timeout, sandbox) {
                    ctx.output.note(&note);
                }
            }
            CommandOutput::Captured(capture) => {
                let document =
                    ExecResult::new(outcome, capture, end_note(outcome, timeout, sandbox));
                ctx.output.json(&document).await?;
            }
        }
        Ok(code)
    }
}

/// Our exit code for how the command ended.
fn exit_status(outcome: &ExecOutcome, ctx: &Ctx) -> Result<u8> {
    match outcome.end {
        // An exit status is 0–255; a shell shows the low byte of anything wider.
        ExecEnd::Exited(Some(code)) => Ok((code & 0xff) as u8),
        ExecEnd::Exited(None) => bail!(Error::Refused {
            by: "the backend".into(),
            message: "it did not report the command's exit code".into()
        }),
        ExecEnd::TimedOut => Ok(exit_code::TIMEOUT),
        ExecEnd::Cancelled => Ok(ctx.interrupted().exit_code()),
        ExecEnd::OutputClosed => Ok(exit_code::BROKEN_PIPE),
    }
}

/// A line for stderr about how the command ended, when its own status does not say it all.
/// It claims only what was checked. `sandbox` is `None` for an ephemeral `run`, whose sandbox
/// is removed with everything in it.
fn end_note(
    outcome: &ExecOutcome,
    timeout: Option<Duration>,
    sandbox: Option<&str>,
) -> Option<String> {
    if outcome.cause == Some(ExitCause::OutOfMemory) {
        return Some(
            "enclave: the sandbox hit its memory limit and the kernel killed the command \
             (`--memory` when creating sets the limit)"
                .into(),
        );
    }
    if outcome.end != ExecEnd::TimedOut {
        return None;
    }
    let secs = timeout.map_or(0.0, |t| t.as_secs_f64());
    let Some(sandbox) = sandbox else {
        return Some(format!(
            "enclave: timed out after {secs}s; the sandbox was removed with everything in it"
        ));
    };
    let what = match outcome.kill {
        Some(KillReport::Verified { killed }) => {
            format!("killed {killed} process{}", plural(killed))
        }
        Some(KillReport::Survivors { killed, left }) => format!(
            "killed {killed} process{}, but {left} survived (at the pids limit?); \
             `enclave rm {sandbox}` ends everything in the sandbox",
            plural(killed)
        ),
        Some(KillReport::Unverified) | None => format!(
            "could not check that what it started was killed (the sandbox lacks `sh` or `grep`, \
             or is out of process slots); `enclave rm {sandbox}` ends everything in it"
        ),
    };
    Some(format!("enclave: timed out after {secs}s; {what}"))
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "es"
    }
}

/// `exec --json` and `run --json`: how the command ended and what it printed.
#[derive(Debug, Serialize)]
struct ExecResult {
    /// `success`, `error` (a non-zero exit), `timeout` or `cancelled`.
    status: &'static str,
    exit_code: Option<i64>,
    stdout: String,
    stderr: String,
    /// Output past 16 MiB a stream was cut to its head and tail.
    truncated: bool,
    duration_ms: u64,
    /// What the note on stderr would say (a timeout, an out-of-memory kill).
    note: Option<String>,
}

impl ExecResult {
    fn new(outcome: &ExecOutcome, capture: Capture, note: Option<String>) -> Self {
        let (stdout, out_cut) = capture.stdout.into_text();
        let (stderr, err_cut) = capture.stderr.into_text();
        let (status, exit_code) = match outcome.end {
            ExecEnd::Exited(Some(0)) => ("success", Some(0)),
            ExecEnd::Exited(code) => ("error", code),
            ExecEnd::TimedOut => ("timeout", None),
            ExecEnd::Cancelled | ExecEnd::OutputClosed => ("cancelled", None),
        };
        ExecResult {
            status,
            exit_code,
            stdout,
            stderr,
            truncated: out_cut || err_cut,
            duration_ms: u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
            note,
        }
    }
}

/// The command's own bytes, untouched, to our stdout and stderr as they arrive. A reader that
/// stalls slows the command down; one that goes away stops it.
#[derive(Default)]
pub(crate) struct Passthrough {
    stdout: Option<tokio::io::Stdout>,
    stderr: Option<tokio::io::Stderr>,
}

#[async_trait]
impl OutputSink for Passthrough {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        match stream {
            Stream::Stdout => {
                let out = self.stdout.get_or_insert_with(tokio::io::stdout);
                out.write_all(data).await?;
                out.flush().await
            }
            Stream::Stderr => {
                let err = self.stderr.get_or_insert_with(tokio::io::stderr);
                err.write_all(data).await?;
                err.flush().await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed_out(kill: Option<KillReport>) -> ExecOutcome {
        let mut o = ExecOutcome::new(ExecEnd::TimedOut, Duration::from_secs(2));
        o.kill = kill;
        o
    }

    #[test]
    fn timeout_notes_claim_only_what_was_checked() {
        let t = Some(Duration::from_secs(2));
        let note = |k| end_note(&timed_out(k), t, Some("k3x9")).unwrap();
        insta::assert_snapshot!(
            note(Some(KillReport::Verified { killed: 3 })),
            @"enclave: timed out after 2s; killed 3 processes"
        );
        insta::assert_snapshot!(
            note(Some(KillReport::Survivors { killed: 40, left: 2 })),
            @"enclave: timed out after 2s; killed 40 processes, but 2 survived (at the pids limit?); `enclave rm k3x9` ends everything in the sandbox"
        );
        insta::assert_snapshot!(
            note(Some(KillReport::Unverified)),
            @"enclave: timed out after 2s; could not check that what it started was killed (the sandbox lacks `sh` or `grep`, or is out of process slots); `enclave rm k3x9` ends everything in it"
        );
    }

    #[test]
    fn out_of_memory_is_named() {
        let mut o = ExecOutcome::new(ExecEnd::Exited(Some(137)), Duration::from_secs(1));
        o.cause = Some(ExitCause::OutOfMemory);
        assert!(end_note(&o, None, Some("k3x9"))
            .unwrap()
            .contains("memory limit"));
        let plain = ExecOutcome::new(ExecEnd::Exited(Some(137)), Duration::from_secs(1));
        assert_eq!(end_note(&plain, None, Some("k3x9")), None);
        assert!(end_note(&timed_out(None), None, None)
            .unwrap()
            .contains("the sandbox was removed with everything in it"));
    }

    #[test]
    fn json_results_keep_the_exit_code_key() {
        let r = ExecResult::new(&timed_out(None), Capture::new(10), None);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "timeout");
        assert!(v.as_object().unwrap().contains_key("exit_code"));
        assert!(v["exit_code"].is_null());
    }
}

//! `enclave exec`: run a command in a sandbox, streaming its output, exiting with its code.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use super::sandbox_args::parse_env;
use super::Ctx;
use crate::backend::{ExecEnd, ExecOutcome, ExecSpec, OutputSink};
use crate::error::{exit_code, Error};
use crate::manager::Manager;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Sandbox id (a unique prefix is enough)
    pub id: String,
    #[command(flatten)]
    pub command: CommandArgs,
    /// Environment variable for the command (repeatable)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory for the command
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,
}

/// The command to run and how, shared by `exec` and `run`.
#[derive(Debug, Args)]
pub struct CommandArgs {
    /// The command: one string runs through `sh -c`; several words run as argv
    #[arg(value_name = "COMMAND")]
    pub words: Vec<String>,
    /// After `--`: the command as argv, no shell
    #[arg(last = true, value_name = "ARGV")]
    pub argv: Vec<String>,
    /// Kill the command and everything it started after this many seconds (exit 124)
    #[arg(short, long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Forward stdin even when it is a terminal (it is forwarded whenever it is piped)
    #[arg(short, long)]
    pub interactive: bool,
}

/// A year: anything longer is a typo, not a timeout.
const MAX_TIMEOUT_SECS: f64 = 365.0 * 24.0 * 3600.0;

/// `--timeout SECS`: positive, at most a year; checked before anything runs.
pub fn parse_timeout(secs: Option<f64>) -> Result<Option<Duration>> {
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
pub struct CommandLine {
    pub argv: Vec<String>,
    pub timeout: Option<Duration>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub forward_stdin: bool,
}

impl CommandLine {
    pub fn parse(args: CommandArgs, env: &[String], workdir: Option<String>) -> Result<Self> {
        let argv = match (args.words.as_slice(), args.argv.as_slice()) {
            ([], []) => bail!(Error::Usage(
                "no command given: pass a shell string, or argv after `--`".into()
            )),
            (words, []) if words.len() == 1 => {
                vec!["sh".into(), "-c".into(), words[0].clone()]
            }
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
        Ok(CommandLine {
            argv,
            timeout,
            env,
            workdir,
            forward_stdin: args.interactive || !std::io::stdin().is_terminal(),
        })
    }

    pub fn spec(self, ctx: &Ctx) -> ExecSpec {
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

pub async fn run(args: ExecArgs, ctx: &Ctx) -> Result<u8> {
    let command = CommandLine::parse(args.command, &args.env, args.workdir)?;
    let manager = ctx.manager().await?;
    let id = manager.resolve(&args.id).await?;
    run_in(&manager, &id, command, ctx).await
}

/// Runs the command and turns its end into our exit code.
pub async fn run_in(
    manager: &dyn Manager,
    id: &str,
    command: CommandLine,
    ctx: &Ctx,
) -> Result<u8> {
    let timeout = command.timeout;
    let mut sink = Passthrough;
    let outcome = manager.exec(id, command.spec(ctx), &mut sink).await?;
    exit_status(outcome, timeout, ctx)
}

pub fn exit_status(outcome: ExecOutcome, timeout: Option<Duration>, ctx: &Ctx) -> Result<u8> {
    match outcome.end {
        ExecEnd::Exited(Some(code)) => Ok((code & 0xff) as u8),
        ExecEnd::Exited(None) => bail!(Error::Engine(
            "the engine did not report the command's exit code".into()
        )),
        ExecEnd::TimedOut => {
            let secs = timeout.map_or(0.0, |t| t.as_secs_f64());
            ctx.output.note(&format!(
                "enclave: timed out after {secs}s; the command and everything it started were killed"
            ));
            Ok(exit_code::TIMEOUT)
        }
        ExecEnd::Cancelled => bail!(Error::Interrupted),
    }
}

/// The command's own bytes, untouched, to our stdout and stderr as they arrive.
pub struct Passthrough;

impl OutputSink for Passthrough {
    fn stdout(&mut self, data: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(data);
        let _ = out.flush();
    }

    fn stderr(&mut self, data: &[u8]) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(data);
        let _ = err.flush();
    }
}

//! The command line: parsing, the shared context, and the one place results become exit codes.

mod completions;
mod create;
mod exec;
mod inspect;
mod ls;
mod rm;
mod run;
mod run_tool;
mod sandbox_args;
mod tools;

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::backend::DockerBackend;
use crate::error::{self, exit_code, Error};
use crate::manager::LocalManager;
use crate::output::{ColorChoice, Output};
use crate::state::StateStore;

/// Fast, secure sandboxes for AI agents and CI.
#[derive(Debug, Parser)]
#[command(
    name = "enclave",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

const GLOBAL: &str = "Global options";

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print results as JSON on stdout (errors too)
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// When to use colours
    #[arg(long, global = true, help_heading = GLOBAL, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Print only ids or data; no notes on stderr
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,
    /// Say more about what happens
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a sandbox and print its id
    Create(create::CreateArgs),
    /// List sandboxes
    #[command(visible_alias = "ps")]
    Ls(ls::LsArgs),
    /// Show a sandbox's full SandboxInfo as JSON
    Inspect(inspect::InspectArgs),
    /// Run a command in a sandbox; exits with the command's exit code
    Exec(exec::ExecArgs),
    /// Create a sandbox, run one command in it, remove it
    Run(run::RunArgs),
    /// Call a sandbox's tool; prints its output, exits with its status
    RunTool(run_tool::RunToolArgs),
    /// List a sandbox's tools (or all tools) and their OpenAI schemas
    Tools(tools::ToolsArgs),
    /// Remove sandboxes (their containers are killed at once)
    #[command(visible_alias = "remove")]
    Rm(rm::RmArgs),
    /// Print a shell completion script
    Completions(completions::CompletionsArgs),
}

/// What every command gets: output settings and the Ctrl-C token.
pub struct Ctx {
    pub output: Output,
    pub cancel: CancellationToken,
}

impl Ctx {
    /// The local Docker manager; fails with `DockerUnavailable` when no engine answers.
    pub async fn manager(&self) -> Result<LocalManager> {
        let state = StateStore::from_env()?;
        let backend = DockerBackend::connect().await?;
        if self.output.verbose {
            self.output.note(&format!(
                "engine: {} (API {}); state: {}",
                backend.address(),
                backend.api_version(),
                state.path().display()
            ));
        }
        Ok(LocalManager::new(backend, state))
    }
}

/// Parses `args`, runs the command, and maps the outcome to the process exit code.
pub fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit_code::USAGE } else { 0 });
        }
    };
    let g = &cli.global;
    let output = Output::new(g.json, g.quiet, g.verbose, g.color);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output.error(&anyhow::Error::new(e).context("starting the async runtime"));
            return ExitCode::from(exit_code::FAILURE);
        }
    };
    let ctx = Ctx {
        output,
        cancel: CancellationToken::new(),
    };
    let result = runtime.block_on(async {
        let cancel = ctx.cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
            // Cleanup talks to the engine and could stall; a second Ctrl-C gives up on it.
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("enclave: interrupted again; exiting without cleaning up");
                std::process::exit(exit_code::INTERRUPTED.into());
            }
        });
        run(cli.command, &ctx).await
    });
    // A blocking stdin read may still be parked on a worker thread; do not wait for it.
    runtime.shutdown_background();
    ExitCode::from(finish(result, &ctx.output))
}

fn finish(result: Result<u8>, output: &Output) -> u8 {
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => exit_code::SUCCESS,
        Err(e) => {
            if !matches!(error::find(&e), Some(Error::Interrupted)) {
                output.error(&e);
            }
            error::find(&e).map_or(exit_code::FAILURE, Error::exit_code)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(command: Command, ctx: &Ctx) -> Result<u8> {
    match command {
        Command::Create(args) => create::run(args, ctx).await,
        Command::Ls(args) => ls::run(args, ctx).await,
        Command::Inspect(args) => inspect::run(args, ctx).await,
        Command::Exec(args) => exec::run(args, ctx).await,
        Command::Run(args) => run::run(args, ctx).await,
        Command::RunTool(args) => run_tool::run(args, ctx).await,
        Command::Tools(args) => tools::run(args, ctx).await,
        Command::Rm(args) => rm::run(args, ctx).await,
        Command::Completions(args) => completions::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("enclave").chain(args.iter().copied()))
    }

    #[test]
    fn exec_forms_parse() {
        let cli = parse(&["exec", "k3x9", "echo hi; exit 3"]).unwrap();
        let Command::Exec(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.command.words, ["echo hi; exit 3"]);
        assert!(a.command.argv.is_empty());

        let cli = parse(&["exec", "--timeout", "2", "k3x9", "--", "python3", "-c", "x"]).unwrap();
        let Command::Exec(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.command.argv, ["python3", "-c", "x"]);
        assert_eq!(a.command.timeout, Some(2.0));
    }

    #[test]
    fn create_flags_parse() {
        let cli = parse(&[
            "create",
            "--image",
            "img",
            "--tool",
            "python_executor",
            "--tool",
            "shell_executor",
            "--memory",
            "512m",
            "--cpus",
            "1.5",
            "--env",
            "A=1",
            "--port",
            "8080:80",
            "--no-network",
            "--json",
        ])
        .unwrap();
        assert!(cli.global.json);
        let Command::Create(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.sandbox.tools, ["python_executor", "shell_executor"]);
        assert_eq!(a.sandbox.cpus, Some(1.5));
    }

    #[test]
    fn bad_usage_is_refused() {
        for args in [
            &["exec"][..],
            &["create", "--cpus", "x"],
            &["rm"],
            &["completions", "tcsh"],
            &["ls", "--bogus"],
        ] {
            assert!(parse(args).is_err(), "{args:?} should not parse");
        }
    }
}

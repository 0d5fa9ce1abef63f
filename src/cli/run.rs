//! `enclave run`: an ephemeral sandbox for one command, removed afterwards whatever happens.

use anyhow::Result;
use clap::Args;

use super::exec::{exit_status, CommandLine, Passthrough};
use super::sandbox_args::SandboxArgs;
use super::Ctx;
use crate::manager::{CreateRequest, Manager};
use crate::model::SandboxType;
use crate::output::PullProgress;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// The command: one string runs through `sh -c`; several words run as argv
    #[arg(value_name = "COMMAND")]
    pub command: Vec<String>,
    /// After `--`: the command as argv, no shell
    #[arg(last = true, value_name = "ARGV")]
    pub argv: Vec<String>,
    /// Kill the command and everything it started after this many seconds (exit 124)
    #[arg(short, long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Forward stdin even when it is a terminal
    #[arg(short, long)]
    pub interactive: bool,
}

pub async fn run(args: RunArgs, ctx: &Ctx) -> Result<u8> {
    let config = args.sandbox.to_config()?;
    let command = CommandLine::parse(
        &args.command,
        &args.argv,
        args.timeout,
        &[],
        None,
        args.interactive,
    )?;
    let manager = ctx.manager().await?;
    let request = CreateRequest {
        sandbox_type: SandboxType::Docker,
        config,
        extra_labels: Vec::new(),
    };
    let timeout = command.timeout;
    let progress = PullProgress::new(&ctx.output);
    let outcome = manager
        .run(request, command.spec(ctx), &progress, &mut Passthrough)
        .await?;
    exit_status(outcome, timeout, ctx)
}

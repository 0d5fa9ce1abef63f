//! `enclave run`: an ephemeral sandbox for one command, removed afterwards whatever happens.

use anyhow::Result;
use clap::Args;

use super::exec::{exit_status, CommandArgs, CommandLine, Passthrough};
use super::sandbox_args::SandboxArgs;
use super::Ctx;
use crate::manager::{CreateRequest, Manager};
use crate::model::SandboxType;
use crate::output::PullProgress;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    #[command(flatten)]
    pub command: CommandArgs,
}

pub async fn run(args: RunArgs, ctx: &Ctx) -> Result<u8> {
    let config = args.sandbox.to_config()?;
    let command = CommandLine::parse(args.command, &[], None)?;
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

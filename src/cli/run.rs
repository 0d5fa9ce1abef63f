//! `enclave run`: an ephemeral sandbox for one command, removed afterwards whatever happens.

use anyhow::Result;
use clap::Args;

use super::exec::{CommandArgs, CommandLine, CommandOutput};
use super::sandbox_args::SandboxArgs;
use super::Ctx;
use crate::manager::CreateRequest;
use crate::model::SandboxType;
use crate::output::PullProgress;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) sandbox: SandboxArgs,
    #[command(flatten)]
    pub(crate) command: CommandArgs,
}

pub(crate) async fn run(args: RunArgs, ctx: &Ctx) -> Result<u8> {
    let config = args.sandbox.to_config()?;
    let command = CommandLine::parse(args.command, &[], None)?;
    for warning in config.warnings() {
        ctx.output.warn(&warning);
    }
    let manager = ctx.manager().await?;
    let request = CreateRequest {
        sandbox_type: SandboxType::Docker,
        config,
        volcengine: None,
        extra_labels: Vec::new(),
    };
    let timeout = command.timeout;
    let progress = PullProgress::new(&ctx.output);
    let mut output = CommandOutput::new(ctx);
    let outcome = manager
        .run(request, command.spec(ctx), &progress, output.sink())
        .await?;
    output.finish(&outcome, timeout, None, ctx).await
}

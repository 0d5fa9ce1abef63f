//! `enclave create`: make a sandbox and print its id.

use std::time::Instant;

use anyhow::Result;
use clap::Args;

use super::sandbox_args::SandboxArgs;
use super::Ctx;
use crate::manager::{CreateRequest, Manager};
use crate::model::{SandboxInfo, SandboxType};
use crate::output::{PullProgress, Spinner};

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

pub async fn run(args: CreateArgs, ctx: &Ctx) -> Result<u8> {
    let config = args.sandbox.to_config()?;
    let manager = ctx.manager().await?;
    let info = create_sandbox(&manager, SandboxType::Docker, config, ctx, true).await?;
    if ctx.output.json {
        ctx.output.json(&info)?;
    } else {
        ctx.output.line(&info.id)?;
    }
    Ok(0)
}

/// Creates with a spinner and pull progress on a terminal, and a note when done.
pub async fn create_sandbox(
    manager: &dyn Manager,
    sandbox_type: SandboxType,
    config: crate::model::DockerSandboxConfig,
    ctx: &Ctx,
    announce: bool,
) -> Result<SandboxInfo> {
    let started = Instant::now();
    let image = config.image.clone();
    let request = CreateRequest {
        sandbox_type,
        config,
        extra_labels: Vec::new(),
    };
    let progress = PullProgress::new(&ctx.output);
    let info = {
        let _spinner = Spinner::new(&ctx.output, &format!("creating a sandbox from {image}"));
        manager.create(request, &progress, &ctx.cancel).await?
    };
    if announce {
        ctx.output.note(&format!(
            "created {} in {:.1}s",
            info.id,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(info)
}

//! `enclave create`: make a sandbox and print its id.

use std::time::Instant;

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::sandbox_args::SandboxArgs;
use super::Ctx;
use crate::manager::CreateRequest;
use crate::model::SandboxType;
use crate::output::{PullProgress, Spinner};

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Sandbox type; docker_notebook runs a Jupyter kernel for notebook_executor (default image
    /// enclave-notebook:1, built when missing) [default: docker]
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    pub(crate) sandbox_type: Option<TypeArg>,
    #[command(flatten)]
    pub(crate) sandbox: SandboxArgs,
}

/// The sandbox types `create` makes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum TypeArg {
    Docker,
    #[value(name = "docker_notebook")]
    DockerNotebook,
}

impl From<TypeArg> for SandboxType {
    fn from(arg: TypeArg) -> Self {
        match arg {
            TypeArg::Docker => SandboxType::Docker,
            TypeArg::DockerNotebook => SandboxType::DockerNotebook,
        }
    }
}

pub(crate) async fn run(args: CreateArgs, ctx: &Ctx) -> Result<u8> {
    let config = args.sandbox.to_config()?;
    for warning in config.warnings() {
        ctx.output.warn(&warning);
    }
    let manager = ctx.manager().await?;
    let started = Instant::now();
    let what = match args.sandbox_type {
        Some(TypeArg::DockerNotebook) => "creating a notebook sandbox".to_string(),
        _ => format!("creating a sandbox from {}", config.image),
    };
    let sandbox_type = args
        .sandbox_type
        .map_or(SandboxType::Docker, SandboxType::from);
    let request = CreateRequest {
        sandbox_type,
        config,
        extra_labels: Vec::new(),
    };
    let progress = PullProgress::new(&ctx.output);
    let info = {
        let _spinner = Spinner::new(&ctx.output, &what);
        manager.create(request, &progress, &ctx.cancel).await
    };
    // A cancel is a signal's doing, whatever step it cut short.
    let info = info.map_err(|e| {
        if ctx.cancel.is_cancelled() {
            e.context(ctx.interrupted())
        } else {
            e
        }
    })?;
    ctx.output.note(&format!(
        "created {} in {:.1}s",
        info.id,
        started.elapsed().as_secs_f64()
    ));
    if ctx.output.json {
        ctx.output.json(&info).await?;
    } else {
        ctx.output.line(&info.id).await?;
    }
    Ok(0)
}

//! `enclave inspect`: a sandbox's full `SandboxInfo`, in ms-enclave's JSON shape.

use anyhow::Result;
use clap::Args;

use super::{parse_sandbox_id, Ctx};

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Sandbox id (a unique prefix is enough)
    #[arg(value_parser = parse_sandbox_id)]
    pub(crate) id: String,
}

pub(crate) async fn run(args: InspectArgs, ctx: &Ctx) -> Result<u8> {
    let manager = ctx.manager_for(&args.id).await?;
    let sandbox = manager.find(&args.id).await?;
    let info = manager.info(&sandbox).await?;
    ctx.output.json(&info).await?;
    Ok(0)
}

//! `enclave inspect`: a sandbox's full `SandboxInfo`, in ms-enclave's JSON shape.

use anyhow::Result;
use clap::Args;

use super::Ctx;
use crate::manager::Manager;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Sandbox id (a unique prefix is enough)
    pub id: String,
}

pub async fn run(args: InspectArgs, ctx: &Ctx) -> Result<u8> {
    let manager = ctx.manager().await?;
    let info = manager.info(&args.id).await?;
    ctx.output.json(&info)?;
    Ok(0)
}

//! `enclave stop`: end a sandbox's processes and leave it `stopped` until it is removed.

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::outcomes::{Done, Outcomes};
use super::{parse_sandbox_id, Ctx, Managers};

#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// Sandbox ids (unique prefixes are enough)
    #[arg(required = true, value_parser = parse_sandbox_id)]
    pub(crate) ids: Vec<String>,
}

/// A stopped sandbox in `stop --json`, shaped as `rm --json`'s outcomes.
#[derive(Debug, Serialize)]
struct Stopped {
    id: String,
    result: &'static str,
}

impl Done for Stopped {
    fn id(&self) -> &str {
        &self.id
    }
}

pub(crate) async fn run(args: StopArgs, ctx: &Ctx) -> Result<u8> {
    let mut outcomes = Outcomes::new();
    let mut managers = Managers::new(ctx);
    for id in args.ids {
        let stopped = stop(&id, &mut managers).await;
        outcomes.add(id, stopped, ctx).await?;
    }
    outcomes.finish(ctx).await
}

/// Looks `id` up where it lives and stops it.
async fn stop(id: &str, managers: &mut Managers<'_>) -> Result<Stopped> {
    let manager = managers.for_id(id).await?;
    let sandbox = manager.find(id).await?;
    manager.stop(&sandbox).await?;
    Ok(Stopped {
        id: sandbox.id,
        result: "stopped",
    })
}

//! `enclave rm`: kill and remove sandboxes, and forget ones whose container is already gone.

use anyhow::Result;
use clap::Args;

use super::outcomes::{Done, Outcomes};
use super::{parse_sandbox_id, Ctx, Managers};
use crate::model::{Removal, Removed};

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// Sandbox ids (unique prefixes are enough)
    #[arg(required_unless_present = "all", conflicts_with = "all", value_parser = parse_sandbox_id)]
    pub(crate) ids: Vec<String>,
    /// Remove every sandbox in your state file (others listed by `ls` are removed by id)
    #[arg(long)]
    pub(crate) all: bool,
}

impl Done for Removed {
    fn id(&self) -> &str {
        &self.id
    }

    fn note(&self) -> Option<String> {
        (self.result == Removal::Forgotten)
            .then(|| format!("{}: it was already gone; forgotten", self.id))
    }
}

pub(crate) async fn run(args: RmArgs, ctx: &Ctx) -> Result<u8> {
    let mut outcomes = Outcomes::new();
    if args.all {
        let manager = ctx.manager().await?;
        let listed = manager.list().await?;
        for sandbox in listed.into_iter().filter(|s| s.tracked) {
            let removed = manager.remove(&sandbox).await;
            outcomes.add(sandbox.id, removed, ctx).await?;
        }
    } else {
        let mut managers = Managers::new(ctx);
        for id in args.ids {
            let removed = remove(&id, &mut managers).await;
            outcomes.add(id, removed, ctx).await?;
        }
    }
    outcomes.finish(ctx).await
}

/// Looks `id` up where it lives and removes it.
async fn remove(id: &str, managers: &mut Managers<'_>) -> Result<Removed> {
    let manager = managers.for_id(id).await?;
    let sandbox = manager.find(id).await?;
    manager.remove(&sandbox).await
}

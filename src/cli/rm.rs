//! `enclave rm`: kill and remove sandboxes, and forget ones whose container is already gone.

use anyhow::Result;
use clap::Args;

use super::Ctx;
use crate::error::{self, exit_code};
use crate::manager::{Manager, Removal};

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Sandbox ids (unique prefixes are enough)
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub ids: Vec<String>,
    /// Remove every sandbox in your state file (others listed by `ls` are removed by id)
    #[arg(long)]
    pub all: bool,
}

pub async fn run(args: RmArgs, ctx: &Ctx) -> Result<u8> {
    let manager = ctx.manager().await?;
    let targets = if args.all {
        manager
            .list()
            .await?
            .into_iter()
            .filter(|s| s.tracked)
            .map(|s| s.id)
            .collect()
    } else {
        args.ids
    };
    let mut done = Vec::new();
    let mut code = exit_code::SUCCESS;
    // One failure does not stop the others; the exit code reports it.
    for target in targets {
        match manager.remove(&target).await {
            Ok(removed) => {
                if !ctx.output.json {
                    ctx.output.line(&removed.id)?;
                    if removed.result == Removal::Forgotten {
                        ctx.output.note(&format!(
                            "{}: its container was already gone; forgotten",
                            removed.id
                        ));
                    }
                }
                done.push(removed);
            }
            Err(e) => {
                ctx.output.error(&e);
                code = error::find(&e).map_or(exit_code::FAILURE, |d| d.exit_code());
            }
        }
    }
    if ctx.output.json {
        ctx.output.json(&done)?;
    }
    Ok(code)
}

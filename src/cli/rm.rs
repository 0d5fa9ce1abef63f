//! `enclave rm`: kill and remove sandboxes, and forget ones whose container is already gone.

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::{parse_sandbox_id, Ctx};
use crate::error;
use crate::error::Report;
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

/// One id's outcome in `rm --json`: what was removed, or why not.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Outcome {
    Done(Removed),
    Failed {
        id: String,
        result: &'static str,
        error: Report,
    },
}

pub(crate) async fn run(args: RmArgs, ctx: &Ctx) -> Result<u8> {
    let mut outcomes = Outcomes::default();
    // One failure does not stop the others; the exit code reports it.
    if args.all {
        let manager = ctx.manager().await?;
        let listed = manager.list().await?;
        for sandbox in listed.into_iter().filter(|s| s.tracked) {
            let removed = manager.remove(&sandbox).await;
            outcomes.add(sandbox.id, removed, ctx).await?;
        }
    } else {
        for id in args.ids {
            let removed = remove(&id, ctx).await;
            outcomes.add(id, removed, ctx).await?;
        }
    }
    if ctx.output.json {
        ctx.output.json(&outcomes.list).await?;
    }
    Ok(outcomes.code)
}

/// Looks `id` up where it lives and removes it.
async fn remove(id: &str, ctx: &Ctx) -> Result<Removed> {
    let manager = ctx.manager_for(id).await?;
    let sandbox = manager.find(id).await?;
    manager.remove(&sandbox).await
}

/// What `rm` did so far, and its exit code.
#[derive(Default)]
struct Outcomes {
    list: Vec<Outcome>,
    code: u8,
}

impl Outcomes {
    /// Says what happened to `id` (a line, a note, an error) and keeps it for `--json`.
    async fn add(&mut self, id: String, removed: Result<Removed>, ctx: &Ctx) -> Result<()> {
        match removed {
            Ok(removed) => {
                if !ctx.output.json {
                    ctx.output.line(&removed.id).await?;
                    if removed.result == Removal::Forgotten {
                        ctx.output
                            .note(&format!("{}: it was already gone; forgotten", removed.id));
                    }
                }
                self.list.push(Outcome::Done(removed));
            }
            Err(e) => {
                ctx.output.error_text(&e);
                self.code = error::exit_code_of(&e);
                self.list.push(Outcome::Failed {
                    id,
                    result: "error",
                    error: Report::of(&e),
                });
            }
        }
        Ok(())
    }
}

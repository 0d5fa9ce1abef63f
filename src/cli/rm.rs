//! `enclave rm`: kill and remove sandboxes, and forget ones whose container is already gone.

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::{parse_sandbox_id, Ctx};
use crate::error::Report;
use crate::error::{self, exit_code};
use crate::model::{Removal, Removed, Sandbox};

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// Sandbox ids (unique prefixes are enough)
    #[arg(required_unless_present = "all", conflicts_with = "all", value_parser = parse_sandbox_id)]
    pub(crate) ids: Vec<String>,
    /// Remove every sandbox in your state file (others listed by `ls` are removed by id)
    #[arg(long)]
    pub(crate) all: bool,
}

/// What to remove: a sandbox `--all` already found, or an id to look up.
enum Target {
    Found(Box<Sandbox>),
    Id(String),
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
    let manager = ctx.manager().await?;
    let targets: Vec<Target> = if args.all {
        let listed = manager.list().await?;
        listed
            .into_iter()
            .filter(|s| s.tracked)
            .map(|s| Target::Found(Box::new(s)))
            .collect()
    } else {
        args.ids.into_iter().map(Target::Id).collect()
    };
    let mut outcomes = Vec::new();
    let mut code = exit_code::SUCCESS;
    // One failure does not stop the others; the exit code reports it.
    for target in targets {
        let (id, removed) = match target {
            Target::Found(sandbox) => (sandbox.id.clone(), manager.remove(&sandbox).await),
            Target::Id(id) => {
                let removed = match manager.find(&id).await {
                    Ok(sandbox) => manager.remove(&sandbox).await,
                    Err(e) => Err(e),
                };
                (id, removed)
            }
        };
        match removed {
            Ok(removed) => {
                if !ctx.output.json {
                    ctx.output.line(&removed.id).await?;
                    if removed.result == Removal::Forgotten {
                        ctx.output
                            .note(&format!("{}: it was already gone; forgotten", removed.id));
                    }
                }
                outcomes.push(Outcome::Done(removed));
            }
            Err(e) => {
                ctx.output.error_text(&e);
                code = error::exit_code_of(&e);
                outcomes.push(Outcome::Failed {
                    id,
                    result: "error",
                    error: Report::of(&e),
                });
            }
        }
    }
    if ctx.output.json {
        ctx.output.json(&outcomes).await?;
    }
    Ok(code)
}

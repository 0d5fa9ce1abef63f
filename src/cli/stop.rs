//! `enclave stop`: end a sandbox's processes and leave it `stopped` until it is removed.

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use super::{parse_sandbox_id, Ctx};
use crate::error::{self, exit_code, Report};

#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// Sandbox ids (unique prefixes are enough)
    #[arg(required = true, value_parser = parse_sandbox_id)]
    pub(crate) ids: Vec<String>,
}

/// One id's outcome in `stop --json`, shaped as `rm --json`'s.
#[derive(Debug, Serialize)]
struct Outcome {
    id: String,
    /// `stopped`, or `error`.
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Report>,
}

pub(crate) async fn run(args: StopArgs, ctx: &Ctx) -> Result<u8> {
    let mut outcomes = Vec::new();
    let mut code = exit_code::SUCCESS;
    // One failure does not stop the others; the exit code reports it.
    for id in args.ids {
        match stop(&id, ctx).await {
            Ok(stopped) => {
                if !ctx.output.json {
                    ctx.output.line(&stopped).await?;
                }
                outcomes.push(Outcome {
                    id: stopped,
                    result: "stopped",
                    error: None,
                });
            }
            Err(e) => {
                ctx.output.error_text(&e);
                code = error::exit_code_of(&e);
                outcomes.push(Outcome {
                    id,
                    result: "error",
                    error: Some(Report::of(&e)),
                });
            }
        }
    }
    if ctx.output.json {
        ctx.output.json(&outcomes).await?;
    }
    Ok(code)
}

/// Looks `id` up where it lives and stops it; its full id.
async fn stop(id: &str, ctx: &Ctx) -> Result<String> {
    let manager = ctx.manager_for(id).await?;
    let sandbox = manager.find(id).await?;
    manager.stop(&sandbox).await?;
    Ok(sandbox.id)
}

//! `enclave ls`: the sandboxes we know, reconciled with the engine.

use anyhow::Result;
use chrono::Utc;
use clap::Args;

use super::Ctx;
use crate::manager::Manager;
use crate::output;

#[derive(Debug, Args)]
pub struct LsArgs {}

pub async fn run(_args: LsArgs, ctx: &Ctx) -> Result<u8> {
    let manager = ctx.manager().await?;
    let sandboxes = manager.list().await?;
    let out = &ctx.output;
    if out.json {
        out.json(&sandboxes)?;
    } else if out.quiet {
        for s in &sandboxes {
            out.line(&s.id)?;
        }
    } else {
        let now = Utc::now();
        let rows = sandboxes
            .iter()
            .map(|s| {
                vec![
                    s.id.clone(),
                    s.sandbox_type.as_str().to_string(),
                    s.image.clone(),
                    out.status_word(s.status.as_str()),
                    if s.tools.is_empty() {
                        "-".into()
                    } else {
                        s.tools.join(",")
                    },
                    s.created_at
                        .map(|c| output::age((now - c).num_seconds()))
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        out.table(&["id", "type", "image", "status", "tools", "created"], rows)?;
    }
    Ok(0)
}

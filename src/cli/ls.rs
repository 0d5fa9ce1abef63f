//! `enclave ls`: the sandboxes we know, reconciled with the engine.

use anyhow::Result;
use chrono::Utc;
use clap::Args;

use super::{BackendChoice, Ctx};
use crate::model::Location;
use crate::output;
use crate::state::StateStore;

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// With `-q`, also list sandboxes your state file does not hold (other users', other state
    /// directories')
    #[arg(short, long)]
    pub(crate) all: bool,
}

pub(crate) async fn run(args: LsArgs, ctx: &Ctx) -> Result<u8> {
    let manager = ctx.manager().await?;
    let sandboxes = manager.list().await?;
    let out = &ctx.output;
    if out.json {
        out.json(&sandboxes).await?;
    } else if out.quiet {
        // Only yours by default, so `enclave rm $(enclave ls -q)` never reaches anyone else's.
        let ids: String = sandboxes
            .iter()
            .filter(|s| s.tracked || args.all)
            .map(|s| format!("{}\n", s.id))
            .collect();
        if !ids.is_empty() {
            out.line(ids.trim_end()).await?;
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
                        .map_or_else(|| "-".into(), |c| output::age((now - c).num_seconds())),
                    if s.tracked { "yes" } else { "no" }.to_string(),
                ]
            })
            .collect();
        out.table(
            &[
                "id", "type", "image", "status", "tools", "created", "tracked",
            ],
            rows,
        )
        .await?;
        if let Some(note) = elsewhere(ctx) {
            out.note(&note);
        }
        if sandboxes.iter().any(|s| !s.tracked) {
            out.note(
                "TRACKED no: not in your state file (another user's, or another state \
                 directory's); `ls -q` leaves them out unless `--all`",
            );
        }
    }
    Ok(0)
}

/// For `ls` of one place: the sandboxes the state file holds in the other places, and how to
/// list them (a sandbox made with `--backend kubernetes` is not on the local engine's list).
fn elsewhere(ctx: &Ctx) -> Option<String> {
    if ctx.is_remote() {
        return None;
    }
    let state = StateStore::from_env().ok()?.load().ok()?;
    let (mut on_kubernetes, mut on_docker) = (0, 0);
    for record in state.sandboxes.values() {
        match record.location {
            Location::Kubernetes { .. } => on_kubernetes += 1,
            Location::Docker => on_docker += 1,
            Location::Server { .. } => {}
        }
    }
    match ctx.backend {
        BackendChoice::Docker if on_kubernetes > 0 => Some(format!(
            "{on_kubernetes} more on kubernetes: `enclave --backend kubernetes ls` lists them"
        )),
        BackendChoice::Kubernetes if on_docker > 0 => Some(format!(
            "{on_docker} more on the local engine: `enclave --backend docker ls` lists them"
        )),
        _ => None,
    }
}

//! What the managers that keep sandboxes in the state file (the local engine, a cluster) do the
//! same way: pick a sandbox by id or prefix, and remove one so the state file never holds a
//! sandbox that is gone nor loses one that is not.

use std::future::Future;

use anyhow::{Context, Result};

use crate::error::Error;
use crate::model::{Removal, Removed, Sandbox};
use crate::state::StateStore;

/// The sandbox among `found` whose id is `id_or_prefix`, or the only one it is a prefix of.
pub(super) fn pick(id_or_prefix: &str, found: Vec<Sandbox>) -> Result<Sandbox> {
    let mut matches: Vec<Sandbox> = found
        .into_iter()
        .filter(|s| s.id.starts_with(id_or_prefix))
        .collect();
    match matches.len() {
        0 => Err(Error::NotFound(id_or_prefix.to_string()).into()),
        1 => Ok(matches.remove(0)),
        _ => {
            if let Some(i) = matches.iter().position(|s| s.id == id_or_prefix) {
                return Ok(matches.swap_remove(i));
            }
            Err(Error::Ambiguous {
                prefix: id_or_prefix.to_string(),
                candidates: matches.into_iter().map(|s| s.id).collect(),
            }
            .into())
        }
    }
}

/// Removes `sandbox` with `kill` (which says whether there was anything left to remove), then
/// forgets its record. Nothing is killed that the state file could not then forget.
pub(super) async fn remove<K>(state: &StateStore, sandbox: &Sandbox, kill: K) -> Result<Removed>
where
    K: Future<Output = Result<bool>>,
{
    if sandbox.tracked {
        state.check_writable().with_context(|| {
            format!(
                "`{}` was not removed: the state file {} cannot be updated",
                sandbox.id,
                state.path().display()
            )
        })?;
    }
    let removed = kill.await?;
    // A sandbox found only through its labels has no record to drop.
    if sandbox.tracked {
        state
            .update(|s| s.sandboxes.shift_remove(&sandbox.id))
            .await
            .with_context(|| {
                format!(
                    "sandbox `{}` was removed, but the state file could not be updated",
                    sandbox.id
                )
            })?;
    }
    Ok(Removed {
        id: sandbox.id.clone(),
        result: if removed {
            Removal::Removed
        } else {
            Removal::Forgotten
        },
    })
}

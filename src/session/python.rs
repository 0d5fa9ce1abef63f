//! The Python session: `driver.py` in the sandbox, started through the backend's exec with open
//! stdin, speaking `SessionRequest` / `SessionEvent` as JSON lines.

use anyhow::Result;

use super::{Session, SessionOptions};
use crate::backend::Backend;

/// Starts the driver in the sandbox `sandbox_id` reached through `backend`, and waits for its
/// `Ready`.
pub(crate) async fn open(
    backend: Box<dyn Backend>,
    sandbox_id: &str,
    options: SessionOptions,
) -> Result<Box<dyn Session>> {
    let _ = (backend, sandbox_id, options);
    anyhow::bail!("python sessions are not built yet")
}

//! Jupyter notebook sandboxes from the host's side: the kernel gateway's REST API
//! (`gateway.rs`), one kernel's WebSocket channels (`kernel.rs`), and the kernel as an
//! interactive `Session` (`session.rs`). Nothing here knows Docker: the manager says where a
//! sandbox's gateway answers.

pub(crate) mod gateway;
pub(crate) mod kernel;
pub(crate) mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(crate) use gateway::Gateway;
pub(crate) use kernel::Kernel;

/// The Dockerfile of the default notebook image (`docker/notebook/Dockerfile`).
pub(crate) const DOCKERFILE: &str = include_str!("../../docker/notebook/Dockerfile");

/// A sandbox's kernel, shared by every call in this process: the lock serialises them, so two
/// calls never read each other's messages or interleave on one kernel.
pub(crate) type SharedKernel = Arc<tokio::sync::Mutex<Kernel>>;

/// The kernels of the notebook sandboxes this process has used, by sandbox id. The server keeps
/// one for its lifetime, so its connections outlive each call.
#[derive(Default)]
pub(crate) struct Notebooks {
    kernels: Mutex<HashMap<String, SharedKernel>>,
}

impl Notebooks {
    pub(crate) fn get(&self, sandbox_id: &str) -> Option<SharedKernel> {
        self.kernels
            .lock()
            .expect("notebooks lock")
            .get(sandbox_id)
            .cloned()
    }

    /// Keeps `kernel` for `sandbox_id` unless another call got there first; the one kept.
    pub(crate) fn insert(&self, sandbox_id: &str, kernel: Kernel) -> SharedKernel {
        self.kernels
            .lock()
            .expect("notebooks lock")
            .entry(sandbox_id.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(kernel)))
            .clone()
    }

    pub(crate) fn forget(&self, sandbox_id: &str) {
        self.kernels
            .lock()
            .expect("notebooks lock")
            .remove(sandbox_id);
    }
}

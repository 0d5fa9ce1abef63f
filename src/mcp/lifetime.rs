//! How `enclave mcp` ends without leaving anything behind: it notices its client going away
//! (stdin's EOF, the parent process dying) and removes the sandboxes it made.

use std::time::Duration;

use super::Core;

/// How often the parent process is looked for.
const PARENT_CHECK: Duration = Duration::from_secs(1);

/// Completes when the process that started this one has died. A client killed with SIGKILL
/// may leave stdin open in a grandchild that inherited it, so EOF alone is not enough.
pub(super) async fn parent_gone() {
    let parent = std::os::unix::process::parent_id();
    loop {
        tokio::time::sleep(PARENT_CHECK).await;
        // An orphan is re-parented (to init or a subreaper), so its parent id changes.
        if std::os::unix::process::parent_id() != parent {
            return;
        }
    }
}

impl Core {
    /// Stops every running call and job, then removes the throwaway sandboxes and, unless
    /// `--keep`, the ones `sandbox_create` made.
    pub(crate) async fn shut_down(&self) {
        self.stop.cancel();
        self.jobs.kill_all().await;
        let ids = self.sandboxes.all(self.options.keep);
        futures_util::future::join_all(ids.iter().map(|id| self.discard(id))).await;
    }
}

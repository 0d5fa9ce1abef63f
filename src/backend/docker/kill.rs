//! Killing a command's process tree in a container: the shared script of `backend::kill_tree`
//! run through a second `docker exec`.

use super::DockerEngine;
use crate::backend::kill_tree::{kill_tree_argv, parse_report, KILL_BUDGET};
use crate::model::{Capture, ExecEnd, ExecSpec, KillReport};

impl DockerEngine {
    /// Kills every process of the command marked with `token`; bounded in time.
    pub(super) async fn kill_tree(&self, container: &str, token: &str) -> KillReport {
        let spec = ExecSpec::new(kill_tree_argv(token));
        let mut capture = Capture::new(4096);
        let run = self.exec_untracked(container, spec, &mut capture);
        match tokio::time::timeout(KILL_BUDGET, run).await {
            Ok(Ok(ExecEnd::Exited(Some(0)))) => parse_report(&capture.stdout.into_text().0),
            _ => KillReport::Unverified,
        }
    }
}

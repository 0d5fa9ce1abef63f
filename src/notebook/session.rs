//! A notebook sandbox's kernel as an interactive `Session` (`enclave shell`): inputs run in the
//! same kernel `notebook_executor` uses, one at a time with its calls.

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::SharedKernel;
use crate::session::{
    Completeness, DoneStatus, Interrupter, Session, SessionEvent, SessionInfo, SessionKind,
};

/// How long opening the session may wait for the kernel to answer.
const OPEN_PATIENCE: Duration = Duration::from_secs(30);

pub(crate) struct NotebookSession {
    kernel: SharedKernel,
    info: SessionInfo,
}

/// Opens a session on `kernel`, once it answers.
pub(crate) async fn open(kernel: SharedKernel, sandbox_id: &str) -> Result<Box<dyn Session>> {
    let language = kernel.lock().await.kernel_info(OPEN_PATIENCE).await?;
    Ok(Box::new(NotebookSession {
        kernel,
        info: SessionInfo {
            kind: SessionKind::Notebook,
            language,
            sandbox: sandbox_id.to_string(),
        },
    }))
}

#[async_trait]
impl Session for NotebookSession {
    fn info(&self) -> &SessionInfo {
        &self.info
    }

    async fn execute(
        &mut self,
        code: &str,
        timeout: Option<Duration>,
        interrupt: &Interrupter,
        events: &mut (dyn FnMut(SessionEvent) + Send),
    ) -> Result<DoneStatus> {
        let never = CancellationToken::new();
        self.kernel
            .lock()
            .await
            .execute(code, timeout, interrupt, &never, events)
            .await
    }

    async fn is_complete(&mut self, code: &str) -> Result<(Completeness, String)> {
        self.kernel.lock().await.is_complete(code).await
    }

    async fn complete(&mut self, code: &str, cursor: usize) -> Result<(Vec<String>, usize, usize)> {
        self.kernel.lock().await.complete(code, cursor).await
    }

    async fn reset(&mut self) -> Result<()> {
        self.kernel.lock().await.restart().await
    }

    /// The kernel is the sandbox's, not the session's: it stays for the tool and later shells.
    async fn close(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

//! Forwarding our stdin to a command's, for execs and ephemeral runs alike.

use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Copies a reader into a command's stdin in the background. Shutting the write half down at
/// EOF is what delivers EOF to the command.
pub(super) struct StdinPump {
    task: Option<JoinHandle<()>>,
}

impl StdinPump {
    /// Starts copying `reader` (when there is one) into `input`.
    pub(super) fn start(
        reader: Option<Box<dyn AsyncRead + Send + Unpin>>,
        mut input: Pin<Box<dyn AsyncWrite + Send>>,
    ) -> Self {
        let task = reader.map(|mut reader| {
            tokio::spawn(async move {
                // The command may stop reading or end first; neither is our error.
                let _ = tokio::io::copy(&mut reader, &mut input).await;
                let _ = input.shutdown().await;
            })
        });
        StdinPump { task }
    }

    /// Stops copying and waits for the copy to end, so it never outlives the command.
    pub(super) async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for StdinPump {
    /// A pump dropped without `stop` (an early return) still stops copying.
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn data_reaches_the_command_and_eof_closes_it() {
        let (writer, mut command_stdin) = tokio::io::duplex(64);
        let pump = StdinPump::start(Some(Box::new(&b"data"[..])), Box::pin(writer));
        let mut got = Vec::new();
        command_stdin.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"data");
        pump.stop().await;
    }

    #[tokio::test]
    async fn stopping_ends_a_copy_that_would_never_end() {
        // Our stdin, never closed: the copy would wait on it for ever.
        let (_keep_open, endless) = tokio::io::duplex(64);
        let (writer, mut command_stdin) = tokio::io::duplex(64);
        let pump = StdinPump::start(Some(Box::new(endless)), Box::pin(writer));
        pump.stop().await;
        // The copy was joined: its half of the command's stdin is gone, so reading sees EOF.
        let mut got = Vec::new();
        command_stdin.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty());
    }
}

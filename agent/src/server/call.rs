//! What a running call holds: its way to reply (within its window), the input the host sent
//! it, and the controls (`Signal`, `Cancel`) addressed to it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, Notify};

use crate::client::Window;
use crate::proto::{CallId, Frame, Reply, WINDOW};

/// A control the host sent a running call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Signal(i32),
    Cancel,
}

/// The input (`Data`, `End`) a call received and has not consumed. The host may have at most
/// a window of it unacknowledged, so this never holds more than [`WINDOW`] bytes.
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    ready: Notify,
}

#[derive(Default)]
struct InboxState {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes received and not yet acknowledged with `Credit`.
    unacked: u64,
    ended: bool,
}

impl Inbox {
    pub(crate) fn new() -> Self {
        Inbox {
            state: Mutex::new(InboxState::default()),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a chunk from the host; false when it breaks the window.
    pub(crate) fn push(&self, data: Vec<u8>) -> bool {
        let mut state = self.lock();
        if state.ended {
            return true;
        }
        state.unacked += data.len() as u64;
        if state.unacked > u64::from(WINDOW) {
            return false;
        }
        if !data.is_empty() {
            state.chunks.push_back(data);
        }
        drop(state);
        self.ready.notify_one();
        true
    }

    /// The host's `End`, or its connection closing: no more input.
    pub(crate) fn end(&self) {
        self.lock().ended = true;
        self.ready.notify_one();
    }

    /// The next chunk, or `None` once the input ended. Only one task takes from an inbox.
    pub(crate) async fn take(&self) -> Option<Vec<u8>> {
        loop {
            {
                let mut state = self.lock();
                if let Some(chunk) = state.chunks.pop_front() {
                    return Some(chunk);
                }
                if state.ended {
                    return None;
                }
            }
            // `notify_one` keeps a permit when nobody waits, so a push between the check
            // above and this wait is not missed.
            self.ready.notified().await;
        }
    }

    /// Records that `n` bytes were consumed and acknowledged.
    fn consumed(&self, n: usize) {
        let mut state = self.lock();
        state.unacked = state.unacked.saturating_sub(n as u64);
    }
}

/// What the connection keeps of a running call, to route the host's frames to it.
pub(crate) struct Route {
    pub(crate) window: Arc<Window>,
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
}

impl Route {
    /// The connection is gone: the call's output is discarded and its input ends.
    pub(crate) fn disconnect(&self) {
        self.window.close();
        self.inbox.end();
    }
}

/// How a call replies. Clones share the call's window; replies go nowhere once the connection
/// is gone, and the call runs on regardless.
#[derive(Clone)]
pub(crate) struct Replies {
    id: CallId,
    conn: Arc<Conn>,
    window: Arc<Window>,
    inbox: Arc<Inbox>,
}

impl Replies {
    pub(crate) fn new(id: CallId, conn: Arc<Conn>, window: Arc<Window>, inbox: Arc<Inbox>) -> Self {
        Replies {
            id,
            conn,
            window,
            inbox,
        }
    }

    /// Sends a reply; false when the connection is gone.
    pub(crate) async fn send(&self, body: Reply) -> bool {
        self.conn
            .send(Frame {
                call: self.id,
                body,
            })
            .await
    }

    /// Sends `Output` or `Data` once the window allows; false when the connection is gone and
    /// the payload was discarded.
    pub(crate) async fn send_payload(&self, body: Reply, len: usize) -> bool {
        self.window.take(len).await && self.send(body).await
    }

    /// Acknowledges `n` bytes of the host's input.
    pub(crate) async fn credit(&self, n: usize) {
        self.inbox.consumed(n);
        if n > 0 {
            self.send(Reply::Credit(n as u32)).await;
        }
    }

    /// The call's input.
    pub(crate) fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// Sends the call's last reply. The call leaves the connection's table first, so the host
    /// may reuse its id as soon as it reads this.
    pub(crate) async fn finish(&self, body: Reply) {
        self.conn.forget(self.id);
        self.send(body).await;
    }
}

/// One connection's shared state: its writer queue and its live calls. Calls reply through it,
/// and the connection's reader routes frames to them through it.
pub(crate) struct Conn {
    outgoing: mpsc::Sender<Frame<Reply>>,
    calls: Mutex<HashMap<CallId, Route>>,
    /// Told when the reader is done, so the writer drains and stops.
    pub(crate) closing: Notify,
}

impl Conn {
    pub(crate) fn new(outgoing: mpsc::Sender<Frame<Reply>>) -> Self {
        Conn {
            outgoing,
            calls: Mutex::new(HashMap::new()),
            closing: Notify::new(),
        }
    }

    /// Queues a reply; false when the connection is gone.
    pub(crate) async fn send(&self, frame: Frame<Reply>) -> bool {
        self.outgoing.send(frame).await.is_ok()
    }

    pub(crate) fn lock_calls(&self) -> MutexGuard<'_, HashMap<CallId, Route>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The call ended: frames for it are ignored from now on.
    pub(crate) fn forget(&self, id: CallId) {
        self.lock_calls().remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inbox_refuses_more_than_a_window() {
        let inbox = Inbox::new();
        assert!(inbox.push(vec![0; WINDOW as usize]));
        assert!(!inbox.push(vec![0]));
        let inbox = Inbox::new();
        assert!(inbox.push(vec![0; WINDOW as usize]));
        assert_eq!(inbox.take().await.map(|c| c.len()), Some(WINDOW as usize));
        inbox.consumed(WINDOW as usize);
        assert!(inbox.push(vec![1, 2]));
        inbox.end();
        assert_eq!(inbox.take().await, Some(vec![1, 2]));
        assert_eq!(inbox.take().await, None);
    }
}

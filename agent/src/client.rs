//! The host's side of the protocol: one connection to an agent, many concurrent calls.
//!
//! [`Client::handshake`] proves the secret both ways, then two tasks own the connection: a
//! writer draining a bounded queue of frames, and a reader routing each reply to its call.
//! A call's replies reach its [`CallReader`]; payload is acknowledged (`Credit`) as the reader
//! hands it out, so the client never holds more than a window of one call's output.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::proto::{self, auth, CallId, Failure, FailureKind, Frame, Reply, Request};

/// How long the handshake may take before the peer is given up on.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames queued for the writer; beyond this, senders wait for the socket.
const WRITE_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The agent went away, the connection dropped, or (for [`CallWriter::send`]) the call has
    /// already ended.
    #[error("the connection to the agent is closed")]
    Closed,
    /// The peer could not prove the secret.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The agent speaks another protocol version.
    #[error(
        "the agent speaks protocol version {agent}, this host {}",
        proto::VERSION
    )]
    Version { agent: u32 },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The agent answered the call with an `Error`.
    #[error("{0}")]
    Failed(Failure),
}

/// Credit for sending one call's payload: [`proto::WINDOW`] bytes, replenished by the peer's
/// `Credit` frames. Shared by the client and the agent.
pub(crate) struct Window {
    permits: Semaphore,
}

impl Window {
    pub(crate) fn new() -> Self {
        Window {
            permits: Semaphore::new(proto::WINDOW as usize),
        }
    }

    /// Waits until `n` bytes may be sent; false once the window is closed (the call or the
    /// connection ended), when nothing more should be sent.
    pub(crate) async fn take(&self, n: usize) -> bool {
        if n == 0 {
            return !self.permits.is_closed();
        }
        // A chunk is at most CHUNK bytes, far below u32::MAX and the window.
        let n = n.min(proto::WINDOW as usize) as u32;
        match self.permits.acquire_many(n).await {
            Ok(permits) => {
                permits.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Returns credit; more than was taken is ignored, so a confused peer cannot grow the window.
    pub(crate) fn give(&self, n: u32) {
        let room = (proto::WINDOW as usize).saturating_sub(self.permits.available_permits());
        self.permits.add_permits((n as usize).min(room));
    }

    pub(crate) fn close(&self) {
        self.permits.close();
    }
}

/// One connection to an agent. Cheap to clone; every clone shares the connection.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    agent: String,
    outgoing: mpsc::Sender<Frame<Request>>,
    calls: Mutex<HashMap<CallId, Route>>,
    next_id: AtomicU32,
    closed: AtomicBool,
}

/// Where the reader delivers one call's replies.
struct Route {
    replies: mpsc::UnboundedSender<Reply>,
    window: Arc<Window>,
    /// Payload bytes received and not yet acknowledged; the agent may not exceed a window.
    unacked: Arc<AtomicU32>,
}

impl Client {
    /// Connects over `stream`: proves the secret and checks the agent's proof, within
    /// [`HANDSHAKE_TIMEOUT`].
    pub async fn handshake<S>(stream: S, secret: &[u8]) -> Result<Client, ClientError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        let mut reader = FramedRead::new(read, proto::codec());
        let mut writer = FramedWrite::new(write, proto::codec());
        let agent =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, prove(&mut reader, &mut writer, secret))
                .await
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the agent's handshake timed out",
                    )
                })??;

        let (outgoing, queue) = mpsc::channel(WRITE_QUEUE);
        let shared = Arc::new(Shared {
            agent,
            outgoing,
            calls: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(1),
            closed: AtomicBool::new(false),
        });
        // The tasks hold the connection weakly: once every handle is gone the queue's sender
        // drops, the writer shuts the stream, and the agent's close ends the reader.
        let (stopped, stop) = oneshot::channel();
        tokio::spawn(write_frames(
            writer,
            queue,
            Arc::downgrade(&shared),
            stopped,
        ));
        tokio::spawn(read_replies(reader, Arc::downgrade(&shared), stop));
        Ok(Client { shared })
    }

    /// The agent's build, as it announced itself (`enclave-agent 0.1.0`).
    pub fn agent(&self) -> &str {
        &self.shared.agent
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Starts a call; its replies come from the returned [`Call`].
    pub async fn call(&self, request: Request) -> Result<Call, ClientError> {
        if self.is_closed() {
            return Err(ClientError::Closed);
        }
        let id = self.shared.new_id();
        let (replies, inbox) = mpsc::unbounded_channel();
        let window = Arc::new(Window::new());
        let unacked = Arc::new(AtomicU32::new(0));
        self.shared.lock_calls().insert(
            id,
            Route {
                replies,
                window: window.clone(),
                unacked: unacked.clone(),
            },
        );
        if let Err(e) = self.shared.send(id, request).await {
            self.shared.lock_calls().remove(&id);
            return Err(e);
        }
        Ok(Call {
            writer: CallWriter {
                id,
                shared: self.shared.clone(),
                window,
            },
            reader: CallReader {
                id,
                shared: self.shared.clone(),
                inbox,
                unacked,
                ended: false,
            },
        })
    }
}

impl Shared {
    fn new_id(&self) -> CallId {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 && !self.lock_calls().contains_key(&id) {
                return id;
            }
        }
    }

    fn lock_calls(&self) -> std::sync::MutexGuard<'_, HashMap<CallId, Route>> {
        // A panic while holding this lock leaves the map itself intact.
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn send(&self, call: CallId, body: Request) -> Result<(), ClientError> {
        self.outgoing
            .send(Frame { call, body })
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// The connection is gone: every call still waiting learns it (their channels close).
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for (_, route) in self.lock_calls().drain() {
            route.window.close();
        }
    }
}

/// The handshake from the host's side; the agent's build string on success.
async fn prove<R, W>(
    reader: &mut FramedRead<R, tokio_util::codec::LengthDelimitedCodec>,
    writer: &mut FramedWrite<W, tokio_util::codec::LengthDelimitedCodec>,
    secret: &[u8],
) -> Result<String, ClientError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let challenge = random_challenge()?;
    let hello = Request::Hello {
        version: proto::VERSION,
        challenge: challenge.clone(),
    };
    writer
        .send(proto::encode(&Frame {
            call: 0,
            body: hello,
        }))
        .await?;
    let (version, proof, their_challenge, agent) = match next_reply(reader).await? {
        Reply::Welcome {
            version,
            proof,
            challenge,
            agent,
        } => (version, proof, challenge, agent),
        other => return Err(unexpected(&other)),
    };
    if version != proto::VERSION {
        return Err(ClientError::Version { agent: version });
    }
    if !auth::verify(secret, auth::AGENT, &challenge, &proof) {
        return Err(ClientError::Unauthorized(
            "the agent could not prove the sandbox's secret".into(),
        ));
    }
    let prove = Request::Prove {
        proof: auth::proof(secret, auth::HOST, &their_challenge),
    };
    writer
        .send(proto::encode(&Frame {
            call: 0,
            body: prove,
        }))
        .await?;
    match next_reply(reader).await? {
        Reply::Ready => Ok(agent),
        Reply::Error(f) if f.kind == FailureKind::Unauthorized => {
            Err(ClientError::Unauthorized(f.message))
        }
        other => Err(unexpected(&other)),
    }
}

fn random_challenge() -> Result<Vec<u8>, ClientError> {
    let mut challenge = vec![0; auth::CHALLENGE_LEN];
    getrandom::fill(&mut challenge).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(challenge)
}

/// The next handshake reply; the connection closing is `Closed`.
async fn next_reply<R: AsyncRead + Unpin>(
    reader: &mut FramedRead<R, tokio_util::codec::LengthDelimitedCodec>,
) -> Result<Reply, ClientError> {
    let bytes = reader.next().await.ok_or(ClientError::Closed)??;
    let frame: Frame<Reply> =
        proto::decode(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))?;
    if frame.call != 0 {
        return Err(ClientError::Protocol(format!(
            "a reply on call {} during the handshake",
            frame.call
        )));
    }
    Ok(frame.body)
}

fn unexpected(reply: &Reply) -> ClientError {
    match reply {
        Reply::Error(f) => ClientError::Failed(f.clone()),
        other => ClientError::Protocol(format!("unexpected reply in the handshake: {other:?}")),
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: FramedWrite<W, tokio_util::codec::LengthDelimitedCodec>,
    mut queue: mpsc::Receiver<Frame<Request>>,
    shared: Weak<Shared>,
    stopped: oneshot::Sender<()>,
) {
    while let Some(frame) = queue.recv().await {
        if writer.send(proto::encode(&frame)).await.is_err() {
            break;
        }
    }
    let _ = SinkExt::<bytes::Bytes>::close(&mut writer).await;
    if let Some(shared) = shared.upgrade() {
        shared.close();
    }
    // Some transports (a child's pipes) do not close on shutdown, only when dropped: the
    // reader lets go of its half too, and the stream drops.
    let _ = stopped.send(());
}

async fn read_replies<R: AsyncRead + Unpin>(
    mut reader: FramedRead<R, tokio_util::codec::LengthDelimitedCodec>,
    shared: Weak<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let bytes = tokio::select! {
            bytes = reader.next() => bytes,
            _ = &mut stop => break,
        };
        let Some(Ok(bytes)) = bytes else {
            break;
        };
        let Ok(frame) = proto::decode::<Reply>(&bytes) else {
            break;
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if !route(&shared, frame).await {
            break;
        }
    }
    if let Some(shared) = shared.upgrade() {
        shared.close();
    }
}

/// Delivers one reply to its call; false when the agent broke the protocol and the
/// connection should end.
async fn route(shared: &Shared, frame: Frame<Reply>) -> bool {
    if frame.call == 0 {
        // Only a protocol error is ever sent on call 0 after the handshake; the agent closes.
        return false;
    }
    let payload = payload_len(&frame.body);
    let (delivered, unacked) = {
        let mut calls = shared.lock_calls();
        let Some(route) = calls.get(&frame.call) else {
            return true;
        };
        if let Reply::Credit(n) = frame.body {
            route.window.give(n);
            return true;
        }
        if let Some(n) = payload {
            let unacked = route.unacked.fetch_add(n, Ordering::SeqCst) + n;
            if unacked > proto::WINDOW {
                return false;
            }
        }
        let is_final = is_final(&frame.body);
        let unacked = route.unacked.clone();
        let delivered = route.replies.send(frame.body).is_ok();
        if is_final {
            if let Some(route) = calls.remove(&frame.call) {
                route.window.close();
            }
        }
        (delivered, unacked)
    };
    // Nobody reads this call any more: acknowledge its output so the agent is not held up.
    if let (false, Some(n)) = (delivered, payload) {
        unacked.fetch_sub(n, Ordering::SeqCst);
        let _ = shared.send(frame.call, Request::Credit(n)).await;
    }
    true
}

/// The payload bytes of a reply that counts against the window.
fn payload_len(reply: &Reply) -> Option<u32> {
    match reply {
        Reply::Output { data, .. } | Reply::Data(data) => Some(data.len() as u32),
        _ => None,
    }
}

/// Whether this reply is a call's last.
fn is_final(reply: &Reply) -> bool {
    matches!(
        reply,
        Reply::Ended(_)
            | Reply::Stat(_)
            | Reply::Entries(_)
            | Reply::Done
            | Reply::Status(_)
            | Reply::Error(_)
    )
}

/// A running call: split it to send input and read replies from different tasks.
pub struct Call {
    writer: CallWriter,
    reader: CallReader,
}

impl Call {
    pub fn split(self) -> (CallWriter, CallReader) {
        (self.writer, self.reader)
    }
}

/// Sends a call's input and controls.
#[derive(Clone)]
pub struct CallWriter {
    id: CallId,
    shared: Arc<Shared>,
    window: Arc<Window>,
}

impl CallWriter {
    /// Sends stdin or upload bytes as `Data`, waiting for the agent's credit. `Closed` once the
    /// call has ended or the connection dropped.
    pub async fn send(&self, data: Vec<u8>) -> Result<(), ClientError> {
        for chunk in data.chunks(proto::CHUNK) {
            if !self.window.take(chunk.len()).await {
                return Err(ClientError::Closed);
            }
            self.shared
                .send(self.id, Request::Data(chunk.to_vec()))
                .await?;
        }
        Ok(())
    }

    /// The end of stdin or of the upload.
    pub async fn end(&self) -> Result<(), ClientError> {
        self.shared.send(self.id, Request::End).await
    }

    /// Sends `sig` to the call's process group.
    pub async fn signal(&self, sig: i32) -> Result<(), ClientError> {
        self.shared.send(self.id, Request::Signal(sig)).await
    }

    /// Kills the call's process tree; it ends `Cancelled`.
    pub async fn cancel(&self) -> Result<(), ClientError> {
        self.shared.send(self.id, Request::Cancel).await
    }
}

/// Reads a call's replies.
pub struct CallReader {
    id: CallId,
    shared: Arc<Shared>,
    inbox: mpsc::UnboundedReceiver<Reply>,
    unacked: Arc<AtomicU32>,
    ended: bool,
}

impl CallReader {
    /// The call's next reply: `Output`/`Data` (acknowledged as it is handed out), `Started`,
    /// `Ended`, `Stat`, `Entries`, `Done`, `Status`; an `Error` reply is `Err(Failed)`, and a
    /// connection that died before the call ended is `Err(Closed)`.
    pub async fn next(&mut self) -> Result<Reply, ClientError> {
        if self.ended {
            return Err(ClientError::Closed);
        }
        let reply = self.inbox.recv().await.ok_or(ClientError::Closed)?;
        if let Some(n) = payload_len(&reply) {
            self.unacked.fetch_sub(n, Ordering::SeqCst);
            if n > 0 {
                // The call may end before the agent reads this; it then ignores the frame.
                let _ = self.shared.send(self.id, Request::Credit(n)).await;
            }
        }
        self.ended = is_final(&reply);
        match reply {
            Reply::Error(f) => Err(ClientError::Failed(f)),
            reply => Ok(reply),
        }
    }
}

impl Drop for CallReader {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // Replies already delivered but never read: acknowledge them, so the agent's side of
        // the call is not stuck waiting for credit.
        self.inbox.close();
        let mut pending = 0u32;
        while let Ok(reply) = self.inbox.try_recv() {
            pending += payload_len(&reply).unwrap_or(0);
        }
        if pending == 0 {
            return;
        }
        self.unacked.fetch_sub(pending, Ordering::SeqCst);
        let frame = Frame {
            call: self.id,
            body: Request::Credit(pending),
        };
        let outgoing = self.shared.outgoing.clone();
        if let Err(mpsc::error::TrySendError::Full(frame)) = outgoing.try_send(frame) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { outgoing.send(frame).await });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn window_ignores_credit_beyond_what_was_taken() {
        let window = Window::new();
        assert!(window.take(100).await);
        window.give(1_000_000);
        assert_eq!(window.permits.available_permits(), proto::WINDOW as usize);
        window.close();
        assert!(!window.take(1).await);
    }

    #[test]
    fn final_replies_end_a_call() {
        assert!(is_final(&Reply::Done));
        assert!(!is_final(&Reply::Started { pid: 1 }));
        assert!(!is_final(&Reply::Data(vec![1])));
    }
}

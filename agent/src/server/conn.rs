//! Serving one connection: the handshake, then a reader routing the host's frames to calls and
//! a writer draining every call's replies into the stream.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::call::{Conn, Control, Inbox, Replies, Route};
use super::Agent;
use crate::client::Window;
use crate::proto::{self, auth, CallId, Failure, FailureKind, Frame, Reply, Request};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Calls one connection may run at once.
const MAX_CALLS: usize = 1024;
/// Replies queued for the writer; beyond this, calls wait for the socket.
const WRITE_QUEUE: usize = 64;

type Reader<R> = FramedRead<R, LengthDelimitedCodec>;
type Writer<W> = FramedWrite<W, LengthDelimitedCodec>;

/// Serves one connection until it closes or breaks the protocol. Calls still running then go
/// on to their end or deadline, their output discarded.
pub(crate) async fn serve<S>(agent: Arc<Agent>, stream: S)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    let mut reader = FramedRead::new(read, proto::codec());
    let mut writer = FramedWrite::new(write, proto::codec());
    let shaken = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake(&agent.secret, &mut reader, &mut writer),
    )
    .await;
    if !matches!(shaken, Ok(Ok(()))) {
        return;
    }

    let (outgoing, queue) = mpsc::channel(WRITE_QUEUE);
    let conn = Arc::new(Conn::new(outgoing));
    let written = tokio::spawn(write_replies(writer, queue, conn.clone()));
    if let Err(failure) = read_requests(&agent, &conn, &mut reader).await {
        conn.send(Frame {
            call: 0,
            body: Reply::Error(failure),
        })
        .await;
    }
    for (_, route) in conn.lock_calls().drain() {
        route.disconnect();
    }
    conn.closing.notify_one();
    let _ = written.await;
}

/// The handshake from the agent's side: answer the host's challenge, then check its proof.
async fn handshake<R, W>(
    secret: &[u8],
    reader: &mut Reader<R>,
    writer: &mut Writer<W>,
) -> Result<(), ()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (version, host_challenge) = match next_request(reader).await? {
        Request::Hello { version, challenge } => (version, challenge),
        _ => return refuse(writer, FailureKind::Protocol, "expected `Hello`").await,
    };
    let mut challenge = vec![0; auth::CHALLENGE_LEN];
    getrandom::fill(&mut challenge).map_err(|_| ())?;
    let welcome = Reply::Welcome {
        version: proto::VERSION,
        proof: auth::proof(secret, auth::AGENT, &host_challenge),
        challenge: challenge.clone(),
        agent: super::agent_name(),
    };
    send0(writer, welcome).await?;
    if version != proto::VERSION {
        // The host learns our version from `Welcome` and falls back; nothing more to say.
        return Err(());
    }
    match next_request(reader).await? {
        Request::Prove { proof } if auth::verify(secret, auth::HOST, &challenge, &proof) => {
            send0(writer, Reply::Ready).await
        }
        Request::Prove { .. } => {
            let message = "the host could not prove the sandbox's secret";
            refuse(writer, FailureKind::Unauthorized, message).await
        }
        _ => refuse(writer, FailureKind::Protocol, "expected `Prove`").await,
    }
}

async fn next_request<R: AsyncRead + Unpin>(reader: &mut Reader<R>) -> Result<Request, ()> {
    let bytes = reader.next().await.ok_or(())?.map_err(|_| ())?;
    match proto::decode::<Request>(&bytes) {
        Ok(frame) if frame.call == 0 => Ok(frame.body),
        _ => Err(()),
    }
}

async fn send0<W: AsyncWrite + Unpin>(writer: &mut Writer<W>, body: Reply) -> Result<(), ()> {
    writer
        .send(proto::encode(&Frame { call: 0, body }))
        .await
        .map_err(|_| ())
}

async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut Writer<W>,
    kind: FailureKind,
    message: &str,
) -> Result<(), ()> {
    let _ = send0(writer, Reply::Error(Failure::new(kind, message))).await;
    Err(())
}

/// Writes queued replies until the reader is done, then what is still queued, then closes.
async fn write_replies<W: AsyncWrite + Unpin>(
    mut writer: Writer<W>,
    mut queue: mpsc::Receiver<Frame<Reply>>,
    conn: Arc<Conn>,
) {
    let closing = conn.closing.notified();
    tokio::pin!(closing);
    loop {
        tokio::select! {
            frame = queue.recv() => match frame {
                Some(frame) => {
                    if writer.send(proto::encode(&frame)).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            _ = &mut closing => break,
        }
    }
    while let Ok(frame) = queue.try_recv() {
        if writer.feed(proto::encode(&frame)).await.is_err() {
            return;
        }
    }
    let _ = SinkExt::<bytes::Bytes>::close(&mut writer).await;
}

fn protocol(message: impl Into<String>) -> Failure {
    Failure::new(FailureKind::Protocol, message)
}

/// Reads the host's frames until the stream ends; a broken rule is the `Failure` to report.
async fn read_requests<R: AsyncRead + Unpin>(
    agent: &Arc<Agent>,
    conn: &Arc<Conn>,
    reader: &mut Reader<R>,
) -> Result<(), Failure> {
    while let Some(bytes) = reader.next().await {
        let bytes: BytesMut = match bytes {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(protocol(format!("frame refused: {e}")))
            }
            // The stream itself failed: nobody is there to tell.
            Err(_) => return Ok(()),
        };
        let frame = proto::decode::<Request>(&bytes).map_err(|e| protocol(e.to_string()))?;
        dispatch(agent, conn, frame).await?;
    }
    Ok(())
}

/// Routes one frame: a request starts a call, the rest go to the call they name.
async fn dispatch(
    agent: &Arc<Agent>,
    conn: &Arc<Conn>,
    frame: Frame<Request>,
) -> Result<(), Failure> {
    let id = frame.call;
    match frame.body {
        Request::Hello { .. } | Request::Prove { .. } => {
            Err(protocol("handshake message after the handshake"))
        }
        Request::Data(data) => {
            let calls = conn.lock_calls();
            match calls.get(&id) {
                Some(route) if !route.inbox.push(data) => {
                    Err(protocol(format!("call {id} sent more than its window")))
                }
                _ => Ok(()),
            }
        }
        Request::End => {
            if let Some(route) = conn.lock_calls().get(&id) {
                route.inbox.end();
            }
            Ok(())
        }
        Request::Credit(n) => {
            if let Some(route) = conn.lock_calls().get(&id) {
                route.window.give(n);
            }
            Ok(())
        }
        Request::Signal(sig) => {
            control(conn, id, Control::Signal(sig));
            Ok(())
        }
        Request::Cancel => {
            control(conn, id, Control::Cancel);
            Ok(())
        }
        request => start(agent, conn, id, request).await,
    }
}

fn control(conn: &Conn, id: CallId, control: Control) {
    if let Some(route) = conn.lock_calls().get(&id) {
        let _ = route.control.send(control);
    }
}

/// Starts a call on a new id.
async fn start(
    agent: &Arc<Agent>,
    conn: &Arc<Conn>,
    id: CallId,
    request: Request,
) -> Result<(), Failure> {
    if id == 0 {
        return Err(protocol("a request on call 0"));
    }
    let (controls, control) = mpsc::unbounded_channel();
    let window = Arc::new(Window::new());
    let inbox = Arc::new(Inbox::new());
    let too_many = {
        let mut calls = conn.lock_calls();
        if calls.contains_key(&id) {
            return Err(protocol(format!("call {id} is already running")));
        }
        let too_many = calls.len() >= MAX_CALLS;
        if !too_many {
            let route = Route {
                window: window.clone(),
                inbox: inbox.clone(),
                control: controls,
            };
            calls.insert(id, route);
        }
        too_many
    };
    if too_many {
        let busy = Failure::new(
            FailureKind::InvalidInput,
            format!("too many calls at once (at most {MAX_CALLS} per connection)"),
        );
        conn.send(Frame {
            call: id,
            body: Reply::Error(busy),
        })
        .await;
        return Ok(());
    }
    let replies = Replies::new(id, conn.clone(), window, inbox);
    let work = super::run_call(agent.clone(), request, replies.clone(), control);
    spawn_guarded(agent.clone(), replies, work);
    Ok(())
}

/// Runs a call's task; should it panic, the call still ends, with an `Io` error.
fn spawn_guarded(
    agent: Arc<Agent>,
    replies: Replies,
    work: impl Future<Output = ()> + Send + 'static,
) {
    let running = agent.running.clone();
    running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::spawn(async move {
        let outcome = tokio::spawn(work).await;
        running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        if let Err(e) = outcome {
            eprintln!("enclave-agent: a call failed: {e}");
            let failure = Failure::new(FailureKind::Io, "the agent failed running this call");
            replies.finish(Reply::Error(failure)).await;
        }
    });
}

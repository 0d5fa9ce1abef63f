//! `GET /v1/sandboxes/{id}/session`: an interactive session (`enclave shell --server`) over a
//! WebSocket. Each text message is one `SessionRequest` or `SessionEvent` as JSON
//! (`session/mod.rs`); the server sends `ready` first, then answers requests one at a time, and
//! takes `interrupt` while an input runs. Closing the socket ends the session and kills what it
//! ran.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::error::ApiError;
use super::input::Query;
use super::{AppState, Params, Who};
use crate::server::service::{Caller, Service};
use crate::session::{
    Interrupter, Session, SessionEvent, SessionKind, SessionOptions, SessionRequest,
};

type Outgoing = SplitSink<WebSocket, Message>;
type Incoming = SplitStream<WebSocket>;

/// WebSocket close code for a message that is not a `SessionRequest` (RFC 6455 "unsupported
/// data" is for binary; this is "policy violation", the generic refusal).
const CLOSE_INVALID: u16 = 1008;
/// Close code when the session failed on the server's side.
const CLOSE_FAILED: u16 = 1011;

pub(super) async fn session(
    State(state): State<AppState>,
    Who(caller): Who,
    Params(id): Params<String>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    refuse_foreign_origin(&state, &headers)?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::plain(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("this route is a WebSocket: {e}"),
        )
    })?;
    let options = options_of(&Query::of(&uri)?)?;
    let service = state.service.clone();
    let id = state
        .service
        .resolve(&caller, &id)
        .map_err(|e| ApiError::of(&e))?
        .id;
    // Opened before the upgrade, so a refusal (no such sandbox, no Python) is a JSON error.
    let opened = {
        let (service, caller, id) = (service.clone(), caller.clone(), id.clone());
        super::until_client_leaves(&state.service, move |cancel| async move {
            tokio::select! {
                opened = service.open_session(&caller, &id, options) => Some(opened),
                () = cancel.cancelled() => None,
            }
        })
        .await?
    };
    let session = match opened {
        Some(opened) => opened.map_err(|e| ApiError::of(&e))?,
        None => return Err(ApiError::shutting_down()),
    };
    Ok(upgrade.on_upgrade(move |socket| async move {
        let work = serve(service.clone(), caller, id, session, socket);
        if let Some(task) = service.spawn_work(work) {
            let _ = task.await;
        }
    }))
}

/// Browsers open WebSockets to any origin without asking (no CORS preflight), so a page the
/// user visits could otherwise drive a local server: a browser's `Origin` must be one the
/// operator listed. Other clients send none.
fn refuse_foreign_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(header::ORIGIN) {
        Some(origin) if !state.settings.cors_origins.contains(origin) => Err(ApiError::plain(
            StatusCode::FORBIDDEN,
            "cors",
            format!(
                "a session cannot be opened from the web origin {origin:?}: list it with --cors-origin"
            ),
        )),
        _ => Ok(()),
    }
}

fn options_of(query: &Query) -> Result<SessionOptions, ApiError> {
    let kind = match query.get("kind") {
        None | Some("") => None,
        Some("python") => Some(SessionKind::Python),
        Some("notebook") => Some(SessionKind::Notebook),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown session kind `{other}`: use `python` or `notebook`"
            )))
        }
    };
    Ok(SessionOptions {
        kind,
        interpreter: query.get("interpreter").map(str::to_string),
    })
}

/// Serves one session until the client closes the socket, the sandbox goes or the server stops.
async fn serve(
    service: Arc<Service>,
    caller: Arc<Caller>,
    id: String,
    mut session: Box<dyn Session>,
    socket: WebSocket,
) {
    let (mut outgoing, mut incoming) = socket.split();
    let stop = service.work_token();
    let ready = SessionEvent::Ready {
        info: session.info().clone(),
    };
    let mut open = send(&mut outgoing, &ready).await;
    while open {
        let message = tokio::select! {
            message = incoming.next() => message,
            () = stop.cancelled() => None,
        };
        let request = match read_request(message) {
            Read::Request(request) => request,
            Read::Skip => continue,
            Read::Closed => break,
            Read::Invalid(why) => {
                close(&mut outgoing, CLOSE_INVALID, &why).await;
                break;
            }
        };
        let turn = match service.in_use(&caller, &id) {
            Ok(turn) => turn,
            Err(e) => {
                close(&mut outgoing, CLOSE_FAILED, &format!("{e:#}")).await;
                break;
            }
        };
        let served = answer(session.as_mut(), request, &mut outgoing, &mut incoming).await;
        drop(turn);
        open = match served {
            Ok(open) => open,
            Err(e) => {
                let notice = SessionEvent::Notice {
                    text: format!("the session failed: {e:#}"),
                };
                send(&mut outgoing, &notice).await;
                close(&mut outgoing, CLOSE_FAILED, "the session failed").await;
                false
            }
        };
    }
    let _ = session.close().await;
}

enum Read {
    Request(SessionRequest),
    /// A ping, pong or empty frame.
    Skip,
    Closed,
    Invalid(String),
}

fn read_request(message: Option<Result<Message, axum::Error>>) -> Read {
    match message {
        Some(Ok(Message::Text(text))) => match serde_json::from_str(text.as_str()) {
            Ok(request) => Read::Request(request),
            Err(e) => Read::Invalid(format!("not a session request: {e}")),
        },
        Some(Ok(Message::Binary(_))) => {
            Read::Invalid("session requests are JSON text messages".into())
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Read::Skip,
        Some(Ok(Message::Close(_)) | Err(_)) | None => Read::Closed,
    }
}

/// Answers one request; whether the client is still there.
async fn answer(
    session: &mut dyn Session,
    request: SessionRequest,
    outgoing: &mut Outgoing,
    incoming: &mut Incoming,
) -> anyhow::Result<bool> {
    let reply = match request {
        SessionRequest::Execute { code, timeout_ms } => {
            let timeout = timeout_ms.map(Duration::from_millis);
            return execute(session, &code, timeout, outgoing, incoming).await;
        }
        SessionRequest::IsComplete { code } => {
            let (status, indent) = session.is_complete(&code).await?;
            SessionEvent::IsComplete { status, indent }
        }
        SessionRequest::Complete { code, cursor } => {
            let (matches, cursor_start, cursor_end) = session.complete(&code, cursor).await?;
            SessionEvent::Completions {
                matches,
                cursor_start,
                cursor_end,
            }
        }
        // Nothing runs between inputs.
        SessionRequest::Interrupt => return Ok(true),
        SessionRequest::Reset => {
            session.reset().await?;
            SessionEvent::Ready {
                info: session.info().clone(),
            }
        }
    };
    Ok(send(outgoing, &reply).await)
}

/// Runs one input, forwarding its events as they come and the client's `interrupt`s into it.
/// A client that leaves mid-input has the input interrupted; the session then ends.
async fn execute(
    session: &mut dyn Session,
    code: &str,
    timeout: Option<Duration>,
    outgoing: &mut Outgoing,
    incoming: &mut Incoming,
) -> anyhow::Result<bool> {
    let interrupter = Interrupter::default();
    let (events, mut queued) = mpsc::unbounded_channel();
    let mut forward = move |event: SessionEvent| {
        let _ = events.send(event);
    };
    let run = session.execute(code, timeout, &interrupter, &mut forward);
    tokio::pin!(run);
    let mut client_here = true;
    let done = loop {
        tokio::select! {
            done = &mut run => break done,
            Some(event) = queued.recv(), if client_here => {
                client_here = send(outgoing, &event).await;
                if !client_here {
                    interrupter.fire();
                }
            }
            message = incoming.next(), if client_here => match read_request(message) {
                Read::Request(SessionRequest::Interrupt) => interrupter.fire(),
                Read::Request(_) => {
                    let busy = SessionEvent::Notice {
                        text: "an input is running: only `interrupt` is taken until it is done".into(),
                    };
                    client_here = send(outgoing, &busy).await;
                }
                Read::Skip => {}
                Read::Closed | Read::Invalid(_) => {
                    client_here = false;
                    interrupter.fire();
                }
            },
        }
    };
    done?;
    while let Ok(event) = queued.try_recv() {
        if !client_here {
            break;
        }
        client_here = send(outgoing, &event).await;
    }
    Ok(client_here)
}

/// Sends one event; false when the client is gone.
async fn send(outgoing: &mut Outgoing, event: &SessionEvent) -> bool {
    let text = serde_json::to_string(event).expect("session events serialise");
    outgoing.send(Message::Text(text.into())).await.is_ok()
}

async fn close(outgoing: &mut Outgoing, code: u16, reason: &str) {
    // A close reason is at most 123 bytes.
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code,
        reason: reason[..end].into(),
    };
    let _ = outgoing.send(Message::Close(Some(frame))).await;
}

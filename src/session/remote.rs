//! A session held by an `enclave server`, over its WebSocket session endpoint
//! (`GET /v1/sandboxes/{id}/session`, `server/http/session.rs`): each text message is one
//! `SessionRequest` or `SessionEvent` as JSON.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{
    Completeness, DoneStatus, Interrupter, Session, SessionEvent, SessionInfo, SessionRequest,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where the endpoint is and how to authenticate.
pub(crate) struct Endpoint {
    /// `ws://` or `wss://` URL of the session route, query included.
    pub(crate) url: String,
    /// `(header, value)` to authenticate with, if any.
    pub(crate) auth: Option<(&'static str, String)>,
}

pub(crate) struct RemoteSession {
    info: SessionInfo,
    socket: Socket,
}

/// Opens the session; a refusal before the upgrade (a 4xx with a JSON body) is turned into an
/// error by `refused(status, body)`.
pub(crate) async fn open(
    endpoint: Endpoint,
    refused: impl Fn(u16, &[u8]) -> anyhow::Error,
) -> Result<Box<dyn Session>> {
    let mut request = endpoint
        .url
        .as_str()
        .into_client_request()
        .with_context(|| format!("invalid session URL {}", endpoint.url))?;
    if let Some((name, value)) = endpoint.auth {
        let value = HeaderValue::from_str(&value).context("the API key is not a valid header")?;
        request.headers_mut().insert(name, value);
    }
    let (mut socket, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(connected) => connected,
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            return Err(refused(response.status().as_u16(), body));
        }
        Err(e) => return Err(anyhow!(e).context(format!("cannot open {}", endpoint.url))),
    };
    let info = match next_event(&mut socket).await? {
        SessionEvent::Ready { info } => info,
        other => bail!("the server began the session with {other:?} instead of `ready`"),
    };
    Ok(Box::new(RemoteSession { info, socket }))
}

/// The next event; the end of the socket is an error that says why the server closed it.
async fn next_event(socket: &mut Socket) -> Result<SessionEvent> {
    loop {
        let message = socket
            .next()
            .await
            .ok_or_else(|| anyhow!("the server ended the session"))?
            .context("the session's connection failed")?;
        match message {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str())
                    .with_context(|| format!("the server sent an unknown session event: {text}"));
            }
            Message::Close(frame) => {
                let why = frame.map_or_else(String::new, |f| format!(": {}", f.reason));
                bail!("the server ended the session{why}");
            }
            Message::Binary(_) => bail!("the server sent a binary message in a session"),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

impl RemoteSession {
    async fn send(&mut self, request: &SessionRequest) -> Result<()> {
        let text = serde_json::to_string(request).expect("session requests serialise");
        self.socket
            .send(Message::Text(text.into()))
            .await
            .context("the session's connection failed")
    }

    /// Reads events until `pick` takes one; notices met on the way are not lost to the user
    /// (they go to stderr: they say why the session is not as it was).
    async fn answer<T>(&mut self, pick: impl Fn(SessionEvent) -> Option<T>) -> Result<T> {
        loop {
            let event = next_event(&mut self.socket).await?;
            if let SessionEvent::Notice { text } = &event {
                eprintln!("{text}");
                continue;
            }
            if let Some(answer) = pick(event) {
                return Ok(answer);
            }
        }
    }
}

#[async_trait]
impl Session for RemoteSession {
    fn info(&self) -> &SessionInfo {
        &self.info
    }

    async fn execute(
        &mut self,
        code: &str,
        timeout: Option<Duration>,
        interrupter: &Interrupter,
        events: &mut (dyn FnMut(SessionEvent) + Send),
    ) -> Result<DoneStatus> {
        let timeout_ms = timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        self.send(&SessionRequest::Execute {
            code: code.to_string(),
            timeout_ms,
        })
        .await?;
        loop {
            tokio::select! {
                event = next_event(&mut self.socket) => {
                    let event = event?;
                    let done = match &event {
                        SessionEvent::Done { status } => Some(*status),
                        _ => None,
                    };
                    events(event);
                    if let Some(status) = done {
                        return Ok(status);
                    }
                    continue;
                }
                () = interrupter.fired() => {}
            }
            self.send(&SessionRequest::Interrupt).await?;
        }
    }

    async fn is_complete(&mut self, code: &str) -> Result<(Completeness, String)> {
        self.send(&SessionRequest::IsComplete {
            code: code.to_string(),
        })
        .await?;
        self.answer(|event| match event {
            SessionEvent::IsComplete { status, indent } => Some((status, indent)),
            _ => None,
        })
        .await
    }

    async fn complete(&mut self, code: &str, cursor: usize) -> Result<(Vec<String>, usize, usize)> {
        self.send(&SessionRequest::Complete {
            code: code.to_string(),
            cursor,
        })
        .await?;
        self.answer(|event| match event {
            SessionEvent::Completions {
                matches,
                cursor_start,
                cursor_end,
            } => Some((matches, cursor_start, cursor_end)),
            _ => None,
        })
        .await
    }

    async fn reset(&mut self) -> Result<()> {
        self.send(&SessionRequest::Reset).await?;
        self.info = self
            .answer(|event| match event {
                SessionEvent::Ready { info } => Some(info),
                _ => None,
            })
            .await?;
        Ok(())
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        // The server ends the session when the socket closes, whether or not this is answered.
        let _ = self.socket.close(None).await;
        Ok(())
    }
}

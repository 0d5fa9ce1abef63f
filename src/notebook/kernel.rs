//! One sandbox's kernel over the gateway's WebSocket (Jupyter's JSON message protocol): execute
//! with its output as session events, completeness and completion, interrupt, restart; a socket
//! that dropped is opened again and a kernel that died is restarted, each with a notice.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::gateway::Gateway;
use crate::model::random_hex;
use crate::session::{Completeness, DoneStatus, Interrupter, SessionEvent, StreamName};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long an interrupted input may take to wind down before the kernel is restarted.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// How long a short request (completeness, completion, kernel info) may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a restarted kernel may take to answer again.
const RESTART_PATIENCE: Duration = Duration::from_secs(60);

/// What a died kernel's notice says.
pub(crate) const DIED: &str =
    "The kernel died and was restarted: its variables and imports are gone";

/// A sandbox's kernel: found (or started) and connected on first use, kept between calls.
pub(crate) struct Kernel {
    gateway: Gateway,
    id: Option<String>,
    socket: Option<Socket>,
    /// Jupyter's session id: one per connection of ours.
    session: String,
}

/// A Jupyter message as the gateway sends it.
struct Incoming {
    msg_type: String,
    parent: Option<String>,
    content: Map<String, Value>,
    metadata: Map<String, Value>,
}

impl Kernel {
    pub(crate) fn new(gateway: Gateway) -> Self {
        Kernel {
            gateway,
            id: None,
            socket: None,
            session: random_hex(),
        }
    }

    /// A kernel the manager just started, already known by id.
    pub(crate) fn with_id(gateway: Gateway, id: String) -> Self {
        let mut kernel = Kernel::new(gateway);
        kernel.id = Some(id);
        kernel
    }

    /// Finds the kernel and opens its socket when either is missing. Notices say what the user
    /// should know: a kernel that had to be started anew (its state gone).
    async fn ready(&mut self, notices: &mut Vec<String>) -> Result<()> {
        self.discard_stale();
        if self.socket.is_some() {
            return Ok(());
        }
        let known = match &self.id {
            Some(id) => self.gateway.kernel(id).await?,
            None => None,
        };
        let id = match (&self.id, known) {
            (Some(id), Some(k)) if k.execution_state.as_deref() != Some("dead") => id.clone(),
            (Some(id), Some(_)) => {
                // Its restarter gave up on it: a restart through the gateway revives it.
                let id = id.clone();
                self.gateway.restart(&id).await?;
                notices.push(DIED.into());
                id
            }
            (known, _) => {
                let (id, started) = self.gateway.find_or_start().await?;
                if started && known.is_some() {
                    notices.push(
                        "The sandbox's kernel was gone; a new one was started: earlier variables \
                         and imports are gone"
                            .into(),
                    );
                }
                self.id = Some(id.clone());
                id
            }
        };
        self.socket = Some(self.connect(&id).await?);
        Ok(())
    }

    /// Reads what arrived since the last call without waiting: leftovers of earlier inputs, the
    /// gateway's pings, or its close of a socket left idle (then reopened before it is used).
    fn discard_stale(&mut self) {
        while let Some(socket) = self.socket.as_mut() {
            match socket.next().now_or_never() {
                None => return,
                Some(Some(Ok(Message::Close(_)) | Err(_)) | None) => self.socket = None,
                Some(Some(Ok(_))) => {}
            }
        }
    }

    async fn connect(&self, id: &str) -> Result<Socket> {
        let mut request = self
            .gateway
            .channels_url(id)
            .into_client_request()
            .context("the kernel's channel URL")?;
        request.headers_mut().insert(
            "Authorization",
            format!("token {}", self.gateway.token())
                .parse()
                .context("the token is not a valid header value")?,
        );
        // Small frames both ways: our requests go out at once (no Nagle delay).
        let (socket, _) = tokio::time::timeout(
            REPLY_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(request, None, true),
        )
        .await
        .map_err(|_| anyhow!("no answer within {} s", REPLY_TIMEOUT.as_secs()))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(|| {
            format!(
                "connecting to the kernel's channels at {}",
                self.gateway.address()
            )
        })?;
        Ok(socket)
    }

    fn id(&self) -> Result<&str> {
        self.id.as_deref().ok_or_else(|| anyhow!("no kernel yet"))
    }

    /// Sends one request on the shell channel; its `msg_id`.
    async fn send(&mut self, msg_type: &str, content: Value) -> Result<String> {
        let msg_id = random_hex();
        let message = json!({
            "header": {
                "msg_id": msg_id,
                "username": "enclave",
                "session": self.session,
                "msg_type": msg_type,
                "version": "5.3",
                "date": chrono::Utc::now().to_rfc3339(),
            },
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        });
        let socket = self
            .socket
            .as_mut()
            .ok_or_else(|| anyhow!("not connected"))?;
        if let Err(e) = socket.send(Message::text(message.to_string())).await {
            self.socket = None;
            return Err(anyhow!(e).context("sending to the kernel"));
        }
        Ok(msg_id)
    }

    /// `send`, once more on a new socket when the kept one turns out closed.
    async fn send_ready(&mut self, msg_type: &str, content: Value) -> Result<String> {
        match self.send(msg_type, content.clone()).await {
            Ok(id) => Ok(id),
            Err(_) => {
                let mut notices = Vec::new();
                self.ready(&mut notices).await?;
                self.send(msg_type, content).await
            }
        }
    }

    /// The next message, `None` when the socket closed (it is then dropped, to be reopened).
    async fn receive(&mut self) -> Option<Incoming> {
        loop {
            let socket = self.socket.as_mut()?;
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    if let Some(message) = parse(&text) {
                        return Some(message);
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    self.socket = None;
                    return None;
                }
                // Pings are answered by tungstenite; binary frames carry buffers we do not use.
                Some(Ok(_)) => {}
            }
        }
    }

    /// Runs `code`, sending its output to `events` as it comes; ends at the kernel's `idle`, an
    /// interrupt, the timeout, a cancel, or the kernel's death (restarted, with a notice).
    pub(crate) async fn execute(
        &mut self,
        code: &str,
        timeout: Option<Duration>,
        interrupt: &Interrupter,
        cancel: &CancellationToken,
        events: &mut (dyn FnMut(SessionEvent) + Send),
    ) -> Result<DoneStatus> {
        let mut notices = Vec::new();
        let ready = self.ready(&mut notices).await;
        for text in notices {
            events(SessionEvent::Notice { text });
        }
        ready?;
        let msg_id = self
            .send_ready(
                "execute_request",
                json!({"code": code, "silent": false, "store_history": true,
                       "user_expressions": {}, "allow_stdin": false, "stop_on_error": true}),
            )
            .await?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut failed = false;
        let stop = loop {
            let expired = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let message = tokio::select! {
                m = self.receive() => m,
                () = expired => break DoneStatus::Timeout,
                () = interrupt.fired() => break DoneStatus::Interrupted,
                () = cancel.cancelled() => break DoneStatus::Interrupted,
            };
            let Some(message) = message else {
                return self.lost(events).await;
            };
            if died(&message) {
                return self.revive(events).await;
            }
            if message.parent.as_deref() != Some(msg_id.as_str()) {
                continue;
            }
            if message.msg_type == "status" && state_of(&message) == Some("idle") {
                let status = if failed {
                    DoneStatus::Error
                } else {
                    DoneStatus::Ok
                };
                events(SessionEvent::Done { status });
                return Ok(status);
            }
            if let Some(event) = to_event(message) {
                failed |= matches!(event, SessionEvent::Error { .. });
                events(event);
            }
        };
        self.stop(&msg_id, stop, events).await
    }

    /// Interrupts the running input and lets it wind down (its output still goes to `events`);
    /// a kernel that does not go idle in time is restarted.
    async fn stop(
        &mut self,
        msg_id: &str,
        status: DoneStatus,
        events: &mut (dyn FnMut(SessionEvent) + Send),
    ) -> Result<DoneStatus> {
        self.gateway.interrupt(self.id()?).await?;
        let drained = tokio::time::timeout(INTERRUPT_GRACE, async {
            while let Some(message) = self.receive().await {
                if died(&message) {
                    return false;
                }
                if message.parent.as_deref() != Some(msg_id) {
                    continue;
                }
                if message.msg_type == "status" && state_of(&message) == Some("idle") {
                    return true;
                }
                if let Some(event) = to_event(message) {
                    events(event);
                }
            }
            false
        })
        .await;
        if drained == Ok(true) {
            events(SessionEvent::Done { status });
            return Ok(status);
        }
        events(SessionEvent::Notice {
            text: "The kernel did not stop when interrupted; it was restarted: its variables \
                   and imports are gone"
                .into(),
        });
        self.restart().await?;
        events(SessionEvent::Done {
            status: DoneStatus::Restarted,
        });
        Ok(DoneStatus::Restarted)
    }

    /// The kernel died under the input: it is restarted (the gateway may already have).
    async fn revive(
        &mut self,
        events: &mut (dyn FnMut(SessionEvent) + Send),
    ) -> Result<DoneStatus> {
        events(SessionEvent::Notice { text: DIED.into() });
        self.settle().await?;
        events(SessionEvent::Done {
            status: DoneStatus::Restarted,
        });
        Ok(DoneStatus::Restarted)
    }

    /// The socket dropped under the input: it is opened again, and the kernel restarted if it
    /// is gone or dead. The input's output is lost either way.
    async fn lost(&mut self, events: &mut (dyn FnMut(SessionEvent) + Send)) -> Result<DoneStatus> {
        let alive = match &self.id {
            Some(id) => self
                .gateway
                .kernel(id)
                .await?
                .is_some_and(|k| k.execution_state.as_deref() != Some("dead")),
            None => false,
        };
        if alive {
            events(SessionEvent::Notice {
                text: "The connection to the kernel dropped while the code ran; it was \
                       reconnected (the kernel and its variables are kept, the code's \
                       remaining output is lost)"
                    .into(),
            });
            let mut notices = Vec::new();
            self.ready(&mut notices).await?;
            events(SessionEvent::Done {
                status: DoneStatus::Error,
            });
            return Ok(DoneStatus::Error);
        }
        self.revive(events).await
    }

    /// After a death: makes sure a kernel answers again, restarting it through the gateway if
    /// its own restarter did not, or starting a new one if it is gone.
    async fn settle(&mut self) -> Result<()> {
        self.socket = None;
        if self.kernel_info(RESTART_PATIENCE / 4).await.is_ok() {
            return Ok(());
        }
        self.restart().await
    }

    /// A restart in place (or a new kernel if this one is gone); waits until it answers.
    pub(crate) async fn restart(&mut self) -> Result<()> {
        let restarted = match &self.id {
            Some(id) => self.gateway.restart(id).await,
            None => Err(anyhow!("no kernel yet")),
        };
        // The gateway does not always carry a socket over to the restarted kernel's channels (a
        // socket that then never hears from it was seen): every restart gets a new one.
        self.socket = None;
        if restarted.is_err() {
            self.id = Some(self.gateway.start_kernel().await?);
        }
        self.kernel_info(RESTART_PATIENCE)
            .await
            .context("the restarted kernel does not answer")?;
        Ok(())
    }

    /// Asks the kernel for its info, which also proves it answers: `language version`.
    pub(crate) async fn kernel_info(&mut self, patience: Duration) -> Result<String> {
        let started = Instant::now();
        loop {
            let asked = tokio::time::timeout(REPLY_TIMEOUT.min(patience), async {
                let reply = self.request("kernel_info_request", json!({})).await?;
                let info = reply.get("language_info").cloned().unwrap_or_default();
                let name = info.get("name").and_then(Value::as_str).unwrap_or("python");
                let version = info.get("version").and_then(Value::as_str).unwrap_or("");
                Ok::<_, anyhow::Error>(format!("{name} {version}").trim().to_string())
            })
            .await;
            match asked {
                Ok(Ok(language)) => return Ok(language),
                Ok(Err(e)) if started.elapsed() >= patience => return Err(e),
                Err(_) if started.elapsed() >= patience => {
                    bail!("the kernel did not answer within {} s", patience.as_secs())
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// One request and its reply's content (`<type>_reply` on the shell channel).
    async fn request(&mut self, msg_type: &str, content: Value) -> Result<Map<String, Value>> {
        let mut notices = Vec::new();
        self.ready(&mut notices).await?;
        let msg_id = self.send_ready(msg_type, content).await?;
        let reply_type = msg_type.replace("_request", "_reply");
        let reply = tokio::time::timeout(REPLY_TIMEOUT, async {
            while let Some(message) = self.receive().await {
                if message.parent.as_deref() == Some(msg_id.as_str())
                    && message.msg_type == reply_type
                {
                    return Some(message.content);
                }
            }
            None
        })
        .await;
        match reply {
            Ok(Some(content)) => Ok(content),
            Ok(None) => bail!("the connection to the kernel dropped"),
            Err(_) => bail!(
                "the kernel did not answer `{msg_type}` within {} s",
                REPLY_TIMEOUT.as_secs()
            ),
        }
    }

    /// Python's rules, as the kernel applies them.
    pub(crate) async fn is_complete(&mut self, code: &str) -> Result<(Completeness, String)> {
        let reply = self
            .request("is_complete_request", json!({"code": code}))
            .await?;
        let status = match reply.get("status").and_then(Value::as_str) {
            Some("complete") => Completeness::Complete,
            Some("incomplete") => Completeness::Incomplete,
            Some("invalid") => Completeness::Invalid,
            _ => Completeness::Unknown,
        };
        let indent = reply
            .get("indent")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok((status, indent))
    }

    /// Completions at byte offset `cursor`; Jupyter counts in characters, we in bytes.
    pub(crate) async fn complete(
        &mut self,
        code: &str,
        cursor: usize,
    ) -> Result<(Vec<String>, usize, usize)> {
        let cursor = floor_char_boundary(code, cursor);
        let cursor_pos = code[..cursor].chars().count();
        let reply = self
            .request(
                "complete_request",
                json!({"code": code, "cursor_pos": cursor_pos}),
            )
            .await?;
        let matches = reply
            .get("matches")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let at = |key: &str, default: usize| {
            reply
                .get(key)
                .and_then(Value::as_u64)
                .map_or(default, |chars| byte_offset(code, chars as usize))
        };
        Ok((
            matches,
            at("cursor_start", cursor),
            at("cursor_end", cursor),
        ))
    }
}

fn parse(text: &str) -> Option<Incoming> {
    let Value::Object(mut message) = serde_json::from_str::<Value>(text).ok()? else {
        return None;
    };
    let header = message.get("header").cloned().unwrap_or_default();
    let msg_type = message
        .get("msg_type")
        .or_else(|| header.get("msg_type"))
        .and_then(Value::as_str)?
        .to_string();
    let parent = message
        .get("parent_header")
        .and_then(|p| p.get("msg_id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let object = |v: Option<Value>| match v {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    Some(Incoming {
        msg_type,
        parent,
        content: object(message.remove("content")),
        metadata: object(message.remove("metadata")),
    })
}

fn state_of(message: &Incoming) -> Option<&str> {
    message
        .content
        .get("execution_state")
        .and_then(Value::as_str)
}

/// The gateway's word that the kernel died (whatever input was running).
fn died(message: &Incoming) -> bool {
    message.msg_type == "status"
        && matches!(
            state_of(message),
            Some("restarting" | "autorestarting" | "dead")
        )
}

/// An iopub message as a session event; `None` for those a session does not show.
fn to_event(message: Incoming) -> Option<SessionEvent> {
    let text = |key: &str| {
        message
            .content
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let object = |key: &str| match message.content.get(key) {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    match message.msg_type.as_str() {
        "stream" => Some(SessionEvent::Stream {
            name: if text("name") == "stderr" {
                StreamName::Stderr
            } else {
                StreamName::Stdout
            },
            text: text("text"),
        }),
        kind @ ("execute_result" | "display_data") => Some(SessionEvent::Display {
            data: object("data"),
            metadata: match message.content.get("metadata") {
                Some(Value::Object(m)) => m.clone(),
                _ => message.metadata.clone(),
            },
            result: kind == "execute_result",
        }),
        "error" => Some(SessionEvent::Error {
            ename: text("ename"),
            evalue: text("evalue"),
            traceback: message
                .content
                .get("traceback")
                .and_then(Value::as_array)
                .map(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        }),
        _ => None,
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The byte offset of character `chars` in `s` (its end when past it).
fn byte_offset(s: &str, chars: usize) -> usize {
    s.char_indices().nth(chars).map_or(s.len(), |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming(text: &str) -> Incoming {
        parse(text).expect("a message")
    }

    #[test]
    fn iopub_messages_become_session_events() {
        let m = incoming(
            r#"{"header":{"msg_type":"stream"},"parent_header":{"msg_id":"a"},"msg_type":"stream","content":{"name":"stderr","text":"x\n"},"metadata":{}}"#,
        );
        assert_eq!(m.parent.as_deref(), Some("a"));
        assert_eq!(
            to_event(m),
            Some(SessionEvent::Stream {
                name: StreamName::Stderr,
                text: "x\n".into()
            })
        );
        let m = incoming(
            r#"{"header":{"msg_type":"execute_result"},"parent_header":{},"content":{"data":{"text/plain":"3"},"metadata":{},"execution_count":1}}"#,
        );
        let Some(SessionEvent::Display { data, result, .. }) = to_event(m) else {
            panic!("a display");
        };
        assert!(result);
        assert_eq!(data["text/plain"], "3");
    }

    #[test]
    fn a_restarting_status_means_the_kernel_died() {
        let m = incoming(
            r#"{"header":{"msg_type":"status"},"parent_header":{},"content":{"execution_state":"restarting"}}"#,
        );
        assert!(died(&m));
        let m = incoming(
            r#"{"header":{"msg_type":"status"},"parent_header":{},"content":{"execution_state":"busy"}}"#,
        );
        assert!(!died(&m));
    }

    #[test]
    fn cursors_convert_between_bytes_and_characters() {
        let code = "é = 1; é.";
        assert_eq!(byte_offset(code, 1), 2);
        assert_eq!(byte_offset(code, 100), code.len());
        assert_eq!(floor_char_boundary(code, 1), 0);
    }
}

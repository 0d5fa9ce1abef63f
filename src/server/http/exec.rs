//! `POST /v1/sandboxes/{id}/exec`: a command's output streamed as it comes, one `ExecEvent` a
//! line (NDJSON, or SSE with `Accept: text/event-stream`), then how it ended. The request body
//! is the `ExecRequest` JSON, followed (when `stdin` is set) by the command's stdin. A client
//! that goes away gets the command's process tree killed.

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream as FuturesStream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;
use tokio_util::sync::DropGuard;

use super::error::ApiError;
use super::input::unreadable;
use super::{AppState, Params, Who};
use crate::error::Report;
use crate::model::{
    parse_env_entry, ExecEvent, ExecOutcome, ExecRequest, ExecSpec, OutputSink, Stream,
    WireOutcome, MAX_TIMEOUT_SECS,
};

/// Chunks in flight between the command and the client; beyond them the command waits.
const CHANNEL_DEPTH: usize = 16;

/// What the command's task tells the response.
enum Frame {
    Output(Stream, Bytes),
    End(ExecOutcome),
    Failed(anyhow::Error),
}

/// The command's output, sent to the response; a response that went away is a closed pipe.
struct ChannelSink(mpsc::Sender<Frame>);

#[async_trait]
impl OutputSink for ChannelSink {
    async fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        self.0
            .send(Frame::Output(stream, Bytes::copy_from_slice(data)))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

pub(super) async fn exec(
    State(state): State<AppState>,
    Who(caller): Who,
    Params(id): Params<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let sse = wants_sse(&headers);
    let (request, rest) = read_request(body, state.settings.max_body).await?;
    let wants_stdin = request.stdin;
    let mut spec = spec_of(request)?;
    if wants_stdin {
        spec.stdin = Some(Box::new(StreamReader::new(rest)));
    }
    // What the registry can tell (no such sandbox, not running) is an ordinary JSON error;
    // once the command is handed to the engine, whatever happens is an event of the stream.
    state
        .service
        .check_callable(&caller, &id)
        .map_err(|e| ApiError::of(&e))?;
    let cancel = state.service.work_token();
    spec.cancel = cancel.clone();
    let guard = cancel.drop_guard();

    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let service = state.service.clone();
    let run = async move {
        let mut sink = ChannelSink(tx.clone());
        let frame = match service.exec(&caller, &id, spec, &mut sink).await {
            Ok(outcome) => Frame::End(outcome),
            Err(e) => Frame::Failed(e),
        };
        let _ = tx.send(frame).await;
    };
    if state.service.spawn_work(run).is_none() {
        return Err(ApiError::shutting_down());
    }
    Ok(streaming_response(rx, guard, sse))
}

/// Whether the client asked for Server-Sent Events.
fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// The `ExecRequest` at the head of the body (at most `limit` bytes of it), and the rest of
/// the body: the command's stdin.
async fn read_request(
    body: Body,
    limit: usize,
) -> Result<
    (
        ExecRequest,
        impl FuturesStream<Item = io::Result<Bytes>> + Send + Unpin,
    ),
    ApiError,
> {
    let mut chunks = body.into_data_stream();
    let mut head: Vec<u8> = Vec::new();
    loop {
        if let Some((request, used)) = parse_head(&head)? {
            let mut rest = Bytes::from(head).slice(used..);
            if rest.first() == Some(&b'\r') {
                rest = rest.slice(1..);
            }
            if rest.first() == Some(&b'\n') {
                rest = rest.slice(1..);
            }
            let leftover = stream::iter((!rest.is_empty()).then_some(Ok(rest)));
            let body = chunks.map(|c| c.map_err(io::Error::other));
            return Ok((request, leftover.chain(body).boxed()));
        }
        if head.len() > limit {
            return Err(ApiError::too_large("the exec request", limit, "--max-body"));
        }
        match chunks.next().await {
            Some(chunk) => head.extend_from_slice(&chunk.map_err(|e| unreadable(&e))?),
            None => {
                return Err(ApiError::bad_request(if head.is_empty() {
                    "the body is empty: send an exec request, {\"argv\": [...]}"
                } else {
                    "the exec request is not complete JSON"
                }))
            }
        }
    }
}

/// The request, if the bytes so far hold all of its JSON, and how many bytes it took.
fn parse_head(bytes: &[u8]) -> Result<Option<(ExecRequest, usize)>, ApiError> {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<ExecRequest>();
    match values.next() {
        None => Ok(None),
        Some(Ok(request)) => Ok(Some((request, values.byte_offset()))),
        Some(Err(e)) if e.is_eof() => Ok(None),
        Some(Err(e)) => Err(ApiError::bad_request(format!("invalid exec request: {e}"))),
    }
}

/// The command to run, checked as the CLI checks it.
fn spec_of(request: ExecRequest) -> Result<ExecSpec, ApiError> {
    if request.argv.is_empty() {
        return Err(ApiError::bad_request(
            "`argv` is empty: give the command to run",
        ));
    }
    if let Some(Err(why)) = request
        .env
        .iter()
        .map(|e| parse_env_entry(e))
        .find(Result::is_err)
    {
        return Err(ApiError::bad_request(why));
    }
    if request
        .workdir
        .as_deref()
        .is_some_and(|w| !w.starts_with('/'))
    {
        return Err(ApiError::bad_request(
            "`workdir` must be an absolute path in the sandbox",
        ));
    }
    let timeout = match request.timeout {
        None => None,
        Some(t) if t > 0.0 && t <= MAX_TIMEOUT_SECS => Some(Duration::from_secs_f64(t)),
        Some(t) => {
            return Err(ApiError::bad_request(format!(
                "`timeout` must be a positive number of seconds, at most a year; got {t}"
            )))
        }
    };
    let mut spec = ExecSpec::new(request.argv);
    spec.env = request.env;
    spec.workdir = request.workdir;
    spec.timeout = timeout;
    Ok(spec)
}

/// The 200 response: every frame, as events. Dropping the body (the client went away) drops
/// `guard`, which cancels the command.
fn streaming_response(rx: mpsc::Receiver<Frame>, guard: DropGuard, sse: bool) -> Response {
    let frames = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let mut ended = false;
    let events = frames
        .take_while(move |frame| {
            // Nothing follows the last event.
            let more = !ended;
            ended = matches!(frame, Frame::End(_) | Frame::Failed(_));
            std::future::ready(more)
        })
        .map(move |frame| {
            let _ = &guard;
            Ok::<_, Infallible>(encode(&event_of(frame), sse))
        });
    let mut response = Body::from_stream(events).into_response();
    let h = response.headers_mut();
    if sse {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    } else {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
    }
    response
}

fn event_of(frame: Frame) -> ExecEvent {
    match frame {
        Frame::Output(stream, data) => ExecEvent::output(stream, &data),
        Frame::End(outcome) => ExecEvent::End {
            outcome: WireOutcome::from(&outcome),
        },
        Frame::Failed(e) => ExecEvent::Error {
            error: Report::of(&e),
        },
    }
}

/// One event as an NDJSON line or an SSE `data:` event.
fn encode(event: &ExecEvent, sse: bool) -> Bytes {
    let json = serde_json::to_vec(event).unwrap_or_default();
    let mut line = Vec::with_capacity(json.len() + 8);
    if sse {
        line.extend_from_slice(b"data: ");
        line.extend_from_slice(&json);
        line.extend_from_slice(b"\n\n");
    } else {
        line.extend_from_slice(&json);
        line.push(b'\n');
    }
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(parts: &[&'static [u8]]) -> Result<(ExecRequest, Vec<u8>), ApiError> {
        let chunks: Vec<Result<Bytes, io::Error>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        let body = Body::from_stream(stream::iter(chunks));
        let (request, mut rest) = read_request(body, 64).await?;
        let mut stdin = Vec::new();
        while let Some(chunk) = rest.next().await {
            stdin.extend_from_slice(&chunk.unwrap());
        }
        Ok((request, stdin))
    }

    #[tokio::test]
    async fn the_request_heads_the_body_and_stdin_follows() {
        let (r, stdin) = read(&[b"{\"argv\":[\"cat\"],", b"\"stdin\":true}\nhel", b"lo"])
            .await
            .unwrap();
        assert_eq!(r.argv, ["cat"]);
        assert!(r.stdin);
        assert_eq!(stdin, b"hello");

        // Pretty-printed JSON without stdin is fine too.
        let (r, stdin) = read(&[b"{\n \"argv\": [\"true\"]\n}"]).await.unwrap();
        assert_eq!(r.argv, ["true"]);
        assert!(stdin.is_empty());
    }

    #[tokio::test]
    async fn bad_heads_are_refused() {
        for (parts, says) in [
            (&[&b""[..]][..], "body is empty"),
            (&[b"{\"argv\":"], "not complete"),
            (&[b"[1]\n"], "invalid exec request"),
            (
                &[b"{\"argv\": [\"", &[b'x'; 80]],
                "larger than this server accepts",
            ),
        ] {
            let err = read(parts).await.unwrap_err();
            assert!(err.report.message.contains(says), "{}", err.report.message);
        }
    }

    #[test]
    fn commands_are_checked_before_they_run() {
        let request = |json: &str| serde_json::from_str::<ExecRequest>(json).unwrap();
        assert!(spec_of(request(r#"{"argv":["true"],"timeout":2}"#)).is_ok());
        for (json, says) in [
            (r#"{"argv":[]}"#, "`argv` is empty"),
            (r#"{"argv":["x"],"env":["A"]}"#, "KEY=VALUE"),
            // The CLI refuses these too; the engine would answer them with a 502.
            (r#"{"argv":["x"],"env":["=x"]}"#, "KEY=VALUE"),
            (r#"{"argv":["x"],"env":["A B=1"]}"#, "KEY=VALUE"),
            (r#"{"argv":["x"],"workdir":"tmp"}"#, "absolute"),
            (r#"{"argv":["x"],"timeout":0}"#, "positive"),
        ] {
            let Err(err) = spec_of(request(json)) else {
                panic!("{json} was accepted")
            };
            assert!(
                err.report.message.contains(says),
                "{json}: {}",
                err.report.message
            );
        }
    }

    #[test]
    fn events_are_lines_or_sse_data() {
        let e = ExecEvent::output(Stream::Stdout, b"hi");
        assert_eq!(
            &encode(&e, false)[..],
            b"{\"type\":\"stdout\",\"data\":\"aGk=\"}\n"
        );
        assert_eq!(
            &encode(&e, true)[..],
            b"data: {\"type\":\"stdout\",\"data\":\"aGk=\"}\n\n"
        );
    }
}

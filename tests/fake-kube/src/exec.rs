//! exec over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`), run as a Docker exec in the
//! pod's container.
//!
//! As on a real cluster (an API server of 1.30 or later, which translates a client's WebSocket to
//! the kubelet's SPDY), the pod is checked before the upgrade and what goes wrong with the
//! container itself is reported after it, as a Status on channel 3.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::query::Params;
use crate::status::{ApiError, ApiResult};
use crate::{Fault, Shared};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
/// v5's "close this stream" signal: `[255, channel]`.
const CLOSE: u8 = 255;

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

/// The `StderrFlood` fault's size.
const FLOOD_BYTES: usize = 4 * 1024 * 1024;

/// What an exec request asked for, once checked.
struct ExecRequest {
    shared: Arc<Shared>,
    namespace: String,
    pod: String,
    container_name: String,
    command: Vec<String>,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
    v5: bool,
    fault: Option<Fault>,
}

type Sender = SplitSink<WebSocket, Message>;

pub(crate) async fn exec(
    State(shared): State<Arc<Shared>>,
    Path((namespace, pod)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match check(shared, namespace, pod, query, &headers) {
        Ok(request) => match upgrade {
            Ok(upgrade) => {
                let protocol = if request.v5 { V5 } else { V4 };
                upgrade
                    .protocols([protocol])
                    .on_upgrade(move |socket| session(socket, request))
            }
            Err(_) => ApiError::bad_request(
                "only WebSocket exec (v5.channel.k8s.io, v4.channel.k8s.io) is modelled by the \
                 fake API server: SPDY and plain requests are not",
            )
            .into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// The checks the real API server makes before it upgrades the connection.
fn check(
    shared: Arc<Shared>,
    namespace: String,
    pod: String,
    query: Option<String>,
    headers: &HeaderMap,
) -> ApiResult<ExecRequest> {
    let params = Params::parse(
        query.as_deref(),
        &[
            "command",
            "container",
            "stdin",
            "stdout",
            "stderr",
            "tty",
            "pretty",
        ],
    )?;
    let fault = shared.take_exec_fault();
    if fault == Some(Fault::Forbidden) {
        return Err(ApiError::forbidden(format!(
            "pods \"{pod}\" is forbidden: User \"system:anonymous\" cannot create resource \
             \"pods/exec\" in API group \"\" in the namespace \"{namespace}\""
        )));
    }
    let object = shared
        .store()
        .pods
        .get(&(namespace.clone(), pod.clone()))
        .map(|r| r.object.clone())
        .ok_or_else(|| ApiError::not_found("pods", &pod))?;
    let container_name = object["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(asked) = params.get("container") {
        if asked != container_name {
            return Err(ApiError::bad_request(format!(
                "container {asked} is not valid for pod {pod}"
            )));
        }
    }
    let phase = object["status"]["phase"].as_str().unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    if !object["spec"]["nodeName"].is_string() {
        return Err(ApiError::bad_request(format!(
            "pod {pod} does not have a host assigned"
        )));
    }
    let (stdin, stdout, stderr) = (
        params.flag("stdin")?,
        params.flag("stdout")?,
        params.flag("stderr")?,
    );
    if !(stdin || stdout || stderr) {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    let command = params.all("command");
    if command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    Ok(ExecRequest {
        shared,
        namespace,
        pod,
        container_name,
        command,
        stdin,
        stdout,
        stderr,
        tty: params.flag("tty")?,
        v5: chosen_protocol(headers)? == V5,
        fault,
    })
}

/// The first subprotocol the client offers that the fake speaks.
fn chosen_protocol(headers: &HeaderMap) -> ApiResult<&'static str> {
    let offered = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim);
    for protocol in offered {
        match protocol {
            V5 => return Ok(V5),
            V4 => return Ok(V4),
            _ => {}
        }
    }
    if headers.contains_key(axum::http::header::SEC_WEBSOCKET_KEY) {
        return Err(ApiError::bad_request(
            "none of the offered WebSocket subprotocols is modelled by the fake API server \
             (it speaks v5.channel.k8s.io and v4.channel.k8s.io)",
        ));
    }
    // Not a WebSocket request at all: the caller answers that.
    Ok(V4)
}

async fn session(socket: WebSocket, request: ExecRequest) {
    let (mut sender, receiver) = socket.split();
    // The real server's first message: an empty one on the lowest writable channel.
    let first = if request.stdout {
        STDOUT
    } else if request.stderr {
        STDERR
    } else {
        STATUS
    };
    if sender
        .send(Message::Binary(vec![first].into()))
        .await
        .is_err()
    {
        return;
    }
    let container = request
        .shared
        .store()
        .pods
        .get(&(request.namespace.clone(), request.pod.clone()))
        .and_then(|r| r.container.clone());
    let container = match (container, request.fault) {
        (Some(id), fault) if fault != Some(Fault::ContainerNotFound) => id,
        _ => return container_not_found(sender, receiver, &request).await,
    };
    let started = start_exec(&request, &container).await;
    let Some((exec_id, output, input)) = started else {
        return container_not_found(sender, receiver, &request).await;
    };
    let mut stdin_task = tokio::spawn(forward_input(
        receiver,
        input,
        request.shared.clone(),
        exec_id.clone(),
        request.v5,
    ));
    let delivered = forward_output(&mut sender, output, &request).await;
    if !delivered {
        // DropConnection, or the client went away: no close frame, no status.
        stdin_task.abort();
        return;
    }
    if request.fault != Some(Fault::NoStatusFrame) {
        let status = exit_status(&request, &exec_id).await;
        let mut frame = vec![STATUS];
        frame.extend_from_slice(status.to_string().as_bytes());
        let _ = sender.send(Message::Binary(frame.into())).await;
    }
    let _ = sender.send(normal_close()).await;
    // The closing handshake: the input task ends at the client's close (or its end of stream).
    // Dropping the socket with the client's frames unread would reset the connection, and a
    // reset can discard the status the client has not read yet.
    let waited = tokio::time::timeout(CLOSE_WAIT, &mut stdin_task).await;
    if waited.is_err() {
        stdin_task.abort();
    }
}

/// How long the fake waits for a client's side of the closing handshake.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads (and drops) what the client still sends until its close or its end of stream, or
/// `CLOSE_WAIT`: the closing handshake, so the connection ends with a FIN and not a reset.
async fn drain_until_closed(mut receiver: futures_util::stream::SplitStream<WebSocket>) {
    let drain = async {
        while let Some(Ok(message)) = receiver.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
}

/// A close frame with code 1000: kubectl's reader treats a close without a code (1005) as an
/// error.
fn normal_close() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    }))
}

type Input = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;
type Output = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
>;

async fn start_exec(request: &ExecRequest, container: &str) -> Option<(String, Output, Input)> {
    let docker = &request.shared.docker;
    let options = CreateExecOptions {
        cmd: Some(request.command.clone()),
        attach_stdin: Some(request.stdin),
        attach_stdout: Some(request.stdout),
        attach_stderr: Some(request.stderr),
        tty: Some(request.tty),
        ..Default::default()
    };
    let exec_id = docker.create_exec(container, options).await.ok()?.id;
    let start = StartExecOptions {
        detach: false,
        tty: request.tty,
        output_capacity: Some(64 * 1024),
    };
    match docker.start_exec(&exec_id, Some(start)).await.ok()? {
        StartExecResults::Attached { output, input } => Some((exec_id, output, input)),
        StartExecResults::Detached => None,
    }
}

/// What the real server says after the upgrade when the kubelet finds no such container.
async fn container_not_found(
    mut sender: Sender,
    receiver: futures_util::stream::SplitStream<WebSocket>,
    request: &ExecRequest,
) {
    let error = ApiError::internal(format!(
        "unable to upgrade connection: container not found (\"{}\")",
        request.container_name
    ));
    let mut frame = vec![STATUS];
    frame.extend_from_slice(error.to_status().to_string().as_bytes());
    let _ = sender.send(Message::Binary(frame.into())).await;
    let _ = sender.send(normal_close()).await;
    drain_until_closed(receiver).await;
}

/// Sends the exec's output; `false` when the connection was dropped (by a fault or the client).
async fn forward_output(sender: &mut Sender, mut output: Output, request: &ExecRequest) -> bool {
    if request.fault == Some(Fault::StderrFlood) && request.stderr {
        let chunk = vec![b'E'; 32 * 1024];
        for _ in 0..FLOOD_BYTES / chunk.len() {
            if !send_chunk(sender, STDERR, &chunk, request.fault).await {
                return false;
            }
        }
    }
    while let Some(item) = output.next().await {
        let (channel, bytes) = match item {
            Ok(LogOutput::StdErr { message }) => (STDERR, message),
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => (STDOUT, message),
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(_) => break,
        };
        if !send_chunk(sender, channel, &bytes, request.fault).await {
            return false;
        }
        if request.fault == Some(Fault::DropConnection) {
            // Dropping the socket closes the TCP connection without a close frame.
            return false;
        }
    }
    true
}

async fn send_chunk(sender: &mut Sender, channel: u8, bytes: &[u8], fault: Option<Fault>) -> bool {
    if fault == Some(Fault::SplitFrames) {
        for byte in bytes {
            let frame = vec![channel, *byte];
            if sender.send(Message::Binary(frame.into())).await.is_err() {
                return false;
            }
        }
        return true;
    }
    let mut frame = Vec::with_capacity(bytes.len() + 1);
    frame.push(channel);
    frame.extend_from_slice(bytes);
    sender.send(Message::Binary(frame.into())).await.is_ok()
}

/// Client → exec: stdin bytes, v5's close of stdin, terminal resizes. A v4 client can only end
/// stdin by closing the connection.
async fn forward_input(
    mut receiver: SplitStream<WebSocket>,
    mut input: Input,
    shared: Arc<Shared>,
    exec_id: String,
    v5: bool,
) {
    while let Some(Ok(message)) = receiver.next().await {
        let data = match message {
            Message::Binary(data) => data,
            Message::Close(_) => break,
            _ => continue,
        };
        match data.first() {
            Some(&STDIN) if input.write_all(&data[1..]).await.is_err() => break,
            Some(&STDIN) => {}
            Some(&CLOSE) if v5 && data.get(1) == Some(&STDIN) => {
                let _ = input.shutdown().await;
            }
            Some(&RESIZE) => resize(&shared, &exec_id, &data[1..]).await,
            _ => {}
        }
    }
    let _ = input.shutdown().await;
}

async fn resize(shared: &Shared, exec_id: &str, json: &[u8]) {
    let Ok(size) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let dimension = |name: &str| size[name].as_u64().and_then(|v| u16::try_from(v).ok());
    if let (Some(width), Some(height)) = (dimension("Width"), dimension("Height")) {
        let options = ResizeExecOptions { height, width };
        let _ = shared.docker.resize_exec(exec_id, options).await;
    }
}

/// The channel-3 Status for the exec's exit code, worded as the real server words it.
async fn exit_status(request: &ExecRequest, exec_id: &str) -> Value {
    let code = exit_code(&request.shared, exec_id).await;
    match code {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        Some(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {:?}, exit code {code}",
                request.command
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        None => ApiError::internal("the exec's exit code is unknown").to_status(),
    }
}

async fn exit_code(shared: &Shared, exec_id: &str) -> Option<i64> {
    // The output can end a moment before the engine records the exit code.
    for _ in 0..200 {
        let inspect = shared.docker.inspect_exec(exec_id).await.ok()?;
        if inspect.running != Some(true) {
            return inspect.exit_code;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

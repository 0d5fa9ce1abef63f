//! `RemoteManager`: sandboxes on an `enclave server`, through its own `/v1` routes
//! (`docs/server-api.md`). The server runs the same `Manager` locally, so validation, timeouts,
//! output and errors are the ones a local command gets; this side only carries them.
//!
//! Sandboxes created through a server are recorded in the local state file with their server's
//! URL (never the API key), so later commands given their id find the server by themselves.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::{CreateRequest, Health, Manager, ToolCall};
use crate::error::{exit_code, Error, Report};
use crate::model::{
    ArchiveStream, DockerSandboxConfig, ExecEnd, ExecEvent, ExecOutcome, ExecRequest, ExecSpec,
    ExecutionStatus, ExitCause, Location, OutputSink, PullObserver, Removal, Removed, Sandbox,
    SandboxInfo, SandboxStatus, SandboxType, Stream, ToolResult, VolcengineSandboxConfig,
    WireOutcome,
};
use crate::session::{self, Session, SessionKind, SessionOptions};
use crate::state::{SandboxRecord, StateStore};
use crate::volcengine::Volcengine;

/// How long connecting may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long past a tool call's own deadline we wait for the server's answer (it reports the
/// timeout itself; this only guards against a server that never answers).
const DEADLINE_GRACE: Duration = Duration::from_secs(30);
/// The longest line of the exec stream we accept: a base64 chunk of output is far shorter.
const MAX_EVENT_LINE: usize = 64 * 1024 * 1024;
/// The API key header, as ms-enclave names it.
const API_KEY_HEADER: &str = "X-API-Key";

pub struct RemoteManager {
    client: reqwest::Client,
    /// The server's base URL, as given (normalised, no trailing slash): the state file's key.
    url: String,
    base: Url,
    api_key: Option<String>,
    state: StateStore,
}

/// `DELETE /v1/sandboxes/{id}`'s answer.
#[derive(Deserialize)]
struct RemovedWire {
    id: String,
    result: String,
}

/// `POST /v1/sandboxes`'s body.
#[derive(Serialize)]
struct CreateBody<'a> {
    #[serde(rename = "type")]
    sandbox_type: SandboxType,
    config: Value,
    labels: indexmap::IndexMap<&'a str, &'a str>,
}

/// `GET /v1/health`'s answer.
#[derive(Deserialize)]
struct HealthWire {
    healthy: bool,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    backend: Option<String>,
}

impl RemoteManager {
    /// A manager for the server at `url` (`http://host:port`, a scheme-less `host:port` means
    /// http), recording what it creates in `state`.
    pub fn new(url: &str, api_key: Option<String>, state: StateStore) -> Result<Self> {
        let base = parse_server_url(url)?;
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("enclave/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("setting up the HTTP client")?;
        Ok(RemoteManager {
            client,
            url: base.as_str().trim_end_matches('/').to_string(),
            base,
            api_key: api_key.filter(|k| !k.is_empty()),
            state,
        })
    }

    /// The server's URL, as records name it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `base/v1/<segments>`, each segment percent-encoded (an id is never a path).
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.client.request(method, url);
        match &self.api_key {
            Some(key) => request.header(API_KEY_HEADER, key),
            None => request,
        }
    }

    /// Sends `request`; an answer that is not a success becomes the error it reports.
    async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.error_of(response).await)
    }

    /// Sends `request` and reads a JSON answer of type `T`.
    async fn call<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let response = self.send(request).await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| self.broken(&e, "reading its answer"))?;
        serde_json::from_slice(&body).with_context(|| {
            format!(
                "the server at {} sent an answer enclave cannot read (is it an enclave server?)",
                self.url
            )
        })
    }

    /// A request that could not be sent, or was cut short while it was.
    fn unreachable(&self, err: &reqwest::Error) -> anyhow::Error {
        if err.is_connect() || err.is_timeout() || err.is_request() {
            return Error::Unavailable {
                kind: "server_unavailable",
                what: format!("the enclave server at {}", self.url),
                detail: error_chain(err),
                hint: "check the URL (`--server` / ENCLAVE_SERVER) and that `enclave server` runs there"
                    .into(),
            }
            .into();
        }
        self.broken(err, "sending the request")
    }

    /// The connection failed after the server answered.
    fn broken(&self, err: &reqwest::Error, doing: &str) -> anyhow::Error {
        anyhow::anyhow!("{}", error_chain(err))
            .context(format!("the enclave server at {}: {doing}", self.url))
    }

    /// The error an unsuccessful answer reports.
    async fn error_of(&self, response: Response) -> anyhow::Error {
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Error::Remote(unauthorized(&self.url, self.api_key.is_some())).into();
        }
        let body = response.text().await.unwrap_or_default();
        Error::Remote(report_of_body(status.as_u16(), &body, &self.url)).into()
    }

    /// Ids this state file holds for this server.
    fn recorded_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .state
            .load()
            .map(|s| {
                s.sandboxes
                    .into_values()
                    .filter(|r| self.holds(&r.location))
                    .map(|r| r.id)
                    .collect()
            })
            .unwrap_or_default())
    }

    fn holds(&self, location: &Location) -> bool {
        matches!(location, Location::Server { url } if *url == self.url)
    }

    fn location(&self) -> Location {
        Location::Server {
            url: self.url.clone(),
        }
    }

    /// Records a sandbox created through this server.
    async fn record(&self, info: &SandboxInfo, labels: &[(String, String)]) -> Result<()> {
        let sandbox = sandbox_of(info, self.location(), true);
        let record = SandboxRecord {
            id: info.id.clone(),
            location: self.location(),
            container_id: sandbox.container_id,
            sandbox_type: info.sandbox_type,
            image: sandbox.image,
            tools: sandbox.tools,
            config: sandbox.config,
            created_at: info.created_at,
            labels: labels.iter().cloned().collect(),
            agent_socket: None,
            // The server holds its config; the record only routes later commands there.
            volcengine: None,
            last_used: None,
        };
        self.state
            .update(|s| s.sandboxes.insert(record.id.clone(), record))
            .await
            .with_context(|| {
                format!(
                    "sandbox `{}` was created on {}, but the state file could not record it",
                    info.id, self.url
                )
            })?;
        Ok(())
    }

    async fn forget(&self, id: &str) -> Result<()> {
        self.state
            .update(|s| s.sandboxes.shift_remove(id))
            .await
            .with_context(|| {
                format!("sandbox `{id}` was removed, but the state file could not be updated")
            })?;
        Ok(())
    }

    /// The record of `id` on this server, when the state file holds one.
    fn record_of(&self, id: &str) -> Option<SandboxRecord> {
        let state = self.state.load().ok()?;
        state
            .sandboxes
            .get(id)
            .filter(|r| self.holds(&r.location))
            .cloned()
    }

    /// `GET /v1/sandboxes/{id}`.
    async fn fetch_info(&self, id: &str) -> Result<SandboxInfo> {
        let url = self.endpoint(&["sandboxes", id]);
        self.call(self.request(Method::GET, url)).await
    }

    /// Reads the exec stream into `sink` until its last event.
    async fn follow_exec(
        &self,
        sandbox: &Sandbox,
        response: Response,
        sink: &mut dyn OutputSink,
        cancel: &CancellationToken,
        started: Instant,
    ) -> Result<ExecOutcome> {
        let mut events = EventLines::new(response);
        loop {
            // Dropping the response closes the connection: the server kills the command.
            let event = tokio::select! {
                event = events.next() => event,
                () = cancel.cancelled() => return Ok(ended(ExecEnd::Cancelled, started)),
            };
            let event = match event {
                Ok(Some(event)) => event,
                Ok(None) => anyhow::bail!(
                    "the enclave server at {} ended the output before saying how the command ended",
                    self.url
                ),
                Err(e) => return Err(e.context(format!("the enclave server at {}", self.url))),
            };
            let (stream, data) = match event {
                ExecEvent::Stdout { data } => (Stream::Stdout, data),
                ExecEvent::Stderr { data } => (Stream::Stderr, data),
                ExecEvent::End { outcome } => return outcome_of(&outcome, sandbox),
                ExecEvent::Error { error } => return Err(Error::Remote(error).into()),
            };
            let bytes = ExecEvent::decode(&data).with_context(|| {
                format!("the enclave server at {} sent undecodable output", self.url)
            })?;
            let written = tokio::select! {
                written = sink.write(stream, &bytes) => written,
                () = cancel.cancelled() => return Ok(ended(ExecEnd::Cancelled, started)),
            };
            if written.is_err() {
                // Our reader went away: as a pipeline's writer, the command stops.
                return Ok(ended(ExecEnd::OutputClosed, started));
            }
        }
    }
}

#[async_trait]
impl Manager for RemoteManager {
    async fn create(
        &self,
        request: CreateRequest,
        _progress: &dyn PullObserver,
        cancel: &CancellationToken,
    ) -> Result<SandboxInfo> {
        // Checked here too, so a bad config fails without a round trip and reads as locally.
        let config = match request.sandbox_type {
            SandboxType::Volcengine => {
                let config = request.volcengine.clone().unwrap_or_default();
                Volcengine::check(&config)?;
                config.to_request()
            }
            _ => {
                request.config.validate().map_err(Error::InvalidConfig)?;
                request.config.to_wire()
            }
        };
        let body = CreateBody {
            sandbox_type: request.sandbox_type,
            config,
            labels: request
                .extra_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        };
        let url = self.endpoint(&["sandboxes"]);
        let created = self.call::<SandboxInfo>(self.request(Method::POST, url).json(&body));
        // A cancel drops the request; the server removes what it had started.
        let info = tokio::select! {
            info = created => info?,
            () = cancel.cancelled() => anyhow::bail!("cancelled before the sandbox was ready"),
        };
        self.record(&info, &request.extra_labels).await?;
        Ok(info)
    }

    async fn list(&self) -> Result<Vec<Sandbox>> {
        let url = self.endpoint(&["sandboxes"]);
        let infos: Vec<SandboxInfo> = self.call(self.request(Method::GET, url)).await?;
        let recorded = self.recorded_ids()?;
        let mut sandboxes: Vec<Sandbox> = infos
            .iter()
            .map(|info| sandbox_of(info, self.location(), recorded.contains(&info.id)))
            .collect();
        sandboxes.sort_by_key(|s| s.created_at);
        Ok(sandboxes)
    }

    async fn find(&self, id_or_prefix: &str) -> Result<Sandbox> {
        if id_or_prefix.trim().is_empty() {
            return Err(Error::Usage("a sandbox id must not be empty".into()).into());
        }
        match self.fetch_info(id_or_prefix).await {
            Ok(info) => {
                let tracked = self.record_of(&info.id).is_some();
                Ok(sandbox_of(&info, self.location(), tracked))
            }
            // Recorded here but gone there: found as `gone`, so `rm` can forget it.
            Err(e) if is_not_found(&e) => match self.record_of(id_or_prefix) {
                Some(record) => Ok(gone(record)),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn info(&self, sandbox: &Sandbox) -> Result<SandboxInfo> {
        self.fetch_info(&sandbox.id).await
    }

    async fn exec(
        &self,
        sandbox: &Sandbox,
        spec: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome> {
        present(sandbox)?;
        let started = Instant::now();
        let cancel = spec.cancel.clone();
        let request = ExecRequest {
            argv: spec.argv,
            env: spec.env,
            workdir: spec.workdir,
            timeout: spec.timeout.map(|t| t.as_secs_f64()),
            stdin: spec.stdin.is_some(),
        };
        let mut head = serde_json::to_vec(&request).context("encoding the command")?;
        let (body, content_type) = match spec.stdin {
            None => (reqwest::Body::from(head), "application/json"),
            Some(stdin) => {
                // The command line, then stdin as it comes: the server starts the command at
                // once and feeds it what follows.
                head.push(b'\n');
                let first = futures_util::stream::once(async move { Ok(Bytes::from(head)) });
                let rest = tokio_util::io::ReaderStream::new(stdin);
                (
                    reqwest::Body::wrap_stream(first.chain(rest)),
                    "application/octet-stream",
                )
            }
        };
        let url = self.endpoint(&["sandboxes", &sandbox.id, "exec"]);
        let request = self
            .request(Method::POST, url)
            .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
            .header("Accept", "application/x-ndjson")
            .body(body);
        let response = tokio::select! {
            response = self.send(request) => response?,
            () = cancel.cancelled() => return Ok(ended(ExecEnd::Cancelled, started)),
        };
        self.follow_exec(sandbox, response, sink, &cancel, started)
            .await
    }

    async fn remove(&self, sandbox: &Sandbox) -> Result<Removed> {
        let forgotten = Removed {
            id: sandbox.id.clone(),
            result: Removal::Forgotten,
        };
        if sandbox.status == SandboxStatus::Gone {
            self.forget(&sandbox.id).await?;
            return Ok(forgotten);
        }
        let url = self.endpoint(&["sandboxes", &sandbox.id]);
        let removed = match self
            .call::<RemovedWire>(self.request(Method::DELETE, url))
            .await
        {
            Ok(removed) => Removed {
                id: removed.id,
                result: if removed.result == "forgotten" {
                    Removal::Forgotten
                } else {
                    Removal::Removed
                },
            },
            Err(e) if is_not_found(&e) && sandbox.tracked => forgotten,
            Err(e) => return Err(e),
        };
        if sandbox.tracked {
            self.forget(&sandbox.id).await?;
        }
        Ok(removed)
    }

    async fn stop(&self, sandbox: &Sandbox) -> Result<()> {
        present(sandbox)?;
        let url = self.endpoint(&["sandboxes", &sandbox.id, "stop"]);
        self.send(self.request(Method::POST, url)).await?;
        Ok(())
    }

    async fn put_archive(&self, sandbox: &Sandbox, dir: &str, tar: Bytes) -> Result<()> {
        present(sandbox)?;
        let mut url = self.endpoint(&["sandboxes", &sandbox.id, "archive"]);
        url.query_pairs_mut().append_pair("path", dir);
        let request = self
            .request(Method::PUT, url)
            .header(CONTENT_TYPE, "application/x-tar")
            .body(tar);
        self.send(request).await?;
        Ok(())
    }

    async fn get_archive(&self, sandbox: &Sandbox, path: &str) -> Result<ArchiveStream> {
        present(sandbox)?;
        let mut url = self.endpoint(&["sandboxes", &sandbox.id, "archive"]);
        url.query_pairs_mut().append_pair("path", path);
        let response = self.send(self.request(Method::GET, url)).await?;
        let server = self.url.clone();
        let path = path.to_string();
        let stream = response.bytes_stream().map_err(move |e| {
            anyhow::anyhow!("{}", error_chain(&e)).context(format!(
                "reading `{path}` from the enclave server at {server}"
            ))
        });
        Ok(Box::pin(stream))
    }

    async fn health(&self) -> Result<Health> {
        let url = self.endpoint(&["health"]);
        let health: HealthWire = self.call(self.request(Method::GET, url)).await?;
        let version = health.version.unwrap_or_else(|| "?".into());
        let behind = health
            .backend
            .unwrap_or_else(|| "an unknown backend".into());
        if !health.healthy {
            return Err(Error::Unavailable {
                kind: "server_unavailable",
                what: format!("the backend of the enclave server at {}", self.url),
                detail: behind,
                hint: "the server answers, but what it runs sandboxes on does not".into(),
            }
            .into());
        }
        Ok(Health {
            backend: format!("enclave server {version} at {} ({behind})", self.url),
        })
    }

    async fn execute_tool(&self, sandbox: &Sandbox, call: ToolCall) -> Result<ToolResult> {
        present(sandbox)?;
        let started = Instant::now();
        let mut url = self.endpoint(&["sandboxes", &sandbox.id, "tools", &call.tool]);
        if let Some(deadline) = call.deadline {
            url.query_pairs_mut()
                .append_pair("timeout", &deadline.as_secs_f64().to_string());
        }
        let answer = self.call::<ToolResult>(self.request(Method::POST, url).json(&call.args));
        // The server enforces the deadline and says so; waiting a little past it only guards
        // against a server that never answers.
        let give_up = async {
            match call.deadline {
                Some(d) => tokio::time::sleep(d + DEADLINE_GRACE).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = answer => result,
            // Dropping the request tells the server to cancel the call.
            () = call.cancel.cancelled() => Ok(unfinished(&call.tool, ExecutionStatus::Cancelled, started, None)),
            () = give_up => Ok(unfinished(&call.tool, ExecutionStatus::Timeout, started, call.deadline)),
        }
    }

    async fn open_session(
        &self,
        sandbox: &Sandbox,
        options: SessionOptions,
    ) -> Result<Box<dyn Session>> {
        let mut url = self.endpoint(&["sandboxes", &sandbox.id, "session"]);
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| anyhow::anyhow!("cannot make a WebSocket URL of {url}"))?;
        let kind = options.kind.map(|kind| match kind {
            SessionKind::Python => "python",
            SessionKind::Notebook => "notebook",
        });
        let pairs = [
            ("kind", kind),
            ("interpreter", options.interpreter.as_deref()),
        ];
        for (name, value) in pairs {
            if let Some(value) = value {
                url.query_pairs_mut().append_pair(name, value);
            }
        }
        let endpoint = session::remote::Endpoint {
            url: url.to_string(),
            auth: self.api_key.clone().map(|key| (API_KEY_HEADER, key)),
        };
        session::remote::open(endpoint, |status, body| {
            let body = String::from_utf8_lossy(body);
            if status == StatusCode::UNAUTHORIZED.as_u16() {
                return Error::Remote(unauthorized(&self.url, self.api_key.is_some())).into();
            }
            Error::Remote(report_of_body(status, &body, &self.url)).into()
        })
        .await
    }
}

/// The NDJSON events of an exec response, one line at a time, read as they come.
struct EventLines {
    response: Response,
    buffer: BytesMut,
    done: bool,
}

impl EventLines {
    fn new(response: Response) -> Self {
        EventLines {
            response,
            buffer: BytesMut::new(),
            done: false,
        }
    }

    /// The next event; `None` at the end of the stream.
    async fn next(&mut self) -> Result<Option<ExecEvent>> {
        loop {
            if let Some(at) = self.buffer.iter().position(|b| *b == b'\n') {
                let line = self.buffer.split_to(at + 1);
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return parse_event(line).map(Some);
            }
            if self.done {
                if self.buffer.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                let rest = self.buffer.split();
                return parse_event(&rest).map(Some);
            }
            if self.buffer.len() > MAX_EVENT_LINE {
                anyhow::bail!("an exec event longer than {MAX_EVENT_LINE} bytes");
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => self.done = true,
                Err(e) => {
                    return Err(anyhow::anyhow!("{}", error_chain(&e))
                        .context("the connection broke while the command ran"))
                }
            }
        }
    }
}

/// One NDJSON line (an SSE `data:` prefix tolerated).
fn parse_event(line: &[u8]) -> Result<ExecEvent> {
    let line = line.strip_prefix(b"data:").unwrap_or(line);
    serde_json::from_slice(line).context("an exec event enclave cannot read")
}

/// How a command ended, from the `end` event.
fn outcome_of(wire: &WireOutcome, sandbox: &Sandbox) -> Result<ExecOutcome> {
    let outcome = ExecOutcome::try_from(wire)
        .map_err(|e| anyhow::anyhow!("the server's exec outcome: {e}"))?;
    if outcome.cause == Some(ExitCause::SandboxGone) {
        return Err(Error::Vanished(sandbox.id.clone()).into());
    }
    Ok(outcome)
}

fn ended(end: ExecEnd, started: Instant) -> ExecOutcome {
    ExecOutcome::new(end, started.elapsed())
}

/// The result of a tool call we stopped waiting for.
fn unfinished(
    tool: &str,
    status: ExecutionStatus,
    started: Instant,
    deadline: Option<Duration>,
) -> ToolResult {
    let message = match deadline {
        Some(d) => format!("Tool call timed out after {} seconds", d.as_secs_f64()),
        None => crate::tools::CANCELLED.to_string(),
    };
    let mut result = ToolResult::failure(tool, message);
    result.status = status;
    result.execution_time = Some(started.elapsed().as_secs_f64());
    result
}

/// Refuses a sandbox we know is gone, as `LocalManager` does, without a round trip.
fn present(sandbox: &Sandbox) -> Result<()> {
    if sandbox.status == SandboxStatus::Gone {
        return Err(Error::NotFound(sandbox.id.clone()))
            .context("it no longer exists; `enclave rm` forgets it");
    }
    Ok(())
}

fn is_not_found(err: &anyhow::Error) -> bool {
    crate::error::find(err).is_some_and(|e| e.kind() == "not_found")
}

/// A sandbox as a server describes it.
pub(crate) fn sandbox_of(info: &SandboxInfo, location: Location, tracked: bool) -> Sandbox {
    // Read leniently: a server's config may hold what this side would not accept.
    let config: DockerSandboxConfig =
        serde_json::from_value(info.config.clone()).unwrap_or_default();
    let image = match info.sandbox_type {
        SandboxType::Volcengine => {
            serde_json::from_value::<VolcengineSandboxConfig>(info.config.clone())
                .map(|v| v.host())
                .unwrap_or_default()
        }
        _ => info
            .config
            .get("image")
            .and_then(Value::as_str)
            .map_or_else(|| config.image.clone(), str::to_string),
    };
    Sandbox {
        image,
        tracked,
        ..Sandbox::from_info(info, config, location)
    }
}

/// A recorded sandbox its server no longer has.
fn gone(record: SandboxRecord) -> Sandbox {
    Sandbox {
        id: record.id,
        sandbox_type: record.sandbox_type,
        image: record.image,
        status: SandboxStatus::Gone,
        tools: record.tools,
        created_at: Some(record.created_at),
        container_id: record.container_id,
        location: record.location,
        tracked: true,
        config: record.config,
        volcengine: None,
        revive_hint: None,
        labels: record.labels,
    }
}

/// `--server`'s value as a base URL: http or https; `host:port` alone means http.
pub(crate) fn parse_server_url(text: &str) -> Result<Url> {
    let text = text.trim();
    let bad = |why: String| -> anyhow::Error {
        Error::Usage(format!("--server `{text}` is not a server URL: {why}")).into()
    };
    if text.is_empty() {
        return Err(bad("it is empty".into()));
    }
    let full = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let url = Url::parse(&full).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "the scheme must be http or https, not `{}`",
            url.scheme()
        )));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(bad("it names no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or fragment".into()));
    }
    Ok(url)
}

/// The error a 401 means, naming where the key comes from.
fn unauthorized(server: &str, sent_key: bool) -> Report {
    let message = if sent_key {
        format!("the enclave server at {server} did not accept the API key")
    } else {
        format!("the enclave server at {server} needs an API key")
    };
    Report {
        kind: "unauthorized".into(),
        message,
        causes: vec![format!("{server} answered 401 Unauthorized")],
        hint: Some("set ENCLAVE_API_KEY, or pass `--api-key KEY`, to the server's key".into()),
        exit_code: exit_code::FAILURE,
    }
}

/// The error an unsuccessful answer's body reports: enclave's own `error` document when there is
/// one, else one built from ms-enclave's `detail` and the status.
pub(crate) fn report_of_body(status: u16, body: &str, server: &str) -> Report {
    let parsed: Option<Map<String, Value>> = serde_json::from_str(body).ok();
    if let Some(report) = parsed
        .as_ref()
        .and_then(|b| b.get("error"))
        .and_then(|e| serde_json::from_value::<Report>(e.clone()).ok())
    {
        return report;
    }
    let detail = parsed.as_ref().and_then(|b| b.get("detail"));
    let message = match detail {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(problems)) => problems
            .iter()
            .map(describe_problem)
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) => other.to_string(),
        None => {
            let first_line = body.lines().next().unwrap_or("").trim();
            if first_line.is_empty() {
                format!("the enclave server at {server} answered HTTP {status}")
            } else {
                format!("the enclave server at {server} answered HTTP {status}: {first_line}")
            }
        }
    };
    let (kind, code) = match status {
        404 => ("not_found", exit_code::FAILURE),
        400 | 422 => ("invalid_request", exit_code::FAILURE),
        408 => ("pool_timeout", exit_code::FAILURE),
        409 => ("conflict", exit_code::FAILURE),
        500..=599 => ("server_error", exit_code::ENGINE),
        _ => ("error", exit_code::FAILURE),
    };
    Report {
        kind: kind.into(),
        message,
        causes: vec![format!("{server} answered HTTP {status}")],
        hint: None,
        exit_code: code,
    }
}

/// One of FastAPI's 422 problems: `loc: msg`.
fn describe_problem(problem: &Value) -> String {
    let msg = problem
        .get("msg")
        .and_then(Value::as_str)
        .unwrap_or("invalid");
    let loc: Vec<String> = problem
        .get("loc")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if loc.is_empty() {
        msg.to_string()
    } else {
        format!("{}: {msg}", loc.join("."))
    }
}

/// A reqwest error with its sources, which say what actually failed (refused, reset, DNS).
fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enclave_error_documents_pass_through() {
        let body = json!({
            "detail": "sandbox `k3x9` not found",
            "error": {"kind": "not_found", "message": "sandbox `k3x9` not found", "causes": [],
                      "hint": "`enclave ls` lists the sandboxes you have", "exit_code": 1}
        });
        let report = report_of_body(404, &body.to_string(), "http://s");
        assert_eq!(report.kind, "not_found");
        assert_eq!(report.message, "sandbox `k3x9` not found");
        assert_eq!(
            report.hint.as_deref(),
            Some("`enclave ls` lists the sandboxes you have")
        );
    }

    #[test]
    fn ms_enclave_details_become_reports() {
        let r = report_of_body(404, r#"{"detail":"Sandbox not found"}"#, "http://s");
        assert_eq!(
            (r.kind.as_str(), r.message.as_str(), r.exit_code),
            ("not_found", "Sandbox not found", 1)
        );
        let r = report_of_body(
            422,
            r#"{"detail":[{"type":"missing","loc":["query","sandbox_type"],"msg":"Field required"}]}"#,
            "http://s",
        );
        assert_eq!(r.message, "query.sandbox_type: Field required");
        let r = report_of_body(500, "Internal Server Error", "http://s");
        assert_eq!(r.exit_code, 125);
        assert!(
            r.message.contains("HTTP 500: Internal Server Error"),
            "{}",
            r.message
        );
        let r = report_of_body(502, "", "http://s");
        assert_eq!(
            r.message,
            "the enclave server at http://s answered HTTP 502"
        );
    }

    #[test]
    fn unauthorized_names_the_key_settings() {
        let r = unauthorized("http://s", true);
        assert!(r.message.contains("did not accept the API key"));
        assert!(r.hint.unwrap().contains("ENCLAVE_API_KEY"));
        assert!(unauthorized("http://s", false)
            .message
            .contains("needs an API key"));
    }

    #[test]
    fn server_urls() {
        assert_eq!(
            parse_server_url("127.0.0.1:8000").unwrap().as_str(),
            "http://127.0.0.1:8000/"
        );
        assert_eq!(
            parse_server_url("https://e.example/api/").unwrap().path(),
            "/api/"
        );
        for bad in ["", "ftp://x", "http://", "http://h?x=1", "http://h:99999"] {
            let err = parse_server_url(bad).unwrap_err();
            assert!(
                matches!(crate::error::find(&err), Some(Error::Usage(_))),
                "{bad}: {err:#}"
            );
        }
    }

    #[test]
    fn endpoints_encode_ids_and_keep_a_base_path() {
        let m = RemoteManager::new("http://h:1/api", None, StateStore::at("/nonexistent")).unwrap();
        assert_eq!(
            m.endpoint(&["sandboxes", "a/b?c", "exec"]).as_str(),
            "http://h:1/api/v1/sandboxes/a%2Fb%3Fc/exec"
        );
        assert_eq!(m.url(), "http://h:1/api");
        let m = RemoteManager::new("http://h:1/", None, StateStore::at("/nonexistent")).unwrap();
        assert_eq!(m.endpoint(&["health"]).as_str(), "http://h:1/v1/health");
    }

    #[test]
    fn sandboxes_come_from_their_info() {
        let info: SandboxInfo = serde_json::from_value(json!({
            "id": "k3x9abcd", "status": "stopped", "type": "docker",
            "config": {"image": "img:1", "tools_config": {"shell_executor": {}}},
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "metadata": {"container_id": "c0ffee"},
            "available_tools": {"shell_executor": {"type": "function"}}
        }))
        .unwrap();
        let location = Location::Server {
            url: "http://s".into(),
        };
        let s = sandbox_of(&info, location.clone(), true);
        assert_eq!(s.image, "img:1");
        assert_eq!(s.tools, ["shell_executor"]);
        assert_eq!(s.container_id.as_deref(), Some("c0ffee"));
        assert_eq!(s.status, SandboxStatus::Stopped);
        assert_eq!(s.location, location);
    }
}

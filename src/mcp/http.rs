//! Streamable HTTP: `enclave mcp --http`. rmcp's `StreamableHttpService` at `/mcp` (sessions
//! for 2025-11-25, stateless for 2026-07-28), behind one layer that decides who may talk to it:
//!
//! - `Host` must name this machine's loopback, `--host` or an `--allow-host`, and a request
//!   carrying an `Origin` (a browser) must come from an `--allow-origin`: a web page cannot
//!   reach a local server by DNS rebinding. Both are refused with 403 before anything else.
//! - With `--token-file`, `Authorization: Bearer <token>` must carry one of its tokens
//!   (compared in constant time), else 401. Each token is a tenant of its own: the sandboxes
//!   it creates are invisible to the others, and so are the sessions it opens. Without tokens the server listens on loopback
//!   only and every caller is one tenant.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use indexmap::IndexMap;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use super::handler::Handler;
use super::{Core, Tenant};
use crate::error::Error;

/// The shortest token `--token-file` accepts.
const MIN_TOKEN_LEN: usize = 16;

/// How many sessions' owners are remembered; the oldest is forgotten beyond that.
const MAX_SESSIONS: usize = 10_000;

/// The header naming a 2025-11-25 session.
const SESSION_HEADER: &str = "mcp-session-id";

/// How long in-flight requests get to finish once the server is told to stop.
const GRACE: Duration = Duration::from_secs(5);

/// The host names every server answers to: this machine's loopback.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Debug, Clone)]
pub(crate) struct HttpOptions {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) token_file: Option<PathBuf>,
    /// Browser origins allowed besides none (`--allow-origin`).
    pub(crate) allowed_origins: Vec<String>,
    /// Host names clients may reach the server by besides loopback and `--host`
    /// (`--allow-host`).
    pub(crate) allowed_hosts: Vec<String>,
}

impl HttpOptions {
    /// Checks the flags and reads the token file: a usage error says what to change.
    pub(crate) fn check(&self) -> Result<()> {
        Gate::new(self).map(drop)
    }
}

pub(super) async fn serve(
    core: Arc<Core>,
    options: HttpOptions,
    cancel: CancellationToken,
) -> Result<()> {
    let gate = Arc::new(Gate::new(&options)?);
    let listener = tokio::net::TcpListener::bind((bare_host(&options.host), options.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", options.host, options.port))?;
    let address = listener.local_addr()?;

    // rmcp checks Host and Origin itself too: the same lists, as a second line.
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(gate.hosts.clone())
        .with_allowed_origins(
            gate.origins
                .iter()
                .map(Origin::to_string)
                .chain(own_origins(&gate.hosts, address.port())),
        )
        .enforce_origin_validation()
        .with_cancellation_token(cancel.child_token());
    let factory_core = core.clone();
    let service = StreamableHttpService::new(
        move || Ok(Handler::new(factory_core.clone(), None)),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new()
        .route_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(gate, guard));

    eprintln!("enclave mcp: listening on http://{address}/mcp");
    let stopping = {
        let (cancel, core) = (cancel.clone(), core.clone());
        async move {
            cancel.cancelled().await;
            // Running calls stop now (and answer), so the connections can close.
            core.stop.cancel();
        }
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(stopping);
    tokio::select! {
        served = server => served.context("serving HTTP")?,
        () = async { cancel.cancelled().await; tokio::time::sleep(GRACE).await } => {}
    }
    Ok(())
}

/// Who may talk to the server, decided once at start.
struct Gate {
    /// Host names (without port) the `Host` header may carry.
    hosts: Vec<String>,
    /// Browser origins allowed.
    origins: Vec<Origin>,
    /// The accepted tokens and their tenants; empty means loopback without tokens.
    tokens: Vec<(String, Tenant)>,
    /// Every caller's tenant when there are no tokens.
    open: Tenant,
    /// With tokens: which tenant opened each 2025-11-25 session, so another token cannot
    /// read its streams or end it even if it learns the session id.
    sessions: Mutex<IndexMap<String, Tenant>>,
}

impl Gate {
    fn new(options: &HttpOptions) -> Result<Self> {
        let host = bare_host(&options.host);
        let tokens = match &options.token_file {
            Some(path) => read_tokens(path)?,
            None => Vec::new(),
        };
        if tokens.is_empty() && !is_loopback(host) {
            return Err(Error::Usage(format!(
                "--host {}: listening beyond this machine needs bearer tokens; add \
                 --token-file PATH (one token a line, 16 characters or more), or listen on \
                 127.0.0.1",
                options.host
            ))
            .into());
        }
        let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(ToString::to_string).collect();
        let wildcard = host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified());
        if !wildcard {
            hosts.push(host.to_ascii_lowercase());
        }
        for name in &options.allowed_hosts {
            let name = bare_host(name.trim());
            if name.is_empty() || name.contains(['/', ':']) && name.parse::<IpAddr>().is_err() {
                return Err(Error::Usage(format!(
                    "--allow-host {name}: give a host name or address without scheme or port"
                ))
                .into());
            }
            hosts.push(name.to_ascii_lowercase());
        }
        hosts.dedup();
        let origins = options
            .allowed_origins
            .iter()
            .map(|o| {
                Origin::parse(o).ok_or_else(|| {
                    Error::Usage(format!(
                        "--allow-origin {o}: give an origin as a browser sends it, \
                         scheme://host[:port], e.g. http://localhost:6274"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Gate {
            hosts,
            origins,
            tokens,
            open: Tenant::new("http"),
            sessions: Mutex::default(),
        })
    }

    /// Whether `Host` names this server: one of `hosts`, any port.
    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(authority) = host_of(headers) else {
            return false;
        };
        let host = bare_host(authority.host()).to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// The request's `Origin` when it has one: `Ok` if allowed (an `--allow-origin`, or the
    /// server's own origin, the `Host` already checked), `Err` if not.
    fn origin(&self, headers: &HeaderMap) -> Option<Result<HeaderValue, ()>> {
        let value = headers.get(header::ORIGIN)?;
        let allowed = value
            .to_str()
            .ok()
            .and_then(Origin::parse)
            .is_some_and(|origin| self.origins.contains(&origin) || is_own(&origin, headers));
        Some(if allowed { Ok(value.clone()) } else { Err(()) })
    }

    /// The tenant a request's bearer token belongs to. Every token is compared, whichever
    /// matches, so the time taken says nothing about which one did.
    fn tenant(&self, headers: &HeaderMap) -> Option<Tenant> {
        if self.tokens.is_empty() {
            return Some(self.open.clone());
        }
        let presented = bearer(headers)?;
        let mut found = None;
        for (token, tenant) in &self.tokens {
            if bool::from(token.as_bytes().ct_eq(presented)) {
                found = Some(tenant.clone());
            }
        }
        found
    }

    /// Whether `tenant` may use the session a request names: its own, or one this layer
    /// never saw open (rmcp answers for those).
    fn session_allowed(&self, session: Option<&str>, tenant: &Tenant) -> bool {
        let Some(id) = session.filter(|_| !self.tokens.is_empty()) else {
            return true;
        };
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.get(id).is_none_or(|owner| owner == tenant)
    }

    /// Records who opened a session (the answer to an `initialize` names it) and forgets one
    /// that was ended.
    fn track_session(&self, request: &RequestSummary, tenant: &Tenant, response: &Response) {
        if self.tokens.is_empty() || !response.status().is_success() {
            return;
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        match (&request.session, response.headers().get(SESSION_HEADER)) {
            (Some(id), _) if request.method == Method::DELETE => {
                sessions.shift_remove(id);
            }
            (None, Some(id)) => {
                if let Ok(id) = id.to_str() {
                    sessions.insert(id.to_string(), tenant.clone());
                    if sessions.len() > MAX_SESSIONS {
                        sessions.shift_remove_index(0);
                    }
                }
            }
            _ => {}
        }
    }
}

/// What `track_session` needs of a request that has been handed on.
struct RequestSummary {
    method: Method,
    session: Option<String>,
}

/// Whether `origin` is `http://` plus the request's own `Host`: a page of this very server.
/// A rebinding page never matches, as its `Host` is the attacker's name, which `host_allowed`
/// refused before.
fn is_own(origin: &Origin, headers: &HeaderMap) -> bool {
    let Some(authority) = host_of(headers) else {
        return false;
    };
    origin.scheme == "http"
        && origin.host == bare_host(authority.host()).to_ascii_lowercase()
        && origin.port == authority.port_u16().unwrap_or(80)
}

/// The request's `Host` header, parsed.
fn host_of(headers: &HeaderMap) -> Option<axum::http::uri::Authority> {
    headers.get(header::HOST)?.to_str().ok()?.parse().ok()
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(rest.trim_ascii())
}

/// The layer in front of `/mcp`: Host, then Origin, then the token.
async fn guard(State(gate): State<Arc<Gate>>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !gate.host_allowed(headers) {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            &format!(
                "Host `{host}` is not a name this server answers to (DNS rebinding protection). \
                 Use http://127.0.0.1:PORT/mcp, or start enclave mcp with --allow-host NAME."
            ),
        );
    }
    let origin = match gate.origin(headers) {
        None => None,
        Some(Ok(origin)) => Some(origin),
        Some(Err(())) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                "Requests from web pages are refused unless their origin is allowed: start \
                 enclave mcp with --allow-origin ORIGIN (e.g. http://localhost:6274).",
            )
        }
    };
    // A browser's preflight carries no credentials; an allowed origin gets its answer.
    if request.method() == Method::OPTIONS {
        if let Some(origin) = origin {
            let mut response = StatusCode::NO_CONTENT.into_response();
            cors(response.headers_mut(), origin, true);
            return response;
        }
    }
    let mut response = match gate.tenant(request.headers()) {
        Some(tenant) => {
            let summary = RequestSummary {
                method: request.method().clone(),
                session: request
                    .headers()
                    .get(SESSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(ToString::to_string),
            };
            if !gate.session_allowed(summary.session.as_deref(), &tenant) {
                // What rmcp answers for a session it does not know: nothing more is said.
                return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
            }
            request.extensions_mut().insert(tenant.clone());
            let response = next.run(request).await;
            gate.track_session(&summary, &tenant, &response);
            response
        }
        None => {
            let mut response = refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Send `Authorization: Bearer <token>` with a token from the server's \
                 --token-file.",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"enclave mcp\""),
            );
            response
        }
    };
    if let Some(origin) = origin {
        cors(response.headers_mut(), origin, false);
    }
    response
}

/// CORS headers for an allowed browser origin.
fn cors(headers: &mut HeaderMap, origin: HeaderValue, preflight: bool) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Mcp-Session-Id, WWW-Authenticate"),
    );
    if preflight {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(
                "Authorization, Content-Type, Accept, Last-Event-ID, Mcp-Session-Id, \
                 Mcp-Protocol-Version, Mcp-Method, Mcp-Name",
            ),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
}

/// A refusal with a JSON body a person can act on.
fn refuse(status: StatusCode, error: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": error, "message": message }).to_string();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// A web origin: scheme, host and port (the scheme's default when not written).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    fn parse(text: &str) -> Option<Origin> {
        let uri = text.trim().parse::<axum::http::Uri>().ok()?;
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return None;
        }
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let authority = uri.authority()?;
        let port = match (authority.port_u16(), scheme.as_str()) {
            (Some(port), _) => port,
            (None, "http") => 80,
            (None, "https") => 443,
            _ => return None,
        };
        Some(Origin {
            host: bare_host(authority.host()).to_ascii_lowercase(),
            scheme,
            port,
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// The server's own origins (`http://` plus a name it answers to and its port), which rmcp's
/// check must let through as `is_own` does.
fn own_origins(hosts: &[String], port: u16) -> impl Iterator<Item = String> + '_ {
    hosts.iter().map(move |host| {
        if host.contains(':') {
            format!("http://[{host}]:{port}")
        } else {
            format!("http://{host}:{port}")
        }
    })
}

/// A host without the brackets of an IPv6 literal.
fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Reads `--token-file`: one token a line; blank lines and `#` comments are skipped. Each
/// token is a tenant, named by its line (never by anything a caller sends).
fn read_tokens(path: &Path) -> Result<Vec<(String, Tenant)>> {
    let usage = |why: String| Error::Usage(format!("--token-file {}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| usage(e.to_string()))?;
    parse_tokens(&text).map_err(|why| usage(why).into())
}

fn parse_tokens(text: &str) -> Result<Vec<(String, Tenant)>, String> {
    let mut tokens: Vec<(String, Tenant)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let token = line.trim();
        if token.is_empty() || token.starts_with('#') {
            continue;
        }
        let at = |why: &str| format!("line {}: {why}", n + 1);
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(at(
                "a token is one word of printable ASCII (no spaces); make one with \
                 `openssl rand -hex 32`",
            ));
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(at(&format!(
                "the token has {} characters, fewer than {MIN_TOKEN_LEN}; make a longer one \
                 with `openssl rand -hex 32`",
                token.len()
            )));
        }
        if tokens.iter().any(|(t, _)| t == token) {
            return Err(at("the same token is on an earlier line"));
        }
        tokens.push((
            token.to_string(),
            Tenant::new(&format!("token-line-{}", n + 1)),
        ));
    }
    if tokens.is_empty() {
        return Err("no tokens in it (one token a line, 16 characters or more)".into());
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(host: &str) -> HttpOptions {
        HttpOptions {
            host: host.into(),
            port: 0,
            token_file: None,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn token_files_give_each_token_its_own_tenant_and_refuse_weak_ones() {
        let tokens =
            parse_tokens("# team\n0123456789abcdef\n\n  fedcba9876543210fedc  \n").unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0].0, "0123456789abcdef");
        assert_ne!(tokens[0].1, tokens[1].1);
        for (text, says) in [
            ("", "no tokens"),
            ("# only a comment\n\n", "no tokens"),
            ("short", "line 1: the token has 5 characters"),
            (
                "0123456789abcdef\n0123456789abcdef",
                "line 2: the same token",
            ),
            ("0123456789 abcdef", "line 1: a token is one word"),
        ] {
            let err = parse_tokens(text).err().unwrap();
            assert!(err.contains(says), "{text:?}: {err}");
        }
    }

    #[test]
    fn beyond_loopback_needs_tokens() {
        for host in ["127.0.0.1", "::1", "[::1]", "localhost"] {
            assert!(Gate::new(&options(host)).is_ok(), "{host}");
        }
        for host in ["0.0.0.0", "::", "192.168.1.5", "example.com"] {
            let err = Gate::new(&options(host)).err().unwrap().to_string();
            assert!(err.contains("--token-file"), "{host}: {err}");
        }
    }

    #[test]
    fn hosts_and_origins_are_checked() {
        let mut opts = options("127.0.0.1");
        opts.allowed_origins = vec!["http://localhost:6274".into()];
        let gate = Gate::new(&opts).unwrap();
        assert!(gate.host_allowed(&headers(&[(header::HOST, "127.0.0.1:8765")])));
        assert!(gate.host_allowed(&headers(&[(header::HOST, "LOCALHOST:1")])));
        assert!(gate.host_allowed(&headers(&[(header::HOST, "[::1]:8765")])));
        assert!(!gate.host_allowed(&headers(&[(header::HOST, "evil.example:8765")])));
        assert!(!gate.host_allowed(&HeaderMap::new()));

        assert!(gate.origin(&HeaderMap::new()).is_none());
        let ok = headers(&[(header::ORIGIN, "http://localhost:6274")]);
        assert!(gate.origin(&ok).unwrap().is_ok());
        for bad in [
            "http://localhost:6275",
            "https://localhost:6274",
            "http://evil.example",
            "null",
        ] {
            let h = headers(&[(header::ORIGIN, bad)]);
            assert!(gate.origin(&h).unwrap().is_err(), "{bad}");
        }
        assert_eq!(
            Origin::parse("https://App.Example").unwrap().to_string(),
            "https://app.example:443"
        );
    }

    #[test]
    fn a_wildcard_host_is_not_a_name_but_a_named_host_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "0123456789abcdef\n").unwrap();
        let mut opts = options("0.0.0.0");
        opts.token_file = Some(file.clone());
        let gate = Gate::new(&opts).unwrap();
        assert!(!gate.host_allowed(&headers(&[(header::HOST, "0.0.0.0:8765")])));
        opts.host = "box.lan".into();
        opts.allowed_hosts = vec!["mcp.example.com".into()];
        let gate = Gate::new(&opts).unwrap();
        assert!(gate.host_allowed(&headers(&[(header::HOST, "box.lan:8765")])));
        assert!(gate.host_allowed(&headers(&[(header::HOST, "mcp.example.com")])));
    }

    #[test]
    fn bearer_tokens_find_their_tenant_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "aaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbb\n").unwrap();
        let mut opts = options("127.0.0.1");
        opts.token_file = Some(file);
        let gate = Gate::new(&opts).unwrap();
        let auth = |v: &str| headers(&[(header::AUTHORIZATION, v)]);
        let a = gate.tenant(&auth("Bearer aaaaaaaaaaaaaaaa")).unwrap();
        let b = gate.tenant(&auth("bearer bbbbbbbbbbbbbbbb")).unwrap();
        assert_ne!(a, b);
        for wrong in [
            "Bearer aaaaaaaaaaaaaaa",
            "Bearer ",
            "Basic aaaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaaa",
        ] {
            assert!(gate.tenant(&auth(wrong)).is_none(), "{wrong}");
        }
        assert!(gate.tenant(&HeaderMap::new()).is_none());
        let open = Gate::new(&options("127.0.0.1")).unwrap();
        assert!(open.tenant(&HeaderMap::new()).is_some());
    }
}

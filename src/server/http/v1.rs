//! enclave's own routes, under `/v1` (docs/server-api.md): what the CLI's remote mode needs.
//! Statuses are enclave's own (`paused`, `gone`), errors are 4xx/5xx by their kind, and
//! `detail` is always a string.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::input::{read_body, Query};
use super::{delete, get, ok, post, put, until_client_leaves, AppState, Params, Routes, Who};
use crate::manager::ToolCall;
use crate::model::{DockerSandboxConfig, SandboxType, VolcengineSandboxConfig, MAX_TIMEOUT_SECS};

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .add("GET", "/v1/health", get(health))
        .add("GET", "/v1/sandboxes", get(list))
        .add("POST", "/v1/sandboxes", post(create))
        .add("GET", "/v1/sandboxes/{id}", get(info))
        .add("DELETE", "/v1/sandboxes/{id}", delete(remove))
        .add("POST", "/v1/sandboxes/{id}/stop", post(stop))
        .add("POST", "/v1/sandboxes/{id}/exec", post(super::exec::exec))
        .add(
            "POST",
            "/v1/sandboxes/{id}/tools/{tool}",
            post(execute_tool),
        )
        .add("PUT", "/v1/sandboxes/{id}/archive", put(put_archive))
        .add("GET", "/v1/sandboxes/{id}/archive", get(get_archive))
        .add(
            "GET",
            "/v1/sandboxes/{id}/session",
            get(super::session::session),
        )
}

/// A JSON body, which must be an object of type `T`.
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))
}

/// `GET /v1/health`: `{"healthy", "version", "backend", "uptime"}`; 503 with `healthy: false`
/// and the error when the engine does not answer.
async fn health(State(state): State<AppState>) -> Response {
    let uptime = state.started.elapsed().as_secs_f64();
    match state.service.health().await {
        Ok(health) => ok(&json!({
            "healthy": true,
            "version": env!("CARGO_PKG_VERSION"),
            "backend": health.backend,
            "uptime": uptime,
        })),
        Err(e) => {
            let e = ApiError::of(&e);
            let body = json!({
                "healthy": false,
                "version": env!("CARGO_PKG_VERSION"),
                "uptime": uptime,
                "detail": e.detail,
                "error": e.report,
            });
            super::error::json_response(StatusCode::SERVICE_UNAVAILABLE, &body)
        }
    }
}

async fn list(State(state): State<AppState>, Who(caller): Who) -> Response {
    ok(&state.service.list(&caller))
}

/// `POST /v1/sandboxes`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(rename = "type", default)]
    sandbox_type: Option<String>,
    #[serde(default)]
    config: Option<Map<String, Value>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

async fn create(
    State(state): State<AppState>,
    Who(caller): Who,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(
        &headers,
        body,
        state.settings.max_body,
        "the body",
        "--max-body",
    )
    .await?;
    let request: CreateBody = if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty: send {\"config\": {...}} (see docs/server-api.md)",
        ));
    } else {
        parse_json(&bytes, "create request")?
    };
    let kind = match request.sandbox_type.as_deref() {
        None => SandboxType::Docker,
        Some(t) => SandboxType::parse(t).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown sandbox type `{t}`: this server runs `docker`, `docker_notebook` and `volcengine`"
            ))
        })?,
    };
    let invalid = |m: String| {
        ApiError::plain(
            StatusCode::BAD_REQUEST,
            "invalid_config",
            format!("invalid configuration: {m}"),
        )
    };
    let raw = Value::Object(request.config.unwrap_or_default());
    let (config, volcengine) = match kind {
        SandboxType::Volcengine => (
            DockerSandboxConfig::default(),
            Some(VolcengineSandboxConfig::from_value(raw).map_err(invalid)?),
        ),
        _ => (DockerSandboxConfig::from_value(raw).map_err(invalid)?, None),
    };
    let labels = request.labels;
    let service = state.service.clone();
    let info = until_client_leaves(&state.service, move |cancel| async move {
        match volcengine {
            Some(v) => service.create_volcengine(&caller, v, labels, &cancel).await,
            None => service.create(&caller, kind, config, labels, &cancel).await,
        }
    })
    .await?
    .map_err(|e| ApiError::of(&e))?;
    Ok(ok(&info))
}

/// `GET /v1/sandboxes/{id}`: `id` may be a unique prefix.
async fn info(
    State(state): State<AppState>,
    Who(caller): Who,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    let info = state
        .service
        .resolve(&caller, &id)
        .map_err(|e| ApiError::of(&e))?;
    Ok(ok(&info))
}

async fn remove(
    State(state): State<AppState>,
    Who(caller): Who,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    let removed = state
        .service
        .delete(&caller, &id)
        .await
        .map_err(|e| ApiError::of(&e))?;
    Ok(ok(&removed))
}

async fn stop(
    State(state): State<AppState>,
    Who(caller): Who,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    state
        .service
        .stop(&caller, &id)
        .await
        .map_err(|e| ApiError::of(&e))?;
    Ok(ok(&json!({"id": id, "status": "stopped"})))
}

/// A `timeout` query parameter in seconds, positive and at most a year.
pub(super) fn timeout_param(query: &Query) -> Result<Option<std::time::Duration>, ApiError> {
    match query.get("timeout") {
        None => Ok(None),
        Some(text) => match text.trim().parse::<f64>() {
            Ok(t) if t > 0.0 && t <= MAX_TIMEOUT_SECS => {
                Ok(Some(std::time::Duration::from_secs_f64(t)))
            }
            _ => Err(ApiError::bad_request(format!(
                "`timeout` must be a positive number of seconds, at most a year; got `{text}`"
            ))),
        },
    }
}

/// `POST /v1/sandboxes/{id}/tools/{tool}?timeout=SECS`, the body the tool's arguments.
async fn execute_tool(
    State(state): State<AppState>,
    Who(caller): Who,
    Params((id, tool)): Params<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let deadline = timeout_param(&Query::of(&uri)?)?;
    let bytes = read_body(
        &headers,
        body,
        state.settings.max_body,
        "the body",
        "--max-body",
    )
    .await?;
    let args: Map<String, Value> = if bytes.is_empty() {
        Map::new()
    } else {
        parse_json(&bytes, "tool arguments (a JSON object)")?
    };
    let service = state.service.clone();
    let result = until_client_leaves(&state.service, move |cancel| async move {
        let call = ToolCall {
            tool,
            args,
            deadline,
            cancel,
        };
        service.execute_tool(&caller, &id, call).await
    })
    .await?
    .map_err(|e| ApiError::of(&e))?;
    Ok(ok(&result))
}

/// The `path` query parameter of the archive routes: an absolute path in the sandbox.
fn path_param(query: &Query) -> Result<String, ApiError> {
    match query.get("path") {
        Some(p) if p.starts_with('/') => Ok(p.to_owned()),
        Some(p) => Err(ApiError::bad_request(format!(
            "`path` must be an absolute path in the sandbox; got `{p}`"
        ))),
        None => Err(ApiError::bad_request(
            "the `path` query parameter is required",
        )),
    }
}

/// `PUT /v1/sandboxes/{id}/archive?path=DIR`, the body a tar archive extracted into `DIR`.
async fn put_archive(
    State(state): State<AppState>,
    Who(caller): Who,
    Params(id): Params<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let dir = path_param(&Query::of(&uri)?)?;
    let tar = read_body(
        &headers,
        body,
        state.settings.max_archive,
        "the archive",
        "--max-archive",
    )
    .await?;
    if tar.is_empty() {
        return Err(ApiError::bad_request(
            "the archive is empty: send a tar archive as the body",
        ));
    }
    state
        .service
        .put_archive(&caller, &id, &dir, tar)
        .await
        .map_err(|e| ApiError::of(&e))?;
    Ok(ok(&json!({"ok": true})))
}

/// `GET /v1/sandboxes/{id}/archive?path=PATH`: `PATH` as a tar stream, `docker cp`'s layout.
async fn get_archive(
    State(state): State<AppState>,
    Who(caller): Who,
    Params(id): Params<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let path = path_param(&Query::of(&uri)?)?;
    let stream = state
        .service
        .get_archive(&caller, &id, &path)
        .await
        .map_err(|e| ApiError::of(&e))?;
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(response)
}

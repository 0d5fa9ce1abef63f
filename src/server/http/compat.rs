//! ms-enclave's routes (reference §4.4), to the byte where its `HttpSandboxManager` depends on
//! it: paths, query vs body parameters, 200 on success, its error statuses and texts, FastAPI's
//! 422 bodies, and its status enum (`paused` reads `stopped`, `gone` reads `error`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::error::{fastapi, ApiError};
use super::input::{json_body, read_body, Problems, Query};
use super::{delete, get, ok, post, until_client_leaves, AppState, Params, Routes, Who};
use crate::manager::ToolCall;
use crate::model::{
    DockerSandboxConfig, SandboxInfo, SandboxStatus, SandboxType, VolcengineSandboxConfig,
    MAX_TIMEOUT_SECS,
};
use crate::server::service::compat_status;

pub(super) fn routes(routes: Routes) -> Routes {
    routes
        .add("GET", "/health", get(health))
        .add("GET", "/stats", get(stats))
        .add("POST", "/sandbox/create", post(create))
        .add("GET", "/sandboxes", get(list))
        .add("GET", "/sandbox/{sandbox_id}", get(info))
        .add("DELETE", "/sandbox/{sandbox_id}", delete(remove))
        .add("POST", "/sandbox/{sandbox_id}/stop", post(stop))
        .add("POST", "/sandbox/tool/execute", post(execute_tool))
        .add("GET", "/sandbox/{sandbox_id}/tools", get(tools))
        .add("POST", "/sandbox/{sandbox_id}/archive", post(put_archive))
        .add("POST", "/pool/initialize", post(pool_initialize))
        .add("POST", "/pool/execute", post(pool_execute))
}

/// ms-enclave's `SandboxType` values; enclave serves the first two.
const SANDBOX_TYPES: &str = "'docker', 'docker_notebook', 'volcengine' or 'dummy'";
/// ms-enclave's `SandboxStatus` values.
const STATUSES: &str =
    "'initializing', 'running', 'idle', 'busy', 'stopping', 'stopped' or 'error'";

fn compat_info(mut info: SandboxInfo) -> SandboxInfo {
    info.status = compat_status(info.status);
    // ms-enclave's shape exactly: the agent is enclave's own.
    info.agent = None;
    info
}

/// `GET /health`: 200 when the engine answers its ping; 503 with the same shape, `healthy:
/// false` and the reason in `error` when it does not (ms-enclave's client reads any non-200 as
/// unhealthy).
pub(super) async fn health(State(state): State<AppState>, Who(caller): Who) -> Response {
    let stats = state.service.stats(&caller);
    let mut body = json!({
        "healthy": true,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": state.started.elapsed().as_secs_f64(),
        "active_sandboxes": stats.get("total_sandboxes").cloned().unwrap_or(json!(0)),
        "system_info": stats,
    });
    match state.service.health().await {
        Ok(_) => ok(&body),
        Err(e) => {
            let message = ApiError::of(&e).report.message.clone();
            body["healthy"] = json!(false);
            body["error"] = json!(message);
            body["detail"] = json!(message);
            super::error::json_response(StatusCode::SERVICE_UNAVAILABLE, &body)
        }
    }
}

async fn stats(State(state): State<AppState>, Who(caller): Who) -> Response {
    ok(&state.service.stats(&caller))
}

/// `sandbox_type`, checked against ms-enclave's enum; `dummy`, which ms-enclave declares and
/// does not run either, is refused as it refuses it.
fn sandbox_type(text: &str, loc: &[&str]) -> Result<Result<SandboxType, ApiError>, Value> {
    match text {
        "dummy" => Ok(Err(ApiError::plain(
            StatusCode::BAD_REQUEST,
            "invalid_config",
            format!(
                "Failed to create sandbox: sandbox type `{text}` is not available on enclave server (it runs `docker`, `docker_notebook` and `volcengine`)"
            ),
        ))),
        other => SandboxType::parse(other)
            .map(Ok)
            .ok_or_else(|| fastapi::enumeration(loc, other, SANDBOX_TYPES)),
    }
}

/// An optional config body: absent, `null` or `{}` mean the default config.
fn optional_config(body: Option<Value>) -> Result<Option<Map<String, Value>>, Value> {
    match body {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(fastapi::dict_type(&["body"], other)),
    }
}

/// Parses a config as pydantic would; a config that fails validation is ms-enclave's 400.
fn parse_config(map: Option<Map<String, Value>>) -> Result<DockerSandboxConfig, ApiError> {
    DockerSandboxConfig::from_value(Value::Object(map.unwrap_or_default())).map_err(|message| {
        ApiError::plain(
            StatusCode::BAD_REQUEST,
            "invalid_config",
            format!("Failed to create sandbox: {message}"),
        )
    })
}

/// A volcengine config as pydantic would parse it; invalid is ms-enclave's 400.
fn parse_volcengine(map: Option<Map<String, Value>>) -> Result<VolcengineSandboxConfig, ApiError> {
    VolcengineSandboxConfig::from_value(Value::Object(map.unwrap_or_default())).map_err(|message| {
        ApiError::plain(
            StatusCode::BAD_REQUEST,
            "invalid_config",
            format!("Failed to create sandbox: {message}"),
        )
    })
}

/// `POST /sandbox/create?sandbox_type=docker`, the body the config: `{"sandbox_id": …}` once
/// the sandbox runs. Every failure is a 400 `Failed to create sandbox: …`, as in ms-enclave.
async fn create(
    State(state): State<AppState>,
    Who(caller): Who,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let query = Query::of(&uri)?;
    let mut problems = Problems::default();
    let kind = problems
        .check(query.required("sandbox_type"))
        .and_then(|t| problems.check(sandbox_type(t, &["query", "sandbox_type"])));
    let bytes = read_body(
        &headers,
        body,
        state.settings.max_body,
        "the body",
        "--max-body",
    )
    .await?;
    let config = problems.check(optional_config(json_body(&headers, &bytes)?));
    problems.into_result()?;
    let (Some(kind), Some(config)) = (kind, config) else {
        return Err(Problems::unreported());
    };
    let kind = kind?;
    let (config, volcengine) = match kind {
        SandboxType::Volcengine => (
            DockerSandboxConfig::default(),
            Some(parse_volcengine(config)?),
        ),
        _ => (parse_config(config)?, None),
    };
    let service = state.service.clone();
    let info = until_client_leaves(&state.service, move |cancel| async move {
        match volcengine {
            Some(v) => {
                service
                    .create_volcengine(&caller, v, BTreeMap::new(), &cancel)
                    .await
            }
            None => {
                service
                    .create(&caller, kind, config, BTreeMap::new(), &cancel)
                    .await
            }
        }
    })
    .await?
    .map_err(|e| {
        let e = ApiError::of(&e);
        let detail = format!("Failed to create sandbox: {}", e.report.message);
        e.with_status(StatusCode::BAD_REQUEST).with_detail(detail)
    })?;
    Ok(ok(&json!({ "sandbox_id": info.id })))
}

/// `GET /sandboxes[?status=…]`.
async fn list(
    State(state): State<AppState>,
    Who(caller): Who,
    uri: Uri,
) -> Result<Response, ApiError> {
    let query = Query::of(&uri)?;
    let wanted = match query.get("status") {
        None => None,
        Some(text) => Some(parse_status(text).ok_or_else(|| {
            ApiError::validation(vec![fastapi::enumeration(
                &["query", "status"],
                text,
                STATUSES,
            )])
        })?),
    };
    let infos: Vec<SandboxInfo> = state
        .service
        .list(&caller)
        .into_iter()
        .map(compat_info)
        .filter(|i| wanted.is_none_or(|w| i.status == w))
        .collect();
    Ok(ok(&infos))
}

fn parse_status(text: &str) -> Option<SandboxStatus> {
    serde_json::from_value::<SandboxStatus>(Value::String(text.into()))
        .ok()
        .filter(|s| !matches!(s, SandboxStatus::Paused | SandboxStatus::Gone))
}

/// A missing sandbox in ms-enclave's words on `get`, `stop` and `delete`.
fn not_found_short(e: &anyhow::Error) -> ApiError {
    let e = ApiError::of(e);
    if e.report.kind == "not_found" {
        e.with_detail("Sandbox not found")
    } else {
        e
    }
}

async fn info(
    State(state): State<AppState>,
    Who(caller): Who,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    let info = state
        .service
        .get(&caller, &id)
        .map_err(|e| not_found_short(&e))?;
    Ok(ok(&compat_info(info)))
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
        .map_err(|e| not_found_short(&e))?;
    Ok(ok(&json!({"message": "Sandbox stopped successfully"})))
}

async fn remove(
    State(state): State<AppState>,
    Who(caller): Who,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    state
        .service
        .delete(&caller, &id)
        .await
        .map_err(|e| not_found_short(&e))?;
    Ok(ok(&json!({"message": "Sandbox deleted successfully"})))
}

async fn tools(
    State(state): State<AppState>,
    Who(caller): Who,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    let tools = state
        .service
        .tools(&caller, &id)
        .map_err(|e| sandbox_error(&e, &id, StatusCode::NOT_FOUND))?;
    Ok(ok(&tools))
}

/// A sandbox that is missing, or not running, in ms-enclave's words; `inactive` is the status
/// ms-enclave answers a stopped sandbox with on this route (404 for tools, 400 for archives).
fn sandbox_error(e: &anyhow::Error, id: &str, inactive: StatusCode) -> ApiError {
    let e = ApiError::of(e);
    match e.report.kind.as_str() {
        "not_found" => {
            let detail = format!("Sandbox {id} not found");
            e.with_detail(detail)
        }
        "not_running" => e.with_status(inactive),
        _ => e,
    }
}

/// `ToolExecutionRequest`, checked field by field as pydantic does.
#[derive(Debug)]
struct ToolRequest {
    sandbox_id: String,
    tool_name: String,
    parameters: Map<String, Value>,
    timeout: Option<Duration>,
}

fn tool_request(body: Option<Value>) -> Result<ToolRequest, ApiError> {
    let mut fields = match body {
        None | Some(Value::Null) => {
            return Err(ApiError::validation(vec![fastapi::missing(
                &["body"],
                Value::Null,
            )]))
        }
        Some(Value::Object(map)) => map,
        Some(other) => return Err(ApiError::validation(vec![fastapi::model_type(other)])),
    };
    // The whole body goes in a `missing` report, as pydantic's does; copied only then.
    let incomplete = ["sandbox_id", "tool_name"]
        .iter()
        .any(|k| !fields.contains_key(*k));
    let input = if incomplete {
        Value::Object(fields.clone())
    } else {
        Value::Null
    };
    let mut problems = Problems::default();
    let mut string = |name: &str, fields: &mut Map<String, Value>| match fields.remove(name) {
        Some(Value::String(s)) => Some(s),
        None => {
            problems.push(fastapi::missing(&["body", name], input.clone()));
            None
        }
        Some(other) => {
            problems.push(fastapi::string_type(&["body", name], other));
            None
        }
    };
    let sandbox_id = string("sandbox_id", &mut fields);
    let tool_name = string("tool_name", &mut fields);
    let parameters = match fields.remove("parameters") {
        None | Some(Value::Null) => Some(Map::new()),
        Some(Value::Object(map)) => Some(map),
        Some(other) => {
            problems.push(fastapi::dict_type(&["body", "parameters"], other));
            None
        }
    };
    let timeout = problems.check(seconds(fields.remove("timeout"), &["body", "timeout"]));
    problems.into_result()?;
    match (sandbox_id, tool_name, parameters, timeout) {
        (Some(sandbox_id), Some(tool_name), Some(parameters), Some(timeout)) => Ok(ToolRequest {
            sandbox_id,
            tool_name,
            parameters,
            timeout,
        }),
        _ => Err(Problems::unreported()),
    }
}

/// A number of seconds given as an int, a float or a numeric string; `null` and `0` mean none
/// (ms-enclave's falsy values).
pub(super) fn seconds(value: Option<Value>, loc: &[&str]) -> Result<Option<Duration>, Value> {
    let number = match &value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    let input = value.unwrap_or(Value::Null);
    match number.filter(|n| n.is_finite()) {
        None => Err(fastapi::float_parsing(loc, input)),
        Some(n) if n < 0.0 => Err(fastapi::greater_than_equal(loc, input, 0.0)),
        Some(n) if n > MAX_TIMEOUT_SECS => {
            Err(fastapi::less_than_equal(loc, input, MAX_TIMEOUT_SECS))
        }
        Some(0.0) => Ok(None),
        Some(n) => Ok(Some(Duration::from_secs_f64(n))),
    }
}

/// `POST /sandbox/tool/execute`: `timeout` is the whole call's deadline (ms-enclave accepts
/// and ignores it). Tool-level failures are 200 with `status` `error` or `timeout`.
async fn execute_tool(
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
    let request = tool_request(json_body(&headers, &bytes)?)?;
    let id = request.sandbox_id.clone();
    let tool = request.tool_name.clone();
    let service = state.service.clone();
    let result = until_client_leaves(&state.service, move |cancel| async move {
        let call = ToolCall {
            tool: request.tool_name,
            args: request.parameters,
            deadline: request.timeout,
            cancel,
        };
        service
            .execute_tool(&caller, &request.sandbox_id, call)
            .await
    })
    .await?
    .map_err(|e| {
        let e = sandbox_error(&e, &id, StatusCode::NOT_FOUND);
        match e.report.kind.as_str() {
            "tool_unavailable" => e.with_detail(format!("Tool {tool} is not available")),
            _ => e,
        }
    })?;
    Ok(ok(&result))
}

/// `POST /sandbox/{id}/archive?target_dir=…`, the body a tar archive: `{"ok": true}`.
async fn put_archive(
    State(state): State<AppState>,
    Who(caller): Who,
    Params(id): Params<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let query = Query::of(&uri)?;
    let target = query
        .required("target_dir")
        .map_err(|e| ApiError::validation(vec![e]))?
        .to_owned();
    let tar = read_body(
        &headers,
        body,
        state.settings.max_archive,
        "the archive",
        "--max-archive",
    )
    .await?;
    if tar.is_empty() {
        return Err(ApiError::bad_request("Archive body must not be empty"));
    }
    if target.trim().is_empty() {
        return Err(ApiError::bad_request("target_dir must not be empty"));
    }
    state
        .service
        .put_archive(&caller, &id, &target, tar)
        .await
        .map_err(|e| sandbox_error(&e, &id, StatusCode::BAD_REQUEST))?;
    Ok(ok(&json!({"ok": true})))
}

/// `POST /pool/initialize?pool_size=N&sandbox_type=docker`, the body an optional config.
async fn pool_initialize(
    State(state): State<AppState>,
    Who(caller): Who,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let query = Query::of(&uri)?;
    let mut problems = Problems::default();
    let size = problems.check(query.int("pool_size"));
    let kind = match query.get("sandbox_type") {
        None => Some(Ok(SandboxType::Docker)),
        Some(t) => problems.check(sandbox_type(t, &["query", "sandbox_type"])),
    };
    let bytes = read_body(
        &headers,
        body,
        state.settings.max_body,
        "the body",
        "--max-body",
    )
    .await?;
    let config = problems.check(optional_config(json_body(&headers, &bytes)?));
    problems.into_result()?;
    let (Some(size), Some(kind), Some(config)) = (size, kind, config) else {
        return Err(Problems::unreported());
    };
    let kind = kind?;
    let config = match config {
        None => None,
        Some(map) => Some(parse_config(Some(map))?),
    };
    // A negative size creates nothing, as in ms-enclave; none or 0 is the server's default.
    let ids = match size {
        Some(n) if n < 0 => Vec::new(),
        size => {
            let size = size.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            let service = state.service.clone();
            until_client_leaves(&state.service, move |_| async move {
                service.pool_initialize(&caller, size, kind, config).await
            })
            .await?
            .map_err(|e| ApiError::of(&e))?
        }
    };
    Ok(ok(&json!({
        "message": "Pool initialized successfully",
        "pool_size": ids.len(),
        "sandbox_ids": ids,
    })))
}

/// `POST /pool/execute?tool_name=…[&timeout=SECS]`, the body the tool's arguments; `timeout`
/// bounds the wait for a free sandbox. 400 for an empty pool, 408 when the wait runs out.
async fn pool_execute(
    State(state): State<AppState>,
    Who(caller): Who,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let query = Query::of(&uri)?;
    let mut problems = Problems::default();
    let tool = problems
        .check(query.required("tool_name"))
        .map(str::to_owned);
    let wait = problems.check(
        query
            .number("timeout")
            .and_then(|t| seconds(t.map(Value::from), &["query", "timeout"])),
    );
    let bytes = read_body(
        &headers,
        body,
        state.settings.max_body,
        "the body",
        "--max-body",
    )
    .await?;
    let args = match json_body(&headers, &bytes)? {
        None => {
            problems.push(fastapi::missing(&["body"], Value::Null));
            None
        }
        Some(Value::Object(map)) => Some(map),
        Some(other) => {
            problems.push(fastapi::dict_type(&["body"], other));
            None
        }
    };
    problems.into_result()?;
    let (Some(tool), Some(wait), Some(args)) = (tool, wait, args) else {
        return Err(Problems::unreported());
    };
    let service = state.service.clone();
    let result = until_client_leaves(&state.service, move |cancel| async move {
        let call = ToolCall {
            tool,
            args,
            deadline: None,
            cancel,
        };
        service.pool_execute(&caller, call, wait).await
    })
    .await?
    .map_err(|e| {
        let e = ApiError::of(&e);
        // ms-enclave answers every `ValueError` here with 400 (an unknown tool, bad arguments).
        match e.status {
            StatusCode::NOT_FOUND | StatusCode::CONFLICT => e.with_status(StatusCode::BAD_REQUEST),
            _ => e,
        }
    })?;
    Ok(ok(&result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_requests_are_checked_as_pydantic_checks_them() {
        let r = tool_request(Some(json!({
            "sandbox_id": "abc", "tool_name": "shell_executor",
            "parameters": {"command": "echo"}, "timeout": 2.5
        })))
        .unwrap();
        assert_eq!(r.sandbox_id, "abc");
        assert_eq!(r.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(r.parameters["command"], "echo");

        let r = tool_request(Some(
            json!({"sandbox_id": "a", "tool_name": "t", "timeout": null}),
        ))
        .unwrap();
        assert!(r.parameters.is_empty());
        assert_eq!(r.timeout, None);

        let e = tool_request(Some(
            json!({"tool_name": 3, "parameters": [], "timeout": "x"}),
        ))
        .unwrap_err();
        let types: Vec<&str> = e
            .detail
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["missing", "string_type", "dict_type", "float_parsing"]
        );
        assert_eq!(e.detail[0]["loc"], json!(["body", "sandbox_id"]));

        let e = tool_request(Some(json!([1]))).unwrap_err();
        assert_eq!(e.detail[0]["type"], "model_attributes_type");
        let e = tool_request(None).unwrap_err();
        assert_eq!(e.detail[0]["loc"], json!(["body"]));
    }

    #[test]
    fn statuses_read_as_ms_enclaves_enum() {
        assert_eq!(compat_status(SandboxStatus::Paused), SandboxStatus::Stopped);
        assert_eq!(compat_status(SandboxStatus::Gone), SandboxStatus::Error);
        assert_eq!(compat_status(SandboxStatus::Idle), SandboxStatus::Idle);
        assert_eq!(parse_status("busy"), Some(SandboxStatus::Busy));
        assert_eq!(parse_status("paused"), None);
        assert_eq!(parse_status("bogus"), None);
    }
}

//! Error responses: every one is a JSON object `{"detail": …, "error": <Report>}`, whatever the
//! route and whatever went wrong, so ms-enclave's client (which reads `detail`) and enclave's
//! own (which reads `error`) both understand it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::{exit_code, Report};
use crate::server::service::ServiceError;

/// An error on its way to the client (boxed: it travels in every handler's `Result`).
#[derive(Debug)]
pub(crate) struct ApiError(Box<Parts>);

#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) status: StatusCode,
    /// What ms-enclave's clients read: a string, or FastAPI's list of validation errors.
    pub(crate) detail: Value,
    pub(crate) report: Report,
}

impl std::ops::Deref for ApiError {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut Parts {
        &mut self.0
    }
}

impl ApiError {
    /// An error whose `detail` is the report's message.
    pub(crate) fn new(status: StatusCode, report: Report) -> Self {
        ApiError(Box::new(Parts {
            status,
            detail: Value::String(report.message.clone()),
            report,
        }))
    }

    /// An error of our own making: a kind, a message and a hint.
    pub(crate) fn plain(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        Self::new(status, report(kind, message.into(), None))
    }

    /// A failure from below (the service, the manager): the status its kind calls for.
    pub(crate) fn of(err: &anyhow::Error) -> Self {
        let report = ServiceError::report_of(err).unwrap_or_else(|| Report::of(err));
        let error = Self::new(status_of(&report.kind), report);
        // A service error's own text is ms-enclave's `detail`.
        match err.chain().find_map(|e| e.downcast_ref::<ServiceError>()) {
            Some(service) => error.with_detail(service.to_string()),
            None => error,
        }
    }

    /// The same error, told in other words (ms-enclave's texts on its routes).
    pub(crate) fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Value::String(detail.into());
        self
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// FastAPI's 422: `detail` is the list of what failed validation.
    pub(crate) fn validation(errors: Vec<Value>) -> Self {
        let message = errors
            .iter()
            .map(describe_validation_error)
            .collect::<Vec<_>>()
            .join("; ");
        ApiError(Box::new(Parts {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            detail: Value::Array(errors),
            report: report(
                "invalid_request",
                format!("invalid request: {message}"),
                Some("/openapi.json describes every route's parameters".into()),
            ),
        }))
    }

    /// A request enclave's own routes cannot act on: 400, kind `usage`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::plain(StatusCode::BAD_REQUEST, "usage", message)
    }

    /// A request that arrives while the server shuts down.
    pub(crate) fn shutting_down() -> Self {
        let mut e = Self::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        );
        e.report.hint = Some("try again once it is back".into());
        e
    }

    pub(crate) fn not_found_route() -> Self {
        Self::plain(StatusCode::NOT_FOUND, "no_route", "Not Found")
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method Not Allowed",
        )
    }

    pub(crate) fn unauthorized() -> Self {
        let mut e = Self::plain(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized");
        e.report.hint = Some("send the key in the `X-API-Key` header".into());
        e
    }

    pub(crate) fn too_large(what: &str, limit: usize, flag: &str) -> Self {
        let mut e = Self::plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("{what} is larger than this server accepts ({limit} bytes)"),
        );
        e.report.hint = Some(format!("the server's `{flag}` sets the limit"));
        e
    }
}

fn report(kind: &str, message: String, hint: Option<String>) -> Report {
    Report {
        kind: kind.into(),
        message,
        causes: Vec::new(),
        hint,
        exit_code: exit_code::FAILURE,
    }
}

/// "query.sandbox_type: Field required", for the report's message.
fn describe_validation_error(e: &Value) -> String {
    let loc = e["loc"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|p| match p {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(".")
        })
        .unwrap_or_default();
    format!("{loc}: {}", e["msg"].as_str().unwrap_or("invalid"))
}

/// The status of an error on enclave's own routes, by its kind (docs/server-api.md).
pub(crate) fn status_of(kind: &str) -> StatusCode {
    match kind {
        "not_found" | "path_not_found" | "tool_unavailable" | "no_route" => StatusCode::NOT_FOUND,
        "ambiguous" | "not_running" => StatusCode::CONFLICT,
        "invalid_config" | "invalid_arguments" | "usage" | "image_unavailable" | "policy"
        | "pool_empty" | "no_workdir" | "no_shell" | "invalid_request" => StatusCode::BAD_REQUEST,
        "unauthorized" => StatusCode::UNAUTHORIZED,
        "pool_timeout" => StatusCode::REQUEST_TIMEOUT,
        "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "docker_unavailable" | "interrupted" | "shutting_down" => StatusCode::SERVICE_UNAVAILABLE,
        "engine_error" => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Parts {
            status,
            detail,
            report,
        } = *self.0;
        json_response(status, &json!({ "detail": detail, "error": report }))
    }
}

/// A JSON response; serialising our own values cannot fail, but if it did the client would
/// still get JSON.
pub(crate) fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|e| {
        serde_json::to_vec(&json!({ "detail": format!("cannot encode the response: {e}") }))
            .unwrap_or_default()
    });
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// FastAPI's validation errors, shaped as pydantic reports them.
pub(crate) mod fastapi {
    use serde_json::{json, Value};

    pub(crate) fn missing(loc: &[&str], input: Value) -> Value {
        json!({"type": "missing", "loc": loc, "msg": "Field required", "input": input})
    }

    /// A value outside an enum; `expected` is `'a', 'b' or 'c'`.
    pub(crate) fn enumeration(loc: &[&str], input: &str, expected: &str) -> Value {
        json!({
            "type": "enum", "loc": loc, "msg": format!("Input should be {expected}"),
            "input": input, "ctx": {"expected": expected}
        })
    }

    pub(crate) fn int_parsing(loc: &[&str], input: Value) -> Value {
        json!({
            "type": "int_parsing", "loc": loc,
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "input": input
        })
    }

    pub(crate) fn float_parsing(loc: &[&str], input: Value) -> Value {
        json!({
            "type": "float_parsing", "loc": loc,
            "msg": "Input should be a valid number, unable to parse string as a number",
            "input": input
        })
    }

    pub(crate) fn string_type(loc: &[&str], input: Value) -> Value {
        json!({"type": "string_type", "loc": loc, "msg": "Input should be a valid string", "input": input})
    }

    pub(crate) fn dict_type(loc: &[&str], input: Value) -> Value {
        json!({"type": "dict_type", "loc": loc, "msg": "Input should be a valid dictionary", "input": input})
    }

    /// A body that is not an object where a model was expected.
    pub(crate) fn model_type(input: Value) -> Value {
        json!({
            "type": "model_attributes_type", "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": input
        })
    }

    pub(crate) fn json_invalid(position: usize, error: &str) -> Value {
        json!({
            "type": "json_invalid", "loc": ["body", position], "msg": "JSON decode error",
            "input": {}, "ctx": {"error": error}
        })
    }

    /// A number that must be at least `limit`.
    pub(crate) fn greater_than_equal(loc: &[&str], input: Value, limit: f64) -> Value {
        json!({
            "type": "greater_than_equal", "loc": loc,
            "msg": format!("Input should be greater than or equal to {limit}"),
            "input": input, "ctx": {"ge": limit}
        })
    }

    pub(crate) fn less_than_equal(loc: &[&str], input: Value, limit: f64) -> Value {
        json!({
            "type": "less_than_equal", "loc": loc,
            "msg": format!("Input should be less than or equal to {limit}"),
            "input": input, "ctx": {"le": limit}
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_documented_statuses() {
        for (kind, status) in [
            ("not_found", 404),
            ("path_not_found", 404),
            ("tool_unavailable", 404),
            ("ambiguous", 409),
            ("not_running", 409),
            ("invalid_config", 400),
            ("policy", 400),
            ("unauthorized", 401),
            ("pool_timeout", 408),
            ("too_large", 413),
            ("docker_unavailable", 503),
            ("engine_error", 502),
            ("error", 500),
        ] {
            assert_eq!(status_of(kind).as_u16(), status, "{kind}");
        }
    }

    #[test]
    fn validation_errors_keep_fastapis_list_and_say_it_in_words() {
        let e = ApiError::validation(vec![fastapi::missing(
            &["query", "sandbox_type"],
            Value::Null,
        )]);
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            e.detail,
            json!([{"type":"missing","loc":["query","sandbox_type"],"msg":"Field required","input":null}])
        );
        assert_eq!(
            e.report.message,
            "invalid request: query.sandbox_type: Field required"
        );
    }
}

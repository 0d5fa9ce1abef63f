//! Errors as the real API server answers them: a `metav1.Status` body with the HTTP status code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One failed request: its HTTP code, the Status `reason` and the message.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// A request the fake does not model: a 400 naming what it refused, so a test that trips it
    /// learns at once that the fake, not the cluster, said no.
    pub(crate) fn not_modelled(what: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("{what} is not modelled by the fake API server"))
    }

    pub(crate) fn not_found(resource: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{resource} \"{name}\" not found"),
        )
        .with_details(json!({"name": name, "kind": resource}))
    }

    /// A path the fake does not serve: the real server's bare 404 for an unknown resource.
    pub(crate) fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    pub(crate) fn already_exists(resource: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{resource} \"{name}\" already exists"),
        )
        .with_details(json!({"name": name, "kind": resource}))
    }

    /// 422: the object failed validation; `field` and `problem` as the real server words them.
    pub(crate) fn invalid(kind: &str, name: &str, field: &str, problem: &str) -> Self {
        Self::invalid_because("FieldValueInvalid", kind, name, field, problem)
    }

    /// 422 with the cause's own reason (`FieldValueNotFound`, `FieldValueDuplicate`,
    /// `FieldValueRequired`), as the real server sets it for those problems.
    pub(crate) fn invalid_because(
        cause_reason: &str,
        kind: &str,
        name: &str,
        field: &str,
        problem: &str,
    ) -> Self {
        let cause = format!("{field}: {problem}");
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {cause}"),
        )
        .with_details(json!({
            "name": name,
            "kind": kind,
            "causes": [{"reason": cause_reason, "message": problem, "field": field}],
        }))
    }

    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    /// What the real server says to a request without valid credentials.
    pub(crate) fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    #[cfg(test)]
    pub(crate) fn code(&self) -> StatusCode {
        self.code
    }

    /// The `metav1.Status` body.
    pub(crate) fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::json_response(self.code, &self.to_status())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(format!("{e:#}"))
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

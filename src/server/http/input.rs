//! Reading requests the way FastAPI does (so ms-enclave's clients see the same 422s), with
//! size caps it lacks: query parameters, bodies under a limit, and JSON bodies.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use futures_util::StreamExt;
use serde_json::Value;

use super::error::{fastapi, ApiError};

/// A request's query parameters, decoded.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn of(uri: &Uri) -> Result<Self, ApiError> {
        let pairs =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri).map_err(|e| {
                ApiError::plain(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("cannot decode the query string: {e}"),
                )
            })?;
        Ok(Query(pairs.0))
    }

    /// The parameter's value; the last one wins when it is repeated, as in Starlette.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A required string parameter.
    pub(crate) fn required(&self, name: &str) -> Result<&str, Value> {
        self.get(name)
            .ok_or_else(|| fastapi::missing(&["query", name], Value::Null))
    }

    /// An optional integer parameter.
    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, Value> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| fastapi::int_parsing(&["query", name], text.into())),
        }
    }

    /// An optional number parameter.
    pub(crate) fn number(&self, name: &str) -> Result<Option<f64>, Value> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(Some)
                .ok_or_else(|| fastapi::float_parsing(&["query", name], text.into())),
        }
    }
}

/// Collects the validation errors of several parameters, so one 422 names them all.
#[derive(Default)]
pub(crate) struct Problems(Vec<Value>);

impl Problems {
    pub(crate) fn check<T>(&mut self, result: Result<T, Value>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    pub(crate) fn push(&mut self, error: Value) {
        self.0.push(error);
    }

    /// For a value that is missing although no problem was recorded: a bug of ours, but a
    /// JSON 500 rather than a panic.
    pub(crate) fn unreported() -> ApiError {
        ApiError::plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "error",
            "a request parameter was lost while checking it",
        )
    }

    pub(crate) fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.0))
        }
    }
}

/// The whole body, refused with 413 past `limit` bytes (before reading it when the client
/// announced its length).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &str,
    flag: &str,
) -> Result<Bytes, ApiError> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(what, limit, flag));
    }
    let mut stream = body.into_data_stream();
    let mut data = Vec::with_capacity(initial_capacity(announced));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| unreadable(&e))?;
        if data.len() + chunk.len() > limit {
            return Err(ApiError::too_large(what, limit, flag));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(data))
}

/// What to reserve for a body of the announced length: no more than `INITIAL_RESERVE`, as an
/// announcement costs the client nothing; the buffer grows with the bytes that do arrive.
fn initial_capacity(announced: Option<u64>) -> usize {
    announced.map_or(0, |n| {
        usize::try_from(n)
            .unwrap_or(usize::MAX)
            .min(INITIAL_RESERVE)
    })
}

const INITIAL_RESERVE: usize = 64 << 10;

pub(crate) fn unreadable(e: &axum::Error) -> ApiError {
    ApiError::plain(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        format!("cannot read the request body: {e}"),
    )
}

/// A JSON body read as FastAPI reads one: `None` when empty; parsed when the content type is
/// JSON or absent; otherwise the raw text, which then fails the caller's type check as it does
/// in FastAPI. Malformed JSON is a 422 `json_invalid`.
pub(crate) fn json_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Option<Value>, ApiError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if !is_json(headers) {
        return Ok(Some(Value::String(
            String::from_utf8_lossy(bytes).into_owned(),
        )));
    }
    serde_json::from_slice(bytes).map(Some).map_err(|e| {
        ApiError::validation(vec![fastapi::json_invalid(
            byte_offset(bytes, e.line(), e.column()),
            &e.to_string(),
        )])
    })
}

/// Whether the request says its body is JSON (or says nothing).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    }
}

/// serde's 1-based line and column as an offset into the text, as Python's `JSONDecodeError.pos`.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = bytes
        .split(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    (line_start + column.saturating_sub(1)).min(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(content_type: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(ct) = content_type {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        h
    }

    #[test]
    fn json_bodies_are_read_as_fastapi_reads_them() {
        let json = headers(Some("application/json; charset=utf-8"));
        assert_eq!(json_body(&json, b"").unwrap(), None);
        assert_eq!(
            json_body(&json, br#"{"a":1}"#).unwrap(),
            Some(serde_json::json!({"a": 1}))
        );
        assert_eq!(
            json_body(&headers(None), b"[1]").unwrap(),
            Some(serde_json::json!([1]))
        );
        assert_eq!(
            json_body(&headers(Some("application/vnd.x+json")), b"1").unwrap(),
            Some(serde_json::json!(1))
        );
        // Not JSON by its content type: the text, which a type check then refuses.
        assert_eq!(
            json_body(&headers(Some("text/plain")), b"{}").unwrap(),
            Some(Value::String("{}".into()))
        );
        let err = json_body(&json, b"{\"a\": }").unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.detail[0]["type"], "json_invalid");
        assert_eq!(err.detail[0]["loc"], serde_json::json!(["body", 6]));
    }

    #[test]
    fn query_parameters_last_one_wins_and_types_are_checked() {
        let uri: Uri = "/x?a=1&a=2&n=x&f=2.5&e=".parse().unwrap();
        let q = Query::of(&uri).unwrap();
        assert_eq!(q.get("a"), Some("2"));
        assert_eq!(q.get("e"), Some(""));
        assert_eq!(q.int("a").unwrap(), Some(2));
        assert_eq!(q.int("n").unwrap_err()["type"], "int_parsing");
        assert_eq!(q.number("f").unwrap(), Some(2.5));
        assert_eq!(q.number("n").unwrap_err()["type"], "float_parsing");
        assert_eq!(q.required("zz").unwrap_err()["type"], "missing");
    }

    #[test]
    fn an_announced_length_reserves_little_before_bytes_arrive() {
        assert_eq!(initial_capacity(None), 0);
        assert_eq!(initial_capacity(Some(100)), 100);
        // A client announcing a gigabyte (under a large --max-archive) costs 64 KiB up front.
        assert_eq!(initial_capacity(Some(1 << 30)), INITIAL_RESERVE);
        assert_eq!(initial_capacity(Some(u64::MAX)), INITIAL_RESERVE);
    }

    #[tokio::test]
    async fn a_body_longer_than_the_reserve_is_read_whole() {
        let data = vec![7u8; INITIAL_RESERVE * 3 + 5];
        let mut h = headers(None);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(data.len()));
        let read = read_body(
            &h,
            Body::from(data.clone()),
            1 << 20,
            "the body",
            "--max-body",
        )
        .await
        .unwrap();
        assert_eq!(read, data);
    }
}

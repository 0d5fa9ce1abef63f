//! CORS for the origins the operator listed (`--cors-origin`), and no others. ms-enclave echoes
//! any origin with credentials and checks the key before answering preflights (so with a key,
//! browsers cannot call it at all; without one, any web page can drive it: reference §8.1.3).
//! Here preflights are answered before authentication, and an origin is echoed only if listed.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;

const ALLOW_METHODS: &str = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT";
const ALLOW_HEADERS: &str = "accept, content-type, x-api-key";
const MAX_AGE: &str = "600";

/// Middleware: answers preflights, and marks responses to listed origins as readable.
pub(crate) async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let allowed = origin
        .as_ref()
        .filter(|o| state.settings.cors_origins.contains(o))
        .cloned();
    if is_preflight(request.method(), request.headers()) {
        return match allowed {
            Some(origin) => preflight(origin),
            None => ApiError::plain(StatusCode::FORBIDDEN, "cors", "Disallowed CORS origin")
                .into_response(),
        };
    }
    let mut response = next.run(request).await;
    if let Some(origin) = allowed {
        allow(response.headers_mut(), origin);
    }
    response
}

/// A browser's preflight: `OPTIONS` with an `Origin` and the method it wants to use.
fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn preflight(origin: HeaderValue) -> Response {
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    allow(h, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    response
}

fn allow(h: &mut HeaderMap, origin: HeaderValue) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.append(header::VARY, HeaderValue::from_static("origin"));
}

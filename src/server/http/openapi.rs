//! `GET /openapi.json`: the OpenAPI 3 document of every route, written by hand beside this file
//! and served as it is (a test checks it lists exactly the routes the router serves).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const DOCUMENT: &str = include_str!("openapi.json");

pub(super) async fn document() -> Response {
    let mut response = DOCUMENT.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
pub(super) fn parsed() -> serde_json::Value {
    serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
}

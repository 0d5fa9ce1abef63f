//! Discovery: what kubectl and kube-rs read to map kinds to resources. Served in the legacy
//! (unaggregated) form, which the real server also serves when a client accepts plain JSON.
//!
//! What kubectl 1.32 and 1.33 ask for (seen with `FAKE_KUBE_LOG=1` and `-v=8`): `/version`,
//! `/openapi/v3` (404: kubectl then uses v2), `/openapi/v2` in protobuf (for client-side
//! validation), `/api` and `/apis` accepting aggregated discovery or plain JSON, `/api/v1`,
//! `/apis/networking.k8s.io/v1`; `describe` also lists events (404: kubectl prints none) and
//! `logs` reads `pods/{name}/log` (404: not modelled).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::{json_response, Shared};

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/version", get(|| answer(version())))
        .route("/api", get(|| answer(api_versions())))
        .route("/api/v1", get(|| answer(core_v1())))
        .route("/apis", get(|| answer(api_groups())))
        .route(
            "/apis/networking.k8s.io",
            get(|| answer(networking_group())),
        )
        .route(
            "/apis/networking.k8s.io/v1",
            get(|| answer(networking_v1())),
        )
        .route("/openapi/v2", get(openapi_v2))
}

/// An OpenAPI v2 document with no definitions, in the protobuf form kubectl asks for: kubectl's
/// client-side validation (on by default for `apply` and `create`) refuses to run without one,
/// and skips kinds the document does not describe. The fake describes none: validation is the
/// fake's own strictness, on the server side.
async fn openapi_v2() -> Response {
    // gnostic's openapi_v2.Document: swagger (1) = "2.0", info (2) = {title (1), version (2)}.
    let title = b"fake";
    let version = b"v1";
    let mut info = vec![0x0a, title.len() as u8];
    info.extend_from_slice(title);
    info.extend_from_slice(&[0x12, version.len() as u8]);
    info.extend_from_slice(version);
    let mut document = vec![0x0a, 3];
    document.extend_from_slice(b"2.0");
    document.extend_from_slice(&[0x12, info.len() as u8]);
    document.extend_from_slice(&info);
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        )],
        document,
    )
        .into_response()
}

async fn answer(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    })
}

fn resource(name: &str, singular: &str, kind: &str, verbs: &[&str], short: &[&str]) -> Value {
    let mut r = json!({
        "name": name,
        "singularName": singular,
        "namespaced": kind != "Namespace",
        "kind": kind,
        "verbs": verbs,
    });
    if !short.is_empty() {
        r["shortNames"] = json!(short);
    }
    r
}

fn core_v1() -> Value {
    let crud = ["create", "delete", "get", "list", "watch"];
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            resource("namespaces", "namespace", "Namespace", &["get", "list"], &["ns"]),
            {
                "name": "pods",
                "singularName": "pod",
                "namespaced": true,
                "kind": "Pod",
                "verbs": crud,
                "shortNames": ["po"],
                "categories": ["all"],
            },
            resource("pods/exec", "", "PodExecOptions", &["create", "get"], &[]),
        ],
    })
}

fn networking_group() -> Value {
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": "networking.k8s.io",
        "versions": [{"groupVersion": "networking.k8s.io/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "networking.k8s.io/v1", "version": "v1"},
    })
}

fn api_groups() -> Value {
    let mut group = networking_group();
    if let Some(g) = group.as_object_mut() {
        g.remove("kind");
        g.remove("apiVersion");
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]})
}

fn networking_v1() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "networking.k8s.io/v1",
        "resources": [resource(
            "networkpolicies",
            "networkpolicy",
            "NetworkPolicy",
            &["create", "delete", "get", "list"],
            &["netpol"],
        )],
    })
}

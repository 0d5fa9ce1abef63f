//! NetworkPolicies (networking.k8s.io/v1), stored; and the fake's model of their enforcement: a
//! pod created while a policy denying all its egress selects it gets no network at all.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use crate::podspec::{check_fields, is_dns_subdomain};
use crate::query::Params;
use crate::selectors::LabelSelector;
use crate::status::{ApiError, ApiResult};
use crate::store::{Key, Store};
use crate::{json_response, lifecycle, pods, Shared};

const BASE: &str = "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(BASE, get(list).post(create))
        .route(&format!("{BASE}/{{name}}"), get(get_one).delete(delete))
}

/// Whether a policy in `ns` selects `pod` and denies all its egress (and ingress, if it names
/// it): the fake then runs the pod with Docker network mode `none`.
pub(crate) fn isolates(store: &Store, ns: &str, pod: &Value) -> bool {
    store
        .policies
        .iter()
        .filter(|((policy_ns, _), _)| policy_ns == ns)
        .any(|(_, policy)| denies_egress(policy) && selects(policy, pod))
}

fn denies_egress(policy: &Value) -> bool {
    let spec = &policy["spec"];
    let types = spec["policyTypes"].as_array();
    let names_egress = types.is_some_and(|t| t.iter().any(|v| v == "Egress"));
    names_egress && spec["egress"].as_array().is_none_or(Vec::is_empty)
}

fn selects(policy: &Value, pod: &Value) -> bool {
    let labels = policy["spec"]["podSelector"]["matchLabels"].as_object();
    let pod_labels = &pod["metadata"]["labels"];
    labels.is_none_or(|wanted| wanted.iter().all(|(k, v)| &pod_labels[k] == v))
}

async fn create(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    RawQuery(query): RawQuery,
    body: bytes::Bytes,
) -> ApiResult<Response> {
    let params = Params::parse(
        query.as_deref(),
        &["fieldManager", "fieldValidation", "pretty", "dryRun"],
    )?;
    params.refuse_dry_run()?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let name = check_policy(&body, &ns)?;
    let key: Key = (ns.clone(), name.clone());
    let mut store = shared.store();
    if store.policies.contains_key(&key) {
        return Err(ApiError::already_exists(
            "networkpolicies.networking.k8s.io",
            &name,
        ));
    }
    let mut metadata = json!({
        "name": name,
        "namespace": ns,
        "uid": pods::new_uid(),
        "resourceVersion": "",
        "generation": 1,
        "creationTimestamp": lifecycle::now(),
    });
    for field in ["labels", "annotations"] {
        if let Some(v) = body["metadata"].get(field) {
            metadata[field] = v.clone();
        }
    }
    let mut policy = json!({
        "kind": "NetworkPolicy",
        "apiVersion": "networking.k8s.io/v1",
        "metadata": metadata,
        "spec": body["spec"],
    });
    store.bump(&mut policy);
    store.policies.insert(key, policy.clone());
    Ok(json_response(StatusCode::CREATED, &policy))
}

/// Checks a policy: only deny-all policies selecting by `matchLabels` are modelled.
fn check_policy(body: &Value, ns: &str) -> ApiResult<String> {
    let object = as_object(body, "the body")?;
    check_fields("", object, &["apiVersion", "kind", "metadata", "spec"])?;
    let metadata = as_object(&body["metadata"], "`metadata`")?;
    check_fields(
        "metadata.",
        metadata,
        &["name", "namespace", "labels", "annotations"],
    )?;
    if metadata.get("namespace").is_some_and(|n| n != ns) {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !is_dns_subdomain(&name) {
        return Err(ApiError::invalid(
            "NetworkPolicy",
            &name,
            "metadata.name",
            &format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of \
                 lower case alphanumeric characters, '-' or '.'"
            ),
        ));
    }
    let spec = as_object(&body["spec"], "`spec`")?;
    check_fields(
        "spec.",
        spec,
        &["podSelector", "policyTypes", "ingress", "egress"],
    )?;
    let selector = spec.get("podSelector").ok_or_else(|| {
        ApiError::invalid("NetworkPolicy", &name, "spec.podSelector", "Required value")
    })?;
    check_fields(
        "spec.podSelector.",
        as_object(selector, "`spec.podSelector`")?,
        &["matchLabels"],
    )?;
    for rules in ["ingress", "egress"] {
        if spec
            .get(rules)
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty())
        {
            return Err(ApiError::not_modelled(format!(
                "a NetworkPolicy with `spec.{rules}` rules (only deny-all policies are)"
            )));
        }
    }
    Ok(name)
}

fn as_object<'a>(value: &'a Value, what: &str) -> ApiResult<&'a Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| ApiError::bad_request(format!("{what} must be an object")))
}

async fn get_one(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    Params::parse(query.as_deref(), &["resourceVersion", "pretty"])?;
    let policy = shared
        .store()
        .policies
        .get(&(ns, name.clone()))
        .cloned()
        .ok_or_else(|| ApiError::not_found("networkpolicies.networking.k8s.io", &name))?;
    Ok(json_response(StatusCode::OK, &policy))
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(
        query.as_deref(),
        &[
            "labelSelector",
            "limit",
            "continue",
            "resourceVersion",
            "resourceVersionMatch",
            "pretty",
        ],
    )?;
    let selector = LabelSelector::parse(params.get("labelSelector"))?;
    let store = shared.store();
    let items: Vec<Value> = store
        .policies
        .iter()
        .filter(|((policy_ns, _), p)| policy_ns == &ns && selector.matches(p))
        .map(|(_, p)| p.clone())
        .collect();
    let (items, next) = pods::page(items, &params)?;
    let mut list = json!({
        "kind": "NetworkPolicyList",
        "apiVersion": "networking.k8s.io/v1",
        "metadata": {"resourceVersion": store.resource_version().to_string()},
        "items": items,
    });
    if let Some(token) = next {
        list["metadata"]["continue"] = json!(token);
    }
    Ok(json_response(StatusCode::OK, &list))
}

/// Deleting a policy does not reconnect running pods: enforcement is decided at pod creation.
async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    Params::parse(
        query.as_deref(),
        &["gracePeriodSeconds", "propagationPolicy", "pretty"],
    )?;
    let removed = shared.store().policies.remove(&(ns, name.clone()));
    match removed {
        Some(policy) => Ok(json_response(StatusCode::OK, &policy)),
        None => Err(ApiError::not_found(
            "networkpolicies.networking.k8s.io",
            &name,
        )),
    }
}

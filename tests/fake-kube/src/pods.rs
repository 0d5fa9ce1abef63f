//! The pod endpoints: create, get, list (and watch), delete; and the namespaces, which always
//! exist.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::lifecycle::{self, Launch};
use crate::query::Params;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::{Key, PodRecord};
use crate::{json_response, netpol, podspec, table, watch, Shared};

pub(crate) const POD_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.phase"];

const LIST_PARAMS: &[&str] = &[
    "labelSelector",
    "fieldSelector",
    "limit",
    "continue",
    "resourceVersion",
    "resourceVersionMatch",
    "timeoutSeconds",
    "watch",
    "allowWatchBookmarks",
    "sendInitialEvents",
    "includeObject",
    "pretty",
];

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/pods", get(list_all))
        .route("/api/v1/namespaces/{ns}/pods", get(list).post(create))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(get_one).delete(delete),
        )
        .route("/api/v1/namespaces", get(namespaces))
        .route("/api/v1/namespaces/{ns}", get(namespace))
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
    // Every well-formed namespace exists in the fake; no other can.
    if !podspec::is_dns_label(&ns) {
        return Err(ApiError::not_found("namespaces", &ns));
    }
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let plan = podspec::plan(&body, &ns)?;
    let key: Key = (ns.clone(), plan.name.clone());
    let unschedulable = shared.take_create_fault().is_some();
    let mut store = shared.store();
    if store.pods.contains_key(&key) {
        return Err(ApiError::already_exists("pods", &plan.name));
    }
    let mut object = stored_pod(&body, &ns, &plan.name);
    let isolated = netpol::isolates(&store, &ns, &object);
    store.bump(&mut object);
    store.publish("ADDED", &object);
    let launch = Launch {
        key: key.clone(),
        plan,
        isolated,
        unschedulable,
    };
    let task = tokio::spawn(lifecycle::run(shared.clone(), launch)).abort_handle();
    store.pods.insert(
        key,
        PodRecord {
            object: object.clone(),
            container: None,
            init_container: None,
            volumes: Vec::new(),
            lifecycle: Some(task),
        },
    );
    Ok(json_response(StatusCode::CREATED, &object))
}

/// The pod as the server stores it: server-set metadata and a Pending status.
fn stored_pod(body: &Value, ns: &str, name: &str) -> Value {
    let mut metadata = json!({
        "name": name,
        "namespace": ns,
        "uid": new_uid(),
        "resourceVersion": "",
        "creationTimestamp": lifecycle::now(),
    });
    for field in ["generateName", "labels", "annotations"] {
        if let Some(v) = body["metadata"].get(field) {
            metadata[field] = v.clone();
        }
    }
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": body["spec"],
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    })
}

pub(crate) fn new_uid() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

async fn get_one(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    Params::parse(query.as_deref(), &["resourceVersion", "pretty"])?;
    let object = shared
        .store()
        .pods
        .get(&(ns, name.clone()))
        .map(|r| r.object.clone())
        .ok_or_else(|| ApiError::not_found("pods", &name))?;
    if table::wants_table(&headers) {
        let rv = object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        return Ok(json_response(
            StatusCode::OK,
            &table::pods(&[object], &rv, true),
        ));
    }
    Ok(json_response(StatusCode::OK, &object))
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    list_in(shared, Some(ns), query, headers).await
}

async fn list_all(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    list_in(shared, None, query, headers).await
}

/// What a list or watch request selects.
pub(crate) struct Selection {
    pub(crate) namespace: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
}

impl Selection {
    pub(crate) fn matches(&self, pod: &Value) -> bool {
        let in_namespace = self
            .namespace
            .as_deref()
            .is_none_or(|ns| pod["metadata"]["namespace"] == ns);
        in_namespace && self.labels.matches(pod) && self.fields.matches(pod)
    }
}

async fn list_in(
    shared: Arc<Shared>,
    namespace: Option<String>,
    query: Option<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let params = Params::parse(query.as_deref(), LIST_PARAMS)?;
    let selection = Selection {
        namespace,
        labels: LabelSelector::parse(params.get("labelSelector"))?,
        fields: FieldSelector::parse(params.get("fieldSelector"), POD_FIELDS)?,
    };
    let as_table = table::wants_table(&headers);
    if params.flag("watch")? {
        return watch::pods(shared, selection, &params, as_table);
    }
    check_include_object(&params)?;
    let (items, rv) = {
        let store = shared.store();
        let items: Vec<Value> = store
            .pods
            .values()
            .map(|r| &r.object)
            .filter(|p| selection.matches(p))
            .cloned()
            .collect();
        (items, store.resource_version().to_string())
    };
    let (items, next) = page(items, &params)?;
    if as_table {
        let with_objects = params.get("includeObject") == Some("Object");
        let mut t = table::pods(&items, &rv, with_objects);
        if let Some(token) = next {
            t["metadata"]["continue"] = json!(token);
        }
        return Ok(json_response(StatusCode::OK, &t));
    }
    let mut list = json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": rv},
        "items": items,
    });
    if let Some(token) = next {
        list["metadata"]["continue"] = json!(token);
    }
    Ok(json_response(StatusCode::OK, &list))
}

pub(crate) fn check_include_object(params: &Params) -> ApiResult<()> {
    match params.get("includeObject") {
        None | Some("Object") | Some("Metadata") | Some("None") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid value {other:?} for `includeObject`"
        ))),
    }
}

/// `limit` and `continue`: the continue token is the offset of the next item.
pub(crate) fn page(items: Vec<Value>, params: &Params) -> ApiResult<(Vec<Value>, Option<String>)> {
    let start = match params.get("continue") {
        None | Some("") => 0,
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("continue key is not valid"))?,
    };
    let limit = params
        .number("limit")?
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let rest: Vec<Value> = items.into_iter().skip(start).collect();
    match limit {
        Some(limit) if rest.len() > limit => {
            let next = (start + limit).to_string();
            Ok((rest.into_iter().take(limit).collect(), Some(next)))
        }
        _ => Ok((rest, None)),
    }
}

async fn delete(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: bytes::Bytes,
) -> ApiResult<Response> {
    let params = Params::parse(
        query.as_deref(),
        &[
            "gracePeriodSeconds",
            "propagationPolicy",
            "pretty",
            "dryRun",
        ],
    )?;
    params.refuse_dry_run()?;
    let options = delete_options(&body)?;
    let key: Key = (ns, name.clone());
    let (record, grace) = {
        let mut store = shared.store();
        let Some(record) = store.pods.get(&key) else {
            return Err(ApiError::not_found("pods", &name));
        };
        let asked = params
            .number("gracePeriodSeconds")?
            .or(options["gracePeriodSeconds"].as_i64());
        let grace = effective_grace(&record.object, asked);
        if grace == 0 {
            let Some(record) = store.pods.remove(&key) else {
                return Err(ApiError::not_found("pods", &name));
            };
            (record, 0)
        } else {
            let mut object = record.object.clone();
            object["metadata"]["deletionTimestamp"] = json!(lifecycle::now());
            object["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            store.bump(&mut object);
            store.publish("MODIFIED", &object);
            let Some(record) = store.pods.get_mut(&key) else {
                return Err(ApiError::not_found("pods", &name));
            };
            record.object = object.clone();
            let shown = PodRecord {
                object,
                container: record.container.clone(),
                init_container: record.init_container.clone(),
                volumes: record.volumes.clone(),
                lifecycle: None,
            };
            (shown, grace)
        }
    };
    if grace == 0 {
        let object = finish_delete(&shared, record).await;
        return Ok(json_response(StatusCode::OK, &object));
    }
    let response = record.object.clone();
    let background = shared.clone();
    tokio::spawn(async move {
        stop_gracefully(&background, &key, grace).await;
        let record = background.store().pods.remove(&key);
        if let Some(record) = record {
            finish_delete(&background, record).await;
        }
    });
    Ok(json_response(StatusCode::OK, &response))
}

/// The grace period a delete gets, as the real server decides it: the request's, else the pod
/// spec's; none for a pod that no node runs (never scheduled, or already finished).
fn effective_grace(pod: &Value, asked: Option<i64>) -> i64 {
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if !pod["spec"]["nodeName"].is_string() || phase == "Succeeded" || phase == "Failed" {
        return 0;
    }
    let spec_grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_i64()
        .unwrap_or(30);
    asked.unwrap_or(spec_grace).max(0)
}

/// The DeleteOptions body: `gracePeriodSeconds` and `propagationPolicy` (no owners exist in the
/// fake, so it has no effect) are modelled; anything else is refused.
fn delete_options(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let options: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the DeleteOptions body is not JSON: {e}")))?;
    let object = options
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the DeleteOptions body is not an object"))?;
    podspec::check_fields(
        "DeleteOptions.",
        object,
        &[
            "kind",
            "apiVersion",
            "gracePeriodSeconds",
            "propagationPolicy",
        ],
    )?;
    Ok(options)
}

async fn stop_gracefully(shared: &Shared, key: &Key, grace: i64) {
    let containers: Vec<String> = shared
        .store()
        .pods
        .get(key)
        .map(|r| {
            r.container
                .iter()
                .chain(&r.init_container)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for id in containers {
        let options = bollard::query_parameters::StopContainerOptions {
            signal: None,
            t: Some(grace.min(i64::from(i32::MAX)) as i32),
        };
        let _ = shared.docker.stop_container(&id, Some(options)).await;
    }
}

/// Stops the pod's life, removes its containers and volumes and tells the watches it is gone;
/// returns the pod's last state.
async fn finish_delete(shared: &Shared, record: PodRecord) -> Value {
    if let Some(task) = &record.lifecycle {
        task.abort();
    }
    for id in record.container.iter().chain(&record.init_container) {
        if let Err(e) = crate::docker::remove(&shared.docker, id).await {
            eprintln!("fake-kube: {e:#}");
        }
    }
    // After the containers, which would keep a volume in use.
    for volume in &record.volumes {
        if let Err(e) = crate::docker::remove_volume(&shared.docker, volume).await {
            eprintln!("fake-kube: {e:#}");
        }
    }
    let mut store = shared.store();
    let mut object = record.object;
    if !object["metadata"]["deletionTimestamp"].is_string() {
        object["metadata"]["deletionTimestamp"] = json!(lifecycle::now());
        object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    }
    store.bump(&mut object);
    store.publish("DELETED", &object);
    object
}

async fn namespaces(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    Params::parse(query.as_deref(), &["limit", "resourceVersion", "pretty"])?;
    let store = shared.store();
    let mut names: Vec<&str> = store.pods.keys().map(|(ns, _)| ns.as_str()).collect();
    names.push("default");
    names.sort_unstable();
    names.dedup();
    let items: Vec<Value> = names.into_iter().map(namespace_object).collect();
    let list = json!({
        "kind": "NamespaceList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": store.resource_version().to_string()},
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &list))
}

async fn namespace(Path(ns): Path<String>, RawQuery(query): RawQuery) -> ApiResult<Response> {
    Params::parse(query.as_deref(), &["resourceVersion", "pretty"])?;
    if !podspec::is_dns_label(&ns) {
        return Err(ApiError::not_found("namespaces", &ns));
    }
    Ok(json_response(StatusCode::OK, &namespace_object(&ns)))
}

/// Every namespace exists in the fake and is Active.
fn namespace_object(name: &str) -> Value {
    json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name, "resourceVersion": "1"},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

//! kubectl's default printing: the server renders pods as a `meta.k8s.io/v1` Table.

use axum::http::HeaderMap;
use serde_json::{json, Value};

/// Whether the client asked for a Table (kubectl's `Accept: application/json;as=Table;...`).
pub(crate) fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next()
        .is_some_and(|first| first.contains("as=Table") && first.contains("g=meta.k8s.io"))
}

/// The pods as a Table with the real server's columns; with `with_objects`, each row carries the
/// whole pod (`includeObject=Object`), otherwise its metadata as a PartialObjectMetadata.
pub(crate) fn pods(items: &[Value], resource_version: &str, with_objects: bool) -> Value {
    let column = |name: &str, format: &str, description: &str| {
        json!({
            "name": name,
            "type": "string",
            "format": format,
            "description": description,
            "priority": 0,
        })
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            column("Name", "name", "Name must be unique within a namespace."),
            column("Ready", "", "The aggregate readiness state of this pod."),
            column("Status", "", "The aggregate status of the containers in this pod."),
            column("Restarts", "", "The number of times the containers have been restarted."),
            column("Age", "", "The time since the pod was created."),
        ],
        "rows": items.iter().map(|pod| row(pod, with_objects)).collect::<Vec<_>>(),
    })
}

fn row(pod: &Value, with_object: bool) -> Value {
    let object = if with_object {
        pod.clone()
    } else {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": pod["metadata"]})
    };
    let ready = pod["status"]["containerStatuses"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|c| c["ready"] == true).count());
    let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    json!({
        "cells": [
            pod["metadata"]["name"],
            format!("{ready}/{total}"),
            display_status(pod),
            "0",
            age(pod["metadata"]["creationTimestamp"].as_str()),
        ],
        "object": object,
    })
}

/// The STATUS column as the real server's printer makes it: the phase (or `status.reason`),
/// then the first init container not completed (`Init:0/1`, `Init:Error`,
/// `Init:ImagePullBackOff`), else the container's waiting or terminated reason; `Terminating`
/// over all of it.
fn display_status(pod: &Value) -> String {
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".into();
    }
    if let Some(reason) = init_status(pod) {
        return reason;
    }
    if let Some(reason) = pod["status"]["reason"].as_str() {
        return reason.into();
    }
    let state = &pod["status"]["containerStatuses"][0]["state"];
    if let Some(reason) = state["waiting"]["reason"].as_str() {
        return reason.into();
    }
    if let Some(reason) = state["terminated"]["reason"].as_str() {
        return reason.into();
    }
    pod["status"]["phase"].as_str().unwrap_or("Unknown").into()
}

/// What the printer shows for the first init container that has not completed, if any.
fn init_status(pod: &Value) -> Option<String> {
    let statuses = pod["status"]["initContainerStatuses"].as_array()?;
    let total = pod["spec"]["initContainers"].as_array().map_or(0, Vec::len);
    for (i, status) in statuses.iter().enumerate() {
        let state = &status["state"];
        let terminated = &state["terminated"];
        if terminated.is_object() {
            if terminated["exitCode"] == 0 {
                continue;
            }
            return Some(match terminated["reason"].as_str() {
                Some(reason) if !reason.is_empty() => format!("Init:{reason}"),
                _ => format!("Init:ExitCode:{}", terminated["exitCode"]),
            });
        }
        return Some(match state["waiting"]["reason"].as_str() {
            Some(reason) if !reason.is_empty() && reason != "PodInitializing" => {
                format!("Init:{reason}")
            }
            _ => format!("Init:{i}/{total}"),
        });
    }
    None
}

/// A short age as kubectl prints it: `5s`, `3m`, `2h`, `4d`.
fn age(created: Option<&str>) -> String {
    let Some(created) = created.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()) else {
        return "<unknown>".into();
    };
    let seconds = (chrono::Utc::now() - created.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

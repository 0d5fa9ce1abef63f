//! Pod watches: newline-delimited `{"type": ..., "object": ...}` events, as the real server
//! streams them.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use crate::pods::{check_include_object, Selection};
use crate::query::Params;
use crate::status::{ApiError, ApiResult};
use crate::store::{key_of, Key, PodEvent};
use crate::{table, Shared};

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

struct WatchOptions {
    timeout: Option<Duration>,
    bookmarks: bool,
    initial_events_end: bool,
    as_table: bool,
    table_objects: bool,
}

/// Starts a watch over the pods `selection` picks.
pub(crate) fn pods(
    shared: Arc<Shared>,
    selection: Selection,
    params: &Params,
    as_table: bool,
) -> ApiResult<Response> {
    check_include_object(params)?;
    let options = WatchOptions {
        timeout: params
            .number("timeoutSeconds")?
            .map(|s| Duration::from_secs(s.max(0) as u64)),
        bookmarks: params.flag("allowWatchBookmarks")?,
        initial_events_end: params.flag("sendInitialEvents")?,
        as_table,
        table_objects: params.get("includeObject") == Some("Object"),
    };
    if options.initial_events_end && !options.bookmarks {
        return Err(ApiError::invalid(
            "ListOptions",
            "",
            "allowWatchBookmarks",
            "Required value: allowWatchBookmarks must be set to true when sendInitialEvents is true",
        ));
    }
    let from = match params.get("resourceVersion") {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?,
        ),
    };
    // sendInitialEvents asks for the current state first, whatever the version.
    let from = if options.initial_events_end {
        None
    } else {
        from
    };
    let start = start(&shared, &selection, from);
    let (tx, rx) = mpsc::channel::<Result<String, Infallible>>(64);
    let stopped = shared.stopped.subscribe();
    tokio::spawn(stream_events(selection, options, start, tx, stopped));
    let body = Body::from_stream(tokio_stream_from(rx));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

type Start = (
    Vec<PodEvent>,
    broadcast::Receiver<PodEvent>,
    u64,
    HashSet<Key>,
);

/// The events to send first, and the receiver of the later ones.
fn start(shared: &Shared, selection: &Selection, from: Option<u64>) -> Start {
    let store = shared.store();
    let rv = store.resource_version();
    match from {
        Some(version) => {
            let (past, receiver) = store.follow_from(version);
            let known = store.known_at(version, |pod| selection.matches(pod));
            (past, receiver, version, known)
        }
        None => {
            let current = store
                .pods
                .values()
                .filter(|r| selection.matches(&r.object))
                .map(|r| PodEvent {
                    kind: "ADDED",
                    object: r.object.clone(),
                    resource_version: rv,
                })
                .collect();
            (current, store.subscribe(), rv, HashSet::new())
        }
    }
}

async fn stream_events(
    selection: Selection,
    options: WatchOptions,
    (initial, mut receiver, start_rv, mut inside): Start,
    tx: mpsc::Sender<Result<String, Infallible>>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let deadline = options.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut last_rv = start_rv;
    for event in initial {
        last_rv = last_rv.max(event.resource_version);
        if !send_event(&selection, &options, &mut inside, &event, &tx).await {
            return;
        }
    }
    if options.initial_events_end {
        let bookmark = bookmark(last_rv, true);
        if tx.send(Ok(bookmark)).await.is_err() {
            return;
        }
    }
    let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
    ticker.tick().await;
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = until_deadline => return,
            _ = async { stopped.wait_for(|s| *s).await.is_ok() } => return,
            _ = ticker.tick(), if options.bookmarks => {
                if tx.send(Ok(bookmark(last_rv, false))).await.is_err() {
                    return;
                }
            }
            event = receiver.recv() => match event {
                Ok(event) => {
                    last_rv = event.resource_version;
                    if !send_event(&selection, &options, &mut inside, &event, &tx).await {
                        return;
                    }
                }
                // The fake keeps up to 4096 unread events per watch; past that a real server
                // would also end the watch (410 Gone on the next one).
                Err(_) => return,
            },
        }
    }
}

/// Sends an event as this watcher sees it: a pod entering the selection is ADDED to it, one
/// leaving it is DELETED from it, as the real server does for selector watches.
async fn send_event(
    selection: &Selection,
    options: &WatchOptions,
    inside: &mut HashSet<Key>,
    event: &PodEvent,
    tx: &mpsc::Sender<Result<String, Infallible>>,
) -> bool {
    let key = key_of(&event.object);
    let matches = selection.matches(&event.object);
    let was_inside = inside.contains(&key);
    let kind = match (event.kind, matches, was_inside) {
        ("DELETED", _, _) if was_inside || matches => "DELETED",
        (_, true, true) => "MODIFIED",
        (_, true, false) => "ADDED",
        (_, false, true) => "DELETED",
        _ => return true,
    };
    if kind == "DELETED" {
        inside.remove(&key);
    } else {
        inside.insert(key);
    }
    let rv = event.object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default();
    let object = if options.as_table {
        table::pods(
            std::slice::from_ref(&event.object),
            rv,
            options.table_objects,
        )
    } else {
        event.object.clone()
    };
    let line = format!("{}\n", json!({"type": kind, "object": object}));
    tx.send(Ok(line)).await.is_ok()
}

fn bookmark(rv: u64, initial_events_end: bool) -> String {
    let mut object = json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": rv.to_string()},
    });
    if initial_events_end {
        object["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    format!("{}\n", json!({"type": "BOOKMARK", "object": object}))
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<String, Infallible>>,
) -> impl futures_util::Stream<Item = Result<String, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

//! The fake's object store: pods and network policies, one resourceVersion counter for all, and
//! the history of pod events that watches replay and follow.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tokio::sync::broadcast;

/// A pod event as a watch sends it.
#[derive(Debug, Clone)]
pub(crate) struct PodEvent {
    pub(crate) kind: &'static str,
    pub(crate) object: Value,
    pub(crate) resource_version: u64,
}

/// A pod and what the fake knows about it beyond its JSON.
#[derive(Debug)]
pub(crate) struct PodRecord {
    pub(crate) object: Value,
    pub(crate) container: Option<String>,
    /// The init container running now, if any.
    pub(crate) init_container: Option<String>,
    /// The Docker volumes made for the pod's `emptyDir`s, removed with it.
    pub(crate) volumes: Vec<String>,
    pub(crate) lifecycle: Option<tokio::task::AbortHandle>,
}

/// `(namespace, name)`.
pub(crate) type Key = (String, String);

#[derive(Debug)]
pub(crate) struct Store {
    resource_version: u64,
    pub(crate) pods: BTreeMap<Key, PodRecord>,
    pub(crate) policies: BTreeMap<Key, Value>,
    history: Vec<PodEvent>,
    events: broadcast::Sender<PodEvent>,
}

impl Store {
    pub(crate) fn new() -> Self {
        Self {
            resource_version: 1,
            pods: BTreeMap::new(),
            policies: BTreeMap::new(),
            history: Vec::new(),
            events: broadcast::channel(4096).0,
        }
    }

    pub(crate) fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// Gives the object the next resourceVersion.
    pub(crate) fn bump(&mut self, object: &mut Value) -> u64 {
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.resource_version
    }

    /// Records a pod event and tells the watches.
    pub(crate) fn publish(&mut self, kind: &'static str, object: &Value) {
        let resource_version = object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.resource_version);
        let event = PodEvent {
            kind,
            object: object.clone(),
            resource_version,
        };
        self.history.push(event.clone());
        // No receiver is fine: nobody watches.
        let _ = self.events.send(event);
    }

    /// The events after `resource_version`, and a receiver for those still to come; taken under
    /// one lock so that no event falls between the two.
    pub(crate) fn follow_from(
        &self,
        resource_version: u64,
    ) -> (Vec<PodEvent>, broadcast::Receiver<PodEvent>) {
        let past = self
            .history
            .iter()
            .filter(|e| e.resource_version > resource_version)
            .cloned()
            .collect();
        (past, self.events.subscribe())
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<PodEvent> {
        self.events.subscribe()
    }

    /// The pods that existed at `resource_version` and `pick` selected then: what a watch that
    /// resumes from that version already knows.
    pub(crate) fn known_at(
        &self,
        resource_version: u64,
        pick: impl Fn(&Value) -> bool,
    ) -> std::collections::HashSet<Key> {
        let mut latest: BTreeMap<Key, &PodEvent> = BTreeMap::new();
        for event in self
            .history
            .iter()
            .filter(|e| e.resource_version <= resource_version)
        {
            latest.insert(key_of(&event.object), event);
        }
        latest
            .into_iter()
            .filter(|(_, e)| e.kind != "DELETED" && pick(&e.object))
            .map(|(k, _)| k)
            .collect()
    }
}

pub(crate) fn key_of(object: &Value) -> Key {
    let text = |field: &str| {
        object["metadata"][field]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    (text("namespace"), text("name"))
}

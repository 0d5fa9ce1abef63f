//! One Kubernetes cluster, through kube-rs: connecting (a kubeconfig context, or the service
//! account of the Pod this process runs in), making a sandbox's objects and waiting until its Pod
//! runs, finding sandbox Pods by their labels, and deleting them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::manifest::pod_name;
use super::pod::PodSandbox;
use super::status::{self, Readiness};
use crate::backend::Backend;
use crate::error::Error;
use crate::model::{DockerSandboxConfig, SandboxStatus, SandboxType};

/// How long one watch request may stay open before it is made again.
const WATCH_WINDOW: Duration = Duration::from_secs(60);
/// How long connecting and the first answer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to one cluster.
#[derive(Clone)]
pub(crate) struct Cluster {
    client: kube::Client,
    /// The kubeconfig context it came from; `None` in a cluster (service-account credentials).
    context: Option<String>,
    /// Where the API server is, for messages.
    address: String,
}

/// A sandbox Pod as its labels and annotations describe it.
#[derive(Debug, Clone)]
pub(crate) struct PodRecord {
    pub(crate) sandbox_id: String,
    pub(crate) pod: String,
    pub(crate) namespace: String,
    pub(crate) status: SandboxStatus,
    /// For a Pod that does not run: why, in the cluster's words.
    pub(crate) why: Option<String>,
    pub(crate) sandbox_type: SandboxType,
    pub(crate) image: String,
    pub(crate) tools: Vec<String>,
    pub(crate) config: Option<DockerSandboxConfig>,
    pub(crate) created: Option<DateTime<Utc>>,
    /// The creator's labels: everything but the `enclave.id/type/owner` ones.
    pub(crate) extra_labels: BTreeMap<String, String>,
}

impl PodRecord {
    /// A Pod just seen running, as a create leaves it.
    pub(crate) fn running(sandbox_id: &str, pod: &str, namespace: &str) -> Self {
        PodRecord {
            sandbox_id: sandbox_id.to_string(),
            pod: pod.to_string(),
            namespace: namespace.to_string(),
            status: SandboxStatus::Running,
            why: None,
            sandbox_type: SandboxType::Docker,
            image: String::new(),
            tools: Vec::new(),
            config: None,
            created: None,
            extra_labels: BTreeMap::new(),
        }
    }
}

impl Cluster {
    /// Connects through the kubeconfig (`KUBECONFIG`, else `~/.kube/config`) and `context` (its
    /// current one when `None`); without a kubeconfig and no context asked for, through the
    /// service account of the Pod this process runs in.
    pub(crate) async fn connect(context: Option<&str>) -> Result<Self> {
        let (config, context) = match Kubeconfig::read() {
            Ok(kubeconfig) => {
                let chosen = context
                    .map(str::to_string)
                    .or_else(|| kubeconfig.current_context.clone());
                let options = KubeConfigOptions {
                    context: chosen.clone(),
                    ..Default::default()
                };
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| unconfigured(&format!("{e}")))?;
                (config, chosen)
            }
            Err(e) if context.is_some() => return Err(unconfigured(&format!("{e}")).into()),
            Err(kubeconfig) => match kube::Config::incluster() {
                Ok(config) => (config, None),
                Err(in_cluster) => {
                    return Err(unconfigured(&format!(
                        "no kubeconfig ({kubeconfig}) and not in a cluster ({in_cluster})"
                    ))
                    .into())
                }
            },
        };
        let address = config.cluster_url.to_string();
        let mut config = config;
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        let client = kube::Client::try_from(config).map_err(|e| unconfigured(&format!("{e}")))?;
        Ok(Cluster {
            client,
            context,
            address: address.trim_end_matches('/').to_string(),
        })
    }

    /// The kubeconfig context, `None` in a cluster.
    pub(crate) fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// The namespace the context (or the service account) defaults to.
    pub(crate) fn default_namespace(&self) -> &str {
        self.client.default_namespace()
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// The API server's version (`v1.33.1`): proves it answers and accepts our credentials.
    pub(crate) async fn version(&self) -> Result<String> {
        let info = tokio::time::timeout(CONNECT_TIMEOUT, self.client.apiserver_version())
            .await
            .map_err(|_| self.unavailable("no answer within 10 s"))?
            .map_err(|e| self.api_error(e, "asking the API server its version"))?;
        Ok(info.git_version)
    }

    /// One sandbox Pod, as a `Backend`.
    pub(crate) fn sandbox(&self, namespace: &str, sandbox_id: &str) -> PodSandbox {
        PodSandbox::new(self.client.clone(), namespace, &pod_name(sandbox_id))
    }

    /// Sends `manifests` (a Pod and perhaps its NetworkPolicy, from `manifests()`) and waits,
    /// up to `patience`, until the Pod's container runs. A Pod that will not come (its image
    /// cannot be pulled, it cannot be scheduled), a cancel, or the time running out removes
    /// what was made and says why.
    pub(crate) async fn create(
        &self,
        namespace: &str,
        sandbox_id: &str,
        manifests: Vec<Value>,
        patience: Duration,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let made = async {
            // The policy first: the Pod never runs a moment with the network it must not have.
            for manifest in manifests.iter().rev() {
                self.send(namespace, manifest).await?;
            }
            self.wait_running(namespace, &pod_name(sandbox_id), patience)
                .await
        };
        let made = tokio::select! {
            biased;
            made = made => made,
            () = cancel.cancelled() => Err(anyhow::anyhow!("cancelled before the sandbox was ready")),
        };
        if made.is_err() {
            let _ = self.delete(namespace, sandbox_id).await;
        }
        made
    }

    async fn send(&self, namespace: &str, manifest: &Value) -> Result<()> {
        let post = PostParams::default();
        match manifest["kind"].as_str() {
            Some("Pod") => {
                let pod: Pod = serde_json::from_value(manifest.clone())?;
                Api::<Pod>::namespaced(self.client.clone(), namespace)
                    .create(&post, &pod)
                    .await
                    .map_err(|e| self.refused(e, "creating the sandbox's Pod"))?;
            }
            Some("NetworkPolicy") => {
                let policy: NetworkPolicy = serde_json::from_value(manifest.clone())?;
                Api::<NetworkPolicy>::namespaced(self.client.clone(), namespace)
                    .create(&post, &policy)
                    .await
                    .map_err(|e| self.refused(e, "creating the sandbox's NetworkPolicy"))?;
            }
            other => anyhow::bail!("no way to send a manifest of kind {other:?}"),
        }
        Ok(())
    }

    /// Follows the Pod until its container runs, it will not, or `patience` runs out.
    async fn wait_running(&self, namespace: &str, pod: &str, patience: Duration) -> Result<()> {
        let api = Api::<Pod>::namespaced(self.client.clone(), namespace);
        let mut last = "Pending".to_string();
        let follow = async {
            loop {
                // A fresh look first: the watch starts after it, so nothing is missed between.
                let now = api
                    .get_opt(pod)
                    .await
                    .map_err(|e| self.api_error(e, "reading the sandbox's Pod"))?
                    .ok_or_else(|| anyhow::anyhow!("the Pod {pod} was deleted while starting"))?;
                let version = now.metadata.resource_version.clone().unwrap_or_default();
                match readiness_of(&now) {
                    Readiness::Ready => return Ok(()),
                    Readiness::Failed(why) => return Err(not_started(pod, &why)),
                    Readiness::Waiting(what) => last = what,
                }
                let params = WatchParams::default()
                    .fields(&format!("metadata.name={pod}"))
                    .timeout(WATCH_WINDOW.as_secs() as u32);
                let events = api
                    .watch(&params, &version)
                    .await
                    .map_err(|e| self.api_error(e, "watching the sandbox's Pod"))?;
                let mut events = events.boxed();
                while let Some(event) = events
                    .try_next()
                    .await
                    .map_err(|e| self.api_error(e, "watching the sandbox's Pod"))?
                {
                    match event {
                        WatchEvent::Added(p) | WatchEvent::Modified(p) => match readiness_of(&p) {
                            Readiness::Ready => return Ok(()),
                            Readiness::Failed(why) => return Err(not_started(pod, &why)),
                            Readiness::Waiting(what) => last = what,
                        },
                        WatchEvent::Deleted(_) => {
                            anyhow::bail!("the Pod {pod} was deleted while starting")
                        }
                        WatchEvent::Bookmark(_) => {}
                        // The version is too old (410 Gone): look again and watch anew.
                        WatchEvent::Error(_) => break,
                    }
                }
            }
        };
        match tokio::time::timeout(patience, follow).await {
            Ok(done) => done,
            Err(_) => Err(not_started(
                pod,
                &format!(
                    "it did not run within {} s (last seen: {last})",
                    patience.as_secs()
                ),
            )),
        }
    }

    /// The sandbox Pods in `namespace` (those with an `enclave.id` label).
    pub(crate) async fn pods(&self, namespace: &str) -> Result<Vec<PodRecord>> {
        let params = ListParams::default().labels("enclave.id");
        let list = Api::<Pod>::namespaced(self.client.clone(), namespace)
            .list(&params)
            .await
            .map_err(|e| self.api_error(e, "listing sandbox Pods"))?;
        Ok(list.items.iter().filter_map(record_of).collect())
    }

    /// The sandbox's Pod; `None` when it is gone.
    pub(crate) async fn pod(&self, namespace: &str, sandbox_id: &str) -> Result<Option<PodRecord>> {
        let pod = Api::<Pod>::namespaced(self.client.clone(), namespace)
            .get_opt(&pod_name(sandbox_id))
            .await
            .map_err(|e| self.api_error(e, "reading the sandbox's Pod"))?;
        Ok(pod.as_ref().and_then(record_of))
    }

    /// Deletes the sandbox's Pod at once (no grace period, as `docker rm -f`) and its
    /// NetworkPolicy; `false` when the Pod was already gone. The same removal as the Pod's own
    /// `Backend::remove`.
    pub(crate) async fn delete(&self, namespace: &str, sandbox_id: &str) -> Result<bool> {
        self.sandbox(namespace, sandbox_id).remove().await
    }

    /// An API server's refusal of a create, in words (quota, RBAC, an invalid Pod).
    fn refused(&self, err: kube::Error, doing: &str) -> anyhow::Error {
        match err {
            kube::Error::Api(status) => {
                let body = serde_json::to_value(&*status).unwrap_or_default();
                let mut body = body;
                body["kind"] = "Status".into();
                body["status"] = "Failure".into();
                let words = status::refusal(&body).unwrap_or_else(|| status.message.clone());
                anyhow::Error::new(Error::Refused {
                    by: "the Kubernetes API server".into(),
                    message: words,
                })
                .context(doing.to_string())
            }
            other => self.api_error(other, doing),
        }
    }

    /// A kube error as a domain error: refusals keep the API server's words, a server that does
    /// not answer is `Unavailable`.
    fn api_error(&self, err: kube::Error, doing: &str) -> anyhow::Error {
        let domain: anyhow::Error = match err {
            kube::Error::Api(status) => {
                let message = if status.message.is_empty() {
                    format!("HTTP {} {}", status.code, status.reason)
                } else {
                    status.message.clone()
                };
                Error::Refused {
                    by: "the Kubernetes API server".into(),
                    message,
                }
                .into()
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) => {
                self.unavailable(&err.to_string()).into()
            }
            other => anyhow::Error::new(other),
        };
        domain.context(doing.to_string())
    }

    fn unavailable(&self, detail: &str) -> Error {
        Error::Unavailable {
            kind: "kubernetes_unavailable",
            what: "the Kubernetes API server".into(),
            detail: format!("{}: {detail}", self.address),
            hint: "check that the cluster runs and the kubeconfig context points at it \
                   (`kubectl cluster-info`)"
                .into(),
        }
    }
}

/// No way to reach a cluster was configured.
fn unconfigured(detail: &str) -> Error {
    Error::Unavailable {
        kind: "kubernetes_unavailable",
        what: "a Kubernetes cluster".into(),
        detail: detail.to_string(),
        hint: "set KUBECONFIG (or write ~/.kube/config), pick a context with --context, or run \
               inside a cluster with a service account (see docs/kubernetes.md)"
            .into(),
    }
}

fn not_started(pod: &str, why: &str) -> anyhow::Error {
    anyhow::anyhow!("the sandbox's Pod {pod} did not start: {why}")
}

fn readiness_of(pod: &Pod) -> Readiness {
    status::readiness(&serde_json::to_value(pod).unwrap_or_default())
}

/// A sandbox Pod's record; `None` for a Pod without our labels.
fn record_of(pod: &Pod) -> Option<PodRecord> {
    let json = serde_json::to_value(pod).ok()?;
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let sandbox_id = labels.get("enclave.id")?.clone();
    let status = status::sandbox_status(&json);
    let why = match status::readiness(&json) {
        Readiness::Failed(why) => Some(why),
        _ => None,
    };
    let config = annotations
        .get("enclave.config")
        .and_then(|c| DockerSandboxConfig::from_json(c).ok());
    let image = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let tools = annotations
        .get("enclave.tools")
        .map(|t| {
            t.split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let created = annotations
        .get("enclave.created")
        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        .map(|c| c.with_timezone(&Utc))
        .or_else(|| {
            let t = pod.metadata.creation_timestamp.as_ref()?;
            DateTime::from_timestamp_millis(t.0.as_millisecond())
        });
    let extra_labels = labels
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "enclave.id" | "enclave.type" | "enclave.owner"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Some(PodRecord {
        pod: pod.metadata.name.clone().unwrap_or_default(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        status,
        why,
        sandbox_type: labels
            .get("enclave.type")
            .and_then(|t| SandboxType::parse(t))
            .unwrap_or(SandboxType::Docker),
        image,
        tools,
        config,
        created,
        extra_labels,
        sandbox_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_made_from_our_manifest_reads_back_as_its_sandbox() {
        let config = DockerSandboxConfig {
            image: "python:3.11-slim".into(),
            ..Default::default()
        };
        let tools = vec!["python_executor".to_string(), "shell_executor".to_string()];
        let extra = vec![("team".to_string(), "ml".to_string())];
        let created = Utc::now();
        let plan = super::super::PodPlan {
            id: "k3x9",
            namespace: "sandboxes",
            sandbox_type: SandboxType::Docker,
            config: &config,
            tools: &tools,
            created,
            owner: "me",
            extra_labels: &extra,
            ttl: None,
            agent_image: None,
        };
        let manifest = super::super::manifests(&plan).unwrap().remove(0);
        let mut pod: Pod = serde_json::from_value(manifest).unwrap();
        pod.status = serde_json::from_value(serde_json::json!({
            "phase": "Running",
            "containerStatuses": [{"name": "sandbox", "image": "python:3.11-slim", "imageID": "",
              "ready": true, "restartCount": 0, "state": {"running": {}}}]
        }))
        .unwrap();
        let record = record_of(&pod).unwrap();
        assert_eq!(record.sandbox_id, "k3x9");
        assert_eq!(record.pod, "enclave-k3x9");
        assert_eq!(record.namespace, "sandboxes");
        assert_eq!(record.status, SandboxStatus::Running);
        assert_eq!(record.tools, tools);
        assert_eq!(record.image, "python:3.11-slim");
        assert_eq!(record.config.unwrap().image, "python:3.11-slim");
        assert_eq!(
            record.created.unwrap().timestamp_millis(),
            created.timestamp_millis()
        );
        assert_eq!(
            record.extra_labels.get("team").map(String::as_str),
            Some("ml")
        );
        assert!(!record.extra_labels.contains_key("enclave.owner"));
    }

    #[test]
    fn a_pod_without_our_label_is_not_a_sandbox() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "labels": {"app": "web"}}
        }))
        .unwrap();
        assert!(record_of(&pod).is_none());
    }
}

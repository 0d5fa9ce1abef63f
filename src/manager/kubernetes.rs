//! `KubeManager`: sandboxes as Pods in one namespace of a Kubernetes cluster, recorded in the
//! local state file. The Pods' labels stay the source of truth, as containers' labels are on
//! Docker: a Pod the state file does not hold is still listed, found and removable, and a
//! server re-adopts its Pods from them after a restart.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use indexmap::IndexMap;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::agents::Connections;
use super::expiry::{self, IdleExpiry};
use super::Warn;
use super::{records, tool_call, CreateRequest, Health, Manager, ToolCall};
use crate::backend::agent::AgentSandbox;
use crate::backend::kubernetes::{self as k8s, manifests, Cluster, PodPlan, PodRecord};
use crate::backend::Backend;
use crate::error::Error;
use crate::model::{
    new_sandbox_id, AgentInfo, ArchiveStream, ExecOutcome, ExecSpec, Location, OutputSink,
    PullObserver, Removed, Sandbox, SandboxInfo, SandboxStatus, SandboxType, ToolResult,
};
use crate::session::{self, Session, SessionOptions};
use crate::state::{AgentSocket, SandboxRecord, StateStore};
use crate::tools::ToolSet;

/// How long a new Pod may take to run (scheduling, pulling its image) before the create gives
/// up; a Pod that is stuck for good (no such image, unschedulable) is given up on at once.
const START_PATIENCE: Duration = Duration::from_secs(180);
/// The server's label for a sandbox's time to live, in seconds: the Pod's deadline too.
const LABEL_TTL: &str = "enclave.ttl";
/// `ENCLAVE_AGENT=off`: new sandboxes run without the agent (every command its own exec).
const AGENT_ENV: &str = "ENCLAVE_AGENT";
/// An existing Pod's agent listens already: one try, then a command goes by plain exec.
const AGENT_PATIENCE: Duration = Duration::ZERO;

pub struct KubeManager {
    cluster: Cluster,
    /// Where new sandboxes go and which `list` reads.
    namespace: String,
    state: StateStore,
    owner: String,
    warn: Warn,
    notes: Warn,
    /// When this process last recorded each sandbox's use, for idle expiry (`expiry.rs`).
    expiry: IdleExpiry,
    /// One connection to each Pod's agent (one exec carrying its protocol), reused by every call.
    connections: Connections,
    /// An image holding the agent, which an init container copies it from; `None`: the agent is
    /// copied in over exec.
    agent_image: Option<String>,
}

impl KubeManager {
    /// Sandboxes in `namespace` (the context's own when `None`) of the cluster `context` names
    /// (the kubeconfig's current one, or the cluster this runs in, when `None`).
    pub async fn connect(
        context: Option<&str>,
        namespace: Option<&str>,
        state: StateStore,
    ) -> Result<Self> {
        let cluster = Cluster::connect(context).await?;
        let namespace = namespace.unwrap_or(cluster.default_namespace()).to_string();
        Ok(KubeManager {
            owner: state.owner(),
            cluster,
            namespace,
            state,
            warn: Arc::new(|_| {}),
            notes: Arc::new(|_| {}),
            expiry: IdleExpiry::default(),
            connections: Connections::default(),
            agent_image: None,
        })
    }

    /// Sends notes for the user (a sandbox removed for being idle) to `warn`.
    #[must_use]
    pub fn with_warnings(mut self, warn: Warn) -> Self {
        self.warn = warn;
        self
    }

    /// Sends notes for `-v` (or the server's log) to `notes`.
    #[must_use]
    pub fn with_notes(mut self, notes: Warn) -> Self {
        self.notes = notes;
        self
    }

    /// Puts the agent into new Pods from `image` by an init container, instead of copying it in
    /// over exec.
    #[must_use]
    pub fn with_agent_image(mut self, image: Option<String>) -> Self {
        self.agent_image = image;
        self
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub(crate) fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn location(&self, namespace: &str) -> Location {
        Location::Kubernetes {
            context: self.cluster.context().map(str::to_string),
            namespace: namespace.to_string(),
        }
    }

    /// The namespace of a location on this manager's cluster; `None` for anywhere else.
    fn namespace_of<'l>(&self, location: &'l Location) -> Option<&'l str> {
        match location {
            Location::Kubernetes { context, namespace }
                if context.as_deref() == self.cluster.context() =>
            {
                Some(namespace)
            }
            _ => None,
        }
    }

    /// The namespace of a sandbox's Pod: where its location says, else ours (a server builds
    /// its sandboxes from their `info`, without a location).
    fn namespace_for<'s>(&'s self, sandbox: &'s Sandbox) -> &'s str {
        self.namespace_of(&sandbox.location)
            .unwrap_or(self.namespace.as_str())
    }

    /// The state file's records of sandboxes on this cluster.
    fn records(&self) -> Result<IndexMap<String, SandboxRecord>> {
        let mut records = self.state.load()?.sandboxes;
        records.retain(|_, r| self.namespace_of(&r.location).is_some());
        Ok(records)
    }

    /// Records joined with the Pods of their namespaces and of ours: every sandbox we know here.
    async fn join_with_pods(
        &self,
        records: IndexMap<String, SandboxRecord>,
    ) -> Result<Vec<Sandbox>> {
        let mut namespaces: Vec<String> = vec![self.namespace.clone()];
        for record in records.values() {
            if let Some(ns) = self.namespace_of(&record.location) {
                if !namespaces.iter().any(|n| n == ns) {
                    namespaces.push(ns.to_string());
                }
            }
        }
        let mut pods: IndexMap<(String, String), PodRecord> = IndexMap::new();
        for ns in &namespaces {
            for pod in self.cluster.pods(ns).await? {
                pods.insert((pod.namespace.clone(), pod.sandbox_id.clone()), pod);
            }
        }
        let mut found: Vec<Sandbox> = records
            .into_values()
            .map(|r| {
                let ns = self
                    .namespace_of(&r.location)
                    .unwrap_or_default()
                    .to_string();
                let pod = pods.shift_remove(&(ns, r.id.clone()));
                self.tracked(r, pod.as_ref())
            })
            .collect();
        found.extend(pods.into_values().map(|p| self.untracked(p)));
        found.sort_by_key(|s| s.created_at);
        Ok(found)
    }

    /// A recorded sandbox, with its Pod when one exists.
    fn tracked(&self, record: SandboxRecord, pod: Option<&PodRecord>) -> Sandbox {
        let (status, hint) = match pod {
            Some(p) => (p.status, revive_hint(&record.id, p)),
            None => (SandboxStatus::Gone, None),
        };
        Sandbox {
            container_id: record.container_id,
            location: record.location,
            status,
            revive_hint: hint,
            id: record.id,
            sandbox_type: record.sandbox_type,
            image: record.image,
            tools: record.tools,
            created_at: Some(record.created_at),
            tracked: true,
            config: record.config,
            volcengine: None,
            labels: record.labels,
        }
    }

    /// A labelled Pod the state file does not hold.
    fn untracked(&self, pod: PodRecord) -> Sandbox {
        Sandbox {
            id: pod.sandbox_id.clone(),
            sandbox_type: pod.sandbox_type,
            image: pod.image.clone(),
            status: pod.status,
            revive_hint: revive_hint(&pod.sandbox_id, &pod),
            tools: pod.tools,
            created_at: pod.created,
            container_id: Some(pod.pod),
            location: self.location(&pod.namespace),
            tracked: false,
            config: pod.config.unwrap_or_default(),
            volcengine: None,
            labels: pod.extra_labels,
        }
    }

    /// The Pod of a sandbox that must exist and be running, as a `Backend`: through its agent
    /// when it has one that answers, else a plain exec per command (with a note saying why).
    async fn live(&self, sandbox: &Sandbox) -> Result<Box<dyn Backend>> {
        let namespace = self.namespace_for(sandbox);
        match sandbox.status {
            SandboxStatus::Running => {}
            SandboxStatus::Gone => {
                return Err(Error::NotFound(sandbox.id.clone()))
                    .context("its Pod no longer exists; `enclave rm` forgets it")
            }
            status => {
                return Err(Error::NotRunning {
                    id: sandbox.id.clone(),
                    status: status.as_str().to_string(),
                    hint: sandbox.revive_hint.clone(),
                }
                .into())
            }
        }
        // Every use counts against an idle expiry; a state file that cannot say so must not
        // stop the command.
        let _ = self.expiry.record_use(&self.state, sandbox).await;
        let pod = self.cluster.sandbox(namespace, &sandbox.id);
        if let Some(client) = self.connections.get(&sandbox.id) {
            return Ok(Box::new(AgentSandbox::new(client, pod)));
        }
        let Some(secret) = self.agent_secret(&sandbox.id) else {
            return Ok(Box::new(pod));
        };
        match k8s::agent::connect(&pod, &secret, AGENT_PATIENCE).await {
            Ok(client) => {
                (self.notes)(&format!(
                    "sandbox `{}`: through its agent (one exec, {})",
                    sandbox.id,
                    client.agent()
                ));
                self.connections.insert(&sandbox.id, client.clone());
                Ok(Box::new(AgentSandbox::new(client, pod)))
            }
            Err(e) => {
                (self.notes)(&format!(
                    "sandbox `{}`: its agent cannot be reached ({e:#}); using plain exec",
                    sandbox.id
                ));
                Ok(Box::new(pod))
            }
        }
    }

    /// What `inspect` says about the sandbox's agent: whether it has one, and whether it answers.
    async fn agent_info(&self, sandbox: &Sandbox) -> AgentInfo {
        if self.agent_secret(&sandbox.id).is_none() {
            return agent_off("made without the agent (or not recorded in this state file)".into());
        }
        if sandbox.status != SandboxStatus::Running {
            return agent_off(format!("the Pod is {}", sandbox.status.as_str()));
        }
        let _ = self.live(sandbox).await;
        match self.connections.get(&sandbox.id) {
            Some(client) => AgentInfo {
                mode: "exec".into(),
                reason: None,
                version: Some(client.agent().to_string()),
            },
            None => agent_off("its agent does not answer; commands use plain exec".into()),
        }
    }

    /// The secret of the sandbox's agent, as the state file recorded it at create.
    fn agent_secret(&self, sandbox_id: &str) -> Option<String> {
        let records = self.state.load().ok()?;
        let record = records.sandboxes.get(sandbox_id)?;
        record.agent_socket.as_ref().map(|a| a.secret.clone())
    }

    /// The image new Pods get the agent from; `None` when it is copied in, or not wanted.
    fn agent_image_for_new(&self) -> Option<&str> {
        self.agent_image.as_deref().filter(|_| agent_wanted())
    }

    /// Puts the agent into a new Pod, unless told not to; why not, when it is not there.
    async fn add_agent(&self, id: &str, tools: &[String]) -> (Option<AgentSocket>, AgentInfo) {
        if !agent_wanted() {
            return (None, agent_off(format!("{AGENT_ENV}=off")));
        }
        let pod = self.cluster.sandbox(&self.namespace, id);
        let warm_python = tools.iter().any(|t| t == "python_executor");
        let delivery = match self.agent_image {
            Some(_) => k8s::agent::Delivery::InitContainer,
            None => k8s::agent::Delivery::Copy,
        };
        match k8s::agent::install(&pod, delivery, warm_python).await {
            Ok((client, secret)) => {
                let info = AgentInfo {
                    mode: "exec".into(),
                    reason: None,
                    version: Some(client.agent().to_string()),
                };
                self.connections.insert(id, client);
                let socket = AgentSocket {
                    path: k8s::agent::SOCKET.into(),
                    secret,
                };
                (Some(socket), info)
            }
            Err(e) => {
                let why = format!("{e:#}");
                (self.notes)(&format!(
                    "sandbox `{id}`: runs without the agent ({why}); every command is its own exec"
                ));
                (None, agent_off(why))
            }
        }
    }

    fn info_of(sandbox: &Sandbox) -> SandboxInfo {
        let created = sandbox.created_at.unwrap_or_else(Utc::now);
        let available_tools =
            ToolSet::from_config(&sandbox.config.tools_config, sandbox.sandbox_type)
                .map(|set| set.schemas())
                .unwrap_or_default();
        let mut metadata = Map::new();
        if let Location::Kubernetes { namespace, context } = &sandbox.location {
            if let Some(pod) = &sandbox.container_id {
                metadata.insert("pod".into(), Value::String(pod.clone()));
            }
            metadata.insert("namespace".into(), Value::String(namespace.clone()));
            if let Some(context) = context {
                metadata.insert("context".into(), Value::String(context.clone()));
            }
        }
        SandboxInfo {
            id: sandbox.id.clone(),
            status: sandbox.status,
            sandbox_type: sandbox.sandbox_type,
            config: sandbox.config.to_wire(),
            created_at: created,
            updated_at: created,
            metadata,
            available_tools,
            agent: None,
        }
    }
}

#[async_trait]
impl Manager for KubeManager {
    async fn create(
        &self,
        request: CreateRequest,
        _progress: &dyn PullObserver,
        cancel: &CancellationToken,
    ) -> Result<SandboxInfo> {
        if request.sandbox_type != SandboxType::Docker {
            return Err(Error::Usage(format!(
                "the kubernetes backend makes `docker`-type sandboxes only; `{}` sandboxes run \
                 on the docker backend",
                request.sandbox_type.as_str()
            ))
            .into());
        }
        request.config.validate().map_err(Error::InvalidConfig)?;
        if let Ok(records) = self.records() {
            expiry::sweep(self, records.values(), &self.warn).await;
        }
        let tools = ToolSet::from_config(&request.config.tools_config, request.sandbox_type)
            .map_err(Error::InvalidConfig)?;
        let id = new_sandbox_id();
        let created = Utc::now();
        let tool_names = tools.names();
        let ttl = request
            .extra_labels
            .iter()
            .find(|(k, _)| k == LABEL_TTL)
            .and_then(|(_, v)| v.parse::<f64>().ok())
            .filter(|secs| secs.is_finite() && *secs > 0.0)
            .map(|secs| Duration::from_secs_f64(secs.ceil()));
        // The config's own labels go on the Pod too, as they go on a container.
        let mut labels = request.extra_labels.clone();
        labels.extend(
            request
                .config
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let plan = PodPlan {
            id: &id,
            namespace: &self.namespace,
            sandbox_type: request.sandbox_type,
            config: &request.config,
            tools: &tool_names,
            created,
            owner: &self.owner,
            extra_labels: &labels,
            ttl,
            agent_image: self.agent_image_for_new(),
        };
        let objects = manifests(&plan).map_err(Error::InvalidConfig)?;
        let pod = crate::backend::kubernetes::pod_name(&id);
        let record = SandboxRecord {
            id: id.clone(),
            location: self.location(&self.namespace),
            container_id: Some(pod.clone()),
            sandbox_type: request.sandbox_type,
            image: request.config.image.clone(),
            tools: tool_names,
            config: request.config.clone(),
            created_at: created,
            labels: request.extra_labels.iter().cloned().collect(),
            agent_socket: None,
            volcengine: None,
            last_used: None,
        };
        self.cluster
            .create(&self.namespace, &id, objects, START_PATIENCE, cancel)
            .await?;
        (self.notes)(&format!(
            "sandbox `{id}`: Pod {}/{pod} runs",
            self.namespace
        ));
        let (agent_socket, agent_info) = self.add_agent(&id, &record.tools).await;
        let record = SandboxRecord {
            agent_socket,
            ..record
        };
        let recorded = self
            .state
            .update(|s| s.sandboxes.insert(id.clone(), record.clone()))
            .await;
        if let Err(e) = recorded {
            // Nothing runs that the state file does not hold.
            let _ = self.cluster.delete(&self.namespace, &id).await;
            return Err(e);
        }
        let running = PodRecord::running(&id, &pod, &self.namespace);
        let mut info = Self::info_of(&self.tracked(record, Some(&running)));
        info.agent = Some(agent_info);
        Ok(info)
    }

    async fn list(&self) -> Result<Vec<Sandbox>> {
        let mut records = self.records()?;
        if expiry::sweep(self, records.values(), &self.warn).await {
            records = self.records()?;
        }
        self.join_with_pods(records).await
    }

    async fn touch(&self, sandbox: &Sandbox) -> Result<()> {
        self.expiry.record_use(&self.state, sandbox).await
    }

    async fn find(&self, id_or_prefix: &str) -> Result<Sandbox> {
        if id_or_prefix.trim().is_empty() {
            return Err(Error::Usage("a sandbox id must not be empty".into()).into());
        }
        let mut records = self.records()?;
        if let Some(record) = records.shift_remove(id_or_prefix) {
            let ns = self
                .namespace_of(&record.location)
                .unwrap_or_default()
                .to_string();
            let pod = self.cluster.pod(&ns, &record.id).await?;
            return Ok(self.tracked(record, pod.as_ref()));
        }
        let found = self.join_with_pods(records).await?;
        records::pick(id_or_prefix, found)
    }

    async fn info(&self, sandbox: &Sandbox) -> Result<SandboxInfo> {
        let mut info = Self::info_of(sandbox);
        info.agent = Some(self.agent_info(sandbox).await);
        Ok(info)
    }

    async fn exec(
        &self,
        sandbox: &Sandbox,
        spec: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome> {
        self.live(sandbox).await?.exec(spec, sink).await
    }

    async fn remove(&self, sandbox: &Sandbox) -> Result<Removed> {
        let kill = async {
            self.connections.forget(&sandbox.id);
            self.cluster
                .delete(self.namespace_for(sandbox), &sandbox.id)
                .await
        };
        records::remove(&self.state, sandbox, kill).await
    }

    async fn stop(&self, sandbox: &Sandbox) -> Result<()> {
        // A Pod cannot be stopped and started again; the Pod backend says so and what to do.
        self.cluster
            .sandbox(self.namespace_for(sandbox), &sandbox.id)
            .stop()
            .await
    }

    async fn put_archive(&self, sandbox: &Sandbox, dir: &str, tar: Bytes) -> Result<()> {
        self.live(sandbox).await?.put_archive(dir, tar).await
    }

    async fn get_archive(&self, sandbox: &Sandbox, path: &str) -> Result<ArchiveStream> {
        self.live(sandbox)
            .await?
            .get_archive(path)
            .await?
            .ok_or_else(|| {
                Error::PathNotFound {
                    sandbox: sandbox.id.clone(),
                    path: path.to_string(),
                }
                .into()
            })
    }

    async fn health(&self) -> Result<Health> {
        let version = self.cluster.version().await?;
        Ok(Health {
            backend: format!(
                "kubernetes {version} at {} (namespace {})",
                self.cluster.address(),
                self.namespace
            ),
        })
    }

    async fn execute_tool(&self, sandbox: &Sandbox, call: ToolCall) -> Result<ToolResult> {
        let backend = self.live(sandbox).await?;
        tool_call::execute(backend.as_ref(), sandbox, call, async { None }).await
    }

    async fn open_session(
        &self,
        sandbox: &Sandbox,
        options: SessionOptions,
    ) -> Result<Box<dyn Session>> {
        if options.kind == Some(session::SessionKind::Notebook) {
            return Err(Error::Usage(format!(
                "sandbox `{}` is a Pod without a notebook kernel: notebook sessions need a \
                 docker_notebook sandbox on the docker backend",
                sandbox.id
            ))
            .into());
        }
        let backend = self.live(sandbox).await?;
        session::python::open(backend, &sandbox.id, options).await
    }
}

/// Whether new sandboxes get the agent (`ENCLAVE_AGENT=off`: they do not).
fn agent_wanted() -> bool {
    !std::env::var(AGENT_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("off"))
}

fn agent_off(reason: String) -> AgentInfo {
    AgentInfo {
        mode: "off".into(),
        reason: Some(reason),
        version: None,
    }
}

/// For a sandbox whose Pod does not run: what happened and the way out.
fn revive_hint(sandbox_id: &str, pod: &PodRecord) -> Option<String> {
    if pod.status == SandboxStatus::Running {
        return None;
    }
    let why = pod
        .why
        .as_deref()
        .map_or(String::new(), |w| format!("{w}; "));
    Some(format!(
        "{why}a Pod cannot be restarted: `enclave rm {sandbox_id}` removes it"
    ))
}

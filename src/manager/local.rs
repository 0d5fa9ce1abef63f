//! `LocalManager`: sandboxes on the Docker engine this process can reach, recorded in the local
//! state file.

mod notebooks;

use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use indexmap::IndexMap;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::agents::{self, Connections};
use super::expiry::{self, IdleExpiry};
use super::{records, tool_call, CreateRequest, Health, Manager, ToolCall, Warn};
use crate::backend::agent::{self as agent_backend, AgentSandbox};
use crate::backend::docker::{
    AgentAccess, AgentChoice, ContainerRecord, ContainerState, CreateSpec, ImageDefaults, Workload,
};
use crate::backend::{Backend, DockerEngine};
use crate::error::Error;
use crate::model::{
    new_sandbox_id, AgentInfo, ArchiveStream, ExecOutcome, ExecSpec, ExitCause, Location,
    OutputSink, PullObserver, Removed, Sandbox, SandboxInfo, SandboxStatus, SandboxType,
    ToolResult,
};
use crate::session::{self, Session, SessionOptions};
use crate::state::{AgentSocket, Corrupt, SandboxRecord, StateStore};
use crate::tools::ToolSet;
use crate::volcengine::{self, Volcengine};

pub struct LocalManager {
    engine: DockerEngine,
    state: StateStore,
    owner: String,
    warn: Warn,
    /// Notes only `-v` shows (the CLI) or the log keeps (the server): which way a command went.
    notes: Warn,
    /// One connection to each sandbox's agent, reused by every call.
    connections: Connections,
    /// The kernels of notebook sandboxes, each call on one kernel after another.
    notebooks: crate::notebook::Notebooks,
    /// What `volcengine` sandboxes (no container) are reached through.
    volcengine: Volcengine,
    /// When this process last recorded each sandbox's use (`expiry.rs`).
    expiry: IdleExpiry,
}

impl LocalManager {
    pub fn new(engine: DockerEngine, state: StateStore) -> Self {
        LocalManager {
            owner: state.owner(),
            engine,
            state,
            warn: Arc::new(|_| {}),
            notes: Arc::new(|_| {}),
            connections: Connections::default(),
            notebooks: crate::notebook::Notebooks::default(),
            volcengine: Volcengine::default(),
            expiry: IdleExpiry::default(),
        }
    }

    /// Sends the notes that say which way a command reached its sandbox (the agent, or the
    /// `docker exec` fallback and why) to `notes`.
    #[must_use]
    pub fn with_notes(mut self, notes: Warn) -> Self {
        self.notes = notes;
        self
    }

    /// Sends notes for the user (a state file recovered from labels) to `warn`.
    #[must_use]
    pub fn with_warnings(mut self, warn: Warn) -> Self {
        self.warn = warn;
        self
    }

    /// The state file's records, recovering them from labels when the file is unreadable.
    async fn records(&self) -> Result<IndexMap<String, SandboxRecord>> {
        match self.state.load() {
            Ok(state) => Ok(state.sandboxes),
            Err(e) if e.downcast_ref::<Corrupt>().is_some() => {
                self.recover_state(&e).await?;
                Ok(self.state.load()?.sandboxes)
            }
            Err(e) => Err(e),
        }
    }

    /// Rebuilds the records of the sandboxes this state file created from their labels, and
    /// keeps the unreadable file beside the new one.
    async fn recover_state(&self, why: &anyhow::Error) -> Result<()> {
        let containers = self.engine.list_sandbox_containers().await?;
        let owner = self.owner.clone();
        let rebuilt = move || {
            containers
                .into_iter()
                .filter(|c| c.owner.as_deref() == Some(owner.as_str()))
                .filter_map(record_from_labels)
                .collect()
        };
        if let Some(recovery) = self.state.recover(rebuilt).await? {
            (self.warn)(&format!(
                "{why:#}; it was moved to {} and {} sandbox(es) were recorded again from their labels",
                recovery.backup.display(),
                recovery.rebuilt
            ));
        }
        Ok(())
    }

    /// State records joined with labelled containers: every sandbox we know, oldest first.
    async fn join_with_containers(
        &self,
        records: IndexMap<String, SandboxRecord>,
    ) -> Result<Vec<Sandbox>> {
        let mut containers: IndexMap<String, ContainerRecord> = self
            .engine
            .list_sandbox_containers()
            .await?
            .into_iter()
            .map(|c| (c.sandbox_id.clone(), c))
            .collect();
        let mut found: Vec<Sandbox> = records
            .into_values()
            .filter(|r| r.location == Location::Docker)
            .map(|r| {
                let container = containers.shift_remove(&r.id);
                tracked(r, container.map(|c| (c.container_id, c.state)))
            })
            .collect();
        found.extend(containers.into_values().map(untracked));
        found.sort_by_key(|s| s.created_at);
        Ok(found)
    }

    fn info_of(sandbox: &Sandbox) -> SandboxInfo {
        let created = sandbox.created_at.unwrap_or_else(Utc::now);
        let (config, available_tools) = match &sandbox.volcengine {
            Some(v) => (v.to_wire(), Volcengine::schemas(v)),
            None => (
                sandbox.config.to_wire(),
                ToolSet::from_config(&sandbox.config.tools_config, sandbox.sandbox_type)
                    .map(|set| set.schemas())
                    .unwrap_or_default(),
            ),
        };
        let mut metadata = Map::new();
        if let Some(c) = &sandbox.container_id {
            metadata.insert("container_id".into(), Value::String(c.clone()));
        }
        SandboxInfo {
            id: sandbox.id.clone(),
            status: sandbox.status,
            sandbox_type: sandbox.sandbox_type,
            config,
            created_at: created,
            updated_at: created,
            metadata,
            available_tools,
            agent: None,
        }
    }

    /// Removes this engine's sandboxes among `records` that are past their idle expiry; `true`
    /// when there were any.
    async fn sweep_expired(&self, records: &IndexMap<String, SandboxRecord>) -> bool {
        let here = records.values().filter(|r| r.location == Location::Docker);
        expiry::sweep(self, here, &self.warn).await
    }

    /// The backend of a sandbox that must exist and be running: its agent when it has one that
    /// answers and proves itself, else `docker exec` (with a note saying why).
    async fn live(&self, sandbox: &Sandbox) -> Result<Box<dyn Backend>> {
        let container = self.running_container(sandbox)?;
        // Every use counts against an idle expiry; a state file that cannot say so must not
        // stop the command.
        let _ = self.expiry.record_use(&self.state, sandbox).await;
        let docker = self.engine.sandbox(container);
        if let Some(client) = self.connections.get(&sandbox.id) {
            return Ok(Box::new(AgentSandbox::new(client, docker)));
        }
        match self
            .connections
            .open(&self.engine, &sandbox.id, container, &docker)
            .await
        {
            Ok(Some((client, transport))) => {
                (self.notes)(&format!(
                    "sandbox `{}`: through its agent ({}, {})",
                    sandbox.id,
                    transport.as_str(),
                    client.agent()
                ));
                Ok(Box::new(AgentSandbox::new(client, docker)))
            }
            Ok(None) => Ok(Box::new(docker)),
            Err(e) => {
                (self.notes)(&format!(
                    "sandbox `{}`: its agent cannot be reached ({e:#}); using docker exec",
                    sandbox.id
                ));
                Ok(Box::new(docker))
            }
        }
    }

    /// A recorded sandbox whose agent answers on its socket: it runs, so the engine need not be
    /// asked (the connection is kept for the command that follows).
    async fn answering(&self, record: &SandboxRecord) -> Option<Sandbox> {
        let socket = record.agent_socket.as_ref()?;
        let container = record.container_id.clone()?;
        if !self.connections.open_recorded(&record.id, socket).await {
            return None;
        }
        (self.notes)(&format!(
            "sandbox `{}`: through its agent (socket {})",
            record.id, socket.path
        ));
        let running = ContainerState {
            status: SandboxStatus::Running,
            revive_hint: None,
        };
        Some(tracked(record.clone(), Some((container, running))))
    }

    /// The container of a sandbox that must exist and be running.
    fn running_container<'s>(&self, sandbox: &'s Sandbox) -> Result<&'s str> {
        if sandbox.volcengine.is_some() {
            return Err(no_shell(sandbox, "run commands or hold files"));
        }
        let container = match (&sandbox.container_id, sandbox.status) {
            (Some(c), status) if status != SandboxStatus::Gone => c,
            _ => {
                return Err(Error::NotFound(sandbox.id.clone()))
                    .context("it no longer exists; `enclave rm` forgets it")
            }
        };
        if sandbox.status != SandboxStatus::Running {
            return Err(Error::NotRunning {
                id: sandbox.id.clone(),
                status: sandbox.status.as_str().to_string(),
                hint: sandbox.revive_hint.clone(),
            }
            .into());
        }
        Ok(container)
    }

    /// What `inspect` says about the sandbox's agent: how it was set up, and whether it answers.
    async fn agent_info(&self, sandbox: &Sandbox) -> Option<AgentInfo> {
        let container = sandbox.container_id.as_deref()?;
        let access = self.engine.agent_access(container).await.ok()?;
        if self.running_container(sandbox).is_err() {
            return Some(agents::info_of(access.as_ref(), None));
        }
        let docker = self.engine.sandbox(container);
        let reached = match self.connections.get(&sandbox.id) {
            Some(client) => Ok(Some(client)),
            None => self
                .connections
                .open(&self.engine, &sandbox.id, container, &docker)
                .await
                .map(|c| c.map(|(client, _)| client)),
        };
        Some(match &reached {
            Ok(Some(client)) => agents::info_of(access.as_ref(), Some(Ok(client))),
            Ok(None) => agents::info_of(access.as_ref(), None),
            Err(e) => agents::info_of(access.as_ref(), Some(Err(e))),
        })
    }

    /// Everything a new sandbox needs before a container exists: a valid config, its tools, and
    /// the image (pulled if missing; cancelling stops the pull).
    async fn prepare(
        &self,
        request: &CreateRequest,
        progress: &dyn PullObserver,
        cancel: &CancellationToken,
    ) -> Result<(ToolSet, ImageDefaults)> {
        request.config.validate().map_err(Error::InvalidConfig)?;
        let tools = ToolSet::from_config(&request.config.tools_config, request.sandbox_type)
            .map_err(Error::InvalidConfig)?;
        let image = async {
            if request.sandbox_type == SandboxType::DockerNotebook {
                if let Some(built) = self.notebook_image(&request.config.image, progress).await? {
                    return Ok(built);
                }
            }
            self.engine
                .ensure_image(
                    &request.config.image,
                    request.config.platform.as_deref(),
                    progress,
                )
                .await
        };
        let image = tokio::select! {
            pulled = image => pulled?,
            () = cancel.cancelled() => return Err(cancelled()),
        };
        Ok((tools, image))
    }

    /// Creates, starts and records the container, under the agent when it can be; a sandbox
    /// that does not start or answer under the agent is made again without it, and says why.
    async fn create_container(
        &self,
        id: &str,
        request: &CreateRequest,
        tools: &ToolSet,
        image: &ImageDefaults,
        cancel: &CancellationToken,
    ) -> Result<SandboxInfo> {
        let mut choice = agents::choose(
            &self.engine,
            self.state.dir(),
            id,
            &request.config.image,
            image,
        )
        .await;
        if let AgentChoice::Use(setup) = &mut choice {
            setup.warm_python = tools.names().iter().any(|t| t == "python_executor");
        }
        let under_agent = matches!(choice, AgentChoice::Use(_));
        match self
            .create_once(id, request, tools, image, choice, cancel)
            .await
        {
            Err(e) if under_agent && !cancel.is_cancelled() => {
                agents::remove_socket_dir(self.state.dir(), id);
                let why = format!("the sandbox did not start under the agent: {e:#}");
                (self.notes)(&format!("sandbox `{id}`: {why}; made again without it"));
                self.create_once(id, request, tools, image, AgentChoice::Off(why), cancel)
                    .await
            }
            other => other,
        }
    }

    /// One try of [`Self::create_container`]; on any failure, or a cancel, removes what it made.
    async fn create_once(
        &self,
        id: &str,
        request: &CreateRequest,
        tools: &ToolSet,
        image: &ImageDefaults,
        agent: AgentChoice,
        cancel: &CancellationToken,
    ) -> Result<SandboxInfo> {
        let created = Utc::now();
        let tool_names = tools.names();
        let notebook = (request.sandbox_type == SandboxType::DockerNotebook)
            .then(|| notebooks::setup(&request.config, &*self.warn));
        let spec = CreateSpec {
            id,
            sandbox_type: request.sandbox_type,
            config: &request.config,
            tools: &tool_names,
            created,
            owner: &self.owner,
            extra_labels: &request.extra_labels,
            workload: Workload::KeepAlive,
            agent: agent.clone(),
            notebook,
        };
        let container_id = self.engine.create_container(&spec, image).await?;
        let record = SandboxRecord {
            id: id.to_string(),
            location: Location::Docker,
            container_id: Some(container_id.clone()),
            sandbox_type: request.sandbox_type,
            image: request.config.image.clone(),
            tools: tool_names,
            config: request.config.clone(),
            created_at: created,
            labels: request.extra_labels.iter().cloned().collect(),
            agent_socket: recorded_socket(&agent),
            volcengine: None,
            last_used: None,
        };
        let started = async {
            self.engine.start_container(&container_id).await?;
            let agent_info = self.greet_agent(id, &container_id, &agent).await?;
            self.state
                .update(|s| s.sandboxes.insert(id.to_string(), record.clone()))
                .await?;
            Ok::<_, anyhow::Error>(agent_info)
        };
        // Biased, so a start that completed in the same poll as the cancel counts: the record
        // is written in one step after the lock is taken, so it exists exactly when `started`
        // returned `Ok`, and a failure leaves nothing in the state file to undo.
        let started = tokio::select! {
            biased;
            started = started => started,
            () = cancel.cancelled() => Err(cancelled()),
        };
        match started {
            Ok(agent_info) => {
                let running = ContainerState {
                    status: SandboxStatus::Running,
                    revive_hint: None,
                };
                let mut info = Self::info_of(&tracked(record, Some((container_id, running))));
                info.agent = Some(agent_info);
                Ok(info)
            }
            Err(e) => {
                self.connections.forget(id);
                let _ = self.engine.remove_container(&container_id).await;
                Err(e)
            }
        }
    }

    /// For a sandbox started under the agent: waits for it to answer and keeps the connection.
    async fn greet_agent(
        &self,
        id: &str,
        container_id: &str,
        agent: &AgentChoice,
    ) -> Result<AgentInfo> {
        let setup = match agent {
            AgentChoice::Use(setup) => setup,
            AgentChoice::Off(reason) => {
                return Ok(AgentInfo {
                    mode: "off".into(),
                    reason: Some(reason.clone()),
                    version: None,
                })
            }
        };
        let docker = self.engine.sandbox(container_id);
        let (client, transport) =
            agent_backend::connect(&setup.access(), &docker, agents::START_PATIENCE).await?;
        let info = AgentInfo {
            mode: transport.as_str().into(),
            reason: None,
            version: Some(client.agent().to_string()),
        };
        self.connections.insert(id, client);
        Ok(info)
    }

    /// A `volcengine` sandbox is made by recording it: there is nothing to start, and the
    /// service is first asked when a tool is called (ms-enclave's health probe only logged).
    async fn create_volcengine(&self, request: CreateRequest) -> Result<SandboxInfo> {
        let config = request.volcengine.unwrap_or_default();
        let tools = Volcengine::check(&config)?;
        let id = new_sandbox_id();
        let record = SandboxRecord {
            id: id.clone(),
            location: Location::Docker,
            container_id: None,
            sandbox_type: SandboxType::Volcengine,
            image: config.host(),
            tools: tools.names(),
            config: request.config,
            created_at: Utc::now(),
            labels: request.extra_labels.into_iter().collect(),
            agent_socket: None,
            volcengine: Some(config),
            last_used: None,
        };
        self.state
            .update(|s| s.sandboxes.insert(id.clone(), record.clone()))
            .await?;
        Ok(Self::info_of(&tracked(record, None)))
    }
}

#[async_trait]
impl Manager for LocalManager {
    async fn create(
        &self,
        request: CreateRequest,
        progress: &dyn PullObserver,
        cancel: &CancellationToken,
    ) -> Result<SandboxInfo> {
        if request.sandbox_type == SandboxType::Volcengine {
            return self.create_volcengine(request).await;
        }
        if let Ok(records) = self.records().await {
            self.sweep_expired(&records).await;
        }
        let mut request = request;
        let kind = request.sandbox_type;
        if kind == SandboxType::DockerNotebook && !request.config.network_enabled {
            (self.warn)(
                "a docker_notebook sandbox needs a network for its gateway's port: \
                 network_enabled is on (as in ms-enclave)",
            );
        }
        request
            .config
            .apply_type_defaults(kind, &notebooks::default_image());
        let (tools, image) = self.prepare(&request, progress, cancel).await?;
        let id = new_sandbox_id();
        let info = self
            .create_container(&id, &request, &tools, &image, cancel)
            .await
            .map_err(|e| {
                if kind == SandboxType::DockerNotebook && request.config.command.is_none() {
                    e.context(
                        "a docker_notebook sandbox runs `jupyter kernelgateway`: its image must \
                         have Jupyter Kernel Gateway (see docs/notebook.md)",
                    )
                } else {
                    e
                }
            })?;
        if kind == SandboxType::DockerNotebook {
            let container = info
                .metadata
                .get("container_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let started = tokio::select! {
                started = self.start_kernel(&id, &container, &request.config) => started,
                () = cancel.cancelled() => Err(cancelled()),
            };
            if let Err(e) = started {
                // Nothing of a sandbox that cannot run its kernel is left behind.
                self.notebooks.forget(&id);
                if let Ok(sandbox) = self.find(&id).await {
                    let _ = self.remove(&sandbox).await;
                }
                return Err(e);
            }
        }
        Ok(info)
    }

    async fn run(
        &self,
        request: CreateRequest,
        spec: ExecSpec,
        progress: &dyn PullObserver,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome> {
        let (tools, image) = self.prepare(&request, progress, &spec.cancel).await?;
        let id = new_sandbox_id();
        let tool_names = tools.names();
        let create = CreateSpec {
            id: &id,
            sandbox_type: request.sandbox_type,
            config: &request.config,
            tools: &tool_names,
            created: Utc::now(),
            owner: &self.owner,
            extra_labels: &request.extra_labels,
            workload: Workload::Command {
                argv: spec.argv.clone(),
                stdin: spec.stdin.is_some(),
            },
            // The command is the container's main process: there is nothing to reach.
            agent: AgentChoice::Off("an ephemeral run".into()),
            notebook: None,
        };
        self.engine.run_container(&create, &image, spec, sink).await
    }

    async fn list(&self) -> Result<Vec<Sandbox>> {
        let mut records = self.records().await?;
        if self.sweep_expired(&records).await {
            records = self.records().await?;
        }
        self.join_with_containers(records).await
    }

    async fn find(&self, id_or_prefix: &str) -> Result<Sandbox> {
        if id_or_prefix.trim().is_empty() {
            return Err(Error::Usage("a sandbox id must not be empty".into()).into());
        }
        // Fast path: an exact id in the state file needs no container listing.
        let mut records = self.records().await?;
        // Only this engine's: a sandbox on a server or a cluster has its own manager.
        records.retain(|_, r| r.location == Location::Docker);
        if let Some(record) = records.shift_remove(id_or_prefix) {
            if let Some(sandbox) = self.answering(&record).await {
                return Ok(sandbox);
            }
            let container = match &record.container_id {
                Some(c) => self
                    .engine
                    .container_state(c, &record.id)
                    .await?
                    .map(|state| (c.clone(), state)),
                None => None,
            };
            return Ok(tracked(record, container));
        }
        let found = self.join_with_containers(records).await?;
        records::pick(id_or_prefix, found)
    }

    async fn info(&self, sandbox: &Sandbox) -> Result<SandboxInfo> {
        let mut info = Self::info_of(sandbox);
        info.agent = self.agent_info(sandbox).await;
        Ok(info)
    }

    async fn exec(
        &self,
        sandbox: &Sandbox,
        spec: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome> {
        let outcome = self.live(sandbox).await?.exec(spec, sink).await?;
        if outcome.cause == Some(ExitCause::SandboxGone) {
            return Err(Error::Vanished(sandbox.id.clone()).into());
        }
        Ok(outcome)
    }

    async fn remove(&self, sandbox: &Sandbox) -> Result<Removed> {
        let kill = async {
            self.connections.forget(&sandbox.id);
            self.notebooks.forget(&sandbox.id);
            let removed = match &sandbox.container_id {
                Some(c) => self.engine.sandbox(c).remove().await?,
                // A volcengine sandbox is its record: forgetting it removes it.
                None => sandbox.volcengine.is_some(),
            };
            agents::remove_socket_dir(self.state.dir(), &sandbox.id);
            Ok(removed)
        };
        records::remove(&self.state, sandbox, kill).await
    }

    async fn stop(&self, sandbox: &Sandbox) -> Result<()> {
        if sandbox.volcengine.is_some() {
            return Err(no_shell(sandbox, "be stopped"));
        }
        // A stopped sandbox's kernel is gone, and its gateway's port with it.
        self.notebooks.forget(&sandbox.id);
        match &sandbox.container_id {
            Some(c) if sandbox.status != SandboxStatus::Gone => self.engine.sandbox(c).stop().await,
            _ => Err(Error::NotFound(sandbox.id.clone()))
                .context("it no longer exists; `enclave rm` forgets it"),
        }
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
        let version = self.engine.ping().await?;
        Ok(Health {
            backend: format!("docker {version} at {}", self.engine.address()),
        })
    }

    async fn execute_tool(&self, sandbox: &Sandbox, call: ToolCall) -> Result<ToolResult> {
        if let Some(config) = &sandbox.volcengine {
            let call = volcengine::Call {
                sandbox: &sandbox.id,
                tool: &call.tool,
                args: &call.args,
                deadline: call.deadline,
                cancel: &call.cancel,
            };
            return self.volcengine.execute_tool(config, call).await;
        }
        let backend = self.live(sandbox).await?;
        // Only the notebook tool needs the kernel; a sandbox whose gateway cannot be found
        // gets the tool's own "no kernel" result.
        let kernel = async {
            match self.kernel_of(sandbox).await {
                Ok(kernel) => Some(kernel),
                Err(e) => {
                    (self.notes)(&format!("sandbox `{}`: no kernel: {e:#}", sandbox.id));
                    None
                }
            }
        };
        tool_call::execute(backend.as_ref(), sandbox, call, kernel).await
    }

    async fn touch(&self, sandbox: &Sandbox) -> Result<()> {
        self.expiry.record_use(&self.state, sandbox).await
    }

    async fn open_session(
        &self,
        sandbox: &Sandbox,
        options: SessionOptions,
    ) -> Result<Box<dyn Session>> {
        let notebook = match options.kind {
            Some(kind) => kind == session::SessionKind::Notebook,
            None => sandbox.sandbox_type == SandboxType::DockerNotebook,
        };
        if notebook {
            let kernel = self.kernel_of(sandbox).await?;
            return crate::notebook::session::open(kernel, &sandbox.id).await;
        }
        let backend = self.live(sandbox).await?;
        session::python::open(backend, &sandbox.id, options).await
    }
}

fn no_shell(sandbox: &Sandbox, what: &'static str) -> anyhow::Error {
    Error::NoShell {
        id: sandbox.id.clone(),
        what,
    }
    .into()
}

fn cancelled() -> anyhow::Error {
    anyhow::anyhow!("cancelled before the sandbox was ready")
}

/// A sandbox recorded in the state file, with its container when one exists.
fn tracked(record: SandboxRecord, container: Option<(String, ContainerState)>) -> Sandbox {
    let (container_id, status, revive_hint) = match container {
        Some((id, state)) => (Some(id), state.status, state.revive_hint),
        // Nothing to lose: it runs for as long as it is recorded.
        None if record.volcengine.is_some() => (None, SandboxStatus::Running, None),
        None => (record.container_id.clone(), SandboxStatus::Gone, None),
    };
    Sandbox {
        id: record.id,
        sandbox_type: record.sandbox_type,
        image: record.image,
        status,
        tools: record.tools,
        created_at: Some(record.created_at),
        container_id,
        location: Location::Docker,
        tracked: true,
        config: record.config,
        volcengine: record.volcengine,
        revive_hint,
        labels: record.labels,
    }
}

/// A labelled container the state file does not know.
fn untracked(c: ContainerRecord) -> Sandbox {
    Sandbox {
        sandbox_type: c.sandbox_type.unwrap_or(crate::model::SandboxType::Docker),
        image: c.image,
        status: c.state.status,
        tools: c.tools,
        created_at: c.created,
        container_id: Some(c.container_id),
        location: Location::Docker,
        tracked: false,
        config: c.config.unwrap_or_default(),
        volcengine: None,
        revive_hint: c.state.revive_hint,
        labels: c.extra_labels,
        id: c.sandbox_id,
    }
}

/// What the state file keeps of a new sandbox's agent: its socket on this host, if it has one.
fn recorded_socket(agent: &AgentChoice) -> Option<AgentSocket> {
    let AgentChoice::Use(setup) = agent else {
        return None;
    };
    match setup.access() {
        AgentAccess::Socket { path, secret } => Some(AgentSocket { path, secret }),
        _ => None,
    }
}

/// A state record rebuilt from a container's labels.
fn record_from_labels(c: ContainerRecord) -> Option<SandboxRecord> {
    let config = c.config?;
    Some(SandboxRecord {
        id: c.sandbox_id,
        location: Location::Docker,
        container_id: Some(c.container_id),
        sandbox_type: c.sandbox_type.unwrap_or(crate::model::SandboxType::Docker),
        image: config.image.clone(),
        tools: c.tools,
        config,
        created_at: c.created.unwrap_or_else(Utc::now),
        labels: c.extra_labels,
        agent_socket: None,
        volcengine: None,
        last_used: None,
    })
}

//! `LocalManager`: sandboxes on the Docker engine this process can reach.

use std::time::Instant;

use anyhow::{Context, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::{CreateRequest, Manager, Removal, Removed, SandboxSummary};
use crate::backend::{
    ContainerRecord, CreateSpec, DockerBackend, ExecOutcome, ExecSpec, ImageDefaults, OutputSink,
    PullObserver, Workload,
};
use crate::error::Error;
use crate::model::{new_sandbox_id, SandboxInfo, SandboxStatus, SandboxType, ToolResult};
use crate::state::{Location, SandboxRecord, StateStore};
use crate::tools::{self, ToolContext, ToolSet};

pub struct LocalManager {
    backend: DockerBackend,
    state: StateStore,
}

/// A sandbox as found: what the state file recorded and what the engine has, either may be
/// missing.
struct Found {
    id: String,
    record: Option<SandboxRecord>,
    container: Option<ContainerRecord>,
}

impl Found {
    fn container_id(&self) -> Option<&str> {
        self.container
            .as_ref()
            .map(|c| c.container_id.as_str())
            .or_else(|| self.record.as_ref()?.container_id.as_deref())
    }

    fn status(&self) -> SandboxStatus {
        match &self.container {
            Some(c) => SandboxStatus::from_container_state(&c.state),
            None => SandboxStatus::Gone,
        }
    }

    fn config(&self) -> crate::model::DockerSandboxConfig {
        self.record
            .as_ref()
            .map(|r| r.config.clone())
            .or_else(|| self.container.as_ref()?.config.clone())
            .unwrap_or_default()
    }

    fn sandbox_type(&self) -> SandboxType {
        self.record
            .as_ref()
            .map(|r| r.sandbox_type)
            .or_else(|| self.container.as_ref()?.sandbox_type)
            .unwrap_or(SandboxType::Docker)
    }

    fn created_at(&self) -> Option<DateTime<Utc>> {
        match (&self.record, &self.container) {
            (Some(r), _) => Some(r.created_at),
            (None, Some(c)) => c.created,
            (None, None) => None,
        }
    }

    fn summary(&self) -> SandboxSummary {
        let (image, tools) = match (&self.record, &self.container) {
            (Some(r), _) => (r.image.clone(), r.tools.clone()),
            (None, Some(c)) => (c.image.clone(), c.tools.clone()),
            (None, None) => (String::new(), Vec::new()),
        };
        SandboxSummary {
            id: self.id.clone(),
            sandbox_type: self.sandbox_type(),
            image,
            status: self.status(),
            tools,
            created_at: self.created_at(),
            container_id: self.container_id().map(String::from),
            location: Location::Docker,
            tracked: self.record.is_some(),
        }
    }
}

impl LocalManager {
    pub fn new(backend: DockerBackend, state: StateStore) -> Self {
        LocalManager { backend, state }
    }

    pub fn backend(&self) -> &DockerBackend {
        &self.backend
    }

    /// Everything known locally: state records joined with labelled containers.
    async fn find_all(&self) -> Result<Vec<Found>> {
        self.join_with_containers(self.state.load()?.sandboxes)
            .await
    }

    async fn join_with_containers(
        &self,
        records: IndexMap<String, SandboxRecord>,
    ) -> Result<Vec<Found>> {
        let mut containers: IndexMap<String, ContainerRecord> = self
            .backend
            .list_sandbox_containers()
            .await?
            .into_iter()
            .map(|c| (c.sandbox_id.clone(), c))
            .collect();
        let mut found: Vec<Found> = records
            .into_values()
            .filter(|r| r.location == Location::Docker)
            .map(|r| Found {
                id: r.id.clone(),
                container: containers.shift_remove(&r.id),
                record: Some(r),
            })
            .collect();
        found.extend(containers.into_values().map(|c| Found {
            id: c.sandbox_id.clone(),
            record: None,
            container: Some(c),
        }));
        found.sort_by_key(Found::created_at);
        Ok(found)
    }

    async fn find(&self, id_or_prefix: &str) -> Result<Found> {
        // Fast path: an exact id in the state file needs no container listing.
        let mut records = self.state.load()?.sandboxes;
        if let Some(record) = records.shift_remove(id_or_prefix) {
            let container = self.container_for(&record).await?;
            return Ok(Found {
                id: record.id.clone(),
                record: Some(record),
                container,
            });
        }
        let mut matches: Vec<Found> = self
            .join_with_containers(records)
            .await?
            .into_iter()
            .filter(|f| f.id.starts_with(id_or_prefix))
            .collect();
        match matches.len() {
            0 => Err(Error::NotFound(id_or_prefix.to_string()).into()),
            1 => Ok(matches.remove(0)),
            _ => {
                if let Some(i) = matches.iter().position(|f| f.id == id_or_prefix) {
                    return Ok(matches.swap_remove(i));
                }
                Err(Error::Ambiguous {
                    prefix: id_or_prefix.to_string(),
                    candidates: matches.into_iter().map(|f| f.id).collect(),
                }
                .into())
            }
        }
    }

    async fn container_for(&self, record: &SandboxRecord) -> Result<Option<ContainerRecord>> {
        let Some(container_id) = &record.container_id else {
            return Ok(None);
        };
        Ok(self
            .backend
            .container_state(container_id)
            .await?
            .map(|state| ContainerRecord {
                container_id: container_id.clone(),
                sandbox_id: record.id.clone(),
                sandbox_type: Some(record.sandbox_type),
                image: record.image.clone(),
                state,
                tools: record.tools.clone(),
                created: Some(record.created_at),
                config: Some(record.config.clone()),
            }))
    }

    /// The container of a sandbox that must exist and be running.
    async fn live_container(&self, id: &str) -> Result<(Found, String)> {
        let found = self.find(id).await?;
        let container = match &found.container {
            Some(c) => c.container_id.clone(),
            None => {
                return Err(Error::NotFound(found.id.clone()))
                    .context("its container no longer exists; `enclave rm` forgets it")
            }
        };
        if found.status() != SandboxStatus::Running {
            return Err(Error::NotRunning {
                id: found.id.clone(),
                status: found.status().as_str().to_string(),
            }
            .into());
        }
        Ok((found, container))
    }

    fn info_of(&self, found: &Found) -> SandboxInfo {
        let config = found.config();
        let created = found.created_at().unwrap_or_else(Utc::now);
        let available_tools = ToolSet::from_config(&config.tools_config, found.sandbox_type())
            .map(|set| set.schemas())
            .unwrap_or_default();
        let mut metadata = Map::new();
        if let Some(c) = found.container_id() {
            metadata.insert("container_id".into(), Value::String(c.to_string()));
        }
        SandboxInfo {
            id: found.id.clone(),
            status: found.status(),
            sandbox_type: found.sandbox_type(),
            config: config.to_wire(),
            created_at: created,
            updated_at: created,
            metadata,
            available_tools,
        }
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
        let pull = self.backend.ensure_image(
            &request.config.image,
            request.config.platform.as_deref(),
            progress,
        );
        let image = tokio::select! {
            pulled = pull => pulled?,
            () = cancel.cancelled() => return Err(Error::Interrupted.into()),
        };
        Ok((tools, image))
    }

    /// Creates, starts and records the container; on any failure removes what it made.
    async fn create_container(
        &self,
        id: &str,
        request: &CreateRequest,
        tools: &ToolSet,
        image: &ImageDefaults,
        cancel: &CancellationToken,
    ) -> Result<SandboxInfo> {
        let created = Utc::now();
        let tool_names = tools.names();
        let spec = CreateSpec {
            id,
            sandbox_type: request.sandbox_type,
            config: &request.config,
            tools: &tool_names,
            created,
            extra_labels: &request.extra_labels,
            workload: Workload::KeepAlive,
        };
        let container_id = self.backend.create_container(&spec, image).await?;
        let started = async {
            if cancel.is_cancelled() {
                return Err(Error::Interrupted.into());
            }
            self.backend.start_container(&container_id).await?;
            if cancel.is_cancelled() {
                return Err(Error::Interrupted.into());
            }
            let record = SandboxRecord {
                id: id.to_string(),
                location: Location::Docker,
                container_id: Some(container_id.clone()),
                sandbox_type: request.sandbox_type,
                image: request.config.image.clone(),
                tools: tool_names.clone(),
                config: request.config.clone(),
                created_at: created,
            };
            self.state
                .update(|s| s.sandboxes.insert(id.to_string(), record.clone()))?;
            Ok::<_, anyhow::Error>(record)
        }
        .await;
        match started {
            Ok(record) => Ok(self.info_of(&Found {
                id: id.to_string(),
                container: Some(ContainerRecord {
                    container_id: container_id.clone(),
                    sandbox_id: id.to_string(),
                    sandbox_type: Some(request.sandbox_type),
                    image: record.image.clone(),
                    state: "running".into(),
                    tools: record.tools.clone(),
                    created: Some(created),
                    config: None,
                }),
                record: Some(record),
            })),
            Err(e) => {
                let _ = self.backend.remove_container(&container_id).await;
                Err(e)
            }
        }
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
        let (tools, image) = self.prepare(&request, progress, cancel).await?;
        let id = new_sandbox_id();
        self.create_container(&id, &request, &tools, &image, cancel)
            .await
    }

    /// The command is the container's main process; nothing goes to the state file, and the
    /// container's labels still identify it should this process die mid-run.
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
            extra_labels: &request.extra_labels,
            workload: Workload::Command {
                argv: spec.argv.clone(),
                stdin: spec.stdin.is_some(),
            },
        };
        self.backend
            .run_container(&create, &image, spec, sink)
            .await
    }

    async fn list(&self) -> Result<Vec<SandboxSummary>> {
        Ok(self.find_all().await?.iter().map(Found::summary).collect())
    }

    async fn resolve(&self, id_or_prefix: &str) -> Result<String> {
        Ok(self.find(id_or_prefix).await?.id)
    }

    async fn info(&self, id: &str) -> Result<SandboxInfo> {
        let found = self.find(id).await?;
        Ok(self.info_of(&found))
    }

    async fn exec(
        &self,
        id: &str,
        spec: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome> {
        let (_, container) = self.live_container(id).await?;
        self.backend.exec(&container, spec, sink).await
    }

    async fn remove(&self, id: &str) -> Result<Removed> {
        let found = self.find(id).await?;
        let removed = match found.container_id() {
            Some(c) => self.backend.remove_container(c).await?,
            None => false,
        };
        self.state.update(|s| s.sandboxes.shift_remove(&found.id))?;
        let result = if removed {
            Removal::Removed
        } else {
            Removal::Forgotten
        };
        Ok(Removed {
            id: found.id,
            result,
        })
    }

    async fn tools(&self, id: &str) -> Result<IndexMap<String, Value>> {
        Ok(self.info(id).await?.available_tools)
    }

    async fn execute_tool(
        &self,
        id: &str,
        tool: &str,
        args: Map<String, Value>,
        cancel: &CancellationToken,
    ) -> Result<ToolResult> {
        let (found, container) = self.live_container(id).await?;
        let config = found.config();
        let set = ToolSet::from_config(&config.tools_config, found.sandbox_type())
            .map_err(Error::InvalidConfig)?;
        let enabled = set.get(tool).ok_or_else(|| Error::ToolUnavailable {
            sandbox: found.id.clone(),
            tool: tool.to_string(),
            available: set.names(),
        })?;
        tools::validate_args(&enabled.tool.parameters(), &args).map_err(|message| {
            Error::InvalidToolArgs {
                tool: tool.to_string(),
                message,
            }
        })?;
        let ctx = ToolContext {
            backend: &self.backend,
            container_id: &container,
            sandbox_id: &found.id,
            working_dir: &config.working_dir,
            cancel: cancel.clone(),
        };
        let started = Instant::now();
        let mut result = enabled
            .tool
            .execute(&ctx, &enabled.name, &args, &enabled.options)
            .await;
        result.execution_time = Some(started.elapsed().as_secs_f64());
        Ok(result)
    }
}

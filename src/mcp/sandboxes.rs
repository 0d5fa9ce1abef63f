//! Which sandboxes a tenant may use, and the three tools that make, list and remove them. A
//! sandbox id names a sandbox only for the tenant that created it: ids are short and appear in
//! transcripts, so they must never work as credentials.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::args::Args;
use super::reply::Reply;
use super::{catalog, Core, Tenant, LABEL_MCP};
use crate::manager::CreateRequest;
use crate::model::{
    parse_memory_limit, DockerSandboxConfig, NoProgress, Sandbox, SandboxType, ToolsConfig,
    DEFAULT_IMAGE, LABEL_IDLE_EXPIRY,
};

/// What this process made, and for whom.
#[derive(Default)]
pub(crate) struct Owned {
    inner: Mutex<OwnedState>,
}

#[derive(Default)]
struct OwnedState {
    /// Sandboxes from `sandbox_create`, by id, in creation order.
    created: IndexMap<String, Tenant>,
    /// Throwaway sandboxes of calls still running.
    throwaway: HashSet<String>,
}

impl Owned {
    fn add(&self, id: &str, tenant: &Tenant) {
        let mut state = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.created.insert(id.to_string(), tenant.clone());
    }

    fn forget(&self, id: &str) {
        let mut state = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.created.shift_remove(id);
        state.throwaway.remove(id);
    }

    /// The tenant's sandbox that `id` names: its full id, or a prefix of exactly one of them.
    fn resolve(&self, tenant: &Tenant, id: &str) -> Option<String> {
        let state = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = || state.created.iter().filter(|(_, t)| *t == tenant);
        if let Some((full, _)) = mine().find(|(full, _)| full.as_str() == id) {
            return Some(full.clone());
        }
        let mut matches = mine().filter(|(full, _)| !id.is_empty() && full.starts_with(id));
        match (matches.next(), matches.next()) {
            (Some((full, _)), None) => Some(full.clone()),
            _ => None,
        }
    }

    fn of(&self, tenant: &Tenant) -> Vec<String> {
        let state = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state
            .created
            .iter()
            .filter(|(_, t)| *t == tenant)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn add_throwaway(&self, id: &str) {
        let mut state = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.throwaway.insert(id.to_string());
    }

    /// Everything to remove at exit: the throwaways, and unless `keep`, the created ones.
    pub(super) fn all(&self, keep: bool) -> Vec<String> {
        let state = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let created = state.created.keys().filter(|_| !keep);
        state.throwaway.iter().chain(created).cloned().collect()
    }
}

/// Where a call runs.
pub(super) enum Target {
    /// A sandbox the tenant named (or `--sandbox`): it stays.
    Kept(Sandbox),
    /// A throwaway sandbox, removed when the call is done.
    Throwaway(Sandbox),
}

impl Target {
    pub(super) fn sandbox(&self) -> &Sandbox {
        match self {
            Target::Kept(s) | Target::Throwaway(s) => s,
        }
    }
}

impl Core {
    /// `sandbox_create`.
    pub(super) async fn create_sandbox(&self, tenant: &Tenant, args: &mut Args) -> Reply {
        let request = match self.create_request(args) {
            Ok(r) => r,
            Err(message) => return Reply::invalid_arguments("sandbox_create", &message),
        };
        let cancel = self.stop.child_token();
        let sandbox = match self.make(request, &cancel).await {
            Ok(sandbox) => sandbox,
            Err(reply) => return reply,
        };
        self.sandboxes.add(&sandbox.id, tenant);
        let text = format!(
            "Created sandbox {} ({}; tools: {}). Pass \"sandbox_id\": \"{}\" to the other tools.",
            sandbox.id,
            sandbox.image,
            sandbox.tools.join(", "),
            sandbox.id
        );
        Reply::ok(text, Value::Object(describe(&sandbox)))
    }

    /// `sandbox_list`.
    pub(super) async fn list_sandboxes(&self, tenant: &Tenant) -> Reply {
        let mut listed = Vec::new();
        let mut lines = Vec::new();
        for id in self.sandboxes.of(tenant) {
            match self.manager.find(&id).await {
                Ok(sandbox) => {
                    lines.push(format!(
                        "{}  {}  {}  tools: {}",
                        sandbox.id,
                        sandbox.status.as_str(),
                        sandbox.image,
                        sandbox.tools.join(", ")
                    ));
                    listed.push(Value::Object(describe(&sandbox)));
                }
                // Removed behind our back (idle expiry, `enclave rm`): forget it.
                Err(e) if is_not_found(&e) => self.sandboxes.forget(&id),
                Err(e) => return Reply::from_error(&e, ""),
            }
        }
        let text = if lines.is_empty() {
            "No sandboxes. Create one with sandbox_create, or call an executor without \
             sandbox_id to run in a throwaway sandbox."
                .to_string()
        } else {
            lines.join("\n")
        };
        Reply::ok(text, json!({ "sandboxes": listed }))
    }

    /// `sandbox_remove`.
    pub(super) async fn remove_sandbox(&self, tenant: &Tenant, args: &mut Args) -> Reply {
        let id = match args.required_string("sandbox_id") {
            Ok(id) => id,
            Err(message) => return Reply::invalid_arguments("sandbox_remove", &message),
        };
        let Some(full) = self.sandboxes.resolve(tenant, &id) else {
            return not_yours(&id);
        };
        match self.manager.find(&full).await {
            Ok(sandbox) => {
                if let Err(e) = self.manager.remove(&sandbox).await {
                    return Reply::from_error(&e, "");
                }
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Reply::from_error(&e, ""),
        }
        self.sandboxes.forget(&full);
        self.sessions.forget(&full);
        Reply::ok(
            format!("Removed sandbox {full}."),
            json!({ "sandbox_id": full, "removed": true }),
        )
    }

    /// The sandbox a call runs in: the tenant's `sandbox_id`, else `--sandbox`, else a new
    /// throwaway sandbox of `kind` with `tool` enabled.
    pub(super) async fn target(
        &self,
        tenant: &Tenant,
        sandbox_id: Option<&str>,
        kind: SandboxType,
        tool: &str,
        cancel: &CancellationToken,
    ) -> Result<Target, Reply> {
        if let Some(sandbox) = self.kept(tenant, sandbox_id).await? {
            return Ok(Target::Kept(sandbox));
        }
        let request = self.throwaway_request(kind, tool);
        let sandbox = self.make(request, cancel).await?;
        self.sandboxes.add_throwaway(&sandbox.id);
        Ok(Target::Throwaway(sandbox))
    }

    /// The tenant's `sandbox_id`, else `--sandbox`: work that outlives a call (a job) or moves
    /// files needs a sandbox that stays, never a throwaway one.
    pub(super) async fn kept_sandbox(
        &self,
        tenant: &Tenant,
        sandbox_id: Option<&str>,
        tool: &str,
    ) -> Result<Sandbox, Reply> {
        self.kept(tenant, sandbox_id).await?.ok_or_else(|| {
            Reply::failed(
                "no_sandbox",
                &format!("{tool} needs a sandbox that stays, and no sandbox_id was given."),
                "Call sandbox_create first, then call again with the sandbox_id it returns.",
            )
        })
    }

    /// The sandbox `sandbox_id` names among the tenant's (or `--sandbox`'s own id), else
    /// `--sandbox`; `None` when neither was given.
    async fn kept(
        &self,
        tenant: &Tenant,
        sandbox_id: Option<&str>,
    ) -> Result<Option<Sandbox>, Reply> {
        let id = match (sandbox_id, &self.options.sandbox) {
            (Some(id), own) => match self.sandboxes.resolve(tenant, id) {
                Some(full) => full,
                None if own.as_deref() == Some(id) => id.to_string(),
                None => return Err(not_yours(id)),
            },
            (None, Some(own)) => own.clone(),
            (None, None) => return Ok(None),
        };
        self.find_kept(&id).await.map(Some)
    }

    /// Removes a call's throwaway sandbox; a kept one stays (its use was recorded when the call
    /// reached it).
    pub(super) async fn release(&self, target: Target) {
        if let Target::Throwaway(sandbox) = target {
            self.discard(&sandbox.id).await;
        }
    }

    /// Removes the sandbox `id` whatever state it is in; gone already is fine.
    pub(super) async fn discard(&self, id: &str) {
        self.sessions.forget(id);
        if let Ok(sandbox) = self.manager.find(id).await {
            let _ = self.manager.remove(&sandbox).await;
        }
        self.sandboxes.forget(id);
    }

    async fn find_kept(&self, id: &str) -> Result<Sandbox, Reply> {
        match self.manager.find(id).await {
            Ok(sandbox) => Ok(sandbox),
            Err(e) if is_not_found(&e) => {
                self.sandboxes.forget(id);
                Err(Reply::failed(
                    "not_found",
                    &format!("Sandbox {id} no longer exists (it was removed, or expired after being idle)."),
                    "Create a new one with sandbox_create, or leave sandbox_id out to run in a throwaway sandbox.",
                ))
            }
            Err(e) => Err(Reply::from_error(&e, "")),
        }
    }

    async fn make(
        &self,
        request: CreateRequest,
        cancel: &CancellationToken,
    ) -> Result<Sandbox, Reply> {
        let next =
            "Check the image name and the arguments, or ask the user to check the Docker engine.";
        let info = self
            .manager
            .create(request, &NoProgress, cancel)
            .await
            .map_err(|e| Reply::from_error(&e, next))?;
        self.manager
            .find(&info.id)
            .await
            .map_err(|e| Reply::from_error(&e, next))
    }

    fn create_request(&self, args: &mut Args) -> Result<CreateRequest, String> {
        let kind = match args.optional_string("type")?.as_deref() {
            None | Some("docker") => SandboxType::Docker,
            Some("docker_notebook") => SandboxType::DockerNotebook,
            Some(other) => {
                return Err(format!(
                    "type must be `docker` or `docker_notebook`, not `{other}`"
                ))
            }
        };
        let image = args.optional_string("image")?;
        let tools = match args.optional_string_list("tools")? {
            Some(tools) => {
                for tool in &tools {
                    if !catalog::EXECUTORS.contains(&tool.as_str()) {
                        return Err(format!(
                            "tools: `{tool}` is not an executor; choose from {}",
                            catalog::EXECUTORS.join(", ")
                        ));
                    }
                }
                tools
            }
            None => default_tools(kind),
        };
        let mut config = self.base_config(kind, image);
        config.tools_config = ToolsConfig(tools.into_iter().map(|t| (t, Map::new())).collect());
        if let Some(memory) = args.optional_string("memory")? {
            parse_memory_limit(&memory).map_err(|e| format!("memory: {e}"))?;
            config.memory_limit = memory;
        }
        if let Some(network) = args.optional_bool("network")? {
            config.network_enabled = network;
        }
        let idle = match args.optional_u64("idle_minutes")? {
            Some(0) => return Err("idle_minutes must be at least 1".into()),
            Some(minutes) => Duration::from_secs(minutes.saturating_mul(60)),
            None => self.options.idle_expiry,
        };
        std::mem::replace(args, Args::new(Map::new())).finish()?;
        Ok(self.request(kind, config, idle))
    }

    fn throwaway_request(&self, kind: SandboxType, tool: &str) -> CreateRequest {
        let mut config = self.base_config(kind, None);
        config.tools_config = ToolsConfig([(tool.to_string(), Map::new())].into_iter().collect());
        // A backstop for a process killed mid-call: any later enclave removes it.
        let idle = self.options.call_timeout + Duration::from_secs(300);
        let mut request = self.request(kind, config, idle);
        if !self.options.remote {
            request
                .extra_labels
                .push(("enclave.mcp-throwaway".into(), "1".into()));
        }
        request
    }

    fn base_config(&self, kind: SandboxType, image: Option<String>) -> DockerSandboxConfig {
        let image = match (image, kind) {
            (Some(image), _) => image,
            // The manager picks its notebook image for the default one.
            (None, SandboxType::DockerNotebook) => DEFAULT_IMAGE.to_string(),
            (None, _) => self.options.image.clone(),
        };
        DockerSandboxConfig {
            image,
            memory_limit: "1g".into(),
            network_enabled: self.options.network,
            ..DockerSandboxConfig::default()
        }
    }

    fn request(
        &self,
        kind: SandboxType,
        config: DockerSandboxConfig,
        idle: Duration,
    ) -> CreateRequest {
        let mut extra_labels = Vec::new();
        if !self.options.remote {
            extra_labels.push((LABEL_MCP.to_string(), "1".to_string()));
            extra_labels.push((LABEL_IDLE_EXPIRY.to_string(), idle.as_secs().to_string()));
        }
        extra_labels.extend(self.options.labels.iter().cloned());
        CreateRequest {
            sandbox_type: kind,
            config,
            volcengine: None,
            extra_labels,
        }
    }
}

/// The executors a new sandbox of `kind` gets when `sandbox_create` names none.
fn default_tools(kind: SandboxType) -> Vec<String> {
    let tools: &[&str] = match kind {
        SandboxType::DockerNotebook => &[
            "notebook_executor",
            "python_executor",
            "shell_executor",
            "file_operation",
        ],
        _ => &[
            "python_executor",
            "shell_executor",
            "file_operation",
            "multi_code_executor",
        ],
    };
    tools.iter().map(ToString::to_string).collect()
}

fn describe(sandbox: &Sandbox) -> Map<String, Value> {
    let value = json!({
        "sandbox_id": sandbox.id,
        "type": sandbox.sandbox_type,
        "image": sandbox.image,
        "status": sandbox.status.as_str(),
        "tools": sandbox.tools,
        "created_at": sandbox.created_at,
        "network": sandbox.config.network_enabled,
        "memory": sandbox.config.memory_limit,
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn not_yours(id: &str) -> Reply {
    Reply::failed(
        "not_found",
        &format!("No sandbox {id} among the sandboxes of this session."),
        "Call sandbox_list to see yours, sandbox_create to make one, or leave sandbox_id out \
         to run in a throwaway sandbox.",
    )
}

pub(super) fn is_not_found(err: &anyhow::Error) -> bool {
    matches!(
        crate::error::find(err),
        Some(crate::error::Error::NotFound(_) | crate::error::Error::Vanished(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_or_prefix_names_only_the_tenants_own_sandboxes() {
        let owned = Owned::default();
        let (a, b) = (Tenant::new("a"), Tenant::new("b"));
        owned.add("abcd1234", &a);
        owned.add("abce5678", &a);
        owned.add("zzzz0000", &b);
        assert_eq!(owned.resolve(&a, "abcd1234").as_deref(), Some("abcd1234"));
        assert_eq!(owned.resolve(&a, "abcd").as_deref(), Some("abcd1234"));
        assert_eq!(owned.resolve(&a, "abc"), None, "ambiguous");
        assert_eq!(owned.resolve(&a, ""), None);
        assert_eq!(owned.resolve(&a, "zzzz0000"), None, "b's sandbox");
        assert_eq!(owned.resolve(&b, "z").as_deref(), Some("zzzz0000"));
        assert_eq!(owned.of(&a), ["abcd1234", "abce5678"]);
    }

    #[test]
    fn exit_removes_throwaways_always_and_created_ones_unless_kept() {
        let owned = Owned::default();
        owned.add("made0001", &Tenant::stdio());
        owned.add_throwaway("temp0001");
        let mut all = owned.all(false);
        all.sort();
        assert_eq!(all, ["made0001", "temp0001"]);
        assert_eq!(owned.all(true), ["temp0001"]);
        owned.forget("temp0001");
        assert_eq!(owned.all(true), Vec::<String>::new());
    }

    #[test]
    fn new_sandboxes_default_to_the_executors_of_their_type() {
        assert!(default_tools(SandboxType::Docker).contains(&"multi_code_executor".to_string()));
        assert!(!default_tools(SandboxType::Docker).contains(&"notebook_executor".to_string()));
        assert_eq!(
            default_tools(SandboxType::DockerNotebook)[0],
            "notebook_executor"
        );
    }
}

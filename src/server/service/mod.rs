//! The server's service layer: what the HTTP routes call. It keeps the server's sandboxes in
//! memory (owner, status, lifetimes, pool), enforces the operator's policy, pools sandboxes per
//! tenant, reaps the errored, expired and idle ones, and adopts what a previous run left.
//!
//! Every sandbox belongs to a tenant (`Caller::tenant`, label `enclave.tenant`); a caller sees
//! and uses only its own unless it is an admin, and anyone else's sandbox is `not found`.
//! Reads and calls make no extra engine round trip: the stored `Sandbox` goes to the manager;
//! only a failed call that a dead sandbox would explain costs one look at the engine.
//!
//! Beyond the API first agreed: `ServiceOptions: Default`, `ServiceError::{kind, hint,
//! report_of}` for the HTTP layer, and `Policy::allow_named_volumes` (named volumes are shared by
//! every tenant that names them, so they are refused by default).

mod policy;
mod pool;
mod reaper;
mod registry;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::Utc;
use futures_util::StreamExt;
use indexmap::IndexMap;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use policy::Policy;

use crate::error::{Error, Report};
use crate::manager::{CreateRequest, Health, Manager, ToolCall};
use crate::model::{
    ArchiveStream, DockerSandboxConfig, ExecOutcome, ExecSpec, ExecutionStatus, Location,
    NoProgress, OutputSink, Removed, Sandbox, SandboxInfo, SandboxStatus, SandboxType, ToolResult,
    VolcengineSandboxConfig,
};
use crate::session::{Session, SessionOptions};
use pool::{Pools, Refusal};
use registry::{secs_label, Entry, Registry, LABEL_IDLE, LABEL_POOL, LABEL_TENANT, LABEL_TTL};

/// Who is calling: the tenant its API key names, and whether it may see every tenant's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) tenant: String,
    pub(crate) admin: bool,
}

impl Caller {
    fn sees(&self, entry: &Entry) -> bool {
        self.admin || entry.tenant == self.tenant
    }
}

/// How the service behaves; the server's flags.
#[derive(Debug, Clone)]
pub(crate) struct ServiceOptions {
    /// What remote callers may ask.
    pub(crate) policy: Policy,
    /// Default lifetime of a sandbox (`None`: unlimited).
    pub(crate) ttl: Option<Duration>,
    /// A sandbox unused this long is removed (`None`: never). Free pool members are exempt.
    pub(crate) idle_timeout: Option<Duration>,
    /// The reaper's period; must be above zero.
    pub(crate) cleanup_interval: Duration,
    /// ms-enclave's `SandboxManagerConfig.pool_size`: what `/pool/initialize` makes by default.
    pub(crate) default_pool_size: usize,
    /// How long `/pool/execute` waits for a free sandbox when the caller does not say.
    pub(crate) default_pool_wait: Duration,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            policy: Policy::default(),
            ttl: None,
            idle_timeout: None,
            cleanup_interval: Duration::from_secs(300),
            default_pool_size: 0,
            default_pool_wait: Duration::from_secs(60),
        }
    }
}

/// The service's own failures, which the HTTP layer maps to statuses (`kind()` names them).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ServiceError {
    /// 400 on `/pool/execute`: no pool, or every member gone.
    #[error("Sandbox pool is empty, call initialize_pool first")]
    PoolEmpty,
    /// 408: no member became free in time.
    #[error("Timeout waiting for available sandbox from pool after {waited_secs}s")]
    PoolTimeout { waited_secs: f64 },
    /// 400: the config asks for something this server does not allow.
    #[error("{field}: {message}")]
    Policy { field: String, message: String },
    /// ms-enclave's active-sandbox guard: 404 on tool execute, 400 on archive upload (409 on
    /// `/v1`). `status` is in ms-enclave's words (stopped, error).
    #[error("Sandbox {id} is not active (status: {status})")]
    Inactive { id: String, status: String },
    /// 503: the server is shutting down and starts nothing new.
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl ServiceError {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ServiceError::PoolEmpty => "pool_empty",
            ServiceError::PoolTimeout { .. } => "pool_timeout",
            ServiceError::Policy { .. } => "policy",
            ServiceError::Inactive { .. } => "not_running",
            ServiceError::ShuttingDown => "shutting_down",
        }
    }

    pub(crate) fn hint(&self) -> Option<String> {
        let hint = match self {
            ServiceError::PoolEmpty => "POST /pool/initialize makes the pool",
            ServiceError::PoolTimeout { .. } => {
                "every pool member stayed busy; pass a longer `timeout`, or make the pool larger"
            }
            ServiceError::Policy { .. } => {
                "the server's operator sets what is allowed (`enclave server --help`)"
            }
            ServiceError::Inactive { .. } => {
                "a stopped sandbox stays stopped on a server: create a new one, and `enclave rm` \
                 removes this one"
            }
            ServiceError::ShuttingDown => "try again once it is back",
        };
        Some(hint.to_string())
    }

    /// The report of an error whose chain holds a `ServiceError` (`Report::of` knows only
    /// `crate::error::Error`); `None` for other errors.
    pub(crate) fn report_of(err: &anyhow::Error) -> Option<Report> {
        let service = err.chain().find_map(|e| e.downcast_ref::<ServiceError>())?;
        let message = match service {
            // ms-enclave's words stay in `detail` on its routes; the report speaks as a local
            // command would, so remote mode prints the same.
            ServiceError::Inactive { id, status } => {
                format!("sandbox `{id}` is not running (status: {status})")
            }
            other => other.to_string(),
        };
        let causes = err
            .chain()
            .map(ToString::to_string)
            .filter(|c| *c != message)
            .collect();
        Some(Report {
            kind: service.kind().to_string(),
            message,
            causes,
            hint: service.hint(),
            exit_code: crate::error::exit_code::FAILURE,
        })
    }
}

/// A status as ms-enclave's enum has it (it has no `paused` or `gone`).
pub(crate) fn compat_status(status: SandboxStatus) -> SandboxStatus {
    match status {
        SandboxStatus::Paused => SandboxStatus::Stopped,
        SandboxStatus::Gone => SandboxStatus::Error,
        other => other,
    }
}

/// The tasks working for requests and for the pool, counted so that `shutdown` can cancel
/// them and wait until they have stopped what they started (a command killed, a creation
/// undone, a sandbox registered) before the runtime goes.
struct Work {
    /// Held by every such task; `None` once shutdown began, so nothing new starts.
    ticket: Mutex<Option<mpsc::Sender<()>>>,
    /// Answers `None` once every ticket is dropped (nothing is ever sent).
    all_done: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

impl Work {
    fn new() -> Self {
        let (ticket, all_done) = mpsc::channel(1);
        Work {
            ticket: Mutex::new(Some(ticket)),
            all_done: tokio::sync::Mutex::new(all_done),
        }
    }

    fn ticket(&self) -> Option<mpsc::Sender<()>> {
        self.ticket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Lets nothing new start, then waits (at most `limit`) for what runs; whether it all ended.
    async fn close_and_wait(&self, limit: Duration) -> bool {
        self.ticket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let mut all_done = self.all_done.lock().await;
        tokio::time::timeout(limit, all_done.recv()).await.is_ok()
    }
}

/// How long shutdown waits for cancelled work to wind down (a process tree being killed and
/// checked takes a few engine round trips).
const WIND_DOWN: Duration = Duration::from_secs(30);

pub(crate) struct Service {
    manager: Arc<dyn Manager>,
    options: ServiceOptions,
    registry: Mutex<Registry>,
    pools: Pools,
    /// Cancelled by `shutdown`: stops the reaper, pool replacements and every request's work.
    stopping: CancellationToken,
    work: Work,
    reaper: Mutex<Option<JoinHandle<()>>>,
    /// Itself, for the tasks it spawns (replacements outlive the call that started them).
    this: Weak<Service>,
}

/// A call on one sandbox: counted while it runs (the reaper leaves it alone), and on its end,
/// however it ends, the sandbox's last use is now.
/// A sandbox in use (see `Service::in_use`).
pub(crate) struct InUse<'a> {
    _call: Call<'a>,
}

struct Call<'a> {
    service: &'a Service,
    id: String,
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        let mut registry = self.service.lock();
        if let Some(entry) = registry.entries.get_mut(&self.id) {
            entry.calls = entry.calls.saturating_sub(1);
            entry.last_used = Instant::now();
            entry.updated_at = Utc::now();
        }
    }
}

/// A sandbox being created counts against its tenant's cap until it is registered or failed.
struct Reservation<'a> {
    service: &'a Service,
    tenant: String,
    settled: bool,
}

impl Reservation<'_> {
    /// The sandbox is registered (in the same critical section), so it counts as an entry now.
    fn settle(mut self, registry: &mut Registry) {
        release_slot(registry, &self.tenant);
        self.settled = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.settled {
            release_slot(&mut self.service.lock(), &self.tenant);
        }
    }
}

fn release_slot(registry: &mut Registry, tenant: &str) {
    if let Some(n) = registry.creating.get_mut(tenant) {
        *n = n.saturating_sub(1);
    }
}

/// How a call ended, as far as its sandbox's health goes.
enum Verdict {
    Fine,
    /// It failed in a way a dead sandbox would explain: worth one look at the engine.
    Suspect {
        ran: bool,
    },
    /// The manager said the sandbox is gone.
    Gone,
}

impl Service {
    /// Adopts the sandboxes this server made before (from `manager.list()` and their labels),
    /// then starts the reaper.
    pub(crate) async fn start(
        manager: Arc<dyn Manager>,
        options: ServiceOptions,
    ) -> Result<Arc<Service>> {
        if options.cleanup_interval.is_zero() {
            return Err(Error::Usage("the cleanup interval must be above 0 seconds".into()).into());
        }
        let sandboxes = manager
            .list()
            .await
            .context("listing the sandboxes a previous run of this server made")?;
        let service = Arc::new_cyclic(|this| Service {
            manager,
            options,
            registry: Mutex::new(Registry::default()),
            pools: Pools::default(),
            stopping: CancellationToken::new(),
            work: Work::new(),
            reaper: Mutex::new(None),
            this: this.clone(),
        });
        service.adopt(sandboxes).await;
        let reaper = tokio::spawn(reaper::run(Arc::downgrade(&service)));
        *service
            .reaper
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reaper);
        Ok(service)
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers the sandboxes a previous run made: those in this server's state file with a
    /// tenant label. Pooled ones that still run go back to their tenant's pool; pooled ones that
    /// do not (the engine restarted, a member died while no server ran) are removed and
    /// replaced, as a member dying in a pool is.
    async fn adopt(&self, sandboxes: Vec<Sandbox>) {
        for sandbox in sandboxes {
            if !sandbox.tracked {
                continue;
            }
            let Some(tenant) = sandbox.labels.get(LABEL_TENANT).cloned() else {
                continue;
            };
            let info = match self.manager.info(&sandbox).await {
                Ok(info) => info,
                Err(e) => {
                    eprintln!("enclave server: not adopting `{}`: {e:#}", sandbox.id);
                    continue;
                }
            };
            let mut entry = Entry::new(sandbox, info, tenant.clone(), SandboxStatus::Running);
            let status = match entry.sandbox.status {
                SandboxStatus::Running if entry.pooled => SandboxStatus::Idle,
                SandboxStatus::Running => SandboxStatus::Running,
                SandboxStatus::Gone => SandboxStatus::Error,
                other => other,
            };
            entry.status = status;
            let dead_member = (entry.pooled && status != SandboxStatus::Idle).then(|| {
                entry.pooled = false;
                entry.set_status(SandboxStatus::Error);
                Replacement::of(&entry)
            });
            let id = entry.sandbox.id.clone();
            self.lock().entries.insert(id.clone(), entry);
            if status == SandboxStatus::Idle {
                self.pools.add(&tenant, id, false);
            } else if let Some(replacement) = dead_member {
                self.pools.expect(&tenant, 1);
                self.spawn_replacement(replacement, Some(id));
            }
        }
    }

    /// Creates a sandbox for `caller`, after the policy allows its config.
    pub(crate) async fn create(
        &self,
        caller: &Caller,
        sandbox_type: SandboxType,
        config: DockerSandboxConfig,
        labels: BTreeMap<String, String>,
        cancel: &CancellationToken,
    ) -> Result<SandboxInfo> {
        self.admit(caller, &config, &labels, 1)?;
        let id = self
            .make(
                &caller.tenant,
                docker(sandbox_type, config, labels),
                false,
                cancel,
            )
            .await?;
        self.get(caller, &id)
    }

    /// Creates a `volcengine` sandbox for `caller`, after the policy allows its service: this
    /// server will POST code to its `base_url`.
    pub(crate) async fn create_volcengine(
        &self,
        caller: &Caller,
        config: VolcengineSandboxConfig,
        labels: BTreeMap<String, String>,
        cancel: &CancellationToken,
    ) -> Result<SandboxInfo> {
        crate::volcengine::Volcengine::check(&config)?;
        self.options.policy.check_volcengine(&config)?;
        self.admit_labels_and_count(caller, &labels, 1)?;
        let request = CreateRequest {
            sandbox_type: SandboxType::Volcengine,
            config: DockerSandboxConfig::default(),
            volcengine: Some(config),
            extra_labels: labels.into_iter().collect(),
        };
        let id = self.make(&caller.tenant, request, false, cancel).await?;
        self.get(caller, &id)
    }

    /// Checks what a caller asks for before anything is made.
    fn admit(
        &self,
        caller: &Caller,
        config: &DockerSandboxConfig,
        labels: &BTreeMap<String, String>,
        count: usize,
    ) -> Result<()> {
        config.validate().map_err(Error::InvalidConfig)?;
        self.options.policy.check(config)?;
        self.admit_labels_and_count(caller, labels, count)
    }

    /// The checks every new sandbox passes, whatever its type: no reserved labels, and room
    /// under the caller's cap.
    fn admit_labels_and_count(
        &self,
        caller: &Caller,
        labels: &BTreeMap<String, String>,
        count: usize,
    ) -> Result<()> {
        if let Some(key) = labels.keys().find(|k| k.starts_with("enclave.")) {
            return Err(Error::InvalidConfig(format!(
                "label `{key}`: the `enclave.` prefix is reserved"
            ))
            .into());
        }
        let registry = self.lock();
        self.options
            .policy
            .check_count(registry.count(&caller.tenant), count)?;
        Ok(())
    }

    /// Creates and registers one sandbox (`request.extra_labels` are the caller's); its id.
    /// The tenant's cap is checked again here, as concurrent creations may have used it up
    /// since `admit`.
    async fn make(
        &self,
        tenant: &str,
        request: CreateRequest,
        pooled: bool,
        cancel: &CancellationToken,
    ) -> Result<String> {
        let reservation = self.reserve(tenant)?;
        let mut extra: BTreeMap<String, String> = request.extra_labels.into_iter().collect();
        extra.insert(LABEL_TENANT.into(), tenant.to_string());
        if let Some(ttl) = self.options.ttl {
            extra.insert(LABEL_TTL.into(), secs_label(ttl));
        }
        if let Some(idle) = self.options.idle_timeout {
            extra.insert(LABEL_IDLE.into(), secs_label(idle));
        }
        if pooled {
            extra.insert(LABEL_POOL.into(), "1".into());
        }
        let (config, volcengine) = (request.config.clone(), request.volcengine.clone());
        let request = CreateRequest {
            extra_labels: extra.clone().into_iter().collect(),
            ..request
        };
        let info = self.manager.create(request, &NoProgress, cancel).await?;
        let base = Sandbox::from_info(&info, config, Location::Docker);
        let sandbox = Sandbox {
            labels: extra,
            image: volcengine
                .as_ref()
                .map_or(base.image.clone(), VolcengineSandboxConfig::host),
            volcengine,
            ..base
        };
        let status = if pooled {
            SandboxStatus::Busy // handed to the pool by the caller
        } else {
            SandboxStatus::Running
        };
        let id = info.id.clone();
        let entry = Entry::new(sandbox, info, tenant.to_string(), status);
        let mut registry = self.lock();
        registry.entries.insert(id.clone(), entry);
        reservation.settle(&mut registry);
        Ok(id)
    }

    fn reserve(&self, tenant: &str) -> Result<Reservation<'_>> {
        let mut registry = self.lock();
        self.options.policy.check_count(registry.count(tenant), 1)?;
        *registry.creating.entry(tenant.to_string()).or_default() += 1;
        Ok(Reservation {
            service: self,
            tenant: tenant.to_string(),
            settled: false,
        })
    }

    /// The caller's sandboxes (every tenant's for an admin), oldest first.
    pub(crate) fn list(&self, caller: &Caller) -> Vec<SandboxInfo> {
        let registry = self.lock();
        let mut infos: Vec<SandboxInfo> = registry
            .entries
            .values()
            .filter(|e| caller.sees(e))
            .map(Entry::info)
            .collect();
        infos.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        infos
    }

    /// The sandbox with exactly this id.
    pub(crate) fn get(&self, caller: &Caller, id: &str) -> Result<SandboxInfo> {
        self.with_entry(caller, id, Entry::info)
    }

    /// The sandbox with this id, or the only one whose id starts with it.
    pub(crate) fn resolve(&self, caller: &Caller, id_or_prefix: &str) -> Result<SandboxInfo> {
        if id_or_prefix.trim().is_empty() {
            return Err(Error::Usage("a sandbox id must not be empty".into()).into());
        }
        let registry = self.lock();
        if let Some(entry) = registry.entries.get(id_or_prefix) {
            if caller.sees(entry) {
                return Ok(entry.info());
            }
        }
        let mut matches: Vec<&Entry> = registry
            .entries
            .values()
            .filter(|e| caller.sees(e) && e.sandbox.id.starts_with(id_or_prefix))
            .collect();
        match matches.len() {
            0 => Err(Error::NotFound(id_or_prefix.to_string()).into()),
            1 => Ok(matches[0].info()),
            _ => {
                matches.sort_by(|a, b| a.sandbox.id.cmp(&b.sandbox.id));
                Err(Error::Ambiguous {
                    prefix: id_or_prefix.to_string(),
                    candidates: matches.iter().map(|e| e.sandbox.id.clone()).collect(),
                }
                .into())
            }
        }
    }

    fn with_entry<T>(&self, caller: &Caller, id: &str, f: impl FnOnce(&Entry) -> T) -> Result<T> {
        let registry = self.lock();
        match registry.entries.get(id) {
            Some(entry) if caller.sees(entry) => Ok(f(entry)),
            _ => Err(Error::NotFound(id.to_string()).into()),
        }
    }

    /// Stops the sandbox's processes; it stays, `stopped`, until deleted. A pool member leaves
    /// its pool and a fresh one takes its place.
    /// Stops the sandbox. It runs to its end even if the caller goes away meanwhile.
    pub(crate) async fn stop(&self, caller: &Caller, id: &str) -> Result<()> {
        let (caller, id) = (caller.clone(), id.to_string());
        self.to_the_end(move |service| async move { service.stop_now(&caller, &id).await })
            .await
    }

    async fn stop_now(&self, caller: &Caller, id: &str) -> Result<()> {
        let (sandbox, tenant) =
            self.with_entry(caller, id, |e| (e.sandbox.clone(), e.tenant.clone()))?;
        self.manager.stop(&sandbox).await?;
        let replace = {
            let mut registry = self.lock();
            let Some(entry) = registry.entries.get_mut(id) else {
                return Ok(());
            };
            entry.sandbox.status = SandboxStatus::Stopped;
            entry.set_status(SandboxStatus::Stopped);
            let pooled = std::mem::replace(&mut entry.pooled, false);
            pooled.then(|| Replacement::of(entry))
        };
        if let Some(replacement) = replace {
            if self.pools.remove(&tenant, id, true) {
                self.spawn_replacement(replacement, None);
            }
        }
        Ok(())
    }

    /// Removes the sandbox (its container too) and forgets it. A pool member leaves its pool.
    /// It runs to its end even if the caller goes away meanwhile: dropped halfway, the server
    /// would forget a container that still exists.
    pub(crate) async fn delete(&self, caller: &Caller, id: &str) -> Result<Removed> {
        let (caller, id) = (caller.clone(), id.to_string());
        self.to_the_end(move |service| async move { service.delete_now(&caller, &id).await })
            .await
    }

    async fn delete_now(&self, caller: &Caller, id: &str) -> Result<Removed> {
        let entry = {
            let mut registry = self.lock();
            match registry.entries.get(id) {
                Some(entry) if caller.sees(entry) => registry.entries.remove(id),
                _ => None,
            }
        }
        .ok_or_else(|| Error::NotFound(id.to_string()))?;
        self.pools.remove(&entry.tenant, id, false);
        match self.manager.remove(&entry.sandbox).await {
            Ok(removed) => Ok(removed),
            Err(e) => {
                // Kept, in error, so the reaper tries again; the caller learns why.
                let mut entry = entry;
                entry.set_status(SandboxStatus::Error);
                entry.pooled = false;
                self.lock().entries.insert(id.to_string(), entry);
                Err(e)
            }
        }
    }

    /// The sandbox's enabled tools and their schemas (any status).
    pub(crate) fn tools(&self, caller: &Caller, id: &str) -> Result<IndexMap<String, Value>> {
        self.with_entry(caller, id, |e| e.info.available_tools.clone())
    }

    /// Whether a call on this sandbox would start now (it is the caller's and active), from
    /// the registry alone: what the exec route answers before it commits to a stream.
    pub(crate) fn check_callable(&self, caller: &Caller, id: &str) -> Result<()> {
        let mut registry = self.lock();
        let entry = callable(&mut registry, caller, id)?;
        // Said before a stream starts, as a plain error: it has no shell to run a command in.
        if entry.sandbox.volcengine.is_some() {
            return Err(Error::NoShell {
                id: entry.sandbox.id.clone(),
                what: "run commands",
            }
            .into());
        }
        Ok(())
    }

    /// Starts a call on an active sandbox: the stored `Sandbox` for the manager, and the
    /// guard that counts the call.
    fn begin(&self, caller: &Caller, id: &str) -> Result<(Sandbox, Call<'_>)> {
        let mut registry = self.lock();
        let entry = callable(&mut registry, caller, id)?;
        entry.calls += 1;
        let mut sandbox = entry.sandbox.clone();
        // The manager runs calls on running sandboxes only; idle and busy are ours.
        sandbox.status = SandboxStatus::Running;
        Ok((
            sandbox,
            Call {
                service: self,
                id: id.to_string(),
            },
        ))
    }

    pub(crate) async fn execute_tool(
        &self,
        caller: &Caller,
        id: &str,
        call: ToolCall,
    ) -> Result<ToolResult> {
        let (sandbox, guard) = self.begin(caller, id)?;
        let result = self.manager.execute_tool(&sandbox, call).await;
        drop(guard);
        self.after_call(&sandbox, tool_verdict(&result)).await;
        result
    }

    pub(crate) async fn exec(
        &self,
        caller: &Caller,
        id: &str,
        spec: ExecSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<ExecOutcome> {
        let (sandbox, guard) = self.begin(caller, id)?;
        let outcome = self.manager.exec(&sandbox, spec, sink).await;
        drop(guard);
        self.after_call(&sandbox, error_verdict(outcome.as_ref().err()))
            .await;
        outcome
    }

    pub(crate) async fn put_archive(
        &self,
        caller: &Caller,
        id: &str,
        dir: &str,
        tar: Bytes,
    ) -> Result<()> {
        let (sandbox, guard) = self.begin(caller, id)?;
        let done = self.manager.put_archive(&sandbox, dir, tar).await;
        drop(guard);
        self.after_call(&sandbox, error_verdict(done.as_ref().err()))
            .await;
        done
    }

    pub(crate) async fn get_archive(
        &self,
        caller: &Caller,
        id: &str,
        path: &str,
    ) -> Result<ArchiveStream> {
        let (sandbox, guard) = self.begin(caller, id)?;
        let stream = self.manager.get_archive(&sandbox, path).await;
        drop(guard);
        self.after_call(&sandbox, error_verdict(stream.as_ref().err()))
            .await;
        stream
    }

    /// Opens an interactive session on the caller's active sandbox (the session endpoint).
    pub(crate) async fn open_session(
        &self,
        caller: &Caller,
        id: &str,
        options: SessionOptions,
    ) -> Result<Box<dyn Session>> {
        let (sandbox, guard) = self.begin(caller, id)?;
        let session = self.manager.open_session(&sandbox, options).await;
        drop(guard);
        self.after_call(&sandbox, error_verdict(session.as_ref().err()))
            .await;
        session
    }

    /// Marks the caller's sandbox in use while the guard lives: one input of a session, so an
    /// input that runs long is never reaped as idle, and an idle session's sandbox still is.
    pub(crate) fn in_use(&self, caller: &Caller, id: &str) -> Result<InUse<'_>> {
        self.begin(caller, id)
            .map(|(_, call)| InUse { _call: call })
    }

    /// After a call that may have met a dead sandbox: marks it so, once the engine confirms
    /// (one look, on failures only). Whether it is dead.
    async fn after_call(&self, sandbox: &Sandbox, verdict: Verdict) -> bool {
        let dead = match verdict {
            Verdict::Fine => return false,
            Verdict::Gone => Some(SandboxStatus::Error),
            Verdict::Suspect { .. } => match self.manager.find(&sandbox.id).await {
                Ok(found) if found.status == SandboxStatus::Running => None,
                Ok(found) if found.status == SandboxStatus::Gone => Some(SandboxStatus::Error),
                Ok(found) => Some(found.status),
                Err(e) if is_not_found(&e) => Some(SandboxStatus::Error),
                // The engine does not answer: nothing learnt.
                Err(_) => None,
            },
        };
        let Some(status) = dead else {
            return false;
        };
        let replacement = {
            let mut registry = self.lock();
            let Some(entry) = registry.entries.get_mut(&sandbox.id) else {
                return true;
            };
            entry.sandbox.status = if status == SandboxStatus::Error {
                SandboxStatus::Gone
            } else {
                status
            };
            // A lent pool member stays busy until it is returned; `Lent` retires it then.
            if entry.status == SandboxStatus::Busy {
                return true;
            }
            entry.set_status(status);
            // A free member called directly leaves the free list now, so no one is lent it.
            let free_member = entry.pooled && self.pools.take_free(&entry.tenant, &sandbox.id);
            free_member.then(|| {
                entry.pooled = false;
                entry.set_status(SandboxStatus::Error);
                Replacement::of(entry)
            })
        };
        if let Some(replacement) = replacement {
            self.spawn_replacement(replacement, Some(sandbox.id.clone()));
        }
        true
    }

    /// Adds `size` sandboxes (the default pool size when `None` or 0) to the caller's pool;
    /// their ids. Some may fail: the others are kept; if all fail, the first failure is the
    /// answer.
    pub(crate) async fn pool_initialize(
        &self,
        caller: &Caller,
        size: Option<usize>,
        sandbox_type: SandboxType,
        config: Option<DockerSandboxConfig>,
    ) -> Result<Vec<String>> {
        let size = match size {
            Some(n) if n > 0 => n,
            _ => self.options.default_pool_size,
        };
        if size == 0 {
            return Ok(Vec::new());
        }
        if sandbox_type == SandboxType::Volcengine {
            return Err(Error::InvalidConfig(
                "pools hold container sandboxes; create volcengine sandboxes one by one \
                 (each is only a handle on its service, with nothing to warm up)"
                    .into(),
            )
            .into());
        }
        let config = config.unwrap_or_default();
        self.admit(caller, &config, &BTreeMap::new(), size)?;
        let tenant = caller.tenant.as_str();
        self.pools.expect(tenant, size);
        let cancel = self.stopping.child_token();
        let makes = (0..size).map(|_| {
            let config = config.clone();
            let cancel = cancel.clone();
            async move {
                let made = self
                    .make(
                        tenant,
                        docker(sandbox_type, config, BTreeMap::new()),
                        true,
                        &cancel,
                    )
                    .await;
                match &made {
                    Ok(id) => self.join_pool(tenant, id),
                    Err(_) => self.pools.abandon(tenant),
                }
                made
            }
        });
        let results: Vec<Result<String>> = futures_util::stream::iter(makes)
            .buffered(CREATE_CONCURRENCY)
            .collect()
            .await;
        let mut ids = Vec::new();
        let mut first_error = None;
        for result in results {
            match result {
                Ok(id) => ids.push(id),
                Err(e) => {
                    eprintln!("enclave server: a pool sandbox was not created: {e:#}");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if ids.is_empty() => Err(e),
            _ => Ok(ids),
        }
    }

    /// A new pool member: free, in its tenant's pool.
    fn join_pool(&self, tenant: &str, id: &str) {
        if let Some(entry) = self.lock().entries.get_mut(id) {
            entry.set_status(SandboxStatus::Idle);
        }
        self.pools.add(tenant, id.to_string(), true);
    }

    /// Runs a tool on the caller's least recently used free pool member, waiting for one in
    /// arrival order up to `wait`. A member found dead is replaced, and the call goes to
    /// another member once if it never ran.
    pub(crate) async fn pool_execute(
        &self,
        caller: &Caller,
        call: ToolCall,
        wait: Option<Duration>,
    ) -> Result<ToolResult> {
        let wait = wait
            .filter(|w| !w.is_zero())
            .unwrap_or(self.options.default_pool_wait);
        let deadline = Instant::now() + wait;
        let mut call = call;
        let mut retried = false;
        loop {
            let id = self.acquire(caller, deadline, wait, &call.cancel).await?;
            let lent = Lent {
                service: self,
                tenant: caller.tenant.clone(),
                id,
                dead: false,
            };
            let retry = ToolCall {
                tool: call.tool.clone(),
                args: call.args.clone(),
                deadline: call.deadline,
                cancel: call.cancel.clone(),
            };
            let owner = Caller {
                tenant: caller.tenant.clone(),
                admin: false,
            };
            // Deleted or stopped between the pool and here: it goes back (or is replaced).
            let Ok((sandbox, guard)) = self.begin(&owner, &lent.id) else {
                continue;
            };
            let result = self.manager.execute_tool(&sandbox, call).await;
            drop(guard);
            let verdict = tool_verdict(&result);
            let ran = !matches!(verdict, Verdict::Suspect { ran: false });
            let mut lent = lent;
            lent.dead = self.after_call(&sandbox, verdict).await;
            if lent.dead && !ran && !retried {
                retried = true;
                call = retry;
                continue;
            }
            return result;
        }
    }

    /// A healthy free member of the caller's pool, lent (busy), waiting until `deadline`. A
    /// caller that goes away (`cancel`) leaves the queue at once, passing on anything handed
    /// to it; a member found dead since it was freed is replaced rather than lent.
    async fn acquire(
        &self,
        caller: &Caller,
        deadline: Instant,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let id = match self.pools.acquire(&caller.tenant, left, cancel).await {
                Ok(id) => id,
                Err(Refusal::Cancelled) => {
                    return Err(anyhow::anyhow!(
                        "the caller went away while waiting for the pool"
                    ))
                }
                Err(Refusal::Empty) => return Err(ServiceError::PoolEmpty.into()),
                Err(Refusal::TimedOut) => {
                    return Err(ServiceError::PoolTimeout {
                        waited_secs: wait.as_secs_f64(),
                    }
                    .into())
                }
            };
            let healthy = match self.lock().entries.get_mut(&id) {
                Some(entry)
                    if entry.status == SandboxStatus::Idle
                        && entry.sandbox.status == SandboxStatus::Running =>
                {
                    entry.set_status(SandboxStatus::Busy);
                    true
                }
                Some(_) => false,
                None => {
                    self.pools.remove(&caller.tenant, &id, false);
                    continue;
                }
            };
            if healthy {
                return Ok(id);
            }
            self.retire(&caller.tenant, &id);
        }
    }

    /// A pool member that came back dead (or stopped): out of the pool, removed, and replaced
    /// by a fresh one with the same config.
    fn retire(&self, tenant: &str, id: &str) {
        let replacement = {
            let mut registry = self.lock();
            let Some(entry) = registry.entries.get_mut(id) else {
                return;
            };
            entry.pooled = false;
            entry.set_status(SandboxStatus::Error);
            Replacement::of(entry)
        };
        if self.pools.remove(tenant, id, true) {
            self.spawn_replacement(replacement, Some(id.to_string()));
        }
    }

    /// Makes a new pool member in the background (the pool expects it); with `dead`, first
    /// removes that sandbox.
    fn spawn_replacement(&self, replacement: Replacement, dead: Option<String>) {
        let Some(service) = self.this.upgrade() else {
            self.pools.abandon(&replacement.tenant);
            return;
        };
        let tenant = replacement.tenant.clone();
        let spawned = self.spawn_work(async move {
            if let Some(id) = dead {
                service.forget(&id).await;
            }
            let cancel = service.stopping.child_token();
            let made = service
                .make(
                    &replacement.tenant,
                    docker(
                        replacement.sandbox_type,
                        replacement.config,
                        replacement.labels,
                    ),
                    true,
                    &cancel,
                )
                .await;
            match made {
                Ok(id) => service.join_pool(&replacement.tenant, &id),
                Err(e) => {
                    eprintln!("enclave server: a dead pool sandbox could not be replaced: {e:#}");
                    service.pools.abandon(&replacement.tenant);
                }
            }
        });
        if spawned.is_none() {
            // Shutting down: the dead one stays for the next run, which replaces it.
            self.pools.abandon(&tenant);
        }
    }

    /// A token for one piece of work (a request's): cancelled by whoever holds it, and by
    /// `shutdown` for whatever still runs when the grace period is over.
    pub(crate) fn work_token(&self) -> CancellationToken {
        self.stopping.child_token()
    }

    /// Runs `work` in a task of its own that `shutdown` waits for; `None` (nothing runs) once
    /// the server is shutting down.
    pub(crate) fn spawn_work<F>(&self, work: F) -> Option<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let ticket = self.work.ticket()?;
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(runtime.spawn(async move {
            let _ticket = ticket;
            work.await
        }))
    }

    /// Runs `work` in a task of its own that `shutdown` waits for, so that dropping the returned
    /// future (a client that left) does not cut it short.
    async fn to_the_end<T, F>(&self, work: impl FnOnce(Arc<Service>) -> F) -> Result<T>
    where
        F: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let service = self.this.upgrade().ok_or(ServiceError::ShuttingDown)?;
        let task = self
            .spawn_work(work(service))
            .ok_or(ServiceError::ShuttingDown)?;
        task.await.context("the task doing the work failed")?
    }

    /// Removes a sandbox the server gave up on (reaped, dead).
    async fn forget(&self, id: &str) {
        let Some(entry) = self.lock().entries.remove(id) else {
            return;
        };
        self.remove_entry(entry).await;
    }

    /// Removes an entry's sandbox, already out of the registry; if the engine refuses, the
    /// entry comes back in error for the reaper to try again.
    async fn remove_entry(&self, entry: Entry) {
        let id = entry.sandbox.id.clone();
        self.pools.remove(&entry.tenant, &id, false);
        if let Err(e) = self.manager.remove(&entry.sandbox).await {
            if !is_not_found(&e) {
                eprintln!("enclave server: could not remove `{id}`: {e:#}");
                let mut entry = entry;
                entry.set_status(SandboxStatus::Error);
                entry.pooled = false;
                self.lock().entries.insert(id, entry);
            }
        }
    }

    /// ms-enclave's local stats (reference §4.3) for the caller's sandboxes (every tenant's
    /// for an admin) and pool, plus enclave's own keys. Statuses in ms-enclave's words.
    pub(crate) fn stats(&self, caller: &Caller) -> Value {
        let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
        let mut types: BTreeMap<&str, usize> = BTreeMap::new();
        let mut total = 0;
        {
            let registry = self.lock();
            for entry in registry.entries.values().filter(|e| caller.sees(e)) {
                total += 1;
                *statuses
                    .entry(compat_status(entry.status).as_str())
                    .or_default() += 1;
                *types
                    .entry(entry.sandbox.sandbox_type.as_str())
                    .or_default() += 1;
            }
        }
        let pool = self.pools.stats(&caller.tenant);
        json!({
            "manager_type": "local",
            "total_sandboxes": total,
            "status_counts": registry::count_map(statuses),
            "sandbox_types": registry::count_map(types),
            "running": !self.stopping.is_cancelled(),
            "cleanup_interval": secs_json(self.options.cleanup_interval),
            "pool_size": pool.free,
            "pool_enabled": self.options.default_pool_size > 0,
            "pool_initialized": pool.initialized,
            "pool_members": pool.members,
            "pool_pending": pool.pending,
            "pool_waiters": pool.waiters,
            "tenant": caller.tenant,
        })
    }

    /// Asks the engine whether it answers.
    pub(crate) async fn health(&self) -> Result<Health> {
        self.manager.health().await
    }

    /// Cancels whatever still runs (the HTTP layer's grace period is over: commands are
    /// killed, creations undone) and waits for it to wind down, so nothing is dropped halfway
    /// and no sandbox registers after the last look; stops the reaper; then with `remove_all`
    /// removes every sandbox (ms-enclave's behaviour), else leaves them for the next run.
    pub(crate) async fn shutdown(&self, remove_all: bool) {
        self.stopping.cancel();
        if !self.work.close_and_wait(WIND_DOWN).await {
            eprintln!(
                "enclave server: some cancelled work did not end within {}s",
                WIND_DOWN.as_secs()
            );
        }
        let reaper = self
            .reaper
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(reaper) = reaper {
            let _ = reaper.await;
        }
        if remove_all {
            let ids: Vec<String> = self.lock().entries.keys().cloned().collect();
            futures_util::stream::iter(ids)
                .for_each_concurrent(CREATE_CONCURRENCY, |id| async move {
                    self.forget(&id).await;
                })
                .await;
        }
    }
}

/// The caller's sandbox `id`, if it accepts calls now.
fn callable<'r>(registry: &'r mut Registry, caller: &Caller, id: &str) -> Result<&'r mut Entry> {
    let entry = match registry.entries.get_mut(id) {
        Some(entry) if caller.sees(entry) => entry,
        _ => return Err(Error::NotFound(id.to_string()).into()),
    };
    if !entry.is_active() {
        return Err(ServiceError::Inactive {
            id: id.to_string(),
            status: compat_status(entry.status).as_str().to_string(),
        }
        .into());
    }
    Ok(entry)
}

/// Sandboxes created (or removed) at once by one request: enough to be quick, few enough not
/// to swamp a small engine.
const CREATE_CONCURRENCY: usize = 4;

/// A pool member lent to one call; back to the pool when the call ends, however it ends
/// (a caller that went away included), or retired if it died.
struct Lent<'a> {
    service: &'a Service,
    tenant: String,
    id: String,
    dead: bool,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let healthy = {
            let mut registry = self.service.lock();
            match registry.entries.get_mut(&self.id) {
                Some(entry)
                    if !self.dead
                        && entry.pooled
                        && entry.sandbox.status == SandboxStatus::Running =>
                {
                    entry.set_status(SandboxStatus::Idle);
                    true
                }
                Some(_) => false,
                // Deleted meanwhile: not ours to return.
                None => return,
            }
        };
        if healthy {
            self.service.pools.release(&self.tenant, &self.id);
        } else if self.service.pools.is_member(&self.tenant, &self.id) {
            self.service.retire(&self.tenant, &self.id);
        }
    }
}

/// What a pool member is made from again.
struct Replacement {
    tenant: String,
    sandbox_type: SandboxType,
    config: DockerSandboxConfig,
    labels: BTreeMap<String, String>,
}

impl Replacement {
    fn of(entry: &Entry) -> Self {
        Replacement {
            tenant: entry.tenant.clone(),
            sandbox_type: entry.sandbox.sandbox_type,
            config: entry.sandbox.config.clone(),
            labels: entry.user_labels(),
        }
    }
}

/// Whole seconds as an integer (ms-enclave's `300`), else a float.
fn secs_json(d: Duration) -> Value {
    if d.subsec_nanos() == 0 {
        d.as_secs().into()
    } else {
        d.as_secs_f64().into()
    }
}

fn is_not_found(err: &anyhow::Error) -> bool {
    matches!(
        crate::error::find(err),
        Some(Error::NotFound(_) | Error::Vanished(_))
    )
}

fn error_verdict(err: Option<&anyhow::Error>) -> Verdict {
    match err.map(crate::error::find) {
        None => Verdict::Fine,
        Some(Some(Error::Vanished(_) | Error::NotFound(_))) => Verdict::Gone,
        // Refused by the engine (no such container, container not running) or unreachable.
        Some(Some(Error::Refused { .. }) | None) => Verdict::Suspect { ran: false },
        Some(Some(_)) => Verdict::Fine,
    }
}

/// A tool call that failed around its command (`Execution failed: ...` with no
/// `duration_ms`: see `tools::run`) may have met a dead sandbox; so may a command that ran
/// and never reported an exit code. A command that exited with a code had a live sandbox.
fn tool_verdict(result: &Result<ToolResult>) -> Verdict {
    let r = match result {
        Err(e) => return error_verdict(Some(e)),
        Ok(r) if r.status != ExecutionStatus::Error => return Verdict::Fine,
        Ok(r) => r,
    };
    let ran = r.metadata.contains_key("duration_ms");
    let exited = r.metadata.get("exit_code").is_some_and(Value::is_i64);
    let failed_around = r
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("Execution failed"));
    match (ran, exited) {
        (true, true) => Verdict::Fine,
        (true, false) => Verdict::Suspect { ran: true },
        (false, _) if failed_around => Verdict::Suspect { ran: false },
        (false, _) => Verdict::Fine,
    }
}

/// A request for a container sandbox with the caller's `labels`.
fn docker(
    sandbox_type: SandboxType,
    config: DockerSandboxConfig,
    labels: BTreeMap<String, String>,
) -> CreateRequest {
    CreateRequest {
        sandbox_type,
        config,
        volcengine: None,
        extra_labels: labels.into_iter().collect(),
    }
}

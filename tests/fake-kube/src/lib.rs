//! A **fake** Kubernetes API server, for tests only: it runs Pods as containers on the local
//! Docker engine and serves plain HTTP on `127.0.0.1` (no TLS, no authentication), or, with
//! [`FakeKube::start_with`], HTTPS with a CA of its own and a bearer token it requires
//! ([`Options`]): what a Pod's service account gives a client in a cluster.
//!
//! It is strict on purpose: it models a small part of the API the way the real API server answers
//! it (`metav1.Status` error bodies, `resourceVersion`, `metadata.uid`, `creationTimestamp`, watch
//! events), and answers everything else with an error that names what it does not model, so a
//! client that passes against the fake has not relied on something the fake made up.
//!
//! # What it models
//! - Discovery for kubectl and kube-rs: `/version`, `/api`, `/api/v1` (pods, pods/exec,
//!   namespaces), `/apis`, `/apis/networking.k8s.io/v1` (networkpolicies), and an OpenAPI v2
//!   document with no definitions (kubectl's client-side validation needs one and skips what it
//!   does not describe). Aggregated discovery is answered in the legacy form, and whatever else
//!   kubectl asks for (`/openapi/v3`, events, logs) gets a 404 Status, which kubectl handles.
//! - Pods in any namespace (namespaces themselves always exist): create (409 `AlreadyExists`, 422
//!   `Invalid` on a bad name), get, list and watch with `labelSelector` (`a=b`, `a!=b`, `a`, `!a`,
//!   `a in (x,y)`, `a notin (x,y)`) and `fieldSelector` (`metadata.name`, `metadata.namespace`,
//!   `status.phase`), `limit`/`continue`, kubectl's Table output, delete (grace period from the
//!   query, the DeleteOptions body or the pod spec: the pod shows a `deletionTimestamp`, its
//!   container is stopped, then it is removed; a pod that no node runs goes at once).
//! - Status transitions as a kubelet makes them: Pending (`PodScheduled`), `ContainerCreating`,
//!   Running (Ready), then Succeeded or Failed with a `terminated` state when the container exits;
//!   an image not on the local engine → Pending with `ErrImagePull` then `ImagePullBackOff` (the
//!   fake never pulls); `activeDeadlineSeconds` → Failed, reason `DeadlineExceeded`, container
//!   killed. Each change bumps `resourceVersion` and is a MODIFIED watch event.
//! - The one container of a pod: image, command, args, env (`name`/`value`), workingDir, stdin,
//!   tty, `resources.limits` memory and cpu, securityContext capabilities add/drop, privileged,
//!   readOnlyRootFilesystem and `allowPrivilegeEscalation: false` (Docker's no-new-privileges),
//!   `volumeMounts` (`name`, `mountPath`, `readOnly`, which makes a read-only mount).
//!   Accepted knowingly without effect: `resources.requests` (no scheduler to steer),
//!   `automountServiceAccountToken` and `enableServiceLinks` (no service accounts or services),
//!   `imagePullPolicy` (never pulls), `terminationMessagePath`/`Policy`; the pod-level
//!   `seccompProfile: RuntimeDefault` is Docker's default profile (`Unconfined` turns it off).
//!   With the two items below, that is every field of the enclave backend's Pod (its manifest
//!   snapshot, and the Pod that installs the agent from an init container).
//! - `spec.initContainers`, any number, with the same fields as the container: each runs as its
//!   own Docker container, in order and to completion, before the main container is created, and
//!   is removed once it exited (its exit status stays in `initContainerStatuses`). Meanwhile the
//!   pod is Pending, condition `Initialized` False, the init container `running` then
//!   `terminated` (`Completed`, or `Error` with its exit code), the main container waiting with
//!   `PodInitializing`; kubectl's STATUS column reads `Init:0/1`, then `PodInitializing`. An init
//!   container that exits non-zero makes the pod Failed (`Init:Error`; `restartPolicy` is always
//!   Never) and the main container is never created; a missing init image gives its status
//!   `ErrImagePull` then `ImagePullBackOff` (`Init:ImagePullBackOff`), the pod staying Pending.
//!   Init container names must differ from each other and from the container's (422).
//! - `spec.volumes` of type `emptyDir` (`medium` "" only; `sizeLimit` is checked as a quantity
//!   and **not enforced**): each is a Docker volume named
//!   `fake-kube-<instance>-<ns>-<pod>_vol_<volume>`, labelled like the containers, created empty
//!   (never filled from the image) when the pod starts and removed with the pod. As on the real
//!   server: volume names are RFC 1123 labels and unique, a mount names a volume of the pod and a
//!   mount path is used once per container (422 Invalid otherwise); the fake also requires an
//!   absolute `mountPath` (422), which Docker needs.
//! - NetworkPolicies (networking.k8s.io/v1): create, get, list, delete. **The fake's model of
//!   enforcement**: a Pod created while a policy that selects it by `matchLabels` denies all
//!   egress (`policyTypes` has `Egress`, no egress rules) runs with Docker network mode `none`.
//!   Policies with rules, or selecting with `matchExpressions`, are refused: they are not modelled.
//! - exec over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`), run as a Docker exec in the
//!   pod's container, ending with a `metav1.Status` on channel 3. As on a real cluster (API server
//!   1.30+, which translates WebSocket to the kubelet's SPDY), checks on the pod happen before the
//!   upgrade (404 unknown pod, 400 completed pod, 400 unknown container, 400 pod without a node)
//!   and a container that does not exist yet or any more is reported after it, as an
//!   `InternalError` Status on channel 3.
//!
//! # What it rejects (400 BadRequest naming the field or parameter)
//! Any query parameter an endpoint does not model (including `dryRun`); Pod fields it does not
//! model: more than one container, ephemeral containers, sidecars (an init container's
//! `restartPolicy`), volume sources other than `emptyDir` (`hostPath`, `configMap`, `secret`, …,
//! named in the message), `emptyDir.medium: Memory` (tmpfs), mount fields other than `name`,
//! `mountPath` and `readOnly` (`subPath`, `mountPropagation`, …), `env.valueFrom`, ports, probes,
//! `restartPolicy` other than `Never` (and its absence, since the default `Always` restarts
//! containers, which the fake does not do), node selection, host namespaces, and any
//! other field not listed above (e.g. `dnsPolicy`, which `kubectl run` sends); SPDY exec (only
//! WebSocket is modelled). PATCH and PUT get the real server's 405 MethodNotAllowed Status.
//!
//! # Simplifications
//! A list always answers from the latest state (`resourceVersionMatch` is accepted and has no
//! effect); a watch can resume from any earlier resourceVersion (the fake keeps every event), and
//! a watch with a selector turns objects entering or leaving the selection into ADDED and DELETED
//! events, as the real server does. An `emptyDir` is a Docker local volume: owned by root with
//! mode 0755 (the kubelet makes it 0777), and its `sizeLimit` is not enforced. exec reaches the
//! main container only (not a running init container).
//!
//! # Faults
//! [`FakeKube::set_fault`] makes the fake misbehave once: an exec fault applies to the next exec
//! only and a create fault to the next pod create only; then the fault is cleared. `Forbidden`
//! stays until [`FakeKube::clear_fault`] (RBAC is a state, and kubectl retries over SPDY). See
//! [`Fault`].
//!
//! # Clean-up
//! Its containers are named `fake-kube-<instance>-<namespace>-<pod>` (an init container's adds
//! `_init_<name>`) and, like its volumes, carry the labels `fake-kube.instance=<instance>` and
//! `fake-kube.pod=<namespace>/<pod>` (never `enclave.*`). Deleting a pod removes its containers,
//! then its volumes. Dropping a [`FakeKube`] (or stopping the `fake-kube` binary with SIGTERM or
//! SIGINT) removes all of them; a process killed outright cannot, and leaves them to
//! `docker rm -f $(docker ps -aq --filter label=fake-kube.instance)` and then
//! `docker volume rm $(docker volume ls -q --filter label=fake-kube.instance)`.

mod discovery;
mod docker;
mod exec;
mod lifecycle;
mod netpol;
mod pods;
mod podspec;
mod query;
mod selectors;
mod status;
mod store;
mod table;
mod tls;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bollard::Docker;
use serde_json::Value;

/// A way for the fake to misbehave, for testing a client's handling of a broken cluster.
///
/// Each fault is taken once: the exec faults by the next exec request, [`Fault::UnschedulablePods`]
/// by the next pod create; except [`Fault::Forbidden`], which stays until
/// [`FakeKube::clear_fault`], as RBAC does (kubectl retries a refused WebSocket exec over SPDY,
/// and that retry must be refused too). Setting a fault replaces the one still pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every chunk of output goes out as messages with a 1-byte payload (each message repeats its
    /// channel byte, as the protocol requires).
    SplitFrames,
    /// 4 MiB on stderr before the command's own output (when the exec asks for stderr).
    StderrFlood,
    /// The connection closes without the channel-3 Status.
    NoStatusFrame,
    /// The exec answers as for a container that was deleted: an `InternalError` Status on
    /// channel 3 saying the container is not found.
    ContainerNotFound,
    /// The TCP connection is dropped mid-stream, after some output, without a close frame.
    DropConnection,
    /// 403 Forbidden before the upgrade, as RBAC would answer; stays until cleared.
    Forbidden,
    /// The next pod created stays Pending with an `Unschedulable` `PodScheduled` condition.
    UnschedulablePods,
}

impl Fault {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "SplitFrames" => Self::SplitFrames,
            "StderrFlood" => Self::StderrFlood,
            "NoStatusFrame" => Self::NoStatusFrame,
            "ContainerNotFound" => Self::ContainerNotFound,
            "DropConnection" => Self::DropConnection,
            "Forbidden" => Self::Forbidden,
            "UnschedulablePods" => Self::UnschedulablePods,
            _ => return None,
        })
    }

    fn is_for_create(self) -> bool {
        self == Self::UnschedulablePods
    }
}

/// How [`FakeKube::start_with`] serves. The default is [`FakeKube::start`]'s: plain HTTP, no
/// authentication.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// HTTPS with a certificate for `127.0.0.1` and `localhost`, signed by a CA made at start
    /// ([`FakeKube::ca_pem`]).
    pub tls: bool,
    /// Every request must carry `Authorization: Bearer <token>`; any other gets the real
    /// server's 401 `Unauthorized` Status.
    pub token: Option<String>,
}

/// What the request handlers share.
pub(crate) struct Shared {
    pub(crate) instance: String,
    pub(crate) docker: Docker,
    store: Mutex<store::Store>,
    fault: Mutex<Option<Fault>>,
    /// Set when the fake shuts down: no new containers after that.
    pub(crate) closing: AtomicBool,
    /// Docker creates (containers, volumes) sent and not answered yet. A pod's task aborted at
    /// shutdown leaves its request in flight, and the engine still carries it out: then the
    /// clean-up looks again once it has landed.
    pub(crate) creates_in_flight: AtomicUsize,
    /// Tells long requests (watches) that the fake stops.
    pub(crate) stopped: tokio::sync::watch::Sender<bool>,
    /// The bearer token every request must carry, if any.
    token: Option<String>,
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, store::Store> {
        // A handler that panicked mid-update leaves a store that is still consistent JSON.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fault_slot(&self) -> MutexGuard<'_, Option<Fault>> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the pending fault if it is an exec fault.
    pub(crate) fn take_exec_fault(&self) -> Option<Fault> {
        let mut slot = self.fault_slot();
        match *slot {
            Some(Fault::Forbidden) => Some(Fault::Forbidden),
            Some(f) if !f.is_for_create() => slot.take(),
            _ => None,
        }
    }

    /// Takes the pending fault if it is a create fault.
    pub(crate) fn take_create_fault(&self) -> Option<Fault> {
        let mut slot = self.fault_slot();
        match *slot {
            Some(f) if f.is_for_create() => slot.take(),
            _ => None,
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Runs a Docker create, counted as in flight until the engine answers. Not decremented when
    /// the future is dropped unanswered (an aborted pod task): the request may still land.
    pub(crate) async fn counted_create<T>(
        &self,
        create: impl std::future::Future<Output = T>,
    ) -> T {
        self.creates_in_flight.fetch_add(1, Ordering::SeqCst);
        let answer = create.await;
        self.creates_in_flight.fetch_sub(1, Ordering::SeqCst);
        answer
    }
}

/// A running fake API server. Dropping it stops it and removes its containers and volumes.
pub struct FakeKube {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// The CA's certificate (PEM) in the TLS mode.
    ca_pem: Option<String>,
    kubeconfig: PathBuf,
    _kubeconfig_dir: tempfile::TempDir,
    server: tokio::task::AbortHandle,
    /// The runtime of [`FakeKube::start_blocking`]; dropped last.
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeKube {
    /// Starts the fake on `127.0.0.1:0` in the current tokio runtime: plain HTTP, no
    /// authentication.
    pub async fn start() -> Result<Self> {
        Self::start_with(Options::default()).await
    }

    /// Starts the fake on `127.0.0.1:0` in the current tokio runtime, serving as `options` say.
    pub async fn start_with(options: Options) -> Result<Self> {
        let docker = docker::connect().await?;
        let shared = Arc::new(Shared {
            instance: random_instance(),
            docker,
            store: Mutex::new(store::Store::new()),
            fault: Mutex::new(None),
            closing: AtomicBool::new(false),
            creates_in_flight: AtomicUsize::new(0),
            stopped: tokio::sync::watch::channel(false).0,
            token: options.token.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let app = router(shared.clone());
        let certificates = if options.tls {
            Some(tls::Certificates::generate()?)
        } else {
            None
        };
        let ca_pem = certificates.as_ref().map(|c| c.ca_pem.clone());
        let server = match certificates {
            Some(certificates) => tokio::spawn(tls::serve(listener, certificates, app)),
            None => tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    eprintln!("fake-kube: the server stopped: {e}");
                }
            }),
        }
        .abort_handle();
        let dir = tempfile::Builder::new().prefix("fake-kube-").tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let text = kubeconfig_text(addr, ca_pem.as_deref(), options.token.as_deref());
        std::fs::write(&kubeconfig, text).context("writing the kubeconfig")?;
        Ok(Self {
            shared,
            addr,
            ca_pem,
            kubeconfig,
            _kubeconfig_dir: dir,
            server,
            runtime: None,
        })
    }

    /// Starts the fake on a runtime of its own, for synchronous tests.
    pub fn start_blocking() -> Result<Self> {
        Self::start_blocking_with(Options::default())
    }

    /// [`FakeKube::start_with`] on a runtime of its own, for synchronous tests.
    pub fn start_blocking_with(options: Options) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("fake-kube")
            .build()
            .context("starting the fake's runtime")?;
        let mut fake = runtime.block_on(Self::start_with(options))?;
        fake.runtime = Some(runtime);
        Ok(fake)
    }

    /// `http://127.0.0.1:PORT`, or `https://…` in the TLS mode.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The port the fake listens on (on `127.0.0.1`), e.g. for `KUBERNETES_SERVICE_PORT`.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The CA certificate (PEM) that signed the fake's server certificate; `None` unless it
    /// serves TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A kubeconfig file pointing at the fake: context `fake`, namespace `default`; in the TLS
    /// mode with the CA as `certificate-authority-data`, and with the token if one is required.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// This fake's id, as in its containers' `fake-kube.instance` label.
    pub fn instance(&self) -> &str {
        &self.shared.instance
    }

    /// Makes the next exec (or, for [`Fault::UnschedulablePods`], the next pod create) misbehave.
    pub fn set_fault(&self, fault: Fault) {
        *self.shared.fault_slot() = Some(fault);
    }

    /// Clears a fault not yet taken.
    pub fn clear_fault(&self) {
        *self.shared.fault_slot() = None;
    }

    /// The ids of the Docker containers this fake has (running or not), for leak checks.
    pub fn containers(&self) -> Result<Vec<String>> {
        containers_of_instance(&self.shared.instance)
    }

    /// The names of the Docker volumes this fake has (one per `emptyDir` of a live pod).
    pub fn volumes(&self) -> Result<Vec<String>> {
        volumes_of_instance(&self.shared.instance)
    }

    /// Stops serving and removes this fake's containers and volumes, reporting a failure to remove them.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.stopped.send_replace(true);
        self.server.abort();
        for record in self.shared.store().pods.values() {
            if let Some(task) = &record.lifecycle {
                task.abort();
            }
        }
        let instance = self.shared.instance.clone();
        let cut_off = self.shared.creates_in_flight.load(Ordering::SeqCst) > 0;
        on_own_runtime(move |_| async move {
            docker::remove_instance(&instance).await?;
            if cut_off {
                // What the engine made after the first pass (it finishes a create whose client
                // went away).
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                docker::remove_instance(&instance).await?;
            }
            Ok(())
        })
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("fake-kube: removing the containers and volumes failed: {e:#}");
        }
    }
}

/// The Docker containers labelled with fake instance `instance`, running or not.
pub fn containers_of_instance(instance: &str) -> Result<Vec<String>> {
    let instance = instance.to_string();
    on_own_runtime(move |_| async move { docker::list_instance(&instance).await })
}

/// The Docker volumes labelled with fake instance `instance`.
pub fn volumes_of_instance(instance: &str) -> Result<Vec<String>> {
    let instance = instance.to_string();
    on_own_runtime(move |_| async move { docker::list_instance_volumes(&instance).await })
}

/// Runs a future on a fresh thread with its own runtime, so that it works from synchronous code
/// and from inside any runtime (even one blocked in `Drop`).
fn on_own_runtime<T, F, Fut>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(()) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(work(()))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the clean-up thread panicked"))?
}

fn random_instance() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn kubeconfig_text(addr: SocketAddr, ca_pem: Option<&str>, token: Option<&str>) -> String {
    use base64::Engine;
    let cluster = match ca_pem {
        Some(pem) => format!(
            "    server: https://{addr}\n    certificate-authority-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        ),
        None => format!("    server: http://{addr}\n"),
    };
    // JSON strings are YAML strings: whatever the token holds, it stays one scalar.
    let user = match token {
        Some(token) => format!("\n    token: {}", Value::from(token)),
        None => " {}".to_string(),
    };
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: fake\n  cluster:\n{cluster}\
         users:\n\
         - name: fake\n  user:{user}\n\
         contexts:\n\
         - name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
         current-context: fake\n"
    )
}

fn router(shared: Arc<Shared>) -> axum::Router {
    use axum::routing::{get, put};
    let fallback = || async { status::ApiError::no_route() };
    axum::Router::new()
        .merge(discovery::routes())
        .merge(pods::routes())
        .merge(netpol::routes())
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/exec",
            get(exec::exec).post(exec::exec),
        )
        .route("/_fake/fault", put(set_fault_endpoint))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(shared)
}

/// With a token set, the real server's answer to a request that does not carry it: 401 and an
/// `Unauthorized` Status, before anything else looks at the request.
async fn require_token(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(token) = &shared.token else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if presented == Some(token.as_str()) {
        next.run(request).await
    } else {
        status::ApiError::unauthorized().into_response()
    }
}

/// PATCH, PUT and the other verbs the fake does not model on a path it serves: the real server's
/// 405 Status.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> status::ApiError {
    status::ApiError::method_not_allowed(format!(
        "{method} on {} is not modelled by the fake API server",
        uri.path()
    ))
}

/// `PUT /_fake/fault` with `{"fault": "StderrFlood"}` (or `null` to clear), for the binary.
async fn set_fault_endpoint(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    body: bytes::Bytes,
) -> Result<Response, status::ApiError> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| status::ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let fault = match &request["fault"] {
        Value::Null => None,
        Value::String(name) => Some(
            Fault::from_name(name)
                .ok_or_else(|| status::ApiError::bad_request(format!("unknown fault `{name}`")))?,
        ),
        _ => {
            return Err(status::ApiError::bad_request(
                "`fault` must be a name or null",
            ))
        }
    };
    *shared.fault_slot() = fault;
    Ok(json_response(StatusCode::OK, &request))
}

/// With `FAKE_KUBE_LOG` set, every request goes to stderr: what a client really asks for.
async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if std::env::var_os("FAKE_KUBE_LOG").is_none() {
        return next.run(request).await;
    }
    let line = format!(
        "{} {} accept={:?}",
        request.method(),
        request.uri(),
        request.headers().get("accept")
    );
    let response = next.run(request).await;
    eprintln!("fake-kube: {line} -> {}", response.status());
    response
}

pub(crate) fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

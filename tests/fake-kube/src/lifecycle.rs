//! A pod's life as a kubelet would run it: schedule, create the `emptyDir` volumes, run each init
//! container to completion, create the container, run, end; each step is a status update (new
//! resourceVersion, MODIFIED event).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, KillContainerOptions,
};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::docker::{is_not_found, LABEL_INSTANCE, LABEL_POD};
use crate::podspec::{ContainerPlan, PodPlan};
use crate::store::Key;
use crate::Shared;

/// The scheduler's message for the `UnschedulablePods` fault.
const UNSCHEDULABLE: &str = "0/1 nodes are available: 1 node(s) were unschedulable (the fake's \
     UnschedulablePods fault). preemption: 0/1 nodes are available: 1 Preemption is not helpful \
     for scheduling.";

/// How a pod is to run, beyond its spec.
pub(crate) struct Launch {
    pub(crate) key: Key,
    pub(crate) plan: PodPlan,
    pub(crate) isolated: bool,
    pub(crate) unschedulable: bool,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Runs the pod to its end.
pub(crate) async fn run(shared: Arc<Shared>, launch: Launch) {
    if launch.unschedulable {
        update(&shared, &launch.key, |pod| {
            pod["status"]["conditions"] = json!([condition(
                "PodScheduled",
                false,
                Some(("Unschedulable", UNSCHEDULABLE))
            )]);
        });
        return;
    }
    update(&shared, &launch.key, |pod| {
        pod["spec"]["nodeName"] = json!("fake-node");
        pod["status"]["conditions"] = json!([condition("PodScheduled", true, None)]);
    });
    let plan = &launch.plan;
    // With init containers the kubelet shows the others as PodInitializing until they are done.
    let first_reason = if plan.init_containers.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    update(&shared, &launch.key, |pod| {
        pod["status"]["startTime"] = json!(now());
        pod["status"]["hostIP"] = json!("127.0.0.1");
        pod["status"]["conditions"] = json!(pending_conditions(plan));
        if !plan.init_containers.is_empty() {
            let statuses: Vec<Value> = plan
                .init_containers
                .iter()
                .map(|c| container_status(c, waiting("PodInitializing", None)))
                .collect();
            pod["status"]["initContainerStatuses"] = json!(statuses);
        }
        pod["status"]["containerStatuses"] = json!([container_status(
            &plan.container,
            waiting(first_reason, None)
        )]);
    });
    let deadline = launch.plan.active_deadline_seconds;
    let run = run_pod(&shared, &launch);
    let within_deadline = match deadline {
        Some(seconds) => tokio::time::timeout(Duration::from_secs(seconds), run)
            .await
            .is_ok(),
        None => {
            run.await;
            true
        }
    };
    if !within_deadline {
        deadline_exceeded(&shared, &launch).await;
    }
}

/// Which container of the pod a step is about, and so which status it changes.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Main,
    Init(usize),
}

impl Slot {
    fn plan(self, plan: &PodPlan) -> &ContainerPlan {
        match self {
            Slot::Main => &plan.container,
            Slot::Init(i) => &plan.init_containers[i],
        }
    }

    fn status_pointer(self) -> String {
        match self {
            Slot::Main => "/status/containerStatuses/0".into(),
            Slot::Init(i) => format!("/status/initContainerStatuses/{i}"),
        }
    }

    /// The Docker name: the main container's as before; an init container's adds `_init_<name>`
    /// (`_` is never in a Kubernetes name, so no pod's name can produce it).
    fn docker_name(self, plan: &PodPlan, instance: &str, key: &Key) -> String {
        let (namespace, name) = key;
        let base = format!("fake-kube-{instance}-{namespace}-{name}");
        match self {
            Slot::Main => base,
            Slot::Init(i) => format!("{base}_init_{}", plan.init_containers[i].name),
        }
    }
}

/// The Docker volume for `emptyDir` `volume` of pod `key`.
fn volume_name(instance: &str, key: &Key, volume: &str) -> String {
    let (namespace, name) = key;
    format!("fake-kube-{instance}-{namespace}-{name}_vol_{volume}")
}

/// Volumes, then each init container to completion, then the main container.
async fn run_pod(shared: &Arc<Shared>, launch: &Launch) {
    if let Err(e) = create_volumes(shared, launch).await {
        let first = if launch.plan.init_containers.is_empty() {
            Slot::Main
        } else {
            Slot::Init(0)
        };
        let message = format!("MountVolume.SetUp failed: {e:#}");
        update(shared, &launch.key, |pod| {
            set_state(
                pod,
                first,
                waiting("CreateContainerError", Some(&message)),
                false,
            )
        });
        return;
    }
    for i in 0..launch.plan.init_containers.len() {
        if !run_init_container(shared, launch, i).await {
            return;
        }
    }
    if !launch.plan.init_containers.is_empty() {
        update(shared, &launch.key, |pod| {
            pod["status"]["conditions"] = json!(initialized_conditions(&launch.plan));
        });
    }
    run_container(shared, launch).await;
}

/// One Docker volume per `emptyDir`, recorded with the pod so that its delete removes it.
async fn create_volumes(shared: &Arc<Shared>, launch: &Launch) -> Result<()> {
    let pod = format!("{}/{}", launch.key.0, launch.key.1);
    for volume in &launch.plan.volumes {
        let name = volume_name(&shared.instance, &launch.key, volume);
        if shared.is_closing() {
            anyhow::bail!("the fake is shutting down");
        }
        shared
            .counted_create(crate::docker::create_volume(
                &shared.docker,
                &name,
                &shared.instance,
                &pod,
            ))
            .await?;
        // The pod may have been deleted meanwhile: then the volume goes too.
        let recorded = match shared.store().pods.get_mut(&launch.key) {
            Some(record) if !shared.is_closing() => {
                record.volumes.push(name.clone());
                true
            }
            _ => false,
        };
        if !recorded {
            crate::docker::remove_volume(&shared.docker, &name).await?;
            anyhow::bail!("the pod was deleted");
        }
    }
    Ok(())
}

/// Runs init container `i` to its end; whether the pod may go on. A failure makes the pod
/// Failed (restartPolicy Never), as the kubelet does.
async fn run_init_container(shared: &Arc<Shared>, launch: &Launch, i: usize) -> bool {
    let slot = Slot::Init(i);
    let Some(id) = start_container(shared, launch, slot).await else {
        return false;
    };
    let started = now();
    update(shared, &launch.key, |pod| {
        let state = json!({"running": {"startedAt": started}});
        set_state(pod, slot, state, false);
        set_started(pod, slot, true, &id);
    });
    let Some((code, finished)) = wait_for_exit(shared, &id).await else {
        return false;
    };
    // Done with it: only its exit status stays, in the pod's status.
    if let Err(e) = crate::docker::remove(&shared.docker, &id).await {
        eprintln!("fake-kube: {e:#}");
    }
    if let Some(record) = shared.store().pods.get_mut(&launch.key) {
        record.init_container = None;
    }
    update(shared, &launch.key, |pod| {
        let state = terminated(code, &started, &finished, &id);
        // A completed init container counts as ready, as the kubelet reports it.
        set_state(pod, slot, state, code == 0);
        set_started(pod, slot, false, &id);
        if code != 0 {
            pod["status"]["phase"] = json!("Failed");
            pod["status"]["conditions"] = json!(failed_init_conditions(&launch.plan, i));
        }
    });
    code == 0
}

/// Creates and starts the container of `slot`, reporting on its status why it could not.
async fn start_container(shared: &Arc<Shared>, launch: &Launch, slot: Slot) -> Option<String> {
    let plan = slot.plan(&launch.plan);
    if !image_present(shared, &plan.image).await {
        image_pull_back_off(shared, launch, slot).await;
        return None;
    }
    match create_and_start(shared, launch, slot).await {
        Ok(id) => Some(id),
        Err(e) => {
            let message = format!("{e:#}");
            update(shared, &launch.key, |pod| {
                set_state(
                    pod,
                    slot,
                    waiting("CreateContainerError", Some(&message)),
                    false,
                )
            });
            None
        }
    }
}

async fn run_container(shared: &Arc<Shared>, launch: &Launch) {
    let Some(id) = start_container(shared, launch, Slot::Main).await else {
        return;
    };
    let started = now();
    update(shared, &launch.key, |pod| {
        pod["status"]["phase"] = json!("Running");
        pod["status"]["podIP"] = json!("127.0.0.1");
        pod["status"]["conditions"] = json!(running_conditions(true));
        let state = json!({"running": {"startedAt": started}});
        set_state(pod, Slot::Main, state, true);
        set_started(pod, Slot::Main, true, &id);
    });
    let Some((code, finished)) = wait_for_exit(shared, &id).await else {
        return;
    };
    update(shared, &launch.key, |pod| {
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        pod["status"]["phase"] = json!(phase);
        pod["status"]["conditions"] = json!(running_conditions(false));
        set_state(
            pod,
            Slot::Main,
            terminated(code, &started, &finished, &id),
            false,
        );
        set_started(pod, Slot::Main, false, &id);
    });
}

/// Waits for container `id` to exit: its exit code and when it finished.
async fn wait_for_exit(shared: &Shared, id: &str) -> Option<(i64, String)> {
    let mut wait = shared
        .docker
        .wait_container(id, None::<bollard::query_parameters::WaitContainerOptions>);
    // A non-zero exit comes as an error item; either way the state is read below.
    let _ = wait.next().await;
    let info = shared
        .docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .ok()?;
    let state = info.state.unwrap_or_default();
    Some((
        state.exit_code.unwrap_or(-1),
        state.finished_at.unwrap_or_else(now),
    ))
}

fn terminated(code: i64, started: &str, finished: &str, id: &str) -> Value {
    let reason = if code == 0 { "Completed" } else { "Error" };
    json!({"terminated": {
        "exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished,
        "containerID": format!("docker://{id}"),
    }})
}

async fn image_present(shared: &Shared, image: &str) -> bool {
    match shared.docker.inspect_image(image).await {
        Ok(_) => true,
        Err(e) if is_not_found(&e) => false,
        // Anything else: let the create fail and say why.
        Err(_) => true,
    }
}

/// The kubelet's two steps for an image it cannot get: ErrImagePull, then back-off.
async fn image_pull_back_off(shared: &Arc<Shared>, launch: &Launch, slot: Slot) {
    let image = &slot.plan(&launch.plan).image;
    let pull = format!(
        "failed to pull image \"{image}\": the fake API server never pulls and the image is not \
         on the local Docker engine"
    );
    update(shared, &launch.key, |pod| {
        set_state(pod, slot, waiting("ErrImagePull", Some(&pull)), false);
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let back_off = format!("Back-off pulling image \"{image}\": {pull}");
    update(shared, &launch.key, |pod| {
        set_state(
            pod,
            slot,
            waiting("ImagePullBackOff", Some(&back_off)),
            false,
        );
    });
    // Stay Pending, as a kubelet keeps backing off; the deadline (if any) still applies.
    std::future::pending::<()>().await;
}

async fn deadline_exceeded(shared: &Arc<Shared>, launch: &Launch) {
    let (container, init_container) = shared
        .store()
        .pods
        .get(&launch.key)
        .map(|r| (r.container.clone(), r.init_container.clone()))
        .unwrap_or_default();
    for id in container.iter().chain(&init_container) {
        let _ = shared
            .docker
            .kill_container(id, None::<KillContainerOptions>)
            .await;
    }
    update(shared, &launch.key, |pod| {
        pod["status"]["phase"] = json!("Failed");
        pod["status"]["reason"] = json!("DeadlineExceeded");
        pod["status"]["message"] =
            json!("Pod was active on the node longer than the specified deadline");
        pod["status"]["conditions"] = json!(running_conditions(false));
        if container.is_some() {
            let state = json!({"terminated": {
                "exitCode": 137, "reason": "Error", "finishedAt": now(),
            }});
            set_state(pod, Slot::Main, state, false);
        }
    });
}

async fn create_and_start(shared: &Arc<Shared>, launch: &Launch, slot: Slot) -> Result<String> {
    let options = CreateContainerOptions {
        name: Some(slot.docker_name(&launch.plan, &shared.instance, &launch.key)),
        platform: String::new(),
    };
    let body = container_body(
        slot.plan(&launch.plan),
        &shared.instance,
        &launch.key,
        launch.isolated,
    );
    if shared.is_closing() {
        anyhow::bail!("the fake is shutting down");
    }
    let id = shared
        .counted_create(shared.docker.create_container(Some(options), body))
        .await?
        .id;
    // The pod may have been deleted meanwhile: then the container goes too.
    let recorded = match shared.store().pods.get_mut(&launch.key) {
        Some(record) if !shared.is_closing() => {
            match slot {
                Slot::Main => record.container = Some(id.clone()),
                Slot::Init(_) => record.init_container = Some(id.clone()),
            }
            true
        }
        _ => false,
    };
    if !recorded {
        crate::docker::remove(&shared.docker, &id).await?;
        anyhow::bail!("the pod was deleted");
    }
    shared
        .docker
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await?;
    Ok(id)
}

fn container_body(
    plan: &ContainerPlan,
    instance: &str,
    key: &Key,
    isolated: bool,
) -> ContainerCreateBody {
    let mut security_opt = Vec::new();
    if plan.no_new_privileges {
        security_opt.push("no-new-privileges".to_string());
    }
    if plan.seccomp_unconfined {
        security_opt.push("seccomp=unconfined".to_string());
    }
    let host_config = HostConfig {
        memory: plan.memory_bytes,
        nano_cpus: plan.nano_cpus,
        cap_add: Some(plan.cap_add.clone()),
        cap_drop: Some(plan.cap_drop.clone()),
        security_opt: Some(security_opt),
        privileged: Some(plan.privileged),
        readonly_rootfs: Some(plan.read_only_root),
        network_mode: isolated.then(|| "none".to_string()),
        mounts: Some(mounts(plan, instance, key)),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(plan.image.clone()),
        // Kubernetes' `command` replaces the image's entrypoint and `args` its cmd.
        entrypoint: plan.command.clone(),
        cmd: plan.args.clone(),
        env: Some(plan.env.clone()),
        working_dir: plan.working_dir.clone(),
        open_stdin: Some(plan.stdin),
        tty: Some(plan.tty),
        labels: Some(
            [
                (LABEL_INSTANCE.to_string(), instance.to_string()),
                (LABEL_POD.to_string(), format!("{}/{}", key.0, key.1)),
            ]
            .into(),
        ),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// The container's `volumeMounts` as Docker volume mounts. `NoCopy`: Docker would otherwise fill
/// an empty volume with what the image has at the mount path, and an `emptyDir` starts empty.
fn mounts(plan: &ContainerPlan, instance: &str, key: &Key) -> Vec<Mount> {
    plan.mounts
        .iter()
        .map(|m| Mount {
            target: Some(m.path.clone()),
            source: Some(volume_name(instance, key, &m.volume)),
            typ: Some(MountType::VOLUME),
            read_only: Some(m.read_only),
            volume_options: Some(MountVolumeOptions {
                no_copy: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

/// Applies a status change to a pod still in the store: new resourceVersion, MODIFIED event.
pub(crate) fn update(shared: &Shared, key: &Key, change: impl FnOnce(&mut Value)) {
    let mut store = shared.store();
    let Some(mut object) = store.pods.get(key).map(|r| r.object.clone()) else {
        return;
    };
    change(&mut object);
    store.bump(&mut object);
    store.publish("MODIFIED", &object);
    if let Some(record) = store.pods.get_mut(key) {
        record.object = object;
    }
}

fn condition(kind: &str, status: bool, reason: Option<(&str, &str)>) -> Value {
    let mut c = json!({
        "type": kind,
        "status": if status { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": now(),
    });
    if let Some((reason, message)) = reason {
        c["reason"] = json!(reason);
        c["message"] = json!(message);
    }
    c
}

/// Go prints a list of names as `[a b]`; the kubelet's condition messages use that.
fn go_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    format!("[{}]", names.into_iter().collect::<Vec<_>>().join(" "))
}

fn not_ready(plan: &PodPlan) -> String {
    format!(
        "containers with unready status: {}",
        go_list([plan.container.name.as_str()])
    )
}

fn pending_conditions(plan: &PodPlan) -> Vec<Value> {
    let not_ready = not_ready(plan);
    let not_ready = Some(("ContainersNotReady", not_ready.as_str()));
    let not_initialized = format!(
        "containers with incomplete status: {}",
        go_list(plan.init_containers.iter().map(|c| c.name.as_str()))
    );
    let initialized = if plan.init_containers.is_empty() {
        condition("Initialized", true, None)
    } else {
        condition(
            "Initialized",
            false,
            Some(("ContainersNotInitialized", &not_initialized)),
        )
    };
    vec![
        initialized,
        condition("Ready", false, not_ready),
        condition("ContainersReady", false, not_ready),
        condition("PodScheduled", true, None),
    ]
}

/// Every init container has completed; the main container is not running yet.
fn initialized_conditions(plan: &PodPlan) -> Vec<Value> {
    let not_ready = not_ready(plan);
    let not_ready = Some(("ContainersNotReady", not_ready.as_str()));
    vec![
        condition("Initialized", true, None),
        condition("Ready", false, not_ready),
        condition("ContainersReady", false, not_ready),
        condition("PodScheduled", true, None),
    ]
}

/// Init container `failed` exited non-zero: it and those after it never completed.
fn failed_init_conditions(plan: &PodPlan, failed: usize) -> Vec<Value> {
    let not_initialized = format!(
        "containers with incomplete status: {}",
        go_list(
            plan.init_containers[failed..]
                .iter()
                .map(|c| c.name.as_str())
        )
    );
    let failed = Some(("PodFailed", ""));
    vec![
        condition(
            "Initialized",
            false,
            Some(("ContainersNotInitialized", &not_initialized)),
        ),
        condition("Ready", false, failed),
        condition("ContainersReady", false, failed),
        condition("PodScheduled", true, None),
    ]
}

fn running_conditions(ready: bool) -> Vec<Value> {
    let reason = (!ready).then_some(("PodCompleted", ""));
    vec![
        condition("Initialized", true, reason),
        condition("Ready", ready, reason),
        condition("ContainersReady", ready, reason),
        condition("PodScheduled", true, None),
    ]
}

fn waiting(reason: &str, message: Option<&str>) -> Value {
    let mut w = json!({"reason": reason});
    if let Some(m) = message {
        w["message"] = json!(m);
    }
    json!({"waiting": w})
}

fn container_status(plan: &ContainerPlan, state: Value) -> Value {
    json!({
        "name": plan.name,
        "state": state,
        "lastState": {},
        "ready": false,
        "restartCount": 0,
        "image": plan.image,
        "imageID": "",
        "started": false,
    })
}

/// Sets the state and readiness of the container in `slot`; a status not there (never expected:
/// the first status update lists every container) is left alone rather than panicking.
fn set_state(pod: &mut Value, slot: Slot, state: Value, ready: bool) {
    if let Some(status) = pod.pointer_mut(&slot.status_pointer()) {
        status["state"] = state;
        status["ready"] = json!(ready);
    }
}

fn set_started(pod: &mut Value, slot: Slot, started: bool, id: &str) {
    if let Some(status) = pod.pointer_mut(&slot.status_pointer()) {
        status["started"] = json!(started);
        status["containerID"] = json!(format!("docker://{id}"));
    }
}

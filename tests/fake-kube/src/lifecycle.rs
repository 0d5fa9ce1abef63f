//! A pod's life as a kubelet would run it: schedule, create the container, run, end; each step
//! is a status update (new resourceVersion, MODIFIED event).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bollard::models::{ContainerCreateBody, HostConfig};
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
    let name = launch.plan.container.name.clone();
    update(&shared, &launch.key, |pod| {
        pod["status"]["startTime"] = json!(now());
        pod["status"]["hostIP"] = json!("127.0.0.1");
        pod["status"]["conditions"] = json!(pending_conditions());
        pod["status"]["containerStatuses"] = json!([container_status(
            &name,
            &pod["spec"],
            waiting("ContainerCreating", None),
            false
        )]);
    });
    let deadline = launch.plan.active_deadline_seconds;
    let run = run_container(&shared, &launch);
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

async fn run_container(shared: &Arc<Shared>, launch: &Launch) {
    let plan = &launch.plan.container;
    if !image_present(shared, &plan.image).await {
        image_pull_back_off(shared, launch).await;
        return;
    }
    let id = match create_and_start(shared, launch).await {
        Ok(id) => id,
        Err(e) => {
            let message = format!("{e:#}");
            update(shared, &launch.key, |pod| {
                let state = waiting("CreateContainerError", Some(&message));
                pod["status"]["containerStatuses"] =
                    json!([container_status(&plan.name, &pod["spec"], state, false)]);
            });
            return;
        }
    };
    let started = now();
    update(shared, &launch.key, |pod| {
        pod["status"]["phase"] = json!("Running");
        pod["status"]["podIP"] = json!("127.0.0.1");
        pod["status"]["conditions"] = json!(running_conditions(true));
        let state = json!({"running": {"startedAt": started}});
        pod["status"]["containerStatuses"] =
            json!([container_status(&plan.name, &pod["spec"], state, true)]);
        pod["status"]["containerStatuses"][0]["containerID"] = json!(format!("docker://{id}"));
    });
    let mut wait = shared
        .docker
        .wait_container(&id, None::<bollard::query_parameters::WaitContainerOptions>);
    // A non-zero exit comes as an error item; either way the state is read below.
    let _ = wait.next().await;
    let Ok(info) = shared
        .docker
        .inspect_container(&id, None::<InspectContainerOptions>)
        .await
    else {
        return;
    };
    let state = info.state.unwrap_or_default();
    let code = state.exit_code.unwrap_or(-1);
    let finished = state.finished_at.unwrap_or_else(now);
    update(shared, &launch.key, |pod| {
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        pod["status"]["phase"] = json!(phase);
        pod["status"]["conditions"] = json!(running_conditions(false));
        let reason = if code == 0 { "Completed" } else { "Error" };
        let terminated = json!({"terminated": {
            "exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished,
            "containerID": format!("docker://{id}"),
        }});
        pod["status"]["containerStatuses"][0]["state"] = terminated;
        pod["status"]["containerStatuses"][0]["ready"] = json!(false);
        pod["status"]["containerStatuses"][0]["started"] = json!(false);
    });
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
async fn image_pull_back_off(shared: &Arc<Shared>, launch: &Launch) {
    let plan = &launch.plan.container;
    let pull = format!(
        "failed to pull image \"{}\": the fake API server never pulls and the image is not on \
         the local Docker engine",
        plan.image
    );
    update(shared, &launch.key, |pod| {
        let state = waiting("ErrImagePull", Some(&pull));
        pod["status"]["containerStatuses"] =
            json!([container_status(&plan.name, &pod["spec"], state, false)]);
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let back_off = format!("Back-off pulling image \"{}\": {pull}", plan.image);
    update(shared, &launch.key, |pod| {
        let state = waiting("ImagePullBackOff", Some(&back_off));
        pod["status"]["containerStatuses"] =
            json!([container_status(&plan.name, &pod["spec"], state, false)]);
    });
    // Stay Pending, as a kubelet keeps backing off; the deadline (if any) still applies.
    std::future::pending::<()>().await;
}

async fn deadline_exceeded(shared: &Arc<Shared>, launch: &Launch) {
    let container = shared
        .store()
        .pods
        .get(&launch.key)
        .and_then(|r| r.container.clone());
    if let Some(id) = &container {
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
            pod["status"]["containerStatuses"][0]["state"] = json!({"terminated": {
                "exitCode": 137, "reason": "Error", "finishedAt": now(),
            }});
            pod["status"]["containerStatuses"][0]["ready"] = json!(false);
        }
    });
}

async fn create_and_start(shared: &Arc<Shared>, launch: &Launch) -> Result<String> {
    let (namespace, name) = &launch.key;
    let options = CreateContainerOptions {
        name: Some(format!("fake-kube-{}-{namespace}-{name}", shared.instance)),
        platform: String::new(),
    };
    let body = container_body(
        &launch.plan.container,
        &shared.instance,
        &launch.key,
        launch.isolated,
    );
    if shared.is_closing() {
        anyhow::bail!("the fake is shutting down");
    }
    let id = shared
        .docker
        .create_container(Some(options), body)
        .await?
        .id;
    // The pod may have been deleted meanwhile: then the container goes too.
    let recorded = match shared.store().pods.get_mut(&launch.key) {
        Some(record) if !shared.is_closing() => {
            record.container = Some(id.clone());
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

fn pending_conditions() -> Vec<Value> {
    let not_ready = Some((
        "ContainersNotReady",
        "containers with unready status: [sandbox]",
    ));
    vec![
        condition("Initialized", true, None),
        condition("Ready", false, not_ready),
        condition("ContainersReady", false, not_ready),
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

fn container_status(name: &str, spec: &Value, state: Value, ready: bool) -> Value {
    json!({
        "name": name,
        "state": state,
        "lastState": {},
        "ready": ready,
        "restartCount": 0,
        "image": spec["containers"][0]["image"],
        "imageID": "",
        "started": ready,
    })
}

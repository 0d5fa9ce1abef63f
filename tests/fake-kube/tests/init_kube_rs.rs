//! kube-rs 5.0 against the fake's init containers and `emptyDir` volumes: an init container
//! fills a volume the main container reads (read-only); a failing init container fails the pod;
//! a missing init image backs off; bad volumes and mounts are refused as the real server refuses
//! them; and no Docker container or volume is left behind.

use std::process::Command;

use enclave_fake_kube::{containers_of_instance, volumes_of_instance, FakeKube};
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DeleteParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

const IMAGE: &str = "enclave-test-python:bookworm";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

async fn client(fake: &FakeKube) -> Client {
    let kubeconfig = Kubeconfig::read_from(fake.kubeconfig()).expect("the kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube-rs reads the kubeconfig");
    Client::try_from(config).expect("a client")
}

/// A pod whose init container (image `init_image`, running `init_script`) mounts the `emptyDir`
/// `shared` at `/shared`, and whose main container sleeps with it read-only at `/mnt`.
fn pod_with_init(name: &str, init_image: &str, init_script: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "volumes": [{"name": "shared", "emptyDir": {"sizeLimit": "64Mi"}}],
            "initContainers": [{
                "name": "fill",
                "image": init_image,
                "command": ["sh", "-c", init_script],
                "env": [{"name": "PATH", "value": PATH}],
                "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
                "resources": {"requests": {"cpu": "100m", "memory": "32Mi"},
                              "limits": {"cpu": "100m", "memory": "32Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "privileged": false,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
            "containers": [{
                "name": "main",
                "image": IMAGE,
                "command": ["sleep", "3600"],
                "env": [{"name": "PATH", "value": PATH}],
                "volumeMounts": [{"name": "shared", "mountPath": "/mnt", "readOnly": true}],
            }],
        },
    })
}

async fn create(pods: &Api<Pod>, pod: Value) -> kube::Result<Pod> {
    let pod: Pod = serde_json::from_value(pod).expect("a Pod");
    pods.create(&PostParams::default(), &pod).await
}

/// Every state of pod `name` from its creation until `done`, as JSON.
async fn watch_until(pods: &Api<Pod>, name: &str, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(60);
    let mut stream = pods
        .watch(&wp, "0")
        .await
        .expect("the watch starts")
        .boxed();
    let mut seen = Vec::new();
    while let Some(event) = stream.try_next().await.expect("watch events") {
        if let WatchEvent::Added(pod) | WatchEvent::Modified(pod) = event {
            let pod = serde_json::to_value(pod).expect("a Pod serialises");
            let finished = done(&pod);
            seen.push(pod);
            if finished {
                return seen;
            }
        }
    }
    panic!("the watch ended before pod {name} got there: {seen:#?}");
}

/// The stage of a pod as kubectl's STATUS column names it, from the pod's status alone.
fn stage(pod: &Value) -> String {
    let status = &pod["status"];
    let init = &status["initContainerStatuses"][0]["state"];
    let main = &status["containerStatuses"][0]["state"];
    if init["running"].is_object() || init["waiting"]["reason"] == "PodInitializing" {
        return "Init:0/1".into();
    }
    if init["terminated"]["exitCode"] == 0 && main["waiting"]["reason"] == "PodInitializing" {
        return "PodInitializing".into();
    }
    status["phase"].as_str().unwrap_or("none").into()
}

fn condition<'a>(pod: &'a Value, kind: &str) -> &'a Value {
    pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .map_or(&Value::Null, |c| &c["status"])
}

/// Runs `command` in pod `name`: (stdout, stderr, whether the Status says Success).
async fn exec(pods: &Api<Pod>, name: &str, command: &[&str]) -> (String, String, bool) {
    let params = AttachParams::default().stdin(false).stderr(true);
    let mut attached = pods
        .exec(name, command.to_vec(), &params)
        .await
        .expect("the exec starts");
    let mut stdout = attached.stdout().expect("stdout");
    let mut stderr = attached.stderr().expect("stderr");
    let status = attached.take_status().expect("a status future");
    let (out, err) = tokio::join!(read_all(&mut stdout), read_all(&mut stderr));
    let status = status.await.expect("a channel-3 Status");
    let _ = attached.join().await;
    (out, err, status.status.as_deref() == Some("Success"))
}

async fn read_all(reader: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut all = Vec::new();
    let _ = reader.read_to_end(&mut all).await;
    String::from_utf8_lossy(&all).into_owned()
}

/// The volumes the Docker CLI lists with this fake's label: an independent check of the engine.
fn docker_volumes(instance: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter"])
        .arg(format!("label=fake-kube.instance={instance}"))
        .output()
        .expect("docker runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn assert_nothing_left(instance: &str) {
    let containers = containers_of_instance(instance).expect("docker lists containers");
    assert!(containers.is_empty(), "containers left: {containers:?}");
    let volumes = volumes_of_instance(instance).expect("docker lists volumes");
    assert!(volumes.is_empty(), "volumes left: {volumes:?}");
    assert!(docker_volumes(instance).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_container_fills_an_empty_dir_the_main_container_reads() {
    let fake = FakeKube::start().await.expect("the fake starts");
    let instance = fake.instance().to_string();
    let pods: Api<Pod> = Api::default_namespaced(client(&fake).await);
    create(
        &pods,
        pod_with_init("filled", IMAGE, "echo from-init > /shared/f"),
    )
    .await
    .expect("the pod is created");
    let seen = watch_until(&pods, "filled", |p| p["status"]["phase"] == "Running").await;

    let mut stages: Vec<String> = seen.iter().map(stage).collect();
    stages.dedup();
    let order: Vec<&str> = stages
        .iter()
        .map(String::as_str)
        .filter(|s| ["Init:0/1", "PodInitializing", "Running"].contains(s))
        .collect();
    assert_eq!(
        order,
        ["Init:0/1", "PodInitializing", "Running"],
        "{stages:?}"
    );
    assert!(seen.iter().all(|p| p["status"]["phase"] != "Running"
        || p["status"]["initContainerStatuses"][0]["state"]["terminated"].is_object()));
    let initializing = seen
        .iter()
        .find(|p| stage(p) == "Init:0/1" && p["status"]["conditions"].is_array())
        .expect("a state while the init container runs");
    assert_eq!(condition(initializing, "Initialized"), "False");
    assert!(seen
        .iter()
        .any(|p| p["status"]["initContainerStatuses"][0]["state"]["running"].is_object()));
    let running = seen.last().expect("the Running state");
    assert_eq!(condition(running, "Initialized"), "True");
    let init = &running["status"]["initContainerStatuses"][0];
    assert_eq!(init["name"], "fill");
    assert_eq!(init["state"]["terminated"]["exitCode"], 0);
    assert_eq!(init["state"]["terminated"]["reason"], "Completed");

    let (out, _, ok) = exec(&pods, "filled", &["cat", "/mnt/f"]).await;
    assert_eq!((out.as_str(), ok), ("from-init\n", true));
    let (_, err, ok) = exec(&pods, "filled", &["sh", "-c", "echo x > /mnt/f"]).await;
    assert!(!ok, "the read-only mount took a write");
    assert!(err.contains("Read-only file system"), "{err}");

    // The finished init container is gone from the engine; its exit status stays in the pod.
    assert_eq!(fake.containers().expect("docker lists").len(), 1);
    assert_eq!(fake.volumes().expect("docker lists").len(), 1);
    assert_eq!(docker_volumes(&instance).len(), 1);

    pods.delete("filled", &DeleteParams::default())
        .await
        .expect("the pod is deleted");
    assert!(fake.containers().expect("docker lists").is_empty());
    assert!(
        docker_volumes(&instance).is_empty(),
        "the delete left its volume"
    );

    // Shutdown removes what a live pod still has.
    create(&pods, pod_with_init("kept", IMAGE, "true"))
        .await
        .expect("the pod is created");
    watch_until(&pods, "kept", |p| p["status"]["phase"] == "Running").await;
    assert_eq!(docker_volumes(&instance).len(), 1);
    fake.shutdown().expect("the fake shuts down cleanly");
    assert_nothing_left(&instance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_init_container_fails_the_pod_before_its_container_starts() {
    let fake = FakeKube::start().await.expect("the fake starts");
    let instance = fake.instance().to_string();
    let pods: Api<Pod> = Api::default_namespaced(client(&fake).await);
    create(&pods, pod_with_init("broken", IMAGE, "exit 3"))
        .await
        .expect("the pod is created");
    let seen = watch_until(&pods, "broken", |p| p["status"]["phase"] == "Failed").await;
    let failed = seen.last().expect("the Failed state");
    let init = &failed["status"]["initContainerStatuses"][0]["state"]["terminated"];
    assert_eq!(
        (&init["exitCode"], &init["reason"]),
        (&json!(3), &json!("Error"))
    );
    let main = &failed["status"]["containerStatuses"][0]["state"];
    assert_eq!(main["waiting"]["reason"], "PodInitializing", "{main}");
    assert!(seen.iter().all(|p| p["status"]["phase"] != "Running"));
    assert_eq!(condition(failed, "Initialized"), "False");
    // Neither the init container (removed once it exited) nor a main one (never made).
    assert!(fake.containers().expect("docker lists").is_empty());

    // The missing image of an init container: the kubelet's back-off, the pod stays Pending.
    create(
        &pods,
        pod_with_init("unpulled", "enclave-fake-kube-missing:none", "true"),
    )
    .await
    .expect("the pod is created");
    let seen = watch_until(&pods, "unpulled", |p| {
        p["status"]["initContainerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    })
    .await;
    assert!(seen.iter().any(|p| {
        p["status"]["initContainerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"
    }));
    let last = seen.last().expect("the back-off state");
    assert_eq!(last["status"]["phase"], "Pending");
    assert_eq!(
        last["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );

    for name in ["broken", "unpulled"] {
        pods.delete(name, &DeleteParams::default())
            .await
            .expect("the pod is deleted");
    }
    assert!(
        docker_volumes(&instance).is_empty(),
        "a delete left a volume"
    );
    drop(fake);
    assert_nothing_left(&instance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_volumes_and_mounts_are_refused_as_the_real_server_refuses_them() {
    let fake = FakeKube::start().await.expect("the fake starts");
    let instance = fake.instance().to_string();
    let pods: Api<Pod> = Api::default_namespaced(client(&fake).await);
    let refusal = |e: kube::Error| match e {
        kube::Error::Api(s) => (s.code, s.reason, s.message),
        other => panic!("not an API error: {other:?}"),
    };

    let mut unknown = pod_with_init("unknown", IMAGE, "true");
    unknown["spec"]["containers"][0]["volumeMounts"][0]["name"] = json!("nowhere");
    let (code, reason, message) = refusal(create(&pods, unknown).await.expect_err("refused"));
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
    assert!(
        message.contains("spec.containers[0].volumeMounts[0].name: Not found: \"nowhere\""),
        "{message}"
    );

    let mut host_path = pod_with_init("host", IMAGE, "true");
    host_path["spec"]["volumes"][0] = json!({"name": "shared", "hostPath": {"path": "/etc"}});
    let (code, _, message) = refusal(create(&pods, host_path).await.expect_err("refused"));
    assert_eq!(code, 400, "{message}");
    assert!(message.contains("spec.volumes[0].hostPath"), "{message}");

    let mut twice = pod_with_init("twice", IMAGE, "true");
    twice["spec"]["initContainers"][0]["volumeMounts"]
        .as_array_mut()
        .expect("a list")
        .push(json!({"name": "shared", "mountPath": "/shared"}));
    let (code, reason, message) = refusal(create(&pods, twice).await.expect_err("refused"));
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
    assert!(
        message.contains("spec.initContainers[0].volumeMounts[1].mountPath"),
        "{message}"
    );

    let mut clash = pod_with_init("clash", IMAGE, "true");
    clash["spec"]["initContainers"][0]["name"] = json!("main");
    let (code, _, message) = refusal(create(&pods, clash).await.expect_err("refused"));
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("Duplicate value: \"main\""), "{message}");

    let listed = pods.list(&Default::default()).await.expect("a list");
    assert!(listed.items.is_empty(), "a refused pod was stored");
    drop(fake);
    assert_nothing_left(&instance);
}

/// A fake dropped while its pods' Docker creates are in flight (as when a test panics right
/// after a create) still leaves nothing: the engine finishes those creates after the first
/// clean-up pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fake_dropped_mid_create_leaves_nothing() {
    for round in 0..5 {
        let fake = FakeKube::start().await.expect("the fake starts");
        let instance = fake.instance().to_string();
        let pods: Api<Pod> = Api::default_namespaced(client(&fake).await);
        for name in ["a", "b"] {
            create(&pods, pod_with_init(name, IMAGE, "true"))
                .await
                .expect("the pod is created");
        }
        // Let the pods' tasks reach their Docker requests, then stop.
        tokio::time::sleep(std::time::Duration::from_millis(20 * round)).await;
        drop(fake);
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_nothing_left(&instance);
    }
}

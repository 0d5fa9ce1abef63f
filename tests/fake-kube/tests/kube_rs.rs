//! kube-rs 5.0 as a client of the fake: create, watch to Running, exec over v5 (and a raw v4
//! WebSocket client), every fault, selectors, network policies, errors, delete; and no container
//! left behind.

use std::time::Duration;

use enclave_fake_kube::{containers_of_instance, FakeKube, Fault};
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, AttachParams, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IMAGE: &str = "enclave-test-python:bookworm";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

async fn client(fake: &FakeKube) -> Client {
    let kubeconfig = Kubeconfig::read_from(fake.kubeconfig()).expect("the kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube-rs reads the kubeconfig");
    assert_eq!(config.default_namespace, "default");
    Client::try_from(config).expect("a client")
}

fn pod_json(name: &str, labels: Value, command: &[&str]) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "sandbox",
                "image": IMAGE,
                "command": command,
                "env": [{"name": "PATH", "value": PATH}],
                "stdin": true,
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                "resources": {"limits": {"memory": "256Mi", "cpu": "500m"}},
            }],
        },
    }))
    .expect("a Pod")
}

/// Watches pod `name` until `done` says its state is final enough; returns that state.
async fn watch_until(pods: &Api<Pod>, name: &str, done: impl Fn(&Pod) -> bool) -> Pod {
    let wp = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(60);
    let mut stream = pods
        .watch(&wp, "0")
        .await
        .expect("the watch starts")
        .boxed();
    while let Some(event) = stream.try_next().await.expect("watch events") {
        if let WatchEvent::Added(pod) | WatchEvent::Modified(pod) = event {
            if done(&pod) {
                return pod;
            }
        }
    }
    panic!("the watch ended before pod {name} got there");
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

async fn running_pod(pods: &Api<Pod>, name: &str, labels: Value) -> Pod {
    pods.create(
        &PostParams::default(),
        &pod_json(name, labels, &["sleep", "3600"]),
    )
    .await
    .expect("the pod is created");
    watch_until(pods, name, |p| phase(p) == "Running").await
}

/// Runs `command` with kube-rs's exec, reading stdout and stderr concurrently.
async fn exec(pods: &Api<Pod>, name: &str, command: &[&str], stdin: Option<&[u8]>) -> Execution {
    let params = AttachParams::default().stdin(stdin.is_some()).stderr(true);
    let mut attached = pods
        .exec(name, command.to_vec(), &params)
        .await
        .expect("the exec starts");
    if let Some(data) = stdin {
        let mut writer = attached.stdin().expect("stdin");
        writer.write_all(data).await.expect("stdin is written");
        // kube-rs sends v5's close of stdin when its pipe is shut down (dropping is not enough).
        writer.shutdown().await.expect("stdin is closed");
    }
    let mut stdout = attached.stdout().expect("stdout");
    let mut stderr = attached.stderr().expect("stderr");
    let status = attached.take_status().expect("a status future");
    let (out, err) = tokio::join!(read_all(&mut stdout), read_all(&mut stderr));
    let status = status
        .await
        .map(|s| serde_json::to_value(s).expect("a Status serialises"));
    let joined = attached.join().await;
    Execution {
        stdout: out,
        stderr: err,
        status,
        joined_ok: joined.is_ok(),
    }
}

async fn read_all(reader: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = reader.read_to_end(&mut all).await;
    all
}

struct Execution {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<Value>,
    joined_ok: bool,
}

fn assert_no_leak(instance: &str) {
    let left = containers_of_instance(instance).expect("docker lists containers");
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_watch_exec_select_delete() {
    let fake = FakeKube::start().await.expect("the fake starts");
    let instance = fake.instance().to_string();
    let pods: Api<Pod> = Api::default_namespaced(client(&fake).await);
    let pod = running_pod(&pods, "one", json!({"app": "a", "tier": "x"})).await;
    let status = pod.status.expect("a status");
    let ready = status.conditions.unwrap_or_default();
    assert!(ready
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True"));
    assert!(status.container_statuses.unwrap_or_default()[0]
        .state
        .as_ref()
        .and_then(|s| s.running.as_ref())
        .is_some());
    assert!(pod.metadata.uid.is_some() && pod.metadata.creation_timestamp.is_some());

    let run = exec(
        &pods,
        "one",
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        None,
    )
    .await;
    assert_eq!(run.stdout, b"out\n");
    assert_eq!(run.stderr, b"err\n");
    let status = run.status.expect("a status frame");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");

    let run = exec(&pods, "one", &["tr", "a-z", "A-Z"], Some(b"hello")).await;
    assert_eq!(run.stdout, b"HELLO");
    assert!(run.joined_ok, "the session ended cleanly");
    assert_eq!(run.status.expect("a status")["status"], "Success");

    // A second pod, for the selectors.
    pods.create(
        &PostParams::default(),
        &pod_json("two", json!({"app": "b"}), &["sleep", "3600"]),
    )
    .await
    .expect("the second pod is created");
    let names = |list: kube::core::ObjectList<Pod>| {
        let mut n: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        n.sort();
        n
    };
    let list = |selector: &'static str| {
        let pods = pods.clone();
        async move {
            names(
                pods.list(&ListParams::default().labels(selector))
                    .await
                    .expect("a list"),
            )
        }
    };
    assert_eq!(list("app=a").await, ["one"]);
    assert_eq!(list("app!=a").await, ["two"]);
    assert_eq!(list("tier").await, ["one"]);
    assert_eq!(list("!tier").await, ["two"]);
    assert_eq!(list("app in (a,b)").await, ["one", "two"]);
    let by_name = pods
        .list(&ListParams::default().fields("metadata.name=two"))
        .await
        .expect("a list");
    assert_eq!(names(by_name), ["two"]);
    let running = pods
        .list(&ListParams::default().fields("status.phase=Running"))
        .await
        .expect("a list");
    assert!(names(running).contains(&"one".to_string()));

    // The delete is seen by a watch started from the current version.
    let current = pods
        .list(&ListParams::default())
        .await
        .expect("a list")
        .metadata
        .resource_version
        .expect("a version");
    let mut watch = pods
        .watch(
            &WatchParams::default()
                .fields("metadata.name=one")
                .timeout(30),
            &current,
        )
        .await
        .expect("the watch starts")
        .boxed();
    pods.delete("one", &DeleteParams::default().grace_period(0))
        .await
        .expect("the pod is deleted");
    let mut deleted = false;
    while let Some(event) = watch.try_next().await.expect("watch events") {
        if let WatchEvent::Deleted(pod) = event {
            deleted = pod.metadata.name.as_deref() == Some("one");
            break;
        }
    }
    assert!(deleted, "the watch saw no DELETED event");
    let gone = pods.get("one").await.expect_err("the pod is gone");
    assert!(
        matches!(gone, kube::Error::Api(ref s) if s.code == 404),
        "{gone:?}"
    );
    assert_eq!(
        fake.containers().expect("docker lists").len(),
        1,
        "only pod two's container is left"
    );
    drop(fake);
    assert_no_leak(&instance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_faults() {
    let fake = FakeKube::start().await.expect("the fake starts");
    let instance = fake.instance().to_string();
    let pods: Api<Pod> = Api::default_namespaced(client(&fake).await);
    running_pod(&pods, "f", json!({})).await;
    let command = ["sh", "-c", "echo hello; echo oops >&2"];

    fake.set_fault(Fault::SplitFrames);
    let run = exec(&pods, "f", &command, None).await;
    assert_eq!(
        (run.stdout.as_slice(), run.stderr.as_slice()),
        (&b"hello\n"[..], &b"oops\n"[..])
    );
    assert_eq!(run.status.expect("a status")["status"], "Success");

    fake.set_fault(Fault::StderrFlood);
    let run = exec(&pods, "f", &command, None).await;
    assert_eq!(run.stderr.len(), 4 * 1024 * 1024 + 5);
    assert!(run.stderr.ends_with(b"oops\n"));
    assert_eq!(run.stdout, b"hello\n");

    fake.set_fault(Fault::NoStatusFrame);
    let run = exec(&pods, "f", &command, None).await;
    assert_eq!(run.stdout, b"hello\n");
    assert!(run.status.is_none(), "no status frame was expected");

    fake.set_fault(Fault::ContainerNotFound);
    let run = exec(&pods, "f", &command, None).await;
    let status = run.status.expect("a status");
    assert_eq!(status["reason"], "InternalError");
    assert!(status["message"]
        .as_str()
        .unwrap_or_default()
        .contains("container not found"));

    fake.set_fault(Fault::DropConnection);
    let params = AttachParams::default().stderr(true);
    let script = ["sh", "-c", "echo first; sleep 0.2; echo second"];
    let mut attached = pods
        .exec("f", script, &params)
        .await
        .expect("the exec starts");
    let mut stdout = attached.stdout().expect("stdout");
    let status = attached.take_status().expect("a status future");
    // kube-rs ends its loop with an error and leaves stdout open (no EOF): read with a time limit.
    let joined = tokio::time::timeout(Duration::from_secs(10), attached.join())
        .await
        .expect("join ends");
    assert!(
        joined.is_err(),
        "a dropped connection is an error: {joined:?}"
    );
    assert!(
        status.await.is_none(),
        "no status frame after a dropped connection"
    );
    let mut partial = vec![0; 64];
    let n = tokio::time::timeout(Duration::from_secs(1), stdout.read(&mut partial))
        .await
        .unwrap_or(Ok(0))
        .unwrap_or(0);
    assert!(!String::from_utf8_lossy(&partial[..n]).contains("second"));

    fake.set_fault(Fault::Forbidden);
    let refused = pods
        .exec("f", ["true"], &AttachParams::default())
        .await
        .err()
        .expect("403");
    assert!(
        format!("{refused:?}").contains("403") || format!("{refused}").contains("forbidden"),
        "{refused:?}"
    );

    // Forbidden stays, as RBAC does, until cleared.
    assert!(pods
        .exec("f", ["true"], &AttachParams::default())
        .await
        .is_err());
    fake.clear_fault();
    // Each other fault was taken once: this exec is normal again.
    let run = exec(&pods, "f", &command, None).await;
    assert_eq!(run.status.expect("a status")["status"], "Success");

    fake.set_fault(Fault::UnschedulablePods);
    pods.create(
        &PostParams::default(),
        &pod_json("u", json!({}), &["sleep", "3600"]),
    )
    .await
    .expect("created");
    let pod = watch_until(&pods, "u", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable")
                })
            })
    })
    .await;
    assert_eq!(phase(&pod), "Pending");
    drop(fake);
    assert_no_leak(&instance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_transitions() {
    let fake = FakeKube::start().await.expect("the fake starts");
    let instance = fake.instance().to_string();
    let pods: Api<Pod> = Api::default_namespaced(client(&fake).await);
    let code = |e: kube::Error| match e {
        kube::Error::Api(s) => (s.code, s.reason, s.message),
        other => panic!("not an API error: {other:?}"),
    };

    let bad = pods
        .create(
            &PostParams::default(),
            &pod_json("Bad_Name", json!({}), &["true"]),
        )
        .await;
    assert_eq!(code(bad.expect_err("422")).0, 422);
    // Volumes are modelled now (emptyDir); the host's network is a field the fake refuses.
    let mut on_host = serde_json::to_value(pod_json("v", json!({}), &["true"])).expect("json");
    on_host["spec"]["hostNetwork"] = json!(true);
    let on_host: Pod = serde_json::from_value(on_host).expect("a pod");
    let (status, reason, message) = code(
        pods.create(&PostParams::default(), &on_host)
            .await
            .expect_err("400"),
    );
    assert_eq!((status, reason.as_str()), (400, "BadRequest"));
    assert!(message.contains("spec.hostNetwork"), "{message}");

    pods.create(
        &PostParams::default(),
        &pod_json("done", json!({}), &["sh", "-c", "exit 7"]),
    )
    .await
    .expect("created");
    let again = pods
        .create(
            &PostParams::default(),
            &pod_json("done", json!({}), &["true"]),
        )
        .await;
    assert_eq!(code(again.expect_err("409")).1, "AlreadyExists");
    let failed = watch_until(&pods, "done", |p| phase(p) == "Failed").await;
    let terminated = failed
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c[0].state.clone())
        .and_then(|s| s.terminated);
    assert_eq!(terminated.map(|t| t.exit_code), Some(7));
    let refused = pods
        .exec("done", ["true"], &AttachParams::default())
        .await
        .err()
        .expect("400");
    assert!(format!("{refused}").contains("completed pod"), "{refused}");

    let mut absent = pod_json("nopull", json!({}), &["true"]);
    if let Some(spec) = absent.spec.as_mut() {
        spec.containers[0].image = Some("fake-kube-absent-image:none".into());
    }
    pods.create(&PostParams::default(), &absent)
        .await
        .expect("created");
    let waiting = |reason: &'static str| {
        move |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|c| {
                    c[0].state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref())
                        == Some(reason)
                })
        }
    };
    watch_until(&pods, "nopull", waiting("ErrImagePull")).await;
    let backoff = watch_until(&pods, "nopull", waiting("ImagePullBackOff")).await;
    assert_eq!(phase(&backoff), "Pending");

    let mut deadline = pod_json("deadline", json!({}), &["sleep", "3600"]);
    if let Some(spec) = deadline.spec.as_mut() {
        spec.active_deadline_seconds = Some(2);
    }
    pods.create(&PostParams::default(), &deadline)
        .await
        .expect("created");
    let ended = watch_until(&pods, "deadline", |p| phase(p) == "Failed").await;
    assert_eq!(
        ended.status.and_then(|s| s.reason).as_deref(),
        Some("DeadlineExceeded")
    );

    let missing = pods
        .exec("nobody", ["true"], &AttachParams::default())
        .await
        .err()
        .expect("404");
    assert!(
        format!("{missing:?}").contains("404") || format!("{missing}").contains("not found"),
        "{missing:?}"
    );
    drop(fake);
    assert_no_leak(&instance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_policy_isolates_new_pods() {
    let fake = FakeKube::start().await.expect("the fake starts");
    let instance = fake.instance().to_string();
    let client = client(&fake).await;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), "sandboxes");
    let policy: NetworkPolicy = serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p-no-network", "labels": {"enclave.id": "p"}},
        "spec": {"podSelector": {"matchLabels": {"enclave.id": "p"}}, "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []},
    }))
    .expect("a policy");
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("the policy is created");
    assert_eq!(
        policies
            .list(&ListParams::default())
            .await
            .expect("a list")
            .items
            .len(),
        1
    );
    let pods: Api<Pod> = Api::namespaced(client, "sandboxes");
    running_pod(&pods, "isolated", json!({"enclave.id": "p"})).await;
    running_pod(&pods, "open", json!({"enclave.id": "q"})).await;
    let docker = bollard::Docker::connect_with_local_defaults()
        .expect("docker")
        .negotiate_version()
        .await
        .expect("docker");
    let mode = |pod: &'static str| {
        let docker = docker.clone();
        let name = format!("fake-kube-{instance}-sandboxes-{pod}");
        async move {
            let info = docker
                .inspect_container(
                    &name,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await
                .expect("inspect");
            info.host_config
                .and_then(|h| h.network_mode)
                .unwrap_or_default()
        }
    };
    assert_eq!(mode("isolated").await, "none");
    assert_ne!(mode("open").await, "none");
    let run = exec(
        &pods,
        "isolated",
        &["sh", "-c", "cat /proc/net/dev | grep -c :"],
        None,
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "1", "only lo");
    policies
        .delete("p-no-network", &DeleteParams::default())
        .await
        .expect("deleted");
    assert!(policies.get("p-no-network").await.is_err());
    drop(fake);
    assert_no_leak(&instance);
}

/// A WebSocket client offering only v4: the fake picks v4, and exec works without stdin close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_v4_client_and_spdy_refusal() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let fake = FakeKube::start().await.expect("the fake starts");
    let instance = fake.instance().to_string();
    let pods: Api<Pod> = Api::default_namespaced(client(&fake).await);
    running_pod(&pods, "raw", json!({})).await;
    let url = format!(
        "{}/api/v1/namespaces/default/pods/raw/exec?command=sh&command=-c&command=echo+hi%3B+exit+2&stdout=true&stderr=true",
        fake.url().replace("http://", "ws://")
    );
    let mut request = url.as_str().into_client_request().expect("a request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v4.channel.k8s.io".parse().expect("a header"),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the upgrade");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "v4.channel.k8s.io"
    );
    let (mut stdout, mut status) = (Vec::new(), None);
    while let Some(Ok(message)) = socket.next().await {
        if let Message::Binary(data) = message {
            match data.first() {
                Some(1) => stdout.extend_from_slice(&data[1..]),
                Some(3) => {
                    status = Some(serde_json::from_slice::<Value>(&data[1..]).expect("a Status"))
                }
                _ => {}
            }
        }
    }
    let _ = socket.close(None).await;
    assert_eq!(stdout, b"hi\n");
    assert_eq!(
        status.expect("a status")["details"]["causes"][0]["message"],
        "2"
    );

    // kubectl's fallback: SPDY, which the fake refuses with a Status.
    let answer = raw_http(
        &fake,
        "POST /api/v1/namespaces/default/pods/raw/exec?command=true&stdout=true HTTP/1.1\r\n\
         Host: fake\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
         X-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("\"reason\":\"BadRequest\"") && answer.contains("only WebSocket"),
        "{answer}"
    );
    drop(fake);
    assert_no_leak(&instance);
}

/// The enclave backend's own Pod and NetworkPolicy (its manifest snapshot) are accepted and
/// modelled: limits, capabilities, no-new-privileges, TTY, working dir, no network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enclave_manifest_runs_as_modelled() {
    let snapshot = include_str!(
        "../../../src/backend/kubernetes/snapshots/enclave__backend__kubernetes__manifest__tests__pod_without_network.snap"
    );
    let start = snapshot
        .find("\n[")
        .expect("the snapshot holds a JSON list");
    let objects: Value = serde_json::from_str(&snapshot[start..]).expect("snapshot JSON");
    let mut pod = objects[0].clone();
    // The snapshot's image is not on this machine (the fake never pulls), and the local image has
    // no command of its own.
    pod["spec"]["containers"][0]["image"] = json!(IMAGE);
    pod["spec"]["containers"][0]["command"] = json!(["sleep", "3600"]);
    let pod: Pod = serde_json::from_value(pod).expect("a Pod");
    let policy: NetworkPolicy = serde_json::from_value(objects[1].clone()).expect("a policy");

    let fake = FakeKube::start().await.expect("the fake starts");
    let instance = fake.instance().to_string();
    let client = client(&fake).await;
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), "sandboxes");
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("the policy is created");
    let pods: Api<Pod> = Api::namespaced(client, "sandboxes");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("the pod is created");
    watch_until(&pods, "enclave-k3x9m2pa", |p| phase(p) == "Running").await;

    let docker = bollard::Docker::connect_with_local_defaults()
        .expect("docker")
        .negotiate_version()
        .await
        .expect("docker");
    let name = format!("fake-kube-{instance}-sandboxes-enclave-k3x9m2pa");
    let info = docker
        .inspect_container(
            &name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .expect("inspect");
    let host = info.host_config.expect("a host config");
    assert_eq!(host.memory, Some(4294967296));
    assert_eq!(host.nano_cpus, Some(2_000_000_000));
    assert_eq!(host.cap_drop.unwrap_or_default(), ["ALL"]);
    assert!(host
        .cap_add
        .unwrap_or_default()
        .iter()
        .any(|c| c.ends_with("SETUID")));
    assert!(host
        .security_opt
        .unwrap_or_default()
        .iter()
        .any(|o| o == "no-new-privileges"));
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    let config = info.config.expect("a config");
    assert_eq!((config.tty, config.open_stdin), (Some(true), Some(true)));
    assert_eq!(config.working_dir.as_deref(), Some("/sandbox"));
    let labels = config.labels.unwrap_or_default();
    assert!(
        labels.keys().all(|k| k.starts_with("fake-kube.")),
        "{labels:?}"
    );

    let params = AttachParams::default()
        .container("sandbox")
        .stderr(false)
        .tty(true);
    let mut attached = pods
        .exec(
            "enclave-k3x9m2pa",
            ["sh", "-c", "echo tty; exit 4"],
            &params,
        )
        .await
        .expect("exec");
    let mut stdout = attached.stdout().expect("stdout");
    let status = attached.take_status().expect("a status future");
    let out = read_all(&mut stdout).await;
    assert_eq!(String::from_utf8_lossy(&out), "tty\r\n");
    assert_eq!(
        status
            .await
            .expect("a status")
            .details
            .and_then(|d| d.causes)
            .expect("causes")[0]
            .message
            .as_deref(),
        Some("4")
    );
    drop(fake);
    assert_no_leak(&instance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_delete_and_exec_refusals() {
    let fake = FakeKube::start().await.expect("the fake starts");
    let instance = fake.instance().to_string();
    let pods: Api<Pod> = Api::default_namespaced(client(&fake).await);
    let mut graceful = pod_json("g", json!({}), &["sleep", "3600"]);
    if let Some(spec) = graceful.spec.as_mut() {
        spec.termination_grace_period_seconds = Some(1);
    }
    pods.create(&PostParams::default(), &graceful)
        .await
        .expect("created");
    let running = watch_until(&pods, "g", |p| phase(p) == "Running").await;
    let version = running.metadata.resource_version.expect("a version");

    let refused = pods
        .exec("g", ["true"], &AttachParams::default().container("other"))
        .await
        .err()
        .expect("400");
    assert!(
        format!("{refused}").contains("is not valid for pod g"),
        "{refused}"
    );
    let patched = pods
        .patch(
            "g",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .expect_err("405");
    assert!(
        matches!(patched, kube::Error::Api(ref s) if s.code == 405),
        "{patched:?}"
    );

    let mut watch = pods
        .watch(&WatchParams::default().timeout(30), &version)
        .await
        .expect("a watch")
        .boxed();
    let answer = pods
        .delete("g", &DeleteParams::default())
        .await
        .expect("deleted");
    let shown = answer.left().expect("the pod, still terminating");
    assert!(shown.metadata.deletion_timestamp.is_some());
    let (mut terminating, mut deleted) = (false, false);
    while let Some(event) = watch.try_next().await.expect("events") {
        match event {
            WatchEvent::Modified(p) if p.metadata.deletion_timestamp.is_some() => {
                terminating = true
            }
            WatchEvent::Deleted(_) => {
                deleted = true;
                break;
            }
            _ => {}
        }
    }
    assert!(
        terminating && deleted,
        "terminating {terminating}, deleted {deleted}"
    );

    let mut absent = pod_json("nopull", json!({}), &["true"]);
    if let Some(spec) = absent.spec.as_mut() {
        spec.containers[0].image = Some("fake-kube-absent-image:none".into());
    }
    pods.create(&PostParams::default(), &absent)
        .await
        .expect("created");
    watch_until(&pods, "nopull", |p| {
        p.spec.as_ref().is_some_and(|s| s.node_name.is_some())
    })
    .await;
    let run = exec(&pods, "nopull", &["true"], None).await;
    let status = run.status.expect("a status");
    assert_eq!(status["reason"], "InternalError");

    fake.set_fault(Fault::UnschedulablePods);
    pods.create(
        &PostParams::default(),
        &pod_json("nowhere", json!({}), &["true"]),
    )
    .await
    .expect("created");
    let refused = pods
        .exec("nowhere", ["true"], &AttachParams::default())
        .await
        .err()
        .expect("400");
    assert!(
        format!("{refused}").contains("does not have a host assigned"),
        "{refused}"
    );
    drop(fake);
    assert_no_leak(&instance);
}

/// Sends one raw HTTP/1.1 request and returns the answer, read until its JSON body ends.
async fn raw_http(fake: &FakeKube, request: &str) -> String {
    let address = fake.url().replace("http://", "");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("the fake accepts");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is sent");
    let mut answer = Vec::new();
    let mut buffer = vec![0; 4096];
    while !answer.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("an answer in time")
            .expect("an answer");
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

//! The TLS mode with a bearer token: kube-rs trusts the fake's CA (from the kubeconfig it
//! writes), sends the token, creates a Pod and execs in it over a WebSocket upgrade on TLS; a
//! wrong or missing token gets the real server's 401 Status; a client that does not trust the CA
//! cannot connect; kubectl, an independent client, does the same with the kubeconfig.

use std::time::Duration;

use enclave_fake_kube::{containers_of_instance, FakeKube, Options};
use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;
use tokio::io::AsyncReadExt;

const IMAGE: &str = "enclave-test-python:bookworm";
const TOKEN: &str = "the-service-account-token";

async fn config_of(fake: &FakeKube) -> Config {
    let kubeconfig = Kubeconfig::read_from(fake.kubeconfig()).expect("the kubeconfig parses");
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube-rs reads the kubeconfig")
}

async fn tls_fake() -> FakeKube {
    FakeKube::start_with(Options {
        tls: true,
        token: Some(TOKEN.into()),
    })
    .await
    .expect("the fake starts with TLS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_over_tls_with_the_token_creates_and_execs() {
    let fake = tls_fake().await;
    let instance = fake.instance().to_string();
    assert!(
        fake.url().starts_with("https://127.0.0.1:"),
        "{}",
        fake.url()
    );
    let ca = fake.ca_pem().expect("a CA in the TLS mode");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let config = config_of(&fake).await;
    assert_eq!(config.cluster_url.scheme_str(), Some("https"));
    let pods: Api<Pod> = Api::default_namespaced(Client::try_from(config).expect("a client"));

    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "secure"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "sandbox", "image": IMAGE, "command": ["sleep", "3600"]}],
        },
    }))
    .expect("a Pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("the pod is created over TLS");
    let wp = WatchParams::default()
        .fields("metadata.name=secure")
        .timeout(60);
    let mut events = pods.watch(&wp, "0").await.expect("a watch").boxed();
    loop {
        match events.try_next().await.expect("watch events") {
            Some(WatchEvent::Added(p) | WatchEvent::Modified(p))
                if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") =>
            {
                break
            }
            Some(_) => continue,
            None => panic!("the watch ended before the pod ran"),
        }
    }

    // exec is a WebSocket upgrade: it must survive the TLS stream.
    let mut attached = pods
        .exec(
            "secure",
            vec!["/bin/echo", "over tls"],
            &AttachParams::default().stderr(false),
        )
        .await
        .expect("the exec starts over TLS");
    let mut stdout = attached.stdout().expect("stdout");
    let status = attached.take_status().expect("a status future");
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.expect("stdout reads");
    let status = status.await.expect("a channel-3 Status");
    assert_eq!(out, "over tls\n");
    assert_eq!(status.status.as_deref(), Some("Success"), "{status:?}");

    pods.delete("secure", &DeleteParams::default())
        .await
        .expect("the pod is deleted");
    fake.shutdown().expect("clean-up");
    assert!(containers_of_instance(&instance)
        .expect("docker")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_token_gets_the_real_servers_401() {
    let fake = tls_fake().await;
    for token in [Some("not-the-token"), None] {
        let mut config = config_of(&fake).await;
        config.auth_info.token = token.map(|t| t.to_string().into());
        let pods: Api<Pod> = Api::default_namespaced(Client::try_from(config).expect("a client"));
        let err = pods
            .list(&ListParams::default())
            .await
            .expect_err("refused without the token");
        let kube::Error::Api(status) = err else {
            panic!("not a Status: {err:?}");
        };
        assert_eq!(status.code, 401, "{status:?}");
        assert_eq!(status.reason, "Unauthorized", "{status:?}");
        assert_eq!(status.message, "Unauthorized", "{status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_trust_the_ca_cannot_connect() {
    let fake = tls_fake().await;
    let other = tls_fake().await;
    let mut config = config_of(&fake).await;
    // The other fake's CA: a certificate the fake's server certificate does not chain to.
    config.root_cert = config_of(&other).await.root_cert;
    let pods: Api<Pod> = Api::default_namespaced(Client::try_from(config).expect("a client"));
    let err = tokio::time::timeout(Duration::from_secs(30), pods.list(&ListParams::default()))
        .await
        .expect("an answer in time")
        .expect_err("an untrusted server");
    assert!(!matches!(err, kube::Error::Api(_)), "{err:?}");
}

#[test]
fn kubectl_reads_the_ca_and_token_from_the_kubeconfig() {
    let fake = FakeKube::start_blocking_with(Options {
        tls: true,
        token: Some(TOKEN.into()),
    })
    .expect("the fake starts with TLS");
    let out = std::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(fake.kubeconfig())
        .args(["get", "pods", "-o", "name"])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong = std::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(fake.kubeconfig())
        .args(["--token", "not-the-token", "get", "pods"])
        .output()
        .expect("kubectl runs");
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(said.contains("Unauthorized"), "{said}");
}

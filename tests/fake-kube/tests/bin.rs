//! The `fake-kube` binary: its lines on stdout, the fault endpoint, and clean-up on SIGTERM.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use enclave_fake_kube::containers_of_instance;

/// One HTTP/1.1 request with `Connection: close`; returns the status line and the body.
fn http(url: &str, method: &str, path: &str, body: &str) -> (String, String) {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("the fake accepts");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .expect("the request is sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[test]
fn the_binary_serves_takes_faults_and_cleans_up_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-kube"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("fake-kube starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let lines: HashMap<String, String> = BufReader::new(stdout)
        .lines()
        .take(3)
        .map(|l| l.expect("a line"))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let url = lines["FAKE_KUBE_URL"].clone();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let kubeconfig = std::fs::read_to_string(&lines["KUBECONFIG"]).expect("the kubeconfig");
    assert!(kubeconfig.contains(&format!("server: {url}")));
    assert!(kubeconfig.contains("current-context: fake"));
    let instance = lines["FAKE_KUBE_INSTANCE"].clone();

    let (status, _) = http(&url, "PUT", "/_fake/fault", r#"{"fault":"Bogus"}"#);
    assert!(status.contains(" 400 "), "{status}");
    let (status, _) = http(
        &url,
        "PUT",
        "/_fake/fault",
        r#"{"fault":"UnschedulablePods"}"#,
    );
    assert!(status.contains(" 200 "), "{status}");
    let pod = |name: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},"spec":{{"restartPolicy":"Never","terminationGracePeriodSeconds":0,"containers":[{{"name":"c","image":"enclave-test-python:bookworm","command":["sleep","3600"]}}]}}}}"#
        )
    };
    let (status, _) = http(
        &url,
        "POST",
        "/api/v1/namespaces/default/pods",
        &pod("stuck"),
    );
    assert!(status.contains(" 201 "), "{status}");
    let (status, _) = http(
        &url,
        "POST",
        "/api/v1/namespaces/default/pods",
        &pod("runs"),
    );
    assert!(status.contains(" 201 "), "{status}");

    // The fault took the first pod only: one container comes up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers_of_instance(&instance)
        .expect("docker lists")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the container never came");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, stuck) = http(&url, "GET", "/api/v1/namespaces/default/pods/stuck", "");
    assert!(stuck.contains("Unschedulable"), "{stuck}");

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let exit = child.wait().expect("fake-kube ends");
    assert!(exit.success(), "{exit:?}");
    let left = containers_of_instance(&instance).expect("docker lists");
    assert!(left.is_empty(), "containers left behind: {left:?}");
}

//! A broken cluster, as the fake API server plays one: each fault is taken by the next exec (or
//! Pod create), so these sandboxes run without the agent and the next exec is the test's own.

use std::time::{Duration, Instant};

use enclave_fake_kube::Fault;

use super::Cluster;
use crate::common::{stderr, stdout};

fn without_agent() -> Cluster {
    Cluster::fake()
}

fn create_plain(k: &Cluster) -> String {
    let out = k
        .cmd()
        .env("ENCLAVE_AGENT", "off")
        .args(["create", "--image", &k.image])
        .args(k.env.label_args())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn exec_after(k: &Cluster, fault: Fault, command: &str) -> std::process::Output {
    let id = create_plain(k);
    k.fake_server().set_fault(fault);
    k.cmd().args(["exec", &id, command]).output().unwrap()
}

#[test]
fn output_split_into_one_byte_frames_arrives_whole() {
    let k = without_agent();
    let out = exec_after(
        &k,
        Fault::SplitFrames,
        "printf hello; printf world >&2; exit 5",
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello");
    assert!(stderr(&out).contains("world"), "{}", stderr(&out));
}

#[test]
fn a_stderr_flood_does_not_block_stdout() {
    let k = without_agent();
    let out = exec_after(&k, Fault::StderrFlood, "echo done");
    assert!(out.status.success(), "exit {:?}", out.status.code());
    assert_eq!(stdout(&out), "done\n");
    assert!(out.stderr.len() >= 4 << 20, "{} bytes", out.stderr.len());
}

#[test]
fn a_stream_without_a_status_frame_is_never_a_success() {
    let k = without_agent();
    let out = exec_after(&k, Fault::NoStatusFrame, "echo hi");
    assert!(
        !out.status.success(),
        "a missing status must not read as exit 0"
    );
    assert!(stderr(&out).contains("status"), "{}", stderr(&out));
}

#[test]
fn a_container_that_vanished_is_said_so() {
    let k = without_agent();
    let out = exec_after(&k, Fault::ContainerNotFound, "echo hi");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[test]
fn a_dropped_connection_fails_the_command_and_says_so() {
    let k = without_agent();
    let started = Instant::now();
    let out = exec_after(
        &k,
        Fault::DropConnection,
        "echo before; sleep 5; echo after",
    );
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(!stdout(&out).contains("after"), "{}", stdout(&out));
}

#[test]
fn an_exec_rbac_forbids_is_refused_in_its_words() {
    let k = without_agent();
    let out = exec_after(&k, Fault::Forbidden, "echo hi");
    assert!(!out.status.success());
    let said = stderr(&out).to_lowercase();
    assert!(said.contains("forbidden"), "{said}");
}

#[test]
fn a_pod_that_cannot_be_scheduled_fails_the_create_in_words() {
    let k = without_agent();
    k.fake_server().set_fault(Fault::UnschedulablePods);
    let out = k.try_create(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be scheduled"),
        "{}",
        stderr(&out)
    );
    assert!(k.pods().is_empty(), "the Pod was removed");
    assert!(
        k.fake_server().containers().unwrap().is_empty(),
        "and nothing runs for it"
    );
}

#[test]
fn the_agent_rides_one_exec_and_survives_a_lost_bridge() {
    if std::env::var("ENCLAVE_AGENT").is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
        return;
    }
    let k = Cluster::fake();
    let id = k.create(&["--tool", "shell_executor"]);
    let out = k
        .cmd()
        .args(["-v", "exec", &id, "echo via agent"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "via agent\n", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("through its agent"),
        "{}",
        stderr(&out)
    );
    // The bridge's exec fails: the command still runs, by plain exec, and says why.
    k.fake_server().set_fault(Fault::ContainerNotFound);
    let out = k
        .cmd()
        .args(["-v", "exec", &id, "echo by plain exec"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "by plain exec\n", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("using plain exec"),
        "{}",
        stderr(&out)
    );
}

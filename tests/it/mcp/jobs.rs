//! Background jobs: output read piece by piece, waiting for the end, killing, and jobs that
//! outlive the call timeout.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{call, connect, create, field, is_error, text, Client, Version};
use crate::common::TestEnv;

async fn start(client: &Client, sandbox_id: &str, command: &str) -> String {
    let started = call(
        client,
        "job_start",
        json!({"command": command, "sandbox_id": sandbox_id}),
    )
    .await;
    assert!(!is_error(&started), "job_start: {}", text(&started));
    field(&started, "job_id")
        .as_str()
        .expect("job_id")
        .to_string()
}

/// job_read until `done` says so (or 60 s pass); returns every output read and the last result.
async fn read_until(
    client: &Client,
    job_id: &str,
    wait: f64,
    mut done: impl FnMut(&str, &rmcp::model::CallToolResult) -> bool,
) -> (String, rmcp::model::CallToolResult) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut all = String::new();
    loop {
        let read = call(
            client,
            "job_read",
            json!({"job_id": job_id, "wait_seconds": wait}),
        )
        .await;
        assert!(!is_error(&read), "job_read: {}", text(&read));
        all.push_str(field(&read, "output").as_str().expect("output"));
        if done(&all, &read) {
            return (all, read);
        }
        assert!(Instant::now() < deadline, "gave up; read so far: {all:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn output_is_read_piece_by_piece_and_a_wait_ends_with_the_exit_code() {
    let env = TestEnv::new();
    let client = connect(&env, &[], Version::Handshake).await;
    let id = create(&client, json!({})).await;
    let job = start(
        &client,
        &id,
        "echo one; while [ ! -f /tmp/go ]; do sleep 0.1; done; echo two >&2; exit 3",
    )
    .await;
    let (first, read) = read_until(&client, &job, 0.0, |all, _| all.contains("one")).await;
    assert_eq!(first, "one\n");
    assert_eq!(field(&read, "running"), json!(true));
    assert!(text(&read).contains("still running"), "{}", text(&read));
    // Nothing new until the job goes on.
    let again = call(&client, "job_read", json!({"job_id": job})).await;
    assert_eq!(field(&again, "output"), json!(""), "{}", text(&again));
    let go = call(
        &client,
        "shell_executor",
        json!({"command": "touch /tmp/go", "sandbox_id": id}),
    )
    .await;
    assert!(!is_error(&go), "{}", text(&go));
    // One read with a wait returns as soon as the job ends, with only the new output.
    let started = Instant::now();
    let end = call(
        &client,
        "job_read",
        json!({"job_id": job, "wait_seconds": 30}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the wait did not end with the job"
    );
    assert!(!is_error(&end), "{}", text(&end));
    assert_eq!(field(&end, "running"), json!(false), "{}", text(&end));
    assert_eq!(field(&end, "exit_code"), json!(3), "{}", text(&end));
    assert_eq!(field(&end, "output"), json!("two\n"));
    assert!(text(&end).contains("exited with code 3"), "{}", text(&end));
    // A workdir is honoured; a missing one makes a failed job, an error that says so.
    let pwd = call(
        &client,
        "job_start",
        json!({"command": "pwd", "sandbox_id": id, "workdir": "/tmp"}),
    )
    .await;
    let pwd_id = field(&pwd, "job_id").as_str().unwrap().to_string();
    let pwd = call(
        &client,
        "job_read",
        json!({"job_id": pwd_id, "wait_seconds": 30}),
    )
    .await;
    assert_eq!(field(&pwd, "output"), json!("/tmp\n"), "{}", text(&pwd));
    let nowhere = call(
        &client,
        "job_start",
        json!({"command": "pwd", "sandbox_id": id, "workdir": "/no/such/dir"}),
    )
    .await;
    let nowhere_id = field(&nowhere, "job_id").as_str().unwrap().to_string();
    let nowhere = call(
        &client,
        "job_read",
        json!({"job_id": nowhere_id, "wait_seconds": 30}),
    )
    .await;
    assert!(is_error(&nowhere), "{}", text(&nowhere));
    assert_eq!(
        field(&nowhere, "status"),
        json!("failed"),
        "{}",
        text(&nowhere)
    );
    assert!(
        text(&nowhere).contains("/no/such/dir"),
        "{}",
        text(&nowhere)
    );
    // Unknown jobs and jobs without a sandbox are results the model can act on.
    let unknown = call(&client, "job_read", json!({"job_id": "nope1234"})).await;
    assert!(is_error(&unknown) && text(&unknown).contains("No job nope1234"));
    let throwaway = call(&client, "job_start", json!({"command": "true"})).await;
    assert!(is_error(&throwaway), "{}", text(&throwaway));
    assert!(
        text(&throwaway).contains("sandbox_create"),
        "{}",
        text(&throwaway)
    );
    assert_eq!(env.containers().len(), 1, "no throwaway sandbox for a job");
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn job_kill_kills_every_process_the_job_started() {
    let env = TestEnv::new();
    let client = connect(&env, &[], Version::Handshake).await;
    let id = create(&client, json!({})).await;
    let container = env.containers().pop().expect("the sandbox's container");
    let job = start(&client, &id, "sleep 1234 & echo started; sleep 1235").await;
    read_until(&client, &job, 1.0, |all, _| all.contains("started")).await;
    crate::common::poll_until("the job's processes", 20, || {
        let ps = super::processes(&container);
        ps.contains("sleep 1234") && ps.contains("sleep 1235")
    });
    let killed = call(&client, "job_kill", json!({"job_id": job})).await;
    assert!(!is_error(&killed), "{}", text(&killed));
    assert_eq!(field(&killed, "running"), json!(false));
    assert_eq!(field(&killed, "status"), json!("killed"));
    assert!(text(&killed).contains("killed"), "{}", text(&killed));
    let ps = super::processes(&container);
    assert!(
        !ps.contains("sleep 1234") && !ps.contains("sleep 1235"),
        "left running after job_kill:\n{ps}"
    );
    // The sandbox stays usable, and the job reads as ended.
    let read = call(&client, "job_read", json!({"job_id": job})).await;
    assert_eq!(field(&read, "status"), json!("killed"));
    let after = call(
        &client,
        "shell_executor",
        json!({"command": "echo alive", "sandbox_id": id}),
    )
    .await;
    assert_eq!(text(&after).trim(), "alive");
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn a_job_outlives_the_call_timeout_and_finishes() {
    let env = TestEnv::new();
    let client = connect(&env, &["--call-timeout", "2"], Version::Handshake).await;
    let id = create(&client, json!({})).await;
    let job = start(&client, &id, "sleep 4; echo done").await;
    // A long wait is cut to what one call may take, and says so.
    let started = Instant::now();
    let first = call(
        &client,
        "job_read",
        json!({"job_id": job, "wait_seconds": 30}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited past the call timeout"
    );
    assert!(!is_error(&first), "{}", text(&first));
    assert_eq!(field(&first, "running"), json!(true));
    assert!(
        text(&first).contains("the most one call may wait"),
        "{}",
        text(&first)
    );
    let (all, end) = read_until(&client, &job, 30.0, |_, read| {
        field(read, "running") == Value::Bool(false)
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "ended too early"
    );
    assert_eq!(all, "done\n");
    assert_eq!(field(&end, "exit_code"), json!(0), "{}", text(&end));
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn jobs_are_killed_when_the_server_exits_even_in_sandboxes_it_keeps() {
    let env = TestEnv::new();
    let client = connect(&env, &["--keep"], Version::Handshake).await;
    let id = create(&client, json!({})).await;
    let container = env.containers().pop().expect("the sandbox's container");
    start(&client, &id, "sleep 1236").await;
    crate::common::poll_until("the job's process", 20, || {
        super::processes(&container).contains("sleep 1236")
    });
    client.cancel().await.expect("close");
    crate::common::poll_until("the job killed at exit", 30, || {
        !super::processes(&container).contains("sleep 1236")
    });
    assert_eq!(env.containers(), [container], "--keep keeps the sandbox");
}

//! What a user does with sandboxes on a cluster, through the real binary: each test runs on the
//! fake API server and, when `KUBECONFIG` is given, on a real cluster.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Cluster;
use crate::common::{stderr, stdout};
use crate::on_fake_and_real;

/// Whether this run puts the agent into Pods (`ENCLAVE_AGENT=off` runs the suite without it).
fn agent_on() -> bool {
    !std::env::var("ENCLAVE_AGENT").is_ok_and(|v| v.eq_ignore_ascii_case("off"))
}

fn create_exec_tools_and_rm(k: &Cluster) {
    let id = k.create(&["--tool", "python_executor", "--tool", "shell_executor"]);

    // The Pod is there, labelled, as kubectl (another client) sees it.
    let pods = k.pods();
    assert_eq!(pods.len(), 1, "{pods:?}");
    let pod = &pods[0];
    assert_eq!(pod["metadata"]["name"], format!("enclave-{id}"));
    assert_eq!(pod["metadata"]["labels"]["enclave.id"], id.as_str());
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);

    // A command: both streams and its exit code.
    let out = k
        .cmd()
        .args(["exec", &id, "echo out; echo err >&2; exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err\n"), "{}", stderr(&out));

    // The environment and working directory of the command are its own.
    let out = k
        .cmd()
        .args(["exec", "-e", "GREETING=hi there", "-w", "/tmp", &id])
        .arg("printf '%s in %s' \"$GREETING\" \"$(pwd)\"")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi there in /tmp");

    // Tools, as on Docker.
    let out = k
        .cmd()
        .args([
            "run-tool",
            &id,
            "python_executor",
            "--arg",
            "code=print(6 * 7)",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let result: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(result["output"].as_str().unwrap().trim(), "42", "{result}");

    // `ls` and `inspect` see it running, and say how commands reach it.
    let out = k.cmd().args(["ls", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let mine: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["id"] == id.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{listed}");
    assert_eq!(mine[0]["status"], "running");
    assert_eq!(mine[0]["tracked"], true);
    assert_eq!(mine[0]["location"]["kind"], "kubernetes");
    let out = k.cmd().args(["inspect", &id, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let info: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(info["metadata"]["pod"], format!("enclave-{id}"), "{info}");
    let mode = if agent_on() { "exec" } else { "off" };
    assert_eq!(info["agent"]["mode"], mode, "{info}");

    // The local engine's list does not hold it, and says where it is.
    let out = k
        .cmd()
        .env("ENCLAVE_BACKEND", "docker")
        .arg("ls")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains(&id), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("1 more on kubernetes: `enclave --backend kubernetes ls`"),
        "{}",
        stderr(&out)
    );

    // Removed: the Pod is gone and nothing is recorded.
    let out = k.cmd().args(["rm", &id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(k.pods().is_empty() || k.pods()[0]["metadata"]["deletionTimestamp"].is_string());
    let out = k.cmd().args(["ls", "-q"]).output().unwrap();
    assert!(!stdout(&out).contains(&id), "{}", stdout(&out));
    let out = k.cmd().args(["exec", &id, "true"]).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&id), "{}", stderr(&out));
}
on_fake_and_real!(create_exec_tools_and_rm);

fn a_timeout_kills_the_whole_tree(k: &Cluster) {
    let id = k.create(&[]);
    let started = Instant::now();
    let out = k
        .cmd()
        .args([
            "exec",
            "--timeout",
            "2",
            &id,
            "sleep 300 & sleep 301 & sleep 302",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        stderr(&out).contains("timed out after 2s"),
        "{}",
        stderr(&out)
    );
    // Nothing it started is left in the Pod.
    let out = k
        .cmd()
        .args(["exec", &id])
        .arg("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '^sleep 30' || true")
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "0", "{}", stderr(&out));
}
on_fake_and_real!(a_timeout_kills_the_whole_tree);

fn both_streams_flood_without_a_deadlock(k: &Cluster) {
    let id = k.create(&[]);
    let out = k
        .cmd()
        .args(["exec", &id])
        .arg("for i in 1 2 3 4; do head -c 2000000 /dev/zero | tr '\\0' a; head -c 2000000 /dev/zero | tr '\\0' b >&2; done")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        &stderr(&out)[..200.min(stderr(&out).len())]
    );
    assert_eq!(out.stdout.len(), 8_000_000);
    assert!(out.stdout.iter().all(|b| *b == b'a'));
    assert!(out.stderr.iter().filter(|b| **b == b'b').count() == 8_000_000);
}
on_fake_and_real!(both_streams_flood_without_a_deadlock);

fn files_go_in_and_out(k: &Cluster) {
    let id = k.create(&["--tool", "file_operation"]);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.txt"), "alpha\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(tree.join("sub/big.bin"), &big).unwrap();
    let out = k
        .cmd()
        .args(["cp", tree.to_str().unwrap(), &format!("{id}:/tmp/in")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = k
        .cmd()
        .args([
            "exec",
            &id,
            "cat /tmp/in/a.txt; wc -c < /tmp/in/sub/big.bin",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "alpha\n3000000\n", "{}", stderr(&out));
    let back = dir.path().join("back");
    let out = k
        .cmd()
        .args(["cp", &format!("{id}:/tmp/in"), back.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(back.join("sub/big.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read_to_string(back.join("a.txt")).unwrap(),
        "alpha\n"
    );

    // The file tool writes and reads through the same backend.
    let out = k
        .cmd()
        .args(["run-tool", &id, "file_operation", "--json"])
        .args([
            "--arg",
            "operation=write",
            "--arg",
            "file_path=/tmp/note.txt",
        ])
        .args(["--arg", "content=written by a tool"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = k
        .cmd()
        .args(["run-tool", &id, "file_operation", "--json"])
        .args([
            "--arg",
            "operation=read",
            "--arg",
            "file_path=/tmp/note.txt",
        ])
        .output()
        .unwrap();
    let result: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result["output"], "written by a tool", "{result}");

    // A path that is not there is an error that names it.
    let out = k
        .cmd()
        .args(["cp", &format!("{id}:/no/such"), back.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/no/such"), "{}", stderr(&out));
}
on_fake_and_real!(files_go_in_and_out);

fn an_image_that_cannot_be_pulled_fails_in_words(k: &Cluster) {
    let started = Instant::now();
    let out = k.try_create(&["--image", "enclave-test/no-such-image:0"]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains("cannot be pulled"), "{said}");
    assert!(
        started.elapsed() < Duration::from_secs(150),
        "gave up in time"
    );
    assert!(k.pods().is_empty(), "the stuck Pod was removed");
    let out = k.cmd().args(["ls", "-q"]).output().unwrap();
    assert_eq!(stdout(&out).trim(), "");
}
on_fake_and_real!(an_image_that_cannot_be_pulled_fails_in_words);

fn no_network_gets_a_deny_all_policy(k: &Cluster) {
    let id = k.create(&["--no-network"]);
    let name = format!("enclave-{id}-no-network");
    let out = k.kubectl(&["get", "networkpolicy", &name, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let policy: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"]["enclave.id"],
        id.as_str()
    );
    assert_eq!(policy["spec"]["egress"], serde_json::json!([]));
    if k.is_fake() {
        // The fake models enforcement by giving the Pod's container no network at all.
        let out = k
            .cmd()
            .args(["exec", &id, "--", "python3", "-c"])
            .arg("import socket; print([n for _, n in socket.if_nameindex()])")
            .output()
            .unwrap();
        assert_eq!(stdout(&out).trim(), "['lo']", "{}", stderr(&out));
    }
    let out = k.cmd().args(["rm", &id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = k.kubectl(&["get", "networkpolicy", &name]);
    assert!(!out.status.success(), "the policy went with the sandbox");
}
on_fake_and_real!(no_network_gets_a_deny_all_policy);

fn a_pod_the_state_file_lost_is_still_found_by_its_labels(k: &Cluster) {
    let id = k.create(&[]);
    std::fs::remove_file(k.env.state_dir.path().join("state.json")).unwrap();
    let out = k.cmd().args(["ls", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let found = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"));
    assert_eq!(found["tracked"], false);
    assert_eq!(found["status"], "running");
    // Found by id, it still runs commands and can be removed.
    let out = k
        .cmd()
        .args(["exec", &id, "echo", "still here"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "still here\n", "{}", stderr(&out));
    let out = k.cmd().args(["rm", &id]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
on_fake_and_real!(a_pod_the_state_file_lost_is_still_found_by_its_labels);

fn a_pod_cannot_be_stopped_and_says_what_to_do(k: &Cluster) {
    let id = k.create(&[]);
    let out = k.cmd().args(["stop", &id]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("enclave rm {id}")),
        "{}",
        stderr(&out)
    );
    let out = k.cmd().args(["exec", &id, "true"]).output().unwrap();
    assert!(out.status.success(), "still running: {}", stderr(&out));
}
on_fake_and_real!(a_pod_cannot_be_stopped_and_says_what_to_do);

fn the_agent_comes_from_an_agent_image_by_an_init_container(k: &Cluster) {
    if !agent_on() {
        return;
    }
    let Some(image) = super::agent_image(k) else {
        eprintln!("SKIPPED: ENCLAVE_K8S_AGENT_IMAGE names no agent image for the real cluster");
        return;
    };
    let id = k.create(&["--agent-image", &image, "--tool", "python_executor"]);
    let pods = k.pods();
    let pod = &pods[0];
    assert_eq!(pod["spec"]["initContainers"][0]["image"], image.as_str());
    let init = &pod["status"]["initContainerStatuses"][0];
    assert_eq!(init["state"]["terminated"]["exitCode"], 0, "{pod}");

    let out = k.cmd().args(["inspect", &id, "--json"]).output().unwrap();
    let info: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(info["agent"]["mode"], "exec", "{info}");
    let out = k
        .cmd()
        .args(["-v", "exec", &id, "echo via the agent"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "via the agent\n", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("through its agent"),
        "{}",
        stderr(&out)
    );
    // The sandbox cannot replace its agent: the volume is mounted read-only.
    let out = k
        .cmd()
        .args(["exec", &id, "echo x > /tmp/.enclave/enclave-agent"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the agent's volume is writable");
    let out = k
        .cmd()
        .args([
            "run-tool",
            &id,
            "python_executor",
            "--arg",
            "code=print(2 ** 10)",
            "--json",
        ])
        .output()
        .unwrap();
    let result: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        result["output"].as_str().unwrap().trim(),
        "1024",
        "{result}"
    );
}
on_fake_and_real!(the_agent_comes_from_an_agent_image_by_an_init_container);

fn an_agent_image_that_cannot_be_pulled_fails_the_create_in_words(k: &Cluster) {
    if !agent_on() {
        return;
    }
    let out = k.try_create(&["--agent-image", "enclave-test/no-such-agent:0"]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains("init container `enclave-agent`"), "{said}");
    assert!(said.contains("cannot be pulled"), "{said}");
    assert!(k.pods().is_empty(), "the stuck Pod was removed");
}
on_fake_and_real!(an_agent_image_that_cannot_be_pulled_fails_the_create_in_words);

//! Timeouts that cannot be escaped, and a sandbox that survives its own code: each way out a user
//! found through the old in-container kill script (issue 8), pinned on the agent path.
//!
//! Every check of what is left in a sandbox goes through `docker exec` and `/proc`, never through
//! enclave, so a wrong answer from enclave cannot hide a process that survived. Every sandbox
//! here is created with the agent whatever `ENCLAVE_AGENT` says (the exec path is what they show
//! to be escapable), so `scripts/test.sh` runs them once, in the agent run.

use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use crate::agent::create;
use crate::common::{docker, poll_until, send_signal, stderr, stdout, TestEnv};

/// The command lines of every process in the sandbox, read from `/proc` with `tr` only.
fn command_lines(id: &str) -> Vec<String> {
    let out = docker(&[
        "exec",
        &format!("enclave-{id}"),
        "sh",
        "-c",
        r#"for p in /proc/[0-9]*; do tr '\0' ' ' < "$p/cmdline" 2>/dev/null; echo; done"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().map(|l| l.trim().to_string()).collect()
}

/// Processes whose command line holds `marker`.
fn left_with(id: &str, marker: &str) -> Vec<String> {
    command_lines(id)
        .into_iter()
        .filter(|l| l.contains(marker))
        .collect()
}

/// `enclave exec --timeout SECS ID CMD`; its output.
fn exec_with_timeout(env: &TestEnv, id: &str, secs: &str, cmd: &str) -> std::process::Output {
    env.cmd()
        .args(["exec", "--timeout", secs, id, cmd])
        .output()
        .unwrap()
}

/// A timed-out command's note says everything was killed and nothing survived.
fn assert_killed_all(out: &std::process::Output) {
    assert_eq!(out.status.code(), Some(124), "{}", stderr(out));
    let err = stderr(out);
    assert!(err.contains("timed out after"), "{err}");
    assert!(err.contains("killed "), "{err}");
    assert!(!err.contains("survived"), "{err}");
    assert!(!err.contains("could not check"), "{err}");
}

#[test]
fn a_cleared_environment_does_not_escape_a_timeout() {
    let env = TestEnv::new();
    let id = create(&env, &[], &[]);
    let out = exec_with_timeout(
        &env,
        &id,
        "2",
        "env -i /bin/sleep 4201 & \
         python3 -c 'import os, subprocess; subprocess.Popen([\"/bin/sleep\", \"4202\"], env={}); \
         os.execve(\"/bin/sleep\", [\"sleep\", \"4203\"], {})'",
    );
    assert_killed_all(&out);
    assert_eq!(left_with(&id, "sleep 420"), Vec::<String>::new());
}

#[test]
fn setsid_and_double_forks_do_not_escape_a_timeout() {
    let env = TestEnv::new();
    let id = create(&env, &[], &[]);
    let out = exec_with_timeout(
        &env,
        &id,
        "2",
        "setsid sh -c 'sleep 4211 &' ; (sh -c 'nohup sleep 4212 >/dev/null 2>&1 &' &) ; sleep 4213",
    );
    assert_killed_all(&out);
    assert_eq!(left_with(&id, "sleep 421"), Vec::<String>::new());
}

#[test]
fn an_image_without_grep_still_gets_its_timeouts_enforced() {
    let env = TestEnv::new();
    let id = create(&env, &[], &[]);
    let removed = docker(&[
        "exec",
        &format!("enclave-{id}"),
        "sh",
        "-c",
        "rm -f /usr/bin/grep /bin/grep /usr/bin/pgrep; ! command -v grep",
    ]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    let out = exec_with_timeout(&env, &id, "2", "sleep 4221 & sleep 4222");
    assert_killed_all(&out);
    assert_eq!(left_with(&id, "sleep 422"), Vec::<String>::new());
}

#[test]
fn a_fork_bomb_at_the_pids_limit_is_frozen_and_killed() {
    let env = TestEnv::new();
    let id = create(&env, &[], &["--pids-limit", "128"]);
    let out = exec_with_timeout(&env, &id, "3", "b() { b | b & }; b; sleep 30");
    assert_killed_all(&out);
    // What is left: the agent, the image's shell, and this check itself.
    let lines = command_lines(&id);
    assert!(lines.len() < 8, "{} processes left: {lines:?}", lines.len());
    let after = env
        .cmd()
        .args(["exec", &id, "echo still here"])
        .output()
        .unwrap();
    assert_eq!(stdout(&after), "still here\n", "{}", stderr(&after));
}

#[test]
fn an_output_flood_times_out_on_time() {
    let env = TestEnv::new();
    let id = create(&env, &[], &[]);
    let started = Instant::now();
    let status = StdCommand::new(assert_cmd::cargo::cargo_bin("enclave"))
        .env("ENCLAVE_STATE_DIR", env.state_dir.path())
        .args(["exec", "--timeout", "2", &id, "yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(status.code(), Some(124));
    // The issue's bound is 3 s for a 2 s timeout (the old path took 13-15 s); a loaded CI
    // machine gets some slack, not a factor of five.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(left_with(&id, "yes"), Vec::<String>::new());
}

#[test]
fn a_client_killed_with_sigkill_does_not_take_the_deadline_with_it() {
    let env = TestEnv::new();
    let id = create(&env, &[], &[]);
    let mut client = StdCommand::new(assert_cmd::cargo::cargo_bin("enclave"))
        .env("ENCLAVE_STATE_DIR", env.state_dir.path())
        .args(["exec", "--timeout", "3", &id, "sleep 4231"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    poll_until("the command started", 20, || {
        !left_with(&id, "sleep 4231").is_empty()
    });
    send_signal(client.id(), "KILL");
    let _ = client.wait();
    assert!(
        !left_with(&id, "sleep 4231").is_empty(),
        "the command must run on until its deadline, as it would with the client alive"
    );
    poll_until("the command killed at its deadline", 15, || {
        left_with(&id, "sleep 4231").is_empty()
    });
}

#[test]
fn kill_minus_one_from_inside_leaves_the_sandbox_usable() {
    let env = TestEnv::new();
    let id = create(&env, &[], &[]);
    // The caller survives `kill -9 -1`; everything else it can signal does not, except PID 1.
    let _ = env
        .cmd()
        .args(["exec", &id, "kill -9 -1; kill -9 1; kill -STOP 1; true"])
        .output()
        .unwrap();
    let state = docker(&[
        "inspect",
        "--format",
        "{{.State.Status}}",
        &format!("enclave-{id}"),
    ]);
    assert_eq!(stdout(&state).trim(), "running");
    let out = env
        .cmd()
        .args(["exec", &id, "echo alive"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "alive\n", "{}", stderr(&out));
    let inspect = env.cmd().args(["--json", "inspect", &id]).output().unwrap();
    let info: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(info["agent"]["mode"], "socket", "{info}");
}

#[test]
fn a_flood_of_output_to_a_slow_reader_keeps_memory_bounded() {
    let env = TestEnv::new();
    let id = create(&env, &[], &[]);
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("enclave"))
        .env("ENCLAVE_STATE_DIR", env.state_dir.path())
        .args(["exec", &id, "head -c 300000000 /dev/zero"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut pipe = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = 0usize;
    let mut peak_kib = 0u64;
    // A reader at about 20 MB/s: the sandbox writes far faster.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        read += std::io::Read::read(&mut pipe, &mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(3));
        peak_kib = peak_kib.max(vm_hwm_kib(child.id()));
    }
    drop(pipe);
    let _ = child.wait();
    assert!(read > 1_000_000, "read only {read} bytes");
    assert!(
        peak_kib < 64 * 1024,
        "enclave's memory peaked at {peak_kib} KiB"
    );
}

/// A process's peak resident memory, in KiB (0 once it is gone).
fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_image_with_no_shell_at_all_is_reached_through_the_agent() {
    let env = TestEnv::new();
    let image = empty_image();
    let out = env
        .cmd()
        .args(["create", "--image", &image, "--tool", "file_operation"])
        .args(env.label_args())
        .output()
        .unwrap();
    assert!(out.status.success(), "create: {}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let version = env
        .cmd()
        .args(["exec", &id, "--", "/.enclave/enclave-agent", "--version"])
        .output()
        .unwrap();
    assert!(
        stdout(&version).starts_with("enclave-agent "),
        "{}{}",
        stdout(&version),
        stderr(&version)
    );
    let write = env
        .cmd()
        .args(["run-tool", &id, "file_operation"])
        .args([
            "--arg",
            "operation=write",
            "--arg",
            "file_path=/tmp/note.txt",
        ])
        .args(["--arg", "content=written without a shell"])
        .output()
        .unwrap();
    assert!(write.status.success(), "{}", stderr(&write));
    let read = env
        .cmd()
        .args(["run-tool", &id, "file_operation"])
        .args([
            "--arg",
            "operation=read",
            "--arg",
            "file_path=/tmp/note.txt",
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&read).contains("written without a shell"),
        "{}{}",
        stdout(&read),
        stderr(&read)
    );
}

/// An image holding nothing but a few directories and a passwd file: no shell, no libc.
fn empty_image() -> String {
    const NAME: &str = "enclave-test-empty:1";
    if docker(&["image", "inspect", NAME]).status.success() {
        return NAME.into();
    }
    let root = tempfile::tempdir().unwrap();
    for dir in ["tmp", "etc", "sandbox"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    std::fs::write(
        root.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/nonexistent\n",
    )
    .unwrap();
    let archive = root.path().with_extension("tar");
    let packed = StdCommand::new("tar")
        .args(["-C", root.path().to_str().unwrap(), "-cf"])
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(packed.success());
    let import = docker(&["import", archive.to_str().unwrap(), NAME]);
    let _ = std::fs::remove_file(&archive);
    // Another test process may import it at the same time; either import will do.
    assert!(
        import.status.success() || docker(&["image", "inspect", NAME]).status.success(),
        "{}",
        stderr(&import)
    );
    NAME.into()
}

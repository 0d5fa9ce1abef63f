//! The agent as a real container's init, in the test image. These need Docker and the
//! `enclave-test-python:bookworm` image, so they are ignored by default:
//! `cargo test -p enclave-agent --features server --test docker -- --ignored`.
//! `ENCLAVE_AGENT_BIN` may name a static build to mount instead of the test build.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use enclave_agent::client::Client;
use enclave_agent::proto::{self, auth, Command as Cmd, ExecRequest, How, Reply, Request};
use tokio::net::UnixStream;

const IMAGE: &str = "enclave-test-python:bookworm";
const SECRET: &str = "5ec2e75ec2e75ec2e75ec2e75ec2e700";

/// A container running the agent as PID 1; removed when dropped.
struct Sandbox {
    name: String,
    socket: PathBuf,
    _run: tempfile::TempDir,
}

impl Sandbox {
    fn start(extra: &[&str]) -> Sandbox {
        let binary = std::env::var("ENCLAVE_AGENT_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_enclave-agent").into());
        let run = tempfile::tempdir().unwrap();
        let name = format!(
            "enclave-agent-test-{}-{}",
            std::process::id(),
            rand_suffix()
        );
        let status = Command::new("docker")
            .args([
                "run",
                "-d",
                "--rm",
                "--name",
                &name,
                "--label",
                "enclave.test=agent",
            ])
            .args(extra)
            .arg("-v")
            .arg(format!("{binary}:{}:ro", proto::BINARY_PATH))
            .arg("-v")
            .arg(format!("{}:{}", run.path().display(), proto::SOCKET_DIR))
            .args(["-e", &format!("{}={SECRET}", proto::SECRET_ENV)])
            .args([
                "--entrypoint",
                proto::BINARY_PATH,
                IMAGE,
                "init",
                "--",
                "sleep",
                "infinity",
            ])
            .status()
            .expect("docker must be installed for these tests");
        assert!(status.success(), "docker run failed");
        let socket = run.path().join("agent.sock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "the agent never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sandbox {
            name,
            socket,
            _run: run,
        }
    }

    async fn client(&self) -> Client {
        let stream = UnixStream::connect(&self.socket).await.unwrap();
        let secret = auth::from_hex(SECRET).unwrap();
        Client::handshake(stream, &secret).await.unwrap()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

fn rand_suffix() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.subsec_nanos()
}

fn sh(script: &str, timeout_ms: Option<u64>) -> Request {
    Request::Exec(ExecRequest {
        command: Cmd::Shell(script.into()),
        env: vec![],
        cwd: None,
        stdin: false,
        timeout_ms,
    })
}

/// A fork bomb that holds on at the pids limit: bash retries a failed fork (dash gives up).
fn bomb() -> Request {
    Request::Exec(ExecRequest {
        command: Cmd::Argv(vec![
            "bash".into(),
            "-c".into(),
            "f() { f | f & }; f; sleep 100".into(),
        ]),
        env: vec![],
        cwd: None,
        stdin: false,
        timeout_ms: Some(2000),
    })
}

async fn run(client: &Client, request: Request) -> (String, proto::Ending) {
    let (_, mut reader) = client.call(request).await.unwrap().split();
    let mut out = Vec::new();
    loop {
        match reader.next().await.unwrap() {
            Reply::Output { data, .. } => out.extend(data),
            Reply::Ended(ending) => return (String::from_utf8_lossy(&out).into(), ending),
            _ => {}
        }
    }
}

#[tokio::test]
#[ignore = "needs Docker and the enclave-test-python:bookworm image"]
async fn fork_bomb_at_the_pids_limit_is_killed() {
    let sandbox = Sandbox::start(&["--pids-limit", "64"]);
    let client = sandbox.client().await;
    let started = Instant::now();
    let (_, ending) = run(&client, bomb()).await;
    assert_eq!(ending.how, How::TimedOut, "{ending:?}");
    let kill = ending.kill.unwrap();
    assert_eq!(kill.left, 0, "{kill:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(kill.killed > 10, "{kill:?}");
    // Only the agent, the image's command and this check (sh, ls, wc) are left.
    let (ps, _) = run(&client, sh("ls -d /proc/[0-9]* | wc -l", None)).await;
    let count: u32 = ps.trim().parse().unwrap();
    assert!(count <= 5, "{count} processes left");
}

#[tokio::test]
#[ignore = "needs Docker and the enclave-test-python:bookworm image"]
async fn kill_everything_from_inside_leaves_the_agent_serving() {
    let sandbox = Sandbox::start(&[]);
    let client = sandbox.client().await;
    // `kill -1` spares PID 1 and the caller: the image's command dies, the agent stays.
    let (_, ending) = run(&client, sh("kill -9 -1; sleep 0.5", Some(5000))).await;
    assert_eq!(ending.code, Some(0), "{ending:?}");
    let count_sleeps = "for p in /proc/[0-9]*; do cat $p/comm; done | grep -cx sleep";
    let (sleepers, _) = run(&client, sh(count_sleeps, None)).await;
    assert_eq!(sleepers.trim(), "0", "the image's command survived");
    let (out, _) = run(&client, sh("echo alive; env | sort", None)).await;
    assert!(out.starts_with("alive\n"), "{out}");
    assert!(!out.contains("ENCLAVE_AGENT"), "{out}");
    assert!(out.contains("PATH="), "{out}");
    let running = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Running}}", &sandbox.name])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&running.stdout).trim(), "true");
}

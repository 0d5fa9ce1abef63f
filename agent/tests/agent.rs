//! The real `enclave-agent` binary, run on this host as `init` with a socket in a temp dir,
//! driven through the real `Client`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use enclave_agent::client::{Client, ClientError};
use enclave_agent::proto::{
    self, auth, Command as Cmd, Ending, ExecRequest, FailureKind, FileKind, Frame, How,
    OutputStream, PythonRequest, PythonRunner, Reply, Request, WriteFile,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio_util::codec::Framed;

const SECRET: &str = "00112233445566778899aabbccddeeff";

fn secret() -> Vec<u8> {
    auth::from_hex(SECRET).unwrap()
}

/// A running agent; killed (with everything it started) when dropped.
struct Agent {
    child: Child,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        Agent::start_with(&[], &[])
    }

    fn start_with(command: &[&str], env: &[(&str, &str)]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_enclave-agent"));
        cmd.arg("init")
            .arg("--")
            .args(command)
            .env(proto::SECRET_ENV, SECRET)
            .env(proto::SOCKET_ENV, &socket)
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        let child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "the agent never listened");
            std::thread::sleep(Duration::from_millis(10));
        }
        Agent { child, socket, dir }
    }

    async fn client(&self) -> Client {
        let stream = UnixStream::connect(&self.socket).await.unwrap();
        Client::handshake(stream, &secret()).await.unwrap()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn exec(command: Cmd) -> ExecRequest {
    ExecRequest {
        command,
        env: vec![],
        cwd: None,
        stdin: false,
        timeout_ms: None,
    }
}

fn sh(script: &str) -> ExecRequest {
    exec(Cmd::Shell(script.into()))
}

/// What a finished exec said.
#[derive(Debug)]
struct Outcome {
    pid: u32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    ending: Ending,
}

impl Outcome {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

async fn run(client: &Client, req: ExecRequest) -> Result<Outcome, ClientError> {
    let (_, reader) = client.call(Request::Exec(req)).await?.split();
    collect(reader).await
}

async fn collect(mut reader: enclave_agent::client::CallReader) -> Result<Outcome, ClientError> {
    let mut outcome = Outcome {
        pid: 0,
        stdout: vec![],
        stderr: vec![],
        ending: Ending {
            how: How::Exited,
            code: None,
            signal: None,
            kill: None,
            runner: None,
        },
    };
    loop {
        match reader.next().await? {
            Reply::Started { pid } => outcome.pid = pid,
            Reply::Output {
                stream: OutputStream::Stdout,
                data,
            } => outcome.stdout.extend(data),
            Reply::Output {
                stream: OutputStream::Stderr,
                data,
            } => outcome.stderr.extend(data),
            Reply::Ended(ending) => {
                outcome.ending = ending;
                return Ok(outcome);
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
}

/// Whether `pid` is alive (a zombie is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap();
            state != 'Z' && state != 'X'
        }
        Err(_) => false,
    }
}

fn read_pids(path: &str) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn wrong_secret_fails_both_ways() {
    let agent = Agent::start();
    // The agent cannot prove a secret the host does not share.
    let stream = UnixStream::connect(&agent.socket).await.unwrap();
    let err = Client::handshake(stream, b"another secret")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ClientError::Unauthorized(_)), "{err:?}");

    // A host that cannot prove the secret is refused by the agent.
    let stream = UnixStream::connect(&agent.socket).await.unwrap();
    let mut framed = Framed::new(stream, proto::codec());
    let hello = Request::Hello {
        version: proto::VERSION,
        challenge: vec![7; 32],
    };
    framed
        .send(proto::encode(&Frame {
            call: 0,
            body: hello,
        }))
        .await
        .unwrap();
    let welcome: Frame<Reply> = proto::decode(&framed.next().await.unwrap().unwrap()).unwrap();
    let Reply::Welcome {
        proof, agent: name, ..
    } = welcome.body
    else {
        panic!("{welcome:?}")
    };
    assert!(auth::verify(&secret(), auth::AGENT, &[7; 32], &proof));
    assert_eq!(name, format!("enclave-agent {}", env!("CARGO_PKG_VERSION")));
    let prove = Request::Prove { proof: vec![0; 32] };
    framed
        .send(proto::encode(&Frame {
            call: 0,
            body: prove,
        }))
        .await
        .unwrap();
    let refused: Frame<Reply> = proto::decode(&framed.next().await.unwrap().unwrap()).unwrap();
    assert!(
        matches!(&refused.body, Reply::Error(f) if f.kind == FailureKind::Unauthorized),
        "{refused:?}"
    );
    assert!(
        framed.next().await.is_none(),
        "the agent closes after refusing"
    );

    // And the right secret still works.
    let client = agent.client().await;
    assert_eq!(
        client.agent(),
        format!("enclave-agent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn exec_output_exit_codes_and_stdin() {
    let agent = Agent::start();
    let client = agent.client().await;

    let echoed = run(
        &client,
        exec(Cmd::Argv(vec!["echo".into(), "hello world".into()])),
    )
    .await
    .unwrap();
    assert_eq!(echoed.out(), "hello world\n");
    assert_eq!(echoed.ending.how, How::Exited);
    assert_eq!(echoed.ending.code, Some(0));
    assert!(echoed.pid > 0);

    let failed = run(&client, sh("echo oops >&2; exit 7")).await.unwrap();
    assert_eq!(failed.stderr, b"oops\n");
    assert_eq!(failed.ending.code, Some(7));

    let killed = run(&client, sh("kill -TERM $$")).await.unwrap();
    assert_eq!((killed.ending.code, killed.ending.signal), (None, Some(15)));

    let mut req = sh("cat; echo \"[$A:$HOME]\"; pwd");
    req.stdin = true;
    req.env = vec![("A".into(), "x".into())];
    req.cwd = Some("/tmp".into());
    let (writer, reader) = client.call(Request::Exec(req)).await.unwrap().split();
    writer.send(b"in".to_vec()).await.unwrap();
    writer.send(b"put\n".to_vec()).await.unwrap();
    writer.end().await.unwrap();
    let catted = collect(reader).await.unwrap();
    let home = std::env::var("HOME").unwrap_or_default();
    assert_eq!(catted.out(), format!("input\n[x:{home}]\n/tmp\n"));

    // The agent's own variables never reach a call.
    let env = run(&client, exec(Cmd::Argv(vec!["env".into()])))
        .await
        .unwrap();
    assert!(!env.out().contains("ENCLAVE_AGENT"), "{}", env.out());
}

#[tokio::test]
async fn dropped_variables_are_not_in_calls() {
    let agent = Agent::start_with(
        &[],
        &[
            ("ENCLAVE_AGENT_DROP", "TERM,FOO"),
            ("FOO", "1"),
            ("BAR", "2"),
        ],
    );
    let client = agent.client().await;
    let env = run(&client, exec(Cmd::Argv(vec!["env".into()])))
        .await
        .unwrap()
        .out();
    assert!(env.contains("BAR=2\n"), "{env}");
    assert!(!env.contains("FOO="), "{env}");
    assert!(!env.contains("TERM="), "{env}");
}

#[tokio::test]
async fn spawn_errors_say_why() {
    let agent = Agent::start();
    let client = agent.client().await;
    let failure = |r: Result<Outcome, ClientError>| match r {
        Err(ClientError::Failed(f)) => f,
        other => panic!("{other:?}"),
    };
    let missing = failure(run(&client, exec(Cmd::Argv(vec!["no-such-cmd-x".into()]))).await);
    assert_eq!(missing.kind, FailureKind::CommandNotFound);
    assert_eq!(
        missing.message,
        "exec: \"no-such-cmd-x\": executable file not found in $PATH"
    );

    let script = agent.path("not-executable.sh");
    std::fs::write(&script, "echo hi").unwrap();
    let denied = failure(run(&client, exec(Cmd::Argv(vec![script]))).await);
    assert_eq!(denied.kind, FailureKind::NotExecutable);

    let mut nowhere = sh("true");
    nowhere.cwd = Some("/no/such/dir".into());
    assert_eq!(
        failure(run(&client, nowhere).await).kind,
        FailureKind::NoWorkdir
    );

    // The connection is still good.
    assert_eq!(run(&client, sh("echo ok")).await.unwrap().out(), "ok\n");
}

#[tokio::test]
async fn hundred_concurrent_calls_on_one_connection() {
    let agent = Agent::start();
    let client = agent.client().await;
    let calls = (0..100).map(|i| {
        let client = client.clone();
        tokio::spawn(async move {
            let script = format!("sleep 0.$(( {i} % 3 )); echo call {i}");
            run(&client, sh(&script)).await.unwrap()
        })
    });
    let outcomes = futures_util::future::join_all(calls).await;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        assert_eq!(outcome.unwrap().out(), format!("call {i}\n"));
    }
}

async fn write_file(client: &Client, path: &str, content: &[u8]) -> Result<(), ClientError> {
    let req = WriteFile {
        path: path.into(),
        mode: 0o640,
        make_parents: true,
        append: false,
    };
    let (writer, mut reader) = client.call(Request::WriteFile(req)).await?.split();
    let sending = async {
        for chunk in content.chunks(300_000) {
            writer.send(chunk.to_vec()).await?;
        }
        writer.end().await
    };
    let (sent, done) = tokio::join!(sending, reader.next());
    match done? {
        Reply::Done => sent,
        other => panic!("{other:?}"),
    }
}

async fn read_data(client: &Client, request: Request) -> Result<Vec<u8>, ClientError> {
    let (_, mut reader) = client.call(request).await?.split();
    let mut content = Vec::new();
    loop {
        match reader.next().await? {
            Reply::Data(data) => content.extend(data),
            Reply::Done => return Ok(content),
            other => panic!("{other:?}"),
        }
    }
}

async fn simple(client: &Client, request: Request) -> Result<Reply, ClientError> {
    let (_, mut reader) = client.call(request).await?.split();
    reader.next().await
}

#[tokio::test]
async fn ten_megabytes_round_trip_byte_exact() {
    let agent = Agent::start();
    let client = agent.client().await;
    let content: Vec<u8> = (0..10_000_000u32)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    let path = agent.path("deep/er/big.bin");
    write_file(&client, &path, &content).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), content);
    let read = ReadFileArgs::new(&path);
    assert_eq!(read_data(&client, read.request()).await.unwrap(), content);

    let too_large = read_data(
        &client,
        Request::ReadFile {
            path: path.clone(),
            max: Some(10),
        },
    )
    .await;
    assert!(matches!(too_large, Err(ClientError::Failed(f)) if f.kind == FailureKind::TooLarge));
    let dir = read_data(&client, ReadFileArgs::new(&agent.path("deep")).request()).await;
    assert!(matches!(dir, Err(ClientError::Failed(f)) if f.kind == FailureKind::IsADirectory));
    let missing = read_data(&client, ReadFileArgs::new(&agent.path("nope")).request()).await;
    assert!(matches!(missing, Err(ClientError::Failed(f)) if f.kind == FailureKind::NotFound));

    // Appending keeps what was there, and new files get the mode asked for.
    let small = agent.path("small.txt");
    write_file(&client, &small, b"one ").await.unwrap();
    let append = WriteFile {
        path: small.clone(),
        mode: 0o600,
        make_parents: false,
        append: true,
    };
    let (writer, mut reader) = client
        .call(Request::WriteFile(append))
        .await
        .unwrap()
        .split();
    writer.send(b"two".to_vec()).await.unwrap();
    writer.end().await.unwrap();
    assert_eq!(reader.next().await.unwrap(), Reply::Done);
    assert_eq!(std::fs::read(&small).unwrap(), b"one two");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&small).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

struct ReadFileArgs(String);

impl ReadFileArgs {
    fn new(path: &str) -> Self {
        ReadFileArgs(path.into())
    }

    fn request(&self) -> Request {
        Request::ReadFile {
            path: self.0.clone(),
            max: None,
        }
    }
}

#[tokio::test]
async fn stat_list_remove_and_mkdirs() {
    let agent = Agent::start();
    let client = agent.client().await;
    let root = agent.path("tree");
    let made = simple(
        &client,
        Request::MakeDirs {
            path: format!("{root}/a/b"),
        },
    )
    .await;
    assert_eq!(made.unwrap(), Reply::Done);
    std::fs::write(format!("{root}/f.txt"), "12345").unwrap();
    std::os::unix::fs::symlink("f.txt", format!("{root}/link")).unwrap();

    let stat = simple(
        &client,
        Request::Stat {
            path: format!("{root}/link"),
        },
    )
    .await
    .unwrap();
    let Reply::Stat(Some(info)) = stat else {
        panic!("{stat:?}")
    };
    assert_eq!(
        (info.kind, info.link_target.as_str()),
        (FileKind::Symlink, "f.txt")
    );
    let none = simple(
        &client,
        Request::Stat {
            path: format!("{root}/none"),
        },
    )
    .await
    .unwrap();
    assert_eq!(none, Reply::Stat(None));

    let listed = simple(&client, Request::List { path: root.clone() })
        .await
        .unwrap();
    let Reply::Entries(entries) = listed else {
        panic!("{listed:?}")
    };
    let names: Vec<(&str, FileKind, u64)> = entries
        .iter()
        .map(|e| {
            (
                e.name.as_str(),
                e.stat.kind,
                if e.stat.kind == FileKind::File {
                    e.stat.size
                } else {
                    0
                },
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("a", FileKind::Dir, 0),
            ("f.txt", FileKind::File, 5),
            ("link", FileKind::Symlink, 0)
        ]
    );

    let not_recursive = simple(
        &client,
        Request::Remove {
            path: format!("{root}/a"),
            recursive: false,
        },
    )
    .await;
    assert!(
        matches!(not_recursive, Err(ClientError::Failed(_))),
        "{not_recursive:?}"
    );
    let removed = simple(
        &client,
        Request::Remove {
            path: format!("{root}/a"),
            recursive: true,
        },
    )
    .await;
    assert_eq!(removed.unwrap(), Reply::Done);
    let link = simple(
        &client,
        Request::Remove {
            path: format!("{root}/link"),
            recursive: false,
        },
    )
    .await;
    assert_eq!(link.unwrap(), Reply::Done);
    assert!(
        Path::new(&format!("{root}/f.txt")).exists(),
        "removing a link keeps its target"
    );
    let missing = simple(
        &client,
        Request::Remove {
            path: format!("{root}/a"),
            recursive: true,
        },
    )
    .await;
    assert!(matches!(missing, Err(ClientError::Failed(f)) if f.kind == FailureKind::NotFound));
}

#[tokio::test]
async fn archives_out_and_back_in() {
    let agent = Agent::start();
    let client = agent.client().await;
    let src = agent.path("src");
    std::fs::create_dir_all(format!("{src}/sub")).unwrap();
    std::fs::write(format!("{src}/sub/data.bin"), vec![9u8; 300_000]).unwrap();
    std::fs::write(format!("{src}/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        format!("{src}/run.sh"),
        std::fs::Permissions::from_mode(0o751),
    )
    .unwrap();
    std::os::unix::fs::symlink("sub/data.bin", format!("{src}/link")).unwrap();

    let tar = read_data(&client, Request::GetArchive { path: src.clone() })
        .await
        .unwrap();
    let dest = agent.path("dest");
    std::fs::create_dir_all(format!("{dest}/src")).unwrap();
    std::fs::write(format!("{dest}/src/run.sh"), "old").unwrap();
    let (writer, mut reader) = client
        .call(Request::PutArchive { dir: dest.clone() })
        .await
        .unwrap()
        .split();
    writer.send(tar).await.unwrap();
    writer.end().await.unwrap();
    assert_eq!(reader.next().await.unwrap(), Reply::Done);

    assert_eq!(
        std::fs::read(format!("{dest}/src/sub/data.bin")).unwrap(),
        vec![9u8; 300_000]
    );
    assert_eq!(
        std::fs::read_to_string(format!("{dest}/src/run.sh")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
    let mode = std::fs::metadata(format!("{dest}/src/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o751);
    assert_eq!(
        std::fs::read_link(format!("{dest}/src/link")).unwrap(),
        Path::new("sub/data.bin")
    );

    // A single file is an archive of one entry named after it.
    let one = read_data(
        &client,
        Request::GetArchive {
            path: format!("{src}/run.sh"),
        },
    )
    .await
    .unwrap();
    let mut archive = tar::Archive::new(&one[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["run.sh"]);

    let missing = read_data(
        &client,
        Request::GetArchive {
            path: agent.path("none"),
        },
    )
    .await;
    assert!(matches!(missing, Err(ClientError::Failed(f)) if f.kind == FailureKind::NotFound));
}

/// Runs `script` with a 1 s timeout; it writes the pids that should die to `pids`.
async fn escapes_are_killed(script: &str) {
    let agent = Agent::start();
    let client = agent.client().await;
    let pids = agent.path("pids");
    let mut req = sh(&script.replace("PIDS", &pids));
    req.timeout_ms = Some(1000);
    let started = Instant::now();
    let outcome = run(&client, req).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(outcome.ending.how, How::TimedOut, "{outcome:?}");
    let kill = outcome.ending.kill.unwrap();
    assert_eq!(kill.left, 0, "{kill:?}");
    let escaped = read_pids(&pids);
    assert!(!escaped.is_empty(), "the script wrote no pids: {outcome:?}");
    assert!(kill.killed as usize > escaped.len(), "{kill:?} {escaped:?}");
    std::thread::sleep(Duration::from_millis(100));
    for pid in escaped {
        assert!(!alive(pid), "pid {pid} survived the kill");
    }
    assert!(!alive(outcome.pid));
}

#[tokio::test]
async fn timeout_kills_setsid_background() {
    escapes_are_killed(
        "setsid sh -c 'sleep 100 & echo $! >> PIDS; sleep 100' & echo $! >> PIDS; sleep 100",
    )
    .await;
}

#[tokio::test]
async fn timeout_kills_environment_cleared_children() {
    escapes_are_killed("env -i /bin/sh -c 'sleep 100 & echo $! >> PIDS; wait' & sleep 100").await;
}

#[tokio::test]
async fn timeout_kills_double_forked_daemons() {
    // The middle shell exits at once: the sleeper is an orphan, re-parented to the call's root.
    escapes_are_killed("sh -c 'setsid sleep 100 & echo $! >> PIDS' ; sleep 100").await;
}

#[tokio::test]
async fn output_flood_times_out_promptly() {
    let agent = Agent::start();
    let client = agent.client().await;
    let mut req = exec(Cmd::Argv(vec!["yes".into()]));
    req.timeout_ms = Some(2000);
    let started = Instant::now();
    let (_, mut reader) = client.call(Request::Exec(req)).await.unwrap().split();
    let mut bytes = 0usize;
    let ending = loop {
        match reader.next().await.unwrap() {
            Reply::Output { data, .. } => bytes += data.len(),
            Reply::Ended(ending) => break ending,
            _ => {}
        }
    };
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(ending.how, How::TimedOut);
    assert_eq!(ending.signal, Some(9));
    assert!(bytes > 1_000_000, "only {bytes} bytes came through");
}

#[tokio::test]
async fn slow_reader_bounds_the_flood() {
    let agent = Agent::start();
    let client = agent.client().await;
    let mut req = exec(Cmd::Argv(vec!["yes".into()]));
    req.timeout_ms = Some(1500);
    let started = Instant::now();
    let (_, mut reader) = client.call(Request::Exec(req)).await.unwrap().split();
    // Read nothing for a second: the agent may send at most a window meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut ending = None;
    let mut bytes = 0usize;
    while ending.is_none() {
        match reader.next().await.unwrap() {
            Reply::Output { data, .. } => bytes += data.len(),
            Reply::Ended(e) => ending = Some(e),
            _ => {}
        }
        if started.elapsed() < Duration::from_secs(1) {
            assert!(bytes <= proto::WINDOW as usize);
        }
    }
    assert_eq!(ending.unwrap().how, How::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn cancel_and_signal() {
    let agent = Agent::start();
    let client = agent.client().await;
    let (writer, reader) = client
        .call(Request::Exec(sh("sleep 100 & sleep 100")))
        .await
        .unwrap()
        .split();
    tokio::time::sleep(Duration::from_millis(200)).await;
    writer.cancel().await.unwrap();
    let cancelled = collect(reader).await.unwrap();
    assert_eq!(cancelled.ending.how, How::Cancelled);
    assert_eq!(cancelled.ending.kill.unwrap().killed, 3);

    let trap = "trap 'echo got INT; exit 3' INT; echo ready; while :; do sleep 0.05; done";
    let (writer, mut reader) = client.call(Request::Exec(sh(trap))).await.unwrap().split();
    loop {
        if let Reply::Output { data, .. } = reader.next().await.unwrap() {
            assert_eq!(data, b"ready\n");
            break;
        }
    }
    writer.signal(libc_sigint()).await.unwrap();
    let rest = collect(reader).await.unwrap();
    assert_eq!(rest.out(), "got INT\n");
    assert_eq!(rest.ending.code, Some(3));
}

fn libc_sigint() -> i32 {
    2
}

#[tokio::test]
async fn background_processes_do_not_hold_the_call() {
    let agent = Agent::start();
    let client = agent.client().await;
    let started = Instant::now();
    let outcome = run(&client, sh("sleep 3 & echo started")).await.unwrap();
    assert_eq!(outcome.out(), "started\n");
    assert_eq!(outcome.ending.code, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn deadline_holds_after_the_connection_drops() {
    let agent = Agent::start();
    let client = agent.client().await;
    let mut req = exec(Cmd::Argv(vec!["sleep".into(), "30".into()]));
    req.timeout_ms = Some(1000);
    let (_, mut reader) = client.call(Request::Exec(req)).await.unwrap().split();
    let Reply::Started { pid } = reader.next().await.unwrap() else {
        panic!("no Started")
    };
    drop(reader);
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alive(pid), "a dropped connection does not kill its calls");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert!(!alive(pid), "sleep survived its deadline");
    // The agent serves on.
    let client = agent.client().await;
    assert_eq!(
        run(&client, sh("echo still")).await.unwrap().out(),
        "still\n"
    );
}

#[tokio::test]
async fn malformed_frames_are_a_protocol_error() {
    let agent = Agent::start();
    for garbage in [&b"\xc1\xc1\xc1"[..], b"\x92\x05\x81\xa4Exec\xc0"] {
        let client_stream = UnixStream::connect(&agent.socket).await.unwrap();
        let mut framed = handshaken(client_stream).await;
        framed
            .send(bytes::Bytes::copy_from_slice(garbage))
            .await
            .unwrap();
        let reply: Frame<Reply> = proto::decode(&framed.next().await.unwrap().unwrap()).unwrap();
        assert_eq!(reply.call, 0);
        assert!(
            matches!(&reply.body, Reply::Error(f) if f.kind == FailureKind::Protocol),
            "{reply:?}"
        );
        assert!(
            framed.next().await.is_none(),
            "the agent closes after a protocol error"
        );
    }

    // A frame longer than the limit.
    let stream = UnixStream::connect(&agent.socket).await.unwrap();
    let mut framed = handshaken(stream).await;
    let huge = bytes::Bytes::from(vec![0u8; proto::MAX_FRAME + 1]);
    let mut raw = Framed::new(
        framed.get_mut(),
        tokio_util::codec::LengthDelimitedCodec::builder()
            .max_frame_length(usize::MAX)
            .new_codec(),
    );
    let _ = raw.send(huge).await;
    let reply: Frame<Reply> = proto::decode(&framed.next().await.unwrap().unwrap()).unwrap();
    assert!(
        matches!(&reply.body, Reply::Error(f) if f.kind == FailureKind::Protocol),
        "{reply:?}"
    );

    // Reusing a live call id.
    let stream = UnixStream::connect(&agent.socket).await.unwrap();
    let mut framed = handshaken(stream).await;
    for _ in 0..2 {
        let body = Request::Exec(sh("sleep 1"));
        framed
            .send(proto::encode(&Frame { call: 5, body }))
            .await
            .unwrap();
    }
    let mut saw_protocol_error = false;
    while let Some(Ok(bytes)) = framed.next().await {
        let reply: Frame<Reply> = proto::decode(&bytes).unwrap();
        if reply.call == 0 {
            saw_protocol_error =
                matches!(&reply.body, Reply::Error(f) if f.kind == FailureKind::Protocol);
        }
    }
    assert!(saw_protocol_error);

    // Sending beyond the window.
    let stream = UnixStream::connect(&agent.socket).await.unwrap();
    let mut framed = handshaken(stream).await;
    let mut cat = exec(Cmd::Argv(vec!["sleep".into(), "2".into()]));
    cat.stdin = true;
    framed
        .send(proto::encode(&Frame {
            call: 1,
            body: Request::Exec(cat),
        }))
        .await
        .unwrap();
    for _ in 0..=(proto::WINDOW as usize / proto::CHUNK) {
        let body = Request::Data(vec![0; proto::CHUNK]);
        if framed
            .send(proto::encode(&Frame { call: 1, body }))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut saw_protocol_error = false;
    while let Some(Ok(bytes)) = framed.next().await {
        let reply: Frame<Reply> = proto::decode(&bytes).unwrap();
        if reply.call == 0 {
            saw_protocol_error =
                matches!(&reply.body, Reply::Error(f) if f.kind == FailureKind::Protocol);
        }
    }
    assert!(saw_protocol_error);

    // Through it all, the agent keeps serving.
    let client = agent.client().await;
    assert_eq!(run(&client, sh("echo fine")).await.unwrap().out(), "fine\n");
}

/// A raw framed connection past the handshake.
async fn handshaken(
    stream: UnixStream,
) -> Framed<UnixStream, tokio_util::codec::LengthDelimitedCodec> {
    let mut framed = Framed::new(stream, proto::codec());
    let hello = Request::Hello {
        version: proto::VERSION,
        challenge: vec![1; 32],
    };
    framed
        .send(proto::encode(&Frame {
            call: 0,
            body: hello,
        }))
        .await
        .unwrap();
    let welcome: Frame<Reply> = proto::decode(&next(&mut framed).await).unwrap();
    let Reply::Welcome { challenge, .. } = welcome.body else {
        panic!("{welcome:?}")
    };
    let proof = auth::proof(&secret(), auth::HOST, &challenge);
    framed
        .send(proto::encode(&Frame {
            call: 0,
            body: Request::Prove { proof },
        }))
        .await
        .unwrap();
    let ready: Frame<Reply> = proto::decode(&next(&mut framed).await).unwrap();
    assert_eq!(ready.body, Reply::Ready);
    framed
}

async fn next(
    framed: &mut Framed<UnixStream, tokio_util::codec::LengthDelimitedCodec>,
) -> BytesMut {
    framed.next().await.unwrap().unwrap()
}

#[tokio::test]
async fn connect_bridges_stdin_and_stdout() {
    let agent = Agent::start();
    let mut bridge = tokio::process::Command::new(env!("CARGO_BIN_EXE_enclave-agent"))
        .arg("connect")
        .env(proto::SOCKET_ENV, &agent.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdio = tokio::io::join(bridge.stdout.take().unwrap(), bridge.stdin.take().unwrap());
    let client = Client::handshake(stdio, &secret()).await.unwrap();
    let outcome = run(&client, sh("head -c 3000000 /dev/zero | wc -c"))
        .await
        .unwrap();
    assert_eq!(outcome.out().trim(), "3000000");
    let status = simple(&client, Request::Status).await.unwrap();
    let Reply::Status(status) = status else {
        panic!("{status:?}")
    };
    assert_eq!(status.pid, agent.child.id());
    assert!(status.rss_bytes > 0);
    drop(client);
    let exited = tokio::time::timeout(Duration::from_secs(5), bridge.wait()).await;
    assert!(exited.is_ok(), "the bridge exits when the host closes");
}

#[tokio::test]
async fn python_runs_forked_from_a_warm_interpreter_and_times_out() {
    let agent = Agent::start();
    let client = agent.client().await;
    let req = PythonRequest {
        code: "import os, sys\nprint('py', os.environ['X'])\nsys.exit(4)\n".into(),
        interpreter: None,
        env: vec![("X".into(), "1".into())],
        cwd: None,
        timeout_ms: Some(10_000),
    };
    let (_, reader) = client.call(Request::Python(req)).await.unwrap().split();
    let outcome = collect(reader).await.unwrap();
    assert_eq!(outcome.out(), "py 1\n");
    assert_eq!(outcome.ending.code, Some(4));
    // The fresh fallback is covered by python.rs's own tests, with interpreters that cannot
    // serve forks.
    assert_eq!(outcome.ending.runner, Some(PythonRunner::Forked));

    let looping = PythonRequest {
        code: "while True: pass\n".into(),
        interpreter: None,
        env: vec![],
        cwd: None,
        timeout_ms: Some(500),
    };
    let (_, reader) = client.call(Request::Python(looping)).await.unwrap().split();
    let outcome = collect(reader).await.unwrap();
    assert_eq!(outcome.ending.how, How::TimedOut);
    assert!(!alive(outcome.pid));
}

#[test]
fn init_passes_the_command_exit_code() {
    let agent = Agent::start_with(&["sh", "-c", "exit 5"], &[]);
    let mut child = agent;
    let status = child.child.wait().unwrap();
    assert_eq!(status.code(), Some(5));
}

#[test]
fn init_forwards_sigterm_and_exits_with_the_command() {
    let mut agent = Agent::start_with(&["sleep", "100"], &[]);
    std::thread::sleep(Duration::from_millis(200));
    Command::new("kill")
        .args(["-TERM", &agent.child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_timeout(&mut agent.child, Duration::from_secs(5)).expect("agent exited");
    assert_eq!(status.code(), Some(128 + 15));
}

#[tokio::test]
async fn init_stays_up_when_its_command_is_killed_from_inside() {
    let mut agent = Agent::start_with(&["sleep", "100"], &[]);
    let client = agent.client().await;
    // What `kill -9 -1` inside a sandbox does to the image's command.
    run(
        &client,
        sh("pkill -KILL -P $PPID -x sleep || kill -9 $(pgrep -P $PPID -x sleep)"),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent exited"
    );
    assert_eq!(
        run(&client, sh("echo alive")).await.unwrap().out(),
        "alive\n"
    );
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn init_without_a_command_runs_until_sigterm() {
    let mut agent = Agent::start();
    std::thread::sleep(Duration::from_millis(200));
    assert!(agent.child.try_wait().unwrap().is_none());
    Command::new("kill")
        .args(["-TERM", &agent.child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_timeout(&mut agent.child, Duration::from_secs(5)).expect("agent exited");
    assert_eq!(status.code(), Some(0));
}

//! The in-sandbox agent against the `docker exec` path, in process through the `Manager` (no CLI
//! start-up), in one run: two sandboxes from the same image, one reached through its agent, one
//! created with `ENCLAVE_AGENT=off`; raw exec through the engine beside them. Calls alternate
//! between the cases, so a drift in the machine's speed hits all alike.
//!
//!     cargo bench --bench agent          # BENCH_RUNS=100 for more samples

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use enclave::backend::DockerEngine;
use enclave::manager::{LocalManager, Manager, ToolCall};
use enclave::model::{Discard, ExecEnd, ExecSpec, ExecutionStatus, Sandbox, SandboxType};
use enclave::state::StateStore;

const WARM_UP: usize = 5;
const BIG_FILE: &str = "/tmp/enclave-bench-10m";
const BIG_SIZE: usize = 10_000_000;

/// What one sample does.
#[derive(Clone)]
enum Probe {
    Tool(&'static str, Value),
    /// `file_operation` write of 1 KB, then read back.
    WriteRead,
    /// The 10 MB file as an archive stream (what `enclave cp ID:FILE` reads).
    ReadBig,
    /// An exec through the manager.
    Exec(&'static [&'static str]),
    /// `cat` of a local copy of the big file, on the host.
    LocalCat(String),
}

struct Case {
    name: String,
    sandbox: Option<usize>,
    probe: Probe,
    samples: Vec<Duration>,
}

fn main() -> Result<()> {
    let runs = common::runs(50);
    let image = common::image("ENCLAVE_BENCH_IMAGE", "enclave-test-python:bookworm");
    common::block_on(bench(&image, runs))
}

async fn bench(image: &str, runs: usize) -> Result<()> {
    let state_dir = tempfile::tempdir()?;
    let manager = LocalManager::new(DockerEngine::connect()?, StateStore::at(state_dir.path()));
    let agent = create(&manager, image, None).await?;
    let exec_path = create(&manager, image, Some("off")).await;
    let exec_path = match exec_path {
        Ok(s) => s,
        Err(e) => {
            manager.remove(&agent).await?;
            return Err(e);
        }
    };
    let sandboxes = [agent, exec_path];
    let local = tempfile::tempdir()?;
    let measured = measure(&manager, &sandboxes, runs, local.path()).await;
    let status = agent_status(&manager, &sandboxes[0]).await;
    for s in &sandboxes {
        manager.remove(s).await?;
    }
    report(&measured?, runs, image, &status?);
    Ok(())
}

async fn create(manager: &LocalManager, image: &str, agent: Option<&str>) -> Result<Sandbox> {
    // The choice is made at create, from the environment, as for the CLI and the server.
    match agent {
        Some(v) => std::env::set_var("ENCLAVE_AGENT", v),
        None => std::env::remove_var("ENCLAVE_AGENT"),
    }
    let tools = ["python_executor", "shell_executor", "file_operation"];
    let created =
        common::create_sandbox(manager, SandboxType::Docker, image, &tools, "agent").await;
    std::env::remove_var("ENCLAVE_AGENT");
    created
}

fn cases(local_copy: &str) -> Vec<Case> {
    let on_both = |name: &str, probe: Probe| {
        [("agent", 0), ("exec path", 1)].map(|(path, sandbox)| Case {
            name: format!("{name} — {path}"),
            sandbox: Some(sandbox),
            probe: probe.clone(),
            samples: Vec::new(),
        })
    };
    let mut cases = Vec::new();
    cases.extend(on_both(
        "shell_executor `echo hi`",
        Probe::Tool("shell_executor", json!({"command": "echo hi"})),
    ));
    cases.extend(on_both(
        "python_executor `print(1)`",
        Probe::Tool("python_executor", json!({"code": "print(1)"})),
    ));
    cases.extend(on_both("file 1 KB write + read", Probe::WriteRead));
    cases.extend(on_both("10 MB read (archive stream)", Probe::ReadBig));
    cases.push(Case {
        name: "raw engine exec `sh -c 'echo hi'`".into(),
        sandbox: Some(1),
        probe: Probe::Exec(&["sh", "-c", "echo hi"]),
        samples: Vec::new(),
    });
    cases.push(Case {
        name: "`cat` of the 10 MB file on the host, read here".into(),
        sandbox: None,
        probe: Probe::LocalCat(local_copy.to_string()),
        samples: Vec::new(),
    });
    cases
}

async fn measure(
    manager: &LocalManager,
    sandboxes: &[Sandbox],
    runs: usize,
    local: &std::path::Path,
) -> Result<Vec<Case>> {
    let local_copy = local.join("10m");
    for s in sandboxes {
        let make = format!("head -c {BIG_SIZE} /dev/urandom > {BIG_FILE}");
        exec(manager, s, &["sh", "-c", &make]).await?;
    }
    std::fs::write(&local_copy, vec![7u8; BIG_SIZE])?;
    let mut cases = cases(&local_copy.display().to_string());
    for round in 0..WARM_UP + runs {
        for case in &mut cases {
            let sandbox = case.sandbox.map(|i| &sandboxes[i]);
            let started = Instant::now();
            sample(manager, sandbox, &case.probe).await?;
            if round >= WARM_UP {
                case.samples.push(started.elapsed());
            }
        }
    }
    for case in &mut cases {
        case.samples.sort();
    }
    Ok(cases)
}

async fn sample(manager: &LocalManager, sandbox: Option<&Sandbox>, probe: &Probe) -> Result<()> {
    match (probe, sandbox) {
        (Probe::Tool(tool, args), Some(s)) => tool_call(manager, s, tool, args.clone()).await,
        (Probe::WriteRead, Some(s)) => {
            let content = "x".repeat(1024);
            let path = "/tmp/enclave-bench-1k";
            let w = json!({"operation": "write", "file_path": path, "content": content});
            tool_call(manager, s, "file_operation", w).await?;
            let r = json!({"operation": "read", "file_path": path});
            tool_call(manager, s, "file_operation", r).await
        }
        (Probe::ReadBig, Some(s)) => {
            let mut stream = manager.get_archive(s, BIG_FILE).await?;
            let mut total = 0;
            while let Some(chunk) = stream.next().await {
                total += chunk?.len();
            }
            if total < BIG_SIZE {
                bail!("read {total} bytes of {BIG_SIZE}");
            }
            Ok(())
        }
        (Probe::Exec(argv), Some(s)) => exec(manager, s, argv).await,
        (Probe::LocalCat(path), _) => {
            // Its output is read here, as the archive stream's is: the bytes reach the caller
            // (and are dropped, as the stream's chunks are).
            let mut cat = tokio::process::Command::new("cat")
                .arg(path)
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            let mut out = cat.stdout.take().context("cat's stdout")?;
            let mut buf = vec![0u8; 128 * 1024];
            let mut total = 0;
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut out, &mut buf).await?;
                if n == 0 {
                    break;
                }
                total += n;
            }
            if !cat.wait().await?.success() || total < BIG_SIZE {
                bail!("cat failed");
            }
            Ok(())
        }
        _ => bail!("a probe without its sandbox"),
    }
}

async fn tool_call(manager: &LocalManager, s: &Sandbox, tool: &str, args: Value) -> Result<()> {
    let call = ToolCall {
        tool: tool.to_string(),
        args: args.as_object().cloned().unwrap_or_default(),
        deadline: None,
        cancel: CancellationToken::new(),
    };
    let result = manager.execute_tool(s, call).await?;
    if result.status != ExecutionStatus::Success {
        bail!("{tool} failed: {:?}", result.error);
    }
    Ok(())
}

async fn exec(manager: &LocalManager, s: &Sandbox, argv: &[&str]) -> Result<()> {
    let spec = ExecSpec::new(argv.iter().map(|a| (*a).to_string()).collect());
    let outcome = manager.exec(s, spec, &mut Discard).await?;
    if outcome.end != ExecEnd::Exited(Some(0)) {
        bail!("{argv:?} ended with {:?}", outcome.end);
    }
    Ok(())
}

/// The agent's own memory and the size of its binary, read in the sandbox.
async fn agent_status(manager: &LocalManager, s: &Sandbox) -> Result<String> {
    let spec = ExecSpec::new(vec![
        "sh".into(),
        "-c".into(),
        "grep VmRSS /proc/1/status; stat -c 'binary: %s bytes' /.enclave/enclave-agent".into(),
    ]);
    let mut capture = enclave::model::Capture::new(4096);
    manager.exec(s, spec, &mut capture).await?;
    Ok(capture.stdout.into_text().0)
}

fn report(cases: &[Case], runs: usize, image: &str, status: &str) {
    println!("agent vs exec path, in process; {runs} runs each; image: {image}\n");
    println!("{:<52} {:>9} {:>9} {:>9}", "call", "p50 ms", "min", "p90");
    for case in cases {
        let s = &case.samples;
        println!(
            "{:<52} {:>9.2} {:>9.2} {:>9.2}",
            case.name,
            ms(s[s.len() / 2]),
            ms(s[0]),
            ms(s[(s.len() * 9 / 10).saturating_sub(1)])
        );
    }
    let p50 = |name: &str| {
        cases
            .iter()
            .find(|c| c.name.starts_with(name))
            .map_or(f64::NAN, |c| ms(c.samples[c.samples.len() / 2]))
    };
    println!(
        "\ntargets: shell_executor {:.2} ms (<= 5)   python_executor {:.2} ms (<= 10)   \
         1 KB write+read {:.2} ms (<= 10)   10 MB read / local cat {:.2}x (<= 1.2x)",
        p50("shell_executor `echo hi` — agent"),
        p50("python_executor `print(1)` — agent"),
        p50("file 1 KB write + read — agent"),
        p50("10 MB read (archive stream) — agent") / p50("`cat` of the 10 MB file"),
    );
    println!(
        "agent in its sandbox (PID 1): {}",
        status.trim().replace('\n', "; ")
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

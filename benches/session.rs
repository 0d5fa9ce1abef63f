//! The python session against one-shot tool calls, in process through the `Manager` (no CLI
//! start-up), in one run: `1+1` round trips through `Manager::open_session` (reached through the
//! sandbox's agent, and with `ENCLAVE_AGENT=off` through `docker exec`), beside `print(1)`
//! through a one-shot `python_executor` call on the same sandbox. Samples alternate between the
//! cases. `scripts/bench-shell.sh` runs this after timing `enclave shell` to its first prompt.
//!
//!     cargo bench --bench session        # BENCH_RUNS=200 for more samples

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use enclave::backend::DockerEngine;
use enclave::manager::{LocalManager, Manager, ToolCall};
use enclave::model::{ExecutionStatus, Sandbox, SandboxType};
use enclave::session::{DoneStatus, Interrupter, Session, SessionEvent, SessionOptions};
use enclave::state::StateStore;

const WARM_UP: usize = 5;

fn main() -> Result<()> {
    let runs = common::runs(100);
    let image = common::image("ENCLAVE_BENCH_IMAGE", "enclave-test-python:bookworm");
    common::block_on(bench(&image, runs))
}

async fn bench(image: &str, runs: usize) -> Result<()> {
    let state_dir = tempfile::tempdir()?;
    let manager = LocalManager::new(DockerEngine::connect()?, StateStore::at(state_dir.path()));
    let agent = create(&manager, image, None).await?;
    let exec_path = match create(&manager, image, Some("off")).await {
        Ok(s) => s,
        Err(e) => {
            manager.remove(&agent).await?;
            return Err(e);
        }
    };
    let measured = measure(&manager, &agent, &exec_path, runs).await;
    manager.remove(&agent).await?;
    manager.remove(&exec_path).await?;
    measured
}

async fn measure(
    manager: &LocalManager,
    agent: &Sandbox,
    exec_path: &Sandbox,
    runs: usize,
) -> Result<()> {
    let opened = Instant::now();
    let mut on_agent = manager
        .open_session(agent, SessionOptions::default())
        .await?;
    let open_agent = opened.elapsed();
    let opened = Instant::now();
    let mut on_exec = manager
        .open_session(exec_path, SessionOptions::default())
        .await?;
    let open_exec = opened.elapsed();
    let mut samples: [Vec<Duration>; 3] = Default::default();
    for i in 0..runs + WARM_UP {
        let taken = [
            round_trip(on_agent.as_mut()).await?,
            round_trip(on_exec.as_mut()).await?,
            one_shot(manager, agent).await?,
        ];
        if i >= WARM_UP {
            for (s, t) in samples.iter_mut().zip(taken) {
                s.push(t);
            }
        }
    }
    on_agent.close().await?;
    on_exec.close().await?;
    let language = on_language(manager, agent).await?;
    println!(
        "session bench: {} ({language}), {runs} samples each\n",
        agent.image
    );
    println!("{:<58} {:>9} {:>9}", "case", "p50 ms", "p95 ms");
    let names = [
        "python session `1+1` round trip — agent",
        "python session `1+1` round trip — docker exec path",
        "one-shot python_executor `print(1)` — agent",
    ];
    for (name, s) in names.iter().zip(samples.iter_mut()) {
        s.sort();
        let p50 = s[s.len() / 2];
        let p95 = s[(s.len() * 95 / 100).min(s.len() - 1)];
        println!("{name:<58} {:>9.2} {:>9.2}", ms(p50), ms(p95));
    }
    println!(
        "{:<58} {:>9.2}\n{:<58} {:>9.2}",
        "open_session (driver started, ready) — agent",
        ms(open_agent),
        "open_session (driver started, ready) — docker exec path",
        ms(open_exec)
    );
    Ok(())
}

async fn on_language(manager: &LocalManager, sandbox: &Sandbox) -> Result<String> {
    let session = manager
        .open_session(sandbox, SessionOptions::default())
        .await?;
    let language = session.info().language.clone();
    session.close().await?;
    Ok(language)
}

/// `1+1` in the live session, until its `Done`; checks the value came back.
async fn round_trip(session: &mut dyn Session) -> Result<Duration> {
    let started = Instant::now();
    let mut value = None;
    let done = session
        .execute("1+1", None, &Interrupter::default(), &mut |event| {
            if let SessionEvent::Display { data, .. } = event {
                value = data.get("text/plain").cloned();
            }
        })
        .await?;
    let took = started.elapsed();
    if done != DoneStatus::Ok || value != Some(Value::String("2".into())) {
        bail!("`1+1` came back as {value:?} ({done:?})");
    }
    Ok(took)
}

async fn one_shot(manager: &LocalManager, sandbox: &Sandbox) -> Result<Duration> {
    let mut args = Map::new();
    args.insert("code".into(), json!("print(1)"));
    let started = Instant::now();
    let result = manager
        .execute_tool(
            sandbox,
            ToolCall {
                tool: "python_executor".into(),
                args,
                deadline: None,
                cancel: CancellationToken::new(),
            },
        )
        .await?;
    let took = started.elapsed();
    if result.status != ExecutionStatus::Success {
        bail!("python_executor failed: {result:?}");
    }
    Ok(took)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn create(manager: &LocalManager, image: &str, agent: Option<&str>) -> Result<Sandbox> {
    // The choice is made at create, from the environment, as for the CLI and the server.
    match agent {
        Some(v) => std::env::set_var("ENCLAVE_AGENT", v),
        None => std::env::remove_var("ENCLAVE_AGENT"),
    }
    let tools = ["python_executor"];
    let created =
        common::create_sandbox(manager, SandboxType::Docker, image, &tools, "session").await;
    std::env::remove_var("ENCLAVE_AGENT");
    created
}

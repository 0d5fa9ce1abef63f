//! Notebook round trips, in process through the `Manager`: `1+1` as a `notebook_executor` call
//! and as an input of the kernel's `Session`. Creates its own notebook sandbox from
//! `ENCLAVE_BENCH_NOTEBOOK_IMAGE` (default `enclave-test-notebook:1`) and removes it at the end.
//!
//!     cargo bench --bench notebook         # BENCH_RUNS=50 for more samples

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use enclave::backend::DockerEngine;
use enclave::manager::{LocalManager, Manager, ToolCall};
use enclave::model::{ExecutionStatus, Sandbox, SandboxType};
use enclave::session::{DoneStatus, Interrupter, SessionOptions};
use enclave::state::StateStore;

const WARM_UP: usize = 3;

fn main() -> Result<()> {
    let runs = common::runs(30);
    let image = common::image("ENCLAVE_BENCH_NOTEBOOK_IMAGE", "enclave-test-notebook:1");
    common::block_on(bench(&image, runs))
}

async fn bench(image: &str, runs: usize) -> Result<()> {
    let state_dir = tempfile::tempdir()?;
    let manager = LocalManager::new(DockerEngine::connect()?, StateStore::at(state_dir.path()));
    let tools = ["notebook_executor"];
    let sandbox = common::create_sandbox(
        &manager,
        SandboxType::DockerNotebook,
        image,
        &tools,
        "notebook",
    )
    .await?;
    let measured = measure(&manager, &sandbox, runs).await;
    manager.remove(&sandbox).await?;
    let (tool, session) = measured?;
    println!("notebook round trips, in process; {runs} runs each; image: {image}\n");
    println!(
        "{:<36} {:>9} {:>9} {:>9}",
        "call", "median ms", "min", "p90"
    );
    for (name, samples) in [
        ("notebook_executor `1+1`", tool),
        ("session execute `1+1`", session),
    ] {
        let (median, min, p90) = stats(samples);
        println!("{name:<36} {median:>9.1} {min:>9.1} {p90:>9.1}");
    }
    Ok(())
}

async fn measure(
    manager: &LocalManager,
    sandbox: &Sandbox,
    runs: usize,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let mut tool = Vec::new();
    for i in 0..WARM_UP + runs {
        let call = ToolCall {
            tool: "notebook_executor".into(),
            args: json!({"code": "1+1"}).as_object().unwrap().clone(),
            deadline: None,
            cancel: CancellationToken::new(),
        };
        let started = Instant::now();
        let result = manager.execute_tool(sandbox, call).await?;
        let took = started.elapsed();
        if result.status != ExecutionStatus::Success || result.output != "\nResult: 2" {
            bail!("unexpected result: {result:?}");
        }
        if i >= WARM_UP {
            tool.push(took);
        }
    }
    let mut session = manager
        .open_session(sandbox, SessionOptions::default())
        .await?;
    let mut inputs = Vec::new();
    for i in 0..WARM_UP + runs {
        let started = Instant::now();
        let done = session
            .execute("1+1", None, &Interrupter::default(), &mut |_| {})
            .await?;
        let took = started.elapsed();
        if done != DoneStatus::Ok {
            bail!("`1+1` ended {done:?}");
        }
        if i >= WARM_UP {
            inputs.push(took);
        }
    }
    session.close().await?;
    Ok((tool, inputs))
}

/// Median, minimum and p90 in milliseconds.
fn stats(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    (at(0.5), ms(samples[0]), at(0.9))
}

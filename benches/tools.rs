//! Tool-call latency, in process through the `Manager` (no CLI start-up), beside a raw exec of
//! the same command through the backend. Creates its own sandbox from `ENCLAVE_BENCH_IMAGE`
//! (default `enclave-test-python:bookworm`) and removes it at the end.
//!
//!     cargo bench --bench tools            # BENCH_RUNS=50 for more samples

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use enclave::backend::DockerEngine;
use enclave::manager::{LocalManager, Manager, ToolCall};
use enclave::model::{Discard, ExecEnd, ExecSpec, ExecutionStatus, Sandbox, SandboxType};
use enclave::state::StateStore;

const WARM_UP: usize = 3;

/// One thing to time: a tool call, or the raw exec it is compared with.
enum Probe {
    Tool(&'static str, Value),
    Raw(&'static [&'static str]),
}

struct Case {
    name: &'static str,
    probe: Probe,
    samples: Vec<Duration>,
}

fn main() -> Result<()> {
    let runs = common::runs(30);
    let image = common::image("ENCLAVE_BENCH_IMAGE", "enclave-test-python:bookworm");
    common::block_on(bench(&image, runs))
}

async fn bench(image: &str, runs: usize) -> Result<()> {
    let state_dir = tempfile::tempdir()?;
    let manager = LocalManager::new(DockerEngine::connect()?, StateStore::at(state_dir.path()));
    let tools = ["python_executor", "shell_executor"];
    let sandbox =
        common::create_sandbox(&manager, SandboxType::Docker, image, &tools, "tools").await?;
    let measured = measure(&manager, &sandbox, runs).await;
    manager.remove(&sandbox).await?;
    let cases = measured?;

    println!("tool latency, in process; {runs} runs each; image: {image}\n");
    println!(
        "{:<36} {:>9} {:>9} {:>9}",
        "call", "median ms", "min", "p90"
    );
    for case in &cases {
        let s = &case.samples;
        println!(
            "{:<36} {:>9.1} {:>9.1} {:>9.1}",
            case.name,
            ms(median(s)),
            ms(s[0]),
            ms(s[(s.len() * 9 / 10).saturating_sub(1)])
        );
    }
    let ratio = |a: usize, b: usize| ms(median(&cases[a].samples)) / ms(median(&cases[b].samples));
    println!(
        "\nshell_executor / raw exec = {:.2}x (target <= 1.2x)   python_executor / raw exec = {:.2}x",
        ratio(0, 1),
        ratio(2, 3)
    );
    Ok(())
}

async fn measure(manager: &LocalManager, sandbox: &Sandbox, runs: usize) -> Result<Vec<Case>> {
    let mut cases = vec![
        Case {
            name: "shell_executor `echo hi`",
            probe: Probe::Tool("shell_executor", json!({"command": "echo hi"})),
            samples: Vec::new(),
        },
        Case {
            name: "raw exec `sh -c 'echo hi'`",
            probe: Probe::Raw(&["sh", "-c", "echo hi"]),
            samples: Vec::new(),
        },
        Case {
            name: "python_executor `print(1)`",
            probe: Probe::Tool("python_executor", json!({"code": "print(1)"})),
            samples: Vec::new(),
        },
        Case {
            name: "raw exec `python3 -c 'print(1)'`",
            probe: Probe::Raw(&["python3", "-c", "print(1)"]),
            samples: Vec::new(),
        },
    ];
    // Interleaved, so drift in the engine's speed hits every case alike.
    for round in 0..WARM_UP + runs {
        for case in &mut cases {
            let started = Instant::now();
            match &case.probe {
                Probe::Tool(tool, args) => {
                    let call = ToolCall {
                        tool: (*tool).to_string(),
                        args: args.as_object().cloned().unwrap_or_default(),
                        deadline: None,
                        cancel: CancellationToken::new(),
                    };
                    let result = manager.execute_tool(sandbox, call).await?;
                    if result.status != ExecutionStatus::Success {
                        bail!("{tool} failed: {:?}", result.error);
                    }
                }
                Probe::Raw(argv) => {
                    // Through the manager with the sandbox already found: a raw exec.
                    let spec =
                        ExecSpec::new(argv.iter().map(std::string::ToString::to_string).collect());
                    let outcome = manager.exec(sandbox, spec, &mut Discard).await?;
                    if outcome.end != ExecEnd::Exited(Some(0)) {
                        bail!("{argv:?} ended with {:?}", outcome.end);
                    }
                }
            }
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

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

//! What every in-process bench starts with: how many runs, which image, a runtime, a sandbox;
//! and how their figures are printed. Each bench uses a part of it.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

use enclave::manager::{CreateRequest, LocalManager, Manager};
use enclave::model::{DockerSandboxConfig, NoProgress, Sandbox, SandboxType, ToolsConfig};

/// `BENCH_RUNS`, else `default`; never fewer than 20, so a p90 means something.
pub(crate) fn runs(default: usize) -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
        .max(20)
}

/// The image named by the environment variable `var`, else `default`.
pub(crate) fn image(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.into())
}

/// Runs the bench on one thread: the figures then include no scheduling across cores.
pub(crate) fn block_on<F: Future<Output = Result<()>>>(bench: F) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(bench)
}

/// A sandbox for one bench: `kind` from `image` with `tools`, labelled `enclave-bench=<bench>`
/// (the bench scripts remove whatever is left with that label).
pub(crate) async fn create_sandbox(
    manager: &LocalManager,
    kind: SandboxType,
    image: &str,
    tools: &[&str],
    bench: &str,
) -> Result<Sandbox> {
    let config = DockerSandboxConfig {
        image: image.to_string(),
        tools_config: serde_json::from_value::<ToolsConfig>(serde_json::json!(tools))?,
        ..Default::default()
    };
    let request = CreateRequest {
        sandbox_type: kind,
        config,
        volcengine: None,
        extra_labels: vec![("enclave-bench".into(), bench.into())],
    };
    let info = manager
        .create(request, &NoProgress, &CancellationToken::new())
        .await
        .with_context(|| format!("creating the {bench} bench's sandbox"))?;
    manager.find(&info.id).await
}

/// One row of a table of sorted samples: median, minimum and p90, in milliseconds.
pub(crate) fn row(name: &str, sorted: &[Duration]) {
    println!(
        "{:<52} {:>9.2} {:>9.2} {:>9.2}",
        name,
        ms(median(sorted)),
        ms(sorted[0]),
        ms(sorted[(sorted.len() * 9 / 10).saturating_sub(1)])
    );
}

pub(crate) fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

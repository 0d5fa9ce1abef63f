//! What every in-process bench starts with: how many runs, which image, and a runtime.

use std::future::Future;

use anyhow::Result;

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

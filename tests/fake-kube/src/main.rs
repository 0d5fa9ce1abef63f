//! `fake-kube`: the fake Kubernetes API server as a process, for benches and manual use. Prints
//! `FAKE_KUBE_URL=...`, `KUBECONFIG=...` and `FAKE_KUBE_INSTANCE=...`, serves until SIGTERM or
//! SIGINT, then removes its containers. Faults: `PUT /_fake/fault` with `{"fault": "StderrFlood"}`.

use std::io::Write;

use anyhow::Result;
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> Result<()> {
    let fake = enclave_fake_kube::FakeKube::start().await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "FAKE_KUBE_URL={}", fake.url())?;
    writeln!(out, "KUBECONFIG={}", fake.kubeconfig().display())?;
    // Its containers' `fake-kube.instance` label, for leak checks.
    writeln!(out, "FAKE_KUBE_INSTANCE={}", fake.instance())?;
    out.flush()?;
    drop(out);
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    fake.shutdown()
}

//! The kubernetes backend, in process through the `Manager`: create → first exec, and the cost
//! of one exec by plain exec (one exec subresource call per command) against the agent (one exec
//! carrying the agent's protocol, opened once). Against the fake API server (tests/fake-kube,
//! Pods as local Docker containers) unless `KUBECONFIG` names a real cluster: the figures say
//! which. Calls alternate between the cases, so a drift in the machine's speed hits all alike.
//!
//!     ./scripts/bench-kubernetes.sh      # BENCH_RUNS=100 for more samples

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio_util::sync::CancellationToken;

use enclave::manager::{CreateRequest, KubeManager, Manager};
use enclave::model::{
    Discard, DockerSandboxConfig, ExecEnd, ExecSpec, NoProgress, Sandbox, SandboxType,
};
use enclave::state::StateStore;
use enclave_fake_kube::FakeKube;

const WARM_UP: usize = 5;

fn main() -> Result<()> {
    let runs = common::runs(50);
    common::block_on(bench(runs))
}

async fn bench(runs: usize) -> Result<()> {
    let (fake, cluster, image) = match std::env::var("KUBECONFIG").ok().filter(|k| !k.is_empty()) {
        Some(path) => (
            None,
            format!("the real cluster of KUBECONFIG={path}"),
            common::image("ENCLAVE_K8S_TEST_IMAGE", "python:3.12-slim"),
        ),
        None => {
            let fake = FakeKube::start().await?;
            // The manager finds its cluster as the CLI does, through KUBECONFIG.
            std::env::set_var("KUBECONFIG", fake.kubeconfig());
            (
                Some(fake),
                "the FAKE API server (tests/fake-kube: Pods are local Docker containers, no kubelet, no network hop)".to_string(),
                common::image("ENCLAVE_BENCH_IMAGE", "enclave-test-python:bookworm"),
            )
        }
    };
    let state = tempfile::tempdir()?;
    let manager = KubeManager::connect(None, None, StateStore::at(state.path())).await?;
    let measured = measure(&manager, &image, runs).await;
    if let Some(fake) = fake {
        fake.shutdown()?;
    }
    let measured = measured?;
    println!("kubernetes backend on {cluster}");
    println!(
        "image {image}, {runs} runs per row (create rows: {} runs)\n",
        create_runs(runs)
    );
    println!("{:<52} {:>9} {:>9} {:>9}", "", "median ms", "min", "p90");
    for (name, samples) in &measured {
        common::row(name, samples);
    }
    let plain = common::median(&measured[2].1).as_secs_f64();
    let agent = common::median(&measured[3].1).as_secs_f64();
    println!(
        "\nper exec, plain exec / agent over one exec: {:.1}x",
        plain / agent.max(f64::EPSILON)
    );
    Ok(())
}

fn create_runs(runs: usize) -> usize {
    (runs / 5).max(10)
}

async fn measure(
    manager: &KubeManager,
    image: &str,
    runs: usize,
) -> Result<Vec<(String, Vec<Duration>)>> {
    let mut first_plain = Vec::new();
    let mut first_agent = Vec::new();
    for _ in 0..create_runs(runs) {
        first_plain.push(create_then_exec(manager, image, false).await?);
        first_agent.push(create_then_exec(manager, image, true).await?);
    }
    let plain = create(manager, image, false).await?;
    let agent = create(manager, image, true).await;
    let agent = match agent {
        Ok(a) => a,
        Err(e) => {
            manager.remove(&plain).await?;
            return Err(e);
        }
    };
    let calls = async {
        let mut by_plain = Vec::new();
        let mut by_agent = Vec::new();
        for i in 0..WARM_UP + runs {
            let p = timed_exec(manager, &plain).await?;
            let a = timed_exec(manager, &agent).await?;
            if i >= WARM_UP {
                by_plain.push(p);
                by_agent.push(a);
            }
        }
        Ok::<_, anyhow::Error>((by_plain, by_agent))
    }
    .await;
    manager.remove(&plain).await?;
    manager.remove(&agent).await?;
    let (by_plain, by_agent) = calls?;
    let mut rows = vec![
        ("create → first exec, plain exec".to_string(), first_plain),
        (
            "create → first exec, with the agent (copied in)".to_string(),
            first_agent,
        ),
        ("exec `true`, plain exec".to_string(), by_plain),
        ("exec `true`, agent over one exec".to_string(), by_agent),
    ];
    for (_, samples) in &mut rows {
        samples.sort();
    }
    Ok(rows)
}

/// A sandbox made with or without the agent (the choice is read at create, as the CLI's is).
async fn create(manager: &KubeManager, image: &str, agent: bool) -> Result<Sandbox> {
    if agent {
        std::env::remove_var("ENCLAVE_AGENT");
    } else {
        std::env::set_var("ENCLAVE_AGENT", "off");
    }
    let request = CreateRequest {
        sandbox_type: SandboxType::Docker,
        config: DockerSandboxConfig {
            image: image.to_string(),
            ..Default::default()
        },
        volcengine: None,
        extra_labels: vec![("enclave-bench".into(), "kubernetes".into())],
    };
    let info = manager
        .create(request, &NoProgress, &CancellationToken::new())
        .await
        .context("creating the bench's sandbox")?;
    let sandbox = manager.find(&info.id).await?;
    let wanted = if agent { "exec" } else { "off" };
    let got = info.agent.map(|a| a.mode).unwrap_or_default();
    if got != wanted {
        manager.remove(&sandbox).await?;
        bail!("the sandbox's agent is `{got}`, not `{wanted}`");
    }
    Ok(sandbox)
}

async fn create_then_exec(manager: &KubeManager, image: &str, agent: bool) -> Result<Duration> {
    let started = Instant::now();
    let sandbox = create(manager, image, agent).await?;
    let ran = exec(manager, &sandbox).await;
    let took = started.elapsed();
    manager.remove(&sandbox).await?;
    ran?;
    Ok(took)
}

async fn timed_exec(manager: &KubeManager, sandbox: &Sandbox) -> Result<Duration> {
    let started = Instant::now();
    exec(manager, sandbox).await?;
    Ok(started.elapsed())
}

async fn exec(manager: &KubeManager, sandbox: &Sandbox) -> Result<()> {
    let outcome = manager
        .exec(sandbox, ExecSpec::new(vec!["true".into()]), &mut Discard)
        .await?;
    if outcome.end != ExecEnd::Exited(Some(0)) {
        bail!("`true` ended {:?}", outcome.end);
    }
    Ok(())
}

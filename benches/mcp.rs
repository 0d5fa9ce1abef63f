//! `enclave mcp`, in one run: the process's start to its `initialize` answer, and what a
//! `shell_executor` call costs through MCP over stdio beside the same call through the
//! `Manager` in process (the MCP overhead). Both paths use one sandbox, made here from
//! `ENCLAVE_BENCH_IMAGE` (default `enclave-test-python:bookworm`) and removed at the end; their
//! calls alternate, so drift on the machine falls on both alike.
//!
//!     cargo bench --bench mcp            # BENCH_RUNS=100 for more samples

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_util::sync::CancellationToken;

use enclave::backend::DockerEngine;
use enclave::manager::{LocalManager, Manager, ToolCall};
use enclave::model::{ExecutionStatus, Sandbox, SandboxType};
use enclave::state::StateStore;

const WARM_UP: usize = 5;

fn main() -> Result<()> {
    let runs = common::runs(50);
    let image = common::image("ENCLAVE_BENCH_IMAGE", "enclave-test-python:bookworm");
    common::block_on(bench(&image, runs))
}

async fn bench(image: &str, runs: usize) -> Result<()> {
    let state_dir = tempfile::tempdir()?;
    let starts = time_starts(state_dir.path(), runs).await?;

    let manager = LocalManager::new(DockerEngine::connect()?, StateStore::at(state_dir.path()));
    let sandbox = common::create_sandbox(
        &manager,
        SandboxType::Docker,
        image,
        &["shell_executor"],
        "mcp",
    )
    .await?;
    let measured = time_calls(&manager, &sandbox, state_dir.path(), runs).await;
    manager.remove(&sandbox).await?;
    let (in_process, over_mcp) = measured?;

    println!("enclave mcp, {runs} runs each; image: {image}\n");
    println!("{:<52} {:>9} {:>9} {:>9}", "", "median ms", "min", "p90");
    common::row("start to `initialize` answered (stdio)", &starts);
    common::row("shell_executor `true`, Manager in process", &in_process);
    common::row("shell_executor `true`, over MCP stdio", &over_mcp);
    let overhead =
        common::median(&over_mcp).as_secs_f64() - common::median(&in_process).as_secs_f64();
    println!(
        "\nMCP overhead per call (median over MCP - median in process): {:.3} ms",
        overhead * 1e3
    );
    Ok(())
}

/// Each run: a new `enclave mcp`, timed from spawn to the `initialize` answer on its stdout.
async fn time_starts(state_dir: &std::path::Path, runs: usize) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs + WARM_UP {
        let started = Instant::now();
        let mut server = Server::start(state_dir, &[])?;
        server.initialize().await?;
        let took = started.elapsed();
        server.close().await?;
        if i >= WARM_UP {
            samples.push(took);
        }
    }
    samples.sort();
    Ok(samples)
}

/// Alternates one call in process and one over MCP, `runs` times each.
async fn time_calls(
    manager: &LocalManager,
    sandbox: &Sandbox,
    state_dir: &std::path::Path,
    runs: usize,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let mut server = Server::start(state_dir, &["--sandbox", &sandbox.id])?;
    server.initialize().await?;
    let (mut direct, mut mcp) = (Vec::new(), Vec::new());
    for i in 0..runs + WARM_UP {
        let started = Instant::now();
        let result = manager.execute_tool(sandbox, shell_call()).await?;
        let took_direct = started.elapsed();
        if result.status != ExecutionStatus::Success {
            bail!("in process: {:?}", result.error);
        }
        let started = Instant::now();
        let answer = server.call_shell(i).await?;
        let took_mcp = started.elapsed();
        if answer["result"]["isError"] != json!(false) {
            bail!("over MCP: {answer}");
        }
        if i >= WARM_UP {
            direct.push(took_direct);
            mcp.push(took_mcp);
        }
    }
    server.close().await?;
    direct.sort();
    mcp.sort();
    Ok((direct, mcp))
}

fn shell_call() -> ToolCall {
    let args = json!({"command": "true"});
    ToolCall {
        tool: "shell_executor".into(),
        args: args.as_object().cloned().unwrap_or_default(),
        deadline: Some(Duration::from_secs(45)),
        cancel: CancellationToken::new(),
    }
}

/// `enclave mcp` over stdio, spoken to in raw JSON-RPC lines (no client library in the figures).
struct Server {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Server {
    fn start(state_dir: &std::path::Path, extra: &[&str]) -> Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_enclave"))
            .arg("mcp")
            .args(extra)
            .env("ENCLAVE_STATE_DIR", state_dir)
            .env_remove("ENCLAVE_SERVER")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting enclave mcp")?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = child.stdout.take().context("stdout")?;
        Ok(Server {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    async fn send(&mut self, message: Value) -> Result<()> {
        let mut line = message.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        Ok(())
    }

    async fn answer(&mut self) -> Result<Value> {
        let line = self
            .lines
            .next_line()
            .await?
            .context("enclave mcp closed stdout")?;
        Ok(serde_json::from_str(&line)?)
    }

    async fn initialize(&mut self) -> Result<()> {
        self.send(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"}}}),
        )
        .await?;
        let answer = self.answer().await?;
        if answer["result"]["protocolVersion"] != "2025-11-25" {
            bail!("initialize: {answer}");
        }
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await
    }

    async fn call_shell(&mut self, id: usize) -> Result<Value> {
        self.send(
            json!({"jsonrpc": "2.0", "id": id + 1, "method": "tools/call", "params": {
            "name": "shell_executor", "arguments": {"command": "true"}}}),
        )
        .await?;
        self.answer().await
    }

    async fn close(mut self) -> Result<()> {
        drop(self.stdin);
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??;
        if !status.success() {
            bail!("enclave mcp exited {status}");
        }
        Ok(())
    }
}

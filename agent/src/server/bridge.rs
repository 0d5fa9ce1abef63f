//! `enclave-agent connect`: a byte bridge between stdin/stdout and the agent's socket, for a
//! host that reaches the sandbox only through one long-lived `docker exec`.

use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::proto;

pub(crate) fn run() -> i32 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(bridge()),
        Err(e) => {
            eprintln!("enclave-agent: starting the runtime: {e}");
            1
        }
    }
}

/// Where the agent may be listening, in the order `init` tries them.
fn candidates() -> Vec<PathBuf> {
    let wanted = std::env::var_os(proto::SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(proto::SOCKET_PATH));
    vec![wanted, PathBuf::from("/tmp/.enclave-agent/agent.sock")]
}

async fn bridge() -> i32 {
    let mut last = None;
    for path in candidates() {
        match UnixStream::connect(&path).await {
            Ok(stream) => return pipe(stream).await,
            Err(e) => last = Some(format!("{}: {e}", path.display())),
        }
    }
    eprintln!(
        "enclave-agent: cannot reach the agent: {}",
        last.unwrap_or_default()
    );
    1
}

/// Copies both ways until either side closes.
async fn pipe(stream: UnixStream) -> i32 {
    let (mut from_agent, mut to_agent) = stream.into_split();
    let upstream = async {
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut to_agent).await;
    };
    let downstream = async {
        let mut stdout = tokio::io::stdout();
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match from_agent.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // Frames must not wait in a buffer: the host is waiting for them.
            if stdout.write_all(&buf[..n]).await.is_err() || stdout.flush().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
    0
}

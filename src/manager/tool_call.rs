//! Running one tool call against a sandbox's backend, the same for every manager that holds
//! sandboxes itself (the local engine, a Kubernetes cluster): the tool is looked up and its
//! arguments checked first, and the call's deadline and cancel are enforced around the tool.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::ToolCall;
use crate::backend::Backend;
use crate::error::Error;
use crate::model::{ExecutionStatus, Sandbox, ToolResult};
use crate::notebook::SharedKernel;
use crate::tools::{self, ToolContext, ToolSet};

/// How long a tool that was told to stop may take to return before we stop waiting for it.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Runs `call` in `sandbox` through `backend`. `kernel` is asked for only by the notebook tool;
/// `None` gives that tool its own "no kernel" result.
pub(super) async fn execute<K>(
    backend: &dyn Backend,
    sandbox: &Sandbox,
    call: ToolCall,
    kernel: K,
) -> Result<ToolResult>
where
    K: Future<Output = Option<SharedKernel>>,
{
    let set = ToolSet::from_config(&sandbox.config.tools_config, sandbox.sandbox_type)
        .map_err(Error::InvalidConfig)?;
    let enabled = set.get(&call.tool).ok_or_else(|| Error::ToolUnavailable {
        sandbox: sandbox.id.clone(),
        tool: call.tool.clone(),
        available: set.names(),
    })?;
    tools::validate_args(&enabled.tool.parameters(), &call.args).map_err(|message| {
        Error::InvalidToolArgs {
            tool: call.tool.clone(),
            message,
        }
    })?;
    let stop = call.cancel.child_token();
    let notebook = if enabled.tool.key() == "notebook_executor" {
        kernel.await
    } else {
        None
    };
    let ctx = ToolContext {
        backend,
        working_dir: &sandbox.config.working_dir,
        cancel: stop.clone(),
        notebook,
    };
    let started = Instant::now();
    let execute = enabled
        .tool
        .execute(&ctx, &enabled.name, &call.args, &enabled.options);
    let (result, expired) = until_deadline(execute, call.deadline, &stop).await;
    let mut result = result.unwrap_or_else(|| {
        let mut r = ToolResult::failure(&enabled.name, tools::CANCELLED);
        r.status = ExecutionStatus::Cancelled;
        r
    });
    if expired && result.status == ExecutionStatus::Cancelled {
        let secs = call.deadline.map_or(0.0, |d| d.as_secs_f64());
        result.status = ExecutionStatus::Timeout;
        result.error = Some(format!("Tool call timed out after {secs} seconds"));
    }
    result.execution_time = Some(started.elapsed().as_secs_f64());
    Ok(result)
}

/// Runs `call` until it ends; at `deadline` cancels `stop` and waits a grace period for it to
/// wind down. The result (`None` if it never returned) and whether the deadline passed.
async fn until_deadline<F: Future<Output = ToolResult>>(
    call: F,
    deadline: Option<Duration>,
    stop: &CancellationToken,
) -> (Option<ToolResult>, bool) {
    tokio::pin!(call);
    let expired = async {
        match deadline.and_then(|d| tokio::time::Instant::now().checked_add(d)) {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        result = &mut call => (Some(result), false),
        () = expired => {
            stop.cancel();
            (tokio::time::timeout(STOP_GRACE, call).await.ok(), true)
        }
        () = stop.cancelled() => (tokio::time::timeout(STOP_GRACE, call).await.ok(), false),
    }
}

//! One `tools/call`: routed to its tool, with progress reported while it runs and the client's
//! cancellation (or shutdown) killing what it started.

use std::time::{Duration, Instant};

use rmcp::model::ProgressNotificationParam;
use rmcp::service::RequestContext;
use rmcp::RoleServer;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::args::Args;
use super::reply::Reply;
use super::sandboxes::Target;
use super::{Core, Tenant};
use crate::manager::ToolCall;
use crate::model::{Sandbox, SandboxType};
use crate::tools;

/// How often a running call tells a client that asked for progress that it is still running:
/// often enough to keep hosts that reset their timeout on progress from giving up.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// Runs the tool `name` for `tenant`.
pub(super) async fn call(
    core: &Core,
    tenant: &Tenant,
    name: &'static str,
    args: Map<String, Value>,
    context: &RequestContext<RoleServer>,
) -> Reply {
    // Cancelled by the client's `notifications/cancelled` or by shutdown, whichever is first.
    let cancel = core.stop.child_token();
    let _linked = link(&context.ct, &cancel);
    let progress = report_progress(context);
    let reply = route(core, tenant, name, Args::new(args), &cancel).await;
    drop(progress);
    if cancel.is_cancelled() && !reply.is_error {
        return Reply::failed(
            "cancelled",
            "The call was cancelled.",
            "What it started was stopped. Call again if it is still needed.",
        );
    }
    reply
}

async fn route(
    core: &Core,
    tenant: &Tenant,
    name: &'static str,
    mut args: Args,
    cancel: &CancellationToken,
) -> Reply {
    match name {
        "sandbox_create" => core.create_sandbox(tenant, &mut args).await,
        "sandbox_list" => match args.finish() {
            Ok(()) => core.list_sandboxes(tenant).await,
            Err(message) => Reply::invalid_arguments(name, &message),
        },
        "sandbox_remove" => core.remove_sandbox(tenant, &mut args).await,
        "job_start" => core.start_job(tenant, args).await,
        "job_read" => core.read_job(tenant, args, cancel).await,
        "job_kill" => core.kill_job(tenant, args).await,
        "upload_file" => core.upload_file(tenant, args, cancel).await,
        "download_file" => core.download_file(tenant, args, cancel).await,
        executor => run_executor(core, tenant, executor, args, cancel).await,
    }
}

/// An executor call: its own arguments checked against its schema before any sandbox is made,
/// then run in the tenant's sandbox or a throwaway one.
async fn run_executor(
    core: &Core,
    tenant: &Tenant,
    tool: &'static str,
    mut args: Args,
    cancel: &CancellationToken,
) -> Reply {
    let sandbox_id = match args.optional_string("sandbox_id") {
        Ok(id) => id,
        Err(message) => return Reply::invalid_arguments(tool, &message),
    };
    let args = args.into_rest();
    let Some(found) = tools::find(tool) else {
        return Reply::failed("unknown_tool", &format!("{tool} is not available."), "");
    };
    if let Err(message) = tools::validate_args(&found.parameters(), &args) {
        return Reply::invalid_arguments(tool, &message);
    }
    let kind = if tool == "notebook_executor" {
        SandboxType::DockerNotebook
    } else {
        SandboxType::Docker
    };
    let target = match core
        .target(tenant, sandbox_id.as_deref(), kind, tool, cancel)
        .await
    {
        Ok(target) => target,
        Err(reply) => return reply,
    };
    if let Target::Kept(sandbox) = &target {
        if tool == "python_executor" && keeps_state(sandbox) {
            let reply = core.run_in_session(sandbox, &args, cancel).await;
            core.release(target).await;
            return reply;
        }
    }
    let call = ToolCall {
        tool: tool.to_string(),
        args,
        deadline: Some(core.options.call_timeout),
        cancel: cancel.clone(),
    };
    let sandbox = target.sandbox();
    let kept_id = matches!(target, Target::Kept(_)).then(|| sandbox.id.clone());
    let reply = match core.manager.execute_tool(sandbox, call).await {
        Ok(result) => Reply::from_tool_result(result, kept_id.as_deref()),
        Err(e) => Reply::from_error(&e, ""),
    };
    core.release(target).await;
    reply
}

/// Whether `python_executor` runs in the sandbox's live interpreter: a container sandbox that
/// has the tool (a volcengine one runs each call on its service).
fn keeps_state(sandbox: &Sandbox) -> bool {
    sandbox.sandbox_type != SandboxType::Volcengine
        && sandbox.tools.iter().any(|t| t == "python_executor")
}

/// Cancels `to` when `from` is cancelled, until the guard is dropped.
fn link(from: &CancellationToken, to: &CancellationToken) -> tokio_util::sync::DropGuard {
    let (from, to) = (from.clone(), to.clone());
    let done = CancellationToken::new();
    let guard = done.clone().drop_guard();
    tokio::spawn(async move {
        tokio::select! {
            () = from.cancelled() => to.cancel(),
            () = done.cancelled() => {}
        }
    });
    guard
}

/// While the returned guard lives, sends `notifications/progress` every `PROGRESS_EVERY` to a
/// client that gave a progress token.
fn report_progress(context: &RequestContext<RoleServer>) -> Option<tokio_util::sync::DropGuard> {
    let token = context.meta.get_progress_token()?;
    let peer = context.peer.clone();
    let done = CancellationToken::new();
    let guard = done.clone().drop_guard();
    let started = Instant::now();
    tokio::spawn(async move {
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        loop {
            tokio::select! {
                () = done.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let secs = started.elapsed().as_secs();
            let mut note = ProgressNotificationParam::new(token.clone(), secs as f64);
            note.message = Some(format!("still running after {secs} s"));
            if peer.notify_progress(note).await.is_err() {
                return;
            }
        }
    });
    Some(guard)
}

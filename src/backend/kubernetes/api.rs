//! Talking to the API server for one Pod: the exec request's parameters, and what its refusals
//! mean to a caller (a missing Pod, one that cannot run commands, a refusal in its words, a
//! server that does not answer).

use kube::api::AttachParams;

use super::manifest::CONTAINER;
use crate::error::Error;

/// How much kube-rs buffers of each stream between its WebSocket task and our reads (its own
/// default, 1 KiB, costs a task switch per KiB of output).
pub(super) const STREAM_BUFFER: usize = 64 * 1024;

/// The exec's query: the sandbox container, stdout and stderr apart (no TTY), stdin when fed.
pub(super) fn attach_params(stdin: bool) -> AttachParams {
    AttachParams::default()
        .container(CONTAINER)
        .stdin(stdin)
        .stdout(true)
        .stderr(true)
        .tty(false)
        .max_stdin_buf_size(STREAM_BUFFER)
        .max_stdout_buf_size(STREAM_BUFFER)
        .max_stderr_buf_size(STREAM_BUFFER)
}

/// The sandbox id in a Pod's name (`enclave-<id>`), for our error messages.
pub(super) fn sandbox_id(pod: &str) -> &str {
    pod.strip_prefix("enclave-").unwrap_or(pod)
}

/// Turns a kube error into a domain error where callers branch on it, keeping the API server's
/// own message.
pub(super) fn api_error(err: kube::Error, pod: &str) -> anyhow::Error {
    match err {
        kube::Error::Api(status) => status_error(&status, pod),
        kube::Error::HyperError(_) | kube::Error::Service(_) => unavailable(&err).into(),
        other => anyhow::Error::new(other),
    }
}

fn status_error(status: &kube::core::Status, pod: &str) -> anyhow::Error {
    let message = if status.message.trim().is_empty() {
        format!("HTTP {} without a message", status.code)
    } else {
        status.message.clone()
    };
    let id = sandbox_id(pod).to_string();
    match status.code {
        404 => anyhow::Error::new(Error::NotFound(id))
            .context(format!("the Kubernetes API server: {message}")),
        // `pod ... does not have a host assigned`, `container not found`, a Pod that ended:
        // the Pod is there but cannot run commands.
        400 => Error::NotRunning {
            status: message,
            hint: Some(format!(
                "a Pod cannot be restarted: `enclave rm {id}` removes it (`kubectl describe pod \
                 {pod}` says what happened to it)"
            )),
            id,
        }
        .into(),
        _ => refused(message),
    }
}

pub(super) fn refused(message: String) -> anyhow::Error {
    Error::Refused {
        by: "the Kubernetes API server".into(),
        message,
    }
    .into()
}

pub(super) fn unavailable(err: &dyn std::fmt::Display) -> Error {
    Error::Unavailable {
        kind: "kubernetes_unavailable",
        what: "the Kubernetes API server".into(),
        detail: err.to_string(),
        hint: "check the cluster in your kubeconfig (`kubectl cluster-info`)".into(),
    }
}

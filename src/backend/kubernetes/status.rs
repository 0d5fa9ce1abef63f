//! What a Pod's `status` means for its sandbox: the sandbox status `ls` shows, and while it
//! starts, whether to keep waiting or to give up with the cluster's reason in words. A Pod that
//! cannot be scheduled or whose image cannot be pulled stays `Pending` for ever; waiting on the
//! phase alone hangs, so the container and scheduling conditions are read too.

use serde_json::Value;

use crate::model::SandboxStatus;

/// Where a starting Pod stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Its container runs: commands can reach it.
    Ready,
    /// Still coming (scheduled, pulling, creating): wait, up to a bounded time.
    Waiting(String),
    /// It will not come without someone changing something: stop waiting and say why.
    Failed(String),
}

/// Container waiting reasons that do not go away by themselves.
const STUCK: &[(&str, &str)] = &[
    ("ImagePullBackOff", "its image cannot be pulled"),
    ("ErrImagePull", "its image cannot be pulled"),
    ("InvalidImageName", "its image name is not valid"),
    (
        "ErrImageNeverPull",
        "its image is not on the node and the pull policy is Never",
    ),
    (
        "CreateContainerConfigError",
        "its container's config is refused",
    ),
    ("CreateContainerError", "its container cannot be created"),
    ("RunContainerError", "its container cannot be started"),
    ("CrashLoopBackOff", "its container keeps exiting"),
];

/// The sandbox status of a Pod: `null` or a missing status counts as just created.
pub(crate) fn sandbox_status(pod: &Value) -> SandboxStatus {
    let status = &pod["status"];
    if pod["metadata"]["deletionTimestamp"].is_string() {
        return SandboxStatus::Stopping;
    }
    match status["phase"].as_str() {
        Some("Running") if container_running(status) => SandboxStatus::Running,
        Some("Running" | "Pending") | None => match readiness(pod) {
            Readiness::Failed(_) => SandboxStatus::Error,
            _ => SandboxStatus::Initializing,
        },
        Some("Succeeded") => SandboxStatus::Stopped,
        Some("Failed") => SandboxStatus::Error,
        Some(_) => SandboxStatus::Error,
    }
}

/// Whether a starting Pod is ready, still coming, or stuck (and why, in words).
pub(crate) fn readiness(pod: &Value) -> Readiness {
    let status = &pod["status"];
    match status["phase"].as_str() {
        Some("Running") if container_running(status) => return Readiness::Ready,
        Some("Succeeded") => return Readiness::Failed("its container exited".into()),
        Some("Failed") => {
            if let Some(stuck) = init_stuck(status) {
                return Readiness::Failed(format!("the Pod failed: {stuck}"));
            }
            let why = status["message"]
                .as_str()
                .or_else(|| status["reason"].as_str())
                .unwrap_or("the Pod failed");
            return Readiness::Failed(format!("the Pod failed: {why}"));
        }
        _ => {}
    }
    if let Some(stuck) = init_stuck(status) {
        return Readiness::Failed(stuck);
    }
    if let Some(waiting) = container_waiting(status) {
        let reason = waiting["reason"].as_str().unwrap_or("");
        let message = waiting["message"].as_str().unwrap_or("");
        if let Some((_, words)) = STUCK.iter().find(|(r, _)| *r == reason) {
            return Readiness::Failed(with_detail(&format!("{words} ({reason})"), message));
        }
        if !reason.is_empty() {
            return Readiness::Waiting(with_detail(reason, message));
        }
    }
    if let Some(terminated) = container_state(status, "terminated") {
        let code = terminated["exitCode"].as_i64().unwrap_or(-1);
        let reason = terminated["reason"].as_str().unwrap_or("");
        return Readiness::Failed(with_detail(
            &format!("its container exited with code {code}"),
            reason,
        ));
    }
    if let Some(condition) = unschedulable(status) {
        let message = condition["message"].as_str().unwrap_or("");
        return Readiness::Failed(with_detail(
            "it cannot be scheduled (Unschedulable)",
            message,
        ));
    }
    Readiness::Waiting(status["phase"].as_str().unwrap_or("Pending").to_string())
}

/// The words of an API server's refusal to create a Pod (a `Status` object), or `None` when
/// the body is not one: quota, admission and validation refusals read as what they are.
pub(crate) fn refusal(status: &Value) -> Option<String> {
    if status["kind"] != "Status" || status["status"] != "Failure" {
        return None;
    }
    let message = status["message"].as_str().unwrap_or("");
    let words = match status["reason"].as_str().unwrap_or("") {
        "Forbidden" if message.contains("exceeded quota") => {
            "the namespace's resource quota is used up"
        }
        "Forbidden" => "the API server forbids it (RBAC, or an admission policy)",
        "Invalid" => "the API server finds the Pod invalid",
        "AlreadyExists" => "a Pod of that name exists",
        "NotFound" => "the namespace does not exist",
        "Unauthorized" => "the credentials were not accepted",
        _ => "the API server refused it",
    };
    Some(with_detail(words, message))
}

/// An init container (the agent's, from an agent image) that will not finish: its image cannot
/// be pulled, or it exited with an error; the Pod's container never starts then.
fn init_stuck(status: &Value) -> Option<String> {
    for init in status["initContainerStatuses"].as_array()? {
        let name = init["name"].as_str().unwrap_or("?");
        let state = &init["state"];
        if let Some(reason) = state["waiting"]["reason"].as_str() {
            if let Some((_, words)) = STUCK.iter().find(|(r, _)| *r == reason) {
                let message = state["waiting"]["message"].as_str().unwrap_or("");
                return Some(with_detail(
                    &format!("its init container `{name}`: {words} ({reason})"),
                    message,
                ));
            }
        }
        let code = state["terminated"]["exitCode"].as_i64();
        if let Some(code) = code.filter(|c| *c != 0) {
            let reason = state["terminated"]["reason"].as_str().unwrap_or("");
            return Some(with_detail(
                &format!("its init container `{name}` exited with code {code}"),
                reason,
            ));
        }
    }
    None
}

fn container_running(status: &Value) -> bool {
    container_state(status, "running").is_some()
}

fn container_waiting(status: &Value) -> Option<&Value> {
    container_state(status, "waiting")
}

/// The first container's state of kind `state` (`running`, `waiting`, `terminated`).
fn container_state<'a>(status: &'a Value, state: &str) -> Option<&'a Value> {
    status["containerStatuses"]
        .as_array()?
        .first()
        .and_then(|c| c["state"].get(state))
}

fn unschedulable(status: &Value) -> Option<&Value> {
    status["conditions"].as_array()?.iter().find(|c| {
        c["type"] == "PodScheduled" && c["status"] == "False" && c["reason"] == "Unschedulable"
    })
}

fn with_detail(words: &str, detail: &str) -> String {
    if detail.is_empty() {
        words.to_string()
    } else {
        format!("{words}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Pod objects as the API server returns them (written from the v1 Pod API reference, with
    /// the reasons and messages kubelet and the scheduler use; not recorded from a cluster).
    fn fixture(name: &str) -> Value {
        let text = match name {
            "created" => {
                r#"{"metadata":{"name":"enclave-a"},"status":{"phase":"Pending","qosClass":"Guaranteed"}}"#
            }
            "pulling" => {
                r#"{"metadata":{"name":"enclave-a"},"status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"True"}],"containerStatuses":[{"name":"sandbox","ready":false,"restartCount":0,"image":"python:3.11-slim","imageID":"","started":false,"state":{"waiting":{"reason":"ContainerCreating"}}}]}}"#
            }
            "running" => {
                r#"{"metadata":{"name":"enclave-a"},"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}],"containerStatuses":[{"name":"sandbox","ready":true,"restartCount":0,"image":"python:3.11-slim","imageID":"docker.io/library/python@sha256:00","started":true,"state":{"running":{"startedAt":"2026-11-30T04:00:02Z"}}}]}}"#
            }
            "image-pull-backoff" => {
                r#"{"metadata":{"name":"enclave-a"},"status":{"phase":"Pending","containerStatuses":[{"name":"sandbox","ready":false,"restartCount":0,"image":"nosuch/image:1","imageID":"","started":false,"state":{"waiting":{"reason":"ImagePullBackOff","message":"Back-off pulling image \"nosuch/image:1\""}}}]}}"#
            }
            "unschedulable" => {
                r#"{"metadata":{"name":"enclave-a"},"status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable","message":"0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."}]}}"#
            }
            "exited" => {
                r#"{"metadata":{"name":"enclave-a"},"status":{"phase":"Succeeded","containerStatuses":[{"name":"sandbox","ready":false,"restartCount":0,"image":"python:3.11-slim","imageID":"x","started":false,"state":{"terminated":{"exitCode":0,"reason":"Completed"}}}]}}"#
            }
            "deadline" => {
                r#"{"metadata":{"name":"enclave-a"},"status":{"phase":"Failed","reason":"DeadlineExceeded","message":"Pod was active on the node longer than the specified deadline"}}"#
            }
            "agent-image-pull-backoff" => {
                r#"{"metadata":{"name":"enclave-a"},"status":{"phase":"Pending","initContainerStatuses":[{"name":"enclave-agent","ready":false,"restartCount":0,"image":"nosuch/agent:1","imageID":"","state":{"waiting":{"reason":"ImagePullBackOff","message":"Back-off pulling image \"nosuch/agent:1\""}}}],"containerStatuses":[{"name":"sandbox","ready":false,"restartCount":0,"image":"python:3.11-slim","imageID":"","state":{"waiting":{"reason":"PodInitializing"}}}]}}"#
            }
            "agent-init-failed" => {
                r#"{"metadata":{"name":"enclave-a"},"status":{"phase":"Failed","initContainerStatuses":[{"name":"enclave-agent","ready":false,"restartCount":0,"image":"reg/agent:1","imageID":"x","state":{"terminated":{"exitCode":1,"reason":"Error"}}}],"containerStatuses":[{"name":"sandbox","ready":false,"restartCount":0,"image":"python:3.11-slim","imageID":"","state":{"waiting":{"reason":"PodInitializing"}}}]}}"#
            }
            "initializing" => {
                r#"{"metadata":{"name":"enclave-a"},"status":{"phase":"Pending","initContainerStatuses":[{"name":"enclave-agent","ready":false,"restartCount":0,"image":"reg/agent:1","imageID":"x","state":{"running":{"startedAt":"2026-11-30T04:00:02Z"}}}],"containerStatuses":[{"name":"sandbox","ready":false,"restartCount":0,"image":"python:3.11-slim","imageID":"","state":{"waiting":{"reason":"PodInitializing"}}}]}}"#
            }
            "deleting" => {
                r#"{"metadata":{"name":"enclave-a","deletionTimestamp":"2026-11-30T05:00:00Z"},"status":{"phase":"Running","containerStatuses":[{"name":"sandbox","state":{"running":{}}}]}}"#
            }
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_starting_pod_is_waited_for_and_a_stuck_one_is_given_up_on_in_words() {
        assert_eq!(
            readiness(&fixture("created")),
            Readiness::Waiting("Pending".into())
        );
        assert_eq!(
            readiness(&fixture("pulling")),
            Readiness::Waiting("ContainerCreating".into())
        );
        assert_eq!(readiness(&fixture("running")), Readiness::Ready);
        assert_eq!(
            readiness(&fixture("initializing")),
            Readiness::Waiting("PodInitializing".into())
        );
        let Readiness::Failed(why) = readiness(&fixture("agent-image-pull-backoff")) else {
            panic!("an agent image that cannot be pulled is given up on");
        };
        assert!(why.contains("init container `enclave-agent`"), "{why}");
        assert!(why.contains("cannot be pulled (ImagePullBackOff)"), "{why}");
        let Readiness::Failed(why) = readiness(&fixture("agent-init-failed")) else {
            panic!("a failed init container is given up on");
        };
        assert!(why.contains("exited with code 1"), "{why}");
        let Readiness::Failed(why) = readiness(&fixture("image-pull-backoff")) else {
            panic!("an image that cannot be pulled is not worth waiting for");
        };
        assert!(
            why.starts_with("its image cannot be pulled (ImagePullBackOff)"),
            "{why}"
        );
        assert!(why.contains("nosuch/image:1"), "{why}");
        let Readiness::Failed(why) = readiness(&fixture("unschedulable")) else {
            panic!("an unschedulable Pod is not worth waiting for");
        };
        assert!(
            why.contains("Unschedulable") && why.contains("Insufficient memory"),
            "{why}"
        );
        let Readiness::Failed(why) = readiness(&fixture("deadline")) else {
            panic!("a failed Pod");
        };
        assert!(why.contains("deadline"), "{why}");
        assert!(matches!(
            readiness(&fixture("exited")),
            Readiness::Failed(_)
        ));
    }

    #[test]
    fn pod_states_map_to_sandbox_states() {
        for (name, expected) in [
            ("created", SandboxStatus::Initializing),
            ("pulling", SandboxStatus::Initializing),
            ("running", SandboxStatus::Running),
            ("image-pull-backoff", SandboxStatus::Error),
            ("unschedulable", SandboxStatus::Error),
            ("exited", SandboxStatus::Stopped),
            ("deadline", SandboxStatus::Error),
            ("deleting", SandboxStatus::Stopping),
        ] {
            assert_eq!(sandbox_status(&fixture(name)), expected, "{name}");
        }
        assert_eq!(sandbox_status(&json!({})), SandboxStatus::Initializing);
    }

    #[test]
    fn refusals_to_create_read_as_what_they_are() {
        let quota = json!({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,
            "message":"pods \"enclave-a\" is forbidden: exceeded quota: compute, requested: limits.memory=4Gi, used: limits.memory=8Gi, limited: limits.memory=10Gi"});
        let words = refusal(&quota).unwrap();
        assert!(
            words.starts_with("the namespace's resource quota is used up: "),
            "{words}"
        );
        let rbac = json!({"kind":"Status","status":"Failure","reason":"Forbidden","code":403,
            "message":"pods is forbidden: User \"system:serviceaccount:x:y\" cannot create resource \"pods\""});
        assert!(refusal(&rbac)
            .unwrap()
            .starts_with("the API server forbids it (RBAC"));
        assert_eq!(refusal(&json!({"kind":"Pod"})), None);
    }
}

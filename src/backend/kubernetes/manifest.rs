//! The objects a sandbox is on Kubernetes: one bare Pod (and, for a sandbox without network, a
//! NetworkPolicy that denies it all traffic), as JSON manifests. Pure: what `--dry-run` prints
//! is what a create would send.
//!
//! Labels stay the source of truth, as on Docker, but Kubernetes allows only short, plain label
//! values: the id, type and owner are labels (selectable); the tools, the creation time and the
//! config, which a label value cannot hold, are annotations.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::model::{DockerSandboxConfig, SandboxType};

/// The container's name in the Pod.
pub(crate) const CONTAINER: &str = "sandbox";

/// Capabilities a sandbox keeps: what the tools and package managers need (files owned by
/// others, `chown` of what they unpack, dropping to another user, killing their own children).
/// Everything else, raw sockets and `mknod` among it, is dropped.
const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
];

/// One sandbox to describe.
pub(crate) struct PodPlan<'a> {
    pub(crate) id: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) sandbox_type: SandboxType,
    pub(crate) config: &'a DockerSandboxConfig,
    pub(crate) tools: &'a [String],
    pub(crate) created: DateTime<Utc>,
    pub(crate) owner: &'a str,
    pub(crate) extra_labels: &'a [(String, String)],
    /// The sandbox's time to live: the Pod's `activeDeadlineSeconds`, a backstop should nothing
    /// else remove it.
    pub(crate) ttl: Option<Duration>,
    /// An image holding the agent (`/enclave-agent`): an init container puts the agent into the
    /// Pod from it, instead of a copy over exec after the Pod starts.
    pub(crate) agent_image: Option<&'a str>,
}

/// The volume the agent's init container fills, and where each side mounts it.
const AGENT_VOLUME: &str = "enclave-agent";
const AGENT_INSTALL_DIR: &str = "/.enclave-agent";
/// Where the sandbox's container sees the agent: read-only, so code in the sandbox cannot
/// replace it.
pub(crate) const AGENT_DIR: &str = "/tmp/.enclave";

/// The Pod's name: `enclave-<id>`.
pub(crate) fn pod_name(id: &str) -> String {
    format!("enclave-{id}")
}

/// The name of the NetworkPolicy of a sandbox without network.
pub(crate) fn network_policy_name(id: &str) -> String {
    format!("{}-no-network", pod_name(id))
}

/// The manifests for `plan`: the Pod, then a NetworkPolicy when the sandbox has no network.
/// A config Kubernetes cannot honour is refused with the field named.
pub(crate) fn manifests(plan: &PodPlan<'_>) -> Result<Vec<Value>, String> {
    refuse_unsupported(plan.config)?;
    check_name(&pod_name(plan.id))?;
    check_name(plan.namespace).map_err(|e| format!("namespace: {e}"))?;
    let mut out = vec![pod(plan)?];
    if !plan.config.network_enabled {
        out.push(network_policy(plan));
    }
    Ok(out)
}

fn pod(plan: &PodPlan<'_>) -> Result<Value, String> {
    let config = plan.config;
    let mut spec = json!({
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "restartPolicy": "Never",
        // A removed sandbox is killed at once, as `docker rm -f` kills it.
        "terminationGracePeriodSeconds": 0,
        "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
        "containers": [container(config)],
    });
    if let Some(image) = plan.agent_image {
        add_agent_init(&mut spec, image);
    }
    if let Some(runtime) = &config.runtime {
        check_name(runtime).map_err(|e| format!("runtime (runtimeClassName): {e}"))?;
        spec["runtimeClassName"] = json!(runtime);
    }
    if let Some(ttl) = plan.ttl {
        spec["activeDeadlineSeconds"] = json!(ttl.as_secs().max(1));
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(plan.id),
            "namespace": plan.namespace,
            "labels": labels(plan)?,
            "annotations": annotations(plan),
        },
        "spec": spec,
    }))
}

/// An init container that copies the agent out of `image` into a volume the sandbox's container
/// mounts read-only where the agent is started from. The image needs nothing but the binary:
/// `enclave-agent install` copies itself.
fn add_agent_init(spec: &mut Value, image: &str) {
    let amount = json!({ "cpu": "100m", "memory": "32Mi" });
    spec["volumes"] = json!([{ "name": AGENT_VOLUME, "emptyDir": { "sizeLimit": "64Mi" } }]);
    spec["initContainers"] = json!([{
        "name": AGENT_VOLUME,
        "image": image,
        "command": ["/enclave-agent", "install", format!("{AGENT_INSTALL_DIR}/enclave-agent")],
        "volumeMounts": [{ "name": AGENT_VOLUME, "mountPath": AGENT_INSTALL_DIR }],
        // Requests equal to limits keep the Pod `Guaranteed`.
        "resources": { "requests": amount.clone(), "limits": amount },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "capabilities": { "drop": ["ALL"] },
        },
    }]);
    spec["containers"][0]["volumeMounts"] =
        json!([{ "name": AGENT_VOLUME, "mountPath": AGENT_DIR, "readOnly": true }]);
}

fn container(config: &DockerSandboxConfig) -> Value {
    let mut container = json!({
        "name": CONTAINER,
        "image": config.image,
        // The image's own command on an open terminal, kept waiting, as on Docker; commands
        // run through exec.
        "stdin": true,
        "tty": true,
        "workingDir": config.working_dir,
        "resources": resources(config),
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "capabilities": { "drop": ["ALL"], "add": CAPABILITIES },
        },
    });
    if let Some(command) = config.command.as_ref().and_then(|c| c.argv().ok()) {
        container["command"] = json!(command);
    }
    if !config.env_vars.is_empty() {
        let env: Vec<Value> = config
            .env_vars
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
        container["env"] = Value::Array(env);
    }
    container
}

/// Requests equal to limits: the Pod is `Guaranteed`, so the scheduler places it where its
/// limits really fit and it is the last evicted.
fn resources(config: &DockerSandboxConfig) -> Value {
    let mut amounts = Map::new();
    let memory = config.memory_bytes();
    if memory > 0 {
        amounts.insert("memory".into(), json!(memory.to_string()));
    }
    if config.cpu_limit > 0.0 {
        let millis = (config.cpu_limit * 1000.0).round().max(1.0) as u64;
        amounts.insert("cpu".into(), json!(format!("{millis}m")));
    }
    json!({ "requests": amounts.clone(), "limits": amounts })
}

fn labels(plan: &PodPlan<'_>) -> Result<Map<String, Value>, String> {
    let mut labels = Map::new();
    let own = [
        ("enclave.id", plan.id),
        ("enclave.type", plan.sandbox_type.as_str()),
        ("enclave.owner", plan.owner),
    ];
    let extra = plan
        .extra_labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()));
    for (key, value) in own.into_iter().chain(extra) {
        check_label_key(key).map_err(|e| format!("label `{key}`: {e}"))?;
        check_label_value(value).map_err(|e| format!("label `{key}`: {e}"))?;
        labels.insert(key.to_string(), json!(value));
    }
    Ok(labels)
}

fn annotations(plan: &PodPlan<'_>) -> Map<String, Value> {
    let mut annotations = Map::new();
    annotations.insert("enclave.tools".into(), json!(plan.tools.join(",")));
    annotations.insert(
        "enclave.created".into(),
        json!(plan.created.to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    annotations.insert(
        "enclave.config".into(),
        json!(plan.config.to_wire().to_string()),
    );
    annotations
}

/// No traffic in or out. Enforced only where the cluster's network plugin enforces
/// NetworkPolicies (Calico, Cilium and most others do; kindnet before 1.30 and flannel alone do
/// not).
fn network_policy(plan: &PodPlan<'_>) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": network_policy_name(plan.id),
            "namespace": plan.namespace,
            "labels": { "enclave.id": plan.id },
        },
        "spec": {
            "podSelector": { "matchLabels": { "enclave.id": plan.id } },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [],
        },
    })
}

/// What a Pod cannot be made to do safely, or at all, said by field.
fn refuse_unsupported(config: &DockerSandboxConfig) -> Result<(), String> {
    let refusals = [
        (config.privileged, "privileged: privileged Pods are not made by the kubernetes backend"),
        (!config.volumes.is_empty(), "volumes: host mounts are not available on the kubernetes backend"),
        (!config.ports.is_empty(), "ports: published ports are not available on the kubernetes backend"),
        (
            config.network.as_deref().is_some_and(|n| n != "bridge" && n != "none"),
            "network: named networks are not available on the kubernetes backend (network_enabled is)",
        ),
        (!config.extra_hosts.is_empty(), "extra_hosts: not available on the kubernetes backend"),
    ];
    match refusals.iter().find(|(refused, _)| *refused) {
        Some((_, why)) => Err((*why).to_string()),
        None => Ok(()),
    }
}

/// A DNS-1123 label: what Pod, namespace and RuntimeClass names must be here.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a Kubernetes name (1 to 63 lowercase letters, digits or `-`, starting and ending with a letter or digit)"
        ))
    }
}

/// `[prefix/]name`: the prefix a DNS subdomain of at most 253 characters, the name as a value
/// below but not empty.
fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let ok = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|part| check_name(part).is_ok());
        if !ok {
            return Err(format!(
                "the key's prefix `{prefix}` is not a DNS subdomain"
            ));
        }
    }
    if name.is_empty() {
        return Err("the key's name is empty".into());
    }
    check_label_value(name).map_err(|_| {
        format!("the key `{key}` is not a Kubernetes label key (at most 63 letters, digits, `-`, `_` or `.` after an optional `prefix/`, starting and ending with a letter or digit)")
    })
}

/// At most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit;
/// or empty.
fn check_label_value(value: &str) -> Result<(), String> {
    let inner = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    let ok = value.is_empty()
        || (value.len() <= 63
            && value.bytes().all(inner)
            && value
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && value
                .bytes()
                .last()
                .is_some_and(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the value `{}` is not a Kubernetes label value (at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit)",
            value.escape_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan<'a>(
        config: &'a DockerSandboxConfig,
        tools: &'a [String],
        extra: &'a [(String, String)],
    ) -> PodPlan<'a> {
        PodPlan {
            id: "k3x9m2pa",
            namespace: "sandboxes",
            sandbox_type: SandboxType::Docker,
            config,
            tools,
            created: DateTime::parse_from_rfc3339("2026-11-30T04:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            owner: "0123456789abcdef",
            extra_labels: extra,
            ttl: None,
            agent_image: None,
        }
    }

    #[test]
    fn a_default_sandbox_is_a_locked_down_pod_without_network() {
        let config = DockerSandboxConfig {
            network_enabled: false,
            ..DockerSandboxConfig::default()
        };
        let tools = vec!["python_executor".to_string(), "shell_executor".to_string()];
        let made = manifests(&plan(&config, &tools, &[])).unwrap();
        insta::assert_snapshot!(
            "pod_without_network",
            serde_json::to_string_pretty(&made).unwrap()
        );
        let spec = &made[0]["spec"];
        assert_eq!(spec["automountServiceAccountToken"], false);
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let security = &spec["containers"][0]["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
        assert!(spec.get("activeDeadlineSeconds").is_none());
        assert_eq!(made[1]["kind"], "NetworkPolicy");
        assert_eq!(
            made[1]["spec"]["podSelector"]["matchLabels"]["enclave.id"],
            "k3x9m2pa"
        );
        assert_eq!(
            made[0]["metadata"]["annotations"]["enclave.tools"],
            "python_executor,shell_executor"
        );
    }

    #[test]
    fn limits_runtime_and_ttl_come_from_the_config() {
        let config = DockerSandboxConfig {
            memory_limit: "512m".into(),
            cpu_limit: 1.5,
            runtime: Some("gvisor".into()),
            network_enabled: true,
            ..DockerSandboxConfig::default()
        };
        let mut p = plan(&config, &[], &[]);
        p.ttl = Some(Duration::from_secs(3600));
        let made = manifests(&p).unwrap();
        assert_eq!(made.len(), 1, "a sandbox with network gets no policy");
        let spec = &made[0]["spec"];
        assert_eq!(spec["runtimeClassName"], "gvisor");
        assert_eq!(spec["activeDeadlineSeconds"], 3600);
        let resources = &spec["containers"][0]["resources"];
        assert_eq!(
            resources["limits"]["memory"],
            (512 * 1024 * 1024).to_string()
        );
        assert_eq!(resources["limits"]["cpu"], "1500m");
        assert_eq!(resources["requests"], resources["limits"]);
    }

    #[test]
    fn an_agent_image_is_an_init_container_filling_a_read_only_volume() {
        let config = DockerSandboxConfig::default();
        let mut p = plan(&config, &[], &[]);
        assert!(manifests(&p).unwrap()[0]["spec"]["initContainers"].is_null());
        p.agent_image = Some("registry.example/enclave-agent:1");
        let spec = &manifests(&p).unwrap()[0]["spec"];
        let init = &spec["initContainers"][0];
        assert_eq!(init["image"], "registry.example/enclave-agent:1");
        assert_eq!(
            init["command"],
            json!(["/enclave-agent", "install", "/.enclave-agent/enclave-agent"])
        );
        assert_eq!(init["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(init["resources"]["requests"], init["resources"]["limits"]);
        assert_eq!(spec["volumes"][0]["name"], init["volumeMounts"][0]["name"]);
        assert!(spec["volumes"][0]["emptyDir"].is_object());
        let mount = &spec["containers"][0]["volumeMounts"][0];
        assert_eq!(mount["name"], spec["volumes"][0]["name"]);
        assert_eq!(mount["mountPath"], AGENT_DIR);
        assert_eq!(
            mount["readOnly"], true,
            "the sandbox cannot replace its agent"
        );
    }

    #[test]
    fn what_a_pod_cannot_do_is_refused_by_field() {
        let privileged = DockerSandboxConfig {
            privileged: true,
            ..DockerSandboxConfig::default()
        };
        assert!(manifests(&plan(&privileged, &[], &[]))
            .unwrap_err()
            .starts_with("privileged:"));
        let runtime = DockerSandboxConfig {
            runtime: Some("Kata_Containers".into()),
            ..DockerSandboxConfig::default()
        };
        assert!(manifests(&plan(&runtime, &[], &[]))
            .unwrap_err()
            .starts_with("runtime"));
    }

    #[test]
    fn label_and_name_rules_are_the_api_servers() {
        for ok in ["enclave.id", "app", "example.com/app", "a-b_c.d"] {
            assert!(check_label_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/app",
            "Example..com/app",
            "-app",
            "a/b/",
            &"k".repeat(64),
        ] {
            assert!(check_label_key(bad).is_err(), "{bad}");
        }
        for ok in ["", "docker_notebook", "0123456789abcdef", &"v".repeat(63)] {
            assert!(check_label_value(ok).is_ok(), "{ok}");
        }
        for bad in ["a,b", "2026-11-30T04:00:00Z", "-x", "x-", &"v".repeat(64)] {
            assert!(check_label_value(bad).is_err(), "{bad}");
        }
        assert!(check_name("sandboxes").is_ok());
        assert!(check_name("Sandboxes").is_err());
        let extra = vec![("enclave-test".to_string(), "has space".to_string())];
        let config = DockerSandboxConfig::default();
        let err = manifests(&plan(&config, &[], &extra)).unwrap_err();
        assert!(err.starts_with("label `enclave-test`"), "{err}");
    }
}

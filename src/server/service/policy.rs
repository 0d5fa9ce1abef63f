//! What a remote caller may ask of this server's Docker engine. ms-enclave accepts any config
//! (privileged, `/` bind-mounted, host network: host takeover for any API client, reference
//! §8.1.2); a server refuses those unless its operator allowed them, naming the field.

use std::path::{Component, Path, PathBuf};

use crate::model::{parse_memory_limit, DockerSandboxConfig, VolcengineSandboxConfig};

use super::ServiceError;

/// The operator's limits. `Default` is the safe setting: nothing that reaches the host, and caps
/// that fit a small machine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Policy {
    /// `privileged: true` (root on the host, in effect).
    pub(crate) allow_privileged: bool,
    /// Host paths under which bind mounts are allowed (`volumes` keys that are host paths).
    pub(crate) allow_mounts: Vec<PathBuf>,
    /// Docker named volumes as `volumes` keys: they are shared by every tenant that names them.
    pub(crate) allow_named_volumes: bool,
    /// Networks allowed besides `bridge` and `none` (never needed with `network_enabled:false`).
    pub(crate) allow_networks: Vec<String>,
    /// Ports published on an address other than loopback.
    pub(crate) allow_public_ports: bool,
    pub(crate) max_memory_bytes: Option<i64>,
    pub(crate) max_cpus: Option<f64>,
    /// Cap on `pids_limit`; with a cap, `pids_limit: 0` (unlimited) is refused.
    pub(crate) max_pids: Option<i64>,
    /// Sandboxes one tenant may have at once (pool members included).
    pub(crate) max_sandboxes: Option<usize>,
    /// SandboxFusion services (`base_url`s) volcengine sandboxes may call; `*` allows any.
    /// Empty: no volcengine sandboxes, so no caller can make this server POST to a URL it
    /// chose (its network's services, a cloud metadata address).
    pub(crate) allow_volcengine: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow_privileged: false,
            allow_mounts: Vec::new(),
            allow_named_volumes: false,
            allow_networks: Vec::new(),
            allow_public_ports: false,
            max_memory_bytes: Some(8 << 30),
            max_cpus: Some(4.0),
            max_pids: Some(4096),
            max_sandboxes: Some(100),
            allow_volcengine: Vec::new(),
        }
    }
}

/// Networks any caller may use: Docker's default bridge, and no network at all.
const SAFE_NETWORKS: [&str; 2] = ["bridge", "none"];

impl Policy {
    /// The first thing in `config` this server does not allow, as a `ServiceError::Policy`.
    pub(crate) fn check(&self, config: &DockerSandboxConfig) -> Result<(), ServiceError> {
        self.check_privileged(config)?;
        self.check_volumes(config)?;
        self.check_network(config)?;
        self.check_ports(config)?;
        self.check_resources(config)
    }

    /// Refuses a volcengine sandbox whose `base_url` the operator did not allow.
    pub(crate) fn check_volcengine(
        &self,
        config: &VolcengineSandboxConfig,
    ) -> Result<(), ServiceError> {
        let url = config.base_url.as_deref().unwrap_or_default();
        let allowed = |a: &String| a == "*" || a.trim().trim_end_matches('/') == url;
        if self.allow_volcengine.iter().any(allowed) {
            return Ok(());
        }
        Err(refuse(
            "base_url",
            if self.allow_volcengine.is_empty() {
                "volcengine sandboxes are not allowed on this server (its operator allows \
                 services with --allow-volcengine URL)"
                    .to_string()
            } else {
                format!(
                    "`{url}` is not a service this server may call (its operator allows \
                     services with --allow-volcengine URL)"
                )
            },
        ))
    }

    /// Refuses a tenant's next sandbox when it already has `count` (made or being made).
    pub(crate) fn check_count(&self, count: usize, more: usize) -> Result<(), ServiceError> {
        match self.max_sandboxes {
            Some(max) if count + more > max => Err(refuse(
                "max_sandboxes",
                format!(
                    "this server allows {max} sandboxes per caller and you have {count}; \
                     delete some first (the operator sets the cap with --max-sandboxes)"
                ),
            )),
            _ => Ok(()),
        }
    }

    fn check_privileged(&self, config: &DockerSandboxConfig) -> Result<(), ServiceError> {
        if config.privileged && !self.allow_privileged {
            return Err(refuse(
                "privileged",
                "not allowed on this server (start it with --allow-privileged)",
            ));
        }
        Ok(())
    }

    fn check_volumes(&self, config: &DockerSandboxConfig) -> Result<(), ServiceError> {
        for host in config.volumes.keys() {
            if !host.starts_with('/') {
                if !self.allow_named_volumes {
                    return Err(refuse(
                        "volumes",
                        format!(
                            "named volume `{host}` is not allowed on this server: named volumes \
                             are shared by every caller (start it with --allow-named-volumes)"
                        ),
                    ));
                }
                continue;
            }
            if !self.mount_allowed(Path::new(host)) {
                return Err(refuse("volumes", self.mount_refusal(host)));
            }
        }
        Ok(())
    }

    fn mount_refusal(&self, host: &str) -> String {
        if self.allow_mounts.is_empty() {
            return format!(
                "host path `{host}` cannot be mounted: this server allows no bind mounts \
                 (start it with --allow-mount PREFIX)"
            );
        }
        let allowed: Vec<String> = self
            .allow_mounts
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!(
            "host path `{host}` is not under an allowed prefix ({}); \
             --allow-mount PREFIX allows more",
            allowed.join(", ")
        )
    }

    /// Under an allowed prefix, with no `..` to climb out, also once symlinks on the host are
    /// resolved (Docker resolves them when it mounts).
    fn mount_allowed(&self, host: &Path) -> bool {
        if host.components().any(|c| c == Component::ParentDir) {
            return false;
        }
        let under = |path: &Path| {
            self.allow_mounts.iter().any(|prefix| {
                path.starts_with(prefix)
                    || std::fs::canonicalize(prefix).is_ok_and(|p| path.starts_with(p))
            })
        };
        match std::fs::canonicalize(host) {
            Ok(real) => under(host) && under(&real),
            // Docker creates a missing bind source; nothing there can point elsewhere yet.
            Err(_) => under(host),
        }
    }

    fn check_network(&self, config: &DockerSandboxConfig) -> Result<(), ServiceError> {
        if !config.network_enabled {
            return Ok(());
        }
        let Some(network) = config.network.as_deref() else {
            return Ok(());
        };
        if SAFE_NETWORKS.contains(&network) || self.allow_networks.iter().any(|n| n == network) {
            return Ok(());
        }
        Err(refuse(
            "network",
            format!(
                "`{network}` is not allowed on this server: use \"bridge\" or \"none\", or set \
                 network_enabled to false (the operator allows more with --allow-network NAME)"
            ),
        ))
    }

    /// A bare host port binds 127.0.0.1 in enclave (`PortSpec::host_binding`), unlike
    /// ms-enclave's 0.0.0.0, so it passes; an explicit address other than loopback does not.
    fn check_ports(&self, config: &DockerSandboxConfig) -> Result<(), ServiceError> {
        if self.allow_public_ports {
            return Ok(());
        }
        for (container_port, spec) in &config.ports {
            let (ip, _) = spec
                .host_binding()
                .map_err(|why| refuse("ports", format!("port `{container_port}`: {why}")))?;
            let loopback = ip
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback());
            if !loopback {
                let shown = if ip.is_empty() { "every address" } else { &ip };
                return Err(refuse(
                    "ports",
                    format!(
                        "port `{container_port}` would be published on {shown}; this server \
                         publishes ports on 127.0.0.1 only (give a bare host port, or start it \
                         with --allow-public-ports)"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_resources(&self, config: &DockerSandboxConfig) -> Result<(), ServiceError> {
        if let Some(max) = self.max_memory_bytes {
            let asked = parse_memory_limit(&config.memory_limit)
                .map_err(|why| refuse("memory_limit", why))?;
            // 0 means no limit at all to the engine, so under a cap it is the largest ask.
            if asked == 0 || asked > max {
                let shown = if asked == 0 {
                    format!("{:?} (unlimited)", config.memory_limit)
                } else {
                    config.memory_limit.clone()
                };
                return Err(refuse(
                    "memory_limit",
                    format!(
                        "{shown} is above this server's cap of {} (--max-memory)",
                        human_bytes(max)
                    ),
                ));
            }
        }
        if let Some(max) = self.max_cpus {
            if config.cpu_limit > max {
                return Err(refuse(
                    "cpu_limit",
                    format!(
                        "{} is above this server's cap of {max} (--max-cpus)",
                        config.cpu_limit
                    ),
                ));
            }
        }
        if let Some(max) = self.max_pids {
            if config.pids_limit == 0 || config.pids_limit > max {
                let asked = if config.pids_limit == 0 {
                    "0 (unlimited)".to_string()
                } else {
                    config.pids_limit.to_string()
                };
                return Err(refuse(
                    "pids_limit",
                    format!("{asked} is above this server's cap of {max} (--max-pids)"),
                ));
            }
        }
        Ok(())
    }
}

fn refuse(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::Policy {
        field: field.to_string(),
        message: message.into(),
    }
}

fn human_bytes(bytes: i64) -> String {
    const UNITS: [(i64, &str); 3] = [(1 << 30, "g"), (1 << 20, "m"), (1 << 10, "k")];
    for (size, unit) in UNITS {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(value: serde_json::Value) -> DockerSandboxConfig {
        DockerSandboxConfig::from_value(value).unwrap()
    }

    fn refused_field(policy: &Policy, value: serde_json::Value) -> Option<(String, String)> {
        match policy.check(&config(value)) {
            Ok(()) => None,
            Err(ServiceError::Policy { field, message }) => Some((field, message)),
            Err(other) => panic!("not a policy error: {other}"),
        }
    }

    #[test]
    fn volcengine_services_must_be_allowed_by_the_operator() {
        let config =
            |url: &str| VolcengineSandboxConfig::from_value(json!({"base_url": url})).unwrap();
        let refused = |policy: &Policy, url: &str| match policy.check_volcengine(&config(url)) {
            Ok(()) => None,
            Err(ServiceError::Policy { field, message }) => Some((field, message)),
            Err(other) => panic!("not a policy error: {other}"),
        };
        let (field, message) = refused(&Policy::default(), "http://10.0.0.1").unwrap();
        assert_eq!(field, "base_url");
        assert!(message.contains("not allowed on this server"), "{message}");
        let policy = Policy {
            allow_volcengine: vec!["http://fusion:8080/".into()],
            ..Policy::default()
        };
        assert_eq!(refused(&policy, "http://fusion:8080/"), None);
        let (_, message) = refused(&policy, "http://169.254.169.254").unwrap();
        assert!(
            message.contains("`http://169.254.169.254` is not a service"),
            "{message}"
        );
        let any = Policy {
            allow_volcengine: vec!["*".into()],
            ..Policy::default()
        };
        assert_eq!(refused(&any, "http://anything"), None);
    }

    #[test]
    fn the_default_config_passes_the_default_policy() {
        assert_eq!(refused_field(&Policy::default(), json!({})), None);
        assert_eq!(
            refused_field(
                &Policy::default(),
                json!({"network": "none", "ports": {"80/tcp": 8080, "81/tcp": ["127.0.0.1", 0]}})
            ),
            None
        );
    }

    #[test]
    fn each_refusal_names_its_field() {
        let policy = Policy::default();
        let cases = [
            (
                json!({"privileged": true}),
                "privileged",
                "--allow-privileged",
            ),
            (
                json!({"volumes": {"/": {"bind": "/host"}}}),
                "volumes",
                "--allow-mount",
            ),
            (
                json!({"volumes": {"shared": {"bind": "/data"}}}),
                "volumes",
                "named volume",
            ),
            (json!({"network": "host"}), "network", "`host`"),
            (
                json!({"ports": {"80/tcp": ["0.0.0.0", 8080]}}),
                "ports",
                "0.0.0.0",
            ),
            (
                json!({"ports": {"80/tcp": ":8080"}}),
                "ports",
                "every address",
            ),
            (json!({"memory_limit": "64g"}), "memory_limit", "8g"),
            // 0 is no limit at all to the engine: it must not slip under the cap.
            (json!({"memory_limit": "0"}), "memory_limit", "unlimited"),
            (json!({"memory_limit": "0m"}), "memory_limit", "unlimited"),
            (json!({"cpu_limit": 16}), "cpu_limit", "--max-cpus"),
            (json!({"pids_limit": 0}), "pids_limit", "unlimited"),
            (json!({"pids_limit": 100000}), "pids_limit", "4096"),
        ];
        for (value, field, words) in cases {
            let (got, message) = refused_field(&policy, value.clone())
                .unwrap_or_else(|| panic!("{value} was allowed"));
            assert_eq!(got, field, "{value}");
            assert!(message.contains(words), "{value}: {message}");
        }
    }

    #[test]
    fn the_message_reads_field_first() {
        let err = Policy::default()
            .check(&config(json!({"privileged": true})))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "privileged: not allowed on this server (start it with --allow-privileged)"
        );
    }

    #[test]
    fn network_disabled_makes_any_network_moot() {
        let value = json!({"network": "host", "network_enabled": false});
        assert_eq!(refused_field(&Policy::default(), value), None);
        let policy = Policy {
            allow_networks: vec!["host".into()],
            ..Policy::default()
        };
        assert_eq!(refused_field(&policy, json!({"network": "host"})), None);
    }

    #[test]
    fn mounts_must_stay_under_an_allowed_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("data");
        std::fs::create_dir(&allowed).unwrap();
        let policy = Policy {
            allow_mounts: vec![allowed.clone()],
            ..Policy::default()
        };
        let mount = |host: &Path| json!({"volumes": {host.display().to_string(): {"bind": "/d"}}});
        assert_eq!(refused_field(&policy, mount(&allowed.join("x"))), None);
        assert_eq!(refused_field(&policy, mount(&allowed)), None);
        // A sibling sharing the prefix's text is not under it.
        let sibling = dir.path().join("data2");
        assert!(refused_field(&policy, mount(&sibling)).is_some());
        let climb = allowed.join("..").join("etc");
        assert!(refused_field(&policy, mount(&climb)).is_some());
        // A symlink under the prefix that points out of it.
        let link = allowed.join("out");
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        let (field, message) = refused_field(&policy, mount(&link)).unwrap();
        assert_eq!(field, "volumes");
        assert!(message.contains("not under an allowed prefix"), "{message}");
    }

    #[test]
    fn public_ports_and_privileged_can_be_allowed() {
        let policy = Policy {
            allow_privileged: true,
            allow_public_ports: true,
            max_memory_bytes: None,
            max_cpus: None,
            max_pids: None,
            ..Policy::default()
        };
        let value = json!({
            "privileged": true,
            "ports": {"80/tcp": ["0.0.0.0", 8080]},
            "memory_limit": "64g", "cpu_limit": 16, "pids_limit": 0
        });
        assert_eq!(refused_field(&policy, value), None);
    }

    #[test]
    fn the_sandbox_count_is_capped() {
        let policy = Policy {
            max_sandboxes: Some(2),
            ..Policy::default()
        };
        assert!(policy.check_count(1, 1).is_ok());
        let err = policy.check_count(2, 1).unwrap_err();
        assert!(err.to_string().starts_with("max_sandboxes: "), "{err}");
        assert!(Policy {
            max_sandboxes: None,
            ..policy
        }
        .check_count(1000, 5)
        .is_ok());
    }
}

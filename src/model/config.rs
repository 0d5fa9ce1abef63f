//! `DockerSandboxConfig`: ms-enclave's config model, plus enclave's safety fields.

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::flex;

pub const DEFAULT_PIDS_LIMIT: i64 = 1024;

/// `tools_config`: a list of names or a map of name to per-tool options; kept as the map.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ToolsConfig(pub IndexMap<String, Map<String, Value>>);

impl<'de> Deserialize<'de> for ToolsConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<String>),
            Map(IndexMap<String, Option<Map<String, Value>>>),
        }
        let map = match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "tools_config must be a list of tool names or an object of name -> options",
            )
        })? {
            Raw::List(names) => names.into_iter().map(|n| (n, Map::new())).collect(),
            Raw::Map(m) => m
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect(),
        };
        Ok(ToolsConfig(map))
    }
}

/// A bind mount, as ms-enclave writes it: `{host_path: {"bind": "/in/container", "mode": "ro"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub bind: String,
    #[serde(default = "default_mode")]
    pub mode: String,
}

fn default_mode() -> String {
    "rw".into()
}

/// A published port's host side: a port (bound to 127.0.0.1) or `[host_ip, host_port]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortSpec {
    Port(i64),
    Text(String),
    Bound(String, i64),
}

impl PortSpec {
    /// Host address and port. A bare port binds loopback only: exposing wider must be asked for.
    pub fn host_binding(&self) -> Result<(String, String), String> {
        match self {
            PortSpec::Port(p) => Ok(("127.0.0.1".into(), p.to_string())),
            PortSpec::Text(s) => match s.rsplit_once(':') {
                Some((ip, port)) => Ok((ip.trim_matches(['[', ']']).to_string(), port.to_string())),
                None => Ok(("127.0.0.1".into(), s.clone())),
            },
            PortSpec::Bound(ip, p) => Ok((ip.clone(), p.to_string())),
        }
    }
}

/// ms-enclave's `DockerSandboxConfig` (reference §2.1–2.2) with the same names and defaults.
/// Unknown keys are ignored, as pydantic does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DockerSandboxConfig {
    #[serde(deserialize_with = "flex::int")]
    pub timeout: i64,
    pub tools_config: ToolsConfig,
    pub working_dir: String,
    pub env_vars: IndexMap<String, String>,
    pub resource_limits: Map<String, Value>,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    pub volumes: IndexMap<String, VolumeSpec>,
    pub ports: IndexMap<String, PortSpec>,
    pub network: Option<String>,
    pub extra_hosts: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub memory_limit: String,
    #[serde(deserialize_with = "flex::float")]
    pub cpu_limit: f64,
    pub network_enabled: bool,
    pub privileged: bool,
    pub remove_on_exit: bool,
    pub pull_progress: bool,
    #[serde(deserialize_with = "flex::float")]
    pub pull_progress_interval: f64,
    #[serde(deserialize_with = "flex::int")]
    pub docker_executor_workers: i64,
    // enclave's own fields; ms-enclave clients ignore them.
    /// Maximum number of processes in the sandbox (fork-bomb guard); 0 or negative = unlimited.
    #[serde(deserialize_with = "flex::int")]
    pub pids_limit: i64,
    /// OCI runtime, e.g. `runsc` for gVisor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Extra container labels (`enclave.*` keys are reserved).
    pub labels: IndexMap<String, String>,
}

/// The container command: a string (shell-split) or an argv list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Command {
    Text(String),
    Argv(Vec<String>),
}

impl Default for DockerSandboxConfig {
    fn default() -> Self {
        DockerSandboxConfig {
            timeout: 30,
            tools_config: ToolsConfig::default(),
            working_dir: "/sandbox".into(),
            env_vars: IndexMap::new(),
            resource_limits: Map::new(),
            image: "python:3.11-slim".into(),
            command: None,
            volumes: IndexMap::new(),
            ports: IndexMap::new(),
            network: Some("bridge".into()),
            extra_hosts: IndexMap::new(),
            platform: None,
            memory_limit: "4g".into(),
            cpu_limit: 2.0,
            network_enabled: true,
            privileged: false,
            remove_on_exit: true,
            pull_progress: false,
            pull_progress_interval: 3.0,
            docker_executor_workers: 8,
            pids_limit: DEFAULT_PIDS_LIMIT,
            runtime: None,
            labels: IndexMap::new(),
        }
    }
}

impl DockerSandboxConfig {
    /// Parses an ms-enclave config JSON; `null` and `{}` give the defaults.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            // serde_json's message ends with "at line L column C".
            format!("malformed JSON: {e}")
        })?;
        Self::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Self, String> {
        let config: Self = match value {
            Value::Null => Self::default(),
            Value::Object(_) => serde_json::from_value(value).map_err(|e| e.to_string())?,
            other => {
                return Err(format!(
                    "the config must be a JSON object, got {}",
                    json_kind(&other)
                ))
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// The checks ms-enclave makes, plus the ones a Docker create would fail on later.
    pub fn validate(&self) -> Result<(), String> {
        parse_memory_limit(&self.memory_limit)?;
        if self.cpu_limit.is_nan() || self.cpu_limit <= 0.0 || !self.cpu_limit.is_finite() {
            return Err(format!(
                "cpu_limit must be greater than 0, got {}",
                self.cpu_limit
            ));
        }
        if self.image.trim().is_empty() {
            return Err("image must not be empty".into());
        }
        if !self.working_dir.starts_with('/') {
            return Err(format!(
                "working_dir must be an absolute path, got `{}`",
                self.working_dir
            ));
        }
        for (host, spec) in &self.volumes {
            if spec.mode != "rw" && spec.mode != "ro" {
                return Err(format!(
                    "volume `{host}`: mode must be \"rw\" or \"ro\", got \"{}\"",
                    spec.mode
                ));
            }
            if !spec.bind.starts_with('/') {
                return Err(format!(
                    "volume `{host}`: bind must be an absolute path in the container, got `{}`",
                    spec.bind
                ));
            }
        }
        for (container_port, spec) in &self.ports {
            validate_container_port(container_port)?;
            let (_, host_port) = spec.host_binding()?;
            if !host_port.is_empty() && host_port.parse::<u16>().is_err() {
                return Err(format!(
                    "port `{container_port}`: host port must be 0-65535, got `{host_port}`"
                ));
            }
        }
        for key in self.labels.keys() {
            if key.starts_with("enclave.") {
                return Err(format!("label `{key}`: the `enclave.` prefix is reserved"));
            }
        }
        Ok(())
    }

    /// The config as ms-enclave's `SandboxInfo.config` shows it: null fields left out.
    pub fn to_wire(&self) -> Value {
        let mut value = serde_json::to_value(self).expect("config serialises");
        if let Value::Object(map) = &mut value {
            map.retain(|_, v| !v.is_null());
        }
        value
    }

    pub fn memory_bytes(&self) -> i64 {
        parse_memory_limit(&self.memory_limit).unwrap_or(0)
    }

    pub fn tool_names(&self) -> Vec<String> {
        self.tools_config.0.keys().cloned().collect()
    }
}

fn validate_container_port(spec: &str) -> Result<(), String> {
    let (port, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let ok_port = port.parse::<u16>().map(|p| p > 0).unwrap_or(false);
    let ok_proto = matches!(proto, "tcp" | "udp" | "sctp");
    if ok_port && ok_proto {
        Ok(())
    } else {
        Err(format!(
            "port `{spec}`: expected a container port like `8080` or `8080/tcp`"
        ))
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Bytes for ms-enclave's `memory_limit` format `^\d+[kmgKMG]?$` (`0` = unlimited).
pub fn parse_memory_limit(text: &str) -> Result<i64, String> {
    let err = || {
        format!(
            "memory_limit `{text}` is not valid: use a whole number with an optional k, m or g \
             suffix, e.g. 512m or 2g"
        )
    };
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], Some(c.to_ascii_lowercase())),
        _ => (text, None),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let n: i64 = digits.parse().map_err(|_| err())?;
    let factor = match unit {
        None => 1,
        Some('k') => 1 << 10,
        Some('m') => 1 << 20,
        Some('g') => 1 << 30,
        Some(_) => return Err(err()),
    };
    n.checked_mul(factor).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn memory_limits_follow_ms_enclave_regex() {
        assert_eq!(parse_memory_limit("512m"), Ok(512 << 20));
        assert_eq!(parse_memory_limit("1G"), Ok(1 << 30));
        assert_eq!(parse_memory_limit("100"), Ok(100));
        assert_eq!(parse_memory_limit("0"), Ok(0));
        for bad in ["1.5g", "4gb", "", "g", "-1m", "12t"] {
            assert!(parse_memory_limit(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn defaults_match_ms_enclave() {
        let c = DockerSandboxConfig::from_json("{}").unwrap();
        assert_eq!(c.image, "python:3.11-slim");
        assert_eq!(c.memory_limit, "4g");
        assert_eq!(c.cpu_limit, 2.0);
        assert_eq!(c.working_dir, "/sandbox");
        assert_eq!(c.network.as_deref(), Some("bridge"));
        assert!(c.network_enabled && c.remove_on_exit && !c.privileged);
        assert_eq!(c.pids_limit, DEFAULT_PIDS_LIMIT);
        assert_eq!(DockerSandboxConfig::from_json("null").unwrap(), c);
    }

    #[test]
    fn tools_config_accepts_list_or_map() {
        let a = DockerSandboxConfig::from_json(r#"{"tools_config":["python_executor"]}"#).unwrap();
        let b =
            DockerSandboxConfig::from_json(r#"{"tools_config":{"python_executor":{}}}"#).unwrap();
        assert_eq!(a.tools_config, b.tools_config);
        assert!(DockerSandboxConfig::from_json(r#"{"tools_config":5}"#)
            .unwrap_err()
            .contains("tools_config"));
    }

    #[test]
    fn unknown_keys_ignored_and_integral_floats_accepted() {
        let c = DockerSandboxConfig::from_json(
            r#"{"imgae":"x","timeout":60.0,"docker_executor_workers":"4","cpu_limit":1}"#,
        )
        .unwrap();
        assert_eq!(c.image, "python:3.11-slim");
        assert_eq!(c.timeout, 60);
        assert_eq!(c.docker_executor_workers, 4);
        assert!(DockerSandboxConfig::from_json(r#"{"timeout":60.5}"#).is_err());
    }

    #[test]
    fn invalid_values_are_refused_with_the_field_named() {
        let e = DockerSandboxConfig::from_json(r#"{"memory_limit":"4gb"}"#).unwrap_err();
        assert!(e.contains("memory_limit"), "{e}");
        let e = DockerSandboxConfig::from_json(r#"{"cpu_limit":0}"#).unwrap_err();
        assert!(e.contains("cpu_limit"), "{e}");
        let e = DockerSandboxConfig::from_json(r#"{"volumes":{"/h":{"bind":"/c","mode":"rx"}}}"#)
            .unwrap_err();
        assert!(e.contains("mode"), "{e}");
        let e = DockerSandboxConfig::from_json("[1]").unwrap_err();
        assert!(e.contains("JSON object"), "{e}");
        let e = DockerSandboxConfig::from_json("{\n\"image\": }").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn ports_accept_ms_enclave_shapes_and_default_to_loopback() {
        let c = DockerSandboxConfig::from_value(json!({
            "ports": {"80/tcp": ["0.0.0.0", 8080], "81": 8081, "82/tcp": "8082"}
        }))
        .unwrap();
        let b: Vec<_> = c
            .ports
            .values()
            .map(|p| p.host_binding().unwrap())
            .collect();
        assert_eq!(b[0], ("0.0.0.0".into(), "8080".into()));
        assert_eq!(b[1], ("127.0.0.1".into(), "8081".into()));
        assert_eq!(b[2], ("127.0.0.1".into(), "8082".into()));
    }

    #[test]
    fn wire_form_omits_nulls_and_keeps_field_order() {
        let wire = DockerSandboxConfig::default().to_wire();
        let keys: Vec<_> = wire.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            &keys[..6],
            [
                "timeout",
                "tools_config",
                "working_dir",
                "env_vars",
                "resource_limits",
                "image"
            ]
        );
        assert!(!keys.contains(&"command".to_string()));
        assert!(!keys.contains(&"platform".to_string()));
    }
}

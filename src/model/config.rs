//! `DockerSandboxConfig`: ms-enclave's config model, plus enclave's safety fields.

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::{flex, image_ref};

pub const DEFAULT_PIDS_LIMIT: i64 = 1024;

/// The image a `docker` sandbox runs when the config names none.
pub const DEFAULT_IMAGE: &str = "python:3.11-slim";

/// The image a `docker_notebook` sandbox runs when the config names none: enclave builds it from
/// the Dockerfile it carries when the engine lacks it (docs/notebook.md).
/// `ENCLAVE_NOTEBOOK_IMAGE` names another.
pub const DEFAULT_NOTEBOOK_IMAGE: &str = "enclave-notebook:1";

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
    /// Maximum number of processes in the sandbox (fork-bomb guard); 0 = unlimited.
    #[serde(deserialize_with = "flex::int")]
    pub pids_limit: i64,
    /// OCI runtime, e.g. `runsc` for gVisor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Extra container labels (`enclave.*` keys are reserved).
    pub labels: IndexMap<String, String>,
    // ms-enclave's `DockerNotebookConfig` fields (docker_notebook sandboxes only).
    /// The address enclave reaches the kernel gateway at [default: 127.0.0.1]. The gateway's
    /// port is published on 127.0.0.1 only, whatever this says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The host port for the gateway; absent (or taken): a free port the engine picks.
    #[serde(
        deserialize_with = "flex::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<i64>,
    /// The gateway's auth token; absent: a random one per sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The container command: a string (split as a POSIX shell would, as docker-py does for
/// ms-enclave) or an argv list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Command {
    Text(String),
    Argv(Vec<String>),
}

impl Command {
    /// The argv the container runs.
    pub fn argv(&self) -> Result<Vec<String>, String> {
        let argv = match self {
            Command::Argv(argv) => argv.clone(),
            Command::Text(text) => shell_words::split(text)
                .map_err(|e| format!("command `{text}` cannot be split into words: {e}"))?,
        };
        if argv.first().is_none_or(String::is_empty) {
            return Err("command must not be empty".into());
        }
        Ok(argv)
    }
}

impl Default for DockerSandboxConfig {
    fn default() -> Self {
        DockerSandboxConfig {
            timeout: 30,
            tools_config: ToolsConfig::default(),
            working_dir: "/sandbox".into(),
            env_vars: IndexMap::new(),
            resource_limits: Map::new(),
            image: DEFAULT_IMAGE.into(),
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
            host: None,
            port: None,
            token: None,
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

    /// The checks ms-enclave makes, plus every check an engine would otherwise make later (or
    /// not at all), each naming the field.
    pub fn validate(&self) -> Result<(), String> {
        parse_memory_limit(&self.memory_limit)?;
        if self.cpu_limit.is_nan() || self.cpu_limit <= 0.0 || !self.cpu_limit.is_finite() {
            return Err(format!(
                "cpu_limit must be greater than 0, got {}",
                self.cpu_limit
            ));
        }
        image_ref::check(&self.image)
            .map_err(|why| format!("image `{}` is not a valid reference: {why}", self.image))?;
        if !self.working_dir.starts_with('/') {
            return Err(format!(
                "working_dir must be an absolute path, got `{}`",
                self.working_dir
            ));
        }
        if let Some(command) = &self.command {
            command.argv()?;
        }
        if self.pids_limit < 0 {
            return Err(format!(
                "pids_limit must be 0 (unlimited) or a positive number of processes, got {}",
                self.pids_limit
            ));
        }
        self.validate_env()?;
        self.validate_volumes()?;
        self.validate_ports()?;
        self.validate_extra_hosts()?;
        self.validate_labels()?;
        self.validate_notebook()
    }

    fn validate_notebook(&self) -> Result<(), String> {
        if let Some(host) = &self.host {
            if host.parse::<std::net::IpAddr>().is_err() && !is_hostname(host) {
                return Err(format!(
                    "host `{}` is not an IP address or a host name",
                    host.escape_default()
                ));
            }
        }
        if let Some(port) = self.port {
            if !(0..=65535).contains(&port) {
                return Err(format!("port must be 0-65535 (0: a free port), got {port}"));
            }
        }
        if let Some(token) = &self.token {
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(
                    "token must be non-empty printable ASCII without spaces (it travels in an \
                     HTTP header)"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// What a sandbox of `kind` needs beyond the config it was given: a notebook sandbox runs the
    /// notebook image when the config names the docker default (which has no kernel gateway),
    /// and has a network (ms-enclave forces it on: the gateway's port is published on it).
    pub fn apply_type_defaults(&mut self, kind: super::SandboxType, notebook_image: &str) {
        if kind != super::SandboxType::DockerNotebook {
            return;
        }
        if self.image == DEFAULT_IMAGE {
            self.image = notebook_image.to_string();
        }
        self.network_enabled = true;
        if self.network.as_deref().is_none_or(|n| n == "none") {
            self.network = Some("bridge".into());
        }
    }

    fn validate_env(&self) -> Result<(), String> {
        for (key, value) in &self.env_vars {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(format!(
                    "env_vars: `{}` is not a variable name (it must be non-empty, without `=`)",
                    key.escape_default()
                ));
            }
            if value.contains('\0') {
                return Err(format!(
                    "env_vars: the value of `{key}` contains a NUL byte"
                ));
            }
        }
        Ok(())
    }

    fn validate_volumes(&self) -> Result<(), String> {
        for (host, spec) in &self.volumes {
            if !host.starts_with('/') && !is_volume_name(host) {
                return Err(format!(
                    "volume `{host}`: the host side must be an absolute path or a volume name"
                ));
            }
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
        Ok(())
    }

    fn validate_ports(&self) -> Result<(), String> {
        for (container_port, spec) in &self.ports {
            validate_container_port(container_port)?;
            let (ip, host_port) = spec.host_binding()?;
            if !host_port.is_empty() && host_port.parse::<u16>().is_err() {
                return Err(format!(
                    "port `{container_port}`: host port must be 0-65535, got `{host_port}`"
                ));
            }
            if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
                return Err(format!(
                    "port `{container_port}`: `{ip}` is not an IP address to bind"
                ));
            }
        }
        Ok(())
    }

    fn validate_extra_hosts(&self) -> Result<(), String> {
        for (host, address) in &self.extra_hosts {
            if !is_hostname(host) {
                return Err(format!(
                    "extra_hosts: `{}` is not a host name (letters, digits, `-` and `.`)",
                    host.escape_default()
                ));
            }
            if address != "host-gateway" && address.parse::<std::net::IpAddr>().is_err() {
                return Err(format!(
                    "extra_hosts: the address of `{host}` must be an IP address or \"host-gateway\", got `{}`",
                    address.escape_default()
                ));
            }
        }
        Ok(())
    }

    fn validate_labels(&self) -> Result<(), String> {
        for (key, value) in &self.labels {
            if key.trim().is_empty() {
                return Err("labels: a label key must not be empty".into());
            }
            if key.starts_with("enclave.") {
                return Err(format!("label `{key}`: the `enclave.` prefix is reserved"));
            }
            if key.contains('\0') || value.contains('\0') {
                return Err(format!(
                    "label `{}`: contains a NUL byte",
                    key.escape_default()
                ));
            }
        }
        Ok(())
    }

    /// Settings that are valid but give up isolation, worth a word when a sandbox is made.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.network_enabled {
            match self.network.as_deref() {
                Some("host") => warnings.push(
                    "network `host`: the sandbox shares the host's network, including every \
                     service listening on its loopback"
                        .to_string(),
                ),
                Some(n) if n.starts_with("container:") => warnings.push(format!(
                    "network `{n}`: the sandbox shares that container's network"
                )),
                _ => {}
            }
        }
        if self.privileged {
            warnings.push(
                "privileged: the sandbox gets the host's devices and every capability".into(),
            );
        }
        warnings
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
    let ok_port = port.parse::<u16>().is_ok_and(|p| p > 0);
    let ok_proto = matches!(proto, "tcp" | "udp" | "sctp");
    if ok_port && ok_proto {
        Ok(())
    } else {
        Err(format!(
            "port `{spec}`: expected a container port like `8080` or `8080/tcp`"
        ))
    }
}

/// A name for `/etc/hosts`: dot-separated labels of letters, digits and `-`.
fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// A named volume, as Docker spells them: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn is_volume_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
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
    fn a_string_command_is_split_as_a_shell_would() {
        let c = DockerSandboxConfig::from_value(json!({
            "command": "sh -c 'trap \"\" TERM; sleep 1000' \"a b\""
        }))
        .unwrap();
        assert_eq!(
            c.command.unwrap().argv().unwrap(),
            ["sh", "-c", "trap \"\" TERM; sleep 1000", "a b"]
        );
        let e = DockerSandboxConfig::from_value(json!({"command": "sh -c 'unclosed"})).unwrap_err();
        assert!(
            e.contains("command") && e.contains("cannot be split"),
            "{e}"
        );
        let e = DockerSandboxConfig::from_value(json!({"command": []})).unwrap_err();
        assert!(e.contains("command must not be empty"), "{e}");
    }

    #[test]
    fn fields_an_engine_would_misread_are_refused_by_name() {
        for (config, needle) in [
            (json!({"pids_limit": -5}), "pids_limit"),
            (
                json!({"extra_hosts": {"a\nb": "1.2.3.4"}}),
                "extra_hosts: `a\\nb`",
            ),
            (
                json!({"extra_hosts": {"db": "not-an-ip"}}),
                "extra_hosts: the address of `db`",
            ),
            (json!({"env_vars": {"A=B": "1"}}), "env_vars: `A=B`"),
            (json!({"env_vars": {"": "1"}}), "env_vars"),
            (json!({"labels": {"": "x"}}), "labels: a label key"),
            (
                json!({"image": "Bad Image"}),
                "image `Bad Image` is not a valid reference",
            ),
            (
                json!({"volumes": {"./rel": {"bind": "/x"}}}),
                "volume `./rel`",
            ),
            (
                json!({"ports": {"80": ["nope", 8080]}}),
                "`nope` is not an IP address",
            ),
        ] {
            let e = DockerSandboxConfig::from_value(config.clone()).unwrap_err();
            assert!(e.contains(needle), "{config}: {e}");
        }
        let ok = DockerSandboxConfig::from_value(json!({
            "extra_hosts": {"db.internal": "10.0.0.2", "host.docker.internal": "host-gateway"},
            "volumes": {"named_vol": {"bind": "/data"}},
            "pids_limit": 0
        }));
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn isolation_loss_is_worth_a_warning() {
        let c = DockerSandboxConfig::from_value(json!({"network": "host"})).unwrap();
        assert!(c.warnings()[0].contains("network `host`"));
        let c =
            DockerSandboxConfig::from_value(json!({"network": "host", "network_enabled": false}))
                .unwrap();
        assert!(c.warnings().is_empty());
        assert!(DockerSandboxConfig::default().warnings().is_empty());
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
    fn notebook_fields_are_optional_and_checked() {
        let c = DockerSandboxConfig::from_value(json!({
            "host": "127.0.0.1", "port": 8888.0, "token": null
        }))
        .unwrap();
        assert_eq!(
            (c.host.as_deref(), c.port, c.token),
            (Some("127.0.0.1"), Some(8888), None)
        );
        assert!(!DockerSandboxConfig::default()
            .to_wire()
            .as_object()
            .unwrap()
            .contains_key("port"));
        for (config, needle) in [
            (json!({"port": 70000}), "port must be 0-65535"),
            (json!({"host": "a b"}), "host `a b`"),
            (json!({"token": "with space"}), "token must be"),
        ] {
            let e = DockerSandboxConfig::from_value(config.clone()).unwrap_err();
            assert!(e.contains(needle), "{config}: {e}");
        }
    }

    #[test]
    fn a_notebook_sandbox_gets_the_notebook_image_and_a_network() {
        use crate::model::SandboxType;
        let mut c = DockerSandboxConfig {
            network_enabled: false,
            ..Default::default()
        };
        c.apply_type_defaults(SandboxType::DockerNotebook, "nb:1");
        assert_eq!(c.image, "nb:1");
        assert!(c.network_enabled);
        let mut own = DockerSandboxConfig {
            image: "mine:2".into(),
            ..Default::default()
        };
        own.apply_type_defaults(SandboxType::DockerNotebook, "nb:1");
        assert_eq!(own.image, "mine:2");
        let mut docker = DockerSandboxConfig::default();
        docker.apply_type_defaults(SandboxType::Docker, "nb:1");
        assert_eq!(docker.image, DEFAULT_IMAGE);
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

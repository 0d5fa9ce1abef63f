//! The flags that describe a sandbox, shared by `create` and `run`, and how they layer over an
//! ms-enclave config file.

use std::path::Path;

use anyhow::Result;
use clap::Args;

use super::input::read_source;
use crate::error::Error;
use crate::model::{
    parse_env_entry, parse_memory_limit, DockerSandboxConfig, PortSpec, VolumeSpec,
};

#[derive(Debug, Args, Default)]
pub(crate) struct SandboxArgs {
    /// Image to run [default: python:3.11-slim]
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Enable a tool (repeatable), e.g. python_executor
    #[arg(long = "tool", value_name = "NAME")]
    pub tools: Vec<String>,
    /// Memory limit, e.g. 512m or 2g (0 = unlimited) [default: 4g]
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit in cores, e.g. 1.5 [default: 2]
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Environment variable (repeatable); KEY alone copies it from here
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Bind mount a host path (repeatable)
    #[arg(long = "volume", value_name = "HOST:CTR[:ro]")]
    pub volumes: Vec<String>,
    /// Publish a port; binds 127.0.0.1 unless an address is given (repeatable)
    #[arg(short = 'p', long = "port", value_name = "[IP:]HOST:CTR")]
    pub ports: Vec<String>,
    /// No network at all
    #[arg(long)]
    pub no_network: bool,
    /// Working directory in the sandbox [default: /sandbox]
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// OCI runtime, e.g. runsc
    #[arg(long, value_name = "NAME")]
    pub runtime: Option<String>,
    /// Container label (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Maximum number of processes (0 = unlimited) [default: 1024]
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<i64>,
    /// Run privileged (gives the sandbox the host's devices; only when you mean it)
    #[arg(long)]
    pub privileged: bool,
    /// An ms-enclave sandbox config (JSON file, or - for stdin); flags override it
    #[arg(long, value_name = "FILE|-")]
    pub config: Option<String>,
}

impl SandboxArgs {
    /// Defaults < config file < flags. Everything is checked here, before any side effect.
    pub(crate) fn to_config(&self) -> Result<DockerSandboxConfig> {
        let mut config = match &self.config {
            Some(source) => read_config(source)?,
            None => DockerSandboxConfig::default(),
        };
        self.apply_flags(&mut config)
            .map_err(Error::InvalidConfig)?;
        config.validate().map_err(Error::InvalidConfig)?;
        Ok(config)
    }

    fn apply_flags(&self, config: &mut DockerSandboxConfig) -> Result<(), String> {
        if let Some(image) = &self.image {
            config.image = image.clone();
        }
        for tool in &self.tools {
            config.tools_config.0.entry(tool.clone()).or_default();
        }
        if let Some(memory) = &self.memory {
            parse_memory_limit(memory)?;
            config.memory_limit = memory.clone();
        }
        if let Some(cpus) = self.cpus {
            config.cpu_limit = cpus;
        }
        for entry in &self.env {
            let (key, value) = parse_env(entry)?;
            config.env_vars.insert(key, value);
        }
        for volume in &self.volumes {
            let (host, spec) = parse_volume(volume)?;
            config.volumes.insert(host, spec);
        }
        for port in &self.ports {
            let (container, spec) = parse_port(port)?;
            config.ports.insert(container, spec);
        }
        if self.no_network {
            config.network_enabled = false;
        }
        if let Some(dir) = &self.workdir {
            config.working_dir = dir.clone();
        }
        if let Some(runtime) = &self.runtime {
            config.runtime = Some(runtime.clone());
        }
        for label in &self.labels {
            let (key, value) = label
                .split_once('=')
                .ok_or_else(|| format!("label `{label}`: expected KEY=VALUE"))?;
            config.labels.insert(key.to_string(), value.to_string());
        }
        if let Some(pids) = self.pids_limit {
            config.pids_limit = pids;
        }
        if self.privileged {
            config.privileged = true;
        }
        Ok(())
    }
}

fn read_config(source: &str) -> Result<DockerSandboxConfig> {
    let (text, name) = read_source(source, false, "config").map_err(Error::InvalidConfig)?;
    DockerSandboxConfig::from_json(&text)
        .map_err(|e| Error::InvalidConfig(format!("{name}: {e}")).into())
}

/// `KEY=VALUE`, or `KEY` alone to copy the variable from our environment.
pub(crate) fn parse_env(entry: &str) -> Result<(String, String), String> {
    if entry.contains('=') {
        let (key, value) = parse_env_entry(entry)?;
        return Ok((key.to_string(), value.to_string()));
    }
    // The key alone is checked as it would be with a value.
    parse_env_entry(&format!("{entry}="))
        .map_err(|_| format!("env `{}`: expected KEY=VALUE", entry.escape_debug()))?;
    Ok((entry.to_string(), std::env::var(entry).unwrap_or_default()))
}

/// `HOST:CTR[:ro|rw]`; a relative host path is taken from the current directory.
fn parse_volume(entry: &str) -> Result<(String, VolumeSpec), String> {
    let parts: Vec<&str> = entry.split(':').collect();
    let (host, bind, mode) = match parts.as_slice() {
        [h, c] => (*h, *c, "rw"),
        [h, c, m] => (*h, *c, *m),
        _ => return Err(format!("volume `{entry}`: expected HOST:CONTAINER[:ro]")),
    };
    if host.is_empty() || bind.is_empty() {
        return Err(format!("volume `{entry}`: expected HOST:CONTAINER[:ro]"));
    }
    let host = if host.starts_with('.') || host.contains('/') {
        let path = Path::new(host);
        let absolute = std::path::absolute(path)
            .map_err(|e| format!("volume `{entry}`: cannot resolve `{host}`: {e}"))?;
        absolute.to_string_lossy().into_owned()
    } else {
        host.to_string()
    };
    Ok((
        host,
        VolumeSpec {
            bind: bind.to_string(),
            mode: mode.to_string(),
        },
    ))
}

/// `[IP:]HOST:CTR[/proto]` → (`CTR/proto`, host side).
fn parse_port(entry: &str) -> Result<(String, PortSpec), String> {
    let bad = || format!("port `{entry}`: expected [IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]");
    let (rest, container) = entry.rsplit_once(':').ok_or_else(bad)?;
    let (container_port, proto) = container.split_once('/').unwrap_or((container, "tcp"));
    container_port.parse::<u16>().map_err(|_| bad())?;
    let key = format!("{container_port}/{proto}");
    let spec = match rest.rsplit_once(':') {
        Some((ip, host)) => {
            let ip = ip.trim_matches(['[', ']']);
            ip.parse::<std::net::IpAddr>().map_err(|_| bad())?;
            PortSpec::Bound(
                ip.to_string(),
                host.parse::<u16>().map_err(|_| bad())?.into(),
            )
        }
        None => PortSpec::Port(rest.parse::<u16>().map_err(|_| bad())?.into()),
    };
    Ok((key, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_with_and_without_address() {
        assert_eq!(
            parse_port("8080:80").unwrap(),
            ("80/tcp".into(), PortSpec::Port(8080))
        );
        assert_eq!(
            parse_port("0.0.0.0:8080:80/udp").unwrap(),
            ("80/udp".into(), PortSpec::Bound("0.0.0.0".into(), 8080))
        );
        assert_eq!(
            parse_port("[::1]:9000:90").unwrap(),
            ("90/tcp".into(), PortSpec::Bound("::1".into(), 9000))
        );
        for bad in ["80", "x:80", "1.2.3:80:80", "8080:99999"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn volumes_parse_mode_and_resolve_relative_paths() {
        let (host, spec) = parse_volume("/data:/in:ro").unwrap();
        assert_eq!(
            (host.as_str(), spec.bind.as_str(), spec.mode.as_str()),
            ("/data", "/in", "ro")
        );
        let (host, _) = parse_volume("./x:/in").unwrap();
        assert!(host.starts_with('/'), "{host}");
        assert!(parse_volume("/only").is_err());
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        std::fs::write(
            &file,
            r#"{"image":"a","memory_limit":"1g","tools_config":["shell_executor"]}"#,
        )
        .unwrap();
        let args = SandboxArgs {
            image: Some("b".into()),
            tools: vec!["python_executor".into()],
            config: Some(file.to_string_lossy().into()),
            ..Default::default()
        };
        let c = args.to_config().unwrap();
        assert_eq!(c.image, "b");
        assert_eq!(c.memory_limit, "1g");
        assert_eq!(c.tool_names(), ["shell_executor", "python_executor"]);
    }

    #[test]
    fn invalid_memory_is_refused_before_anything_runs() {
        let args = SandboxArgs {
            memory: Some("4gb".into()),
            ..Default::default()
        };
        let err = args.to_config().unwrap_err();
        assert!(format!("{err}").contains("memory_limit `4gb`"), "{err}");
    }
}

//! `enclave create --type volcengine`'s flags, and how they layer over an ms-enclave
//! `VolcengineSandboxConfig` file.

use anyhow::Result;
use clap::Args;

use super::input::read_source;
use super::sandbox_args::SandboxArgs;
use crate::error::Error;
use crate::model::{SandboxType, VolcengineSandboxConfig};

#[derive(Debug, Args, Default)]
pub(crate) struct VolcengineArgs {
    /// volcengine: the SandboxFusion service's URL, e.g. http://fusion:8080
    #[arg(long, value_name = "URL")]
    pub(crate) base_url: Option<String>,
    /// volcengine: the key sent as `Authorization` to the service
    #[arg(
        long,
        value_name = "KEY",
        env = "ENCLAVE_VOLCENGINE_API_KEY",
        hide_env_values = true
    )]
    pub(crate) volcengine_api_key: Option<String>,
}

impl VolcengineArgs {
    /// Defaults < config file (`--config`) < flags; checked before anything is recorded.
    pub(crate) fn to_config(&self, sandbox: &SandboxArgs) -> Result<VolcengineSandboxConfig> {
        if let Some(flag) = docker_flag(sandbox) {
            return Err(Error::InvalidConfig(format!(
                "`{flag}` does not apply to a volcengine sandbox (it has no container)"
            ))
            .into());
        }
        let mut config = match &sandbox.config {
            Some(source) => {
                let (text, name) =
                    read_source(source, false, "config").map_err(Error::InvalidConfig)?;
                VolcengineSandboxConfig::from_json(&text)
                    .map_err(|e| Error::InvalidConfig(format!("{name}: {e}")))?
            }
            None => VolcengineSandboxConfig::default(),
        };
        for tool in &sandbox.tools {
            config.tools_config.0.entry(tool.clone()).or_default();
        }
        if let Some(url) = &self.base_url {
            config.base_url = Some(url.clone());
        }
        if let Some(key) = &self.volcengine_api_key {
            config.api_key = Some(key.clone());
        }
        config.normalise();
        config.validate().map_err(Error::InvalidConfig)?;
        config.endpoint().map_err(Error::InvalidConfig)?;
        Ok(config)
    }

    /// Refuses `--base-url` for a sandbox that is not a volcengine one.
    pub(crate) fn check_unused(&self, sandbox_type: SandboxType) -> Result<()> {
        if self.base_url.is_some() {
            return Err(Error::Usage(format!(
                "`--base-url` is for `--type volcengine`, not `{}`",
                sandbox_type.as_str()
            ))
            .into());
        }
        Ok(())
    }
}

/// The first container flag given, which a volcengine sandbox cannot honour.
fn docker_flag(a: &SandboxArgs) -> Option<&'static str> {
    [
        (a.image.is_some(), "--image"),
        (a.memory.is_some(), "--memory"),
        (a.cpus.is_some(), "--cpus"),
        (!a.env.is_empty(), "--env"),
        (!a.volumes.is_empty(), "--volume"),
        (!a.ports.is_empty(), "--port"),
        (a.no_network, "--no-network"),
        (a.workdir.is_some(), "--workdir"),
        (a.runtime.is_some(), "--runtime"),
        (!a.labels.is_empty(), "--label"),
        (a.pids_limit.is_some(), "--pids-limit"),
        (a.privileged, "--privileged"),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_config_and_container_flags_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.json");
        std::fs::write(
            &file,
            r#"{"base_url":"http://a/","api_key":"k1","tools_config":["shell_executor"]}"#,
        )
        .unwrap();
        let sandbox = SandboxArgs {
            tools: vec!["python_executor".into()],
            config: Some(file.to_string_lossy().into()),
            ..Default::default()
        };
        let args = VolcengineArgs {
            base_url: Some("http://b:9/".into()),
            volcengine_api_key: None,
        };
        let c = args.to_config(&sandbox).unwrap();
        assert_eq!(c.base_url.as_deref(), Some("http://b:9"));
        assert_eq!(c.api_key.as_deref(), Some("k1"));
        assert_eq!(c.tool_names(), ["shell_executor", "python_executor"]);

        let with_image = SandboxArgs {
            image: Some("x".into()),
            ..Default::default()
        };
        let e = args.to_config(&with_image).unwrap_err();
        assert!(format!("{e}").contains("`--image` does not apply"), "{e}");
        let e = VolcengineArgs::default()
            .to_config(&SandboxArgs::default())
            .unwrap_err();
        assert!(format!("{e}").contains("base_url is required"), "{e}");
    }
}

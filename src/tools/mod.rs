//! The tools agents call: each owns its OpenAI function-calling schema and its `execute`.

mod encoding;
mod file_operation;
mod languages;
mod multi_code_executor;
mod notebook_executor;
mod options;
mod paths;
mod python_executor;
mod run;
mod shell_executor;
mod validate;

pub(crate) use run::CANCELLED;
pub(crate) use validate::{accepts, validate_args};

use async_trait::async_trait;
use indexmap::IndexMap;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::model::{SandboxType, ToolResult, ToolsConfig};
pub(crate) use options::ToolOptions;

/// What a tool needs to act on one sandbox.
pub(crate) struct ToolContext<'a> {
    pub(crate) backend: &'a dyn Backend,
    /// The sandbox's working directory (`config.working_dir`).
    pub working_dir: &'a str,
    /// Cancelled when the caller goes away (Ctrl-C, a dropped HTTP request).
    pub cancel: CancellationToken,
    /// A notebook sandbox's kernel (`notebook_executor`); `None` in other sandboxes.
    pub(crate) notebook: Option<crate::notebook::SharedKernel>,
}

/// What describes a tool, apart from running it.
pub(crate) struct ToolInfo {
    /// The registration key, also the default name.
    pub key: &'static str,
    pub description: &'static str,
    /// Sandbox types the tool declares; usable where any of them is compatible.
    pub sandbox_types: &'static [SandboxType],
    /// The JSON schema of the parameters: `{"type":"object","properties":…}`.
    pub parameters: fn() -> Value,
}

#[async_trait]
pub(crate) trait Tool: Send + Sync {
    fn info(&self) -> &'static ToolInfo;

    fn key(&self) -> &'static str {
        self.info().key
    }

    fn description(&self) -> &'static str {
        self.info().description
    }

    fn parameters(&self) -> Value {
        (self.info().parameters)()
    }

    fn sandbox_types(&self) -> &'static [SandboxType] {
        self.info().sandbox_types
    }

    /// Runs one call. `args` were already validated against `parameters()`; `options` are the
    /// tool's `tools_config` options, checked when the sandbox was created.
    async fn execute(
        &self,
        ctx: &ToolContext<'_>,
        name: &str,
        args: &Map<String, Value>,
        options: &ToolOptions,
    ) -> ToolResult;
}

/// Every tool this build knows, in ms-enclave's registration order.
pub(crate) fn registry() -> &'static [&'static dyn Tool] {
    &[
        &file_operation::FileOperation,
        &multi_code_executor::MultiCodeExecutor,
        &notebook_executor::NotebookExecutor,
        &python_executor::PythonExecutor,
        &shell_executor::ShellExecutor,
    ]
}

/// Names ms-enclave knows that this build does not run yet.
const KNOWN_ELSEWHERE: &[(&str, &str)] = &[];

pub(crate) fn find(key: &str) -> Option<&'static dyn Tool> {
    registry().iter().copied().find(|t| t.key() == key)
}

/// ms-enclave's compatibility: a docker_notebook sandbox can also run docker tools.
fn usable_in(tool: &dyn Tool, sandbox: SandboxType) -> bool {
    let compatible: &[SandboxType] = match sandbox {
        SandboxType::Docker => &[SandboxType::Docker],
        SandboxType::DockerNotebook => &[SandboxType::DockerNotebook, SandboxType::Docker],
        SandboxType::Volcengine => &[SandboxType::Volcengine],
    };
    tool.sandbox_types().iter().any(|t| compatible.contains(t))
}

/// One tool enabled in one sandbox, with its `tools_config` overrides applied and its options
/// parsed once.
#[derive(Clone)]
pub(crate) struct EnabledTool {
    pub tool: &'static dyn Tool,
    pub name: String,
    pub description: String,
    pub options: ToolOptions,
}

impl EnabledTool {
    /// `{"type":"function","function":{"name","description","parameters"}}`.
    pub(crate) fn schema(&self) -> Value {
        json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.tool.parameters(),
            }
        })
    }
}

/// A tool's schema under its own name and description (no `tools_config` overrides).
pub(crate) fn default_schema(tool: &'static dyn Tool) -> Value {
    EnabledTool {
        tool,
        name: tool.key().to_string(),
        description: tool.description().to_string(),
        options: ToolOptions::default(),
    }
    .schema()
}

/// The tools a sandbox has, by (possibly renamed) tool name.
#[derive(Clone, Default)]
pub(crate) struct ToolSet {
    tools: IndexMap<String, EnabledTool>,
}

impl std::fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl ToolSet {
    /// Applies `tools_config` (reference §3.1). Unknown or incompatible tools are refused here,
    /// at create time, rather than silently skipped.
    pub(crate) fn from_config(config: &ToolsConfig, sandbox: SandboxType) -> Result<Self, String> {
        let mut tools = IndexMap::new();
        for (key, options) in &config.0 {
            let Some(tool) = find(key) else {
                return Err(unknown_tool_message(key));
            };
            if !usable_in(tool, sandbox) {
                let needs: Vec<_> = tool.sandbox_types().iter().map(|t| t.as_str()).collect();
                return Err(format!(
                    "tool `{key}` cannot run in a `{}` sandbox (it needs {})",
                    sandbox.as_str(),
                    needs.join(" or ")
                ));
            }
            if options.get("enabled") == Some(&Value::Bool(false)) {
                continue;
            }
            let name = string_option(options, "name")?.unwrap_or(key).to_string();
            if !is_function_name(&name) {
                return Err(format!(
                    "tools_config of `{key}`: the name `{}` is not one model APIs accept \
                     (1 to 64 letters, digits, `_` or `-`)",
                    name.escape_default()
                ));
            }
            let description = string_option(options, "description")?
                .unwrap_or(tool.description())
                .to_string();
            let parsed =
                ToolOptions::parse(options).map_err(|e| format!("tools_config of `{key}`: {e}"))?;
            if tools.contains_key(&name) {
                return Err(format!("two tools are named `{name}`"));
            }
            tools.insert(
                name.clone(),
                EnabledTool {
                    tool,
                    name,
                    description,
                    options: parsed,
                },
            );
        }
        Ok(ToolSet { tools })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&EnabledTool> {
        self.tools.get(name)
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.tools.keys().cloned().collect()
    }

    pub(crate) fn schemas(&self) -> IndexMap<String, Value> {
        self.tools
            .iter()
            .map(|(name, t)| (name.clone(), t.schema()))
            .collect()
    }
}

/// OpenAI's rule for function names, `^[a-zA-Z0-9_-]{1,64}$`, which other model APIs share.
fn is_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn string_option<'a>(
    options: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, String> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s)),
        Some(other) => Err(format!(
            "tools_config option `{key}` must be a non-empty string, got {other}"
        )),
    }
}

pub(crate) fn unknown_tool_message(key: &str) -> String {
    if let Some((_, why)) = KNOWN_ELSEWHERE.iter().find(|(k, _)| *k == key) {
        return format!("tool `{key}` {why}");
    }
    let known: Vec<_> = registry().iter().map(|t| t.key()).collect();
    format!("unknown tool `{key}`; known tools: {}", known.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> ToolsConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn unknown_and_incompatible_tools_are_refused() {
        let e = ToolSet::from_config(&config(r#"["bogus"]"#), SandboxType::Docker).unwrap_err();
        assert!(
            e.contains("unknown tool `bogus`") && e.contains("python_executor"),
            "{e}"
        );
        let e = ToolSet::from_config(&config(r#"["notebook_executor"]"#), SandboxType::Docker)
            .unwrap_err();
        assert!(e.contains("docker_notebook"), "{e}");
    }

    #[test]
    fn volcengine_runs_the_three_executors_only() {
        let set = ToolSet::from_config(
            &config(r#"["python_executor","shell_executor","multi_code_executor"]"#),
            SandboxType::Volcengine,
        )
        .unwrap();
        assert_eq!(set.names().len(), 3);
        let e = ToolSet::from_config(&config(r#"["file_operation"]"#), SandboxType::Volcengine)
            .unwrap_err();
        assert!(e.contains("cannot run in a `volcengine` sandbox"), "{e}");
    }

    #[test]
    fn overrides_rename_describe_and_disable() {
        let set = ToolSet::from_config(
            &config(r#"{"python_executor":{"name":"py","description":"d"},"shell_executor":{"enabled":false}}"#),
            SandboxType::Docker,
        )
        .unwrap();
        assert_eq!(set.names(), ["py"]);
        let schema = set.get("py").unwrap().schema();
        assert_eq!(schema["function"]["name"], "py");
        assert_eq!(schema["function"]["description"], "d");
    }

    #[test]
    fn names_model_apis_reject_are_refused() {
        for bad in ["my tool", "py.exec", "é", &"x".repeat(65)] {
            let config = serde_json::json!({"python_executor": {"name": bad}});
            let e = ToolSet::from_config(
                &serde_json::from_value(config).unwrap(),
                SandboxType::Docker,
            )
            .unwrap_err();
            assert!(e.contains("is not one model APIs accept"), "{bad}: {e}");
        }
        let ok = serde_json::json!({"python_executor": {"name": "py-exec_2"}});
        assert!(
            ToolSet::from_config(&serde_json::from_value(ok).unwrap(), SandboxType::Docker).is_ok()
        );
    }

    #[test]
    fn bad_tool_options_are_refused_at_create() {
        let e = ToolSet::from_config(
            &config(r#"{"shell_executor":{"max_output_size":"lots"}}"#),
            SandboxType::Docker,
        )
        .unwrap_err();
        assert!(
            e.contains("tools_config of `shell_executor`") && e.contains("`max_output_size`"),
            "{e}"
        );
    }
}

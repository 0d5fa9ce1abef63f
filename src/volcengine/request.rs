//! What each executor asks SandboxFusion's `run_code` for (reference §3.3, §3.4, §3.6 for the
//! volcengine path): the code, the language, and the timeouts ms-enclave left out.

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::VolcengineSandboxConfig;

/// A `run_code` request body. `run_timeout` is the tool's own timeout, so the service stops
/// the code when the caller would (ms-enclave sent none, reference §8 item 27).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct RunCode {
    pub(crate) code: String,
    pub(crate) language: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) run_timeout: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) compile_timeout: Option<f64>,
    /// Extra files, name to base64 content, as SandboxFusion takes them.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub(crate) files: Map<String, Value>,
}

impl RunCode {
    /// Seconds the service may spend on the code before it must answer.
    pub(crate) fn budget(&self) -> f64 {
        self.run_timeout.unwrap_or(0.0) + self.compile_timeout.unwrap_or(0.0)
    }
}

/// The request for one call of `tool` (its registry key), or the text of the failure that
/// ms-enclave reports for bad input without calling the service.
pub(crate) fn for_tool(
    tool: &str,
    args: &Map<String, Value>,
    config: &VolcengineSandboxConfig,
) -> Result<RunCode, String> {
    let text = |key: &str| args.get(key).and_then(Value::as_str).unwrap_or("");
    match tool {
        "python_executor" => {
            let code = text("code");
            if code.trim().is_empty() {
                return Err("No code provided".into());
            }
            Ok(simple(code, "python", seconds(args.get("timeout"))))
        }
        "shell_executor" => {
            let command = shell_command(args.get("command")).ok_or("No command provided")?;
            Ok(simple(&command, "bash", seconds(args.get("timeout"))))
        }
        "multi_code_executor" => {
            let (language, code) = (text("language"), text("code"));
            if language.trim().is_empty() || code.trim().is_empty() {
                return Err("Invalid input".into());
            }
            // ms-enclave: `run_timeout or 30`, so 0 and null mean 30 too.
            let run_timeout = seconds(args.get("run_timeout")).or(Some(30.0));
            Ok(RunCode {
                compile_timeout: args.get("compile_timeout").and_then(|v| seconds(Some(v))),
                files: files(args.get("files")),
                ..simple(code, config.language(language), run_timeout)
            })
        }
        other => Err(format!(
            "Execution failed: tool `{other}` cannot run in a volcengine sandbox"
        )),
    }
}

fn simple(code: &str, language: &str, run_timeout: Option<f64>) -> RunCode {
    RunCode {
        code: code.to_string(),
        language: language.to_string(),
        run_timeout,
        compile_timeout: None,
        files: Map::new(),
    }
}

/// A tool's timeout argument: absent means the schema's default, 30; `null` and 0 mean none.
fn seconds(value: Option<&Value>) -> Option<f64> {
    match value {
        None => Some(30.0),
        Some(v) => v.as_f64().filter(|s| *s > 0.0 && s.is_finite()),
    }
}

/// A string runs as it is; an argv is joined with shell quoting, as ms-enclave does.
fn shell_command(command: Option<&Value>) -> Option<String> {
    match command? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Array(items) if !items.is_empty() => {
            let words: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            Some(shell_words::join(words?))
        }
        _ => None,
    }
}

fn files(value: Option<&Value>) -> Map<String, Value> {
    let Some(Value::Object(files)) = value else {
        return Map::new();
    };
    files
        .iter()
        .filter_map(|(name, content)| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(content.as_str()?);
            Some((name.clone(), Value::String(encoded)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn each_executor_names_its_language_and_timeout() {
        let c = VolcengineSandboxConfig::default();
        let r = for_tool("python_executor", &args(json!({"code": "print(1)"})), &c).unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"code": "print(1)", "language": "python", "run_timeout": 30.0})
        );
        let r = for_tool(
            "shell_executor",
            &args(json!({"command": ["printf", "%s", "a b"], "timeout": 5})),
            &c,
        )
        .unwrap();
        assert_eq!(
            (r.code.as_str(), r.language.as_str()),
            ("printf '%s' 'a b'", "bash")
        );
        assert_eq!(r.run_timeout, Some(5.0));
        let r = for_tool(
            "multi_code_executor",
            &args(
                json!({"language": "ts", "code": "1", "run_timeout": 0, "compile_timeout": 7,
                         "files": {"a.txt": "hi"}}),
            ),
            &c,
        )
        .unwrap();
        assert_eq!(r.language, "typescript");
        assert_eq!(r.run_timeout, Some(30.0));
        assert_eq!(r.compile_timeout, Some(7.0));
        assert_eq!(r.files["a.txt"], "aGk=");
        let r = for_tool(
            "python_executor",
            &args(json!({"code": "1", "timeout": null})),
            &c,
        )
        .unwrap();
        assert_eq!(r.run_timeout, None);
    }

    #[test]
    fn bad_input_fails_with_ms_enclave_texts() {
        let c = VolcengineSandboxConfig::default();
        for (tool, a, text) in [
            ("python_executor", json!({"code": "  "}), "No code provided"),
            (
                "shell_executor",
                json!({"command": []}),
                "No command provided",
            ),
            (
                "multi_code_executor",
                json!({"language": "", "code": "x"}),
                "Invalid input",
            ),
        ] {
            assert_eq!(for_tool(tool, &args(a), &c).unwrap_err(), text);
        }
    }
}

//! The per-tool options of `tools_config` that enclave honours, checked when a sandbox is
//! created so a bad value is refused then rather than at the first call.
//!
//! Keys ms-enclave accepts but ignores (`timeout`, `parameters`, `restrictions`, …) are ignored
//! here too, so ms-enclave configs keep working.

use serde_json::{Map, Value};

use super::paths;
use crate::model::DEFAULT_MAX_OUTPUT;

/// Default for `file_operation`'s `max_file_size`: ms-enclave's `FileOperationConfig` default.
pub(super) const DEFAULT_MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolOptions {
    /// Bytes kept per output stream (`max_output_size`).
    pub max_output_size: usize,
    /// Interpreter for `python_executor` (`python_path`); `None`: python3, else python.
    pub python_path: Option<String>,
    /// Largest file `file_operation` reads or writes (`max_file_size`).
    pub max_file_size: u64,
    /// `file_operation` may only touch these trees (`allowed_paths`; `None`: anywhere).
    pub allowed_paths: Option<Vec<String>>,
    /// `file_operation` may never touch these trees (`blocked_paths`).
    pub blocked_paths: Vec<String>,
}

impl Default for ToolOptions {
    fn default() -> Self {
        ToolOptions {
            max_output_size: DEFAULT_MAX_OUTPUT,
            python_path: None,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            allowed_paths: None,
            blocked_paths: Vec::new(),
        }
    }
}

impl ToolOptions {
    pub(crate) fn parse(options: &Map<String, Value>) -> Result<Self, String> {
        let mut parsed = ToolOptions::default();
        if let Some(n) = positive_int(options, "max_output_size")? {
            parsed.max_output_size = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = positive_int(options, "max_file_size")? {
            parsed.max_file_size = n;
        }
        match options.get("python_path") {
            None | Some(Value::Null) => {}
            Some(Value::String(p)) if !p.trim().is_empty() => parsed.python_path = Some(p.clone()),
            Some(other) => {
                return Err(format!(
                    "option `python_path` must be a non-empty string, got {other}"
                ))
            }
        }
        parsed.allowed_paths = path_list(options, "allowed_paths")?;
        parsed.blocked_paths = path_list(options, "blocked_paths")?.unwrap_or_default();
        Ok(parsed)
    }
}

fn positive_int(options: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    let value = match options.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let n = value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    });
    match n {
        Some(n) if n > 0 => Ok(Some(n)),
        _ => Err(format!(
            "option `{key}` must be a positive number of bytes, got {value}"
        )),
    }
}

fn path_list(options: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, String> {
    let items = match options.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(format!(
                "option `{key}` must be a list of absolute paths, got {other}"
            ))
        }
    };
    items
        .iter()
        .map(|item| match item.as_str() {
            Some(p) if p.starts_with('/') => Ok(paths::normalize(p)),
            _ => Err(format!(
                "option `{key}` must hold absolute paths, got {item}"
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ToolOptions, String> {
        ToolOptions::parse(v.as_object().unwrap())
    }

    #[test]
    fn defaults_and_ms_enclave_keys() {
        assert_eq!(parse(json!({})).unwrap(), ToolOptions::default());
        let o = parse(json!({"timeout": 5, "enabled": true, "restrictions": {}})).unwrap();
        assert_eq!(o, ToolOptions::default());
    }

    #[test]
    fn values_are_read() {
        let o = parse(json!({
            "max_output_size": 1000.0,
            "max_file_size": 5,
            "python_path": "/opt/py/bin/python",
            "allowed_paths": ["/sandbox/", "/tmp/x/../y"],
            "blocked_paths": ["/sandbox/secret"]
        }))
        .unwrap();
        assert_eq!(o.max_output_size, 1000);
        assert_eq!(o.max_file_size, 5);
        assert_eq!(o.python_path.as_deref(), Some("/opt/py/bin/python"));
        assert_eq!(
            o.allowed_paths,
            Some(vec!["/sandbox".to_string(), "/tmp/y".to_string()])
        );
        assert_eq!(o.blocked_paths, ["/sandbox/secret"]);
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (v, key) in [
            (json!({"max_output_size": 0}), "max_output_size"),
            (json!({"max_output_size": "1m"}), "max_output_size"),
            (json!({"max_file_size": -1}), "max_file_size"),
            (json!({"python_path": ""}), "python_path"),
            (json!({"allowed_paths": "/sandbox"}), "allowed_paths"),
            (json!({"blocked_paths": ["relative"]}), "blocked_paths"),
        ] {
            let e = parse(v.clone()).unwrap_err();
            assert!(e.contains(&format!("`{key}`")), "{v}: {e}");
        }
    }
}

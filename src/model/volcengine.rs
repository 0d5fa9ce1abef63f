//! `VolcengineSandboxConfig`: ms-enclave's config of a `volcengine` sandbox, a handle on a
//! SandboxFusion service's `run_code` API (reference §2.4, §2.6), plus the manager's
//! `max_concurrency`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{flex, ToolsConfig};

/// What `SandboxInfo.config` shows instead of a secret.
pub(crate) const MASKED: &str = "***";

/// The languages ms-enclave renames before SandboxFusion sees them; `dataset_language_map`
/// is laid over these.
const DEFAULT_LANGUAGE_MAP: [(&str, &str); 3] =
    [("r", "R"), ("d_ut", "D_ut"), ("ts", "typescript")];

/// ms-enclave's `VolcengineSandboxConfig` with the same names and defaults; unknown keys are
/// ignored, as pydantic does. `base_url` is optional in the model, as there, but a sandbox
/// cannot be made without one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolcengineSandboxConfig {
    /// Never read (as in ms-enclave): a call's limit is its tool's `timeout`.
    #[serde(deserialize_with = "flex::int")]
    pub timeout: i64,
    pub tools_config: ToolsConfig,
    /// Unused: the service has no working directory of ours.
    pub working_dir: String,
    /// Unused: the service runs code in its own environment.
    pub env_vars: IndexMap<String, String>,
    pub resource_limits: Map<String, Value>,
    pub base_url: Option<String>,
    pub run_code_path: String,
    /// Seconds a call may take beyond the code's own `run_timeout` (see `http_timeout`).
    #[serde(deserialize_with = "flex::float")]
    pub request_timeout: f64,
    pub verify_ssl: bool,
    pub extra_headers: Option<IndexMap<String, String>>,
    /// Sent as `Authorization: <api_key>`, as is (no `Bearer`).
    pub api_key: Option<String>,
    pub dataset_language_map: Option<IndexMap<String, String>>,
    /// Accepted and never read, as in ms-enclave.
    pub tool_language_map: Map<String, Value>,
    /// Calls in flight at once to one service (`VolcengineSandboxManagerConfig`'s field).
    #[serde(deserialize_with = "flex::int")]
    pub max_concurrency: i64,
}

impl Default for VolcengineSandboxConfig {
    fn default() -> Self {
        VolcengineSandboxConfig {
            timeout: 30,
            tools_config: ToolsConfig::default(),
            working_dir: "/sandbox".into(),
            env_vars: IndexMap::new(),
            resource_limits: Map::new(),
            base_url: None,
            run_code_path: "/run_code".into(),
            request_timeout: 30.0,
            verify_ssl: true,
            extra_headers: None,
            api_key: None,
            dataset_language_map: None,
            tool_language_map: Map::new(),
            max_concurrency: 16,
        }
    }
}

impl VolcengineSandboxConfig {
    /// Parses an ms-enclave config JSON; `null` and `{}` give the defaults (which still need a
    /// `base_url` before a sandbox can be made).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
        Self::from_value(value)
    }

    /// Parses, normalises (as ms-enclave's validators do) and checks a config.
    pub fn from_value(value: Value) -> Result<Self, String> {
        let mut config: Self = match value {
            Value::Null => Self::default(),
            Value::Object(_) => serde_json::from_value(value).map_err(|e| e.to_string())?,
            _ => return Err("the config must be a JSON object".into()),
        };
        config.normalise();
        config.validate()?;
        Ok(config)
    }

    /// ms-enclave's validators: `base_url` loses its trailing `/`, `run_code_path` gains a
    /// leading one.
    pub fn normalise(&mut self) {
        if let Some(url) = &mut self.base_url {
            let trimmed = url.trim().trim_end_matches('/').to_string();
            *url = trimmed;
        }
        if !self.run_code_path.starts_with('/') {
            self.run_code_path.insert(0, '/');
        }
    }

    /// Every check the service would otherwise answer with a confusing failure later, each
    /// naming the field. A missing `base_url` is allowed here (the model allows it) and
    /// refused by [`Self::endpoint`].
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.base_url {
            check_base_url(url)?;
        }
        if !self.request_timeout.is_finite() || self.request_timeout <= 0.0 {
            return Err(format!(
                "request_timeout must be a positive number of seconds, got {}",
                self.request_timeout
            ));
        }
        if self.max_concurrency <= 0 {
            return Err(format!(
                "max_concurrency must be greater than 0, got {}",
                self.max_concurrency
            ));
        }
        if self.run_code_path.contains(['?', '#', ' ']) {
            return Err(format!(
                "run_code_path must be a path, got `{}`",
                self.run_code_path.escape_default()
            ));
        }
        for (name, value) in self.extra_headers.iter().flatten() {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(format!(
                    "extra_headers: `{}` is not an HTTP header name",
                    name.escape_default()
                ));
            }
            if value.contains(['\r', '\n', '\0']) {
                return Err(format!(
                    "extra_headers: the value of `{name}` contains a line break or NUL"
                ));
            }
        }
        if let Some(key) = &self.api_key {
            if key.contains(['\r', '\n', '\0']) {
                return Err("api_key contains a line break or NUL".into());
            }
        }
        Ok(())
    }

    /// The `run_code` URL; an error naming `base_url` when there is none.
    pub fn endpoint(&self) -> Result<String, String> {
        match self.base_url.as_deref() {
            Some(url) if !url.is_empty() => Ok(format!("{url}{}", self.run_code_path)),
            _ => Err(
                "base_url is required for a volcengine sandbox: the URL of a \
                      SandboxFusion service, e.g. http://sandbox-fusion:8080"
                    .into(),
            ),
        }
    }

    /// The service's host (and port), for `enclave ls`'s image column.
    pub fn host(&self) -> String {
        self.base_url
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok())
            .and_then(|u| {
                let host = u.host_str()?.to_string();
                Some(match u.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                })
            })
            .unwrap_or_default()
    }

    /// The language SandboxFusion is asked for: ms-enclave's defaults overlaid by
    /// `dataset_language_map`, exact keys; anything else as given.
    pub fn language<'a>(&'a self, language: &'a str) -> &'a str {
        if let Some(mapped) = self
            .dataset_language_map
            .as_ref()
            .and_then(|m| m.get(language))
        {
            return mapped;
        }
        DEFAULT_LANGUAGE_MAP
            .iter()
            .find(|(from, _)| *from == language)
            .map_or(language, |(_, to)| to)
    }

    /// The config as `SandboxInfo.config` shows it: null fields left out, and the secrets
    /// (`api_key`, the values of `extra_headers`) masked, so no listing hands them out.
    pub fn to_wire(&self) -> Value {
        let mut shown = self.clone();
        if shown.api_key.is_some() {
            shown.api_key = Some(MASKED.into());
        }
        for value in shown.extra_headers.iter_mut().flat_map(|h| h.values_mut()) {
            *value = MASKED.into();
        }
        let mut value = serde_json::to_value(shown).expect("config serialises");
        if let Value::Object(map) = &mut value {
            map.retain(|_, v| !v.is_null());
        }
        value
    }

    /// The config as a client sends it to a server that will make the sandbox: secrets
    /// included (only ever sent to the server the user named), null fields left out.
    pub fn to_request(&self) -> Value {
        let mut value = serde_json::to_value(self).expect("config serialises");
        if let Value::Object(map) = &mut value {
            map.retain(|_, v| !v.is_null());
        }
        value
    }

    pub fn tool_names(&self) -> Vec<String> {
        self.tools_config.0.keys().cloned().collect()
    }
}

fn check_base_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("base_url must not be empty".into());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        format!(
            "base_url `{}` is not a URL ({e}); e.g. http://sandbox-fusion:8080",
            url.escape_default()
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "base_url `{url}` must be an http:// or https:// URL with a host"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "base_url `{url}` must not have a query or fragment"
        ));
    }
    Ok(())
}

/// RFC 9110's `tchar`: what a header name may be made of.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_match_ms_enclave() {
        let c = VolcengineSandboxConfig::from_json("{}").unwrap();
        assert_eq!(c.base_url, None);
        assert_eq!(c.run_code_path, "/run_code");
        assert_eq!(c.request_timeout, 30.0);
        assert!(c.verify_ssl);
        assert_eq!(c.max_concurrency, 16);
        assert_eq!(c.working_dir, "/sandbox");
        assert_eq!(VolcengineSandboxConfig::from_json("null").unwrap(), c);
        assert!(c.endpoint().unwrap_err().contains("base_url is required"));
    }

    #[test]
    fn base_url_and_path_are_normalised() {
        let c = VolcengineSandboxConfig::from_value(json!({
            "base_url": "http://fusion:8080//", "run_code_path": "api/run", "imgae": "ignored"
        }))
        .unwrap();
        assert_eq!(c.endpoint().unwrap(), "http://fusion:8080/api/run");
        assert_eq!(c.host(), "fusion:8080");
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (config, needle) in [
            (json!({"base_url": ""}), "base_url must not be empty"),
            (json!({"base_url": "/"}), "base_url must not be empty"),
            (json!({"base_url": "fusion:8080"}), "http:// or https://"),
            (json!({"base_url": "not a url"}), "is not a URL"),
            (json!({"base_url": "http://h?x=1"}), "query"),
            (json!({"max_concurrency": 0}), "max_concurrency"),
            (json!({"request_timeout": -1}), "request_timeout"),
            (
                json!({"extra_headers": {"a b": "x"}}),
                "extra_headers: `a b`",
            ),
            (json!({"extra_headers": {"X": "a\nb"}}), "line break"),
            (json!({"max_concurrency": 1.5}), "integer"),
        ] {
            let e = VolcengineSandboxConfig::from_value(config.clone()).unwrap_err();
            assert!(e.contains(needle), "{config}: {e}");
        }
    }

    #[test]
    fn the_language_map_lies_over_the_defaults() {
        let c = VolcengineSandboxConfig::from_value(json!({
            "dataset_language_map": {"ts": "TypeScript", "py": "python"}
        }))
        .unwrap();
        assert_eq!(c.language("ts"), "TypeScript");
        assert_eq!(c.language("py"), "python");
        assert_eq!(c.language("r"), "R");
        assert_eq!(c.language("d_ut"), "D_ut");
        assert_eq!(c.language("R"), "R");
        assert_eq!(c.language("go"), "go");
        assert_eq!(
            VolcengineSandboxConfig::default().language("ts"),
            "typescript"
        );
    }

    #[test]
    fn secrets_are_masked_on_the_wire() {
        let c = VolcengineSandboxConfig::from_value(json!({
            "base_url": "http://h", "api_key": "sk-secret",
            "extra_headers": {"X-Token": "tok-secret"}
        }))
        .unwrap();
        let wire = c.to_wire();
        assert_eq!(wire["api_key"], MASKED);
        assert_eq!(wire["extra_headers"]["X-Token"], MASKED);
        assert!(!wire.to_string().contains("secret"), "{wire}");
        assert!(wire.get("dataset_language_map").is_none());
        assert_eq!(c.api_key.as_deref(), Some("sk-secret"));
    }
}

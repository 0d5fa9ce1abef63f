//! One `POST {base_url}{run_code_path}`: headers, the per-call timeout, and every way it can
//! fail turned into a sentence.

use std::time::Duration;

use serde_json::Value;

use super::request::RunCode;
use crate::model::VolcengineSandboxConfig;

/// How much of a body that is not the expected JSON an error quotes.
const QUOTED: usize = 200;

/// The answer as a JSON object, or why there is none.
pub(crate) async fn run_code(
    http: &reqwest::Client,
    config: &VolcengineSandboxConfig,
    request: &RunCode,
) -> Result<Value, String> {
    let url = config.endpoint()?;
    let timeout = http_timeout(config, request);
    let mut post = http.post(&url).timeout(timeout).json(request);
    if let Some(key) = &config.api_key {
        post = post.header(reqwest::header::AUTHORIZATION, key);
    }
    for (name, value) in config.extra_headers.iter().flatten() {
        post = post.header(name, value);
    }
    let response = post.send().await.map_err(|e| describe(&e, &url, timeout))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| describe(&e, &url, timeout))?;
    if !status.is_success() {
        return Err(format!("{url} answered HTTP {status}: {}", quote(&body)));
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(answer @ Value::Object(_)) => Ok(answer),
        Ok(_) => Err(format!(
            "{url} answered with JSON that is not an object: {}",
            quote(&body)
        )),
        Err(_) => Err(format!(
            "{url} answered with something not JSON: {}",
            quote(&body)
        )),
    }
}

/// The code's own budget (run and compile timeouts, which the service enforces) plus
/// `request_timeout` for the service itself: the call never gives up before the service would.
pub(crate) fn http_timeout(config: &VolcengineSandboxConfig, request: &RunCode) -> Duration {
    Duration::try_from_secs_f64(request.budget() + config.request_timeout).unwrap_or(Duration::MAX)
}

/// reqwest's error with its causes, and a timeout said as one (its own text is vague).
fn describe(e: &reqwest::Error, url: &str, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!(
            "{url} did not answer within {} seconds (the code's timeout plus request_timeout)",
            timeout.as_secs_f64()
        );
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(an empty body)".into();
    }
    match text.char_indices().nth(QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

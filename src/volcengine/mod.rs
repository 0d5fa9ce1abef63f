//! `volcengine` sandboxes (reference §1.5, §3.8, §5.4): handles on a SandboxFusion service.
//! Such a sandbox has no container, shell or files; each call of its executors is one
//! `POST {base_url}{run_code_path}`. The manager records the sandbox and calls [`Volcengine`]
//! for its tools; this module owns the HTTP clients and the per-service concurrency limits.

mod client;
mod request;
mod response;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::model::{ExecutionStatus, SandboxType, ToolResult, VolcengineSandboxConfig};
use crate::tools::{self, ToolSet};

/// The HTTP clients (one per TLS setting, so connections are reused) and the limits on calls
/// in flight, shared by every sandbox of a manager: ms-enclave's manager-wide semaphore.
#[derive(Default)]
pub(crate) struct Volcengine {
    clients: Mutex<HashMap<bool, reqwest::Client>>,
    /// One semaphore per service and limit: calls to one `base_url` with one `max_concurrency`
    /// share it, whichever sandbox they come from.
    limits: Mutex<HashMap<(String, i64), Arc<Semaphore>>>,
}

/// One tool call, as the manager hands it over.
pub(crate) struct Call<'a> {
    pub(crate) sandbox: &'a str,
    pub(crate) tool: &'a str,
    pub(crate) args: &'a Map<String, Value>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) cancel: &'a CancellationToken,
}

impl Volcengine {
    /// Checks a new sandbox's config and tools before it is recorded; its tools.
    pub(crate) fn check(config: &VolcengineSandboxConfig) -> Result<ToolSet, Error> {
        config.validate().map_err(Error::InvalidConfig)?;
        config.endpoint().map_err(Error::InvalidConfig)?;
        ToolSet::from_config(&config.tools_config, SandboxType::Volcengine)
            .map_err(Error::InvalidConfig)
    }

    /// The tools' schemas, as `SandboxInfo.available_tools` shows them.
    pub(crate) fn schemas(config: &VolcengineSandboxConfig) -> indexmap::IndexMap<String, Value> {
        ToolSet::from_config(&config.tools_config, SandboxType::Volcengine)
            .map(|set| set.schemas())
            .unwrap_or_default()
    }

    /// Runs one call: arguments checked against the tool's schema, then one `run_code`
    /// request under the service's concurrency limit, the call's deadline and its cancel.
    pub(crate) async fn execute_tool(
        &self,
        config: &VolcengineSandboxConfig,
        call: Call<'_>,
    ) -> Result<ToolResult> {
        let set = ToolSet::from_config(&config.tools_config, SandboxType::Volcengine)
            .map_err(Error::InvalidConfig)?;
        let enabled = set.get(call.tool).ok_or_else(|| Error::ToolUnavailable {
            sandbox: call.sandbox.to_string(),
            tool: call.tool.to_string(),
            available: set.names(),
        })?;
        tools::validate_args(&enabled.tool.parameters(), call.args).map_err(|message| {
            Error::InvalidToolArgs {
                tool: call.tool.to_string(),
                message,
            }
        })?;
        let name = enabled.name.as_str();
        let request = match request::for_tool(enabled.tool.key(), call.args, config) {
            Ok(request) => request,
            Err(text) => return Ok(ToolResult::failure(name, text)),
        };
        let started = Instant::now();
        let http = self.client(config.verify_ssl)?;
        let limit = self.limit(config);
        let run = async {
            // Waiting for a turn counts against the deadline, as it would in a queue of calls.
            let _turn = limit.acquire().await;
            match client::run_code(&http, config, &request).await {
                Ok(answer) => response::to_result(name, &answer),
                Err(why) => response::failed(name, &why),
            }
        };
        let expired = async {
            match call.deadline {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let mut result = tokio::select! {
            result = run => result,
            () = expired => {
                let secs = call.deadline.map_or(0.0, |d| d.as_secs_f64());
                let mut r = ToolResult::failure(name, format!("Tool call timed out after {secs} seconds"));
                r.status = ExecutionStatus::Timeout;
                r
            }
            () = call.cancel.cancelled() => {
                let mut r = ToolResult::failure(name, tools::CANCELLED);
                r.status = ExecutionStatus::Cancelled;
                r
            }
        };
        result.execution_time = Some(started.elapsed().as_secs_f64());
        Ok(result)
    }

    fn client(&self, verify_ssl: bool) -> Result<reqwest::Client> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&verify_ssl) {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(!verify_ssl)
            .build()?;
        clients.insert(verify_ssl, client.clone());
        Ok(client)
    }

    fn limit(&self, config: &VolcengineSandboxConfig) -> Arc<Semaphore> {
        let key = (
            config.base_url.clone().unwrap_or_default(),
            config.max_concurrency,
        );
        let permits = usize::try_from(config.max_concurrency).unwrap_or(1).max(1);
        self.limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(permits)))
            .clone()
    }
}

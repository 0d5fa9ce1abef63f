//! Jupyter Kernel Gateway's REST API: readiness, kernels, interrupt and restart, each request
//! carrying the sandbox's token.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

/// How long one REST request may take; starting a kernel takes longer than the others.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Between readiness probes while the gateway starts.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// One sandbox's kernel gateway, reached at `host:port` with its token.
#[derive(Clone)]
pub(crate) struct Gateway {
    base: String,
    host_port: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token stays out of logs and error chains.
        f.debug_struct("Gateway").field("base", &self.base).finish()
    }
}

/// A kernel as the gateway lists it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct KernelModel {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) execution_state: Option<String>,
}

impl Gateway {
    pub(crate) fn new(host: &str, port: u16, token: String) -> Self {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let host_port = format!("{host}:{port}");
        Gateway {
            base: format!("http://{host_port}"),
            host_port,
            token,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("an HTTP client without TLS roots to load"),
        }
    }

    /// `host:port`, for messages.
    pub(crate) fn address(&self) -> &str {
        &self.host_port
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// `ws://host:port/api/kernels/<id>/channels`.
    pub(crate) fn channels_url(&self, kernel_id: &str) -> String {
        format!("ws://{}/api/kernels/{kernel_id}/channels", self.host_port)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response> {
        self.http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("Authorization", format!("token {}", self.token))
            .timeout(timeout)
            .send()
            .await
            .with_context(|| format!("{method} {path} at the kernel gateway ({})", self.host_port))
    }

    /// Waits until `GET /api` answers 200, for at most `patience`. A gateway that refuses the
    /// token fails at once: waiting would not change its mind.
    pub(crate) async fn wait_ready(&self, patience: Duration) -> Result<()> {
        let started = tokio::time::Instant::now();
        let mut last = String::from("no answer yet");
        while started.elapsed() < patience {
            match self.call(Method::GET, "/api", Duration::from_secs(5)).await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if is_refusal(r.status()) => {
                    bail!(
                        "the kernel gateway refused the sandbox's token ({})",
                        r.status()
                    )
                }
                Ok(r) => last = format!("it answered {}", r.status()),
                Err(e) => last = format!("{:#}", e.root_cause()),
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
        bail!(
            "the kernel gateway at {} did not answer within {} s ({last})",
            self.host_port,
            patience.as_secs()
        )
    }

    /// The gateway's kernels, oldest first (it lists them in the order they were started).
    pub(crate) async fn kernels(&self) -> Result<Vec<KernelModel>> {
        let r = self
            .call(Method::GET, "/api/kernels", REQUEST_TIMEOUT)
            .await?;
        expect(&r, &[StatusCode::OK], "listing kernels")?;
        r.json().await.context("reading the kernel list")
    }

    /// The kernel `id`, or `None` when the gateway no longer has it.
    pub(crate) async fn kernel(&self, id: &str) -> Result<Option<KernelModel>> {
        let r = self
            .call(Method::GET, &format!("/api/kernels/{id}"), REQUEST_TIMEOUT)
            .await?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        expect(&r, &[StatusCode::OK], "looking up the kernel")?;
        Ok(Some(r.json().await.context("reading the kernel")?))
    }

    /// Starts a kernel; its id.
    pub(crate) async fn start_kernel(&self) -> Result<String> {
        let r = self
            .call(Method::POST, "/api/kernels", START_TIMEOUT)
            .await?;
        expect(
            &r,
            &[StatusCode::CREATED, StatusCode::OK],
            "starting a kernel",
        )?;
        let model: KernelModel = r.json().await.context("reading the new kernel")?;
        Ok(model.id)
    }

    /// Interrupts what the kernel runs (KeyboardInterrupt); its state is kept.
    pub(crate) async fn interrupt(&self, id: &str) -> Result<()> {
        let r = self
            .call(
                Method::POST,
                &format!("/api/kernels/{id}/interrupt"),
                REQUEST_TIMEOUT,
            )
            .await?;
        expect(
            &r,
            &[StatusCode::OK, StatusCode::NO_CONTENT],
            "interrupting the kernel",
        )
    }

    /// Restarts the kernel in place (same id): its state is lost.
    pub(crate) async fn restart(&self, id: &str) -> Result<()> {
        let r = self
            .call(
                Method::POST,
                &format!("/api/kernels/{id}/restart"),
                START_TIMEOUT,
            )
            .await?;
        expect(&r, &[StatusCode::OK], "restarting the kernel")
    }

    /// The sandbox's kernel: the oldest the gateway has, or a new one (`true`) when it has none.
    pub(crate) async fn find_or_start(&self) -> Result<(String, bool)> {
        match self.kernels().await?.into_iter().next() {
            Some(k) => Ok((k.id, false)),
            None => Ok((self.start_kernel().await?, true)),
        }
    }
}

fn is_refusal(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
}

fn expect(r: &reqwest::Response, ok: &[StatusCode], what: &str) -> Result<()> {
    if ok.contains(&r.status()) {
        return Ok(());
    }
    if is_refusal(r.status()) {
        return Err(anyhow!(
            "{what}: the kernel gateway refused the sandbox's token ({})",
            r.status()
        ));
    }
    Err(anyhow!(
        "{what}: the kernel gateway answered {}",
        r.status()
    ))
}

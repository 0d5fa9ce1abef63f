//! One sandbox Pod seen through the `Backend` trait: commands through the exec subresource
//! (`exec.rs`), files through POSIX tools run by exec (`files.rs`), removal through the API.

use anyhow::{Context, Result};
use async_trait::async_trait;
use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::exec::{api_error, attach_params, sandbox_id, Input};
use crate::backend::{Backend, FileStat, NewEntry};
use crate::error::Error;
use crate::model::{ArchiveStream, ExecOutcome, ExecSpec, OutputSink};

/// Bytes the bridge buffers each way.
const BRIDGE_BUFFER: usize = 256 * 1024;

/// One sandbox Pod, reached through the API server.
#[derive(Clone)]
pub(crate) struct PodSandbox {
    client: kube::Client,
    pub(super) namespace: String,
    pub(super) pod: String,
}

impl PodSandbox {
    pub(crate) fn new(client: kube::Client, namespace: &str, pod: &str) -> Self {
        PodSandbox {
            client,
            namespace: namespace.to_string(),
            pod: pod.to_string(),
        }
    }

    pub(super) fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// One long-lived exec of `argv` with its stdin and stdout joined into one byte stream, as
    /// `DockerSandbox::agent_bridge` gives: for the agent's protocol over one exec. Its stderr
    /// is read and dropped (it is the bridge's own complaints, and an unread pipe would stall
    /// stdout). Closing our end closes the command's stdin, which only `v5.channel.k8s.io` can
    /// do without ending the whole exec (see `exec.rs`).
    pub(crate) async fn bridge(&self, argv: Vec<String>) -> Result<DuplexStream> {
        let mut process = self
            .pods()
            .exec(&self.pod, argv, &attach_params(true))
            .await
            .map_err(|e| api_error(e, &self.pod))
            .context("starting the bridge")?;
        let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
            (process.stdin(), process.stdout(), process.stderr())
        else {
            anyhow::bail!("the exec came without its streams");
        };
        let (ours, theirs) = tokio::io::duplex(BRIDGE_BUFFER);
        let (mut from_host, mut to_host) = tokio::io::split(theirs);
        tokio::spawn(async move {
            // Owns the process: dropping it would end the exec.
            let _process = process;
            let drain_stderr = async {
                let mut buf = vec![0; 16 * 1024];
                while let Ok(n) = stderr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                std::future::pending::<()>().await;
            };
            let copy_out = async {
                let _ = tokio::io::copy(&mut stdout, &mut to_host).await;
                let _ = to_host.shutdown().await;
            };
            tokio::select! {
                () = drain_stderr => {}
                () = copy_out => {}
            }
        });
        tokio::spawn(async move {
            let mut buf = vec![0; 64 * 1024];
            loop {
                match from_host.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stdin.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = stdin.shutdown().await;
        });
        Ok(ours)
    }

    /// Deletes the Pod at once (no grace period: the sandbox is being thrown away); `false`
    /// when it was already gone.
    async fn delete_pod(&self) -> Result<bool> {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        match self.pods().delete(&self.pod, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(e) => Err(api_error(e, &self.pod)).context("deleting the Pod"),
        }
    }

    /// Deletes the sandbox's NetworkPolicy, which exists only for a sandbox without network.
    async fn delete_network_policy(&self) -> Result<()> {
        let policies: Api<NetworkPolicy> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = format!("{}-no-network", self.pod);
        match policies.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(api_error(e, &self.pod)).context("deleting the NetworkPolicy"),
        }
    }
}

#[async_trait]
impl Backend for PodSandbox {
    async fn exec(&self, mut spec: ExecSpec, sink: &mut dyn OutputSink) -> Result<ExecOutcome> {
        let input = spec.stdin.take().map_or(Input::None, Input::Stream);
        self.run(spec, input, sink).await
    }

    async fn stat(&self, path: &str) -> Result<Option<FileStat>> {
        self.stat_path(path).await
    }

    async fn read_file(&self, path: &str, max_bytes: u64) -> Result<Option<Vec<u8>>> {
        self.read_bounded(path, max_bytes).await
    }

    async fn put(&self, dir: &str, entries: Vec<NewEntry>) -> Result<()> {
        self.put_entries(dir, entries).await
    }

    async fn make_dirs(&self, dir: &str) -> Result<()> {
        self.mkdir_p(dir).await
    }

    async fn put_archive(&self, dir: &str, tar: Bytes) -> Result<()> {
        self.extract(dir, tar).await
    }

    async fn get_archive(&self, path: &str) -> Result<Option<ArchiveStream>> {
        self.archive(path).await
    }

    /// A Pod cannot be stopped and started again: its containers never restart
    /// (`restartPolicy: Never`), so stopping would end the sandbox for good.
    async fn stop(&self) -> Result<()> {
        let id = sandbox_id(&self.pod);
        Err(Error::Usage(format!(
            "a Kubernetes sandbox cannot be stopped and started again (a Pod cannot): \
             `enclave rm {id}` removes it"
        ))
        .into())
    }

    /// Deletes the Pod with no grace period, and its NetworkPolicy if it has one.
    async fn remove(&self) -> Result<bool> {
        let removed = self.delete_pod().await?;
        self.delete_network_policy().await?;
        Ok(removed)
    }
}

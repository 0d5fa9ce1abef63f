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

#[cfg(test)]
mod tests {
    //! The requests `PodSandbox` makes, against a mock service behind a real `kube::Client` (a
    //! mock cannot complete a WebSocket upgrade: what comes after one is tested against the
    //! fake, below).
    use super::*;
    use crate::model::Capture;
    use http::{Request, Response};
    use kube::client::Body;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn mock() -> (PodSandbox, Handle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        (PodSandbox::new(client, "team-a", "enclave-k3x9"), handle)
    }

    fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code,
        });
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    }

    /// The query's pairs, decoded, in order.
    fn query(request: &Request<Body>) -> Vec<(String, String)> {
        let query = request.uri().query().unwrap_or_default();
        url_pairs(query)
    }

    fn url_pairs(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k), decode(v))
            })
            .collect()
    }

    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }

    /// Runs `sandbox.exec(argv)` while answering its one request with `response`; the request
    /// and the exec's result.
    async fn exec_answered(
        response: Response<Body>,
        spec: ExecSpec,
    ) -> (Request<Body>, Result<ExecOutcome>) {
        let (sandbox, mut handle) = mock();
        let server = tokio::spawn(async move {
            let (request, reply) = handle.next_request().await.expect("an exec request");
            reply.send_response(response);
            request
        });
        let mut capture = Capture::new(4096);
        let result = sandbox.exec(spec, &mut capture).await;
        (server.await.unwrap(), result)
    }

    #[tokio::test]
    async fn the_exec_request_names_the_container_streams_and_wrapped_command() {
        let mut spec = ExecSpec::new(vec!["echo".into(), "a b&c=d".into()]);
        spec.env = vec!["K=v 1".into()];
        spec.workdir = Some("/work dir".into());
        let (request, _) = exec_answered(status(403, "Forbidden", "no"), spec).await;
        assert_eq!(request.method(), http::Method::GET);
        assert_eq!(
            request.uri().path(),
            "/api/v1/namespaces/team-a/pods/enclave-k3x9/exec"
        );
        let pairs = query(&request);
        let value = |key: &str| -> Vec<String> {
            pairs
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect()
        };
        assert_eq!(value("container"), ["sandbox"]);
        assert_eq!(value("stdout"), ["true"]);
        assert_eq!(value("stderr"), ["true"]);
        assert!(value("stdin").is_empty(), "no stdin was given");
        assert!(value("tty").iter().all(|v| v == "false"), "no TTY");
        let command = value("command");
        assert_eq!(&command[..2], ["sh", "-c"]);
        assert_eq!(command[4], "/work dir");
        assert_eq!(command[5], "2");
        assert!(command[6].starts_with("ENCLAVE_EXEC_TOKEN="));
        assert_eq!(&command[7..], ["K=v 1", "echo", "a b&c=d"]);
        let upgrade = request.headers().get("upgrade").unwrap();
        assert_eq!(upgrade, "websocket");
        let protocols = request.headers().get("sec-websocket-protocol").unwrap();
        assert_eq!(protocols, "v5.channel.k8s.io, v4.channel.k8s.io");

        let mut spec = ExecSpec::new(vec!["cat".into()]);
        spec.stdin = Some(Box::new(&b"x"[..]));
        let (request, _) = exec_answered(status(403, "Forbidden", "no"), spec).await;
        assert!(query(&request).contains(&("stdin".into(), "true".into())));
    }

    #[tokio::test]
    async fn refusals_before_the_upgrade_become_domain_errors_with_the_servers_words() {
        let forbidden = "pods \"enclave-k3x9\" is forbidden: User \"ci\" cannot create resource \
                         \"pods/exec\" in API group \"\" in the namespace \"team-a\"";
        let (_, result) = exec_answered(
            status(403, "Forbidden", forbidden),
            ExecSpec::new(vec!["true".into()]),
        )
        .await;
        let err = result.unwrap_err();
        assert!(
            matches!(crate::error::find(&err), Some(Error::Refused { message, .. }) if message == forbidden),
            "{err:#}"
        );

        let (_, result) = exec_answered(
            status(404, "NotFound", "pods \"enclave-k3x9\" not found"),
            ExecSpec::new(vec!["true".into()]),
        )
        .await;
        let err = result.unwrap_err();
        assert!(
            matches!(crate::error::find(&err), Some(Error::NotFound(id)) if id == "k3x9"),
            "{err:#}"
        );
        assert!(format!("{err:#}").contains("pods \"enclave-k3x9\" not found"));

        let gone = "container sandbox is not valid for pod enclave-k3x9";
        let (_, result) = exec_answered(
            status(400, "BadRequest", gone),
            ExecSpec::new(vec!["true".into()]),
        )
        .await;
        let err = result.unwrap_err();
        let Some(Error::NotRunning { status, hint, .. }) = crate::error::find(&err) else {
            panic!("{err:#}");
        };
        assert_eq!(status, gone);
        assert!(hint.as_deref().unwrap().contains("enclave rm k3x9"));
    }

    #[tokio::test]
    async fn remove_deletes_pod_at_once_and_its_policy_and_says_when_it_was_gone() {
        let (sandbox, mut handle) = mock();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for answer in [200, 404] {
                let (request, reply) = handle.next_request().await.unwrap();
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let body = request.into_body().collect_bytes().await.unwrap();
                seen.push((method, path, body));
                if answer == 200 {
                    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "enclave-k3x9", "namespace": "team-a"}});
                    reply.send_response(
                        Response::builder()
                            .status(200)
                            .body(Body::from(serde_json::to_vec(&pod).unwrap()))
                            .unwrap(),
                    );
                } else {
                    reply.send_response(status(404, "NotFound", "not found"));
                }
            }
            seen
        });
        assert!(sandbox.remove().await.unwrap());
        let seen = server.await.unwrap();
        assert_eq!(seen[0].0, http::Method::DELETE);
        assert_eq!(seen[0].1, "/api/v1/namespaces/team-a/pods/enclave-k3x9");
        let options: serde_json::Value = serde_json::from_slice(&seen[0].2).unwrap();
        assert_eq!(options["gracePeriodSeconds"], 0);
        assert_eq!(
            seen[1].1,
            "/apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies/enclave-k3x9-no-network"
        );

        let (sandbox, mut handle) = mock();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (_, reply) = handle.next_request().await.unwrap();
                reply.send_response(status(404, "NotFound", "not found"));
            }
        });
        assert!(!sandbox.remove().await.unwrap());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn stop_is_refused_with_the_way_out() {
        let (sandbox, _handle) = mock();
        let err = sandbox.stop().await.unwrap_err();
        assert!(err.to_string().contains("`enclave rm k3x9`"), "{err}");
    }
}

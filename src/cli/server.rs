//! `enclave server`: serve ms-enclave's HTTP API (and enclave's own) over the local engine,
//! until SIGINT or SIGTERM; then finish the calls under way and leave the sandboxes for the
//! next run to adopt (unless `--cleanup-on-exit`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::http::HeaderValue;
use clap::Args;
use serde_json::json;

use super::{BackendChoice, Ctx};
use crate::backend::DockerEngine;
use crate::error::Error;
use crate::manager::{KubeManager, LocalManager, Manager};
use crate::model::{parse_memory_limit, MAX_TIMEOUT_SECS};
use crate::server::http::{self, ApiKey, Keys, LogFormat, Logger, Settings, DEFAULT_TENANT};
use crate::server::service::{Caller, Policy, Service, ServiceOptions};
use crate::state::StateStore;

const LISTEN: &str = "Listening";
const ACCESS: &str = "Access";
const SANDBOXES: &str = "Sandboxes";
const POLICY: &str = "Policy (what callers may ask for)";

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// Address to listen on; one other than loopback needs a key (or --insecure)
    #[arg(long, default_value = "127.0.0.1", help_heading = LISTEN)]
    host: String,
    /// Port to listen on; 0 picks a free one (the `listening on` line says which)
    #[arg(long, default_value_t = 8000, help_heading = LISTEN)]
    port: u16,
    /// Format of the request log on stderr
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT", help_heading = LISTEN)]
    log_format: LogFormat,
    /// Seconds the calls under way may take to finish after SIGINT/SIGTERM
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = parse_secs, help_heading = LISTEN)]
    shutdown_grace: Duration,
    /// Remove every sandbox on exit (ms-enclave's behaviour); by default they stay for the next run
    #[arg(long, help_heading = LISTEN)]
    cleanup_on_exit: bool,

    /// The API key callers must send (`X-API-Key` header or `api_key` query)
    #[arg(long, env = "ENCLAVE_API_KEY", hide_env_values = true, value_name = "KEY", help_heading = ACCESS)]
    api_key: Option<String>,
    /// Read the API key from this file (its first line)
    #[arg(long, value_name = "PATH", help_heading = ACCESS)]
    api_key_file: Option<PathBuf>,
    /// Several callers' keys, one `name:key` or `name:key:admin` a line; each sees only its own sandboxes
    #[arg(long, value_name = "PATH", help_heading = ACCESS)]
    api_keys_file: Option<PathBuf>,
    /// Allow listening on a non-loopback address without any key
    #[arg(long, help_heading = ACCESS)]
    insecure: bool,
    /// A web origin whose pages may call the server, e.g. http://localhost:3000 (repeatable)
    #[arg(long, value_name = "ORIGIN", help_heading = ACCESS)]
    cors_origin: Vec<String>,
    /// Largest JSON request body, e.g. 1m
    #[arg(long, default_value = "1m", value_name = "SIZE", value_parser = parse_size, help_heading = ACCESS)]
    max_body: usize,
    /// Largest archive upload, e.g. 512m
    #[arg(long, default_value = "512m", value_name = "SIZE", value_parser = parse_size, help_heading = ACCESS)]
    max_archive: usize,

    /// Where the server records its sandboxes [default: $ENCLAVE_STATE_DIR/server]
    #[arg(long, value_name = "DIR", help_heading = SANDBOXES)]
    state_dir: Option<PathBuf>,
    /// Seconds between sweeps that remove errored, expired and idle sandboxes
    #[arg(long, default_value = "300", value_name = "SECS", value_parser = parse_secs, help_heading = SANDBOXES)]
    cleanup_interval: Duration,
    /// Remove each sandbox this many seconds after it was created
    #[arg(long, value_name = "SECS", value_parser = parse_secs, help_heading = SANDBOXES)]
    ttl: Option<Duration>,
    /// Remove a sandbox unused for this many seconds
    #[arg(long, value_name = "SECS", value_parser = parse_secs, help_heading = SANDBOXES)]
    idle_timeout: Option<Duration>,
    /// Sandboxes `/pool/initialize` makes when the request does not say
    #[arg(long, default_value_t = 0, value_name = "N", help_heading = SANDBOXES)]
    pool_size: usize,
    /// Seconds `/pool/execute` waits for a free sandbox when the request does not say
    #[arg(long, default_value = "60", value_name = "SECS", value_parser = parse_secs, help_heading = SANDBOXES)]
    pool_wait: Duration,

    /// Allow `privileged: true`
    #[arg(long, help_heading = POLICY)]
    allow_privileged: bool,
    /// Allow bind mounts of host paths under this prefix (repeatable)
    #[arg(long, value_name = "PREFIX", help_heading = POLICY)]
    allow_mount: Vec<PathBuf>,
    /// Allow Docker named volumes (shared by every caller that names them)
    #[arg(long, help_heading = POLICY)]
    allow_named_volumes: bool,
    /// Allow this Docker network besides bridge and none (repeatable)
    #[arg(long, value_name = "NAME", help_heading = POLICY)]
    allow_network: Vec<String>,
    /// Allow ports published on addresses other than loopback
    #[arg(long, help_heading = POLICY)]
    allow_public_ports: bool,
    /// Allow volcengine sandboxes that call this SandboxFusion URL (repeatable; `*`: any)
    #[arg(long, value_name = "URL", env = "ENCLAVE_ALLOW_VOLCENGINE", value_delimiter = ',', help_heading = POLICY)]
    allow_volcengine: Vec<String>,
    /// Largest `memory_limit` a sandbox may have, e.g. 4g [default: 8g]
    #[arg(long, value_name = "SIZE", value_parser = parse_memory, help_heading = POLICY)]
    max_memory: Option<i64>,
    /// Most CPUs a sandbox may have [default: 4]
    #[arg(long, value_name = "N", value_parser = parse_cpus, help_heading = POLICY)]
    max_cpus: Option<f64>,
    /// Largest `pids_limit` a sandbox may have [default: 4096]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..), help_heading = POLICY)]
    max_pids: Option<i64>,
    /// Most sandboxes one caller may have at once [default: 100]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), help_heading = POLICY)]
    max_sandboxes: Option<u64>,
}

/// Seconds, positive and at most a year.
fn parse_secs(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s <= MAX_TIMEOUT_SECS => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "`{text}` is not a number of seconds above 0 (at most a year)"
        )),
    }
}

/// A size in bytes with an optional k, m or g suffix.
fn parse_size(text: &str) -> Result<usize, String> {
    match parse_memory_limit(text) {
        Ok(n) if n > 0 => usize::try_from(n).map_err(|_| format!("`{text}` is too large")),
        _ => Err(format!(
            "`{text}` is not a size: use a whole number above 0 with an optional k, m or g suffix, e.g. 512m"
        )),
    }
}

fn parse_memory(text: &str) -> Result<i64, String> {
    parse_size(text).map(|n| n as i64)
}

fn parse_cpus(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(n),
        _ => Err(format!("`{text}` is not a number of CPUs above 0")),
    }
}

impl ServerArgs {
    fn policy(&self) -> Policy {
        let mut policy = Policy {
            allow_privileged: self.allow_privileged,
            allow_mounts: self.allow_mount.clone(),
            allow_named_volumes: self.allow_named_volumes,
            allow_networks: self.allow_network.clone(),
            allow_public_ports: self.allow_public_ports,
            allow_volcengine: self.allow_volcengine.clone(),
            ..Policy::default()
        };
        if self.max_memory.is_some() {
            policy.max_memory_bytes = self.max_memory;
        }
        if self.max_cpus.is_some() {
            policy.max_cpus = self.max_cpus;
        }
        if self.max_pids.is_some() {
            policy.max_pids = self.max_pids;
        }
        if let Some(n) = self.max_sandboxes {
            policy.max_sandboxes = Some(usize::try_from(n).unwrap_or(usize::MAX));
        }
        policy
    }

    fn options(&self) -> ServiceOptions {
        ServiceOptions {
            policy: self.policy(),
            ttl: self.ttl,
            idle_timeout: self.idle_timeout,
            cleanup_interval: self.cleanup_interval,
            default_pool_size: self.pool_size,
            default_pool_wait: self.pool_wait,
        }
    }

    /// Every accepted key: `--api-key` or `--api-key-file` (the `default` tenant, an admin) and
    /// the lines of `--api-keys-file`.
    /// `global_key` is the global `--api-key` (`enclave --api-key K server`), taken when the
    /// server's own is not given.
    fn keys(&self, global_key: Option<&str>) -> Result<Keys> {
        let mut keys = Vec::new();
        let api_key = self
            .api_key
            .clone()
            .or_else(|| global_key.map(String::from));
        let single = match (&api_key, &self.api_key_file) {
            (Some(_), Some(_)) => bail!(Error::Usage(
                "give the key with --api-key (or ENCLAVE_API_KEY) or --api-key-file, not both"
                    .into()
            )),
            (Some(key), None) => Some(key.clone()),
            (None, Some(path)) => Some(first_line(path)?),
            (None, None) => None,
        };
        if let Some(key) = single {
            if key.trim().is_empty() {
                bail!(Error::Usage(
                    "the API key is empty (is ENCLAVE_API_KEY set to nothing?)".into()
                ));
            }
            keys.push(ApiKey {
                key,
                caller: Arc::new(Caller {
                    tenant: DEFAULT_TENANT.into(),
                    admin: true,
                }),
            });
        }
        if let Some(path) = &self.api_keys_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --api-keys-file {}", path.display()))?;
            let more = http::parse_keys_file(&text)
                .map_err(|e| Error::Usage(format!("--api-keys-file {}: {e}", path.display())))?;
            for k in more {
                if keys.iter().any(|have| have.key == k.key) {
                    bail!(Error::Usage(format!(
                        "--api-keys-file {}: the key of `{}` is also the --api-key",
                        path.display(),
                        k.caller.tenant
                    )));
                }
                keys.push(k);
            }
        }
        Ok(Keys::new(keys))
    }

    fn cors_origins(&self) -> Result<Vec<HeaderValue>> {
        self.cors_origin
            .iter()
            .map(|o| {
                let o = o.trim_end_matches('/');
                if !(o.starts_with("http://") || o.starts_with("https://")) || o == "*" {
                    bail!(Error::Usage(format!(
                        "--cors-origin `{o}` is not an origin: give scheme, host and port, e.g. http://localhost:3000"
                    )));
                }
                HeaderValue::from_str(o)
                    .map_err(|_| Error::Usage(format!("--cors-origin `{o}` is not a valid header value")).into())
            })
            .collect()
    }

    /// The server's own state directory: `--state-dir`, else `server/` in enclave's.
    fn state_dir(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.state_dir {
            return Ok(dir.clone());
        }
        let local = StateStore::from_env()?;
        let path = local.path();
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        Ok(dir.join("server"))
    }
}

fn first_line(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --api-key-file {}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

/// The addresses `host` names; all must be loopback for a server without a key.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve --host `{host}`"))?
        .collect();
    if addrs.is_empty() {
        bail!(Error::Usage(format!(
            "--host `{host}` resolves to no address"
        )));
    }
    Ok(addrs)
}

/// What the server's sandboxes live in: the local engine, or with `--backend kubernetes` Pods in
/// the cluster (the service account's when the server runs in one). Either must answer now,
/// not at the first request.
async fn serving_manager(ctx: &Ctx, state: StateStore, logger: Logger) -> Result<Arc<dyn Manager>> {
    if ctx.backend == BackendChoice::Kubernetes {
        let manager = ctx
            .until_signal(KubeManager::connect(
                ctx.context.as_deref(),
                ctx.namespace.as_deref(),
                state,
            ))
            .await?
            .with_agent_image(ctx.agent_image.clone())
            .with_warnings(Arc::new(move |w| logger.note("warning", w)))
            .with_notes(Arc::new(move |n| logger.note("info", n)));
        let version = ctx.until_signal(manager.cluster().version()).await?;
        logger.note(
            "info",
            &format!(
                "sandboxes are Pods: kubernetes {version} at {}, namespace {}",
                manager.cluster().address(),
                manager.namespace()
            ),
        );
        return Ok(Arc::new(manager));
    }
    let engine = DockerEngine::connect()?;
    ctx.until_signal(engine.ready()).await?;
    let manager = LocalManager::new(engine, state)
        .with_warnings(Arc::new(move |w| logger.note("warning", w)))
        .with_notes(Arc::new(move |n| logger.note("info", n)));
    Ok(Arc::new(manager))
}

fn url_of(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

pub(crate) async fn run(args: ServerArgs, ctx: &Ctx) -> Result<u8> {
    let keys = args.keys(ctx.api_key.as_deref())?;
    let cors_origins = args.cors_origins()?;
    let addrs = resolve(&args.host, args.port).await?;
    if keys.is_open() && !args.insecure && addrs.iter().any(|a| !a.ip().is_loopback()) {
        bail!(Error::Usage(format!(
            "refusing to listen on {} without an API key: anyone who reaches it could run code on this machine; set --api-key, --api-key-file or --api-keys-file (or pass --insecure)",
            args.host
        )));
    }
    let logger = Logger {
        format: args.log_format,
    };
    let dir = args.state_dir()?;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the server's state directory {}", dir.display()))?;
    let manager = serving_manager(ctx, StateStore::at(&dir), logger).await?;
    let service = ctx
        .until_signal(Service::start(manager, args.options()))
        .await?;
    let listener = tokio::net::TcpListener::bind(addrs.as_slice())
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let url = url_of(listener.local_addr()?);
    let settings = Settings {
        keys,
        cors_origins,
        max_body: args.max_body,
        max_archive: args.max_archive,
    };
    let app = http::app(service.clone(), settings, logger);
    match logger.format {
        LogFormat::Text => eprintln!("listening on {url}"),
        LogFormat::Json => logger.note("info", &format!("listening on {url}")),
    }
    if ctx.output.json {
        // One line, so a script can read it before the server's first request.
        ctx.output
            .line(&json!({ "listening": url }).to_string())
            .await?;
    }
    let served = http::serve(listener, app, ctx.cancel.clone(), args.shutdown_grace).await;
    logger.note(
        "info",
        if args.cleanup_on_exit {
            "shutting down: removing every sandbox"
        } else {
            "shutting down: sandboxes stay for the next run"
        },
    );
    service.shutdown(args.cleanup_on_exit).await;
    served?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_seconds_parse() {
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("512"), Ok(512));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("-1").is_err());
        assert!(parse_cpus("0").is_err());
    }
}

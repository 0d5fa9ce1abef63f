//! `enclave mcp`: sandboxes as Model Context Protocol tools for agent hosts, over stdio (the
//! default: `claude mcp add enclave -- enclave mcp`) or streamable HTTP (`--http`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::Ctx;
use crate::error::Error;
use crate::mcp::{self, Core, HttpOptions, Options};
use crate::model::DEFAULT_IMAGE;

const HTTP: &str = "HTTP (--http)";
const SANDBOXES: &str = "Sandboxes";

#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    /// Serve streamable HTTP at /mcp instead of stdio
    #[arg(long, help_heading = HTTP)]
    http: bool,
    /// Address to listen on; one other than loopback needs --token-file
    #[arg(long, default_value = "127.0.0.1", requires = "http", help_heading = HTTP)]
    host: String,
    /// Port to listen on; 0 picks a free one (the `listening on` line on stderr says which)
    #[arg(long, default_value_t = 8765, requires = "http", help_heading = HTTP)]
    port: u16,
    /// Bearer tokens callers must send, one a line; each token's holder sees only the sandboxes it made
    #[arg(long, value_name = "PATH", requires = "http", help_heading = HTTP)]
    token_file: Option<PathBuf>,
    /// A web origin whose pages may call the server, e.g. http://localhost:6274 (repeatable)
    #[arg(long, value_name = "ORIGIN", requires = "http", help_heading = HTTP)]
    allow_origin: Vec<String>,
    /// A host name clients reach the server by, besides loopback and --host (repeatable; needed with --host 0.0.0.0)
    #[arg(long, value_name = "NAME", requires = "http", help_heading = HTTP)]
    allow_host: Vec<String>,

    /// Tools to offer, comma-separated [default: all]
    #[arg(long, value_delimiter = ',', value_name = "NAMES", help_heading = SANDBOXES)]
    tools: Option<Vec<String>>,
    /// Run calls without sandbox_id in this sandbox instead of a throwaway one
    #[arg(long, value_name = "ID", help_heading = SANDBOXES)]
    sandbox: Option<String>,
    /// Image of throwaway sandboxes and of sandbox_create's by default
    #[arg(long, default_value = DEFAULT_IMAGE, help_heading = SANDBOXES)]
    image: String,
    /// A host directory upload_file may read from and download_file write to (repeatable)
    #[arg(long, value_name = "DIR", help_heading = SANDBOXES)]
    allow_dir: Vec<PathBuf>,
    /// Seconds one call may run before what it started is killed
    #[arg(long, default_value = "45", value_name = "SECS", value_parser = parse_secs, help_heading = SANDBOXES)]
    call_timeout: Duration,
    /// Minutes a sandbox from sandbox_create may sit unused before any enclave removes it
    #[arg(long, default_value = "30", value_name = "MINUTES", value_parser = parse_minutes, help_heading = SANDBOXES)]
    idle_expiry: Duration,
    /// Let new sandboxes reach the network unless sandbox_create says otherwise
    #[arg(long, help_heading = SANDBOXES)]
    network: bool,
    /// A label for every sandbox made, KEY=VALUE (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_label, help_heading = SANDBOXES)]
    label: Vec<(String, String)>,
    /// Leave sandbox_create's sandboxes at exit (their idle expiry still applies)
    #[arg(long, help_heading = SANDBOXES)]
    keep: bool,
}

pub(crate) async fn run(args: McpArgs, ctx: &Ctx) -> Result<u8> {
    let allow_dirs = allowed_dirs(&args.allow_dir)?;
    let http = args.http.then_some(HttpOptions {
        host: args.host,
        port: args.port,
        token_file: args.token_file,
        allowed_origins: args.allow_origin,
        allowed_hosts: args.allow_host,
    });
    if let Some(http) = &http {
        // Refused before anything is started: exposure, tokens, origins.
        http.check()?;
    }
    let manager: Arc<dyn crate::manager::Manager> = Arc::from(ctx.manager().await?);
    if let Some(id) = &args.sandbox {
        let sandbox = ctx
            .until_signal(manager.find(id))
            .await
            .with_context(|| format!("--sandbox {id}"))?;
        if ctx.output.verbose {
            ctx.output
                .note(&format!("calls without sandbox_id run in `{}`", sandbox.id));
        }
    }
    let options = Options {
        tools: args.tools,
        sandbox: args.sandbox,
        image: args.image,
        allow_dirs,
        call_timeout: args.call_timeout,
        idle_expiry: args.idle_expiry,
        network: args.network,
        labels: args.label,
        keep: args.keep,
        remote: ctx.is_remote(),
    };
    let core = Core::new(manager, options)?;
    if let Some(http) = http {
        mcp::serve_http(core, http, ctx.cancel.clone()).await?;
    } else {
        mcp::serve_stdio(core, ctx.cancel.clone()).await?;
    }
    Ok(0)
}

/// The `--allow-dir` directories, resolved once so a symlink swapped in later cannot widen them.
fn allowed_dirs(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    dirs.iter()
        .map(|dir| {
            let resolved = std::fs::canonicalize(dir)
                .map_err(|e| Error::Usage(format!("--allow-dir {}: {e}", dir.display())))?;
            if !resolved.is_dir() {
                return Err(Error::Usage(format!(
                    "--allow-dir {}: not a directory",
                    dir.display()
                ))
                .into());
            }
            Ok(resolved)
        })
        .collect()
}

fn parse_secs(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs.is_finite() => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!("`{text}` is not a number of seconds above 0")),
    }
}

fn parse_minutes(text: &str) -> Result<Duration, String> {
    parse_secs(text)
        .map(|d| d * 60)
        .map_err(|_| format!("`{text}` is not a number of minutes above 0"))
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.starts_with("enclave.") => {
            Ok((key.to_string(), value.to_string()))
        }
        Some((key, _)) if key.starts_with("enclave.") => Err(format!(
            "`{key}`: labels starting with `enclave.` are enclave's own"
        )),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

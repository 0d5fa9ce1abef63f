//! `enclave shell ID`: a Python REPL bound to one sandbox's live session (`repl/`). On a
//! terminal it is interactive; with piped stdin it runs the input as one script.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::exec::parse_timeout;
use super::{parse_sandbox_id, Ctx};
use crate::repl::{self, Ending, Repl, ShellOptions};
use crate::session::SessionOptions;

#[derive(Debug, Args)]
pub(crate) struct ShellArgs {
    /// Sandbox id (a unique prefix is enough)
    #[arg(value_parser = parse_sandbox_id)]
    pub(crate) id: String,
    /// Interrupt an input that runs longer than SECS (the session and its variables stay)
    #[arg(short, long, value_name = "SECS")]
    pub(crate) timeout: Option<f64>,
    /// Where images the session displays are saved
    #[arg(long, value_name = "DIR", default_value = repl::default_image_dir().as_os_str())]
    pub(crate) image_dir: PathBuf,
    /// The Python interpreter in the sandbox [default: python3, else python]
    #[arg(long, value_name = "PROGRAM")]
    pub(crate) python: Option<String>,
}

pub(crate) async fn run(args: ShellArgs, ctx: &Ctx) -> Result<u8> {
    let timeout = parse_timeout(args.timeout)?;
    let interactive = std::io::stdin().is_terminal();
    let options = ShellOptions {
        timeout,
        image_dir: args.image_dir,
        color: interactive && ctx.output.color_stderr(),
        history: history_file(),
    };
    let manager = ctx.manager_for(&args.id).await?;
    let sandbox = ctx.until_signal(manager.find(&args.id)).await?;
    let session_options = SessionOptions {
        kind: None,
        interpreter: args.python,
    };
    let session = ctx
        .until_signal(manager.open_session(&sandbox, session_options))
        .await?;
    let mut repl = Repl::new(
        session,
        manager.as_ref(),
        &sandbox,
        &options,
        ctx.cancel.clone(),
        ctx.output,
    )?;
    let ending = if interactive {
        repl.interactive(&options).await
    } else {
        repl.piped().await
    };
    // However the shell ends, its session's process in the sandbox is killed.
    let closed = repl.close().await;
    let ending = ending?;
    closed?;
    match ending {
        Ending::Left(code) => Ok(code),
        Ending::Cancelled => Err(ctx.interrupted().into()),
    }
}

/// `ENCLAVE_HISTORY_FILE` (empty: no history), else `shell_history` in the state directory,
/// shared by every shell.
fn history_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ENCLAVE_HISTORY_FILE") {
        return (!path.is_empty()).then(|| PathBuf::from(path));
    }
    let dir = match std::env::var_os("ENCLAVE_STATE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => directories::ProjectDirs::from("dev", "enclave", "enclave")?
            .data_local_dir()
            .to_path_buf(),
    };
    Some(dir.join("shell_history"))
}

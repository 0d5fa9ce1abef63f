//! `enclave shell`: a REPL bound to one sandbox's live session. The rustyline editor runs on a
//! thread of its own (`editor.rs`); this loop reads complete inputs (Python's rules, asked of the
//! session), runs them with Ctrl-C wired to the session's interrupt, and renders what comes back
//! (`render.rs`). `commands.rs` reads `:` commands and `!` lines; `files.rs` moves files.

mod commands;
mod editor;
mod files;
mod render;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use futures_util::FutureExt;
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

pub(crate) use render::default_image_dir;

use crate::manager::Manager;
use crate::model::Sandbox;
use crate::output::Output;
use crate::session::{Completeness, DoneStatus, Interrupter, Session, SessionInfo, SessionKind};
use commands::{Command, Line};
use editor::{LineEditor, Reply};
use render::Renderer;

const PROMPT: &str = ">>> ";
const CONTINUATION: &str = "... ";
/// The exit code of a script stopped by Ctrl-C: 128 + SIGINT, as a shell reports it.
const INTERRUPTED: u8 = 130;

/// How the shell was asked to behave.
pub(crate) struct ShellOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) image_dir: PathBuf,
    /// Colour on stderr (tracebacks, notices).
    pub(crate) color: bool,
    /// Where the history is kept; `None`: not kept.
    pub(crate) history: Option<PathBuf>,
}

/// How a shell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Ctrl-D, `:quit`, or the end of piped input: the exit code.
    Left(u8),
    /// A signal (SIGTERM, SIGHUP) stopped it.
    Cancelled,
}

pub(crate) struct Repl<'a> {
    session: Box<dyn Session>,
    manager: &'a dyn Manager,
    sandbox: &'a Sandbox,
    renderer: Renderer,
    timeout: Option<Duration>,
    cancel: CancellationToken,
    interrupts: Signal,
    output: Output,
}

enum Input {
    Text(String),
    Leave,
}

impl<'a> Repl<'a> {
    pub(crate) fn new(
        session: Box<dyn Session>,
        manager: &'a dyn Manager,
        sandbox: &'a Sandbox,
        options: &ShellOptions,
        cancel: CancellationToken,
        output: Output,
    ) -> Result<Self> {
        let prefix: String = sandbox.id.chars().take(8).collect();
        Ok(Repl {
            session,
            manager,
            sandbox,
            renderer: Renderer::new(options.color, options.image_dir.clone(), &prefix),
            timeout: options.timeout,
            cancel,
            interrupts: signal(SignalKind::interrupt())?,
            output,
        })
    }

    /// Ends the session (its process in the sandbox is killed).
    pub(crate) async fn close(self) -> Result<()> {
        self.session.close().await
    }

    /// The interactive loop, on a terminal.
    pub(crate) async fn interactive(&mut self, options: &ShellOptions) -> Result<Ending> {
        let mut editor = LineEditor::start(options.history.clone(), options.color)?;
        eprintln!("{}", banner(self.session.info()));
        loop {
            let input = match self.read_input(&mut editor).await? {
                Some(Input::Text(text)) => text,
                Some(Input::Leave) => return Ok(Ending::Left(0)),
                None => {
                    // Stopped at the prompt: leave the terminal on a fresh line.
                    eprintln!();
                    return Ok(Ending::Cancelled);
                }
            };
            editor.remember(input.trim_end_matches('\n'));
            let line = match commands::parse(&input) {
                Ok(line) => line,
                Err(message) => {
                    eprintln!("error: {message}");
                    continue;
                }
            };
            let done = match line {
                Line::Code(code) => self.run(&code).await,
                Line::Shell(cmd) => self.run(&commands::shell_code(&cmd)).await,
                Line::Command(Command::Quit) => return Ok(Ending::Left(0)),
                Line::Command(command) => {
                    if let Err(e) = self.command(command).await {
                        self.output.error_text(&e);
                    }
                    Ok(Some(DoneStatus::Ok))
                }
            };
            if done?.is_none() {
                return Ok(Ending::Cancelled);
            }
        }
    }

    /// Not a terminal: the whole input runs as one script, as `python < file` runs it. Exit
    /// code 1 when it raised, 124 when it timed out.
    pub(crate) async fn piped(&mut self) -> Result<Ending> {
        let mut bytes = Vec::new();
        let mut stdin = tokio::io::stdin();
        tokio::select! {
            read = stdin.read_to_end(&mut bytes) => { read?; }
            Some(()) = self.interrupts.recv() => return Ok(Ending::Left(INTERRUPTED)),
            () = self.cancel.cancelled() => return Ok(Ending::Cancelled),
        }
        let mut code = String::from_utf8_lossy(&bytes).into_owned();
        // A script's last expression is not echoed, as with `python < file`.
        code.push_str("\npass\n");
        Ok(match self.run(&code).await? {
            None => Ending::Cancelled,
            Some(DoneStatus::Ok) => Ending::Left(0),
            Some(DoneStatus::Interrupted) => Ending::Left(INTERRUPTED),
            Some(DoneStatus::Timeout) => Ending::Left(124),
            Some(DoneStatus::Error | DoneStatus::Restarted) => Ending::Left(1),
        })
    }

    /// Reads one complete input: more lines while the session says it is incomplete. `None`
    /// when a signal came.
    async fn read_input(&mut self, editor: &mut LineEditor) -> Result<Option<Input>> {
        let mut buffer = String::new();
        let mut prompt = PROMPT;
        let mut indent = String::new();
        loop {
            editor.read(prompt, &indent);
            let Some(reply) = self.next_reply(editor).await else {
                return Ok(None);
            };
            match reply {
                Reply::Line(line) => {
                    if buffer.is_empty() {
                        let start = line.trim_start();
                        if start.is_empty() {
                            continue;
                        }
                        if start.starts_with([':', '!']) {
                            return Ok(Some(Input::Text(line)));
                        }
                    } else {
                        buffer.push('\n');
                    }
                    buffer.push_str(&line);
                    if line.trim().is_empty() {
                        // A blank line ends a block, as in Python's REPL.
                        buffer.push('\n');
                    }
                    let (status, next_indent) = self.session.is_complete(&buffer).await?;
                    if status == Completeness::Incomplete {
                        prompt = CONTINUATION;
                        indent = next_indent;
                        continue;
                    }
                    return Ok(Some(Input::Text(buffer)));
                }
                Reply::Interrupted => {
                    buffer.clear();
                    prompt = PROMPT;
                    indent.clear();
                }
                Reply::Eof => return Ok(Some(Input::Leave)),
                Reply::Failed(why) => bail!("the line editor failed: {why}"),
                Reply::Complete { .. } => unreachable!("served by next_reply"),
            }
        }
    }

    /// The editor's next answer, serving Tab completions from the session meanwhile.
    async fn next_reply(&mut self, editor: &mut LineEditor) -> Option<Reply> {
        loop {
            let reply = tokio::select! {
                reply = editor.next() => reply,
                () = self.cancel.cancelled() => return None,
            };
            let Reply::Complete { line, pos, answer } = reply else {
                return Some(reply);
            };
            let (matches, start, _) =
                self.session
                    .complete(&line, pos)
                    .await
                    .unwrap_or((Vec::new(), pos, pos));
            let _ = answer.send((start.min(pos), matches));
        }
    }

    /// Runs one input; Ctrl-C interrupts it. `None` when a signal stopped the shell.
    async fn run(&mut self, code: &str) -> Result<Option<DoneStatus>> {
        // A Ctrl-C that came between inputs (after one ended, before the editor took the
        // terminal) is not meant for this one.
        while self.interrupts.recv().now_or_never().is_some() {}
        let interrupter = Interrupter::default();
        let renderer = &mut self.renderer;
        let mut show = |event| renderer.show(event);
        let execute = self
            .session
            .execute(code, self.timeout, &interrupter, &mut show);
        tokio::pin!(execute);
        loop {
            tokio::select! {
                done = &mut execute => return done.map(Some),
                Some(()) = self.interrupts.recv() => interrupter.fire(),
                () = self.cancel.cancelled() => return Ok(None),
            }
        }
    }

    async fn command(&mut self, command: Command) -> Result<()> {
        match command {
            Command::Help => println!("{}", commands::HELP),
            Command::Reset => {
                self.session.reset().await?;
                eprintln!("enclave: the session was reset: a fresh interpreter, no variables");
            }
            Command::Timeout(timeout) => {
                self.timeout = timeout;
                eprintln!("enclave: timeout {}", describe_timeout(timeout));
            }
            Command::ShowTimeout => {
                eprintln!("enclave: timeout {}", describe_timeout(self.timeout));
            }
            Command::Upload { local, dest } => {
                let (to, bytes) =
                    files::upload(self.manager, self.sandbox, &local, dest.as_deref()).await?;
                eprintln!("enclave: uploaded {local} to {to} ({bytes} bytes)");
            }
            Command::Download { path, local } => {
                let to =
                    files::download(self.manager, self.sandbox, &path, local.as_deref()).await?;
                eprintln!("enclave: downloaded {path} to {}", to.display());
            }
            Command::Tools => {
                let info = self.manager.info(self.sandbox).await?;
                if info.available_tools.is_empty() {
                    eprintln!("enclave: this sandbox has no tools");
                }
                for name in info.available_tools.keys() {
                    println!("{name}");
                }
            }
            Command::Quit => {}
        }
        Ok(())
    }
}

fn describe_timeout(timeout: Option<Duration>) -> String {
    match timeout {
        Some(t) => format!("{}s per input", t.as_secs_f64()),
        None => "off".to_string(),
    }
}

/// `enclave python 3.11 · sandbox k3x9m2pa · :help for commands, Ctrl-D to leave`; a notebook
/// sandbox's says `python 3.11 kernel`, so the user knows which interpreter holds the variables.
pub(crate) fn banner(info: &SessionInfo) -> String {
    let kernel = match info.kind {
        SessionKind::Notebook => " kernel",
        SessionKind::Python => "",
    };
    format!(
        "enclave {}{kernel} · sandbox {} · :help for commands, Ctrl-D to leave",
        short_version(&info.language),
        info.sandbox
    )
}

/// `python 3.11.2` → `python 3.11`: the version a user picks an image by.
fn short_version(language: &str) -> String {
    let Some((name, version)) = language.rsplit_once(' ') else {
        return language.to_string();
    };
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() > 2 && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit())) {
        format!("{name} {}.{}", parts[0], parts[1])
    } else {
        language.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_names_the_language_and_the_sandbox() {
        let info = SessionInfo {
            kind: SessionKind::Python,
            language: "python 3.11.2".into(),
            sandbox: "k3x9m2pa".into(),
        };
        assert_eq!(
            banner(&info),
            "enclave python 3.11 · sandbox k3x9m2pa · :help for commands, Ctrl-D to leave"
        );
        let kernel = SessionInfo {
            kind: SessionKind::Notebook,
            ..info
        };
        assert!(banner(&kernel).starts_with("enclave python 3.11 kernel · sandbox k3x9m2pa"));
        assert_eq!(short_version("python 3.12.0rc1"), "python 3.12.0rc1");
        assert_eq!(short_version("R"), "R");
    }
}

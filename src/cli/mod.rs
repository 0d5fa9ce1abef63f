//! The command line: parsing, the shared context, and the one place results become exit codes.

mod completions;
pub(crate) mod cp;
mod create;
mod exec;
mod input;
mod inspect;
mod ls;
mod mcp;
mod outcomes;
mod rm;
mod run;
mod run_tool;
mod sandbox_args;
mod server;
mod shell;
mod stop;
mod tools;
mod volcengine_args;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::backend::DockerEngine;
use crate::error::{self, exit_code, Error, Signal};
use crate::manager::{KubeManager, LocalManager, Manager, RemoteManager};
use crate::model::Location;
use crate::output::{ColorChoice, Output};
use crate::state::StateStore;

/// Fast, secure sandboxes for AI agents and CI.
#[derive(Debug, Parser)]
#[command(
    name = "enclave",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

const GLOBAL: &str = "Global options";

#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Print results as JSON on stdout (errors too)
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// When to use colours
    #[arg(long, global = true, help_heading = GLOBAL, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
    /// Print only ids or data; no notes on stderr
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,
    /// Say more about what happens
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub verbose: bool,
    /// Work with the sandboxes of the enclave server at URL instead of the local engine
    #[arg(long, global = true, help_heading = GLOBAL, env = "ENCLAVE_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// The server's API key
    #[arg(long, global = true, help_heading = GLOBAL, env = "ENCLAVE_API_KEY", value_name = "KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Where new sandboxes go and which `ls` lists: docker (the engine at DOCKER_HOST) or
    /// kubernetes (Pods in the cluster of the kubeconfig, or the one this runs in)
    #[arg(long, global = true, help_heading = GLOBAL, env = "ENCLAVE_BACKEND", value_enum, default_value_t = BackendChoice::Docker, value_name = "BACKEND")]
    pub backend: BackendChoice,
    /// kubernetes: the namespace of new Pods and of `ls` [default: the context's]
    #[arg(long, global = true, help_heading = GLOBAL, env = "ENCLAVE_K8S_NAMESPACE", value_name = "NS")]
    pub namespace: Option<String>,
    /// kubernetes: the kubeconfig context [default: the current one]
    #[arg(long, global = true, help_heading = GLOBAL, env = "ENCLAVE_K8S_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,
    /// kubernetes: put the agent into new Pods from this image by an init container, instead of
    /// copying it in over exec (see docs/kubernetes.md)
    #[arg(long, global = true, help_heading = GLOBAL, env = "ENCLAVE_K8S_AGENT_IMAGE", value_name = "IMAGE")]
    pub agent_image: Option<String>,
}

/// Where new sandboxes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BackendChoice {
    Docker,
    Kubernetes,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a sandbox and print its id
    Create(create::CreateArgs),
    /// List sandboxes
    #[command(visible_alias = "ps")]
    Ls(ls::LsArgs),
    /// Show a sandbox's full SandboxInfo as JSON
    Inspect(inspect::InspectArgs),
    /// Run a command in a sandbox; exits with the command's exit code
    Exec(exec::ExecArgs),
    /// Create a sandbox, run one command in it, remove it
    Run(run::RunArgs),
    /// Call a sandbox's tool; prints its output, exits with its status
    RunTool(run_tool::RunToolArgs),
    /// List a sandbox's tools (or all tools) and their OpenAI schemas
    Tools(tools::ToolsArgs),
    /// Remove sandboxes (their containers are killed at once)
    #[command(visible_alias = "remove")]
    Rm(rm::RmArgs),
    /// Stop sandboxes: their processes end, they stay until removed
    Stop(stop::StopArgs),
    /// Copy files and directories between this machine and a sandbox
    Cp(cp::CpArgs),
    /// A Python REPL in a sandbox: one live session, its variables kept between inputs
    Shell(shell::ShellArgs),
    /// Serve the HTTP API (ms-enclave's, and enclave's own) over the local engine or a cluster (--backend)
    Server(server::ServerArgs),
    /// Serve sandboxes as MCP tools to agent hosts (stdio, or streamable HTTP with --http)
    Mcp(mcp::McpArgs),
    /// Print a shell completion script
    Completions(completions::CompletionsArgs),
}

impl Command {
    /// Commands that stop by themselves when told to, and clean up what they started (the
    /// container of a `run`, a half-made `create`, the command of an `exec`). The others are
    /// simply dropped at the first signal: they have nothing to undo.
    fn cleans_up(&self) -> bool {
        matches!(
            self,
            Command::Create(_)
                | Command::Exec(_)
                | Command::Run(_)
                | Command::RunTool(_)
                | Command::Server(_)
                | Command::Mcp(_)
                | Command::Shell(_)
        )
    }

    /// Commands that take Ctrl-C as input (the shell interrupts its running code with it)
    /// rather than as a signal to stop.
    fn reads_interrupts(&self) -> bool {
        matches!(self, Command::Shell(_))
    }
}

/// What every command gets: output settings, the stop signal, and where sandboxes live.
pub(crate) struct Ctx {
    pub(crate) output: Output,
    /// Cancelled at the first SIGINT, SIGTERM or SIGHUP.
    pub(crate) cancel: CancellationToken,
    signal: Arc<OnceLock<Signal>>,
    /// `--server`: every command goes there.
    server: Option<String>,
    api_key: Option<String>,
    /// `--backend`, `--namespace`, `--context`: where new sandboxes go without `--server`.
    pub(crate) backend: BackendChoice,
    pub(crate) namespace: Option<String>,
    pub(crate) context: Option<String>,
    pub(crate) agent_image: Option<String>,
}

impl Ctx {
    /// Where new sandboxes go and which are listed: `--server`'s, else the local engine's.
    pub(crate) async fn manager(&self) -> Result<Box<dyn Manager>> {
        let state = StateStore::from_env()?;
        match (&self.server, self.backend) {
            (Some(url), _) => self.remote(url, state),
            (None, BackendChoice::Kubernetes) => {
                self.kubernetes(self.context.as_deref(), self.namespace.as_deref(), state)
                    .await
            }
            (None, BackendChoice::Docker) => self.local(state).await,
        }
    }

    /// Whether new sandboxes go to an `enclave server` (`--server`).
    pub(crate) fn is_remote(&self) -> bool {
        self.server.is_some()
    }

    /// The manager of the sandbox `id_or_prefix` names: `--server`'s when given, else wherever
    /// the state file recorded it (a server's URL, or the local engine).
    pub(crate) async fn manager_for(&self, id_or_prefix: &str) -> Result<Box<dyn Manager>> {
        let (location, state) = self.place_of(id_or_prefix)?;
        self.manager_at(&location, state).await
    }

    /// Where the sandbox `id_or_prefix` names lives, and the state file.
    fn place_of(&self, id_or_prefix: &str) -> Result<(Location, StateStore)> {
        let state = StateStore::from_env()?;
        if let Some(url) = &self.server {
            let url = url.clone();
            return Ok((Location::Server { url }, state));
        }
        // An unreadable state file is the local manager's to recover; it holds the local
        // sandboxes' labels.
        let location = match state.load() {
            Ok(data) => data.location_of(id_or_prefix)?,
            Err(_) => None,
        };
        Ok((location.unwrap_or_else(|| self.default_location()), state))
    }

    /// Where a sandbox the state file does not hold is looked for: the `--backend` chosen (a
    /// Pod found only by its labels, say).
    fn default_location(&self) -> Location {
        match self.backend {
            BackendChoice::Docker => Location::Docker,
            BackendChoice::Kubernetes => Location::Kubernetes {
                context: self.context.clone(),
                // Empty: the context's own namespace.
                namespace: self.namespace.clone().unwrap_or_default(),
            },
        }
    }

    async fn manager_at(&self, location: &Location, state: StateStore) -> Result<Box<dyn Manager>> {
        match location {
            Location::Server { url } => self.remote(url, state),
            Location::Docker => self.local(state).await,
            Location::Kubernetes { context, namespace } => {
                let namespace = Some(namespace.as_str()).filter(|n| !n.is_empty());
                self.kubernetes(context.as_deref(), namespace, state).await
            }
        }
    }

    async fn kubernetes(
        &self,
        context: Option<&str>,
        namespace: Option<&str>,
        state: StateStore,
    ) -> Result<Box<dyn Manager>> {
        let output = self.output;
        let manager = self
            .until_signal(KubeManager::connect(context, namespace, state))
            .await?
            .with_agent_image(self.agent_image.clone())
            .with_warnings(Arc::new(move |w| output.warn(w)))
            .with_notes(Arc::new(move |n| {
                if output.verbose {
                    output.note(n);
                }
            }));
        if self.output.verbose {
            let cluster = manager.cluster();
            self.output.note(&format!(
                "kubernetes: {} (context {}), namespace {}",
                cluster.address(),
                cluster.context().unwrap_or("in-cluster"),
                manager.namespace()
            ));
        }
        Ok(Box::new(manager))
    }

    fn remote(&self, url: &str, state: StateStore) -> Result<Box<dyn Manager>> {
        let manager = RemoteManager::new(url, self.api_key.clone(), state)?;
        if self.output.verbose {
            self.output.note(&format!("server: {}", manager.url()));
        }
        Ok(Box::new(manager))
    }

    async fn local(&self, state: StateStore) -> Result<Box<dyn Manager>> {
        let engine = DockerEngine::connect()?;
        if self.output.verbose {
            let api = self.until_signal(engine.api_version()).await?;
            self.output.note(&format!(
                "engine: {} (API {api}); state: {}",
                engine.address(),
                state.path().display()
            ));
        }
        let output = self.output;
        let manager = LocalManager::new(engine, state)
            .with_warnings(Arc::new(move |w| output.warn(w)))
            .with_notes(Arc::new(move |n| {
                if output.verbose {
                    output.note(n);
                }
            }));
        Ok(Box::new(manager))
    }

    /// `work`, unless a signal comes first: for the steps before a command has started anything
    /// it would have to undo.
    pub(crate) async fn until_signal<T>(
        &self,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::select! {
            done = work => done,
            () = self.cancel.cancelled() => Err(self.interrupted().into()),
        }
    }

    /// The error for a command stopped by a signal.
    pub(crate) fn interrupted(&self) -> Error {
        Error::Interrupted(self.signal.get().copied().unwrap_or(Signal::Interrupt))
    }
}

/// The managers one command opened, one per place sandboxes live: a command naming several ids
/// connects to each place once (connecting to the engine costs a round trip).
pub(crate) struct Managers<'a> {
    ctx: &'a Ctx,
    opened: Vec<(Location, Box<dyn Manager>)>,
}

impl<'a> Managers<'a> {
    pub(crate) fn new(ctx: &'a Ctx) -> Self {
        Managers {
            ctx,
            opened: Vec::new(),
        }
    }

    /// The manager of the sandbox `id_or_prefix` names, as `Ctx::manager_for` finds it; opened
    /// the first time its place is asked for. A place that could not be opened is tried again
    /// for the next id, which then fails (or not) on its own.
    pub(crate) async fn for_id(&mut self, id_or_prefix: &str) -> Result<&dyn Manager> {
        let (location, state) = self.ctx.place_of(id_or_prefix)?;
        let at = match self.opened.iter().position(|(l, _)| *l == location) {
            Some(at) => at,
            None => {
                let manager = self.ctx.manager_at(&location, state).await?;
                self.opened.push((location, manager));
                self.opened.len() - 1
            }
        };
        Ok(self.opened[at].1.as_ref())
    }
}

/// Parses `args`, runs the command, and maps the outcome to the process exit code.
pub fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(usage_error(&e, wants_json(&args))),
    };
    let g = &cli.global;
    let output = Output::new(g.json, g.quiet, g.verbose, g.color);
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            output.error(&anyhow::Error::new(e).context("starting the async runtime"));
            return ExitCode::from(exit_code::FAILURE);
        }
    };
    let ctx = Ctx {
        output,
        cancel: CancellationToken::new(),
        signal: Arc::new(OnceLock::new()),
        // An empty variable (`ENCLAVE_SERVER=`) means no server, as unset.
        server: g.server.clone().filter(|s| !s.trim().is_empty()),
        api_key: g.api_key.clone(),
        backend: g.backend,
        namespace: g.namespace.clone().filter(|n| !n.trim().is_empty()),
        context: g.context.clone().filter(|c| !c.trim().is_empty()),
        agent_image: g.agent_image.clone().filter(|i| !i.trim().is_empty()),
    };
    let result = runtime.block_on(async {
        let abandon = watch_signals(&ctx, !cli.command.reads_interrupts())?;
        // A command with cleanup to do stops by itself at the first signal; the second gives
        // up on the cleanup (it talks to the engine, which may be what hangs).
        let stop = if cli.command.cleans_up() {
            abandon.clone()
        } else {
            ctx.cancel.clone()
        };
        tokio::select! {
            result = run(cli.command, &ctx) => result,
            () = stop.cancelled() => {
                if abandon.is_cancelled() {
                    ctx.output.warn("interrupted again: gave up cleaning up; `enclave ls` shows what is left");
                }
                Err(ctx.interrupted().into())
            }
        }
    });
    // A blocking stdin read or stdout write may still be parked on a worker thread; do not
    // wait for it.
    runtime.shutdown_background();
    ExitCode::from(finish(result, &ctx.output))
}

/// One thread, for every command and for the server too: the server's work is waiting on the
/// engine, and one thread cut its CPU per tool call by a tenth against two workers (less
/// hand-off between threads), with the same throughput.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Cancels `ctx.cancel` at the first SIGINT (when `interrupts`), SIGTERM or SIGHUP, and the
/// returned token at the second.
fn watch_signals(ctx: &Ctx, interrupts: bool) -> Result<CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let abandon = CancellationToken::new();
    let mut hangup = signal(SignalKind::hangup())?;
    let mut interrupt = interrupts
        .then(|| signal(SignalKind::interrupt()))
        .transpose()?;
    let mut terminate = signal(SignalKind::terminate())?;
    let (cancel, record, give_up) = (ctx.cancel.clone(), ctx.signal.clone(), abandon.clone());
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                Some(()) = hangup.recv() => Signal::Hangup,
                Some(()) = recv_some(&mut interrupt) => Signal::Interrupt,
                Some(()) = terminate.recv() => Signal::Terminate,
                else => return,
            };
            let _ = record.set(received);
            if cancel.is_cancelled() {
                give_up.cancel();
                return;
            }
            cancel.cancel();
        }
    });
    Ok(abandon)
}

/// The next signal of a stream we may not be listening to (never, then).
async fn recv_some(stream: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match stream {
        Some(stream) => stream.recv().await,
        None => std::future::pending().await,
    }
}

/// `--json` among the arguments before `--`, for a command line that did not parse.
fn wants_json(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// Prints clap's message (and with `--json` the same error as a JSON document on stdout) and
/// returns the exit code.
fn usage_error(err: &clap::Error, json: bool) -> u8 {
    let _ = err.print();
    if !err.use_stderr() {
        return exit_code::SUCCESS;
    }
    if json {
        let rendered = err.render().to_string();
        let message = rendered.lines().next().unwrap_or_default();
        let message = message.trim_start_matches("error: ").to_string();
        Output::new(true, true, false, ColorChoice::Never)
            .error_json(&Error::Usage(message).into());
    }
    exit_code::USAGE
}

fn finish(result: Result<u8>, output: &Output) -> u8 {
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => exit_code::SUCCESS,
        Err(e) => {
            // A signal is its own explanation on a terminal; a script still gets its document.
            if !matches!(error::find(&e), Some(Error::Interrupted(_))) || output.json {
                output.error(&e);
            }
            error::exit_code_of(&e)
        }
    }
}

/// Our own output's reader went away (`enclave ls | head -1`): nothing is wrong, as ripgrep
/// holds.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(command: Command, ctx: &Ctx) -> Result<u8> {
    match command {
        Command::Create(args) => create::run(args, ctx).await,
        Command::Ls(args) => ls::run(args, ctx).await,
        Command::Inspect(args) => inspect::run(args, ctx).await,
        Command::Exec(args) => exec::run(args, ctx).await,
        Command::Run(args) => run::run(args, ctx).await,
        Command::RunTool(args) => run_tool::run(args, ctx).await,
        Command::Tools(args) => tools::run(args, ctx).await,
        Command::Rm(args) => rm::run(args, ctx).await,
        Command::Stop(args) => stop::run(args, ctx).await,
        Command::Cp(args) => cp::run(args, ctx).await,
        Command::Shell(args) => shell::run(args, ctx).await,
        Command::Server(args) => server::run(args, ctx).await,
        Command::Mcp(args) => mcp::run(args, ctx).await,
        Command::Completions(args) => completions::run(args),
    }
}

/// A sandbox id or a prefix of one, as given on the command line: never empty or blank (an unset
/// shell variable), which would otherwise be a prefix of every id.
pub(crate) fn parse_sandbox_id(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("a sandbox id must not be empty (is a shell variable unset?)".into());
    }
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "a sandbox id has no {}",
            if c.is_whitespace() {
                "spaces"
            } else {
                "control characters"
            }
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("enclave").chain(args.iter().copied()))
    }

    #[test]
    fn exec_forms_parse() {
        let cli = parse(&["exec", "k3x9", "echo hi; exit 3"]).unwrap();
        let Command::Exec(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.command.words, ["echo hi; exit 3"]);
        assert!(a.command.argv.is_empty());

        let cli = parse(&["exec", "--timeout", "2", "k3x9", "--", "python3", "-c", "x"]).unwrap();
        let Command::Exec(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.command.argv, ["python3", "-c", "x"]);
        assert_eq!(a.command.timeout, Some(2.0));
    }

    #[test]
    fn create_flags_parse() {
        let cli = parse(&[
            "create",
            "--image",
            "img",
            "--tool",
            "python_executor",
            "--tool",
            "shell_executor",
            "--memory",
            "512m",
            "--cpus",
            "1.5",
            "--env",
            "A=1",
            "--port",
            "8080:80",
            "--no-network",
            "--json",
        ])
        .unwrap();
        assert!(cli.global.json);
        let Command::Create(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.sandbox.tools, ["python_executor", "shell_executor"]);
        assert_eq!(a.sandbox.cpus, Some(1.5));
    }

    #[test]
    fn bad_usage_is_refused() {
        for args in [
            &["exec"][..],
            &["create", "--cpus", "x"],
            &["rm"],
            &["completions", "tcsh"],
            &["ls", "--bogus"],
            &["rm", ""],
            &["rm", "k3x9", " "],
            &["exec", "", "true"],
            &["inspect", "\t"],
            &["run-tool", "", "python_executor"],
            &["tools", ""],
        ] {
            assert!(parse(args).is_err(), "{args:?} should not parse");
        }
    }
}

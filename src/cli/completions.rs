//! `enclave completions`: shell completion scripts, generated from the clap definition.

use anyhow::Result;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

pub(super) fn run(args: CompletionsArgs) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    write_completions(args.shell, &mut out);
    Ok(0)
}

pub(super) fn write_completions(shell: Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "enclave", out);
}

//! `completions SHELL`: the shell completion script, generated from the command-line
//! definition itself, so it always knows every command and option of this build.

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::Result;
use crate::exit::ExitCode;
use crate::output::printer::Printer;

/// Prints the script for `args.shell` on stdout.
pub fn run(args: &CompletionsArgs, printer: &Printer) -> Result<ExitCode> {
    let mut command = Cli::command();
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    printer.data(&String::from_utf8_lossy(&script));
    Ok(ExitCode::Success)
}

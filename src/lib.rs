//! interlockctl: automates the Interlock (Docker Enterprise Layer 7 routing) host-mode runbook.
//!
//! The flow is the same for every changing command: read the state from the swarm (or a
//! file, offline), compute a plan, show it, confirm, apply step by step, verify, and roll
//! back on failure. `interlock` and `plan` are pure; `swarm` is the only module that talks
//! to Docker; `output` is the only one that writes to the terminal.

pub mod cli;
pub mod commands;
pub mod error;
pub mod exit;
pub mod interlock;
pub mod interrupt;
pub mod output;
pub mod runbook;
pub mod stack;
pub mod swarm;
#[cfg(test)]
mod testing;

use cli::Cli;
use exit::ExitCode;
use output::printer::{Printer, Terminal};
use output::report::{Report, RunStatus};
use runbook::journal::Journal;

/// Parses the command line, runs the command, prints the outcome; returns the exit code.
pub fn main_with_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let cli = match Cli::parse_args(args.iter().cloned()) {
        Ok(cli) => cli,
        Err(error) => return refused_command_line(&error, &args),
    };
    let printer = Printer::new(&cli.global, Terminal::detect());
    let dry_run = cli.global.dry_run || cli.global.check || cli.global.plan_out.is_some();
    let mut report = Report::new(commands::command_name(&cli.command), dry_run);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let journal = Journal::default();
    let outcome = runtime.block_on(async {
        let first_signal = interrupt::listen(&journal, &printer);
        tokio::select! {
            biased;
            outcome = commands::run(&cli, &printer, &mut report, &journal) => outcome,
            signal = interrupt::stopped(first_signal, &journal, &printer) => {
                printer.spinners().clear().ok();
                Err(journal.interrupted(signal))
            }
        }
    });
    let code = match outcome {
        Ok(code) => code,
        Err(error) => {
            report.status = status_for(error.exit);
            report.errors = error.problems.clone();
            printer.problems(&error.problems);
            if printer.is_json() {
                printer.finish(&report, "");
            }
            error.exit
        }
    };
    // What was written to stdout is the run's result: when it was lost (a full disk), the
    // run failed, whatever it did besides. A closed pipe (`| head`) is not such a loss.
    match printer.take_stdout_failure() {
        Some(problem) => {
            printer.problems(&[problem]);
            ExitCode::Failure
        }
        None => code,
    }
}

/// Prints clap's refusal of the command line (or the help or version it asked for: exit 0).
/// With `-o json` the refusal is a JSON document on stdout too: status `refused`, exit 2.
fn refused_command_line(error: &clap::Error, args: &[std::ffi::OsString]) -> ExitCode {
    let _ = error.print();
    if !error.use_stderr() {
        return ExitCode::Success;
    }
    if cli::asks_for_json(args) {
        let rendered = error.render().to_string();
        let mut paragraphs = rendered.split("\n\n");
        let first = paragraphs.next().unwrap_or_default();
        let first = first.strip_prefix("error: ").unwrap_or(first);
        let usage = paragraphs.find(|p| p.starts_with("Usage: "));
        let mut report = Report::new(&cli::named_command(args), false);
        report.status = RunStatus::Refused;
        report.errors = vec![error::Problem::new(
            "usage",
            first.split_whitespace().collect::<Vec<_>>().join(" "),
            Some(usage.map_or_else(
                || "see `interlockctl --help`".to_owned(),
                |usage| format!("{}; see its `--help`", usage.trim()),
            )),
        )];
        Printer::json().finish(&report, "");
    }
    ExitCode::Usage
}

fn status_for(exit: ExitCode) -> RunStatus {
    match exit {
        ExitCode::Refused => RunStatus::Refused,
        ExitCode::RolledBack => RunStatus::RolledBack,
        ExitCode::TimedOut => RunStatus::TimedOut,
        ExitCode::NotConfirmed => RunStatus::Declined,
        ExitCode::ChangesPending => RunStatus::Planned,
        ExitCode::Interrupted | ExitCode::Terminated => RunStatus::Interrupted,
        ExitCode::Success | ExitCode::Failure | ExitCode::Usage => RunStatus::Failed,
    }
}

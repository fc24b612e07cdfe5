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
    let cli = match Cli::parse_args(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Success
            };
        }
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
    match outcome {
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
    }
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

//! Command dispatch: each subcommand reads state, plans, confirms, applies and verifies
//! through the shared pieces here. Commands fill in the [`Report`] as they go, so a failed
//! run still reports what it planned.

pub mod edit;
pub mod history;
pub mod labels;
pub mod live;
pub mod offline;
pub mod prune;
pub mod rollback;
pub mod rollout;
pub mod show;
pub mod stack;
pub mod status;

use crate::cli::{Cli, Command, GlobalArgs, LabelsCommand, StackCommand};
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::output::printer::Printer;
use crate::output::report::{ConfigReport, Report, RunStatus};

use edit::Edit;

/// Puts the config part into the report, secrets hidden unless `--show-secrets`, and
/// prints its diff.
fn present_config(
    report: &mut Report,
    mut config: ConfigReport,
    global: &GlobalArgs,
    printer: &Printer,
) {
    if !global.show_secrets {
        config.redact_secrets();
    }
    printer.diff(&config.diff);
    report.config = Some(config);
}

/// Ends a `--dry-run` or `--check` run after the plan was shown: status `planned`, exit 3
/// for `--check` with changes pending, else 0. `None` when the run goes on to apply.
fn stop_when_planning(
    global: &GlobalArgs,
    printer: &Printer,
    report: &mut Report,
) -> Option<ExitCode> {
    if !global.check && !global.dry_run {
        return None;
    }
    report.status = RunStatus::Planned;
    let summary = if report.changed {
        "Changes pending; nothing was changed."
    } else {
        "No changes."
    };
    printer.finish(report, summary);
    Some(if global.check && report.changed {
        ExitCode::ChangesPending
    } else {
        ExitCode::Success
    })
}

/// The name a command has on the command line (and in the JSON report).
pub fn command_name(command: &Command) -> &'static str {
    match command {
        Command::PinProxy(_) => "pin-proxy",
        Command::HostMode(_) => "host-mode",
        Command::Show => "show",
        Command::Apply(_) => "apply",
        Command::Status => "status",
        Command::Rollback(_) => "rollback",
        Command::History => "history",
        Command::Prune(_) => "prune",
        Command::Labels(LabelsCommand::Check(_)) => "labels check",
        Command::Stack(StackCommand::Lint(_)) => "stack lint",
        Command::Stack(StackCommand::Fix(_)) => "stack fix",
    }
}

/// Runs the parsed command line.
pub async fn run(cli: &Cli, printer: &Printer, report: &mut Report) -> Result<ExitCode> {
    let global = &cli.global;
    let edit = match &cli.command {
        Command::PinProxy(args) => Edit::pin_proxy(args).map_err(|e| Error::refused(&e))?,
        Command::HostMode(args) => Edit::host_mode(args).map_err(|e| Error::refused(&e))?,
        Command::Apply(args) => Edit::Replace {
            source: args.file.display().to_string(),
            text: offline::read_source(&args.file)?,
            existing: None,
        },
        Command::Show => {
            return show::run(&live::connect(global, printer)?, global, printer, report).await;
        }
        Command::Status => {
            return status::run(&live::connect(global, printer)?, global, printer, report).await;
        }
        Command::History => {
            return history::run(&live::connect(global, printer)?, global, printer, report).await;
        }
        Command::Prune(args) => {
            return prune::run(
                &live::connect(global, printer)?,
                args,
                global,
                printer,
                report,
            )
            .await;
        }
        Command::Labels(LabelsCommand::Check(args)) => {
            let connect = || live::connect(global, printer);
            return labels::run(connect, args, global, printer, report).await;
        }
        Command::Stack(StackCommand::Lint(args)) => {
            return stack::run_lint(args, printer, report);
        }
        Command::Stack(StackCommand::Fix(args)) => {
            return stack::run_fix(args, global, printer, report);
        }
        Command::Rollback(args) => {
            return rollback::run(
                &live::connect(global, printer)?,
                args,
                global,
                printer,
                report,
            )
            .await;
        }
    };
    match &global.config_file {
        Some(path) => offline::run(&edit, path, global, printer, report),
        None => {
            live::run_edit(
                &live::connect(global, printer)?,
                &edit,
                global,
                printer,
                report,
            )
            .await
        }
    }
}

//! The commands, thin on top of the runbook: each turns its flags into an intent, calls the
//! runbook's steps and fills in the [`Report`] as it goes, so a failed run still reports what
//! it planned.

pub mod completions;
pub mod history;
pub mod labels;
pub mod man;
pub mod offline;
pub mod prune;
pub mod rollback;
pub mod show;
pub mod stack;
pub mod status;
pub mod upgrade;
pub mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::{
    ApplyArgs, Cli, ClusterCommand, Command, GlobalArgs, LabelsCommand, StackCommand,
};
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::interlock::cluster::NewCluster;
use crate::interlock::edit::Edit;
use crate::interlock::image::Upgrade;
use crate::output::printer::Printer;
use crate::output::report::Report;
use crate::runbook::journal::Journal;
use crate::runbook::saved::{PlanOut, SavedPlan};
use crate::runbook::{self, Options};
use crate::swarm::docker::DockerSwarm;
use crate::swarm::endpoint::{self, ConnectionFlags};
use crate::swarm::transport::Tracer;

/// The name a command has on the command line (and in the JSON report).
pub fn command_name(command: &Command) -> &'static str {
    match command {
        Command::PinProxy(_) => "pin-proxy",
        Command::HostMode(_) => "host-mode",
        Command::Migrate(_) => "migrate",
        Command::Show => "show",
        Command::Apply(_) => "apply",
        Command::Status(_) => "status",
        Command::Rollback(_) => "rollback",
        Command::Upgrade(_) => "upgrade",
        Command::History => "history",
        Command::Prune(_) => "prune",
        Command::Completions(_) => "completions",
        Command::Man => "man",
        Command::Labels(LabelsCommand::Check(_)) => "labels check",
        Command::Labels(LabelsCommand::Watch(_)) => "labels watch",
        Command::Stack(StackCommand::Lint(_)) => "stack lint",
        Command::Stack(StackCommand::Fix(_)) => "stack fix",
        Command::Cluster(ClusterCommand::Add(_)) => "cluster add",
        Command::Cluster(ClusterCommand::Remove(_)) => "cluster remove",
    }
}

/// The command a saved plan at `path` was made by, with the global options the plan depends
/// on from the plan and every other one (connection, output, `--yes`) from this command line.
fn replay(cli: &Cli, path: &Path) -> Result<(Cli, SavedPlan)> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        Error::refusal(
            "invalid_plan",
            format!("cannot read the plan {}: {error}", path.display()),
            Some("pass the file `--plan-out FILE` wrote".into()),
        )
    })?;
    let saved = SavedPlan::parse(&text, path)?;
    let words = std::iter::once("interlockctl".to_owned()).chain(saved.command.clone());
    let mut replay = Cli::parse_args(words).map_err(|error| {
        Error::refusal(
            "invalid_plan",
            format!(
                "{} names a command this interlockctl does not take: {}",
                path.display(),
                error.kind()
            ),
            None,
        )
    })?;
    let option = |name: &str| saved.options.get(name).cloned();
    replay.global = GlobalArgs {
        service: option("service").unwrap_or_else(|| cli.global.service.clone()),
        extension: option("extension"),
        force: option("force").is_some(),
        plan_out: None,
        ..cli.global.clone()
    };
    Ok((replay, saved))
}

/// What `--plan-out` needs to write the plan of `command`.
fn plan_out(global: &GlobalArgs, command: &Command) -> Option<PlanOut> {
    let path = global.plan_out.clone()?;
    let mut depends_on = BTreeMap::from([("service".to_owned(), global.service.clone())]);
    if let Some(extension) = &global.extension {
        depends_on.insert("extension".into(), extension.clone());
    }
    if global.force {
        depends_on.insert("force".into(), "true".into());
    }
    Some(PlanOut {
        path,
        command: command.words()?,
        desired_config: None,
        options: depends_on,
    })
}

/// Whether the command listens for SIGINT and SIGTERM itself: a long-running command ends on
/// them as its normal end, not as an interrupted run.
pub fn stops_on_signals_itself(command: &Command) -> bool {
    matches!(command, Command::Labels(LabelsCommand::Watch(_)))
}

/// The runbook's view of the global flags; `journal` records what the run sends.
pub fn options(global: &GlobalArgs, journal: &Journal) -> Options {
    Options {
        core_service: global.service.clone(),
        extension: global.extension.clone(),
        timeout: global.timeout,
        force: global.force,
        yes: global.yes,
        dry_run: global.dry_run,
        check: global.check,
        backup_dir: global.backup_dir.clone(),
        show_secrets: global.show_secrets,
        journal: journal.clone(),
        plan_out: None,
        expected: None,
    }
}

/// Connects to the engine the flags and environment select, as the docker CLI would; `-v`
/// says which one and why.
pub fn connect(global: &GlobalArgs, printer: &Printer) -> Result<DockerSwarm> {
    let flags = ConnectionFlags {
        host: global.host.clone(),
        context: global.context.clone(),
        tls: global.tls,
        tlsverify: global.tlsverify,
        tlscacert: global.tlscacert.clone(),
        tlscert: global.tlscert.clone(),
        tlskey: global.tlskey.clone(),
    };
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let resolved = endpoint::resolve(&flags, &|name| std::env::var(name).ok(), home.as_deref())
        .map_err(|e| Error::failed(&e))?;
    let address = resolved.endpoint.to_string();
    printer.detail(&format!(
        "engine {address} (context {}, from {})",
        resolved.context, resolved.source
    ));
    let tracer = printer.is_verbose().then(|| {
        let printer = printer.clone();
        Arc::new(move |line: &str| printer.detail(line)) as Tracer
    });
    DockerSwarm::connect(&resolved.endpoint, address, tracer).map_err(|e| Error::failed(&e))
}

/// Runs the parsed command line; what a changing run sends is recorded in `journal`.
pub async fn run(
    cli: &Cli,
    printer: &Printer,
    report: &mut Report,
    journal: &Journal,
) -> Result<ExitCode> {
    let replayed;
    let (cli, expected) = match &cli.command {
        Command::Apply(ApplyArgs {
            plan: Some(path), ..
        }) => {
            let (replay, saved) = replay(cli, path)?;
            replayed = replay;
            (&replayed, Some(saved))
        }
        _ => (cli, None),
    };
    let global = &cli.global;
    let mut options = options(global, journal);
    options.plan_out = plan_out(global, &cli.command);
    let desired_config = expected.as_ref().and_then(|s| s.desired_config.clone());
    options.expected = expected;
    let edit = match &cli.command {
        Command::Completions(args) => return completions::run(args, printer),
        Command::Man => return man::run(global, &options, printer, report),
        Command::PinProxy(args) => {
            Edit::pin_proxy(&args.label, args.replicas, &args.extension_constraints)
                .map_err(|e| Error::refused(&e))?
        }
        Command::HostMode(args) => {
            Edit::host_mode(args.http, args.https).map_err(|e| Error::refused(&e))?
        }
        Command::Migrate(args) => Edit::migrate(
            &args.pin.label,
            args.pin.replicas,
            &args.pin.extension_constraints,
            args.ports.http,
            args.ports.https,
        )
        .map_err(|e| Error::refused(&e))?,
        Command::Apply(args) => {
            let file = args.file.clone().unwrap_or_else(|| "-".into());
            let text = match desired_config {
                Some(text) => text,
                None => offline::read_source(&file)?,
            };
            if let Some(plan_out) = &mut options.plan_out {
                plan_out.desired_config = Some(text.clone());
            }
            Edit::Replace {
                source: file.display().to_string(),
                text,
                existing: None,
            }
        }
        Command::Show => {
            return show::run(&connect(global, printer)?, &options, printer, report).await;
        }
        Command::Status(args) => {
            let api = connect(global, printer)?;
            return status::run(&api, args.probe, &options, printer, report).await;
        }
        Command::Cluster(ClusterCommand::Add(args)) => {
            options.extension = args.from.clone().or(options.extension);
            let cluster = NewCluster::parse(
                &args.name,
                &args.label,
                args.http,
                args.https,
                args.replicas,
            )
            .map_err(|e| Error::refused(&e))?;
            Edit::AddCluster(cluster)
        }
        Command::Cluster(ClusterCommand::Remove(args)) => Edit::RemoveCluster {
            name: args.name.clone(),
        },
        Command::History => {
            return history::run(&connect(global, printer)?, &options, printer, report).await;
        }
        Command::Prune(args) => {
            let api = connect(global, printer)?;
            return prune::run(&api, args, &options, printer, report).await;
        }
        Command::Labels(LabelsCommand::Check(args)) => {
            let connect = || connect(global, printer);
            return labels::run(connect, args, global, printer, report).await;
        }
        Command::Labels(LabelsCommand::Watch(args)) => {
            let api = connect(global, printer)?;
            return watch::run(&api, args, global, printer).await;
        }
        Command::Stack(StackCommand::Lint(args)) => {
            return stack::run_lint(args, printer, report);
        }
        Command::Stack(StackCommand::Fix(args)) => {
            return stack::run_fix(args, global, printer, report);
        }
        Command::Rollback(args) => {
            let api = connect(global, printer)?;
            return rollback::run(&api, args, &options, printer, report).await;
        }
        Command::Upgrade(args) => {
            let upgrade = Upgrade::parse(&args.version, args.repository.as_deref())
                .map_err(|e| Error::refused(&e))?;
            if global.config_file.is_none() {
                let api = connect(global, printer)?;
                return upgrade::run(&api, upgrade, &options, printer, report).await;
            }
            Edit::Upgrade(upgrade)
        }
    };
    match &global.config_file {
        Some(path) => offline::run(&edit, path, global, &options, printer, report),
        None => {
            let api = connect(global, printer)?;
            let state = runbook::observe_settled(&api, &options, Some(&edit), printer).await?;
            runbook::change(&api, &state, &edit, &options, printer, report).await
        }
    }
}

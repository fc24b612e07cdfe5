//! The runbook: the steps an operator performs to change Interlock, in the order they are
//! performed. [`observe`] reads the swarm; [`plan`] computes what must change and
//! [`preflight`] refuses what would fail (both pure); [`backup`] saves the previous state;
//! [`rollout`] applies the plan step by step, waits, and restores on failure; [`verify`]
//! judges the proxy from its tasks (pure). [`change`] runs them in that order for every
//! command that changes the swarm. The operator's checks besides: [`doctor`] judges what
//! `observe::survey` read (pure), and [`probe`] asks each proxy node from the outside.
//!
//! Nothing here parses flags or touches the terminal: flags arrive as [`Options`], and what
//! the user sees goes through [`Printer`].

pub mod backup;
pub mod doctor;
pub mod journal;
pub mod notify;
pub mod observe;
pub mod plan;
pub mod preflight;
pub mod probe;
pub mod reject;
pub mod rollout;
pub mod saved;
pub mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Problem, Result};
use crate::exit::ExitCode;
use crate::interlock::config::has_byte_order_mark;
use crate::interlock::edit::{Edit, unified_diff};
use crate::output::printer::Printer;
use crate::output::report::{ConfigReport, Report, RunStatus};
use crate::swarm::{Service, SwarmApi};
use journal::{Journal, Signal};
use observe::LiveState;
use plan::Observed;
use saved::{Outcome, PlanOut, SavedPlan};

/// What the runbook needs to know of the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Interlock core service.
    pub core_service: String,
    /// The `[Extensions.NAME]` asked for, if any.
    pub extension: Option<String>,
    /// How long to wait for the swarm to converge.
    pub timeout: Duration,
    /// Override the refusals a user can knowingly accept.
    pub force: bool,
    /// Apply without asking.
    pub yes: bool,
    /// Show the plan and change nothing.
    pub dry_run: bool,
    /// Change nothing; report whether changes are pending.
    pub check: bool,
    /// Where backups go, if not the default.
    pub backup_dir: Option<PathBuf>,
    /// Show secret values instead of `<redacted>`.
    pub show_secrets: bool,
    /// What the run has sent, for the message of a run a signal stops.
    pub journal: Journal,
    /// `--plan-out`: plan, change nothing, write the plan there.
    pub plan_out: Option<PlanOut>,
    /// `apply --plan`: the saved plan this run must match.
    pub expected: Option<SavedPlan>,
}

impl Options {
    /// Whether this run only plans.
    pub fn planning_only(&self) -> bool {
        self.dry_run || self.check || self.plan_out.is_some()
    }
}

/// Puts the config part into the report, the secrets in its change list hidden unless
/// `--show-secrets` (its diff hid them when it was made), and prints its diff.
pub fn present_config(
    report: &mut Report,
    mut config: ConfigReport,
    options: &Options,
    printer: &Printer,
) {
    if !options.show_secrets {
        config.redact_changes();
    }
    printer.diff(&config.diff);
    report.config = Some(config);
}

/// Ends a `--dry-run` or `--check` run after the plan was shown: status `planned`, exit 3
/// for `--check` with changes pending, else 0. `None` when the run goes on to apply.
pub fn stop_when_planning(
    options: &Options,
    printer: &Printer,
    report: &mut Report,
) -> Option<ExitCode> {
    if !options.planning_only() {
        return None;
    }
    report.status = RunStatus::Planned;
    let summary = if report.changed {
        "Changes pending; nothing was changed."
    } else {
        "No changes."
    };
    printer.finish(report, summary);
    Some(if options.check && report.changed {
        ExitCode::ChangesPending
    } else {
        ExitCode::Success
    })
}

/// Observes the swarm for `edit` (see [`observe::observe_for`]) once no rollout runs on the
/// core or the proxy. A rollout that someone else (the core itself, on a busy cluster) or an
/// interrupted run started is waited for within `--timeout`, then the swarm is read again, so
/// the plan starts from where that rollout ended. A paused update is left for preflight to
/// refuse.
pub async fn observe_settled<S: SwarmApi>(
    api: &S,
    options: &Options,
    edit: Option<&Edit>,
    printer: &Printer,
) -> Result<LiveState> {
    let deadline = tokio::time::Instant::now() + options.timeout;
    loop {
        let state = observe::observe_for(api, options, edit).await?;
        let observed = &state.observed;
        let services: Vec<&Service> = std::iter::once(&observed.core)
            .chain(&observed.proxy)
            .collect();
        if !rollout::wait_for_running_rollouts(api, &services, deadline, printer).await? {
            return Ok(state);
        }
    }
}

/// Plans `edit` against an observed state, shows the plan, confirms, saves a backup,
/// rolls it out and verifies it.
pub async fn change<S: SwarmApi>(
    api: &S,
    state: &LiveState,
    edit: &Edit,
    options: &Options,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    if let Some(saved) = &options.expected {
        saved.check_state(&state.observed)?;
    }
    let labelled =
        preflight::labelled_nodes(edit, &state.observed.nodes).map_err(|e| Error::refused(&e))?;
    let edited = edit.edited_config(&state.config, &state.extension, labelled)?;
    let new_text = edited.config.text();
    refuse_a_new_byte_order_mark(&state.observed, &new_text)?;
    let target = edit.target_extension(&state.extension);
    let settings = edited
        .config
        .extension(&target)
        .map_err(|e| Error::refused(&e))?;
    // A new cluster has no live settings: its proxy gets only what the edited config says.
    let live_settings = state
        .config
        .extension(&target)
        .unwrap_or_else(|_| settings.clone());
    let observed = &state.observed;
    let images = wanted_images(edit, observed);
    let plan = plan::build(
        observed,
        &plan::Desired {
            text: &new_text,
            existing: edit.existing_config(),
            settings: &settings,
            live_settings: &live_settings,
            host_mode: edited.config.publishes_in_host_mode(),
            operation: options
                .expected
                .as_ref()
                .map_or(report.command.as_str(), |saved| saved.operation.as_str()),
            images: &images,
            core_writer: plan::CoreWriter {
                proxy_config_path: &edited.config.proxy_config_path(&target),
                poll_interval: edited.config.poll_interval(),
            },
        },
    );
    let port_users = if plan.is_empty() {
        preflight::PortUsers::default()
    } else {
        preflight::PortUsers {
            services: api.services().await.map_err(|e| Error::failed(&e))?,
            running_tasks: api.running_tasks().await.map_err(|e| Error::failed(&e))?,
        }
    };
    let forced = preflight::check(observed, &settings, &plan, &port_users, options.force)
        .map_err(Error::refused_all)?;

    report.extension = Some(target);
    report.warnings.extend(edited.warnings);
    report.warnings.extend(forced);
    printer.warnings(&report.warnings);
    report.changed = !plan.is_empty();
    let next = plan.config.as_ref().map(|c| c.name().to_owned());
    let config = ConfigReport {
        service: observed.core.name.clone(),
        current: Some(observed.config.name.clone()),
        next: next.clone(),
        diff: unified_diff(
            &observed.config_text,
            &new_text,
            &observed.config.name,
            next.as_deref().unwrap_or("unchanged"),
            options.show_secrets,
        ),
        changes: edited.changes,
        content: None,
    };
    present_config(report, config, options, printer);
    report.actions = plan.actions(observed, &new_text);
    printer.plan(report);
    let outcome = Outcome {
        observed,
        plan: &plan,
        new_text: &new_text,
    };
    if let Some(saved) = &options.expected {
        saved.check_outcome(&outcome)?;
    }
    if let Some(plan_out) = &options.plan_out {
        return write_plan(plan_out, &outcome, printer, report);
    }

    if plan.is_empty() {
        let applied = if options.planning_only() {
            rollout::Applied::default()
        } else {
            rollout::verify_unchanged(api, &plan, &settings, options, printer).await?
        };
        // Re-created stale proxy tasks are a change, though no spec field was planned, and
        // so is making a proxy the core created match.
        report.timings = applied.timings;
        report.changed = !report.timings.is_empty();
        report.status = if report.changed {
            RunStatus::Applied
        } else {
            RunStatus::NoChanges
        };
        let summary = if !applied.updated.is_empty() {
            format!(
                "Made {} match the config; verified.",
                applied.updated.join(", ")
            )
        } else if report.changed {
            "Re-created the proxy tasks that kept stale ports; verified.".to_owned()
        } else {
            "No changes: the swarm already matches.".to_owned()
        };
        printer.finish(report, &summary);
        return Ok(ExitCode::Success);
    }
    if let Some(code) = stop_when_planning(options, printer, report) {
        return Ok(code);
    }
    options.journal.step("waiting for the confirmation");
    confirm(options, printer)?;
    options.journal.step("saving the backup");
    let backup = save_backup(observed, options, &report.command)?;
    printer.status(&format!(
        "Saved the previous config and service specs to {}",
        backup.display()
    ));
    report.backup = Some(backup.display().to_string());
    let applied = rollout::execute(
        api,
        &plan,
        state,
        (&settings, &live_settings),
        &new_text,
        options,
        printer,
    )
    .await?;
    if let (Some(config), Some(name)) = (report.config.as_mut(), applied.config) {
        config.next = Some(name);
    }
    report.timings = applied.timings;
    report.status = RunStatus::Applied;
    printer.finish(report, "Applied and verified.");
    Ok(ExitCode::Success)
}

/// The images the edit wants the services to run: an upgrade's, or for a return to an
/// earlier config those the runs since then moved away from.
fn wanted_images(edit: &Edit, observed: &Observed) -> BTreeMap<String, String> {
    match (edit.upgrade(), edit.existing_config()) {
        (Some(upgrade), _) => plan::upgraded_images(observed, upgrade),
        (None, Some(target)) => plan::images_before(observed, &target.name),
        (None, None) => BTreeMap::new(),
    }
}

/// Ends a `--plan-out` run: the plan written, status `planned`, nothing changed.
fn write_plan(
    plan_out: &PlanOut,
    outcome: &Outcome<'_>,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    SavedPlan::new(plan_out, &report.command, outcome).write(&plan_out.path)?;
    report.status = RunStatus::Planned;
    let path = plan_out.path.display();
    printer.finish(
        report,
        &format!(
            "Plan written to {path}; nothing was changed. Apply exactly this plan with \
             `interlockctl apply --plan {path}`."
        ),
    );
    Ok(ExitCode::Success)
}

/// Refuses a config that would give the core a byte-order mark its running config does not
/// have: TOML parsers of the Interlock core's age (and the lab's stand-in) read it as part of
/// the first line and cannot load the config. A live config that has one keeps it.
fn refuse_a_new_byte_order_mark(observed: &Observed, new_text: &str) -> Result<()> {
    if !has_byte_order_mark(new_text) || has_byte_order_mark(&observed.config_text) {
        return Ok(());
    }
    Err(Error::refusal(
        "byte_order_mark",
        "the new config starts with a UTF-8 byte-order mark, which the running config does not have; the Interlock core's TOML parser may read it as part of the first line and fail to load the config",
        Some("save the file as UTF-8 without a byte-order mark (most editors offer it; or `sed -i '1s/^\\xEF\\xBB\\xBF//' FILE`); nothing was changed".into()),
    ))
}

/// Saves the state before the first change; refuses (exit 4) to change anything without a
/// backup.
fn save_backup(observed: &Observed, options: &Options, command: &str) -> Result<PathBuf> {
    let root = options
        .backup_dir
        .clone()
        .or_else(|| backup::default_root(&|name| std::env::var(name).ok()))
        .ok_or_else(|| {
            Error::refusal(
                "no_backup_dir",
                "no directory for the backup: neither XDG_STATE_HOME nor HOME is set",
                Some("pass `--backup-dir DIR`; nothing was changed".into()),
            )
        })?;
    backup::write(&root, command, observed)
}

/// Asks before changing anything, unless `--yes`.
pub fn confirm(options: &Options, printer: &Printer) -> Result<()> {
    if options.yes {
        return Ok(());
    }
    let declined = |message: &str| {
        Error::new(
            ExitCode::NotConfirmed,
            Problem::new(
                "not_confirmed",
                message,
                Some("review the plan, then pass `--yes` to apply it without a prompt".into()),
            ),
        )
    };
    if !printer.can_prompt() || printer.is_json() {
        return Err(declined("no terminal to confirm the plan on, and no --yes"));
    }
    match printer.confirm("Apply these changes?") {
        Ok(true) => Ok(()),
        Ok(false) => Err(declined("the plan was not confirmed")),
        // Ctrl-C at the prompt: the terminal was raw, so it came as a key, not a signal.
        Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {
            Err(options.journal.interrupted(Signal::Interrupt))
        }
        Err(error) => Err(Error::other("prompt_failed", error.to_string(), None)),
    }
}

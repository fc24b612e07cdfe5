//! Live mode: read the state from the swarm, plan, confirm, apply step by step, verify,
//! and roll back on failure.

use std::path::PathBuf;

use crate::backup;
use crate::cli::GlobalArgs;
use crate::commands::edit::{Edit, unified_diff};
use crate::commands::rollout::{execute, finish_rollouts, verify_proxy};
use crate::error::{Error, Problem, Result};
use crate::exit::ExitCode;
use crate::interlock::config::{ExtensionSettings, InterlockConfig};
use crate::output::printer::Printer;
use crate::output::report::{ConfigReport, Report, RunStatus};
use crate::plan::{self, CONFIG_TARGET, Observed};
use crate::preflight;
use crate::swarm::docker::DockerSwarm;
use crate::swarm::endpoint::{self, ConnectionFlags};
use crate::swarm::spec;
use crate::swarm::{OLDEST_API, SwarmApi, SwarmError};

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
    DockerSwarm::connect(&resolved.endpoint, address).map_err(|e| Error::failed(&e))
}

/// Checks the engine is a manager that speaks configs (API >= 1.30).
async fn check_engine<S: SwarmApi>(api: &S) -> Result<()> {
    let engine = api.engine().await.map_err(|e| Error::failed(&e))?;
    let (major, minor) = engine.api_version.split_once('.').unwrap_or(("0", "0"));
    let version = (
        major.parse::<u32>().unwrap_or(0),
        minor.parse::<u32>().unwrap_or(0),
    );
    if version < OLDEST_API {
        return Err(Error::failed(&SwarmError::ApiTooOld(engine.api_version)));
    }
    if !engine.is_manager {
        return Err(Error::failed(&SwarmError::NotManager("this engine".into())));
    }
    Ok(())
}

/// Everything read from the swarm, with the live config parsed and its extension chosen.
pub struct LiveState {
    /// The observation the plan is computed from.
    pub observed: Observed,
    /// The live config.
    pub config: InterlockConfig,
    /// The selected extension.
    pub extension: String,
    /// Its settings in the live config.
    pub settings: ExtensionSettings,
}

/// Checks the engine, then reads the core, its config, the proxy, the lineage and the nodes.
pub async fn observe<S: SwarmApi>(api: &S, global: &GlobalArgs) -> Result<LiveState> {
    check_engine(api).await?;
    let swarm_failed = |e: SwarmError| Error::failed(&e);
    let core = api
        .service(&global.service)
        .await
        .map_err(swarm_failed)?
        .ok_or_else(|| Error::refused(&preflight::Missing::CoreService(global.service.clone())))?;
    let (config_name, config_id) = spec::config_ref(&core.spec, CONFIG_TARGET)
        .ok_or_else(|| Error::refused(&preflight::Missing::ConfigMount(global.service.clone())))?;
    let config_text = api.config_data(&config_id).await.map_err(swarm_failed)?;
    let config =
        InterlockConfig::parse(&config_name, &config_text).map_err(|e| Error::refused(&e))?;
    let extension = config
        .select_extension(global.extension.as_deref())
        .map_err(|e| Error::refused(&e))?;
    let settings = config
        .extension(&extension)
        .map_err(|e| Error::refused(&e))?;
    let proxy = api
        .service(&settings.proxy_service_name)
        .await
        .map_err(swarm_failed)?
        .ok_or_else(|| {
            Error::refused(&preflight::Missing::ProxyService(
                settings.proxy_service_name.clone(),
            ))
        })?;
    let base = plan::lineage_base(&config_name).to_owned();
    let all = api.configs(&base).await.map_err(swarm_failed)?;
    let current = all
        .iter()
        .find(|c| c.id == config_id)
        .cloned()
        .ok_or_else(|| {
            Error::failed(&SwarmError::Protocol {
                operation: "list configs".into(),
                message: format!("config {config_name} is mounted but not listed"),
            })
        })?;
    let lineage = all
        .into_iter()
        .filter(|c| plan::in_lineage(&base, &c.name))
        .collect();
    let nodes = api.nodes().await.map_err(swarm_failed)?;
    Ok(LiveState {
        observed: Observed {
            core,
            config: current,
            config_text,
            lineage,
            nodes,
            proxy,
        },
        config,
        extension,
        settings,
    })
}

/// Runs an editing command against the swarm.
pub async fn run_edit<S: SwarmApi>(
    api: &S,
    edit: &Edit,
    global: &GlobalArgs,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let state = observe(api, global).await?;
    apply_edit(api, &state, edit, global, printer, report).await
}

/// Plans `edit` against an observed state, shows the plan, confirms, applies, verifies.
pub async fn apply_edit<S: SwarmApi>(
    api: &S,
    state: &LiveState,
    edit: &Edit,
    global: &GlobalArgs,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let labelled =
        preflight::labelled_nodes(edit, &state.observed.nodes).map_err(|e| Error::refused(&e))?;
    let edited = edit.apply(&state.config, &state.extension, labelled)?;
    let new_text = edited.config.text();
    let settings = edited
        .config
        .extension(&state.extension)
        .map_err(|e| Error::refused(&e))?;
    let plan = plan::build(
        &state.observed,
        &new_text,
        edit.existing_config(),
        &settings,
        report.command,
    );
    let port_users = preflight::PortUsers {
        services: api.services().await.map_err(|e| Error::failed(&e))?,
        running_tasks: api.running_tasks().await.map_err(|e| Error::failed(&e))?,
    };
    let forced = preflight::check(&state.observed, &settings, &plan, &port_users, global.force)
        .map_err(Error::refused_all)?;

    report.extension = Some(state.extension.clone());
    report.warnings = edited.warnings;
    report.warnings.extend(forced);
    printer.warnings(&report.warnings);
    report.changed = !plan.is_empty();
    let next = plan.config.as_ref().map(|c| c.name().to_owned());
    let config = ConfigReport {
        service: state.observed.core.name.clone(),
        current: Some(state.observed.config.name.clone()),
        next: next.clone(),
        diff: unified_diff(
            &state.observed.config_text,
            &new_text,
            &state.observed.config.name,
            next.as_deref().unwrap_or("unchanged"),
            global.show_secrets,
        ),
        changes: edited.changes,
        content: None,
    };
    super::present_config(report, config, global, printer);
    report.actions = plan.actions(&state.observed, &new_text);
    printer.plan(report);

    if plan.is_empty() {
        if !global.check
            && !global.dry_run
            && finish_rollouts(api, &state.observed, global, printer).await?
        {
            verify_proxy(api, &settings, global, printer).await?;
        }
        report.status = RunStatus::NoChanges;
        printer.finish(report, "No changes: the swarm already matches.");
        return Ok(ExitCode::Success);
    }
    if let Some(code) = super::stop_when_planning(global, printer, report) {
        return Ok(code);
    }
    confirm(global, printer)?;
    let backup = save_backup(&state.observed, global, report.command)?;
    printer.status(&format!(
        "Saved the previous config and service specs to {}",
        backup.display()
    ));
    report.backup = Some(backup.display().to_string());
    let applied = execute(api, &plan, state, &settings, &new_text, global, printer).await?;
    if let (Some(config), Some(name)) = (report.config.as_mut(), applied) {
        config.next = Some(name);
    }
    report.status = RunStatus::Applied;
    printer.finish(report, "Applied and verified.");
    Ok(ExitCode::Success)
}

/// Saves the state before the first change; refuses to change anything without a backup.
fn save_backup(observed: &Observed, global: &GlobalArgs, command: &str) -> Result<PathBuf> {
    let root = global
        .backup_dir
        .clone()
        .or_else(|| backup::default_root(&|name| std::env::var(name).ok()))
        .ok_or_else(|| {
            Error::other(
                "no_backup_dir",
                "no directory for the backup: neither XDG_STATE_HOME nor HOME is set",
                Some("pass `--backup-dir DIR`".into()),
            )
        })?;
    backup::write(&root, command, observed)
}

/// Asks before changing anything, unless `--yes`.
pub fn confirm(global: &GlobalArgs, printer: &Printer) -> Result<()> {
    if global.yes {
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
    let answer = dialoguer::Confirm::new()
        .with_prompt("Apply these changes?")
        .default(false)
        .interact_opt()
        .map_err(|e| Error::other("prompt_failed", e.to_string(), None))?;
    match answer {
        Some(true) => Ok(()),
        _ => Err(declined("the plan was not confirmed")),
    }
}

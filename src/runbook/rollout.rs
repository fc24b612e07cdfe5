//! Applying a plan step by step: create (or reuse) the config, update the core and wait
//! until it is stable, update the proxy and wait, verify the proxy's tasks, and put the
//! previous state back when a step fails. Every step re-reads what it changes, so a step
//! that an earlier, interrupted run already did is not done twice.
//!
//! Service clusters add two steps. A new cluster's proxy does not exist when the run
//! starts: the core creates it when it loads the new config, so the run waits for it to
//! appear and converge, then makes it match and verifies it like any proxy. A removed
//! cluster's services are left running by Interlock, so the run removes them last, once
//! the core runs on the config without them, and re-reads to confirm they are gone.

use tokio::time::Instant;

use crate::error::{Error, Problem, Result};
use crate::exit::ExitCode;
use crate::interlock::config::ExtensionSettings;
use crate::output::printer::Printer;
use crate::output::progress::Progress;
use crate::runbook::Options;
use crate::runbook::plan::{self, CONFIG_TARGET, NextConfig, Observed, Plan};
use crate::runbook::{preflight, verify};
use crate::swarm::converge::{self, Assessment, Phase, WaitError};
use crate::swarm::spec::{self, SpecEdit};
use crate::swarm::{Service, SwarmApi, SwarmError};

/// How often an update is retried when someone else updated the service in between.
const UPDATE_ATTEMPTS: usize = 5;
/// How often a config name is retried when another run took it first.
const CREATE_ATTEMPTS: usize = 5;

/// Applies the plan: config, core, proxy (edited, or awaited from the core and then made
/// to match), each waited for, then the services of a removed extension; returns the
/// config now in use.
pub async fn execute<S: SwarmApi>(
    api: &S,
    plan: &Plan,
    observed: &Observed,
    settings: &ExtensionSettings,
    new_text: &str,
    options: &Options,
    printer: &Printer,
) -> Result<Option<String>> {
    finish_rollouts(api, observed, options, printer).await?;
    let mut core_edits = plan.core_edits.clone();
    let config_name = match &plan.config {
        Some(next) => {
            let (name, id) = ensure_config(api, next, observed, new_text, printer).await?;
            for edit in &mut core_edits {
                if let SpecEdit::SwapConfig { to, to_id, .. } = edit {
                    *to = name.clone();
                    *to_id = Some(id.clone());
                }
            }
            Some(name)
        }
        None => None,
    };
    let core_changed = !core_edits.is_empty();
    if core_changed {
        printer.status(&format!("Updating {} ...", observed.core.name));
        update_and_wait(api, &observed.core.name, &core_edits, options, printer)
            .await
            .map_err(|failure| failure.into_error(&observed.core.name, false))?;
    }
    let undo_core = async {
        if core_changed {
            printer.status(&format!(
                "Rolling {} back to its previous spec ...",
                observed.core.name
            ));
            let _ = rollback(api, &observed.core.name, options, printer).await;
        }
    };
    let core_config = config_name
        .clone()
        .unwrap_or_else(|| observed.config.name.clone());
    // Another run's change is left alone: rolling the core back would undo it.
    ensure_core_config(api, &observed.core.name, &core_config)
        .await
        .map_err(|failure| failure.into_error(&observed.core.name, false))?;
    let proxy_name = &settings.proxy_service_name;
    if !plan.proxy_edits.is_empty() {
        printer.status(&format!("Updating {proxy_name} ..."));
        if let Err(failure) =
            update_and_wait(api, proxy_name, &plan.proxy_edits, options, printer).await
        {
            if failure.paused() {
                let _ = rollback(api, proxy_name, options, printer).await;
            }
            if failure.rolls_back() {
                undo_core.await;
            }
            return Err(failure.into_error(proxy_name, core_changed));
        }
    }
    if let Some(awaited) = &plan.awaited_proxy {
        follow_created_proxy(api, awaited, settings, options, printer).await?;
    }
    if let Err(error) = verify_proxy(api, settings, options, printer).await {
        if error.exit == ExitCode::RolledBack {
            if !plan.proxy_edits.is_empty() {
                let _ = rollback(api, proxy_name, options, printer).await;
            }
            undo_core.await;
            // A proxy the core created from the new config is no part of the previous
            // state; the core is back on a config without it, so it stays removed.
            if plan.awaited_proxy.is_some()
                && let Ok(Some(created)) = api.service(proxy_name).await
            {
                let _ = remove_service(api, &created, printer).await;
            }
        }
        return Err(error);
    }
    for service in &observed.retired {
        remove_service(api, service, printer).await?;
    }
    Ok(config_name)
}

/// For a plan that changes nothing: waits for rollouts an interrupted run left, and for a
/// proxy the core has still to create, then verifies the proxy if any of that happened.
pub async fn settle<S: SwarmApi>(
    api: &S,
    plan: &Plan,
    observed: &Observed,
    settings: &ExtensionSettings,
    options: &Options,
    printer: &Printer,
) -> Result<()> {
    let waited = finish_rollouts(api, observed, options, printer).await?;
    if let Some(awaited) = &plan.awaited_proxy {
        follow_created_proxy(api, awaited, settings, options, printer).await?;
    }
    if waited || plan.awaited_proxy.is_some() {
        verify_proxy(api, settings, options, printer).await?;
    }
    Ok(())
}

/// Waits (within `--timeout`) for the core to create the proxy of a new extension, then
/// for its tasks, and makes it match the config where the core did not (the known bug).
async fn follow_created_proxy<S: SwarmApi>(
    api: &S,
    name: &str,
    settings: &ExtensionSettings,
    options: &Options,
    printer: &Printer,
) -> Result<()> {
    printer.status(&format!(
        "Waiting for the Interlock core to create {name} ..."
    ));
    let deadline = Instant::now() + options.timeout;
    let proxy = loop {
        if let Some(proxy) = api.service(name).await.map_err(|e| Error::failed(&e))? {
            break proxy;
        }
        if Instant::now() >= deadline {
            return Err(Error::new(
                ExitCode::TimedOut,
                Problem::new(
                    "timed_out",
                    format!("the Interlock core did not create {name} in time"),
                    Some("check the core's tasks and logs (`docker service ps`, `docker service logs`); nothing was rolled back; re-run to wait again".into()),
                ),
            ));
        }
        tokio::time::sleep(converge::POLL).await;
    };
    wait(api, &proxy.id, options, printer)
        .await
        .map_err(|e| UpdateFailure::Wait(e).into_error(name, false))?;
    let edits = plan::proxy_edits(settings, &proxy.spec);
    if !edits.is_empty() {
        printer.status(&format!("Updating {name} ..."));
        update_and_wait(api, name, &edits, options, printer)
            .await
            .map_err(|failure| failure.into_error(name, false))?;
    }
    Ok(())
}

/// Removes a service and checks, by reading it again, that it is gone.
async fn remove_service<S: SwarmApi>(api: &S, service: &Service, printer: &Printer) -> Result<()> {
    printer.status(&format!("Removing {} ...", service.name));
    let failed = |e: SwarmError| Error::failed(&e);
    api.remove_service(&service.id).await.map_err(failed)?;
    if api.service(&service.id).await.map_err(failed)?.is_some() {
        return Err(Error::failed(&SwarmError::Protocol {
            operation: format!("remove service {}", service.name),
            message: "the service still exists after its removal".into(),
        }));
    }
    printer.status(&format!("Removed {}.", service.name));
    Ok(())
}

/// Waits for rollouts still running on the core or the proxy: an interrupted earlier run of
/// the same change left them (preflight refused any other). Returns whether there were any.
pub async fn finish_rollouts<S: SwarmApi>(
    api: &S,
    observed: &Observed,
    options: &Options,
    printer: &Printer,
) -> Result<bool> {
    let mut waited = false;
    for service in std::iter::once(&observed.core).chain(&observed.proxy) {
        if matches!(
            service.update_state.as_deref(),
            Some("updating" | "rollback_started")
        ) {
            printer.status(&format!(
                "Waiting for the rollout already running on {} ...",
                service.name
            ));
            wait(api, &service.id, options, printer)
                .await
                .map_err(|e| UpdateFailure::Wait(e).into_error(&service.name, false))?;
            waited = true;
        }
    }
    Ok(waited)
}

/// Creates the planned config (or takes the identical one an earlier run created). When
/// another run took the name first (409), the next free number is used.
async fn ensure_config<S: SwarmApi>(
    api: &S,
    next: &NextConfig,
    observed: &Observed,
    text: &str,
    printer: &Printer,
) -> Result<(String, String)> {
    let (mut name, labels) = match next {
        NextConfig::Reuse { name, id } => return Ok((name.clone(), id.clone())),
        NextConfig::Create { name, labels } => (name.clone(), labels),
    };
    for _ in 0..CREATE_ATTEMPTS {
        printer.detail(&format!("creating config {name}"));
        match api.create_config(&name, text, labels).await {
            Ok(id) => {
                printer.status(&format!("Created config {name}."));
                return Ok((name, id));
            }
            Err(SwarmError::NameConflict(_)) => {
                let base = plan::lineage_base(&observed.config.name);
                let taken = api.configs(base).await.map_err(|e| Error::failed(&e))?;
                // A concurrent run with the same desired state may have created it.
                let digest = labels.get(plan::LABEL_DIGEST);
                if let Some(same) = taken
                    .iter()
                    .find(|c| c.labels.get(plan::LABEL_DIGEST) == digest)
                {
                    return Ok((same.name.clone(), same.id.clone()));
                }
                let names: Vec<&str> = taken.iter().map(|c| c.name.as_str()).collect();
                name = plan::next_config_name(&observed.config.name, &names);
            }
            Err(other) => return Err(Error::failed(&other)),
        }
    }
    Err(Error::failed(&SwarmError::NameConflict(name)))
}

/// Checks that the core still mounts `expected`: the proxy is only made to match the config
/// this run put in place, never one another run rotated in meanwhile.
async fn ensure_core_config<S: SwarmApi>(
    api: &S,
    core: &str,
    expected: &str,
) -> Result<(), UpdateFailure> {
    let service = api.service(core).await.map_err(UpdateFailure::Swarm)?;
    let mounted = service
        .and_then(|s| spec::config_ref(&s.spec, CONFIG_TARGET))
        .map(|(name, _)| name);
    match mounted {
        Some(name) if name == expected => Ok(()),
        other => Err(UpdateFailure::ChangedUnderneath(format!(
            "it now mounts {} instead of {expected}",
            other.as_deref().unwrap_or("no config")
        ))),
    }
}

/// Why a service update did not converge.
enum UpdateFailure {
    Swarm(SwarmError),
    Wait(WaitError),
    /// Another change rotated the core's config after this run read it.
    ChangedUnderneath(String),
}

impl UpdateFailure {
    /// Whether the update failed for good (so the other services must be restored too).
    fn rolls_back(&self) -> bool {
        matches!(self, UpdateFailure::Wait(WaitError::Failed(_)))
    }

    /// Whether Swarm paused the update instead of rolling it back (we must roll it back).
    fn paused(&self) -> bool {
        matches!(self, UpdateFailure::Wait(WaitError::Failed(a)) if matches!(a.phase, Phase::Paused(_)))
    }

    fn into_error(self, service: &str, core_restored: bool) -> Error {
        match self {
            UpdateFailure::Swarm(error) | UpdateFailure::Wait(WaitError::Swarm(error)) => Error::failed(&error),
            UpdateFailure::ChangedUnderneath(message) => Error::new(
                ExitCode::Failure,
                Problem::new(
                    "changed_underneath",
                    format!("{service} was changed underneath us: {message}"),
                    Some("another change ran at the same time; run the command again to plan from the new state".into()),
                ),
            ),
            UpdateFailure::Wait(WaitError::TimedOut(assessment)) => Error::new(
                ExitCode::TimedOut,
                Problem::new(
                    "timed_out",
                    format!("{service} did not converge in time: {}", summary(&assessment)),
                    Some("nothing was rolled back; run `interlockctl status` to see where it stands, then re-run or `interlockctl rollback`".into()),
                ),
            ),
            UpdateFailure::Wait(WaitError::Failed(assessment)) => {
                let also = if core_restored { " and the core was rolled back to its previous config" } else { "" };
                Error::new(
                    ExitCode::RolledBack,
                    Problem::new(
                        "rolled_back",
                        format!("the update of {service} failed and was rolled back to its previous spec{also}: {}", summary(&assessment)),
                        Some("the swarm serves with its previous config; fix the cause above and run the command again".into()),
                    ),
                )
            }
        }
    }
}

fn summary(assessment: &Assessment) -> String {
    let phase = match &assessment.phase {
        Phase::Paused(message) | Phase::RollingBack(message) | Phase::RolledBack(message) => {
            message.clone()
        }
        Phase::Updating | Phase::Converged => format!(
            "{}/{} tasks running",
            assessment.running, assessment.desired
        ),
    };
    let mut text = phase;
    for problem in &assessment.task_problems {
        text.push_str("; ");
        text.push_str(problem);
    }
    text
}

/// Applies `edits` to the service's current spec and waits for convergence. A concurrent
/// update (out of sequence) makes it re-read and re-apply the same edits.
async fn update_and_wait<S: SwarmApi>(
    api: &S,
    name: &str,
    edits: &[SpecEdit],
    options: &Options,
    printer: &Printer,
) -> Result<(), UpdateFailure> {
    let mut attempts = 0;
    let id = loop {
        let service = api
            .service(name)
            .await
            .map_err(UpdateFailure::Swarm)?
            .ok_or_else(|| {
                UpdateFailure::Swarm(SwarmError::Protocol {
                    operation: format!("update {name}"),
                    message: "the service disappeared".into(),
                })
            })?;
        if let Some(conflict) = spec::swap_conflict(&service.spec, edits) {
            return Err(UpdateFailure::ChangedUnderneath(conflict));
        }
        let mut spec = service.spec.clone();
        edits.iter().for_each(|edit| edit.write_into(&mut spec));
        if spec == service.spec {
            break service.id;
        }
        printer.detail(&format!("updating {name} at version {}", service.version));
        match api
            .update_service(&service.id, service.version, &spec)
            .await
        {
            Ok(()) => break service.id,
            Err(SwarmError::OutOfSequence(_)) if attempts + 1 < UPDATE_ATTEMPTS => attempts += 1,
            Err(error) => return Err(UpdateFailure::Swarm(error)),
        }
    };
    wait(api, &id, options, printer)
        .await
        .map(drop)
        .map_err(UpdateFailure::Wait)
}

async fn wait<S: SwarmApi>(
    api: &S,
    id: &str,
    options: &Options,
    printer: &Printer,
) -> Result<Assessment, WaitError> {
    let mut progress = Progress::start(printer);
    let outcome = converge::wait(api, id, Instant::now() + options.timeout, &mut |a| {
        progress.update(a)
    })
    .await;
    progress.finish();
    outcome
}

/// Asks Swarm to put a service back on its previous spec and waits for it.
pub async fn rollback<S: SwarmApi>(
    api: &S,
    name: &str,
    options: &Options,
    printer: &Printer,
) -> Result<(), SwarmError> {
    let Some(service) = api.service(name).await? else {
        return Ok(());
    };
    api.rollback_service(&service).await?;
    match wait(api, &service.id, options, printer).await {
        Ok(_) | Err(WaitError::Failed(_) | WaitError::TimedOut(_)) => Ok(()),
        Err(WaitError::Swarm(error)) => Err(error),
    }
}

/// Checks the proxy's tasks; re-creates tasks that kept stale ports, once.
pub async fn verify_proxy<S: SwarmApi>(
    api: &S,
    settings: &ExtensionSettings,
    options: &Options,
    printer: &Printer,
) -> Result<()> {
    for attempt in 0..2 {
        let proxy = api
            .service(&settings.proxy_service_name)
            .await
            .map_err(|e| Error::failed(&e))?
            .ok_or_else(|| {
                Error::refused(&preflight::Missing::ProxyService(
                    settings.proxy_service_name.clone(),
                ))
            })?;
        let tasks = api.tasks(&proxy.id).await.map_err(|e| Error::failed(&e))?;
        let nodes = api.nodes().await.map_err(|e| Error::failed(&e))?;
        let check = verify::check_proxy(settings, &proxy, &tasks, &nodes);
        if check.is_ok() {
            printer.status(&format!(
                "Verified: {} runs {} task(s) as configured.",
                proxy.name, settings.proxy_replicas
            ));
            return Ok(());
        }
        if attempt == 0 && check.problems.is_empty() {
            printer.status(&format!(
                "{}; re-creating the proxy tasks ...",
                check.stale_tasks.join("; ")
            ));
            update_and_wait(api, &proxy.name, &[SpecEdit::ForceUpdate], options, printer)
                .await
                .map_err(|failure| failure.into_error(&proxy.name, false))?;
            continue;
        }
        let mut problems = check.problems;
        problems.extend(check.stale_tasks);
        return Err(Error::new(
            ExitCode::RolledBack,
            Problem::new(
                "verification_failed",
                format!("the proxy does not serve as configured: {}", problems.join("; ")),
                Some("the previous specs were restored; `interlockctl status` shows where tasks run and why".into()),
            ),
        ));
    }
    unreachable!("the loop returns on its second pass")
}

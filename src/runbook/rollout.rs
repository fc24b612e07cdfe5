//! Rollout: apply a plan step by step, wait for Swarm, verify, and put back what the run
//! changed when a step fails.
//!
//! # Steps
//! 1. Create the planned config object (or take the identical one an interrupted run made).
//! 2. Send the core's update (config swap, host port, failure action), then the proxy's
//!    (constraints, replicas, ports). When the core writes the proxy (the proxy mounts a
//!    config of the core's at `ProxyConfigPath`), the run gives the core a new config, and
//!    Swarm replaces every proxy task in one batch (see [`Plan::proxy_hold`] for why only
//!    then), the proxy's edits are held until the restarted core has swapped the nginx config it
//!    renders from it onto the proxy, and are then written onto that spec: Swarm replaces
//!    each proxy task once, for both changes, instead of once for the run and again for the
//!    core. A core whose rendering did not change swaps nothing: the edits then go out once
//!    the core's new task has run for one `PollInterval` of the new config (the core renders
//!    on start and then every `PollInterval`). Without a hold, the proxy's update follows
//!    as soon as Swarm has accepted the core's.
//! 3. Wait for the core and the proxy together; check the core still mounts this run's
//!    config.
//! 4. For a new service cluster, wait for the core to create its proxy from the new config,
//!    then make that proxy match the settings where the core did not (the known bug).
//! 5. Verify the proxy from its tasks, and re-create tasks only when one kept stale ports.
//! 6. For a removed service cluster, remove the services only it named (Interlock leaves
//!    them running), now that the core runs on the config without it; a re-read confirms
//!    each is gone.
//!
//! An `upgrade` adds the further services' updates ([`Plan::others`]: the extensions and the
//! proxies, each to its new image) once the core runs its new image and config (sent in one
//! update, so the core restarts once, on a config that names the new images), waits for them
//! together, verifies every cluster's proxy, then checks that every task runs its new image
//! and, two of the core's `PollInterval`s later, that the core reconciled no service back to
//! an old image. A failure there restores like any other: images are fields ([`Field::Image`]).
//!
//! # Why holding the proxy's edits stays safe
//! - A core that fails to load the config never swaps: its new task exits, Swarm rolls the
//!   core back by itself (the same update sets `FailureAction = rollback`), and the hold ends
//!   on that rollback without sending anything to the proxy. The proxy was never touched, so
//!   the restore has only the core to put back, and the proxy goes on serving the nginx
//!   config it had throughout. `tests/engine_faults.rs` checks both services' end state.
//! - A hold never widens a rollout: Swarm restarts its updater when a spec changes in the
//!   middle of a rollout and takes the slots in no fixed order, so the edits land on the
//!   swap's rollout only when that rollout replaces every task at once anyway; with smaller
//!   batches they go out ahead of the swap, as the hand runbook sends them.
//! - What the proxy's update changes (placement, replica count, published ports) does not
//!   depend on which nginx config the proxy serves, so it may land on the core's spec. The
//!   core writes only the config mount; the run writes only its own fields onto whatever
//!   spec is current (re-read, versioned), so neither undoes the other.
//! - Edits written onto the swap's rollout force every task's re-creation: Swarm's updater
//!   has created the swap's first tasks before they land, and one that differs from the
//!   final spec only in its constraints, on a node that fits them, would be kept though not
//!   of the current spec (a wait for a task that never comes). The swap replaces every task
//!   anyway, so the force adds no re-creation.
//! - A hold is bounded: by the core's `PollInterval` once its new task runs (a core with
//!   nothing new to render never swaps), and by `--timeout` (exit 6, nothing undone, as
//!   any wait). A run that stops during the hold has changed only the core; a re-run finds
//!   the core done and the proxy's edits still to make, and sends them at once.
//! - The proxy's update goes out only after Swarm accepted the core's, and the core's update
//!   refuses to land on a core whose config another run rotated meanwhile (the spec version
//!   is checked), so two runs never both move the proxy towards different configs.
//! - When the core's new task fails after the proxy's update went out (a hold that ended
//!   without a swap, or a proxy with no hold), Swarm rolls the core back and the run puts
//!   every proxy field it changed back to its value before the run.
//!
//! # Restoring
//! Any failure after the first change is undone while the engine can be reached: a rollout
//! Swarm paused or rolled back, a proxy that does not verify, and an update or read the
//! engine refused (a 4xx or 5xx, the proxy's update after the core's was accepted, or that of
//! a proxy the core created). It is undone field by field: every [`Field`] the run's edits
//! named goes back to its value before the run (the spec observed then, the one the backup
//! holds), written onto each service as it is now, so what a concurrent writer changed
//! meanwhile (the core's new nginx config on the proxy, say) stays. Swarm's own
//! `rollback=previous` is not used: after the run's updates its previous spec may be the
//! run's new spec. A new cluster's proxy that the core created from this run's config is no
//! part of the state before the run: once the core is back on its previous config, it is
//! removed (while the core is not, it is left).
//!
//! The restore is waited for, the services are read again, and exit 5 is reported only when
//! that read shows every field back and the created proxy gone, and each restored service
//! serves: settled, no update or rollback of Swarm's paused on it, the core's tasks of the
//! spec it is back on running, the proxy's tasks passing [`verify::check_proxy`] against the
//! settings its spec carried before the run (replicas, placement, ports). Otherwise exit 1
//! `partially_restored` names, per service, what differs or why it does not serve.
//!
//! # What is not undone
//! Exactly these stop the run (exit 1, or 6 for a timeout) with the changes made so far left
//! in place, for `interlockctl status` to show and a re-run to plan from:
//! - the engine cannot be reached: a connection that just failed is not trusted with a restore;
//! - a wait outlasts `--timeout` (also the core never creating a new cluster's proxy): the
//!   rollout may still finish;
//! - another change: the core's config rotated by another run, or a service someone else
//!   updated on every attempt (update out of sequence): undoing this run would undo theirs;
//! - a removed cluster's services that cannot be removed once the config without it is
//!   verified: the change itself is done, and those services are named.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::error::{Error, Problem, Result};
use crate::exit::ExitCode;
use crate::interlock::config::ExtensionSettings;
use crate::output::printer::Printer;
use crate::output::progress::Progress;
use crate::output::report::UpdateTiming;
use crate::runbook::Options;
use crate::runbook::observe::LiveState;
use crate::runbook::plan::{self, CONFIG_TARGET, NextConfig, Observed, Plan, ServiceEdits};
use crate::runbook::{preflight, verify};
use crate::swarm::converge::{self, Assessment, Converged, CoreWrite, Phase, WaitError};
use crate::swarm::spec::{self, Field, SpecEdit};
use crate::swarm::{Service, SwarmApi, SwarmError};

/// How often an update is retried when someone else updated the service in between.
const UPDATE_ATTEMPTS: usize = 5;
/// How often a config name is retried when another run took it first.
const CREATE_ATTEMPTS: usize = 5;

/// What a successful rollout did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The config the core now mounts, when the run created or reused one.
    pub config: Option<String>,
    /// Each service update, timed.
    pub timings: Vec<UpdateTiming>,
    /// The services whose spec fields the run changed (none when it only re-created tasks).
    pub updated: Vec<String>,
}

/// Applies the plan: config, core and proxy updates, waits, verification; restores on
/// failure.
///
/// `settings` are the extension's in the new config, `previous` those in the live one.
pub async fn execute<S: SwarmApi>(
    api: &S,
    plan: &Plan,
    state: &LiveState,
    (settings, previous): (&ExtensionSettings, &ExtensionSettings),
    new_text: &str,
    options: &Options,
    printer: &Printer,
) -> Result<Applied> {
    let observed = &state.observed;
    let journal = &options.journal;
    journal.plan(planned_changes(plan, observed, settings));
    let mut run = Run::new(api, options, printer);
    let mut core_edits = plan.core_edits.clone();
    let config = match &plan.config {
        Some(next) => {
            journal.step("creating the config");
            let (name, id) = ensure_config(api, next, observed, new_text, options, printer).await?;
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
    journal.step(&format!("updating {}", observed.core.name));
    let core = match run.send(&observed.core, &core_edits, Role::Core).await {
        Ok(sent) => sent,
        Err(failure) => return Err(failure.into_error(&observed.core.name)),
    };
    if plan.config.is_some() {
        // The core creates a new cluster's proxy when it loads this run's config.
        run.created_by_core.clone_from(&plan.awaited_proxy);
    }
    let proxy_name = &settings.proxy_service_name;
    let proxy = match &observed.proxy {
        Some(proxy) => {
            let edits = match run.hold_for_core_write(&core, proxy, plan).await {
                Ok(edits) => edits,
                Err(failure) => return Err(run.fail(failure, &observed.core.name).await),
            };
            journal.step(&format!("updating {proxy_name}"));
            match run.send(proxy, &edits, Role::proxy(previous, proxy)).await {
                Ok(sent) => sent,
                Err(failure) => return Err(run.fail(failure, proxy_name).await),
            }
        }
        None => None,
    };
    // Both rollouts run at once; each is seen converged the moment it is.
    journal.step("waiting for the rollouts");
    let (core_waited, proxy_waited) = futures_util::join!(run.wait(&core), run.wait(&proxy));
    for waited in [&core_waited, &proxy_waited] {
        run.timings.extend(waited.as_ref().ok().cloned().flatten());
    }
    if let Err(failure) = core_waited {
        return Err(run.fail(failure, &observed.core.name).await);
    }
    let core_config = config
        .clone()
        .unwrap_or_else(|| observed.config.name.clone());
    // Another run's change is left alone: undoing this run would undo that one too.
    if let Err(failure) = ensure_core_config(api, &observed.core.name, &core_config).await {
        return Err(run.fail(failure, &observed.core.name).await);
    }
    if let Err(failure) = proxy_waited {
        return Err(run.fail(failure, proxy_name).await);
    }
    run.update_others(&plan.others, state).await?;
    run.follow_and_verify(plan, settings).await?;
    for other in other_updated_proxies(state, plan, settings) {
        if let Err(failure) = run.verify_proxy(&other).await {
            return Err(run.fail(failure, &other.proxy_service_name).await);
        }
    }
    let images = plan.moved_images(&observed.core.name);
    if let Err((failure, service)) = run
        .verify_images(&images, state.config.poll_interval())
        .await
    {
        return Err(run.fail(failure, &service).await);
    }
    for service in &observed.retired {
        run.remove(service)
            .await
            .map_err(|failure| failure.into_error(&service.name))?;
    }
    Ok(run.applied(config))
}

/// The settings of the other extensions whose proxy the plan updates (an upgrade moves every
/// service cluster's proxy): each is verified as the selected one is.
fn other_updated_proxies(
    state: &LiveState,
    plan: &Plan,
    selected: &ExtensionSettings,
) -> Vec<ExtensionSettings> {
    every_extension(state)
        .into_iter()
        .filter(|other| {
            other.proxy_service_name != selected.proxy_service_name
                && plan
                    .others
                    .iter()
                    .any(|o| o.service == other.proxy_service_name)
        })
        .collect()
}

/// The settings of every extension of the live config that has usable ones.
fn every_extension(state: &LiveState) -> Vec<ExtensionSettings> {
    let names = state.config.extension_names().unwrap_or_default();
    names
        .iter()
        .filter_map(|name| state.config.extension(name).ok())
        .collect()
}

/// Verifies the proxy when the plan changed nothing: a finished or interrupted earlier run
/// may still have left tasks with stale ports, or a config whose new cluster's proxy the core
/// has still to create (it is awaited and made to match, as in [`execute`]). Only fields this
/// run changed on such a proxy are put back; with none, a proxy that does not serve as
/// configured is exit 1.
pub async fn verify_unchanged<S: SwarmApi>(
    api: &S,
    plan: &Plan,
    settings: &ExtensionSettings,
    options: &Options,
    printer: &Printer,
) -> Result<Applied> {
    let mut run = Run::new(api, options, printer);
    run.follow_and_verify(plan, settings).await?;
    Ok(run.applied(None))
}

/// The changes a plan sends, as the journal names them.
fn planned_changes(plan: &Plan, observed: &Observed, settings: &ExtensionSettings) -> Vec<String> {
    let mut changes = Vec::new();
    if let Some(NextConfig::Create { name, .. }) = &plan.config {
        changes.push(format!("create config {name}"));
    }
    if !plan.core_edits.is_empty() {
        changes.push(update_change(&observed.core.name));
    }
    if !plan.proxy_edits.is_empty() {
        changes.push(update_change(&settings.proxy_service_name));
    }
    changes.extend(plan.removed_services.iter().map(|name| remove_change(name)));
    changes
}

fn update_change(service: &str) -> String {
    format!("update {service}")
}

fn remove_change(service: &str) -> String {
    format!("remove {service}")
}

/// Creates the planned config (or takes the identical one an earlier run created). When
/// another run took the name first (409), the next free number is used.
async fn ensure_config<S: SwarmApi>(
    api: &S,
    next: &NextConfig,
    observed: &Observed,
    text: &str,
    options: &Options,
    printer: &Printer,
) -> Result<(String, String)> {
    let (mut name, labels) = match next {
        NextConfig::Reuse { name, id } => return Ok((name.clone(), id.clone())),
        NextConfig::Create { name, labels } => (name.clone(), labels),
    };
    for _ in 0..CREATE_ATTEMPTS {
        printer.detail(&format!("creating config {name}"));
        let change = format!("create config {name}");
        match options
            .journal
            .sending(&change, api.create_config(&name, text, labels))
            .await
        {
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
                options
                    .journal
                    .rename(&change, &format!("create config {name}"));
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
) -> Result<(), Failure> {
    let service = api.service(core).await.map_err(Failure::Swarm)?;
    let mounted = service
        .and_then(|s| spec::config_ref(&s.spec, CONFIG_TARGET))
        .map(|(name, _)| name);
    match mounted {
        Some(name) if name == expected => Ok(()),
        other => Err(Failure::ChangedUnderneath(format!(
            "it now mounts {} instead of {expected}",
            other.as_deref().unwrap_or("no config")
        ))),
    }
}

/// Why a step did not succeed.
enum Failure {
    /// The engine refused a request, or could not be asked (then nothing is undone: the
    /// connection is not trusted).
    Swarm(SwarmError),
    /// Another change rotated the core's config after this run read it.
    ChangedUnderneath(String),
    /// A wait ran out of time (nothing is undone: `status` tells where it stands).
    TimedOut(Assessment),
    /// Swarm paused or rolled back an update.
    UpdateFailed(Assessment),
    /// The proxy's tasks do not serve as configured.
    NotVerified(Vec<String>),
    /// The core did not create a new cluster's proxy in time (nothing is undone, as for
    /// any timeout).
    NotCreated,
    /// Tasks that do not run the image the run moved their service to, or a service put
    /// back on another image.
    WrongImage(Vec<String>),
}

impl From<WaitError> for Failure {
    fn from(error: WaitError) -> Self {
        match error {
            WaitError::Swarm(error) => Failure::Swarm(error),
            WaitError::TimedOut(assessment) => Failure::TimedOut(assessment),
            WaitError::Failed(assessment) => Failure::UpdateFailed(assessment),
        }
    }
}

impl Failure {
    /// Whether what the run changed is put back (see "What is not undone" above).
    fn restores(&self) -> bool {
        match self {
            Failure::Swarm(error) => !matches!(
                error,
                SwarmError::Unreachable { .. } | SwarmError::OutOfSequence(_)
            ),
            Failure::UpdateFailed(_) | Failure::NotVerified(_) | Failure::WrongImage(_) => true,
            Failure::ChangedUnderneath(_) | Failure::TimedOut(_) | Failure::NotCreated => false,
        }
    }

    /// The problem itself, without anything about restoring.
    fn problem(&self, service: &str) -> Problem {
        match self {
            Failure::Swarm(error) => Problem::from_diagnostic(error),
            Failure::ChangedUnderneath(message) => Problem::new(
                "changed_underneath",
                format!("{service} was changed underneath us: {message}"),
                Some("another change ran at the same time; run the command again to plan from the new state".into()),
            ),
            Failure::TimedOut(assessment) => Problem::new(
                "timed_out",
                format!("{service} did not converge in time: {}", summary(assessment)),
                Some("nothing was rolled back; run `interlockctl status` to see where it stands, then re-run or `interlockctl rollback`".into()),
            ),
            Failure::UpdateFailed(assessment) => Problem::new(
                "update_failed",
                format!("the update of {service} failed: {}", summary(assessment)),
                None,
            ),
            Failure::NotVerified(problems) => Problem::new(
                "verification_failed",
                format!("the proxy does not serve as configured: {}", problems.join("; ")),
                None,
            ),
            Failure::WrongImage(problems) => Problem::new(
                "verification_failed",
                format!("the services do not run the new images: {}", problems.join("; ")),
                None,
            ),
            Failure::NotCreated => Problem::new(
                "timed_out",
                format!("the Interlock core did not create {service} in time"),
                Some("check the core's tasks and logs (`docker service ps`, `docker service logs`); nothing was rolled back; run the command again to wait again".into()),
            ),
        }
    }

    /// The error for a failure that restores nothing.
    fn into_error(self, service: &str) -> Error {
        let exit = match &self {
            Failure::TimedOut(_) | Failure::NotCreated => ExitCode::TimedOut,
            _ => ExitCode::Failure,
        };
        Error::new(exit, self.problem(service))
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

/// An update this run sent.
struct Sent {
    name: String,
    id: String,
    at: Instant,
}

/// What this run changed on a service: the service as observed before the run, the fields
/// its edits named, and how it is judged serving once they are back.
struct Touched {
    before: Service,
    fields: Vec<Field>,
    role: Role,
}

/// What a service this run changed does, for judging it after a restore.
#[derive(Debug, Clone)]
enum Role {
    /// The Interlock core: its tasks of the spec it is back on must run.
    Core,
    /// A proxy: its tasks must pass verification against these settings.
    Proxy(ExtensionSettings),
    /// Another Interlock service (an extension service an upgrade moved): its tasks of the
    /// spec it is back on must run, as the core's.
    Service,
}

impl Role {
    /// A proxy as observed before the run, judged by the settings its spec carried then
    /// ([`verify::settings_of_spec`]) on the extension's `settings`.
    fn proxy(settings: &ExtensionSettings, before: &Service) -> Self {
        Role::Proxy(verify::settings_of_spec(settings, &before.spec))
    }
}

/// What a restore did, per service.
#[derive(Debug, Default)]
struct Restoration {
    /// Services whose fields are back, and how.
    done: Vec<String>,
    /// Services whose restore could not be sent or did not converge.
    unfinished: Vec<String>,
}

/// One run's updates: what it sent, to put it back on failure, and how long each took.
struct Run<'a, S> {
    api: &'a S,
    options: &'a Options,
    printer: &'a Printer,
    touched: Vec<Touched>,
    /// The proxy the core creates from this run's config (a new service cluster): a restore
    /// removes it instead of putting its fields back.
    created_by_core: Option<String>,
    timings: Vec<UpdateTiming>,
}

impl<'a, S: SwarmApi> Run<'a, S> {
    fn new(api: &'a S, options: &'a Options, printer: &'a Printer) -> Self {
        Run {
            api,
            options,
            printer,
            touched: Vec::new(),
            created_by_core: None,
            timings: Vec::new(),
        }
    }

    /// What the run did, once it succeeded.
    fn applied(self, config: Option<String>) -> Applied {
        Applied {
            config,
            timings: self.timings,
            updated: self
                .touched
                .into_iter()
                .map(|touched| touched.before.name)
                .collect(),
        }
    }

    /// Follows the proxy a plan awaits from the core, then verifies the proxy; puts back what
    /// the run changed when either fails.
    async fn follow_and_verify(&mut self, plan: &Plan, settings: &ExtensionSettings) -> Result<()> {
        if let Some(awaited) = &plan.awaited_proxy
            && let Err(failure) = self.follow_created(awaited, settings).await
        {
            return Err(self.fail(failure, awaited).await);
        }
        if let Err(failure) = self.verify_proxy(settings).await {
            return Err(self.fail(failure, &settings.proxy_service_name).await);
        }
        Ok(())
    }

    /// Waits (within `--timeout`) for the core to create a new cluster's proxy and for its
    /// tasks, and makes it match the settings where the core did not (the known bug); the
    /// fields changed join the restore.
    async fn follow_created(
        &mut self,
        name: &str,
        settings: &ExtensionSettings,
    ) -> Result<(), Failure> {
        self.printer.status(&format!(
            "Waiting for the Interlock core to create {name} ..."
        ));
        self.options
            .journal
            .step(&format!("waiting for the Interlock core to create {name}"));
        let deadline = Instant::now() + self.options.timeout;
        let proxy = converge::wait_created(self.api, name, deadline)
            .await
            .map_err(Failure::Swarm)?
            .ok_or(Failure::NotCreated)?;
        let edits = plan::own_proxy_edits(settings, &proxy.spec);
        let sent = self
            .send(&proxy, &edits, Role::proxy(settings, &proxy))
            .await?;
        if sent.is_some() {
            let timing = self.wait(&sent).await?;
            self.timings.extend(timing);
        } else {
            self.converge(&proxy.id).await?;
        }
        Ok(())
    }

    /// Sends the updates of the further services (an upgrade's extension and proxies) and
    /// waits for them all at once; puts back what the run changed when one fails.
    async fn update_others(&mut self, others: &[ServiceEdits], state: &LiveState) -> Result<()> {
        let mut sent = Vec::new();
        let extensions = every_extension(state);
        for update in others {
            let observed = &state.observed.others;
            let Some(before) = observed.iter().find(|s| s.name == update.service) else {
                continue;
            };
            let proxy_of = extensions
                .iter()
                .find(|settings| settings.proxy_service_name == before.name);
            let role = proxy_of.map_or(Role::Service, |settings| Role::proxy(settings, before));
            match self.send(before, &update.edits, role).await {
                Ok(update) => sent.push(update),
                Err(failure) => return Err(self.fail(failure, &before.name).await),
            }
        }
        let waited = futures_util::future::join_all(sent.iter().map(|s| self.wait(s))).await;
        for (update, waited) in sent.iter().zip(waited) {
            match waited {
                Ok(timing) => self.timings.extend(timing),
                Err(failure) => {
                    let name = update.as_ref().map_or("", |sent| sent.name.as_str());
                    return Err(self.fail(failure, name).await);
                }
            }
        }
        Ok(())
    }

    /// Checks that every task of each service in `images` runs the image the run moved it
    /// to, then, two of the core's `PollInterval`s later, that no service was put back on
    /// another image (the core reconciles the extension and the proxies from its config).
    async fn verify_images(
        &self,
        images: &BTreeMap<String, String>,
        poll_interval: Duration,
    ) -> Result<(), (Failure, String)> {
        for (name, image) in images {
            let service = self.settled(name).await.map_err(|f| (f, name.clone()))?;
            let tasks = self
                .api
                .tasks(&service.id)
                .await
                .map_err(|e| (Failure::Swarm(e), name.clone()))?;
            let problems = verify::check_images(&service, image, &tasks);
            if !problems.is_empty() {
                return Err((Failure::WrongImage(problems), name.clone()));
            }
        }
        let Some((last, _)) = images.last_key_value() else {
            return Ok(());
        };
        let wait = poll_interval * 2;
        self.printer.status(&format!(
            "Verified: every task runs its new image; checking again in {} s that nothing puts an old one back ...",
            wait.as_secs()
        ));
        tokio::time::sleep(wait).await;
        let mut put_back = Vec::new();
        for (name, image) in images {
            let now = self
                .api
                .service(name)
                .await
                .map_err(|e| (Failure::Swarm(e), name.clone()))?
                .map(|service| spec::image(&service.spec))
                .unwrap_or_default();
            if now != *image {
                put_back.push(format!(
                    "{name} was put back on {now} (the run moved it to {image})"
                ));
            }
        }
        if put_back.is_empty() {
            self.printer.status("Verified: no image was put back.");
            Ok(())
        } else {
            Err((Failure::WrongImage(put_back), last.clone()))
        }
    }

    /// Removes a service and reads it again to see it gone.
    async fn remove(&self, service: &Service) -> Result<(), Failure> {
        self.printer
            .status(&format!("Removing {} ...", service.name));
        let journal = &self.options.journal;
        journal.step(&format!("removing {}", service.name));
        journal
            .sending(
                &remove_change(&service.name),
                self.api.remove_service(&service.id),
            )
            .await
            .map_err(Failure::Swarm)?;
        if self
            .api
            .service(&service.id)
            .await
            .map_err(Failure::Swarm)?
            .is_some()
        {
            return Err(Failure::Swarm(SwarmError::Protocol {
                operation: format!("remove service {}", service.name),
                message: "the service still exists after its removal".into(),
            }));
        }
        self.printer.status(&format!("Removed {}.", service.name));
        Ok(())
    }

    /// Whether a restore removes this service rather than putting its fields back.
    fn removed_on_restore(&self, name: &str) -> bool {
        self.created_by_core.as_deref() == Some(name)
    }

    /// Sends `edits` to the service observed as `before`, on its current spec (`None` when
    /// there is nothing to send), and remembers the fields, and the service's `role`, for a
    /// restore.
    async fn send(
        &mut self,
        before: &Service,
        edits: &[SpecEdit],
        role: Role,
    ) -> Result<Option<Sent>, Failure> {
        if edits.is_empty() {
            return Ok(None);
        }
        self.printer
            .status(&format!("Updating {} ...", before.name));
        let sent = self
            .update(&before.name, edits, &update_change(&before.name))
            .await?;
        if sent.is_some() {
            let mut fields: Vec<Field> = edits.iter().filter_map(SpecEdit::field).collect();
            fields.dedup();
            self.touched.push(Touched {
                before: before.clone(),
                fields,
                role,
            });
        }
        Ok(sent)
    }

    /// Holds the proxy's edits while the plan says so ([`Plan::proxy_hold`]) and the core
    /// was updated: until the core has swapped its new nginx config onto the proxy, or did
    /// not within the hold after its new task started, so that [`Run::send`] writes them onto
    /// the core's spec and one rollout carries both. The edits to send: none when the core's
    /// update failed first (the core never loaded the config; the proxy is left as it is),
    /// and with a forced re-creation when they land on the swap's rollout. Swarm's updater
    /// creates the swap's first tasks before the edits arrive; one whose template differs from
    /// the final spec only in its constraints, on a node that fits them, Swarm would keep
    /// (not dirty) without counting it as of the current spec (seen on the lab: the run
    /// waited for a task that never came), while the force makes it replaced like the rest.
    async fn hold_for_core_write(
        &self,
        core: &Option<Sent>,
        proxy: &Service,
        plan: &Plan,
    ) -> Result<Vec<SpecEdit>, Failure> {
        let (Some(hold), Some(core)) = (plan.proxy_hold, core) else {
            return Ok(plan.proxy_edits.clone());
        };
        self.options.journal.step(&format!(
            "waiting for the core's nginx config on {}",
            proxy.name
        ));
        self.printer.status(&format!(
            "Holding the update of {} until the core swaps its new nginx config onto it (at most {} after the core starts) ...",
            proxy.name,
            humantime::format_duration(hold)
        ));
        let deadline = Instant::now() + self.options.timeout;
        let write =
            converge::wait_core_write(self.api, &core.id, &proxy.id, proxy.version, hold, deadline)
                .await?;
        self.printer
            .detail(&format!("the core's write of {}: {write:?}", proxy.name));
        Ok(match write {
            CoreWrite::CoreFailed => Vec::new(),
            CoreWrite::NotWritten => {
                self.printer.status(&format!(
                    "The core did not write {}; sending the update.",
                    proxy.name
                ));
                plan.proxy_edits.clone()
            }
            CoreWrite::Written => {
                self.printer.status(&format!(
                    "The update joins the core's rollout of {}: each task is re-created once, by force.",
                    proxy.name
                ));
                [&plan.proxy_edits[..], &[SpecEdit::ForceUpdate]].concat()
            }
        })
    }

    /// Writes `edits` into the service's current spec and sends it (`None` when the spec
    /// says so already) as the journal's `change`; a concurrent update (out of sequence)
    /// makes it read and write again.
    async fn update(
        &self,
        name: &str,
        edits: &[SpecEdit],
        change: &str,
    ) -> Result<Option<Sent>, Failure> {
        self.write(name, change, |service| {
            if let Some(conflict) = spec::swap_conflict(&service.spec, edits) {
                return Err(Failure::ChangedUnderneath(conflict));
            }
            let mut spec = service.spec.clone();
            edits.iter().for_each(|edit| edit.write_into(&mut spec));
            Ok(spec)
        })
        .await
    }

    /// Reads the service, lets `new_spec` compute its new spec and sends it (the journal's
    /// `change`), retrying on "update out of sequence"; `None` when the new spec equals the
    /// current one.
    async fn write(
        &self,
        name: &str,
        change: &str,
        new_spec: impl Fn(&Service) -> Result<Value, Failure>,
    ) -> Result<Option<Sent>, Failure> {
        for attempt in 1.. {
            let service = self
                .api
                .service(name)
                .await
                .map_err(Failure::Swarm)?
                .ok_or_else(|| {
                    Failure::Swarm(SwarmError::Protocol {
                        operation: format!("update {name}"),
                        message: "the service disappeared".into(),
                    })
                })?;
            let spec = new_spec(&service)?;
            if spec == service.spec {
                return Ok(None);
            }
            let sent = Sent {
                name: service.name.clone(),
                id: service.id.clone(),
                at: Instant::now(),
            };
            self.printer
                .detail(&format!("updating {name} at version {}", service.version));
            let request = self.api.update_service(&service.id, service.version, &spec);
            match self.options.journal.sending(change, request).await {
                Ok(()) => return Ok(Some(sent)),
                Err(SwarmError::OutOfSequence(_)) if attempt < UPDATE_ATTEMPTS => {}
                Err(error) => return Err(Failure::Swarm(error)),
            }
        }
        unreachable!("the loop returns")
    }

    /// Waits for a sent update (if any) to converge; its timing.
    async fn wait(&self, sent: &Option<Sent>) -> Result<Option<UpdateTiming>, Failure> {
        let Some(sent) = sent else {
            return Ok(None);
        };
        let converged = self.converge(&sent.id).await?;
        let seconds = sent.at.elapsed().as_secs_f64();
        let swarm_seconds = converged.swarm_duration.map(|d| d.as_secs_f64());
        self.printer.detail(&format!(
            "{} converged {seconds:.2} s after the update request (Swarm's rollout: {})",
            sent.name,
            swarm_seconds.map_or_else(|| "none".to_owned(), |s| format!("{s:.2} s"))
        ));
        Ok(Some(UpdateTiming {
            service: sent.name.clone(),
            seconds,
            swarm_seconds,
        }))
    }

    async fn converge(&self, id: &str) -> Result<Converged, WaitError> {
        let mut progress = Progress::start(self.printer);
        let deadline = Instant::now() + self.options.timeout;
        let outcome = converge::wait(self.api, id, deadline, &mut |a| progress.update(a)).await;
        progress.finish();
        outcome
    }

    /// Checks the proxy's tasks (after any rollout someone else runs on it, such as the
    /// core swapping in a new nginx config); re-creates the tasks once when some kept stale
    /// ports.
    async fn verify_proxy(&mut self, settings: &ExtensionSettings) -> Result<(), Failure> {
        let name = &settings.proxy_service_name;
        self.options.journal.step(&format!("verifying {name}"));
        for attempt in 0..2 {
            let proxy = self.settled(name).await?;
            let tasks = self.api.tasks(&proxy.id).await.map_err(Failure::Swarm)?;
            let nodes = self.api.nodes().await.map_err(Failure::Swarm)?;
            let check = verify::check_proxy(settings, &proxy, &tasks, &nodes);
            if check.is_ok() {
                self.printer.status(&format!(
                    "Verified: {} runs {} task(s) as configured.",
                    proxy.name, settings.proxy_replicas
                ));
                return Ok(());
            }
            if attempt == 0 && check.problems.is_empty() {
                self.printer.status(&format!(
                    "{}; re-creating the proxy tasks ...",
                    check.stale_tasks.join("; ")
                ));
                let change = format!("re-create the tasks of {name}");
                let forced = self.update(name, &[SpecEdit::ForceUpdate], &change).await?;
                self.timings.extend(self.wait(&forced).await?);
                continue;
            }
            let mut problems = check.problems;
            problems.extend(check.stale_tasks);
            return Err(Failure::NotVerified(problems));
        }
        unreachable!("the loop returns on its second pass")
    }

    /// The service once no rollout runs on it, nor is about to.
    async fn settled(&self, name: &str) -> Result<Service, Failure> {
        let service = self
            .api
            .service(name)
            .await
            .map_err(Failure::Swarm)?
            .ok_or_else(|| {
                Failure::NotVerified(vec![
                    preflight::Missing::ProxyService(name.to_owned()).to_string(),
                ])
            })?;
        let waiting = format!("Waiting for the rollout running on {name} to finish ...");
        let deadline = Instant::now() + self.options.timeout;
        Ok(wait_until_settled(self.api, service, deadline, self.printer, &waiting).await?)
    }

    /// The error for `failure`, after putting back what this run changed when it should.
    async fn fail(&self, failure: Failure, service: &str) -> Error {
        if !failure.restores() || self.touched.is_empty() {
            // Nothing was sent, so the core loaded no config of this run's either.
            return failure.into_error(service);
        }
        let cause = failure.problem(service);
        self.printer.status(&format!(
            "{}; putting back what this run changed ...",
            cause.message
        ));
        self.options
            .journal
            .step("putting back what this run changed");
        let restoration = self.restore().await;
        let mut left = restoration.unfinished;
        left.extend(self.differences().await);
        if left.is_empty() {
            left.extend(self.not_serving().await);
        }
        if left.is_empty() {
            let (code, hint) = match failure {
                Failure::NotVerified(_) | Failure::WrongImage(_) => (
                    "verification_failed",
                    "`interlockctl status` shows where tasks run and why",
                ),
                _ => (
                    "rolled_back",
                    "the swarm serves with its previous config; fix the cause above and run the command again",
                ),
            };
            return Error::new(
                ExitCode::RolledBack,
                Problem::new(
                    code,
                    format!(
                        "{}; restored: {}",
                        cause.message,
                        restoration.done.join("; ")
                    ),
                    Some(hint.into()),
                ),
            );
        }
        Error {
            exit: ExitCode::Failure,
            problems: vec![
                cause,
                Problem::new(
                    "partially_restored",
                    format!(
                        "not everything this run changed is back: {}",
                        left.join("; ")
                    ),
                    Some("run `interlockctl status` to see where it stands, then `interlockctl rollback` or fix it by hand (the backup holds the previous specs)".into()),
                ),
            ],
        }
    }

    /// Puts every field this run changed back to its value before the run, the proxy first,
    /// and waits for each restoring rollout.
    async fn restore(&self) -> Restoration {
        let mut restoration = Restoration::default();
        let restored: Vec<&Touched> = self.restored().collect();
        for touched in restored.into_iter().rev() {
            let name = &touched.before.name;
            let fields: Vec<String> = touched.fields.iter().map(ToString::to_string).collect();
            let fields = fields.join(", ");
            let written = self
                .write(name, &format!("put back {name}"), |service| {
                    let mut spec = service.spec.clone();
                    for field in &touched.fields {
                        field.write(&mut spec, &field.read(&touched.before.spec));
                    }
                    Ok(spec)
                })
                .await;
            match written {
                Ok(None) => restoration
                    .done
                    .push(format!("{name} {fields} (Swarm had rolled it back)")),
                Ok(Some(sent)) => match self.converge(&sent.id).await {
                    Ok(_) => restoration.done.push(format!("{name} {fields}")),
                    Err(error) => restoration.unfinished.push(format!(
                        "{name}: the rollout putting back {fields} did not finish ({})",
                        Failure::from(error).problem(name).message
                    )),
                },
                Err(failure) => restoration.unfinished.push(format!(
                    "{name}: {fields} could not be put back ({})",
                    failure.problem(name).message
                )),
            }
        }
        // Last, and only once the core is back on its previous config: on this run's, it would
        // create the proxy again.
        if let Some(name) = self
            .created_by_core
            .as_ref()
            .filter(|_| restoration.unfinished.is_empty())
        {
            let removed = match self.api.service(name).await {
                Ok(Some(created)) => self.remove(&created).await.map(|()| true),
                Ok(None) => Ok(false),
                Err(error) => Err(Failure::Swarm(error)),
            };
            match removed {
                Ok(true) => restoration
                    .done
                    .push(format!("{name} removed (the core created it from this run's config)")),
                Ok(false) => {}
                Err(failure) => restoration.unfinished.push(format!(
                    "{name}: the proxy the core created from this run's config could not be removed ({})",
                    failure.problem(name).message
                )),
            }
        }
        restoration
    }

    /// The services this run put back, without the proxy a restore removes.
    fn restored(&self) -> impl Iterator<Item = &Touched> {
        self.touched
            .iter()
            .filter(|touched| !self.removed_on_restore(&touched.before.name))
    }

    /// Why restored services do not serve, one line per service (none when all do).
    async fn not_serving(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for touched in self.restored() {
            let name = &touched.before.name;
            match self.serving_problems(touched).await {
                Ok(problems) if problems.is_empty() => {}
                Ok(problems) => {
                    lines.push(format!("{name} does not serve: {}", problems.join(", ")));
                }
                Err(failure) => lines.push(format!(
                    "{name} could not be checked: {}",
                    failure.problem(name).message
                )),
            }
        }
        lines
    }

    /// What keeps a service whose fields are back from serving, read once no rollout runs on
    /// it: an update or rollback Swarm paused, and by its role, the core's tasks not running
    /// or the proxy's tasks failing verification; with the failed tasks' errors.
    async fn serving_problems(&self, touched: &Touched) -> Result<Vec<String>, Failure> {
        let service = self.settled(&touched.before.name).await?;
        let tasks = self.api.tasks(&service.id).await.map_err(Failure::Swarm)?;
        let nodes = self.api.nodes().await.map_err(Failure::Swarm)?;
        let assessment = converge::assess(&service, &tasks, &nodes);
        let mut problems = Vec::new();
        if let Phase::Paused(message) = &assessment.phase {
            problems.push(format!("Swarm paused it ({message})"));
        }
        match &touched.role {
            Role::Core | Role::Service if assessment.running < assessment.desired.max(1) => {
                problems.push(format!(
                    "{} of {} tasks are running",
                    assessment.running, assessment.desired
                ));
            }
            Role::Core | Role::Service => {}
            Role::Proxy(settings) => {
                let check = verify::check_proxy(settings, &service, &tasks, &nodes);
                problems.extend(check.problems);
                problems.extend(check.stale_tasks);
            }
        }
        if !problems.is_empty() {
            let history = self
                .api
                .task_history(&service.id)
                .await
                .map_err(Failure::Swarm)?;
            problems.extend(converge::failure_reasons(&service, &history, &nodes));
        }
        Ok(problems)
    }

    /// What still differs from before the run, per field, as a re-read shows it.
    async fn differences(&self) -> Vec<String> {
        let mut differences = Vec::new();
        if let Some(name) = &self.created_by_core {
            match self.api.service(name).await {
                Ok(None) => {}
                Ok(Some(_)) => differences.push(format!(
                    "{name}, which the core created from this run's config, still exists"
                )),
                Err(error) => {
                    differences.push(format!("{name} could not be read again: {error}"));
                }
            }
        }
        for touched in self.restored() {
            let name = &touched.before.name;
            let now = match self.api.service(name).await {
                Ok(Some(service)) => service.spec,
                Ok(None) => {
                    differences.push(format!("{name} no longer exists"));
                    continue;
                }
                Err(error) => {
                    differences.push(format!("{name} could not be read again: {error}"));
                    continue;
                }
            };
            for field in &touched.fields {
                if !field.same_in(&touched.before.spec, &now) {
                    let (was, is) = (field.read(&touched.before.spec), field.read(&now));
                    differences.push(format!("{name} {field} is {is} instead of {was}"));
                }
            }
        }
        differences
    }
}

/// Waits (until `deadline`) for rollouts running on `services`, started by someone else or
/// by an interrupted run; `true` when there were any, so the caller reads the swarm again.
pub async fn wait_for_running_rollouts<S: SwarmApi>(
    api: &S,
    services: &[&Service],
    deadline: Instant,
    printer: &Printer,
) -> Result<bool> {
    let mut waited = false;
    for service in services.iter().filter(|s| converge::rollout_running(s)) {
        let waiting = format!(
            "Waiting for the rollout already running on {} ({}) before planning ...",
            service.name,
            service.update_state.as_deref().unwrap_or_default()
        );
        wait_until_settled(api, (*service).clone(), deadline, printer, &waiting)
            .await
            .map_err(|error| Failure::from(error).into_error(&service.name))?;
        waited = true;
    }
    Ok(waited)
}

/// [`converge::wait_settled`], saying `waiting` and showing progress only when there is
/// something to wait for.
async fn wait_until_settled<S: SwarmApi>(
    api: &S,
    service: Service,
    deadline: Instant,
    printer: &Printer,
    waiting: &str,
) -> Result<Service, WaitError> {
    let mut progress: Option<Progress> = None;
    let outcome = converge::wait_settled(api, service, deadline, &mut |assessment| {
        progress
            .get_or_insert_with(|| {
                printer.status(waiting);
                Progress::start(printer)
            })
            .update(assessment);
    })
    .await;
    if let Some(progress) = progress {
        progress.finish();
    }
    outcome
}

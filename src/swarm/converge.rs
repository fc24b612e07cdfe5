//! Waiting for a service to converge after an update.
//!
//! Follows the docker CLI's algorithm (count tasks of the current spec that run on live
//! nodes) and adds what it lacks: a deadline, and treating `paused` and `rollback_*` as
//! failures instead of exiting 0 after Swarm rolled the update back.
//!
//! Swarm marks a rollout `completed` only after its own monitor period has passed on the last
//! task, so `completed` with every task running is converged at once: holding the monitor
//! again would wait twice. Only a change that started no rollout (a replica count, say)
//! leaves no update state, and is held for `UpdateConfig.Monitor` as the docker CLI does.
//! The wait wakes on the engine's events for the service (its update state changes there),
//! and polls besides, because task transitions raise no service event.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

use crate::swarm::{Changes, Node, Service, SwarmApi, SwarmError, Task, spec};

/// Where an update stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "phase", content = "message", rename_all = "snake_case")]
pub enum Phase {
    /// Tasks are still being replaced or started.
    Updating,
    /// Every desired task of the current spec runs.
    Converged,
    /// Swarm paused the update after task failures.
    Paused(String),
    /// Swarm is rolling the update back.
    RollingBack(String),
    /// Swarm rolled the update back: the previous spec is serving again.
    RolledBack(String),
}

impl Phase {
    /// The phase of an update Swarm marked as failed (paused, or rolling or rolled back),
    /// with Swarm's `message`; `None` for any other update state.
    fn of_failed_update(update_state: Option<&str>, message: &str) -> Option<Phase> {
        let message = message.to_owned();
        match update_state? {
            "paused" | "rollback_paused" => Some(Phase::Paused(message)),
            "rollback_started" => Some(Phase::RollingBack(message)),
            "rollback_completed" => Some(Phase::RolledBack(message)),
            _ => None,
        }
    }
}

/// A snapshot of a service's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    /// Service name.
    pub service: String,
    /// Tasks of the current spec running on live nodes.
    pub running: u64,
    /// Tasks wanted.
    pub desired: u64,
    /// The update's phase.
    pub phase: Phase,
    /// Why tasks are not running, one line each.
    pub task_problems: Vec<String>,
}

/// Judges a service from one read of it, its tasks and the nodes. Pure.
pub fn assess(service: &Service, tasks: &[Task], nodes: &[Node]) -> Assessment {
    let node_up = |task: &Task| {
        task.node_id
            .as_deref()
            .is_none_or(|id| nodes.iter().any(|node| node.id == id && node.ready))
    };
    let running = tasks
        .iter()
        .filter(|t| t.is_running() && node_up(t))
        .count() as u64;
    let desired = spec::replicas(&service.spec).unwrap_or_else(|| {
        tasks
            .iter()
            .filter(|t| t.desired_state == "running")
            .count() as u64
    });
    let message = service.update_message.clone().unwrap_or_default();
    let phase = match Phase::of_failed_update(service.update_state.as_deref(), &message) {
        Some(failed) => failed,
        None if service.update_state.as_deref() == Some("updating") => Phase::Updating,
        None if running >= desired => Phase::Converged,
        None => Phase::Updating,
    };
    Assessment {
        service: service.name.clone(),
        running,
        desired,
        phase,
        task_problems: task_problems(tasks, nodes),
    }
}

fn task_problems(tasks: &[Task], nodes: &[Node]) -> Vec<String> {
    tasks
        .iter()
        .filter(|task| task.error.is_some() || matches!(task.state.as_str(), "failed" | "rejected"))
        .map(|task| {
            let node = task
                .node_id
                .as_deref()
                .and_then(|id| nodes.iter().find(|n| n.id == id))
                .map_or("no node", |n| n.hostname.as_str());
            let why = task.error.clone().unwrap_or_else(|| task.message.clone());
            format!("task {} on {node}: {} ({why})", short(&task.id), task.state)
        })
        .collect()
}

/// Why the tasks of the failed update failed: failed or rejected tasks created since the
/// update started. Swarm replaces them quickly, so polling alone can miss them.
pub fn failure_reasons(service: &Service, history: &[Task], nodes: &[Node]) -> Vec<String> {
    let started = engine_time(&service.update_started_at);
    let since_update = |task: &&Task| {
        let created = humantime::parse_rfc3339_weak(&task.created_at).ok();
        match (started, created) {
            (Some(started), Some(created)) => created >= started,
            _ => true,
        }
    };
    let failed: Vec<Task> = history
        .iter()
        .filter(since_update)
        .filter(|task| matches!(task.state.as_str(), "failed" | "rejected"))
        .cloned()
        .collect();
    task_problems(&failed, nodes)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Why waiting stopped without convergence.
#[derive(Debug)]
pub enum WaitError {
    /// The deadline passed; the last assessment says where things stood.
    TimedOut(Assessment),
    /// Swarm paused or rolled back the update.
    Failed(Assessment),
    /// Reading the state failed.
    Swarm(SwarmError),
}

impl From<SwarmError> for WaitError {
    fn from(error: SwarmError) -> Self {
        WaitError::Swarm(error)
    }
}

/// How often to poll when the engine sends no events (the docker CLI polls every 200 ms).
const POLL: Duration = Duration::from_millis(300);
/// How often to poll besides the events, for task transitions (they raise no service event).
const POLL_WITH_EVENTS: Duration = Duration::from_millis(1000);

/// A successful wait.
#[derive(Debug, Clone)]
pub struct Converged {
    /// The last assessment.
    pub assessment: Assessment,
    /// Swarm's own duration of the rollout, when the change started one: from the first
    /// `UpdateStatus.StartedAt` seen during the wait (a later rollout, such as the core
    /// swapping its nginx config onto the proxy, supersedes the first) to `CompletedAt`.
    pub swarm_duration: Option<Duration>,
}

/// Sleeps until the watched service changes or `at_most` passes; polls alone once the
/// engine stops sending events.
struct Wake {
    changes: Option<Changes>,
}

impl Wake {
    async fn watch<S: SwarmApi>(api: &S, service_id: &str) -> Self {
        Wake {
            changes: api.watch_service(service_id).await.ok(),
        }
    }

    fn poll_interval(&self) -> Duration {
        if self.changes.is_some() {
            POLL_WITH_EVENTS
        } else {
            POLL
        }
    }

    async fn next(&mut self, at_most: Duration) {
        use futures_util::StreamExt;
        let at_most = at_most.min(self.poll_interval());
        let Some(changes) = self.changes.as_mut() else {
            tokio::time::sleep(at_most).await;
            return;
        };
        tokio::select! {
            () = tokio::time::sleep(at_most) => {}
            change = changes.next() => if change.is_none() { self.changes = None },
        }
    }
}

async fn read_service<S: SwarmApi>(api: &S, service_id: &str) -> Result<Service, SwarmError> {
    api.service(service_id)
        .await?
        .ok_or_else(|| SwarmError::Protocol {
            operation: format!("wait for {service_id}"),
            message: "the service disappeared".into(),
        })
}

/// Polls `service_id` until it has converged, or fails, or `deadline` passes.
/// `on_progress` sees every assessment (for progress output).
pub async fn wait<S: SwarmApi>(
    api: &S,
    service_id: &str,
    deadline: Instant,
    on_progress: &mut dyn FnMut(&Assessment),
) -> Result<Converged, WaitError> {
    let mut wake = Wake::watch(api, service_id).await;
    let mut stable_since: Option<Instant> = None;
    let mut first_started: Option<SystemTime> = None;
    // Failed tasks vanish from the up-to-date list once Swarm rolls back; keep their
    // reasons so the final error can say why the update failed.
    let mut seen_problems: Vec<String> = Vec::new();
    loop {
        let service = read_service(api, service_id).await?;
        if let Some(started) = engine_time(&service.update_started_at) {
            first_started = Some(first_started.map_or(started, |first| first.min(started)));
        }
        let tasks = api.tasks(&service.id).await?;
        let nodes = api.nodes().await?;
        let mut assessment = assess(&service, &tasks, &nodes);
        on_progress(&assessment);
        for problem in &assessment.task_problems {
            if !seen_problems.contains(problem) {
                seen_problems.push(problem.clone());
            }
        }
        let now = Instant::now();
        let mut pause = wake.poll_interval();
        match assessment.phase {
            Phase::Paused(_) | Phase::RolledBack(_) => {
                let history = api.task_history(&service.id).await?;
                for problem in failure_reasons(&service, &history, &nodes) {
                    if !seen_problems.contains(&problem) {
                        seen_problems.push(problem);
                    }
                }
                assessment.task_problems = seen_problems;
                return Err(WaitError::Failed(assessment));
            }
            Phase::Converged if service.update_state.as_deref() == Some("completed") => {
                let completed = engine_time(&service.update_completed_at);
                return Ok(Converged {
                    assessment,
                    swarm_duration: first_started
                        .zip(completed)
                        .and_then(|(started, completed)| completed.duration_since(started).ok()),
                });
            }
            Phase::Converged => {
                let monitor = Duration::from_nanos(spec::monitor_nanos(&service.spec));
                let held = now.duration_since(*stable_since.get_or_insert(now));
                if held >= monitor {
                    return Ok(Converged {
                        assessment,
                        swarm_duration: None,
                    });
                }
                pause = pause.min(monitor - held);
            }
            Phase::Updating | Phase::RollingBack(_) => stable_since = None,
        }
        if now >= deadline {
            return Err(WaitError::TimedOut(assessment));
        }
        wake.next(pause.min(deadline - now)).await;
    }
}

/// Waits until a rollout someone else started on `service` is no longer running (whatever
/// its outcome), nor about to run; returns the service as it is then. `service` is the
/// service as the caller just read it: when it is settled, nothing is read again but its tasks.
pub async fn wait_settled<S: SwarmApi>(
    api: &S,
    mut service: Service,
    deadline: Instant,
    on_progress: &mut dyn FnMut(&Assessment),
) -> Result<Service, WaitError> {
    let mut wake = Wake::watch(api, &service.id).await;
    loop {
        let current = api.tasks(&service.id).await?;
        if settled_with(api, &service, &current).await? {
            return Ok(service);
        }
        let assessment = assess(&service, &current, &api.nodes().await?);
        on_progress(&assessment);
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitError::TimedOut(assessment));
        }
        wake.next(deadline - now).await;
        service = read_service(api, &service.id).await?;
    }
}

/// How often [`wait_core_write`] looks at the core's tasks.
const CORE_POLL: Duration = Duration::from_millis(200);

/// What ended [`wait_core_write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreWrite {
    /// The proxy's spec moved on: the core (or someone else) wrote it.
    Written,
    /// The core's task of its current spec ran for the whole hold without writing.
    NotWritten,
    /// The core's update failed or is being rolled back: the core never loaded its new
    /// config, so it will not write the proxy for it.
    CoreFailed,
}

/// Waits for the Interlock core, restarted by an update, to write the proxy: until the
/// proxy's `Version.Index` is past `proxy_version`, or a task of the core's current spec has
/// been running for `hold` (the core writes within one `PollInterval` of its start, if at
/// all), or the core's update failed. Wakes on the proxy's events, and looks at the core's
/// tasks every 200 ms.
pub async fn wait_core_write<S: SwarmApi>(
    api: &S,
    core_id: &str,
    proxy_id: &str,
    proxy_version: u64,
    hold: Duration,
    deadline: Instant,
) -> Result<CoreWrite, WaitError> {
    let mut wake = Wake::watch(api, proxy_id).await;
    let mut running_since: Option<Instant> = None;
    loop {
        if read_service(api, proxy_id).await?.version > proxy_version {
            return Ok(CoreWrite::Written);
        }
        let core = read_service(api, core_id).await?;
        if Phase::of_failed_update(core.update_state.as_deref(), "").is_some() {
            return Ok(CoreWrite::CoreFailed);
        }
        let now = Instant::now();
        let tasks = api.tasks(core_id).await?;
        let running = tasks.iter().any(Task::is_running);
        running_since = running.then(|| running_since.unwrap_or(now));
        let waited = running_since.map_or(Duration::ZERO, |since| now - since);
        if waited >= hold {
            return Ok(CoreWrite::NotWritten);
        }
        if now >= deadline {
            return Err(WaitError::TimedOut(assess(
                &core,
                &tasks,
                &api.nodes().await?,
            )));
        }
        wake.next(CORE_POLL.min(hold - waited).min(deadline - now))
            .await;
    }
}

/// Polls until a service named `name` exists (someone else creates it: the Interlock core
/// creates a new cluster's proxy); `None` when `deadline` passes first.
pub async fn wait_created<S: SwarmApi>(
    api: &S,
    name: &str,
    deadline: Instant,
) -> Result<Option<Service>, SwarmError> {
    loop {
        if let Some(service) = api.service(name).await? {
            return Ok(Some(service));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

/// Whether no rollout runs on the service, and none is about to (see [`tasks_in_flight`]);
/// `current` are its tasks of the current spec.
async fn settled_with<S: SwarmApi>(
    api: &S,
    service: &Service,
    current: &[Task],
) -> Result<bool, SwarmError> {
    if rollout_running(service) {
        return Ok(false);
    }
    let history = api.task_history(&service.id).await?;
    Ok(!tasks_in_flight(current, &history))
}

/// Whether a service with no rollout marked still has tasks on their way to its current
/// spec. Swarm's updater marks a rollout `updating` a moment after the spec changed (the
/// Interlock core's swap of a new nginx config onto the proxy, say); in that moment tasks of
/// the older spec still run, or were just stopped while tasks of the current one start
/// (desired `ready` until the old one is gone, then `running`). `current` are the tasks of
/// the current spec, `history` all the service's tasks. A task that cannot start (pending
/// with an error, such as no suitable node) is not on its way.
fn tasks_in_flight(current: &[Task], history: &[Task]) -> bool {
    const STARTING: [&str; 8] = [
        "new",
        "allocated",
        "pending",
        "assigned",
        "accepted",
        "preparing",
        "ready",
        "starting",
    ];
    let starting = current.iter().any(|task| {
        matches!(task.desired_state.as_str(), "running" | "ready")
            && task.error.is_none()
            && STARTING.contains(&task.state.as_str())
    });
    let outdated = history
        .iter()
        .any(|task| task.is_running() && current.iter().all(|c| c.id != task.id));
    starting || outdated
}

/// Whether a rollout (or Swarm's rollback of one) is running on the service.
pub fn rollout_running(service: &Service) -> bool {
    matches!(
        service.update_state.as_deref(),
        Some("updating" | "rollback_started")
    )
}

/// A timestamp of the engine's, such as `UpdateStatus.StartedAt`.
fn engine_time(time: &Option<String>) -> Option<SystemTime> {
    time.as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service(replicas: u64, state: Option<&str>) -> Service {
        Service {
            id: "s1".into(),
            name: "ucp-interlock-proxy".into(),
            version: 1,
            spec: json!({"Mode": {"Replicated": {"Replicas": replicas}}}),
            previous_spec: None,
            update_state: state.map(str::to_owned),
            update_message: state.map(|s| format!("update {s}")),
            update_started_at: Some("2026-11-28T03:00:00.5Z".into()),
            update_completed_at: None,
            created_at: None,
            updated_at: None,
            endpoint_ports: vec![],
        }
    }

    fn task(id: &str, node: &str, state: &str) -> Task {
        Task {
            id: id.into(),
            service_id: "s1".into(),
            node_id: Some(node.into()),
            created_at: "2026-11-28T03:00:01.123456789Z".into(),
            desired_state: "running".into(),
            state: state.into(),
            message: state.into(),
            error: (state == "failed").then(|| "task: non-zero exit (1)".to_owned()),
            ports: vec![],
            image: String::new(),
        }
    }

    fn node(id: &str, ready: bool) -> Node {
        Node {
            id: id.into(),
            hostname: format!("host-{id}"),
            role: "worker".into(),
            ready,
            active: true,
            addr: "10.0.0.1".into(),
            labels: Default::default(),
            engine_labels: Default::default(),
            os: "linux".into(),
            arch: "x86_64".into(),
        }
    }

    #[test]
    fn tasks_of_an_older_spec_or_starting_ones_are_in_flight() {
        let running = [task("t1", "n1", "running"), task("t2", "n2", "running")];
        assert!(!tasks_in_flight(&running, &running), "settled");
        // The spec changed; the updater has not replaced its tasks yet.
        assert!(tasks_in_flight(&[], &running));
        // The old tasks were stopped; the new ones start.
        let mut stopped = running.clone().map(|mut t| {
            t.desired_state = "shutdown".into();
            t
        });
        stopped[0].state = "shutdown".into();
        let mut starting = [task("t3", "n1", "preparing"), task("t4", "n2", "assigned")];
        let history = [stopped.to_vec(), starting.to_vec()].concat();
        assert!(tasks_in_flight(&starting, &history));
        // Created by the updater, held at `ready` until the old task has stopped.
        for task in &mut starting {
            task.desired_state = "ready".into();
        }
        let history = [stopped.to_vec(), starting.to_vec()].concat();
        assert!(tasks_in_flight(&starting, &history));
        // A task that cannot be placed is not on its way.
        let mut unplaceable = task("t5", "", "pending");
        unplaceable.error = Some("no suitable node (host-mode port already in use)".into());
        let history = [stopped.to_vec(), vec![unplaceable.clone()]].concat();
        assert!(!tasks_in_flight(&[unplaceable], &history));
    }

    #[test]
    fn converged_when_every_replica_runs_on_a_live_node() {
        let nodes = [node("n1", true), node("n2", true)];
        let tasks = [task("t1", "n1", "running"), task("t2", "n2", "running")];
        let a = assess(&service(2, Some("completed")), &tasks, &nodes);
        assert_eq!((a.running, a.desired, a.phase), (2, 2, Phase::Converged));
    }

    #[test]
    fn tasks_on_down_nodes_do_not_count() {
        let nodes = [node("n1", true), node("n2", false)];
        let tasks = [task("t1", "n1", "running"), task("t2", "n2", "running")];
        assert_eq!(
            assess(&service(2, None), &tasks, &nodes).phase,
            Phase::Updating
        );
    }

    #[test]
    fn rollback_and_pause_are_failures_with_reasons() {
        let nodes = [node("n1", true)];
        let tasks = [task("abcdefabcdef99", "n1", "failed")];
        let a = assess(&service(1, Some("rollback_completed")), &tasks, &nodes);
        assert_eq!(
            a.phase,
            Phase::RolledBack("update rollback_completed".into())
        );
        assert_eq!(
            a.task_problems,
            vec!["task abcdefabcdef on host-n1: failed (task: non-zero exit (1))".to_owned()]
        );
        assert_eq!(
            assess(&service(1, Some("paused")), &tasks, &nodes).phase,
            Phase::Paused("update paused".into())
        );
        assert_eq!(
            assess(&service(1, Some("rollback_started")), &tasks, &nodes).phase,
            Phase::RollingBack("update rollback_started".into())
        );
    }

    #[test]
    fn failure_reasons_come_from_tasks_of_this_update() {
        let nodes = [node("n1", true)];
        let mut old = task("oldfailedtask", "n1", "failed");
        old.created_at = "2026-11-28T02:59:59Z".into();
        let history = [
            old,
            task("newfailedtask", "n1", "failed"),
            task("running", "n1", "running"),
        ];
        assert_eq!(
            failure_reasons(&service(1, Some("rollback_completed")), &history, &nodes),
            vec!["task newfailedtas on host-n1: failed (task: non-zero exit (1))".to_owned()]
        );
    }

    #[test]
    fn an_update_in_progress_is_not_converged_even_with_enough_tasks() {
        let nodes = [node("n1", true)];
        let tasks = [task("t1", "n1", "running")];
        assert_eq!(
            assess(&service(1, Some("updating")), &tasks, &nodes).phase,
            Phase::Updating
        );
    }
}

//! The result of a run, as one JSON document (`-o json`) or as text.
//!
//! Pipelines read this document, so its fields are a contract (README "JSON output"):
//! fields are only ever added; a change of meaning bumps `schema_version`.

use serde::Serialize;

use crate::error::Problem;
use crate::interlock::config::KeyChange;
use crate::interlock::findings::{Finding, Severity};

/// Version of the JSON document's schema.
pub const SCHEMA_VERSION: u32 = 1;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Changes were applied and verified (offline: the edited TOML was written).
    Applied,
    /// The desired state was already in place.
    NoChanges,
    /// `--dry-run` or `--check`: the plan was shown, nothing changed.
    Planned,
    /// Invalid input or config, or a failed preflight check.
    Refused,
    /// The change failed and the previous state was restored.
    RolledBack,
    /// The swarm did not converge within `--timeout`.
    TimedOut,
    /// The prompt was declined, or no terminal and no `--yes`.
    Declined,
    /// Stopped by SIGINT or SIGTERM; the errors say what was sent.
    Interrupted,
    /// Any other failure.
    Failed,
}

/// The config part of a report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigReport {
    /// The Interlock core service.
    pub service: String,
    /// The config in use (offline: the input file).
    pub current: Option<String>,
    /// The config this run creates or reuses; null when none.
    pub next: Option<String>,
    /// Unified diff from current to next; empty when nothing changes.
    pub diff: String,
    /// The keys that change.
    pub changes: Vec<KeyChange>,
    /// Offline mode without `--out`: the edited TOML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

impl ConfigReport {
    /// Hides secret values in the changes. The diff hides them when it is made, from both
    /// texts (`unified_diff`); `content` is the data the user asked for (like the TOML on
    /// stdout) and stays whole.
    pub fn redact_changes(&mut self) {
        use crate::interlock::secrets::redact_value;
        for change in &mut self.changes {
            change.before = change
                .before
                .as_deref()
                .map(|before| redact_value(&change.key, before));
            change.after = redact_value(&change.key, &change.after);
        }
    }
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// What kind of step: `create_config`, `reuse_config`, `update_service`, `write_file`.
    pub kind: &'static str,
    /// The object it acts on.
    pub target: String,
    /// What exactly changes.
    pub detail: String,
}

/// One service update of a run: from the request to "converged" as this tool saw it, and
/// the rollout as Swarm timed it (`UpdateStatus`); the difference is the tool's overhead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpdateTiming {
    /// The service updated.
    pub service: String,
    /// Seconds from the update request until this tool saw it converged.
    pub seconds: f64,
    /// Seconds from Swarm's `UpdateStatus.StartedAt` to `CompletedAt`; null when the change
    /// started no rollout.
    pub swarm_seconds: Option<f64>,
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The subcommand, e.g. `host-mode`.
    pub command: String,
    /// Whether `--dry-run` or `--check` was given.
    pub dry_run: bool,
    /// Whether anything was (or, when planned, would be) changed.
    pub changed: bool,
    /// How the run ended.
    pub status: RunStatus,
    /// The `[Extensions.NAME]` worked on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// The config part; absent for commands that do not touch one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigReport>,
    /// Where the state before this run's changes was saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// `history`: the config lineage, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<LineageEntry>>,
    /// `status`: what the swarm looks like.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StatusReport>,
    /// `labels check`, `stack lint`, `stack fix`: what the check found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<Finding>>,
    /// `stack fix`: the rewrite of the stack file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<StackFix>,
    /// The steps, in order.
    pub actions: Vec<Action>,
    /// How long each service update took, against Swarm's own rollout.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timings: Vec<UpdateTiming>,
    /// Notes worth a look that did not stop the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What went wrong, when something did.
    pub errors: Vec<Problem>,
}

impl Report {
    /// An empty report for `command`; the command fills in the rest.
    pub fn new(command: &str, dry_run: bool) -> Self {
        Report {
            schema_version: SCHEMA_VERSION,
            command: command.to_owned(),
            dry_run,
            changed: false,
            status: RunStatus::NoChanges,
            extension: None,
            config: None,
            backup: None,
            history: None,
            state: None,
            findings: None,
            fix: None,
            actions: Vec::new(),
            timings: Vec::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// What `stack fix` did to a stack file.
#[derive(Debug, Clone, Serialize)]
pub struct StackFix {
    /// The stack file.
    pub file: String,
    /// Unified diff from the file to its fixed form; empty when it needs no fix.
    pub diff: String,
    /// What the fix changes, one line each.
    pub changes: Vec<String>,
    /// Whether the fixed text was written to the file (`--write`) and read back.
    pub written: bool,
}

/// One finding as a line of text: where, how bad, which label, what is wrong, the fix.
pub fn finding_line(finding: &Finding) -> String {
    let mut line = String::new();
    if let Some(file) = &finding.file {
        line.push_str(file);
        if let Some(number) = finding.line {
            line.push_str(&format!(":{number}"));
        }
        line.push_str(": ");
    }
    line.push_str(finding.severity.as_str());
    line.push_str(": ");
    if let Some(service) = &finding.service {
        line.push_str(&format!("service {service}"));
        if let Some(source) = finding.source {
            line.push_str(&format!(" ({source})"));
        }
        line.push_str(": ");
    }
    if let Some(label) = &finding.label {
        // Debug quoting keeps control characters and newlines on this one line.
        let value = finding.value.as_deref().unwrap_or_default();
        line.push_str(&format!("{label}={value:?}: "));
    }
    line.push_str(&finding.message);
    line.push_str(&format!("; hint: {}", finding.hint));
    line
}

/// What `status` reports. `proxy`, `drift` and `problems` are the selected extension's
/// (as before service clusters); `extensions` has every extension of the config.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The config mounted at `/config.toml`; null when the core mounts none.
    pub config: Option<String>,
    /// The config's lineage, oldest first.
    pub lineage: Vec<LineageEntry>,
    /// The core service; null when it does not exist.
    pub core: Option<CoreStatus>,
    /// The selected extension's proxy; null when it does not exist or none is selected.
    pub proxy: Option<ProxyStatus>,
    /// Differences between what the config asks and what the proxy service says.
    pub drift: Vec<String>,
    /// Ways the proxy's tasks do not serve as configured.
    pub problems: Vec<String>,
    /// Every `[Extensions.NAME]` of the config, in file order.
    pub extensions: Vec<ExtensionStatus>,
    /// Proxy services (by Interlock's label) that no extension of the config names.
    pub unclaimed_proxies: Vec<ProxyStatus>,
    /// The Interlock version each Interlock service runs: core, extensions, proxies.
    pub versions: Vec<ServiceVersion>,
    /// The MKE (UCP) version, when the swarm tells it.
    pub mke_version: Option<String>,
    /// What is wrong or worth a look, errors first.
    pub findings: Vec<StatusFinding>,
}

/// The Interlock version a service runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceVersion {
    /// Service name.
    pub service: String,
    /// Its image's tag, when the image is one of Interlock's; null otherwise.
    pub version: Option<String>,
}

/// One extension: its proxy and how it compares with the config.
#[derive(Debug, Clone, Serialize)]
pub struct ExtensionStatus {
    /// The `[Extensions.NAME]`.
    pub name: String,
    /// Whether `--extension` (or the default choice) selects it.
    pub selected: bool,
    /// The proxy service it names.
    pub proxy_service: String,
    /// That service; null when it does not exist.
    pub proxy: Option<ProxyStatus>,
    /// Differences between the config and the proxy service.
    pub drift: Vec<String>,
    /// Ways the proxy's tasks do not serve as configured.
    pub problems: Vec<String>,
}

/// Something the doctor found: like a [`Finding`] of the label and stack checks, located by
/// extension rather than by file and label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusFinding {
    /// `error`: Interlock does not route as configured (exit 1); `warning`: worth a look.
    pub severity: Severity,
    /// The extension it concerns, if one.
    pub extension: Option<String>,
    /// Stable snake_case identifier.
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, if known.
    pub hint: Option<String>,
}

/// One config of the lineage.
#[derive(Debug, Clone, Serialize)]
pub struct LineageEntry {
    /// Config name.
    pub name: String,
    /// Creation time.
    pub created: String,
    /// The interlockctl command that created it, if any.
    pub operation: Option<String>,
    /// The config it was derived from, if known.
    pub parent: Option<String>,
    /// Content digest recorded when interlockctl created it.
    pub digest: Option<String>,
    /// Whether the core uses it now.
    pub current: bool,
}

/// The core service's state.
#[derive(Debug, Clone, Serialize)]
pub struct CoreStatus {
    /// Service name.
    pub service: String,
    /// Last update's state, if any.
    pub update_state: Option<String>,
    /// `UpdateConfig.FailureAction`.
    pub failure_action: String,
    /// Published ports.
    pub ports: Vec<crate::swarm::Port>,
}

/// The proxy service's state.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyStatus {
    /// Service name.
    pub service: String,
    /// `ProxyReplicas` in the config (the service's replicas when no config names it).
    pub replicas: u64,
    /// Running tasks.
    pub running: u64,
    /// Placement constraints of the service.
    pub constraints: Vec<String>,
    /// `PublishMode` in the config (of the service's ports when no config names it).
    pub publish_mode: String,
    /// Ports the service publishes.
    pub ports: Vec<crate::swarm::Port>,
    /// Its tasks.
    pub tasks: Vec<TaskStatus>,
    /// The networks its tasks attach to, by name: each one slows every reconfiguration.
    pub networks: Vec<String>,
    /// `Version.Index` of the service.
    pub spec_version: u64,
    /// When its spec last changed, and whether that re-created every task.
    pub last_update: LastUpdate,
    /// `--probe`: one HTTP request to each node that runs one of its tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes: Option<Vec<ProbeResult>>,
}

/// The last change of a proxy's spec (Problem 3 of the runbook: a rolling update of the
/// proxy on every stack deploy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastUpdate {
    /// `UpdatedAt` of the service.
    pub at: Option<String>,
    /// Seconds from then to this run (the engine's clock against the local one).
    pub seconds_ago: Option<u64>,
    /// Whether the spec changed since the service was created (Swarm keeps a previous spec).
    pub updated: bool,
    /// `UpdateStatus.State`, when the change rolled out tasks.
    pub state: Option<String>,
    /// `UpdateStatus.StartedAt`.
    pub started_at: Option<String>,
    /// `UpdateStatus.CompletedAt`.
    pub completed_at: Option<String>,
    /// Tasks meant to run and running.
    pub running_tasks: u64,
    /// How many of them were created since the change started.
    pub recreated_tasks: u64,
    /// Whether the change was a rolling update of every task; null when never updated.
    pub rolling: Option<bool>,
}

/// One probe of a proxy node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// Node hostname.
    pub node: String,
    /// The node's address.
    pub addr: String,
    /// The published HTTP port.
    pub port: u16,
    /// The HTTP status code, when the proxy answered.
    pub status: Option<u16>,
    /// Why there was no answer.
    pub error: Option<String>,
    /// How long the request took, in milliseconds.
    pub millis: u64,
}

/// One proxy task.
#[derive(Debug, Clone, Serialize)]
pub struct TaskStatus {
    /// Node hostname.
    pub node: String,
    /// Node address.
    pub addr: String,
    /// Task state.
    pub state: String,
    /// Host-mode ports it binds.
    pub ports: Vec<crate::swarm::Port>,
    /// Why it is not running, if it is not.
    pub error: Option<String>,
}

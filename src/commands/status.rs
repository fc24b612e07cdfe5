//! `status`: what an operator checks — the config and its lineage, the proxy's placement
//! and ports, where its tasks run and why any do not, and drift between config and proxy.

use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::output::printer::Printer;
use crate::output::report::{
    CoreStatus, LineageEntry, ProxyStatus, Report, StatusReport, TaskStatus,
};
use crate::runbook::Options;
use crate::runbook::observe::observe;
use crate::runbook::plan::{self, LABEL_DIGEST, LABEL_OPERATION, LABEL_PARENT, Observed};
use crate::runbook::verify;
use crate::swarm::{Port, SwarmApi, spec};

/// Reports the state of the core and the selected extension's proxy.
pub async fn run<S: SwarmApi>(
    api: &S,
    options: &Options,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let state = observe(api, options).await?;
    let observed = &state.observed;
    let tasks = api
        .tasks(&observed.proxy.id)
        .await
        .map_err(|e| Error::failed(&e))?;
    let check = verify::check_proxy(&state.settings, &observed.proxy, &tasks, &observed.nodes);
    let mut task_rows: Vec<TaskStatus> = tasks
        .iter()
        .filter(|task| task.desired_state == "running" || task.is_running())
        .map(|task| {
            let node = task
                .node_id
                .as_deref()
                .and_then(|id| observed.nodes.iter().find(|n| n.id == id));
            TaskStatus {
                node: node.map(|n| n.hostname.clone()).unwrap_or_default(),
                addr: node.map(|n| n.addr.clone()).unwrap_or_default(),
                state: task.state.clone(),
                ports: task.ports.clone(),
                error: (!task.is_running())
                    .then(|| task.error.clone().unwrap_or_else(|| task.message.clone())),
            }
        })
        .collect();
    task_rows.sort_by(|a, b| a.node.cmp(&b.node));
    let status = StatusReport {
        config: observed.config.name.clone(),
        lineage: lineage(observed),
        core: CoreStatus {
            service: observed.core.name.clone(),
            update_state: observed.core.update_state.clone(),
            failure_action: spec::failure_action(&observed.core.spec),
            ports: spec::ports(&observed.core.spec),
        },
        proxy: ProxyStatus {
            service: observed.proxy.name.clone(),
            replicas: state.settings.proxy_replicas,
            running: tasks.iter().filter(|t| t.is_running()).count() as u64,
            constraints: spec::constraints(&observed.proxy.spec),
            publish_mode: state.settings.publish_mode.as_str().to_owned(),
            ports: spec::ports(&observed.proxy.spec),
            tasks: task_rows,
        },
        drift: plan::proxy_edits(
            &state.settings,
            &[state.settings.target_port, state.settings.target_ssl_port],
            &observed.proxy.spec,
        )
        .iter()
        .map(ToString::to_string)
        .collect(),
        problems: check
            .problems
            .into_iter()
            .chain(check.stale_tasks)
            .collect(),
    };
    report.extension = Some(state.extension.clone());
    if !printer.is_json() {
        printer.data(&render(&status, &state.extension));
    }
    report.state = Some(status);
    printer.finish(report, "");
    Ok(ExitCode::Success)
}

/// The core's config lineage, oldest first.
pub fn lineage(observed: &Observed) -> Vec<LineageEntry> {
    let base = plan::lineage_base(&observed.config.name);
    let mut entries: Vec<LineageEntry> = observed
        .lineage
        .iter()
        .map(|config| LineageEntry {
            name: config.name.clone(),
            created: config.created_at.clone(),
            operation: config.labels.get(LABEL_OPERATION).cloned(),
            parent: config.labels.get(LABEL_PARENT).cloned(),
            digest: config.labels.get(LABEL_DIGEST).cloned(),
            current: config.id == observed.config.id,
        })
        .collect();
    entries.sort_by_key(|entry| plan::lineage_number(base, &entry.name));
    entries
}

fn ports(ports: &[Port]) -> String {
    if ports.is_empty() {
        return "none".into();
    }
    ports
        .iter()
        .map(Port::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn render(status: &StatusReport, extension: &str) -> String {
    let lineage: Vec<String> = status
        .lineage
        .iter()
        .map(|c| {
            if c.current {
                format!("{} (current)", c.name)
            } else {
                c.name.clone()
            }
        })
        .collect();
    let proxy = &status.proxy;
    let mut text = format!(
        "Config:     {}\nLineage:    {}\nCore:       {} (update: {}, failure action: {}, ports: {})\nExtension:  {extension}\nProxy:      {} ({}/{} running, {} mode)\n  constraints: {}\n  ports:       {}\n  tasks:\n",
        status.config,
        lineage.join(", "),
        status.core.service,
        status.core.update_state.as_deref().unwrap_or("none"),
        status.core.failure_action,
        ports(&status.core.ports),
        proxy.service,
        proxy.running,
        proxy.replicas,
        proxy.publish_mode,
        proxy.constraints.join(", "),
        ports(&proxy.ports),
    );
    for task in &proxy.tasks {
        let why = task
            .error
            .as_deref()
            .map(|e| format!("  ({e})"))
            .unwrap_or_default();
        text.push_str(&format!(
            "    {:<16} {:<15} {:<9} {}{why}\n",
            task.node,
            task.addr,
            task.state,
            ports(&task.ports)
        ));
    }
    let list = |items: &[String]| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join("; ")
        }
    };
    text.push_str(&format!(
        "Drift:      {}\nProblems:   {}\n",
        list(&status.drift),
        list(&status.problems)
    ));
    text
}

//! `status`, the doctor: the config and its lineage, the core, and for every extension its
//! proxy's placement, ports, networks, last update, tasks and (with `--probe`) whether each
//! node answers; drift between config and proxy; and findings. A broken swarm is reported,
//! never refused: findings of severity `error` make the run exit 1 after the whole picture.

use crate::error::Result;
use crate::exit::ExitCode;
use crate::interlock::findings::Severity;
use crate::output::printer::Printer;
use crate::output::report::{
    ExtensionStatus, ProxyStatus, Report, RunStatus, StatusFinding, StatusReport,
};
use crate::runbook::Options;
use crate::runbook::{doctor, observe, probe};
use crate::swarm::{Port, SwarmApi};

/// Reports the state of the core and of every extension's proxy.
pub async fn run<S: SwarmApi>(
    api: &S,
    probing: bool,
    options: &Options,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let survey = observe::survey(api, options).await?;
    let probes = if probing {
        let targets = doctor::probe_targets(&survey);
        printer.status(&format!("Probing {} proxy node(s) ...", targets.len()));
        Some(probe::run(targets).await)
    } else {
        None
    };
    let status = doctor::examine(&survey, probes.as_ref());
    report.extension = survey.selected.clone();
    if !printer.is_json() {
        printer.data(&render(&status));
    }
    let errors: Vec<&StatusFinding> = status
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    report.errors = errors
        .iter()
        .map(|f| crate::error::Problem::new(&f.code, f.message.clone(), f.hint.clone()))
        .collect();
    let warnings = status.findings.len() - errors.len();
    let (code, summary) = if errors.is_empty() {
        (ExitCode::Success, format!("{warnings} warning(s)."))
    } else {
        report.status = RunStatus::Failed;
        (
            ExitCode::Failure,
            format!("{} error(s), {warnings} warning(s).", errors.len()),
        )
    };
    report.state = Some(status);
    printer.finish(report, &summary);
    Ok(code)
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

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join("; ")
    }
}

fn render(status: &StatusReport) -> String {
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
    let core = status.core.as_ref().map_or_else(
        || "none".to_owned(),
        |core| {
            format!(
                "{} (update: {}, failure action: {}, ports: {})",
                core.service,
                core.update_state.as_deref().unwrap_or("none"),
                core.failure_action,
                ports(&core.ports)
            )
        },
    );
    let mut text = format!(
        "Config:     {}\nLineage:    {}\nCore:       {core}\n",
        status.config.as_deref().unwrap_or("none"),
        if lineage.is_empty() {
            "none".to_owned()
        } else {
            lineage.join(", ")
        },
    );
    text.push_str(&render_versions(status));
    for extension in &status.extensions {
        text.push_str(&render_extension(extension));
    }
    for proxy in &status.unclaimed_proxies {
        text.push_str("Unclaimed:  no extension names this proxy\n");
        text.push_str(&render_proxy(proxy));
    }
    if status.findings.is_empty() {
        text.push_str("Findings:   none\n");
    } else {
        text.push_str("Findings:\n");
        for finding in &status.findings {
            let severity = finding.severity.as_str();
            text.push_str(&format!("  {severity}: {}\n", finding.message));
            if let Some(hint) = &finding.hint {
                text.push_str(&format!("    hint: {hint}\n"));
            }
        }
    }
    text
}

fn render_versions(status: &StatusReport) -> String {
    let versions: Vec<String> = status
        .versions
        .iter()
        .map(|v| match &v.version {
            Some(version) => format!("{} {version}", v.service),
            None => format!("{} (not an Interlock image)", v.service),
        })
        .collect();
    format!(
        "Versions:   {}; MKE {}\n",
        if versions.is_empty() {
            "none".to_owned()
        } else {
            versions.join(", ")
        },
        status.mke_version.as_deref().unwrap_or("unknown")
    )
}

fn render_extension(extension: &ExtensionStatus) -> String {
    let selected = if extension.selected {
        " (selected)"
    } else {
        ""
    };
    let mut text = format!("Extension:  {}{selected}\n", extension.name);
    match &extension.proxy {
        Some(proxy) => text.push_str(&render_proxy(proxy)),
        None => text.push_str(&format!(
            "Proxy:      {} (does not exist)\n",
            extension.proxy_service
        )),
    }
    text.push_str(&format!(
        "  drift:       {}\n  problems:    {}\n",
        list(&extension.drift),
        list(&extension.problems)
    ));
    text
}

fn render_proxy(proxy: &ProxyStatus) -> String {
    let update = &proxy.last_update;
    let when = update.seconds_ago.map_or_else(
        || "at an unknown time".to_owned(),
        |s| format!("{} ago", ago(s)),
    );
    let history = match update.rolling {
        None => "never updated since it was created".to_owned(),
        Some(rolling) => format!(
            "last updated {when} (update: {}), {} of {} running task(s) created since: {}",
            update.state.as_deref().unwrap_or("none"),
            update.recreated_tasks,
            update.running_tasks,
            if rolling {
                "a rolling update of every task"
            } else {
                "not a rolling update of every task"
            }
        ),
    };
    let networks = if proxy.networks.is_empty() {
        "0".to_owned()
    } else {
        format!("{} ({})", proxy.networks.len(), proxy.networks.join(", "))
    };
    let mut text = format!(
        "Proxy:      {} ({}/{} running, {} mode)\n  constraints: {}\n  ports:       {}\n  networks:    {networks}\n  spec:        version {}, {history}\n  tasks:\n",
        proxy.service,
        proxy.running,
        proxy.replicas,
        proxy.publish_mode,
        proxy.constraints.join(", "),
        ports(&proxy.ports),
        proxy.spec_version,
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
    if let Some(probes) = &proxy.probes {
        text.push_str("  probe:\n");
        for probe in probes {
            let answer = match (probe.status, &probe.error) {
                (Some(code), _) => format!("HTTP {code}"),
                (None, error) => format!("no answer: {}", error.as_deref().unwrap_or("unknown")),
            };
            text.push_str(&format!(
                "    {:<16} {:<21} {answer} ({} ms)\n",
                probe.node,
                format!("{}:{}", probe.addr, probe.port),
                probe.millis
            ));
        }
    }
    text
}

/// A coarse duration: `42s`, `5m`, `3h`, `2d`.
fn ago(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        3600..86_400 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

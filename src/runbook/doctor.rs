//! The doctor: turns a [`Survey`] into what `status` reports, with findings. Pure.
//!
//! A finding is an `error` when Interlock does not route as its config says: the core, its
//! config or a proxy is missing or unusable, a proxy's tasks do not run where and how they
//! should, or a probed node does not answer. `status` then exits 1. It is a `warning` when
//! the swarm works but will hurt: a proxy service that differs from its config (the next
//! re-creation changes it), a proxy attached to many networks (the runbook's Problem 1:
//! every overlay network adds one to two seconds to each proxy reconfiguration, and the
//! field report saw proxies take 2 to 11 minutes to converge), or a proxy service no
//! extension names any more (Interlock leaves such services running).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::error::Problem;
use crate::interlock::config::{ExtensionSettings, defaults};
use crate::interlock::findings::Severity;
use crate::interlock::image::{self, ImageRef};
use crate::interlock::rejection;
use crate::output::report::{
    CoreStatus, ExtensionStatus, LastUpdate, LineageEntry, ProbeResult, ProxyStatus,
    ServiceVersion, StatusFinding, StatusReport, TaskStatus,
};
use crate::runbook::observe::{Refused, Survey, SurveyedProxy};
use crate::runbook::plan::{self, LABEL_DIGEST, LABEL_OPERATION, LABEL_PARENT};
use crate::runbook::verify;
use crate::swarm::{ConfigObject, Node, Service, Task, spec};

/// More networks than this on one proxy is a warning.
pub const MANY_NETWORKS: usize = 10;
/// What to do about a proxy on too many networks (Problem 1).
pub const MANY_NETWORKS_HINT: &str = "publish the backends in host mode instead of routing over \
     overlay networks (`interlockctl host-mode`), split the routes into service clusters \
     (`interlockctl cluster add`), or name the proxy's networks in the extension's `Networks`";

/// `--probe`'s results by proxy service name.
pub type Probes = BTreeMap<String, Vec<ProbeResult>>;

/// One request `--probe` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// The proxy service.
    pub proxy: String,
    /// The node's hostname.
    pub node: String,
    /// The node's own address.
    pub addr: String,
    /// The proxy's published HTTP port.
    pub port: u16,
}

/// Every proxy the survey saw, with its extension's settings when a config names it.
fn proxies(survey: &Survey) -> impl Iterator<Item = (Option<&ExtensionSettings>, &SurveyedProxy)> {
    let named = survey
        .extensions
        .iter()
        .filter_map(|e| e.proxy.as_ref().map(|p| (e.settings.as_ref(), p)));
    named.chain(survey.unclaimed_proxies.iter().map(|p| (None, p)))
}

/// The port the proxy publishes for nginx's HTTP port (`TargetPort`, 80 by default).
fn http_port(settings: Option<&ExtensionSettings>, proxy: &SurveyedProxy) -> Option<u16> {
    let target = settings.map_or(defaults::TARGET_PORT, |s| s.target_port);
    spec::ports(&proxy.service.spec)
        .into_iter()
        .find(|port| port.target == target)
        .and_then(|port| port.published)
}

/// Where `--probe` sends its requests: each node that runs a task of a proxy, on the
/// node's own address and the proxy's published HTTP port, once per node.
pub fn probe_targets(survey: &Survey) -> Vec<ProbeTarget> {
    let mut targets = Vec::new();
    for (settings, proxy) in proxies(survey) {
        let Some(port) = http_port(settings, proxy) else {
            continue;
        };
        for task in proxy.tasks.iter().filter(|t| t.is_running()) {
            let Some(node) = node_of(task, &survey.nodes) else {
                continue;
            };
            let target = ProbeTarget {
                proxy: proxy.service.name.clone(),
                node: node.hostname.clone(),
                addr: node.addr.clone(),
                port,
            };
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
    }
    targets.sort_by(|a, b| (&a.proxy, &a.node).cmp(&(&b.proxy, &b.node)));
    targets
}

/// The report and its findings. `probes` is `Some` when `--probe` was given.
pub fn examine(survey: &Survey, probes: Option<&Probes>) -> StatusReport {
    let mut findings: Vec<StatusFinding> = survey.refused.iter().map(refused_finding).collect();
    for (service, record) in &survey.rejected_labels {
        findings.push(finding(
            Severity::Warning,
            None,
            "labels_rejected",
            format!("service {service}: {}", record.describe()),
            rejection::RECORD_HINT,
        ));
    }
    let mut extensions = Vec::new();
    for extension in &survey.extensions {
        let settings = extension.settings.as_ref();
        let proxy = extension
            .proxy
            .as_ref()
            .map(|p| proxy_status(survey, settings, p, probes));
        let (drift, problems) = match (settings, &extension.proxy) {
            (Some(settings), Some(surveyed)) => (
                plan::own_proxy_edits(settings, &surveyed.service.spec)
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                proxy_problems(settings, surveyed, &survey.nodes),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        let name = Some(extension.name.as_str());
        for problem in &problems {
            findings.push(finding(Severity::Error, name, "proxy_not_as_configured", problem.clone(),
                "`interlockctl --extension NAME pin-proxy`/`host-mode`/`apply` make the proxy match; the tasks table says why a task does not run"));
        }
        for edit in &drift {
            findings.push(finding(Severity::Warning, name, "proxy_drift",
                format!("{} differs from the config: {edit}", extension.proxy_service),
                "re-run the command that set it (e.g. `interlockctl apply`) to make the proxy match"));
        }
        if let Some(proxy) = &proxy {
            findings.extend(proxy_findings(name, proxy, probes.is_some()));
        }
        if let Some(surveyed) = &extension.proxy {
            findings.extend(rollback_finding(name, &surveyed.service));
        }
        extensions.push(ExtensionStatus {
            name: extension.name.clone(),
            selected: survey.selected.as_ref() == Some(&extension.name),
            proxy_service: extension.proxy_service.clone(),
            proxy,
            drift,
            problems,
        });
    }
    let parsed = survey
        .config
        .as_ref()
        .is_some_and(|config| config.parsed.is_some());
    let mut unclaimed_proxies = Vec::new();
    for surveyed in &survey.unclaimed_proxies {
        let proxy = proxy_status(survey, None, surveyed, probes);
        if parsed {
            findings.push(finding(Severity::Warning, None, "unclaimed_proxy",
                format!("{} is an Interlock proxy service, but no extension of the config names it; Interlock leaves it running", proxy.service),
                &format!("remove it (`docker service rm {}`) if its cluster is gone, or add its extension back", proxy.service)));
        }
        findings.extend(proxy_findings(None, &proxy, probes.is_some()));
        unclaimed_proxies.push(proxy);
    }
    let versions = versions(survey);
    let mke_version = mke_version(survey);
    findings.extend(version_findings(
        &versions,
        mke_version.as_deref(),
        &upgrade_command(survey, mke_version.as_deref()),
    ));
    findings.sort_by_key(|f| f.severity);
    let selected = extensions.iter().find(|e| e.selected);
    StatusReport {
        config: survey.config.as_ref().map(|c| c.object.name.clone()),
        lineage: survey
            .config
            .as_ref()
            .map(|c| lineage(&c.object, &c.lineage))
            .unwrap_or_default(),
        core: survey.core.as_ref().map(|core| CoreStatus {
            service: core.name.clone(),
            update_state: core.update_state.clone(),
            failure_action: spec::failure_action(&core.spec),
            ports: spec::ports(&core.spec),
        }),
        proxy: selected.and_then(|e| e.proxy.clone()),
        drift: selected.map(|e| e.drift.clone()).unwrap_or_default(),
        problems: selected.map(|e| e.problems.clone()).unwrap_or_default(),
        extensions,
        unclaimed_proxies,
        versions,
        mke_version,
        findings,
    }
}

/// The label MKE (UCP) puts on the services it deploys: its version.
pub const LABEL_UCP_VERSION: &str = "com.docker.ucp.version";

/// Every Interlock service the survey saw (core, extension services, proxies), with the
/// version its image names.
fn interlock_services(survey: &Survey) -> impl Iterator<Item = &Service> {
    let proxies = proxies(survey).map(|(_, proxy)| &proxy.service);
    survey
        .core
        .iter()
        .chain(&survey.extension_services)
        .chain(proxies)
}

fn versions(survey: &Survey) -> Vec<ServiceVersion> {
    interlock_services(survey)
        .map(|service| ServiceVersion {
            service: service.name.clone(),
            version: image::interlock_version(&spec::image(&service.spec)),
        })
        .collect()
}

/// The MKE version: the `com.docker.ucp.version` label of an Interlock service, else the
/// tag of the `ucp-agent` service's image.
fn mke_version(survey: &Survey) -> Option<String> {
    let labelled = interlock_services(survey).find_map(|service| {
        service.spec["Labels"][LABEL_UCP_VERSION]
            .as_str()
            .map(str::to_owned)
    });
    labelled.or_else(|| {
        let agent = survey.ucp_agent.as_ref()?;
        ImageRef::parse(&spec::image(&agent.spec))?.tag
    })
}

/// The command that brings Interlock to the MKE version (`VERSION` when it is unknown),
/// with `--repository` when MKE's own images live under another org than the core's.
fn upgrade_command(survey: &Survey, mke_version: Option<&str>) -> String {
    let org = |service: &Service| {
        ImageRef::parse(&spec::image(&service.spec))
            .and_then(|image| image.org().map(str::to_owned))
    };
    let agent_org = survey.ucp_agent.as_ref().and_then(org);
    let core_org = survey.core.as_ref().and_then(org);
    let repository = match (agent_org, core_org) {
        (Some(agent), Some(core)) if agent != core => format!(" --repository {agent}"),
        _ => String::new(),
    };
    format!(
        "interlockctl upgrade --to {}{repository}",
        mke_version.unwrap_or("VERSION")
    )
}

/// Warnings when Interlock's services run different versions, or another than MKE's.
fn version_findings(
    versions: &[ServiceVersion],
    mke_version: Option<&str>,
    upgrade: &str,
) -> Vec<StatusFinding> {
    let listed = || {
        versions
            .iter()
            .map(|v| {
                format!(
                    "{} {}",
                    v.service,
                    v.version.as_deref().unwrap_or("unknown")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut known: Vec<&str> = versions
        .iter()
        .filter_map(|v| v.version.as_deref())
        .collect();
    known.sort_unstable();
    known.dedup();
    let mut findings = Vec::new();
    if known.len() > 1 {
        findings.push(finding(
            Severity::Warning,
            None,
            "interlock_versions_differ",
            format!("Interlock's services run different versions: {}", listed()),
            &format!("`{upgrade}` moves the core, the extensions and the proxies to one version"),
        ));
    }
    if let Some(mke) = mke_version
        && known.iter().any(|version| *version != mke)
    {
        findings.push(finding(
            Severity::Warning,
            None,
            "interlock_not_mke_version",
            format!(
                "MKE is {mke}, but Interlock's services run {}: MKE's upgrade leaves a customized Interlock as it is",
                listed()
            ),
            &format!("`{upgrade}` upgrades Interlock to MKE's version"),
        ));
    }
    findings
}

fn finding(
    severity: Severity,
    extension: Option<&str>,
    code: &str,
    message: String,
    hint: &str,
) -> StatusFinding {
    StatusFinding {
        severity,
        extension: extension.map(str::to_owned),
        code: code.to_owned(),
        message,
        hint: Some(hint.to_owned()),
    }
}

fn refused_finding(refused: &Refused) -> StatusFinding {
    let Problem {
        code,
        message,
        hint,
    } = refused.problem.clone();
    StatusFinding {
        severity: Severity::Error,
        extension: refused.extension.clone(),
        code,
        message,
        hint,
    }
}

/// A proxy whose failed update is not rolled back stays broken when its new tasks cannot
/// load the nginx config the core rendered (Problem 4): a warning.
fn rollback_finding(extension: Option<&str>, proxy: &Service) -> Option<StatusFinding> {
    let action = spec::failure_action(&proxy.spec);
    (action != "rollback").then(|| finding(Severity::Warning, extension, "proxy_without_rollback",
        format!("{} has UpdateConfig.FailureAction = {action}: when its new tasks cannot load the nginx config the core rendered (a bad com.docker.lb.* label), the proxy stays down instead of going back", proxy.name),
        &format!("`docker service update --update-failure-action rollback {}`; `interlockctl labels watch --reject` narrows the window, this is the second line", proxy.name)))
}

/// The proxy's own findings: too many networks; nodes that did not answer a probe.
fn proxy_findings(
    extension: Option<&str>,
    proxy: &ProxyStatus,
    probing: bool,
) -> Vec<StatusFinding> {
    let mut findings = Vec::new();
    if proxy.networks.len() > MANY_NETWORKS {
        findings.push(finding(Severity::Warning, extension, "many_networks",
            format!("{} is attached to {} networks (more than {MANY_NETWORKS}); each one slows every reconfiguration of the proxy", proxy.service, proxy.networks.len()),
            MANY_NETWORKS_HINT));
    }
    match &proxy.probes {
        Some(probes) => {
            for probe in probes.iter().filter(|p| p.status.is_none()) {
                findings.push(finding(Severity::Error, extension, "probe_failed",
                    format!("{} on {} did not answer on {}:{}: {}", proxy.service, probe.node, probe.addr, probe.port, probe.error.as_deref().unwrap_or("no answer")),
                    "check that the task binds the port (the tasks table), the node's firewall, and in ingress mode the routing mesh (IPVS) on that node"));
            }
        }
        None if probing => findings.push(finding(
            Severity::Warning,
            extension,
            "not_probed",
            format!(
                "{} publishes no HTTP port, so it was not probed",
                proxy.service
            ),
            "publish the proxy's HTTP port (PublishedPort in the config)",
        )),
        None => {}
    }
    findings
}

/// The verify step's problems of a proxy, one line each.
fn proxy_problems(
    settings: &ExtensionSettings,
    proxy: &SurveyedProxy,
    nodes: &[Node],
) -> Vec<String> {
    let check = verify::check_proxy(settings, &proxy.service, &proxy.tasks, nodes);
    check
        .problems
        .into_iter()
        .chain(check.stale_tasks)
        .collect()
}

fn proxy_status(
    survey: &Survey,
    settings: Option<&ExtensionSettings>,
    proxy: &SurveyedProxy,
    probes: Option<&Probes>,
) -> ProxyStatus {
    let service = &proxy.service;
    let ports = spec::ports(&service.spec);
    let publish_mode = settings.map_or_else(
        || {
            ports
                .first()
                .map_or("ingress", |p| p.mode.as_str())
                .to_owned()
        },
        |s| s.publish_mode.as_str().to_owned(),
    );
    let probed = http_port(settings, proxy).is_some();
    ProxyStatus {
        service: service.name.clone(),
        replicas: settings.map_or_else(
            || spec::replicas(&service.spec).unwrap_or(0),
            |s| s.proxy_replicas,
        ),
        running: proxy.tasks.iter().filter(|t| t.is_running()).count() as u64,
        constraints: spec::constraints(&service.spec),
        publish_mode,
        ports,
        tasks: task_rows(&proxy.tasks, &survey.nodes),
        networks: sorted(spec::network_names(&service.spec, &survey.networks)),
        spec_version: service.version,
        last_update: last_update(proxy, survey.taken_at),
        probes: probes
            .filter(|_| probed)
            .map(|p| p.get(&service.name).cloned().unwrap_or_default()),
    }
}

fn node_of<'a>(task: &Task, nodes: &'a [Node]) -> Option<&'a Node> {
    task.node_id
        .as_deref()
        .and_then(|id| nodes.iter().find(|n| n.id == id))
}

/// The tasks meant to run (and any still running), by node, with why one does not run.
fn task_rows(tasks: &[Task], nodes: &[Node]) -> Vec<TaskStatus> {
    let mut rows: Vec<TaskStatus> = tasks
        .iter()
        .filter(|task| task.desired_state == "running" || task.is_running())
        .map(|task| {
            let node = node_of(task, nodes);
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
    rows.sort_by(|a, b| a.node.cmp(&b.node));
    rows
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

fn parse_time(text: Option<&str>) -> Option<SystemTime> {
    text.and_then(|t| humantime::parse_rfc3339_weak(t).ok())
}

/// When the proxy's spec last changed and how many running tasks were created since that
/// change started (its rollout's start, else the change itself).
fn last_update(proxy: &SurveyedProxy, now: SystemTime) -> LastUpdate {
    let service = &proxy.service;
    let changed = parse_time(service.updated_at.as_deref());
    // Swarm keeps the spec before the last update; a service never updated has none.
    let updated = service.previous_spec.is_some();
    let start = parse_time(service.update_started_at.as_deref()).or(changed);
    let running: Vec<&Task> = proxy.history.iter().filter(|t| t.is_running()).collect();
    let recreated = running
        .iter()
        .filter(|task| match (parse_time(Some(&task.created_at)), start) {
            (Some(created), Some(start)) => created >= start,
            _ => false,
        })
        .count() as u64;
    let running = running.len() as u64;
    LastUpdate {
        at: service.updated_at.clone(),
        seconds_ago: changed.map(|t| now.duration_since(t).unwrap_or(Duration::ZERO).as_secs()),
        updated,
        state: service.update_state.clone(),
        started_at: service.update_started_at.clone(),
        completed_at: service.update_completed_at.clone(),
        running_tasks: running,
        recreated_tasks: recreated,
        rolling: updated.then_some(running > 0 && recreated == running),
    }
}

/// The core's config lineage, oldest first.
pub fn lineage(current: &ConfigObject, configs: &[ConfigObject]) -> Vec<LineageEntry> {
    let base = plan::lineage_base(&current.name);
    let mut entries: Vec<LineageEntry> = configs
        .iter()
        .map(|config| LineageEntry {
            name: config.name.clone(),
            created: config.created_at.clone(),
            operation: config.labels.get(LABEL_OPERATION).cloned(),
            parent: config.labels.get(LABEL_PARENT).cloned(),
            digest: config.labels.get(LABEL_DIGEST).cloned(),
            current: config.id == current.id,
        })
        .collect();
    entries.sort_by_key(|entry| plan::lineage_number(base, &entry.name));
    entries
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::Problem;
    use crate::runbook::preflight::Missing;
    use crate::testing::{survey, task};

    fn codes(report: &StatusReport) -> Vec<(Severity, &str)> {
        report
            .findings
            .iter()
            .map(|f| (f.severity, f.code.as_str()))
            .collect()
    }

    fn proxy_of(survey: &mut Survey) -> &mut SurveyedProxy {
        survey.extensions[0].proxy.as_mut().unwrap()
    }

    #[test]
    fn a_healthy_swarm_has_no_findings_and_says_how_the_proxy_was_last_updated() {
        let report = examine(&survey(), None);
        assert_eq!(codes(&report), []);
        let proxy = report.proxy.as_ref().unwrap();
        assert_eq!(
            report.extensions[0].proxy.as_ref().unwrap().service,
            proxy.service
        );
        assert_eq!(
            proxy.last_update,
            LastUpdate {
                at: Some("2026-11-28T03:00:01Z".into()),
                seconds_ago: Some(600),
                updated: true,
                state: Some("completed".into()),
                started_at: Some("2026-11-28T02:59:59Z".into()),
                completed_at: None,
                running_tasks: 2,
                recreated_tasks: 2,
                rolling: Some(true),
            }
        );
        assert_eq!((proxy.networks.len(), proxy.probes.clone()), (0, None));
        assert_eq!(
            report.config.as_deref(),
            Some("com.docker.ucp.interlock.conf-1")
        );
    }

    #[test]
    fn an_update_that_kept_a_task_was_no_rolling_update_and_a_new_service_none() {
        let mut survey = survey();
        let old = task("proxy", "w2", vec![]);
        proxy_of(&mut survey).history[1] = crate::swarm::Task {
            created_at: "2026-11-28T01:00:00Z".into(),
            ..old
        };
        let update = examine(&survey, None).proxy.unwrap().last_update;
        assert_eq!(
            (update.recreated_tasks, update.running_tasks, update.rolling),
            (1, 2, Some(false))
        );
        proxy_of(&mut survey).service.previous_spec = None;
        let update = examine(&survey, None).proxy.unwrap().last_update;
        assert_eq!((update.updated, update.rolling), (false, None));
    }

    #[test]
    fn a_missing_proxy_is_a_finding_and_the_rest_is_still_reported() {
        let mut survey = survey();
        survey.extensions[0].proxy = None;
        survey.refused.push(Refused {
            extension: Some("default".into()),
            problem: Problem::from_diagnostic(&Missing::ProxyService("ucp-interlock-proxy".into())),
        });
        let report = examine(&survey, None);
        assert_eq!(
            report.findings,
            [StatusFinding {
                severity: Severity::Error,
                extension: Some("default".into()),
                code: "proxy_service_missing".into(),
                message: "the proxy service ucp-interlock-proxy does not exist".into(),
                hint: Some("wait for the Interlock core to create it, or check ProxyServiceName and `--extension`".into()),
            }]
        );
        assert!(report.proxy.is_none() && report.extensions[0].proxy.is_none());
        assert!(report.core.is_some() && report.config.is_some());
    }

    #[test]
    fn a_pending_task_and_drift_are_reported_with_the_reason() {
        let mut survey = survey();
        let proxy = proxy_of(&mut survey);
        proxy.tasks[1] = crate::swarm::Task {
            node_id: None,
            state: "pending".into(),
            message: "no suitable node (host-mode port already in use on 1 node)".into(),
            ..proxy.tasks[1].clone()
        };
        proxy.service.spec["Mode"]["Replicated"]["Replicas"] = json!(3);
        let report = examine(&survey, None);
        assert_eq!(
            codes(&report),
            [
                (Severity::Error, "proxy_not_as_configured"),
                (Severity::Warning, "proxy_drift")
            ]
        );
        assert_eq!(report.problems, ["1 of 2 proxy tasks are running"]);
        assert_eq!(report.drift, ["replicas: 3 -> 2"]);
        let pending = &report.proxy.unwrap().tasks[0];
        assert_eq!(
            (pending.state.as_str(), pending.error.as_deref()),
            (
                "pending",
                Some("no suitable node (host-mode port already in use on 1 node)")
            )
        );
    }

    #[test]
    fn more_than_ten_networks_is_a_warning_naming_them() {
        let mut survey = survey();
        let targets: Vec<_> = (0..=MANY_NETWORKS)
            .map(|n| json!({"Target": format!("n{n:02}")}))
            .collect();
        proxy_of(&mut survey).service.spec["TaskTemplate"]["Networks"] = json!(targets);
        survey.networks.push(crate::swarm::Network {
            id: "n00".into(),
            name: "app_default".into(),
        });
        let report = examine(&survey, None);
        assert_eq!(codes(&report), [(Severity::Warning, "many_networks")]);
        let networks = &report.proxy.unwrap().networks;
        assert_eq!(networks.len(), 11);
        assert_eq!(networks[0], "app_default", "IDs are named where known");
        assert!(
            report.findings[0]
                .message
                .contains("attached to 11 networks")
        );

        survey.extensions[0].proxy.as_mut().unwrap().service.spec["TaskTemplate"]["Networks"] =
            json!(targets[..MANY_NETWORKS]);
        assert_eq!(codes(&examine(&survey, None)), []);
    }

    #[test]
    fn probes_go_to_the_nodes_running_tasks_and_a_silent_one_is_an_error() {
        let survey = survey();
        let targets = probe_targets(&survey);
        let nodes: Vec<(&str, u16)> = targets.iter().map(|t| (t.node.as_str(), t.port)).collect();
        assert_eq!(nodes, [("host-w1", 80), ("host-w2", 80)]);
        let result = |node: &str, status: Option<u16>| ProbeResult {
            node: node.into(),
            addr: "10.0.0.1".into(),
            port: 80,
            status,
            error: status.is_none().then(|| "Connection refused".to_owned()),
            millis: 1,
        };
        let probes = Probes::from([(
            "ucp-interlock-proxy".to_owned(),
            vec![result("host-w1", Some(503)), result("host-w2", None)],
        )]);
        let report = examine(&survey, Some(&probes));
        assert_eq!(codes(&report), [(Severity::Error, "probe_failed")]);
        assert_eq!(
            report.findings[0].message,
            "ucp-interlock-proxy on host-w2 did not answer on 10.0.0.1:80: Connection refused"
        );
        assert_eq!(report.proxy.unwrap().probes.unwrap().len(), 2);
    }

    #[test]
    fn a_proxy_no_extension_names_is_listed_and_warned_about() {
        let mut survey = survey();
        let mut orphan = survey.extensions[0].proxy.clone().unwrap();
        orphan.service.name = "ucp-interlock-proxy-old".into();
        survey.unclaimed_proxies.push(orphan);
        let report = examine(&survey, None);
        assert_eq!(codes(&report), [(Severity::Warning, "unclaimed_proxy")]);
        assert_eq!(
            report.unclaimed_proxies[0].service,
            "ucp-interlock-proxy-old"
        );
        // With a config that cannot be read, every proxy is unclaimed: listed, no warning.
        survey.config.as_mut().unwrap().parsed = None;
        survey.extensions.clear();
        assert_eq!(codes(&examine(&survey, None)), []);
    }

    #[test]
    fn versions_are_shown_and_a_mismatch_with_one_another_or_mke_is_a_warning() {
        let mut survey = survey();
        let report = examine(&survey, None);
        assert_eq!(
            report.versions,
            [
                ("ucp-interlock", "3.0.14"),
                ("ucp-interlock-proxy", "3.0.14")
            ]
            .map(|(service, version)| ServiceVersion {
                service: service.into(),
                version: Some(version.into()),
            })
        );
        assert_eq!(report.mke_version, None);
        assert!(report.findings.is_empty(), "{:?}", report.findings);

        survey.ucp_agent = Some(crate::testing::service(
            "agent",
            json!({"Name": "ucp-agent", "TaskTemplate": {"ContainerSpec": {"Image": "mirantis/ucp-agent:3.8.0"}}}),
        ));
        proxy_of(&mut survey).service.spec["TaskTemplate"]["ContainerSpec"]["Image"] =
            json!("mirantis/ucp-interlock-proxy:3.8.0");
        let report = examine(&survey, None);
        assert_eq!(report.mke_version.as_deref(), Some("3.8.0"));
        let found: Vec<(&str, &str, Option<&str>)> = report
            .findings
            .iter()
            .map(|f| (f.code.as_str(), f.message.as_str(), f.hint.as_deref()))
            .collect();
        let listed = "ucp-interlock 3.0.14, ucp-interlock-proxy 3.8.0";
        let fix = "`interlockctl upgrade --to 3.8.0 --repository mirantis`";
        assert_eq!(
            found,
            [
                (
                    "interlock_versions_differ",
                    &*format!("Interlock's services run different versions: {listed}"),
                    Some(&*format!(
                        "{fix} moves the core, the extensions and the proxies to one version"
                    )),
                ),
                (
                    "interlock_not_mke_version",
                    &*format!(
                        "MKE is 3.8.0, but Interlock's services run {listed}: MKE's upgrade leaves a customized Interlock as it is"
                    ),
                    Some(&*format!("{fix} upgrades Interlock to MKE's version")),
                ),
            ]
        );

        // A registry host in front of the org is no part of `--repository` (which takes an
        // org only): the hint stays a command `upgrade` accepts.
        survey.ucp_agent.as_mut().unwrap().spec["TaskTemplate"]["ContainerSpec"]["Image"] =
            json!("registry.example:5000/mirantis/ucp-agent:3.8.0");
        let hints: Vec<Option<String>> = examine(&survey, None)
            .findings
            .into_iter()
            .map(|f| f.hint)
            .collect();
        assert_eq!(hints.len(), 2, "{hints:?}");
        assert!(
            hints
                .iter()
                .all(|hint| hint.as_ref().is_some_and(|h| h.starts_with(fix))),
            "{hints:?}"
        );

        // The services' own label wins over the agent's image.
        survey.core.as_mut().unwrap().spec["Labels"] = json!({LABEL_UCP_VERSION: "3.7.2"});
        assert_eq!(examine(&survey, None).mke_version.as_deref(), Some("3.7.2"));
    }
}

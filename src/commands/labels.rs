//! `labels check`: every `com.docker.lb.*` label of the swarm's services (or of stack files,
//! offline), checked against `interlock::labels` before a typo reaches the proxy.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::cli::{GlobalArgs, LabelsCheckArgs};
use crate::commands::offline;
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::interlock::config::InterlockConfig;
use crate::interlock::findings::{Counts, Finding, Severity};
use crate::interlock::labels::{self, Facts, Label, LabelSource, NetworkName, Origin};
use crate::interlock::rejection::{RECORD_HINT, Record};
use crate::output::printer::Printer;
use crate::output::report::Report;
use crate::runbook::plan::CONFIG_TARGET;
use crate::stack::compose::Stack;
use crate::stack::lint;
use crate::swarm::{Network, Service, SwarmApi, spec};

/// Checks the stack files of `--stack`, or else the live services.
pub async fn run<S: SwarmApi>(
    connect: impl FnOnce() -> Result<S>,
    args: &LabelsCheckArgs,
    global: &GlobalArgs,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    if args.stacks.is_empty() {
        run_live(&connect()?, args, global, printer, report).await
    } else {
        run_stacks(args, printer, report)
    }
}

/// Checks the labels of the swarm's services (all, or those named).
pub async fn run_live<S: SwarmApi>(
    api: &S,
    args: &LabelsCheckArgs,
    global: &GlobalArgs,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let mut services = api.services().await.map_err(|e| Error::failed(&e))?;
    services.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    refuse_unknown(&args.services, &names, "on the swarm")?;
    let networks = api.networks().await.map_err(|e| Error::failed(&e))?;
    let clusters = live_service_clusters(api, &global.service).await;
    if let Err(reason) = &clusters {
        report.warnings.push(format!(
            "`com.docker.lb.service_cluster` labels are not checked: {reason} (`--service` \
             names the Interlock core service; to check only some services, name them: \
             `labels check SERVICE...`)"
        ));
        printer.warnings(&report.warnings);
    }
    let clusters = clusters.as_deref().map_err(String::as_str);
    let selected: Vec<&Service> = services
        .iter()
        .filter(|s| args.services.is_empty() || args.services.contains(&s.name))
        .collect();
    let findings = selected
        .iter()
        .flat_map(|service| {
            let mut findings = service_findings(service, &networks, clusters);
            findings.extend(rejection_finding(service));
            findings
        })
        .collect();
    let subject = format!("labels check of {} service(s)", selected.len());
    finish_check(findings, &subject, "invalid_labels", printer, report)
}

/// The `ServiceCluster` values of the Interlock config mounted on the core service, or
/// why they cannot be read (then `service_cluster` labels are reported as not checked).
pub async fn live_service_clusters<S: SwarmApi>(
    api: &S,
    core: &str,
) -> std::result::Result<Vec<String>, String> {
    let service = api.service(core).await.map_err(|e| e.to_string())?;
    service_clusters_of(api, service.as_ref(), core).await
}

/// [`live_service_clusters`] of the core service already read (`None`: there is no service
/// named `core`).
pub async fn service_clusters_of<S: SwarmApi>(
    api: &S,
    service: Option<&Service>,
    core: &str,
) -> std::result::Result<Vec<String>, String> {
    let service =
        service.ok_or_else(|| format!("the Interlock core service {core} does not exist"))?;
    let (name, id) = spec::config_ref(&service.spec, CONFIG_TARGET)
        .ok_or_else(|| format!("service {core} mounts no config at {CONFIG_TARGET}"))?;
    let text = api.config_data(&id).await.map_err(|e| e.to_string())?;
    let config = InterlockConfig::parse(&name, &text).map_err(|e| e.to_string())?;
    Ok(config.service_clusters())
}

/// The note of an earlier rejection by `labels watch --reject`, as a warning.
fn rejection_finding(service: &Service) -> Option<Finding> {
    let record = Record::of(&service.spec)?;
    Some(Finding {
        severity: Severity::Warning,
        code: "labels_rejected",
        file: None,
        line: None,
        service: Some(service.name.clone()),
        source: Some("Spec.Labels"),
        label: None,
        value: None,
        message: record.describe(),
        hint: RECORD_HINT.to_owned(),
    })
}

/// The label findings of one live service: its service labels, then its container labels.
pub fn service_findings(
    service: &Service,
    networks: &[Network],
    clusters: std::result::Result<&[String], &str>,
) -> Vec<Finding> {
    let labels: Vec<(String, String, LabelSource)> = [
        ("/Labels", LabelSource::Service),
        ("/TaskTemplate/ContainerSpec/Labels", LabelSource::Container),
    ]
    .into_iter()
    .flat_map(|(pointer, source)| {
        let map = service.spec.pointer(pointer).and_then(Value::as_object);
        map.into_iter().flatten().map(move |(key, value)| {
            let value = value.as_str().unwrap_or_default().to_owned();
            (key.clone(), value, source)
        })
    })
    .collect();
    let attached: Vec<NetworkName> = spec::network_names(&service.spec, networks)
        .into_iter()
        .map(NetworkName::Exact)
        .collect();
    let facts = Facts {
        origin: Origin::Swarm,
        networks: Some(&attached),
        clusters,
    };
    let checked: Vec<Label<'_>> = labels
        .iter()
        .map(|(key, value, source)| Label {
            key,
            value,
            source: *source,
        })
        .collect();
    labels::check(&checked, &facts)
        .into_iter()
        .map(|finding| {
            let label = finding.label.map(|index| &labels[index]);
            Finding {
                severity: finding.severity,
                code: finding.code,
                file: None,
                line: None,
                service: Some(service.name.clone()),
                source: label.map(|(_, _, source)| match source {
                    LabelSource::Service => "Spec.Labels",
                    LabelSource::Container => "ContainerSpec.Labels",
                }),
                label: label.map(|(key, _, _)| key.clone()),
                value: label.map(|(_, value, _)| value.clone()),
                message: finding.message,
                hint: finding.hint,
            }
        })
        .collect()
}

/// Checks the labels of the services in stack files, offline.
pub fn run_stacks(
    args: &LabelsCheckArgs,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    if args.stacks.iter().filter(|p| *p == Path::new("-")).count() > 1 {
        return Err(Error::refusal(
            "stdin_twice",
            "`--stack -` can read stdin only once",
            Some("pass the other stack files by path".into()),
        ));
    }
    let mut findings = Vec::new();
    let mut found: BTreeSet<String> = BTreeSet::new();
    let mut checked = 0;
    for path in &args.stacks {
        let (source, stack) = read_stack(path)?;
        for service in &stack.services {
            found.insert(service.name.clone());
            if !args.services.is_empty() && !args.services.contains(&service.name) {
                continue;
            }
            checked += 1;
            findings.extend(in_file(lint::label_findings(&stack, service), &source));
        }
    }
    let names: Vec<&str> = found.iter().map(String::as_str).collect();
    refuse_unknown(&args.services, &names, "in the stack files")?;
    let subject = format!("labels check of {checked} service(s)");
    finish_check(findings, &subject, "invalid_labels", printer, report)
}

/// Reads and parses a stack file (`-` = stdin); returns its name for messages.
pub fn read_stack(path: &Path) -> Result<(String, Stack)> {
    let source = offline::source_name(path);
    let text = offline::read_source(path)?;
    let stack = Stack::parse(&source, &text).map_err(|e| Error::refused(&e))?;
    Ok((source, stack))
}

/// Findings located in `file`.
pub fn in_file(findings: Vec<Finding>, file: &str) -> Vec<Finding> {
    findings
        .into_iter()
        .map(|f| Finding {
            file: Some(file.to_owned()),
            ..f
        })
        .collect()
}

fn refuse_unknown(wanted: &[String], existing: &[&str], place: &str) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .map(String::as_str)
        .filter(|name| !existing.contains(name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::refusal(
        "service_not_found",
        format!("no service named {} {place}", missing.join(", ")),
        Some(format!("services {place}: {}", existing.join(", "))),
    ))
}

/// Ends a check: the findings on stdout (or in the JSON report) and a summary; exit 4
/// (refused, `code`) when any finding is an error, else 0.
pub fn finish_check(
    findings: Vec<Finding>,
    subject: &str,
    code: &str,
    printer: &Printer,
    report: &mut Report,
) -> Result<ExitCode> {
    let counts = Counts::of(&findings);
    printer.findings(&findings);
    report.findings = Some(findings);
    if counts.errors == 0 {
        printer.finish(report, &format!("{subject}: {counts}."));
        return Ok(ExitCode::Success);
    }
    Err(Error::refusal(
        code,
        format!("{subject}: {counts}"),
        Some("fix the errors listed above; each names its fix".into()),
    ))
}

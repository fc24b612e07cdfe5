//! `labels watch`: Problem 4 live. The judgement is `labels check`'s, on each service as the
//! engine announces its creation or update; the acts are `runbook::reject` and
//! `runbook::notify`; the events and their reconnects are `swarm::events`; every line goes out
//! through the printer. This file only joins them, and keeps what the loop must remember: the
//! version of each service already judged (an event for a version already seen, such as the
//! replay after a reconnect, is not judged twice), the findings last printed for it (a new
//! version with the same findings prints nothing) and each proxy's networks (Problem 1 live).
//!
//! It stops on SIGINT or SIGTERM, never in the middle of an act: the signal is looked at
//! only between events, then deliveries under way end (each within its timeout) and the
//! run exits 0.

use std::collections::{BTreeSet, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::cli::{GlobalArgs, LabelsWatchArgs};
use crate::commands::labels::{service_clusters_of, service_findings};
use crate::error::{Error, Problem, Result};
use crate::exit::ExitCode;
use crate::interlock::findings::{Finding, Severity};
use crate::interlock::rejection;
use crate::output::printer::Printer;
use crate::output::report::finding_line;
use crate::runbook::doctor::{MANY_NETWORKS, MANY_NETWORKS_HINT};
use crate::runbook::notify::{Delivery, Notifier};
use crate::runbook::observe::PROXY_LABEL;
use crate::runbook::reject::{self, Rejection};
use crate::swarm::events::{Follower, Happening, ServiceEvent};
use crate::swarm::{Network, Service, SwarmApi, spec};

/// Watches until SIGINT or SIGTERM.
pub async fn run<S: SwarmApi>(
    api: &S,
    args: &LabelsWatchArgs,
    global: &GlobalArgs,
    printer: &Printer,
) -> Result<ExitCode> {
    let notifier = Notifier::new(&args.notify, args.notify_timeout)
        .map_err(|e| Error::refusal("bad_notify_url", e.to_string(), None))?;
    // Listening from the start: a signal during the first check ends the run cleanly too.
    let mut terminate = listen(SignalKind::terminate())?;
    let mut interrupt = listen(SignalKind::interrupt())?;
    let mut follower = Follower::open(api).await.map_err(|e| Error::failed(&e))?;
    let mut watch = Watch {
        api,
        printer,
        reject: args.reject,
        core: &global.service,
        notifier,
        networks: api.networks().await.map_err(|e| Error::failed(&e))?,
        clusters: Err(String::new()),
        clusters_read_at: None,
        judged: HashMap::new(),
        proxy_networks: HashMap::new(),
        printed: HashMap::new(),
    };
    let services = api.services().await.map_err(|e| Error::failed(&e))?;
    let count = services.len();
    watch.check_all(services).await;
    watch.say(
        "watching",
        &format!(
            "watching: {count} service(s) checked; following service creates and updates{}",
            if args.reject {
                ", rejecting invalid labels"
            } else {
                ""
            }
        ),
        json!({ "services": count, "reject": args.reject, "notify": args.notify.len() }),
    );
    let signal = loop {
        tokio::select! {
            biased;
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            delivery = watch.notifier.ended(), if watch.notifier.is_busy() => {
                watch.delivered(&delivery);
            }
            happening = follower.next() => watch.on(happening).await,
        }
    };
    let Watch {
        notifier, printer, ..
    } = watch;
    let busy = notifier.is_busy();
    for delivery in notifier.finish().await {
        delivered(printer, &delivery);
    }
    let after = if busy {
        " (after the notifications under way)"
    } else {
        ""
    };
    event(
        printer,
        "stopped",
        &format!("stopped on {signal}{after}"),
        json!({ "signal": signal }),
    );
    Ok(ExitCode::Success)
}

fn listen(kind: SignalKind) -> Result<Signal> {
    signal(kind).map_err(|e| {
        let problem = Problem::new(
            "signal_handler",
            format!("cannot listen for signals: {e}"),
            None,
        );
        Error::new(ExitCode::Failure, problem)
    })
}

/// What the loop remembers between events.
struct Watch<'a, S> {
    api: &'a S,
    printer: &'a Printer,
    reject: bool,
    core: &'a str,
    notifier: Notifier,
    networks: Vec<Network>,
    /// The service clusters of the live config, or why they cannot be read.
    clusters: std::result::Result<Vec<String>, String>,
    /// The core's `Version.Index` whose config `clusters` was read from.
    clusters_read_at: Option<u64>,
    /// Service ID → the `Version.Index` last judged.
    judged: HashMap<String, u64>,
    /// Proxy service ID → the names of its networks when last seen.
    proxy_networks: HashMap<String, BTreeSet<String>>,
    /// Service ID → the findings last printed.
    printed: HashMap<String, Vec<Finding>>,
}

impl<S: SwarmApi> Watch<'_, S> {
    async fn on(&mut self, happening: Happening) {
        match happening {
            Happening::Changed(event) => match self.api.service(&event.service_id).await {
                Ok(Some(service)) => self.judge(service, Some(&event)).await,
                Ok(None) => {}
                Err(error) => self.say(
                    "check_failed",
                    &format!("cannot read service {}: {error}", event.service_id),
                    json!({ "service_id": event.service_id, "error": error.to_string() }),
                ),
            },
            Happening::Gone(reason) => self.say(
                "engine_gone",
                &format!("the engine is gone ({reason}); reconnecting"),
                json!({ "error": reason }),
            ),
            Happening::Back => {
                self.say(
                    "reconnected",
                    "the engine is back; checking what changed meanwhile",
                    json!({}),
                );
                self.recheck_all().await;
            }
        }
    }

    /// After a reconnect: every service whose version is not the one judged last.
    async fn recheck_all(&mut self) {
        match self.api.services().await {
            Ok(services) => self.check_all(services).await,
            Err(error) => self.say(
                "check_failed",
                &format!("cannot list the services: {error}"),
                json!({ "error": error.to_string() }),
            ),
        }
    }

    /// The service clusters first (of the core in `services`, or why there are none), then
    /// every service whose version is not the one judged last.
    async fn check_all(&mut self, services: Vec<Service>) {
        let core = services.iter().find(|s| s.name == self.core);
        self.read_clusters(core).await;
        for service in services {
            self.judge(service, None).await;
        }
    }

    /// Reads the service clusters of the core's config (`None`: no core service), once per
    /// version of the core.
    async fn read_clusters(&mut self, core: Option<&Service>) {
        let version = core.map(|core| core.version);
        if version.is_some() && version == self.clusters_read_at {
            return;
        }
        self.clusters_read_at = version;
        self.clusters = service_clusters_of(self.api, core, self.core).await;
        if let Err(reason) = &self.clusters {
            self.say(
                "warning",
                &format!(
                    "warning: `com.docker.lb.service_cluster` labels are not checked: {reason} \
                     (`--service` names the Interlock core service)"
                ),
                json!({ "message": format!("service_cluster labels are not checked: {reason}") }),
            );
        }
    }

    /// Judges a service (once per version), then acts on what is wrong.
    async fn judge(&mut self, service: Service, event: Option<&ServiceEvent>) {
        if self.judged.insert(service.id.clone(), service.version) == Some(service.version) {
            return;
        }
        self.know_networks(&service).await;
        if service.name == self.core {
            self.read_clusters(Some(&service)).await;
        }
        let mut findings = self.findings(&service);
        findings.extend(self.proxy_growth(&service));
        // An update that changed something else (or the watch's own write) repeats nothing:
        // no line, no act, no notification.
        let news = self.printed.get(&service.id) != Some(&findings);
        if news {
            for finding in &findings {
                self.say(
                    "finding",
                    &finding_line(finding),
                    serde_json::to_value(finding).expect("a finding serializes"),
                );
            }
            self.printed.insert(service.id.clone(), findings.clone());
        }
        if findings.iter().any(|f| f.severity == Severity::Error) {
            if news {
                let outcome = self.act(&service, &findings, event).await;
                self.notify(&service.name, &findings, &outcome);
            }
        } else if self.reject && rejection::record_outdated(&service.spec) {
            self.clear(service).await;
        }
    }

    fn findings(&self, service: &Service) -> Vec<Finding> {
        let clusters = self.clusters.as_deref().map_err(String::as_str);
        service_findings(service, &self.networks, clusters)
    }

    /// Reads the networks again when the service names one not known yet.
    async fn know_networks(&mut self, service: &Service) {
        let known = |target: &String| {
            self.networks
                .iter()
                .any(|n| &n.id == target || &n.name == target)
        };
        if spec::networks(&service.spec).iter().all(known) {
            return;
        }
        if let Ok(networks) = self.api.networks().await {
            self.networks = networks;
        }
    }

    /// Problem 1 live: a warning when a proxy's networks grow past the doctor's threshold.
    fn proxy_growth(&mut self, service: &Service) -> Option<Finding> {
        let labels = rejection::labels(&service.spec);
        if labels.get(PROXY_LABEL.0).map(String::as_str) != Some(PROXY_LABEL.1) {
            return None;
        }
        let now: BTreeSet<String> = spec::network_names(&service.spec, &self.networks)
            .into_iter()
            .collect();
        let before = self
            .proxy_networks
            .insert(service.id.clone(), now.clone())?;
        let added = grown_past_threshold(&before, &now)?;
        Some(Finding {
            severity: Severity::Warning,
            code: "proxy_networks_grew",
            file: None,
            line: None,
            service: Some(service.name.clone()),
            source: None,
            label: None,
            value: None,
            message: format!(
                "the proxy was attached to {}: it is on {} networks now (more than \
                 {MANY_NETWORKS}), and each one slows every reconfiguration of the proxy \
                 (Problem 1)",
                added.join(", "),
                now.len()
            ),
            hint: MANY_NETWORKS_HINT.to_owned(),
        })
    }

    /// Rejects (with `--reject`); returns what was done, in words for the notification.
    async fn act(
        &mut self,
        service: &Service,
        findings: &[Finding],
        event: Option<&ServiceEvent>,
    ) -> String {
        if !self.reject {
            return "reported (the watch runs without --reject)".to_owned();
        }
        let name = service.name.clone();
        if !reject::rejectable(findings) {
            let reason = "its invalid labels are container labels, and changing those \
                          re-creates its tasks: fix them with `docker service update \
                          --container-label-rm`";
            self.say(
                "reject_skipped",
                &format!("not rejected: service {name}: {reason}"),
                json!({ "service": name, "reason": reason }),
            );
            return format!("not rejected: {reason}");
        }
        let judge = |service: &Service| self.findings(service);
        let result = reject::reject(self.api, service.clone(), &judge, &now()).await;
        match result {
            Ok(Rejection::Rejected { record, attempts }) => {
                let after_event_ms = event.map(|e| millis_since(e.time_nano));
                let timing = after_event_ms
                    .map(|ms| format!(", {ms:.0} ms after the event"))
                    .unwrap_or_default();
                self.say(
                    "rejected",
                    &format!(
                        "rejected service {name}: {}; removed {} ({attempts} write(s){timing})",
                        record.restored.describe(),
                        record.removed_text()
                    ),
                    json!({
                        "service": name, "restored": record.restored, "removed": record.removed,
                        "writes": attempts, "after_event_ms": after_event_ms
                    }),
                );
                format!("rejected: {}", record.restored.describe())
            }
            Ok(Rejection::NothingToReject) => {
                let text = "not rejected: read again after a concurrent update, its labels \
                            were valid";
                self.say(
                    "reject_skipped",
                    &format!("service {name}: {text}"),
                    json!({ "service": name, "reason": text }),
                );
                text.to_owned()
            }
            Ok(Rejection::Gone) => "not rejected: the service was removed".to_owned(),
            Err(error) => {
                // Tried again at the service's next event, or after a reconnect.
                self.judged.remove(&service.id);
                self.printed.remove(&service.id);
                self.say(
                    "reject_failed",
                    &format!("could not reject service {name}: {error}"),
                    json!({ "service": name, "error": error.to_string() }),
                );
                format!("not rejected: {error}")
            }
        }
    }

    async fn clear(&mut self, service: Service) {
        let name = service.name.clone();
        match reject::clear_record(self.api, service).await {
            Ok(true) => self.say(
                "cleared",
                &format!("service {name} carries valid labels again: cleared the rejection note"),
                json!({ "service": name }),
            ),
            Ok(false) => {}
            Err(error) => self.say(
                "clear_failed",
                &format!("could not clear the rejection note of service {name}: {error}"),
                json!({ "service": name, "error": error.to_string() }),
            ),
        }
    }

    fn notify(&mut self, service: &str, findings: &[Finding], outcome: &str) {
        if !self.notifier.is_active() {
            return;
        }
        let errors: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        let lines: Vec<String> = errors.iter().map(|f| finding_line(f)).collect();
        let text = format!(
            "interlockctl labels watch: service {service} has {} invalid com.docker.lb.* \
             label(s); {outcome}.\n{}",
            errors.len(),
            lines.join("\n")
        );
        self.notifier.send(
            service,
            &json!({ "text": text, "service": service, "outcome": outcome, "findings": findings }),
        );
    }

    fn delivered(&self, delivery: &Delivery) {
        delivered(self.printer, delivery);
    }

    fn say(&self, kind: &str, text: &str, fields: Value) {
        event(self.printer, kind, text, fields);
    }
}

/// The networks added to a proxy that is now on more than [`MANY_NETWORKS`]; `None` when it
/// is not, or when none was added.
fn grown_past_threshold<'a>(
    before: &'a BTreeSet<String>,
    now: &'a BTreeSet<String>,
) -> Option<Vec<&'a str>> {
    let added: Vec<&str> = now.difference(before).map(String::as_str).collect();
    (now.len() > MANY_NETWORKS && !added.is_empty()).then_some(added)
}

fn delivered(printer: &Printer, delivery: &Delivery) {
    let Delivery {
        service,
        url,
        result,
        tries,
    } = delivery;
    match result {
        Ok(status) => event(
            printer,
            "notified",
            &format!("notified {url} about service {service} ({status})"),
            json!({ "service": service, "url": url, "status": status, "tries": tries }),
        ),
        Err(error) => event(
            printer,
            "notify_failed",
            &format!("could not notify {url} about service {service} after {tries} tries: {error}"),
            json!({ "service": service, "url": url, "error": error, "tries": tries }),
        ),
    }
}

fn event(printer: &Printer, kind: &str, text: &str, fields: Value) {
    printer.event(&now(), kind, text, fields);
}

/// Now, RFC 3339 UTC with milliseconds.
fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Milliseconds from an engine time (ns since the epoch) to now on this machine's clock.
fn millis_since(time_nano: i64) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (now as f64 - time_nano as f64) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networks(count: usize) -> BTreeSet<String> {
        (1..=count).map(|n| format!("net{n:02}")).collect()
    }

    #[test]
    fn a_proxy_growing_past_the_threshold_names_the_networks_added() {
        let (ten, eleven, twelve) = (networks(10), networks(11), networks(12));
        assert_eq!(grown_past_threshold(&ten, &eleven), Some(vec!["net11"]));
        assert_eq!(
            grown_past_threshold(&ten, &twelve),
            Some(vec!["net11", "net12"])
        );
        assert_eq!(
            grown_past_threshold(&networks(9), &ten),
            None,
            "at the threshold"
        );
        assert_eq!(grown_past_threshold(&twelve, &eleven), None, "shrinking");
        assert_eq!(grown_past_threshold(&twelve, &twelve), None, "unchanged");
    }
}

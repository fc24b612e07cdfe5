//! `stack lint`: what in a stack file works against host-mode Interlock routing.
//!
//! The seed's Problems 1 and 2: Interlock (before UCP 3.0.8) attaches every network a stack
//! uses to the proxy, the implicit `<stack>_default` included, and each attached network
//! slows every proxy update, which is what host mode was meant to end. In host mode the
//! proxy reaches a service through the host-mode port of its tasks, so a routed service
//! needs no network the proxy shares, must publish that port in host mode, and must not ask
//! for a network with `com.docker.lb.network`. Errors here are the ones `stack fix` can
//! repair without changing what the services can reach; a network that other services
//! share is a cost, reported as a warning. Label findings are those of `labels check`.
//! Pure: no I/O.

use crate::interlock::config::PublishMode;
use crate::interlock::findings::{Finding, Severity};
use crate::interlock::labels::{self, Facts, Key, Label, LabelSource, Origin};
use crate::stack::compose::{DEFAULT_NETWORK, Service, Stack};

/// Why a `service_cluster` label is not compared with a config.
const OFFLINE: &str = "stack files are checked offline";

/// The compose version that first allows a network's `name:`.
const NAME_NEEDS_MINOR: u32 = 5;

/// The label findings of one service, as `labels check --stack` reports them.
pub fn label_findings(stack: &Stack, service: &Service) -> Vec<Finding> {
    let names = stack.network_names(service);
    let facts = Facts {
        origin: Origin::StackFile,
        networks: Some(&names),
        clusters: Err(OFFLINE),
    };
    let labels: Vec<Label<'_>> = service
        .labels
        .iter()
        .map(|l| Label {
            key: &l.key,
            value: &l.value,
            source: l.source,
        })
        .collect();
    labels::check(&labels, &facts)
        .into_iter()
        .map(|finding| {
            let label = finding.label.map(|index| &service.labels[index]);
            Finding {
                severity: finding.severity,
                code: finding.code,
                file: None,
                line: Some(label.map_or_else(|| stack.doc.line(service.key), |l| l.line)),
                service: Some(service.name.clone()),
                source: label.map(|l| source_name(l.source)),
                label: label.map(|l| l.key.clone()),
                value: label.map(|l| l.value.clone()),
                message: finding.message,
                hint: finding.hint,
            }
        })
        .collect()
}

/// Where a stack file's label was written.
pub fn source_name(source: LabelSource) -> &'static str {
    match source {
        LabelSource::Service => "deploy.labels",
        LabelSource::Container => "labels",
    }
}

/// What `stack fix` can do about a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Remove every service label `key` of service `service` (an index into the services).
    RemoveLabel {
        /// The service's index.
        service: usize,
        /// The label key.
        key: String,
    },
    /// Publish `port` of the service in host mode.
    PublishHostPort {
        /// The service's index.
        service: usize,
        /// The container port.
        port: u16,
    },
    /// Take the service off network `key`, which only the proxy needs.
    LeaveNetwork {
        /// The service's index.
        service: usize,
        /// The network key.
        key: String,
    },
    /// Give a service that names no network the external `bridge` network.
    JoinBridge {
        /// The service's index.
        service: usize,
    },
    /// Raise `version` to 3.5.
    RaiseVersion,
}

/// A finding and, when `stack fix` can repair it, how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub finding: Finding,
    /// The repair, if there is one.
    pub repair: Option<Repair>,
}

fn unrepaired(findings: impl IntoIterator<Item = Finding>) -> impl Iterator<Item = Problem> {
    findings.into_iter().map(|finding| Problem {
        finding,
        repair: None,
    })
}

/// Every finding for a proxy publishing in `mode`, sorted by line.
pub fn lint(stack: &Stack, mode: PublishMode) -> Vec<Finding> {
    problems(stack, mode)
        .into_iter()
        .map(|p| p.finding)
        .collect()
}

/// Every finding with its repair, for a proxy publishing in `mode`, sorted by line.
pub fn problems(stack: &Stack, mode: PublishMode) -> Vec<Problem> {
    let mut problems: Vec<Problem> = version(stack);
    for (index, service) in stack.services.iter().enumerate() {
        problems.extend(unrepaired(label_findings(stack, service)));
        problems.extend(unrepaired(undefined_networks(stack, service)));
        if mode == PublishMode::Host {
            problems.extend(network_label(index, service));
            problems.extend(host_mode_port(index, service));
        } else {
            problems.extend(unrepaired(network_label_needed(stack, service)));
        }
    }
    problems.extend(attached_networks(stack, mode));
    problems.sort_by_key(|p| p.finding.line);
    problems
}

fn finding(
    severity: Severity,
    code: &'static str,
    line: usize,
    service: Option<&Service>,
    message: String,
    hint: String,
) -> Finding {
    Finding {
        severity,
        code,
        file: None,
        line: Some(line),
        service: service.map(|s| s.name.clone()),
        source: None,
        label: None,
        value: None,
        message,
        hint,
    }
}

/// A version `docker stack deploy` refuses, or one too old for a network's `name:`.
fn version(stack: &Stack) -> Vec<Problem> {
    let Some(version) = &stack.version else {
        return Vec::new();
    };
    let line = stack.doc.line(version.node);
    let minor = match version.number {
        Some((3, minor)) => minor,
        _ => {
            return unrepaired([finding(
                Severity::Error,
                "unsupported_version",
                line,
                None,
                format!(
                    "`version: {}` is not a compose file format 3.x, the only one `docker stack deploy` reads",
                    version.text
                ),
                "use `version: \"3.5\"` or later, and the 3.x syntax".into(),
            )])
            .collect();
        }
    };
    let Some(minor) = minor.filter(|m| *m < NAME_NEEDS_MINOR) else {
        return Vec::new();
    };
    stack
        .networks
        .iter()
        .filter_map(|network| network.name.as_ref().map(|(_, node)| (network, node)))
        .map(|(network, node)| Problem {
            finding: finding(
                Severity::Error,
                "network_name_needs_3_5",
                stack.doc.line(*node),
                None,
                format!(
                    "network `{}` sets `name:`, which compose file version 3.{minor} does not allow, so `docker stack deploy` refuses the file",
                    network.key
                ),
                "set `version: \"3.5\"` or later (docker CLI 17.12 or later)".into(),
            ),
            repair: Some(Repair::RaiseVersion),
        })
        .collect()
}

/// A service naming a network the file does not declare.
fn undefined_networks(stack: &Stack, service: &Service) -> Vec<Finding> {
    let Some(networks) = &service.networks else {
        return Vec::new();
    };
    networks
        .refs
        .iter()
        .filter(|r| r.key != DEFAULT_NETWORK && stack.network(&r.key).is_none())
        .map(|r| {
            finding(
                Severity::Error,
                "undefined_network",
                r.line,
                Some(service),
                format!("uses network `{}`, which the top-level `networks:` does not declare, so `docker stack deploy` refuses the file", r.key),
                format!("declare `{}` under `networks:`, or remove it from the service", r.key),
            )
        })
        .collect()
}

/// `com.docker.lb.network` while the proxy publishes in host mode.
fn network_label(index: usize, service: &Service) -> Option<Problem> {
    let label = service.deploy_label(&Key::Network.label())?;
    let finding = Finding {
        source: Some(source_name(label.source)),
        label: Some(label.key.clone()),
        value: Some(label.value.clone()),
        ..finding(
            Severity::Error,
            "network_label_in_host_mode",
            label.line,
            Some(service),
            format!(
                "makes Interlock attach network `{}` to the proxy, which in host mode (assumed; `--proxy-mode ingress` if the proxy is still on the routing mesh) reaches the service without it: each attached network slows every proxy update",
                label.value
            ),
            "remove the label; the proxy reaches the service through its host-mode port".into(),
        )
    };
    Some(Problem {
        finding,
        repair: Some(Repair::RemoveLabel {
            service: index,
            key: label.key.clone(),
        }),
    })
}

/// A routed service without a host-mode port for `com.docker.lb.port`.
fn host_mode_port(index: usize, service: &Service) -> Option<Problem> {
    if !service.is_routed() {
        return None;
    }
    let label = service.deploy_label(&Key::Port.label())?;
    let port = labels::port(&label.value)?;
    let items = service.ports.as_ref().map_or(&[][..], |p| &p.items[..]);
    if items
        .iter()
        .any(|p| p.target == Some(port) && p.is_host_mode())
    {
        return None;
    }
    let ingress = items.iter().find(|p| p.target == Some(port));
    let (line, what) = match ingress {
        Some(item) => (
            item.line,
            format!("publishes port {port} only through the routing mesh (ingress)"),
        ),
        None => (label.line, format!("publishes no port with target {port}")),
    };
    Some(Problem {
        finding: finding(
            Severity::Error,
            "no_host_mode_port",
            line,
            Some(service),
            format!(
                "{what}: in host mode the proxy reaches the service's tasks at a host-mode port whose target is `{}` ({port})",
                label.key
            ),
            format!(
                "publish it in host mode: under `ports:`, `- target: {port}` with `mode: host`"
            ),
        ),
        repair: Some(Repair::PublishHostPort {
            service: index,
            port,
        }),
    })
}

/// In ingress mode, a routed service on several networks needs to name the proxy's.
fn network_label_needed(stack: &Stack, service: &Service) -> Option<Finding> {
    let networks = service.network_keys();
    let reachable = networks
        .iter()
        .filter(|key| !stack.network(key).is_some_and(|n| n.is_node_local()))
        .count();
    if !service.is_routed()
        || reachable < 2
        || service.deploy_label(&Key::Network.label()).is_some()
    {
        return None;
    }
    Some(finding(
        Severity::Warning,
        "network_label_needed",
        stack.doc.line(service.key),
        Some(service),
        format!(
            "is on {reachable} networks ({}) and has no `{}`: Interlock may join the proxy to any of them",
            networks.join(", "),
            Key::Network.label()
        ),
        format!(
            "add `{}` naming the network the proxy should use",
            Key::Network.label()
        ),
    ))
}

/// Problems 1 and 2: the networks Interlock attaches to the proxy. Only networks a service
/// uses count: `docker stack deploy` does not create the others.
fn attached_networks(stack: &Stack, mode: PublishMode) -> Vec<Problem> {
    let mut keys: Vec<&str> = Vec::new();
    for service in &stack.services {
        for key in service.network_keys() {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    let mut findings = Vec::new();
    for key in keys {
        let decl = stack.network(key);
        if decl.is_some_and(|d| d.is_node_local()) || (decl.is_none() && key != DEFAULT_NETWORK) {
            continue;
        }
        let users: Vec<(usize, &Service)> = stack
            .services
            .iter()
            .enumerate()
            .filter(|(_, s)| s.network_keys().contains(&key))
            .collect();
        let shared = users.len() > 1 || decl.is_some_and(|d| d.external || d.attachable);
        let deployed = decl.map_or_else(
            || format!("<stack>_{key}"),
            |d| d.deployed_name().to_string(),
        );
        if let ([(index, only)], false, PublishMode::Host) = (users.as_slice(), shared, mode)
            && only.is_routed()
        {
            findings.push(proxy_only(stack, *index, only, key, &deployed));
            continue;
        }
        let names: Vec<&str> = users.iter().map(|(_, s)| s.name.as_str()).collect();
        let line = decl.map_or_else(
            || stack.doc.line(users[0].1.key),
            |d| stack.doc.line(d.key_node),
        );
        findings.extend(unrepaired([finding(
            Severity::Warning,
            "network_attached_to_proxy",
            line,
            None,
            format!(
                "Interlock attaches network `{deployed}` (used by {}) to the proxy: every attached network slows each proxy update",
                names.join(", ")
            ),
            "Interlock 3.0.8 and later attach only networks named in `com.docker.lb.network`; before that, keep a stack's networks few, and give services that need no service-to-service traffic the external `bridge` network".into(),
        )]));
    }
    findings
}

/// A routed service alone on a network: the network serves only the proxy.
fn proxy_only(
    stack: &Stack,
    index: usize,
    service: &Service,
    key: &str,
    deployed: &str,
) -> Problem {
    let fix = "attach the service to the external `bridge` network instead (`interlockctl stack fix` does this)";
    match &service.networks {
        None => Problem {
            finding: finding(
                Severity::Error,
                "default_network_attached",
                stack.doc.line(service.key),
                Some(service),
                format!(
                    "names no network, so it joins `{deployed}`, which Interlock attaches to the proxy; in host mode the proxy reaches the service without any network"
                ),
                fix.into(),
            ),
            repair: Some(Repair::JoinBridge { service: index }),
        },
        Some(networks) => {
            let line = networks
                .refs
                .iter()
                .find(|r| r.key == key)
                .map_or_else(|| stack.doc.line(service.key), |r| r.line);
            Problem {
                finding: finding(
                    Severity::Error,
                    "proxy_only_network",
                    line,
                    Some(service),
                    format!(
                        "is the only service on network `{deployed}`, so that network serves only the proxy, which Interlock attaches to it; in host mode the proxy reaches the service without it"
                    ),
                    format!("remove `{key}` from the service's networks; {fix}"),
                ),
                repair: Some(Repair::LeaveNetwork {
                    service: index,
                    key: key.to_owned(),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str, mode: PublishMode) -> Vec<(usize, Severity, &'static str)> {
        let stack = Stack::parse("t.yml", text).unwrap();
        lint(&stack, mode)
            .into_iter()
            .map(|f| (f.line.unwrap(), f.severity, f.code))
            .collect()
    }

    const ROUTED: &str = "version: \"3.4\"\nservices:\n  web:\n    deploy:\n      labels:\n        - com.docker.lb.hosts=a.example.com\n        - com.docker.lb.port=8080\n        - com.docker.lb.network=shop-front\n    ports:\n      - \"8080:8080\"\n    networks: [front, back]\n  db:\n    networks: [back]\nnetworks:\n  front:\n    name: shop-front\n  back:\n";

    #[test]
    fn host_mode_errors_and_shared_network_warnings() {
        use Severity::{Error, Warning};
        assert_eq!(
            codes(ROUTED, PublishMode::Host),
            [
                (8, Error, "network_label_in_host_mode"),
                (10, Error, "no_host_mode_port"),
                (11, Error, "proxy_only_network"),
                (16, Error, "network_name_needs_3_5"),
                (17, Warning, "network_attached_to_proxy"),
            ]
        );
    }

    #[test]
    fn ingress_mode_keeps_only_the_costs() {
        use Severity::{Error, Warning};
        assert_eq!(
            codes(ROUTED, PublishMode::Ingress),
            [
                (15, Warning, "network_attached_to_proxy"),
                (16, Error, "network_name_needs_3_5"),
                (17, Warning, "network_attached_to_proxy"),
            ]
        );
    }

    #[test]
    fn the_implicit_default_network() {
        use Severity::{Error, Warning};
        let alone = "services:\n  web:\n    deploy:\n      labels: {com.docker.lb.hosts: a.com, com.docker.lb.port: 80}\n    ports: [{target: 80, mode: host}]\n";
        assert_eq!(
            codes(alone, PublishMode::Host),
            [(2, Error, "default_network_attached")]
        );
        let shared = format!("{alone}  worker:\n    image: w\n");
        assert_eq!(
            codes(&shared, PublishMode::Host),
            [(2, Warning, "network_attached_to_proxy")]
        );
        let bridged = "version: \"3.5\"\nservices:\n  web:\n    deploy:\n      labels: [com.docker.lb.hosts=a.com, com.docker.lb.port=80]\n    ports: [{target: 80, mode: host}]\n    networks: [b]\nnetworks:\n  b:\n    external: true\n    name: bridge\n";
        assert_eq!(codes(bridged, PublishMode::Host), []);
    }

    #[test]
    fn file_level_refusals() {
        use Severity::Error;
        assert_eq!(
            codes(
                "version: \"2.4\"\nservices:\n  a:\n    networks: [nope]\n",
                PublishMode::Host
            ),
            [
                (1, Error, "unsupported_version"),
                (4, Error, "undefined_network")
            ]
        );
    }
}

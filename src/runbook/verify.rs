//! Checks that the proxy really serves as configured, judged from its tasks. Pure.
//!
//! The service spec is not enough: a task that survived an earlier update can keep the
//! ports it was started with, look `Running`, and not answer on the new ones. So every
//! running task's own port status and node are checked.

use serde::Serialize;
use serde_json::Value;

use crate::interlock::config::{ExtensionSettings, PublishMode};
use crate::interlock::input::Constraint;
use crate::runbook::plan::desired_proxy_ports;
use crate::swarm::{Node, Service, Task, spec};

/// What is wrong with the proxy, if anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProxyCheck {
    /// Problems that re-creating tasks will not fix.
    pub problems: Vec<String>,
    /// Running tasks that do not bind the configured host ports (re-create them).
    pub stale_tasks: Vec<String>,
}

impl ProxyCheck {
    /// Whether the proxy serves as configured.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty() && self.stale_tasks.is_empty()
    }
}

/// The settings a proxy's spec carries out: `settings` with the spec's replica count, its
/// placement constraints, and the publish mode and published port of each of the settings'
/// target ports. A restored proxy is checked against these, its own before the run, which
/// the live config need not have said (the known bug).
pub fn settings_of_spec(settings: &ExtensionSettings, proxy_spec: &Value) -> ExtensionSettings {
    let ports = spec::ports(proxy_spec);
    let of_target = |target: u16| ports.iter().find(|port| port.target == target);
    let (http, https) = (
        of_target(settings.target_port),
        of_target(settings.target_ssl_port),
    );
    let host = [http, https]
        .into_iter()
        .flatten()
        .any(|p| p.mode == "host");
    ExtensionSettings {
        proxy_replicas: spec::replicas(proxy_spec).unwrap_or(0),
        proxy_constraints: spec::constraints(proxy_spec),
        publish_mode: if host {
            PublishMode::Host
        } else {
            PublishMode::Ingress
        },
        published_port: http.and_then(|port| port.published),
        published_ssl_port: https.and_then(|port| port.published),
        ..settings.clone()
    }
}

/// Checks replicas, placement and ports of the proxy's running tasks.
pub fn check_proxy(
    settings: &ExtensionSettings,
    proxy: &Service,
    tasks: &[Task],
    nodes: &[Node],
) -> ProxyCheck {
    let mut check = ProxyCheck::default();
    let running: Vec<&Task> = tasks.iter().filter(|t| t.is_running()).collect();
    if running.len() as u64 != settings.proxy_replicas {
        check.problems.push(format!(
            "{} of {} proxy tasks are running",
            running.len(),
            settings.proxy_replicas
        ));
    }
    let constraints = Constraint::parse_proxy_constraints(&settings.proxy_constraints);
    let wanted_ports = desired_proxy_ports(settings);
    for task in running {
        let node = task
            .node_id
            .as_deref()
            .and_then(|id| nodes.iter().find(|n| n.id == id));
        let hostname = node.map_or("an unknown node", |n| n.hostname.as_str());
        if let Some(node) = node {
            for constraint in constraints
                .iter()
                .filter(|c| !c.matches(|lhs| node.attribute(lhs)))
            {
                check
                    .problems
                    .push(format!("proxy task on {hostname} violates {constraint}"));
            }
        }
        let binds_all = wanted_ports.iter().all(|port| task.ports.contains(port));
        if settings.publish_mode == PublishMode::Host && !binds_all {
            check.stale_tasks.push(format!(
                "proxy task on {hostname} does not bind the configured host ports"
            ));
        }
    }
    if settings.publish_mode == PublishMode::Ingress {
        for port in wanted_ports
            .iter()
            .filter(|p| !proxy.endpoint_ports.contains(p))
        {
            check
                .problems
                .push(format!("the swarm does not publish {port} for the proxy"));
        }
    }
    check
}

/// What keeps a service from running `image` everywhere: the spec names another image, a
/// running task runs another, or fewer tasks run than the service wants.
pub fn check_images(service: &Service, image: &str, tasks: &[Task]) -> Vec<String> {
    let name = &service.name;
    let mut problems = Vec::new();
    let spec_image = spec::image(&service.spec);
    if spec_image != image {
        problems.push(format!("{name} is set to run {spec_image}, not {image}"));
    }
    let running: Vec<&Task> = tasks.iter().filter(|t| t.is_running()).collect();
    for task in running.iter().filter(|t| t.image != image) {
        problems.push(format!("a task of {name} runs {}", task.image));
    }
    let wanted = spec::replicas(&service.spec).unwrap_or(1);
    if (running.len() as u64) < wanted {
        problems.push(format!(
            "{} of {wanted} tasks of {name} are running",
            running.len()
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{observed, pinned_host_mode, port, settings_after, task};

    #[test]
    fn tasks_must_run_on_eligible_nodes_and_bind_the_host_ports() {
        let observed = observed();
        let (_, settings) = settings_after(pinned_host_mode);
        let bound = || vec![port(7080, 80, "host"), port(7443, 443, "host")];
        let good = [task("proxy", "w1", bound()), task("proxy", "w2", bound())];
        assert!(
            check_proxy(
                &settings,
                observed.proxy.as_ref().unwrap(),
                &good,
                &observed.nodes
            )
            .is_ok()
        );

        let stale = [task("proxy", "w1", bound()), task("proxy", "w2", vec![])];
        assert_eq!(
            check_proxy(
                &settings,
                observed.proxy.as_ref().unwrap(),
                &stale,
                &observed.nodes
            ),
            ProxyCheck {
                problems: vec![],
                stale_tasks: vec![
                    "proxy task on host-w2 does not bind the configured host ports".into()
                ],
            }
        );

        let misplaced = [task("proxy", "w1", bound()), task("proxy", "w3", bound())];
        assert_eq!(
            check_proxy(
                &settings,
                observed.proxy.as_ref().unwrap(),
                &misplaced,
                &observed.nodes
            )
            .problems,
            ["proxy task on host-w3 violates node.labels.role==dtr"]
        );
        assert_eq!(
            check_proxy(
                &settings,
                observed.proxy.as_ref().unwrap(),
                &good[..1],
                &observed.nodes
            )
            .problems,
            ["1 of 2 proxy tasks are running"]
        );
    }

    /// A restored proxy is judged by what its own spec carried before the run, whatever
    /// the config says: here the pinned host-mode settings against an ingress proxy on the
    /// UCP default placement with 3 replicas.
    #[test]
    fn settings_of_a_spec_are_its_replicas_placement_and_ports() {
        let (_, pinned) = settings_after(pinned_host_mode);
        let spec = serde_json::json!({
            "Mode": {"Replicated": {"Replicas": 3}},
            "TaskTemplate": {"Placement": {"Constraints": ["node.platform.os==linux"]}},
            "EndpointSpec": {"Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 80, "PublishMode": "ingress"},
                {"Protocol": "tcp", "TargetPort": 443, "PublishedPort": 8443, "PublishMode": "ingress"},
                {"Protocol": "tcp", "TargetPort": 9000, "PublishedPort": 9000, "PublishMode": "host"}
            ]}
        });
        let judged = settings_of_spec(&pinned, &spec);
        assert_eq!(
            (
                judged.proxy_replicas,
                judged.proxy_constraints.clone(),
                judged.publish_mode,
                judged.published_port,
                judged.published_ssl_port
            ),
            (
                3,
                vec!["node.platform.os==linux".to_owned()],
                PublishMode::Ingress,
                Some(80),
                Some(8443)
            )
        );
        assert_eq!(
            (judged.name, judged.target_port, judged.target_ssl_port),
            (pinned.name, pinned.target_port, pinned.target_ssl_port),
            "the rest as the settings say"
        );
    }

    #[test]
    fn ingress_ports_are_judged_from_the_service_endpoint() {
        let mut observed = observed();
        let (_, settings) = settings_after(str::to_owned);
        let tasks = [task("proxy", "w1", vec![]), task("proxy", "w2", vec![])];
        assert_eq!(
            check_proxy(
                &settings,
                observed.proxy.as_ref().unwrap(),
                &tasks,
                &observed.nodes
            )
            .problems,
            [
                "the swarm does not publish 80:80/tcp (ingress) for the proxy",
                "the swarm does not publish 8443:443/tcp (ingress) for the proxy"
            ]
        );
        observed.proxy.as_mut().unwrap().endpoint_ports =
            vec![port(80, 80, "ingress"), port(8443, 443, "ingress")];
        assert!(
            check_proxy(
                &settings,
                observed.proxy.as_ref().unwrap(),
                &tasks,
                &observed.nodes
            )
            .is_ok()
        );
    }
}

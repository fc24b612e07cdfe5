//! Checks run before anything changes. Pure: they judge the observed state.
//!
//! A refusal here costs nothing; the same problem found by Swarm halfway through a
//! migration leaves proxy tasks pending and inbound traffic at risk.

use crate::error::{Diagnostic, Problem};
use crate::interlock::config::{ExtensionSettings, PublishMode};
use crate::interlock::edit::Edit;
use crate::interlock::input::Constraint;
use crate::runbook::plan::{Observed, Plan, desired_proxy_ports};
use crate::swarm::spec;
use crate::swarm::{Node, Service, Task};

/// An object the migration needs is missing.
#[derive(Debug, thiserror::Error)]
pub enum Missing {
    /// No Interlock core service.
    #[error("service {0} does not exist")]
    CoreService(String),
    /// The core mounts no config at `/config.toml`.
    #[error("service {0} mounts no config at /config.toml")]
    ConfigMount(String),
    /// The extension's proxy service does not exist.
    #[error("the proxy service {0} does not exist")]
    ProxyService(String),
}

impl Diagnostic for Missing {
    fn code(&self) -> &'static str {
        match self {
            Missing::CoreService(_) => "core_service_missing",
            Missing::ConfigMount(_) => "config_missing",
            Missing::ProxyService(_) => "proxy_service_missing",
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            Missing::CoreService(_) => "enable Layer 7 routing in UCP/MKE first, or pass `--service NAME` if the core has another name".into(),
            Missing::ConfigMount(_) => "is this the Interlock core? pass `--service NAME`".into(),
            Missing::ProxyService(_) => "wait for the Interlock core to create it, or check ProxyServiceName and `--extension`".into(),
        })
    }
}

/// A check the swarm fails.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No Ready, Active node carries the label.
    #[error("no Ready, Active node has the label {0}")]
    NoLabelledNodes(String),
    /// Host mode allows one proxy task per node per port.
    #[error(
        "{replicas} proxy replicas in host mode need {replicas} eligible nodes, but only {eligible} Ready, Active nodes satisfy {constraints}"
    )]
    TooFewNodes {
        /// ProxyReplicas.
        replicas: u64,
        /// Nodes satisfying the constraints.
        eligible: u64,
        /// The constraints.
        constraints: String,
    },
    /// Another service already publishes a port the proxy needs.
    #[error("port {port} is already published by service {service} ({how})")]
    PortInUse {
        /// The port.
        port: u16,
        /// The other service.
        service: String,
        /// Where: through ingress, or in host mode on which node.
        how: String,
    },
    /// A previous update has not finished.
    #[error("a previous update of {service} is {state}")]
    UpdateInProgress {
        /// The service.
        service: String,
        /// Its update state.
        state: String,
    },
}

impl Refusal {
    /// Whether `--force` may override it: the swarm stays consistent, only proxy tasks may
    /// stay pending. An update still in progress never can be.
    pub fn can_be_forced(&self) -> bool {
        matches!(
            self,
            Refusal::TooFewNodes { .. } | Refusal::PortInUse { .. }
        )
    }
}

impl Diagnostic for Refusal {
    fn code(&self) -> &'static str {
        match self {
            Refusal::NoLabelledNodes(_) => "no_labelled_nodes",
            Refusal::TooFewNodes { .. } => "too_few_nodes",
            Refusal::UpdateInProgress { .. } => "update_in_progress",
            Refusal::PortInUse { .. } => "port_in_use",
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            Refusal::NoLabelledNodes(label) => format!(
                "label the proxy nodes first: `docker node update --label-add {label} NODE`"
            ),
            Refusal::TooFewNodes { eligible, .. } => {
                format!("pass `--replicas {eligible}` or label more nodes")
            }
            Refusal::UpdateInProgress { service, state } if state.contains("paused") => {
                format!(
                    "resume it with `docker service update {service}` or undo it with `docker service rollback {service}`, then re-run"
                )
            }
            Refusal::UpdateInProgress { .. } => {
                "wait until it completes (`docker service ps`), then re-run".into()
            }
            Refusal::PortInUse { service, .. } => format!(
                "pick another port (`--http`/`--https`), or unpublish it from {service}; the proxy task would stay pending"
            ),
        })
    }
}

/// For `pin-proxy` and `cluster add`: the number of schedulable nodes with the label (the
/// default replica count); refuses when there are none.
pub fn labelled_nodes(edit: &Edit, nodes: &[Node]) -> Result<Option<u64>, Refusal> {
    let Some(label) = edit.node_label() else {
        return Ok(None);
    };
    let count = nodes
        .iter()
        .filter(|node| node.schedulable() && node.labels.get(&label.key) == Some(&label.value))
        .count() as u64;
    if count == 0 {
        return Err(Refusal::NoLabelledNodes(label.to_string()));
    }
    Ok(Some(count))
}

/// Who publishes ports in the swarm. Read only by the editing commands: the port check is
/// the one place that needs every service and every running task.
#[derive(Debug, Clone, Default)]
pub struct PortUsers {
    /// Every service of the swarm.
    pub services: Vec<Service>,
    /// Every task meant to be running (host-mode ports are bound per task).
    pub running_tasks: Vec<Task>,
}

/// Every check of the desired settings against the observed swarm, all problems at once.
/// With `force`, the refusals a user can knowingly accept become warnings (returned).
pub fn check(
    observed: &Observed,
    settings: &ExtensionSettings,
    plan: &Plan,
    port_users: &PortUsers,
    force: bool,
) -> Result<Vec<String>, Vec<Problem>> {
    let mut refusals = Vec::new();
    let services = [
        Some((&observed.core, !plan.core_edits.is_empty())),
        observed
            .proxy
            .as_ref()
            .map(|proxy| (proxy, !plan.proxy_edits.is_empty())),
    ];
    for (service, edited) in services.into_iter().flatten() {
        if let Some(state) = service
            .update_state
            .as_deref()
            .filter(|state| blocks(state, edited))
        {
            refusals.push(Refusal::UpdateInProgress {
                service: service.name.clone(),
                state: state.to_owned(),
            });
        }
    }
    refusals.extend(port_conflicts(observed, settings, port_users));
    if settings.publish_mode == PublishMode::Host {
        let eligible = eligible_nodes(&observed.nodes, &settings.proxy_constraints).len() as u64;
        if eligible < settings.proxy_replicas {
            refusals.push(Refusal::TooFewNodes {
                replicas: settings.proxy_replicas,
                eligible,
                constraints: format!("{:?}", settings.proxy_constraints),
            });
        }
    }
    let (accepted, refused): (Vec<Refusal>, Vec<Refusal>) = refusals
        .into_iter()
        .partition(|r| force && r.can_be_forced());
    if refused.is_empty() {
        Ok(accepted.iter().map(|r| format!("--force: {r}")).collect())
    } else {
        Err(refused.iter().map(Problem::from_diagnostic).collect())
    }
}

/// Whether a service's update state stops this run. A paused update needs a human. An update
/// still running blocks only if this run would change the service again; otherwise it is
/// the rollout of the same change (an interrupted earlier run), and this run waits for it.
fn blocks(update_state: &str, edited: bool) -> bool {
    match update_state {
        "paused" | "rollback_paused" => true,
        "updating" | "rollback_started" => edited,
        _ => false,
    }
}

/// Ports the proxy needs that another service publishes: through ingress anywhere (the
/// routing mesh reserves the port on every node), or in host mode on a node the proxy may
/// run on.
fn port_conflicts(
    observed: &Observed,
    settings: &ExtensionSettings,
    users: &PortUsers,
) -> Vec<Refusal> {
    let eligible = eligible_nodes(&observed.nodes, &settings.proxy_constraints);
    let mut conflicts = Vec::new();
    for port in desired_proxy_ports(settings)
        .iter()
        .filter_map(|p| p.published)
    {
        let own_proxy = observed.proxy.as_ref().map(|p| p.id.as_str());
        for service in users
            .services
            .iter()
            .filter(|s| Some(s.id.as_str()) != own_proxy)
        {
            let ingress = spec::ports(&service.spec)
                .iter()
                .chain(&service.endpoint_ports)
                .any(|p| p.published == Some(port) && p.mode == "ingress");
            let host_node = users
                .running_tasks
                .iter()
                .filter(|t| {
                    t.service_id == service.id && t.ports.iter().any(|p| p.published == Some(port))
                })
                .find_map(|t| eligible.iter().find(|n| Some(&n.id) == t.node_id.as_ref()));
            let how = if ingress {
                Some("through ingress, on every node".to_owned())
            } else {
                host_node.map(|node| format!("in host mode on {}", node.hostname))
            };
            if let Some(how) = how {
                conflicts.push(Refusal::PortInUse {
                    port,
                    service: service.name.clone(),
                    how,
                });
            }
        }
    }
    conflicts
}

/// Schedulable nodes that satisfy every constraint.
fn eligible_nodes<'a>(nodes: &'a [Node], constraints: &[String]) -> Vec<&'a Node> {
    let parsed = Constraint::parse_proxy_constraints(constraints);
    nodes
        .iter()
        .filter(|node| {
            node.schedulable() && parsed.iter().all(|c| c.matches(|lhs| node.attribute(lhs)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::testing::{
        observed, pinned_host_mode, plan_after, port, service, settings_after, task,
    };

    fn codes(
        (observed, users): (&Observed, &PortUsers),
        edit: impl Fn(&str) -> String,
        force: bool,
    ) -> Result<Vec<String>, Vec<String>> {
        let settings = settings_after(&edit).1;
        let plan = plan_after(observed, edit);
        check(observed, &settings, &plan, users, force)
            .map_err(|problems| problems.into_iter().map(|p| p.code).collect())
    }

    #[test]
    fn host_mode_needs_a_node_per_replica() {
        let three = |t: &str| pinned_host_mode(t).replace("ProxyReplicas = 2", "ProxyReplicas = 3");
        assert_eq!(
            codes((&observed(), &PortUsers::default()), three, false),
            Err(vec!["too_few_nodes".to_owned()])
        );
        assert_eq!(
            codes((&observed(), &PortUsers::default()), three, true),
            Ok(vec![
                "--force: 3 proxy replicas in host mode need 3 eligible nodes, but only 2 Ready, Active nodes satisfy [\"node.labels.role==dtr\"]".to_owned()
            ])
        );
        assert_eq!(
            codes(
                (&observed(), &PortUsers::default()),
                pinned_host_mode,
                false
            ),
            Ok(vec![])
        );
    }

    #[test]
    fn ports_published_elsewhere_are_refused_where_they_collide() {
        let observed = observed();
        let mut ingress = PortUsers::default();
        let web = json!({"Name": "web", "EndpointSpec": {"Ports": [
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 7443, "PublishMode": "ingress"}
        ]}});
        ingress.services.push(service("web", web));
        assert_eq!(
            codes((&observed, &ingress), pinned_host_mode, false),
            Err(vec!["port_in_use".to_owned()])
        );

        // Host mode collides only on a node the proxy may use (w1, w2 carry role=dtr).
        let mut on_w3 = PortUsers::default();
        on_w3.services.push(service("db", json!({"Name": "db"})));
        on_w3
            .running_tasks
            .push(task("db", "w3", vec![port(7080, 5432, "host")]));
        assert_eq!(
            codes((&observed, &on_w3), pinned_host_mode, false),
            Ok(vec![])
        );
        let mut on_w1 = on_w3.clone();
        on_w1
            .running_tasks
            .push(task("db", "w1", vec![port(7080, 5432, "host")]));
        assert_eq!(
            codes((&observed, &on_w1), pinned_host_mode, false),
            Err(vec!["port_in_use".to_owned()])
        );
        assert_eq!(
            codes((&observed, &on_w1), pinned_host_mode, true).map(|w| w.len()),
            Ok(1)
        );

        // The proxy's own ports are no conflict.
        let mut own = PortUsers::default();
        own.running_tasks
            .push(task("proxy", "w1", vec![port(7080, 80, "host")]));
        assert_eq!(
            codes((&observed, &own), pinned_host_mode, false),
            Ok(vec![])
        );
    }

    #[test]
    fn a_running_update_blocks_only_a_service_this_run_changes() {
        let mut updating = observed();
        updating.proxy.as_mut().unwrap().update_state = Some("updating".into());
        assert_eq!(
            codes((&updating, &PortUsers::default()), str::to_owned, false),
            Ok(vec![]),
            "nothing to change: wait for it"
        );
        assert_eq!(
            codes((&updating, &PortUsers::default()), pinned_host_mode, true),
            Err(vec!["update_in_progress".to_owned()]),
            "--force never overrides"
        );
        let mut paused = observed();
        paused.core.update_state = Some("paused".into());
        assert_eq!(
            codes((&paused, &PortUsers::default()), str::to_owned, false),
            Err(vec!["update_in_progress".to_owned()])
        );
    }
}

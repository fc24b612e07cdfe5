//! The plan: what must change so the swarm matches the edited config. Pure: no I/O, no
//! printing, no async.
//!
//! Docker config objects are immutable, so a changed config becomes a new object in the
//! lineage (`...conf-N+1`) and the core is rotated onto it. The Interlock core does not
//! apply `ProxyConstraints`, `ProxyReplicas` or ports to a proxy service that exists
//! already (the runbook's "known bug"), so the plan also edits the proxy to match.
//! Because the plan is computed from the observed state, a re-run after an interruption
//! plans exactly the steps that are still missing.
//!
//! For service clusters the observed proxy may be missing: a new cluster's proxy is created
//! by the core from the new config, so the plan awaits it instead of editing it (waiting is
//! no change of this run). The services of a removed cluster become removal steps.
//!
//! Images (`upgrade`, and a `rollback` past one) are spec edits like the others: the core's
//! goes into the core's one update with its config swap, so the core restarts once and on a
//! config that names the new images; the extension and proxy services get their own updates
//! ([`Plan::others`]), applied after the core. A config created by a run that moves images
//! records the images it replaced ([`LABEL_IMAGES`]), which is how a rollback finds them.

use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::interlock::config::ExtensionSettings;
use crate::interlock::image::Upgrade;
use crate::interlock::input::Constraint;
use crate::output::report::Action;
use crate::swarm::spec::{self, SpecEdit};
use crate::swarm::{ConfigObject, Node, Port, Service};

/// Where the core mounts its config.
pub const CONFIG_TARGET: &str = "/config.toml";
/// The core's gRPC port, published in host mode when the proxy goes host mode.
pub const CORE_GRPC_PORT: u16 = 8080;
/// Label on configs this tool creates: the content digest, for idempotent re-runs.
pub const LABEL_DIGEST: &str = "com.docker.interlockctl.digest";
/// Label on configs this tool creates: the config it was derived from.
pub const LABEL_PARENT: &str = "com.docker.interlockctl.parent";
/// Label on configs this tool creates: the command that created it.
pub const LABEL_OPERATION: &str = "com.docker.interlockctl.operation";
/// Label on configs this tool creates: present when the run that created it published the
/// core's gRPC port in host mode (a rollback past it unpublishes the port again).
pub const LABEL_CORE_PORT: &str = "com.docker.interlockctl.core-port";
/// Label on configs this tool creates: the images (a JSON object, service name to image)
/// the run that created it moved, as they were before (a rollback past it puts them back).
pub const LABEL_IMAGES: &str = "com.docker.interlockctl.images";

/// What was read from the swarm.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The Interlock core service.
    pub core: Service,
    /// The config object mounted at `/config.toml`.
    pub config: ConfigObject,
    /// Its TOML.
    pub config_text: String,
    /// Every config of the same lineage (same base name).
    pub lineage: Vec<ConfigObject>,
    /// All nodes.
    pub nodes: Vec<Node>,
    /// The proxy service of the extension the edit works on; `None` when it does not exist
    /// yet (a new service cluster: the core creates it when it loads the new config).
    pub proxy: Option<Service>,
    /// Services of an extension the edit removes (`cluster remove`): Interlock leaves them
    /// running, so the plan removes them.
    pub retired: Vec<Service>,
    /// Services whose image the run may move besides the core's (`upgrade`, and a
    /// `rollback` past one): the extension and proxy services.
    pub others: Vec<Service>,
}

impl Observed {
    /// The core, then the other services whose image a run may move.
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        std::iter::once(&self.core).chain(&self.others)
    }
}

/// The config step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextConfig {
    /// Create a new config object.
    Create {
        /// Its name.
        name: String,
        /// Its labels.
        labels: BTreeMap<String, String>,
    },
    /// A config with this exact content exists already (an interrupted earlier run).
    Reuse {
        /// Its name.
        name: String,
        /// Its ID.
        id: String,
    },
}

impl NextConfig {
    /// The config's name.
    pub fn name(&self) -> &str {
        match self {
            NextConfig::Create { name, .. } | NextConfig::Reuse { name, .. } => name,
        }
    }
}

/// Every change needed, in the order it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The config to create or reuse; `None` when the config is already right.
    pub config: Option<NextConfig>,
    /// Edits of the core service (one update).
    pub core_edits: Vec<SpecEdit>,
    /// Edits of the proxy service (one update).
    pub proxy_edits: Vec<SpecEdit>,
    /// The proxy the core must create from the new config, waited for before it is made to
    /// match and verified. Not a change of this run: the core makes it.
    pub awaited_proxy: Option<String>,
    /// Services to remove, after the core runs on the new config.
    pub removed_services: Vec<String>,
    /// Updates of further services (an upgrade's extension and proxies), sent once the core
    /// runs its new image and config.
    pub others: Vec<ServiceEdits>,
    /// How long the proxy's edits wait, once the core's new task runs, for the core to swap
    /// the nginx config it renders from the new config onto the proxy: they are then written
    /// onto that spec, so Swarm replaces each proxy task once. `None`: sent at once (no new
    /// config, nothing to edit on the proxy, or a proxy that mounts no config of the core's).
    pub proxy_hold: Option<Duration>,
}

/// The edits of one service (one update).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEdits {
    /// The service.
    pub service: String,
    /// Its edits.
    pub edits: Vec<SpecEdit>,
}

impl Plan {
    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.config.is_none()
            && self.core_edits.is_empty()
            && self.proxy_edits.is_empty()
            && self.removed_services.is_empty()
            && self.others.is_empty()
    }

    /// The image every service the plan moves will run, by service name.
    pub fn moved_images(&self, core: &str) -> BTreeMap<String, String> {
        let updates = std::iter::once((core, &self.core_edits))
            .chain(self.others.iter().map(|o| (o.service.as_str(), &o.edits)));
        updates
            .flat_map(|(service, edits)| {
                edits.iter().filter_map(move |edit| match edit {
                    SpecEdit::Image { to, .. } => Some((service.to_owned(), to.clone())),
                    _ => None,
                })
            })
            .collect()
    }

    /// The plan as report actions, in order.
    pub fn actions(&self, observed: &Observed, new_text: &str) -> Vec<Action> {
        let mut actions = Vec::new();
        match &self.config {
            Some(NextConfig::Create { name, .. }) => actions.push(Action {
                kind: "create_config",
                target: name.clone(),
                detail: format!(
                    "{} bytes, {}, parent {}",
                    new_text.len(),
                    short_digest(new_text),
                    observed.config.name
                ),
            }),
            Some(NextConfig::Reuse { name, .. }) => actions.push(Action {
                kind: "reuse_config",
                target: name.clone(),
                detail: "a config with this content exists already".into(),
            }),
            None => {}
        }
        let proxy_name = observed.proxy.as_ref().map(|p| p.name.clone());
        let others = self
            .others
            .iter()
            .map(|o| (Some(o.service.clone()), &o.edits));
        let updates = [
            (Some(observed.core.name.clone()), &self.core_edits),
            (proxy_name, &self.proxy_edits),
        ];
        for (service, edits) in updates.into_iter().chain(others) {
            if let Some(service) = service.filter(|_| !edits.is_empty()) {
                let detail = edits
                    .iter()
                    .map(SpecEdit::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                actions.push(Action {
                    kind: "update_service",
                    target: service,
                    detail,
                });
            }
        }
        if let Some(proxy) = &self.awaited_proxy {
            actions.push(Action {
                kind: "await_service",
                target: proxy.clone(),
                detail: "the Interlock core creates it from the new config; then it is made to match and verified".into(),
            });
        }
        for service in &self.removed_services {
            actions.push(Action {
                kind: "remove_service",
                target: service.clone(),
                detail: "its extension is no longer in the config, and Interlock leaves it running"
                    .into(),
            });
        }
        actions
    }
}

/// What a plan is computed towards.
#[derive(Debug, Clone, Copy)]
pub struct Desired<'a> {
    /// The edited config's text.
    pub text: &'a str,
    /// The config object that holds this text already (a rollback), so none is created.
    pub existing: Option<&'a ConfigObject>,
    /// The selected extension's settings in the edited config.
    pub settings: &'a ExtensionSettings,
    /// Its settings in the live config: the proxy ports of their targets are managed too,
    /// so a changed `TargetPort` replaces its old entry instead of leaving it behind.
    pub live_settings: &'a ExtensionSettings,
    /// Whether any extension of the edited config publishes in host mode, which needs the
    /// core's gRPC port published on the host.
    pub host_mode: bool,
    /// The command, recorded on a new config.
    pub operation: &'a str,
    /// The image each service must run, by service name (the core's or one of
    /// [`Observed::others`]); services not named keep theirs.
    pub images: &'a BTreeMap<String, String>,
    /// How the core writes the proxy once it loads the edited config.
    pub core_writer: CoreWriter<'a>,
}

/// How the Interlock core writes a proxy: it renders the proxy's nginx config from its own
/// config and the routes and, when the rendering differs from what the proxy mounts, swaps it
/// onto the proxy service, on start and then every `PollInterval`.
#[derive(Debug, Clone, Copy)]
pub struct CoreWriter<'a> {
    /// `ProxyConfigPath`: where the proxy mounts the rendered config.
    pub proxy_config_path: &'a str,
    /// `PollInterval` of the edited config.
    pub poll_interval: Duration,
}

/// Computes the plan that brings the swarm to `desired`.
pub fn build(observed: &Observed, desired: &Desired) -> Plan {
    let core_port = core_port_edit(observed, desired);
    let core_image = image_edit(&observed.core, desired);
    let others: Vec<ServiceEdits> = observed
        .others
        .iter()
        .filter_map(|service| {
            let edit = image_edit(service, desired)?;
            let mut edits = vec![edit];
            edits.extend(rollback_on_failure(&service.spec));
            Some(ServiceEdits {
                service: service.name.clone(),
                edits,
            })
        })
        .collect();
    let config = (desired.text != observed.config_text).then(|| match desired.existing {
        Some(config) => NextConfig::Reuse {
            name: config.name.clone(),
            id: config.id.clone(),
        },
        None => {
            let moved = core_image
                .iter()
                .map(|edit| (&observed.core.name, edit))
                .chain(
                    others
                        .iter()
                        .flat_map(|o| o.edits.iter().map(move |edit| (&o.service, edit))),
                );
            let images_before: BTreeMap<String, String> = moved
                .filter_map(|(service, edit)| match edit {
                    SpecEdit::Image { from, .. } => Some((service.clone(), from.clone())),
                    _ => None,
                })
                .collect();
            next_config(observed, desired, core_port.is_some(), &images_before)
        }
    });
    let mut core_edits = Vec::new();
    if let Some(next) = &config {
        core_edits.push(SpecEdit::SwapConfig {
            target: CONFIG_TARGET.into(),
            from: observed.config.name.clone(),
            to: next.name().to_owned(),
            to_id: match next {
                NextConfig::Reuse { id, .. } => Some(id.clone()),
                NextConfig::Create { .. } => None,
            },
        });
    }
    core_edits.extend(core_port);
    core_edits.extend(core_image);
    if !core_edits.is_empty() {
        core_edits.extend(rollback_on_failure(&observed.core.spec));
    }
    let managed = [desired.settings, desired.live_settings]
        .iter()
        .flat_map(|s| [s.target_port, s.target_ssl_port])
        .collect::<Vec<_>>();
    let proxy_edits = observed
        .proxy
        .as_ref()
        .map(|proxy| proxy_edits(desired.settings, &managed, &proxy.spec))
        .unwrap_or_default();
    let proxy_hold = observed
        .proxy
        .as_ref()
        .filter(|proxy| {
            config.is_some()
                && !proxy_edits.is_empty()
                && spec::config_ref(&proxy.spec, desired.core_writer.proxy_config_path).is_some()
                && replaces_every_task_at_once(&proxy.spec, desired.settings.proxy_replicas)
        })
        .map(|_| desired.core_writer.poll_interval);
    Plan {
        config,
        core_edits,
        proxy_edits,
        proxy_hold,
        awaited_proxy: observed
            .proxy
            .is_none()
            .then(|| desired.settings.proxy_service_name.clone()),
        removed_services: observed.retired.iter().map(|s| s.name.clone()).collect(),
        others,
    }
}

/// The edit that moves `service` to the image `desired` names for it, if another.
fn image_edit(service: &Service, desired: &Desired) -> Option<SpecEdit> {
    let from = spec::image(&service.spec);
    let to = desired.images.get(&service.name)?;
    (*to != from).then(|| SpecEdit::Image {
        from,
        to: to.clone(),
    })
}

/// The images an `upgrade` moves to: for the core and every other observed service whose
/// image is one of Interlock's and not already the target.
pub fn upgraded_images(observed: &Observed, upgrade: &Upgrade) -> BTreeMap<String, String> {
    observed
        .services()
        .filter_map(|service| {
            let from = spec::image(&service.spec);
            let to = upgrade.target_of(&from).filter(|to| *to != from)?;
            Some((service.name.clone(), to))
        })
        .collect()
}

/// The images to put back when returning to the config `target`: for each service, the
/// image it ran before the first run after `target` that moved it (the run recorded them
/// on the config it created).
pub fn images_before(observed: &Observed, target: &str) -> BTreeMap<String, String> {
    let mut images = BTreeMap::new();
    // From the current config back: an earlier run's record overwrites a later one's.
    for config in lineage_since(observed, target) {
        let recorded = config
            .labels
            .get(LABEL_IMAGES)
            .and_then(|text| serde_json::from_str::<BTreeMap<String, String>>(text).ok());
        images.extend(recorded.unwrap_or_default());
    }
    images
}

/// Whether Swarm replaces every task of the proxy in one batch (`UpdateConfig.Parallelism` 0,
/// or at least its replicas, now and as planned). Only then may the run's edits be written onto
/// the core's swap while its rollout has begun: a spec change in the middle of a rollout
/// restarts Swarm's updater, which takes the slots in no fixed order, so with smaller batches
/// it can stop the next task while the one the swap stopped is still down (seen on the lab:
/// every node of a host-mode proxy closed at once for about half a second). With smaller
/// batches the edits go out at once, as the hand runbook sends them, ahead of the swap.
fn replaces_every_task_at_once(proxy_spec: &serde_json::Value, planned_replicas: u64) -> bool {
    let parallelism = spec::update_parallelism(proxy_spec);
    let replicas = spec::replicas(proxy_spec)
        .unwrap_or(0)
        .max(planned_replicas);
    parallelism == 0 || parallelism >= replicas
}

/// The core's gRPC port in host mode: published when an extension goes host mode, and
/// unpublished by a rollback past the config whose run published it (and to a config with
/// no host-mode extension), so a rollback returns the core to what it was.
fn core_port_edit(observed: &Observed, desired: &Desired) -> Option<SpecEdit> {
    let grpc_on_host = CorePort::published(&observed.core.spec);
    let edit = |to: Vec<Port>| {
        Some(SpecEdit::Ports {
            from: grpc_on_host.clone(),
            to,
        })
    };
    if desired.host_mode {
        return if grpc_on_host.is_empty() {
            edit(vec![CorePort::host()])
        } else {
            None
        };
    }
    let rolled_back_past_it = desired
        .existing
        .is_some_and(|target| lineage_since(observed, &target.name).any(published_core_port));
    if rolled_back_past_it && !grpc_on_host.is_empty() {
        edit(vec![])
    } else {
        None
    }
}

/// The core's gRPC port: what host mode publishes on the core.
struct CorePort;

impl CorePort {
    fn host() -> Port {
        Port {
            protocol: "tcp".into(),
            target: CORE_GRPC_PORT,
            published: None,
            mode: "host".into(),
        }
    }

    /// The core's entries for its gRPC port in host mode.
    fn published(core_spec: &serde_json::Value) -> Vec<Port> {
        spec::ports(core_spec)
            .into_iter()
            .filter(|port| port.target == CORE_GRPC_PORT && port.mode == "host")
            .collect()
    }
}

/// Whether the run that created `config` published the core's gRPC port.
fn published_core_port(config: &ConfigObject) -> bool {
    config.labels.contains_key(LABEL_CORE_PORT)
}

/// The configs from the current one back along the recorded parents, up to (not including)
/// `ancestor`; all of them when `ancestor` is not on the way.
fn lineage_since<'a>(
    observed: &'a Observed,
    ancestor: &'a str,
) -> impl Iterator<Item = &'a ConfigObject> + 'a {
    let mut next = Some(&observed.config);
    let mut seen = Vec::new();
    std::iter::from_fn(move || {
        let config = next
            .take()
            .filter(|c| c.name != ancestor && !seen.contains(&c.id))?;
        seen.push(config.id.clone());
        next = config
            .labels
            .get(LABEL_PARENT)
            .and_then(|parent| observed.lineage.iter().find(|c| &c.name == parent));
        Some(config)
    })
}

/// [`proxy_edits`] for a proxy whose only ports of the extension are those of its settings
/// now: one the core created from them, or one `status` compares with the live config.
pub fn own_proxy_edits(
    settings: &ExtensionSettings,
    proxy_spec: &serde_json::Value,
) -> Vec<SpecEdit> {
    proxy_edits(
        settings,
        &[settings.target_port, settings.target_ssl_port],
        proxy_spec,
    )
}

/// The edits that make a proxy spec match an extension's settings (empty = it matches). The
/// published ports of the `managed` target ports are the extension's; other entries stay.
pub fn proxy_edits(
    settings: &ExtensionSettings,
    managed: &[u16],
    proxy_spec: &serde_json::Value,
) -> Vec<SpecEdit> {
    let mut edits = Vec::new();
    let replicas = spec::replicas(proxy_spec).unwrap_or(0);
    if replicas != settings.proxy_replicas {
        edits.push(SpecEdit::Replicas {
            from: replicas,
            to: settings.proxy_replicas,
        });
    }
    let (current, wanted) = (
        normalized(&spec::constraints(proxy_spec)),
        normalized(&settings.proxy_constraints),
    );
    if current != wanted {
        edits.push(SpecEdit::Constraints {
            from: spec::constraints(proxy_spec),
            to: wanted,
        });
    }
    let mut current_ports: Vec<Port> = spec::ports(proxy_spec)
        .into_iter()
        .filter(|port| managed.contains(&port.target))
        .collect();
    current_ports.sort();
    let wanted_ports = desired_proxy_ports(settings);
    if current_ports != wanted_ports {
        // A task that survived an earlier constraints-only update keeps its old ports on a
        // ports-only change; verification finds such tasks and re-creates only then.
        edits.push(SpecEdit::Ports {
            from: current_ports,
            to: wanted_ports,
        });
    }
    if !edits.is_empty() {
        edits.extend(rollback_on_failure(proxy_spec));
    }
    edits
}

/// Makes Swarm roll an update back by itself when its tasks fail (its default is to pause,
/// leaving the service half-updated): set on every service this tool updates.
fn rollback_on_failure(spec: &serde_json::Value) -> Option<SpecEdit> {
    let failure_action = spec::failure_action(spec);
    (failure_action != "rollback").then(|| SpecEdit::FailureAction {
        from: failure_action,
        to: "rollback".into(),
    })
}

/// The ports an extension's proxy must publish, sorted.
pub fn desired_proxy_ports(settings: &ExtensionSettings) -> Vec<Port> {
    let mut ports: Vec<Port> = [
        (settings.published_port, settings.target_port),
        (settings.published_ssl_port, settings.target_ssl_port),
    ]
    .into_iter()
    .filter_map(|(published, target)| {
        published.map(|published| Port {
            protocol: "tcp".into(),
            target,
            published: Some(published),
            mode: settings.publish_mode.as_str().into(),
        })
    })
    .collect();
    ports.sort();
    ports
}

/// Constraints in Swarm's canonical spelling, without duplicates, sorted (as the docker
/// CLI stores them), so equal sets compare equal.
fn normalized(constraints: &[String]) -> Vec<String> {
    let mut out: Vec<String> = constraints
        .iter()
        .map(|c| {
            Constraint::parse("constraint", c)
                .map_or_else(|_| c.trim().to_owned(), |c| c.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn next_config(
    observed: &Observed,
    desired: &Desired,
    publishes_core_port: bool,
    images_before: &BTreeMap<String, String>,
) -> NextConfig {
    let digest = content_digest(desired.text);
    let existing = observed
        .lineage
        .iter()
        .find(|config| config.labels.get(LABEL_DIGEST) == Some(&digest));
    if let Some(config) = existing {
        return NextConfig::Reuse {
            name: config.name.clone(),
            id: config.id.clone(),
        };
    }
    let names: Vec<&str> = observed.lineage.iter().map(|c| c.name.as_str()).collect();
    let mut labels: BTreeMap<String, String> = observed
        .config
        .labels
        .iter()
        .filter(|(key, _)| !key.starts_with("com.docker.interlockctl."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_DIGEST.into(), digest);
    labels.insert(LABEL_PARENT.into(), observed.config.name.clone());
    labels.insert(LABEL_OPERATION.into(), desired.operation.into());
    if publishes_core_port {
        labels.insert(LABEL_CORE_PORT.into(), format!("{}", CorePort::host()));
    }
    if !images_before.is_empty() {
        labels.insert(
            LABEL_IMAGES.into(),
            serde_json::to_string(images_before).unwrap_or_default(),
        );
    }
    NextConfig::Create {
        name: next_config_name(&observed.config.name, &names),
        labels,
    }
}

/// `sha256:<hex>` of a config's content.
pub fn content_digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

fn short_digest(text: &str) -> String {
    content_digest(text).chars().take(19).collect()
}

/// The lineage's base name: the name without a trailing `-N`.
pub fn lineage_base(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((base, number))
            if !base.is_empty()
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => name,
    }
}

/// Whether `name` belongs to the lineage `base` (`base` itself or `base-N`).
pub fn in_lineage(base: &str, name: &str) -> bool {
    name == base || lineage_base(name) == base && name.len() > base.len()
}

/// The next free name: `<base>-<max N + 1>` over the lineage, counting a name without a
/// number as version 1. `com.docker.ucp.interlock.conf-9` -> `...conf-10`.
pub fn next_config_name(current: &str, existing: &[&str]) -> String {
    let base = lineage_base(current);
    let highest = existing
        .iter()
        .chain(std::iter::once(&current))
        .filter_map(|name| lineage_number(base, name))
        .max()
        .unwrap_or(1);
    format!("{base}-{}", highest + 1)
}

/// A config's version in the lineage `base`: `base-N` is N, `base` itself is 1.
pub fn lineage_number(base: &str, name: &str) -> Option<u64> {
    if name == base {
        return Some(1);
    }
    name.strip_prefix(base)?.strip_prefix('-')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_names_follow_the_highest_number() {
        let conf = "com.docker.ucp.interlock.conf";
        assert_eq!(
            next_config_name(&format!("{conf}-1"), &[]),
            format!("{conf}-2")
        );
        assert_eq!(
            next_config_name(
                &format!("{conf}-2"),
                &[&format!("{conf}-1"), &format!("{conf}-9"), "other-20"]
            ),
            format!("{conf}-10")
        );
        assert_eq!(
            next_config_name("my-interlock-conf", &[]),
            "my-interlock-conf-2"
        );
        assert_eq!(
            next_config_name(
                "service.interlock.conf.v2",
                &["service.interlock.conf.v2-4"]
            ),
            "service.interlock.conf.v2-5"
        );
        assert_eq!(
            next_config_name("a-b-c-7", &["a-b-c-12", "a-b-c-x"]),
            "a-b-c-13"
        );
    }

    #[test]
    fn lineage_membership() {
        assert!(in_lineage("conf", "conf"));
        assert!(in_lineage("conf", "conf-3"));
        assert!(!in_lineage("conf", "conf-x"));
        assert!(!in_lineage("conf", "confx-3"));
        assert!(!in_lineage("conf", "conf-3-4"));
    }

    #[test]
    fn digest_is_stable() {
        assert_eq!(
            content_digest("ab"),
            "sha256:fb8e20fc2e4c3f248c60c39bd652f3c1347298bb977b8b4d5903b85055620603"
        );
    }
}

#[cfg(test)]
mod plan_tests {
    use serde_json::json;

    use super::*;
    use crate::interlock::config::InterlockConfig;
    use crate::testing::{
        CONF_1, host_mode, observed, pinned, plan_after, settings_after, tcp_port as port,
    };

    /// The proxy's edits wait for the core's swap only where one comes (a new config, and a
    /// proxy that mounts the core's rendering at `ProxyConfigPath`) and where Swarm replaces
    /// every proxy task in one batch.
    #[test]
    fn proxy_edits_are_held_for_the_core_only_on_a_proxy_the_core_writes() {
        let mut observed = observed();
        assert_eq!(
            plan_after(&observed, pinned).proxy_hold,
            None,
            "mounts nothing"
        );
        observed.proxy.as_mut().unwrap().spec["TaskTemplate"]["ContainerSpec"]["Configs"] = json!([{
            "File": { "Name": "/etc/nginx/nginx.conf" },
            "ConfigID": "p1",
            "ConfigName": "com.docker.interlock.proxy.1"
        }]);
        let held = plan_after(&observed, pinned);
        assert_eq!(held.proxy_hold, Some(std::time::Duration::from_secs(3)));
        assert!(held.config.is_some() && !held.proxy_edits.is_empty());
        let proxy = &mut observed.proxy.as_mut().unwrap().spec;
        proxy["UpdateConfig"]["Parallelism"] = json!(1);
        assert_eq!(
            plan_after(&observed, pinned).proxy_hold,
            None,
            "one task at a time: the edits go out ahead of the swap"
        );
        let proxy = &mut observed.proxy.as_mut().unwrap().spec;
        proxy["UpdateConfig"]["Parallelism"] = json!(2);
        assert!(
            plan_after(&observed, pinned).proxy_hold.is_some(),
            "2 replicas at once"
        );
        observed.config_text = pinned(crate::testing::CONFIG);
        let unchanged = plan_after(&observed, pinned);
        assert!(unchanged.config.is_none() && !unchanged.proxy_edits.is_empty());
        assert_eq!(
            unchanged.proxy_hold, None,
            "no new config: the core swaps nothing"
        );
    }

    #[test]
    fn a_changed_config_becomes_the_next_config_and_the_proxy_follows() {
        let observed = observed();
        let plan = plan_after(&observed, pinned);
        let labels = BTreeMap::from([
            (
                "com.docker.interlockctl.digest".to_owned(),
                content_digest(&pinned(crate::testing::CONFIG)),
            ),
            (
                "com.docker.interlockctl.operation".to_owned(),
                "test".to_owned(),
            ),
            (
                "com.docker.interlockctl.parent".to_owned(),
                CONF_1.to_owned(),
            ),
            ("com.docker.ucp.InstanceID".to_owned(), "x".to_owned()),
        ]);
        assert_eq!(
            plan,
            Plan {
                config: Some(NextConfig::Create {
                    name: "com.docker.ucp.interlock.conf-2".into(),
                    labels,
                }),
                core_edits: vec![
                    SpecEdit::SwapConfig {
                        target: CONFIG_TARGET.into(),
                        from: CONF_1.into(),
                        to: "com.docker.ucp.interlock.conf-2".into(),
                        to_id: None,
                    },
                    SpecEdit::FailureAction {
                        from: "pause".into(),
                        to: "rollback".into()
                    },
                ],
                proxy_edits: vec![SpecEdit::Constraints {
                    from: vec![
                        "node.labels.com.docker.ucp.orchestrator.swarm==true".into(),
                        "node.platform.os==linux".into()
                    ],
                    to: vec!["node.labels.role==dtr".into()],
                }],
                awaited_proxy: None,
                removed_services: vec![],
                others: vec![],
                proxy_hold: None,
            }
        );
    }

    #[test]
    fn host_mode_publishes_the_core_grpc_port_and_moves_only_the_proxy_ports() {
        let mut observed = observed();
        // An entry the extension does not manage stays out of the edit.
        observed.proxy.as_mut().unwrap().spec["EndpointSpec"]["Ports"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Protocol": "tcp", "TargetPort": 9100, "PublishedPort": 9100, "PublishMode": "ingress"}));
        let plan = plan_after(&observed, host_mode);
        assert_eq!(
            plan.core_edits[1..],
            [
                SpecEdit::Ports {
                    from: vec![],
                    to: vec![port(None, 8080, "host")]
                },
                SpecEdit::FailureAction {
                    from: "pause".into(),
                    to: "rollback".into()
                },
            ]
        );
        let Some(NextConfig::Create { labels, .. }) = &plan.config else {
            panic!("a new config: {plan:?}");
        };
        assert_eq!(labels[LABEL_CORE_PORT], "8080/tcp (host)");
        assert_eq!(
            plan.proxy_edits,
            [SpecEdit::Ports {
                from: vec![
                    port(Some(80), 80, "ingress"),
                    port(Some(8443), 443, "ingress")
                ],
                to: vec![port(Some(7080), 80, "host"), port(Some(7443), 443, "host")],
            }],
            "no forced re-creation: verification forces only tasks that are stale"
        );
    }

    #[test]
    fn a_core_update_that_only_publishes_the_port_rolls_back_on_failure_too() {
        let mut observed = observed();
        observed.config_text = host_mode(crate::testing::CONFIG);
        let plan = plan_after(&observed, host_mode);
        assert_eq!(plan.config, None);
        assert_eq!(
            plan.core_edits,
            [
                SpecEdit::Ports {
                    from: vec![],
                    to: vec![port(None, 8080, "host")]
                },
                SpecEdit::FailureAction {
                    from: "pause".into(),
                    to: "rollback".into()
                },
            ]
        );
    }

    #[test]
    fn a_rollback_past_the_run_that_published_the_core_port_unpublishes_it() {
        let mut observed = observed();
        let conf_1 = observed.config.clone();
        let conf_2 = ConfigObject {
            id: "c2".into(),
            name: "com.docker.ucp.interlock.conf-2".into(),
            labels: BTreeMap::from([
                (LABEL_PARENT.to_owned(), CONF_1.to_owned()),
                (LABEL_CORE_PORT.to_owned(), "8080/tcp (host)".to_owned()),
            ]),
            created_at: String::new(),
        };
        let conf_3 = ConfigObject {
            id: "c3".into(),
            name: "com.docker.ucp.interlock.conf-3".into(),
            labels: BTreeMap::from([(LABEL_PARENT.to_owned(), conf_2.name.clone())]),
            created_at: String::new(),
        };
        observed.lineage = vec![conf_1.clone(), conf_2.clone(), conf_3.clone()];
        observed.config = conf_3;
        observed.config_text = host_mode(crate::testing::CONFIG);
        observed.core.spec["EndpointSpec"] =
            json!({"Ports": [{"Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host"}]});
        let (text, settings) = settings_after(str::to_owned);
        let plan_to = |existing: &ConfigObject| {
            build(
                &observed,
                &Desired {
                    text: &text,
                    existing: Some(existing),
                    settings: &settings,
                    live_settings: &settings,
                    host_mode: false,
                    operation: "rollback",
                    images: &BTreeMap::new(),
                    core_writer: crate::testing::CORE_WRITER,
                },
            )
        };
        let unpublish = SpecEdit::Ports {
            from: vec![port(None, 8080, "host")],
            to: vec![],
        };
        assert!(plan_to(&conf_1).core_edits.contains(&unpublish));
        assert!(
            !plan_to(&conf_2).core_edits.contains(&unpublish),
            "conf-2's own run published it; returning to conf-2 keeps it"
        );
    }

    #[test]
    fn nothing_to_do_when_config_and_proxy_already_match() {
        assert!(plan_after(&observed(), str::to_owned).is_empty());
    }

    #[test]
    fn a_proxy_that_does_not_exist_yet_is_awaited_and_retired_services_are_removed() {
        let mut observed = observed();
        observed.proxy = None;
        let text = crate::testing::CONFIG;
        let plan = plan_after(&observed, str::to_owned);
        assert_eq!(
            (plan.awaited_proxy.as_deref(), plan.proxy_edits.len()),
            (Some("ucp-interlock-proxy"), 0)
        );
        assert!(plan.is_empty(), "awaiting the core's proxy is no change");
        let kinds: Vec<&str> = plan
            .actions(&observed, text)
            .iter()
            .map(|a| a.kind)
            .collect();
        assert_eq!(kinds, ["await_service"]);

        let mut retiring = crate::testing::observed();
        retiring.retired.push(crate::testing::service(
            "old",
            serde_json::json!({"Name": "ucp-interlock-proxy-old"}),
        ));
        let plan = plan_after(&retiring, str::to_owned);
        assert_eq!(plan.removed_services, ["ucp-interlock-proxy-old"]);
        assert!(!plan.is_empty());
        assert_eq!(
            plan.actions(&retiring, text)[0].target,
            "ucp-interlock-proxy-old"
        );
    }

    /// The lab's extension service, on the old image.
    fn extension() -> Service {
        crate::testing::service(
            "extension",
            json!({
                "Name": "ucp-interlock-extension",
                "TaskTemplate": {"ContainerSpec": {"Image": "docker/ucp-interlock-extension:3.0.14"}}
            }),
        )
    }

    fn upgrade_plan(observed: &Observed, upgrade: &Upgrade) -> Plan {
        let mut config = InterlockConfig::parse("test", crate::testing::CONFIG).expect("parses");
        config.move_images(upgrade);
        let text = config.text();
        let settings = config.extension("default").expect("valid");
        build(
            observed,
            &Desired {
                text: &text,
                existing: None,
                settings: &settings,
                live_settings: &settings,
                host_mode: false,
                operation: "upgrade",
                images: &upgraded_images(observed, upgrade),
                core_writer: crate::testing::CORE_WRITER,
            },
        )
    }

    #[test]
    fn an_upgrade_moves_the_core_with_its_config_then_the_extension_and_the_proxy() {
        let mut observed = observed();
        observed.others = vec![extension(), observed.proxy.clone().unwrap()];
        let upgrade = Upgrade::parse("3.8.0", Some("mirantis")).unwrap();
        let plan = upgrade_plan(&observed, &upgrade);
        assert_eq!(
            plan.core_edits[1..],
            [
                SpecEdit::Image {
                    from: "docker/ucp-interlock:3.0.14".into(),
                    to: "mirantis/ucp-interlock:3.8.0".into()
                },
                SpecEdit::FailureAction {
                    from: "pause".into(),
                    to: "rollback".into()
                },
            ]
        );
        assert!(matches!(plan.core_edits[0], SpecEdit::SwapConfig { .. }));
        assert_eq!(
            plan.others,
            [
                ServiceEdits {
                    service: "ucp-interlock-extension".into(),
                    edits: vec![
                        SpecEdit::Image {
                            from: "docker/ucp-interlock-extension:3.0.14".into(),
                            to: "mirantis/ucp-interlock-extension:3.8.0".into()
                        },
                        SpecEdit::FailureAction {
                            from: "pause".into(),
                            to: "rollback".into()
                        },
                    ],
                },
                ServiceEdits {
                    service: "ucp-interlock-proxy".into(),
                    edits: vec![SpecEdit::Image {
                        from: "docker/ucp-interlock-proxy:3.0.14".into(),
                        to: "mirantis/ucp-interlock-proxy:3.8.0".into()
                    }],
                },
            ]
        );
        assert_eq!(plan.proxy_edits, [], "the proxy moves once, after the core");
        let Some(NextConfig::Create { labels, .. }) = &plan.config else {
            panic!("a new config: {plan:?}");
        };
        assert_eq!(
            labels[LABEL_IMAGES],
            r#"{"ucp-interlock":"docker/ucp-interlock:3.0.14","ucp-interlock-extension":"docker/ucp-interlock-extension:3.0.14","ucp-interlock-proxy":"docker/ucp-interlock-proxy:3.0.14"}"#
        );
        let targets: Vec<String> = plan
            .actions(&observed, "")
            .into_iter()
            .map(|a| a.target)
            .collect();
        assert_eq!(
            targets[1..],
            [
                "ucp-interlock",
                "ucp-interlock-extension",
                "ucp-interlock-proxy"
            ]
        );

        // Once upgraded, there is nothing left to do.
        let mut upgraded = observed.clone();
        for service in std::iter::once(&mut upgraded.core).chain(&mut upgraded.others) {
            let to = upgrade.target_of(&spec::image(&service.spec)).unwrap();
            service.spec["TaskTemplate"]["ContainerSpec"]["Image"] = json!(to);
        }
        let mut config = InterlockConfig::parse("test", crate::testing::CONFIG).unwrap();
        config.move_images(&upgrade);
        upgraded.config_text = config.text();
        assert!(upgrade_plan(&upgraded, &upgrade).is_empty());
    }

    #[test]
    fn a_return_to_a_config_before_upgrades_puts_back_the_earliest_recorded_images() {
        let mut observed = observed();
        let labelled = |id: &str, parent: &str, images: &str| ConfigObject {
            id: id.into(),
            name: format!("com.docker.ucp.interlock.conf-{}", &id[1..]),
            labels: BTreeMap::from([
                (LABEL_PARENT.to_owned(), parent.to_owned()),
                (LABEL_IMAGES.to_owned(), images.to_owned()),
            ]),
            created_at: String::new(),
        };
        let conf_2 = labelled(
            "c2",
            CONF_1,
            r#"{"ucp-interlock":"docker/ucp-interlock:3.0.14"}"#,
        );
        let conf_3 = labelled(
            "c3",
            &conf_2.name,
            r#"{"ucp-interlock":"docker/ucp-interlock:3.7.0","ucp-interlock-proxy":"docker/ucp-interlock-proxy:3.7.0"}"#,
        );
        observed.lineage = vec![observed.config.clone(), conf_2.clone(), conf_3.clone()];
        observed.config = conf_3;
        assert_eq!(
            images_before(&observed, CONF_1),
            BTreeMap::from([
                (
                    "ucp-interlock".to_owned(),
                    "docker/ucp-interlock:3.0.14".to_owned()
                ),
                (
                    "ucp-interlock-proxy".to_owned(),
                    "docker/ucp-interlock-proxy:3.7.0".to_owned()
                ),
            ])
        );
        assert_eq!(
            images_before(&observed, &conf_2.name)["ucp-interlock"],
            "docker/ucp-interlock:3.7.0"
        );
    }

    #[test]
    fn identical_content_from_an_interrupted_run_is_reused() {
        let mut observed = observed();
        let (text, _) = settings_after(pinned);
        observed.lineage.push(ConfigObject {
            id: "c2".into(),
            name: "com.docker.ucp.interlock.conf-2".into(),
            labels: BTreeMap::from([(LABEL_DIGEST.to_owned(), content_digest(&text))]),
            created_at: String::new(),
        });
        let plan = plan_after(&observed, pinned);
        assert_eq!(
            plan.config,
            Some(NextConfig::Reuse {
                name: "com.docker.ucp.interlock.conf-2".into(),
                id: "c2".into()
            })
        );
        assert!(
            matches!(&plan.core_edits[0], SpecEdit::SwapConfig { to_id: Some(id), .. } if id == "c2")
        );
    }
}

//! The config edits of `pin-proxy`, `host-mode`, `apply`, `rollback` and `cluster`, shared
//! by the offline and the live path so both produce byte-identical TOML for the same
//! request. Pure.

use crate::error::{Error, Result};
use crate::interlock::cluster::{self, NewCluster};
use crate::interlock::config::{InterlockConfig, KeyChange, PublishMode};
use crate::interlock::input::{self, Constraint, InputError, NodeLabel};
use crate::swarm::ConfigObject;

/// A validated request to change the config.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Runbook part 1: pin the proxy to labelled nodes.
    PinProxy {
        /// The dedicated nodes' label.
        label: NodeLabel,
        /// Explicit `--replicas`, else one per labelled node (live) or unchanged (offline).
        replicas: Option<u64>,
        /// New extension `Constraints`, if any were given.
        extension_constraints: Vec<String>,
    },
    /// Runbook part 2: host-mode publishing on these ports.
    HostMode {
        /// `PublishedPort`.
        http: u16,
        /// `PublishedSSLPort`.
        https: u16,
    },
    /// `apply FILE` or `rollback`: the whole desired config.
    Replace {
        /// Where the desired config came from, for messages.
        source: String,
        /// Its text, used verbatim.
        text: String,
        /// The config object that holds this text already (rollback), so none is created.
        existing: Option<ConfigObject>,
    },
    /// `cluster add`: a new extension copied from the selected one.
    AddCluster(NewCluster),
    /// `cluster remove`: the extension goes; the run works on another one.
    RemoveCluster {
        /// The extension to remove.
        name: String,
    },
}

/// The edited config and what changed.
#[derive(Debug, Clone)]
pub struct Edited {
    /// The config after the edit.
    pub config: InterlockConfig,
    /// The keys that changed; empty when the config already says this.
    pub changes: Vec<KeyChange>,
    /// Notes for the user that do not stop the run.
    pub warnings: Vec<String>,
}

impl Edit {
    /// The existing config object this edit returns to, if any.
    pub fn existing_config(&self) -> Option<&ConfigObject> {
        match self {
            Edit::Replace { existing, .. } => existing.as_ref(),
            _ => None,
        }
    }

    /// The node label whose Ready, Active nodes give the default proxy replicas.
    pub fn node_label(&self) -> Option<&NodeLabel> {
        match self {
            Edit::PinProxy { label, .. } => Some(label),
            Edit::AddCluster(cluster) => Some(&cluster.label),
            _ => None,
        }
    }

    /// The extension of the live (or input) config a run observes: the one `requested`
    /// (`--extension`; `--from` for `cluster add`) or the only one or `default`; for
    /// `cluster remove`, one that stays.
    pub fn observed_extension(
        &self,
        config: &InterlockConfig,
        requested: Option<&str>,
    ) -> Result<String> {
        match self {
            Edit::RemoveCluster { name } => cluster::remaining_extension(config, name, requested),
            _ => config
                .select_extension(requested)
                .map_err(|e| Error::refused(&e)),
        }
    }

    /// The extension whose proxy the rest of the run plans for and verifies: the new
    /// cluster for `cluster add`, else the observed one.
    pub fn target_extension(&self, observed: &str) -> String {
        match self {
            Edit::AddCluster(cluster) => cluster.name.clone(),
            _ => observed.to_owned(),
        }
    }

    /// The extension this edit removes, if any.
    pub fn removed_extension(&self) -> Option<&str> {
        match self {
            Edit::RemoveCluster { name } => Some(name),
            _ => None,
        }
    }

    /// Validates `pin-proxy`'s flags.
    pub fn pin_proxy(
        label: &str,
        replicas: Option<u64>,
        extension_constraints: &[String],
    ) -> Result<Self, InputError> {
        let label = NodeLabel::parse(label)?;
        let replicas = replicas.map(input::replicas).transpose()?;
        let extension_constraints = extension_constraints
            .iter()
            .map(|expr| Constraint::parse("--extension-constraint", expr).map(|c| c.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(Edit::PinProxy {
            label,
            replicas,
            extension_constraints,
        })
    }

    /// Validates `host-mode`'s flags.
    pub fn host_mode(http: i64, https: i64) -> Result<Self, InputError> {
        let (http, https) = input::http_https_ports(http, https)?;
        Ok(Edit::HostMode { http, https })
    }

    /// The config after this edit of its extension `extension` (the observed one, see
    /// [`Edit::observed_extension`]). `labelled_nodes` is the number of Ready, Active nodes
    /// carrying the edit's node label, when a swarm was asked.
    pub fn edited_config(
        &self,
        config: &InterlockConfig,
        extension: &str,
        labelled_nodes: Option<u64>,
    ) -> Result<Edited> {
        let mut next = config.clone();
        let mut warnings = Vec::new();
        let changes = match self {
            Edit::PinProxy {
                label,
                replicas,
                extension_constraints,
            } => {
                let replicas = replicas.or(labelled_nodes);
                if replicas.is_none() {
                    warnings.push(replicas_unknown("left as it is"));
                }
                let extension_constraints =
                    (!extension_constraints.is_empty()).then_some(extension_constraints);
                [
                    next.set_proxy_constraints(extension, &[label.constraint().to_string()]),
                    replicas.and_then(|n| next.set_proxy_replicas(extension, n)),
                    extension_constraints
                        .and_then(|c| next.set_extension_constraints(extension, c)),
                ]
                .into_iter()
                .flatten()
                .collect()
            }
            Edit::HostMode { http, https } => [
                next.set_publish_mode(extension, PublishMode::Host),
                next.set_published_port(extension, *http),
                next.set_published_ssl_port(extension, *https),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Edit::Replace { source, text, .. } => {
                let source = if source == "-" { "stdin" } else { source };
                next = InterlockConfig::parse(source, text).map_err(|e| Error::refused(&e))?;
                next.changes_from(config)
            }
            Edit::AddCluster(new) => {
                let replicas = new.replicas.or(labelled_nodes);
                if replicas.is_none() {
                    warnings.push(replicas_unknown(&format!(
                        "copied from [Extensions.{extension}]"
                    )));
                }
                new.add_to(&mut next, extension, replicas)?
            }
            Edit::RemoveCluster { name } => cluster::remove_from(&mut next, name)?,
        };
        next.extension(&self.target_extension(extension))
            .map_err(|e| Error::refused(&e))?;
        Ok(Edited {
            config: next,
            changes,
            warnings,
        })
    }
}

fn replicas_unknown(what: &str) -> String {
    format!(
        "ProxyReplicas {what}: offline, the labelled nodes cannot be counted; pass --replicas N"
    )
}

/// A unified diff between two config texts, empty when they are equal.
pub fn unified_diff(before: &str, after: &str, before_name: &str, after_name: &str) -> String {
    if before == after {
        return String::new();
    }
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(before_name, after_name)
        .to_string()
}

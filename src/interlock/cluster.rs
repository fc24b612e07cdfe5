//! Service clusters: several `[Extensions.NAME]` tables, each with its own extension and
//! proxy services, its own nodes and its own ports, so a change in one cluster's routes
//! reconfigures only that cluster's proxy. Pure: edits of the config document.
//!
//! Interlock needs every cluster's services to have names no other extension uses, and
//! (as Swarm does) every published port to be unique; a config that breaks either takes a
//! cluster down when the core loads it. `cluster add` names the services after the cluster
//! (`ucp-interlock-proxy-NAME`, `ucp-interlock-extension-NAME`) and refuses a name, a
//! service name, a `ServiceCluster` or a port another extension already uses, before anything
//! changes: two extensions serving one cluster would both route its services.

use crate::error::{Diagnostic, Error, Problem, Result};
use crate::interlock::config::{ConfigError, InterlockConfig, KeyChange};
use crate::interlock::edit::HostPorts;
use crate::interlock::input::{self, InputError, NodeLabel};

/// How a cluster's proxy service is named: this prefix and the cluster's name.
pub const PROXY_SERVICE_PREFIX: &str = "ucp-interlock-proxy-";
/// How a cluster's extension service is named: this prefix and the cluster's name.
pub const EXTENSION_SERVICE_PREFIX: &str = "ucp-interlock-extension-";
/// Swarm's limit on a service name's length.
const SERVICE_NAME_MAX: usize = 63;

/// Why a cluster cannot be added or removed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClusterError {
    /// An extension of that name exists.
    #[error("[Extensions.{0}] exists already")]
    Exists(String),
    /// Another extension names the service the new cluster would get.
    #[error("{service} is already the {key} of [Extensions.{extension}]")]
    ServiceNameTaken {
        /// The service name.
        service: String,
        /// `ServiceName` or `ProxyServiceName`.
        key: &'static str,
        /// The extension that has it.
        extension: String,
    },
    /// Another extension serves the cluster already (its `ServiceCluster`).
    #[error("[Extensions.{extension}] already serves ServiceCluster \"{cluster}\"")]
    ServiceClusterTaken {
        /// The cluster name.
        cluster: String,
        /// The extension that serves it.
        extension: String,
    },
    /// Another extension publishes the port.
    #[error("port {port} is already the {key} of [Extensions.{extension}]")]
    PortTaken {
        /// The port.
        port: u16,
        /// `PublishedPort` or `PublishedSSLPort`.
        key: &'static str,
        /// The extension that has it.
        extension: String,
    },
    /// Interlock needs at least one extension.
    #[error("[Extensions.{0}] is the only extension; Interlock needs at least one")]
    LastExtension(String),
}

impl Diagnostic for ClusterError {
    fn code(&self) -> &'static str {
        match self {
            ClusterError::Exists(_) => "cluster_exists",
            ClusterError::ServiceNameTaken { .. } => "service_name_taken",
            ClusterError::ServiceClusterTaken { .. } => "service_cluster_taken",
            ClusterError::PortTaken { .. } => "port_taken",
            ClusterError::LastExtension(_) => "last_extension",
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            ClusterError::Exists(name) => {
                format!("pick another name, or change it with `--extension {name}` and the other commands")
            }
            ClusterError::ServiceNameTaken { .. } => "pick another cluster name".into(),
            ClusterError::ServiceClusterTaken { extension, .. } => format!(
                "pick another cluster name; services labelled with this cluster are routed by [Extensions.{extension}]'s proxy"
            ),
            ClusterError::PortTaken { .. } => {
                "pick ports no other extension publishes (`--http`, `--https`)".into()
            }
            ClusterError::LastExtension(_) => {
                "add another cluster first (`interlockctl cluster add`), or disable Layer 7 routing in UCP/MKE".into()
            }
        })
    }
}

/// A new service cluster, as `cluster add` asks for it.
#[derive(Debug, Clone)]
pub struct NewCluster {
    /// The cluster's name: its `[Extensions.NAME]` and its `ServiceCluster`.
    pub name: String,
    /// The label of the nodes its proxy runs on.
    pub label: NodeLabel,
    /// Its proxy's host ports.
    pub ports: HostPorts,
    /// `--replicas`, if given.
    pub replicas: Option<u64>,
}

impl NewCluster {
    /// Validates `cluster add`'s flags.
    pub fn parse(
        name: &str,
        label: &str,
        http: i64,
        https: i64,
        replicas: Option<u64>,
    ) -> Result<Self, InputError> {
        check_name(name)?;
        Ok(NewCluster {
            name: name.to_owned(),
            label: NodeLabel::parse(label)?,
            ports: HostPorts::parse(http, https)?,
            replicas: replicas.map(input::replicas).transpose()?,
        })
    }

    /// Its proxy service: `ucp-interlock-proxy-NAME`.
    pub fn proxy_service_name(&self) -> String {
        format!("{PROXY_SERVICE_PREFIX}{}", self.name)
    }

    /// Its extension service: `ucp-interlock-extension-NAME`.
    pub fn service_name(&self) -> String {
        format!("{EXTENSION_SERVICE_PREFIX}{}", self.name)
    }

    /// Adds the cluster to `config` as a copy of `[Extensions.{from}]` with its own
    /// names, cluster, placement, replicas (`replicas`, else the source's) and host-mode
    /// ports. Refuses, changing nothing, when the name, a service name or a port is taken.
    /// A cluster that exists with exactly these settings is no change (a re-run).
    pub fn add_to(
        &self,
        config: &mut InterlockConfig,
        from: &str,
        replicas: Option<u64>,
    ) -> Result<Vec<KeyChange>> {
        let collisions = self.collisions(config, replicas)?;
        if !collisions.is_empty() {
            return Err(Error::refused_all(
                collisions.iter().map(Problem::from_diagnostic).collect(),
            ));
        }
        let before = config.clone();
        if config.copy_extension(from, &self.name) {
            self.set(config, replicas);
        }
        Ok(config.changes_from(&before))
    }

    /// Sets the cluster's own keys in `[Extensions.NAME]`; returns what changed.
    fn set(&self, config: &mut InterlockConfig, replicas: Option<u64>) -> Vec<KeyChange> {
        let name = &self.name;
        let mut changes: Vec<KeyChange> = [
            config.set_service_name(name, &self.service_name()),
            config.set_proxy_service_name(name, &self.proxy_service_name()),
            config.set_service_cluster(name, name),
            config.set_proxy_constraints(name, &[self.label.constraint().to_string()]),
            replicas.and_then(|n| config.set_proxy_replicas(name, n)),
        ]
        .into_iter()
        .flatten()
        .collect();
        changes.extend(self.ports.apply(config, name));
        changes
    }

    /// Everything another extension of `config` already uses; an extension of the same
    /// name counts unless it has exactly the cluster's settings.
    fn collisions(
        &self,
        config: &InterlockConfig,
        replicas: Option<u64>,
    ) -> Result<Vec<ClusterError>> {
        let names = config.extension_names().map_err(|e| Error::refused(&e))?;
        let mut found = Vec::new();
        for extension in names {
            if extension == self.name {
                if !self.set(&mut config.clone(), replicas).is_empty() {
                    found.push(ClusterError::Exists(extension));
                }
                continue;
            }
            if config.service_cluster(&extension).as_deref() == Some(self.name.as_str()) {
                found.push(ClusterError::ServiceClusterTaken {
                    cluster: self.name.clone(),
                    extension: extension.clone(),
                });
            }
            let services = [
                ("ServiceName", config.extension_service_name(&extension)),
                ("ProxyServiceName", config.proxy_service_name(&extension)),
            ];
            for (key, service) in services {
                if service == self.service_name() || service == self.proxy_service_name() {
                    found.push(ClusterError::ServiceNameTaken {
                        service,
                        key,
                        extension: extension.clone(),
                    });
                }
            }
            let Ok(settings) = config.extension(&extension) else {
                continue;
            };
            let ports = [
                ("PublishedPort", settings.published_port),
                ("PublishedSSLPort", settings.published_ssl_port),
            ];
            for (key, port) in ports {
                if let Some(port) = port.filter(|p| [self.ports.http, self.ports.https].contains(p))
                {
                    found.push(ClusterError::PortTaken {
                        port,
                        key,
                        extension: extension.clone(),
                    });
                }
            }
        }
        Ok(found)
    }
}

/// The extension a `cluster remove NAME` run observes and verifies: `requested` unless it
/// is NAME, else the first other one. Refuses a NAME that does not exist or is the last.
pub fn remaining_extension(
    config: &InterlockConfig,
    name: &str,
    requested: Option<&str>,
) -> Result<String> {
    let names = config.extension_names().map_err(|e| Error::refused(&e))?;
    if !names.iter().any(|n| n == name) {
        return Err(Error::refused(&ConfigError::ExtensionNotFound {
            source_name: config.source_name().to_owned(),
            name: name.to_owned(),
            available: names.join(", "),
        }));
    }
    if let Some(requested) = requested.filter(|r| *r != name) {
        return config
            .select_extension(Some(requested))
            .map_err(|e| Error::refused(&e));
    }
    names
        .into_iter()
        .find(|n| n != name)
        .ok_or_else(|| Error::refused(&ClusterError::LastExtension(name.to_owned())))
}

/// The services `[Extensions.{name}]` names (its proxy and extension service) that no other
/// extension names: what removing it leaves running without a use, since Interlock does not
/// remove a service itself.
pub fn services_only_named_by(config: &InterlockConfig, name: &str) -> Vec<String> {
    let names_of = |extension: &str| {
        [
            config.proxy_service_name(extension),
            config.extension_service_name(extension),
        ]
    };
    let still_named: Vec<String> = config
        .extension_names()
        .unwrap_or_default()
        .iter()
        .filter(|other| *other != name)
        .flat_map(|other| names_of(other))
        .collect();
    names_of(name)
        .into_iter()
        .filter(|service| !still_named.contains(service))
        .collect()
}

/// Removes `[Extensions.{name}]`; refuses one that does not exist or is the last.
pub fn remove_from(config: &mut InterlockConfig, name: &str) -> Result<Vec<KeyChange>> {
    remaining_extension(config, name, None)?;
    let before = config.clone();
    config.remove_extension(name);
    Ok(config.changes_from(&before))
}

/// A cluster name must be a bare TOML key and, with the proxy prefix, a valid and short
/// enough Swarm service name.
fn check_name(name: &str) -> Result<(), InputError> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let fits = PROXY_SERVICE_PREFIX.len() + name.len() <= SERVICE_NAME_MAX
        && EXTENSION_SERVICE_PREFIX.len() + name.len() <= SERVICE_NAME_MAX;
    if valid_chars && starts_well && fits {
        Ok(())
    } else {
        Err(InputError::ClusterName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interlock::config::PublishMode;

    fn fixture(stem: &str) -> InterlockConfig {
        let path = format!(
            "{}/fixtures/configs/valid/{stem}.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        InterlockConfig::parse("clusters.toml", &std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn cluster(name: &str, http: i64, https: i64) -> NewCluster {
        NewCluster::parse(name, "region=eu", http, https, None).unwrap()
    }

    fn codes(error: Error) -> Vec<String> {
        error.problems.into_iter().map(|p| p.code).collect()
    }

    #[test]
    fn a_cluster_is_a_copy_with_its_own_names_placement_and_host_ports() {
        let mut config = fixture("service-clusters");
        let before = config.text();
        let eu = cluster("eu", 11080, 11443);
        let changes = eu.add_to(&mut config, "us-west", Some(3)).unwrap();
        assert!(config.text().starts_with(&before), "nothing else moves");
        let settings = config.extension("eu").unwrap();
        assert_eq!(settings.proxy_service_name, "ucp-interlock-proxy-eu");
        assert_eq!(settings.proxy_constraints, ["node.labels.region==eu"]);
        assert_eq!(settings.proxy_replicas, 3);
        assert_eq!(settings.publish_mode, PublishMode::Host);
        assert_eq!(
            (settings.published_port, settings.published_ssl_port),
            (Some(11080), Some(11443))
        );
        assert_eq!(
            config.extension_service_name("eu"),
            "ucp-interlock-extension-eu"
        );
        assert!(config.text().contains("    ServiceCluster = \"eu\"\n"));
        // Copied from us-west: its extension constraints and nginx settings.
        assert_eq!(
            settings.constraints,
            config.extension("us-west").unwrap().constraints
        );
        assert!(
            changes
                .iter()
                .any(|c| c.key == "Extensions.eu.Config.MaxConnections" && c.before.is_none())
        );
        assert!(changes.iter().all(|c| c.key.starts_with("Extensions.eu.")));

        // Adding it again with the same settings is no change (a re-run).
        let added = config.text();
        assert_eq!(eu.add_to(&mut config, "us-west", Some(3)).unwrap(), vec![]);
        assert_eq!(config.text(), added);
        // ...with other settings, the name is taken.
        let other = cluster("eu", 12080, 12443);
        assert_eq!(
            codes(other.add_to(&mut config, "us-west", Some(3)).unwrap_err()),
            ["cluster_exists"]
        );
        assert_eq!(config.text(), added);
    }

    #[test]
    fn names_and_ports_of_other_extensions_are_refused_all_at_once() {
        let mut config = fixture("service-clusters");
        let before = config.text();
        // us-west publishes 9080 and 9443; dmz 10080.
        let error = cluster("eu", 9080, 10080)
            .add_to(&mut config, "us-east", None)
            .unwrap_err();
        assert_eq!(codes(error), ["port_taken", "port_taken"]);
        assert_eq!(
            ClusterError::PortTaken {
                port: 9080,
                key: "PublishedPort",
                extension: "us-west".into()
            }
            .to_string(),
            "port 9080 is already the PublishedPort of [Extensions.us-west]"
        );
        let mut taken = InterlockConfig::parse(
            "t.toml",
            "[Extensions.default]\nProxyReplicas = 1\nProxyServiceName = \"ucp-interlock-proxy-eu\"\n",
        )
        .unwrap();
        assert_eq!(
            codes(
                cluster("eu", 1, 2)
                    .add_to(&mut taken, "default", None)
                    .unwrap_err()
            ),
            ["service_name_taken"]
        );
        let mut served = InterlockConfig::parse(
            "s.toml",
            "[Extensions.default]\nProxyReplicas = 1\nServiceCluster = \"eu\"\n",
        )
        .unwrap();
        let error = cluster("eu", 1, 2)
            .add_to(&mut served, "default", None)
            .unwrap_err();
        assert_eq!(
            error.problems[0].message,
            "[Extensions.default] already serves ServiceCluster \"eu\""
        );
        assert_eq!(codes(error), ["service_cluster_taken"]);
        assert_eq!(config.text(), before);
    }

    #[test]
    fn removing_keeps_at_least_one_extension_and_names_the_one_that_stays() {
        let config = fixture("service-clusters");
        assert_eq!(
            remaining_extension(&config, "us-east", None).unwrap(),
            "us-west"
        );
        assert_eq!(
            remaining_extension(&config, "us-west", None).unwrap(),
            "us-east"
        );
        assert_eq!(
            remaining_extension(&config, "us-east", Some("dmz")).unwrap(),
            "dmz"
        );
        assert_eq!(
            remaining_extension(&config, "us-east", Some("us-east")).unwrap(),
            "us-west"
        );
        assert_eq!(
            codes(remaining_extension(&config, "eu", None).unwrap_err()),
            ["extension_not_found"]
        );
        let mut one =
            InterlockConfig::parse("one.toml", "[Extensions.only]\nProxyReplicas = 1\n").unwrap();
        assert_eq!(
            codes(remove_from(&mut one, "only").unwrap_err()),
            ["last_extension"]
        );
        assert_eq!(
            services_only_named_by(&config, "dmz"),
            ["ucp-interlock-proxy-dmz", "ucp-interlock-extension-dmz"]
        );
        // A service another extension names too stays out.
        let shared = InterlockConfig::parse(
            "shared.toml",
            "[Extensions.a]\nProxyReplicas = 1\nProxyServiceName = \"p\"\n[Extensions.b]\nProxyReplicas = 1\nProxyServiceName = \"p\"\nServiceName = \"ext-b\"\n",
        )
        .unwrap();
        assert_eq!(services_only_named_by(&shared, "b"), ["ext-b"]);
        let mut config = config;
        let changes = remove_from(&mut config, "dmz").unwrap();
        assert_eq!(config.extension_names().unwrap(), ["us-east", "us-west"]);
        assert!(
            changes
                .iter()
                .all(|c| c.key.starts_with("Extensions.dmz.") && c.after == "(removed)")
        );
    }

    #[test]
    fn cluster_names_make_valid_service_names() {
        for good in ["east", "us-east-1", "EU_2", "a"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        let longest = "x".repeat(39);
        assert!(check_name(&longest).is_ok());
        for bad in [
            "",
            "-east",
            "us east",
            "us.east",
            "ost/west",
            &"x".repeat(40),
        ] {
            assert_eq!(
                check_name(bad),
                Err(InputError::ClusterName(bad.to_owned())),
                "{bad}"
            );
        }
        assert_eq!(
            NewCluster::parse("eu", "region=eu", 80, 80, None).unwrap_err(),
            InputError::SamePorts(80)
        );
        assert_eq!(
            NewCluster::parse("eu", "region=eu", 80, 443, Some(0)).unwrap_err(),
            InputError::ZeroReplicas
        );
    }
}

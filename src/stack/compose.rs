//! What `docker stack deploy` makes of a compose file, as far as Interlock is concerned:
//! the services with their labels, networks and ports, the declared networks, the version.
//!
//! Everything is read through [`Document`], aliases and merge keys resolved, and each part
//! remembers the node it came from, so lint findings carry lines and `stack fix` can edit
//! the exact text. A file whose shape `docker stack deploy` would refuse (a label list that
//! is a number, a service that is a string) is refused here with its line. No I/O.

use crate::error::Diagnostic;
use crate::interlock::labels::{self, LabelSource, NetworkName};
use crate::stack::yaml::{Document, Entry, Kind, NodeId, YamlError};

/// A stack file that cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    /// Not YAML, or YAML a compose loader refuses.
    #[error("{source_name} is not valid YAML ({error})")]
    Yaml {
        /// The file.
        source_name: String,
        /// Where and why.
        error: YamlError,
    },
    /// YAML, but not shaped like a compose file.
    #[error("{source_name}, line {line}: {message}")]
    Shape {
        /// The file.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl Diagnostic for StackError {
    fn code(&self) -> &'static str {
        match self {
            StackError::Yaml { .. } => "invalid_yaml",
            StackError::Shape { .. } => "invalid_stack_file",
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            StackError::Yaml { error, .. } => format!("fix the YAML at line {}", error.line),
            StackError::Shape { line, .. } => format!(
                "fix line {line}; `docker stack config -c FILE` shows how Docker reads the file"
            ),
        })
    }
}

/// The `version:` of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Its value node.
    pub node: NodeId,
    /// As written, e.g. `3.4`.
    pub text: String,
    /// `(major, minor)`; minor `None` for a bare `3` (the newest 3.x); `None` when it is
    /// not a number.
    pub number: Option<(u32, Option<u32>)>,
}

/// Where an item sits, so it can be removed: the collection it is written in and its
/// position there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The sequence or mapping it is written in.
    pub container: NodeId,
    /// Its index among the container's items or entries.
    pub index: usize,
}

/// One label of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackLabel {
    /// The key.
    pub key: String,
    /// The value as written (before compose interpolation).
    pub value: String,
    /// `deploy.labels` or service-level `labels`.
    pub source: LabelSource,
    /// 1-based line.
    pub line: usize,
    /// Where it is written.
    pub place: Place,
}

/// A network a service names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRef {
    /// The key of the network (in the top-level `networks:`).
    pub key: String,
    /// 1-based line.
    pub line: usize,
    /// Where it is written.
    pub place: Place,
}

/// A service's `networks:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNetworks {
    /// The `networks` entry of the service.
    pub entry: Entry,
    /// The networks it names.
    pub refs: Vec<NetworkRef>,
}

/// One published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// The item node.
    pub node: NodeId,
    /// 1-based line.
    pub line: usize,
    /// The container port; `None` for a range or a variable.
    pub target: Option<u16>,
    /// The published port as written, if any.
    pub published: Option<String>,
    /// `tcp`, `udp`, ... if given.
    pub protocol: Option<String>,
    /// `host` or `ingress` if given (short syntax is always ingress).
    pub mode: Option<String>,
    /// The long syntax's `mode` value node, if any.
    pub mode_node: Option<NodeId>,
    /// Long syntax (a mapping) rather than `"PUBLISHED:TARGET"`.
    pub long: bool,
}

impl Port {
    /// Published in host mode: bound only on the node that runs the task.
    pub fn is_host_mode(&self) -> bool {
        self.mode.as_deref() == Some("host")
    }
}

/// A service's `ports:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    /// The `ports` entry of the service.
    pub entry: Entry,
    /// Its items.
    pub items: Vec<Port>,
}

/// A service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its name (the key under `services:`).
    pub name: String,
    /// The key node.
    pub key: NodeId,
    /// The service's mapping.
    pub node: NodeId,
    /// Service labels, then container labels.
    pub labels: Vec<StackLabel>,
    /// `networks:`; `None` when absent (the service joins `<stack>_default`).
    pub networks: Option<ServiceNetworks>,
    /// `ports:`, if any.
    pub ports: Option<Ports>,
}

impl Service {
    /// The value of a service label (`deploy.labels`); the last one when set twice.
    pub fn deploy_label(&self, key: &str) -> Option<&StackLabel> {
        self.labels
            .iter()
            .rev()
            .find(|l| l.source == LabelSource::Service && l.key == key)
    }

    /// Routed by Interlock: it has a `com.docker.lb.hosts` service label.
    pub fn is_routed(&self) -> bool {
        self.deploy_label(&labels::Key::Hosts.label()).is_some()
    }

    /// The keys of the networks it joins; `default` when it names none.
    pub fn network_keys(&self) -> Vec<&str> {
        match &self.networks {
            Some(networks) => networks.refs.iter().map(|r| r.key.as_str()).collect(),
            None => vec![DEFAULT_NETWORK],
        }
    }
}

/// The key of the network a stack creates for services that name none.
pub const DEFAULT_NETWORK: &str = "default";

/// A network declared under the top-level `networks:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDecl {
    /// Its key.
    pub key: String,
    /// The key node.
    pub key_node: NodeId,
    /// `name:`, with its value node.
    pub name: Option<(String, NodeId)>,
    /// `external: true` (or the older `external: {name: ...}`).
    pub external: bool,
    /// `external: {name: ...}`.
    pub external_name: Option<String>,
    /// `attachable: true`: containers outside the stack may join it.
    pub attachable: bool,
}

impl NetworkDecl {
    /// The network's name on the swarm, as far as the file tells it.
    pub fn deployed_name(&self) -> NetworkName {
        match (&self.external_name, &self.name) {
            (Some(name), _) | (None, Some((name, _))) => NetworkName::Exact(name.clone()),
            (None, None) if self.external => NetworkName::Exact(self.key.clone()),
            (None, None) => NetworkName::InStack(self.key.clone()),
        }
    }

    /// One of the node-local networks every node has (`bridge`, `host`): Interlock never
    /// attaches those to the proxy.
    pub fn is_node_local(&self) -> bool {
        self.external
            && matches!(self.deployed_name(), NetworkName::Exact(name) if name == "bridge" || name == "host")
    }
}

/// A parsed stack file.
#[derive(Debug, Clone)]
pub struct Stack {
    /// The YAML document.
    pub doc: Document,
    /// `version:`, if present.
    pub version: Option<Version>,
    /// The services, in file order.
    pub services: Vec<Service>,
    /// The top-level `networks` entry, if present.
    pub networks_entry: Option<Entry>,
    /// The declared networks.
    pub networks: Vec<NetworkDecl>,
}

impl Stack {
    /// Parses a stack file; `source_name` names it in errors.
    pub fn parse(source_name: &str, text: &str) -> Result<Stack, StackError> {
        let doc = Document::parse(text).map_err(|error| StackError::Yaml {
            source_name: source_name.to_owned(),
            error,
        })?;
        let reader = Reader {
            doc: &doc,
            source_name,
        };
        let root = doc.root();
        if !doc.is_mapping(root) {
            return Err(reader.shape(root, "the file is not a mapping of `services:` and friends"));
        }
        let version = doc
            .get(root, "version")
            .map(|entry| reader.version(entry.value));
        let services = match doc.get(root, "services") {
            Some(entry) if !doc.is_null(entry.value) => reader.services(entry.value)?,
            _ => Vec::new(),
        };
        let networks_entry = doc.get(root, "networks");
        let networks = match networks_entry {
            Some(entry) if !doc.is_null(entry.value) => reader.network_decls(entry.value)?,
            _ => Vec::new(),
        };
        Ok(Stack {
            version: version.transpose()?,
            services,
            networks_entry,
            networks,
            doc,
        })
    }

    /// The declaration of a network key, if there is one.
    pub fn network(&self, key: &str) -> Option<&NetworkDecl> {
        self.networks.iter().find(|n| n.key == key)
    }

    /// The names a service's networks have on the swarm, for the `network` label check.
    pub fn network_names(&self, service: &Service) -> Vec<NetworkName> {
        service
            .network_keys()
            .into_iter()
            .map(|key| match self.network(key) {
                Some(decl) => decl.deployed_name(),
                None => NetworkName::InStack(key.to_owned()),
            })
            .collect()
    }
}

struct Reader<'a> {
    doc: &'a Document,
    source_name: &'a str,
}

impl Reader<'_> {
    fn shape(&self, node: NodeId, message: impl Into<String>) -> StackError {
        StackError::Shape {
            source_name: self.source_name.to_owned(),
            line: self.doc.line(node),
            message: message.into(),
        }
    }

    fn scalar(&self, node: NodeId, what: &str) -> Result<String, StackError> {
        self.doc
            .scalar(node)
            .map(str::to_owned)
            .ok_or_else(|| self.shape(node, format!("{what} must be a single value")))
    }

    fn version(&self, node: NodeId) -> Result<Version, StackError> {
        let text = self.scalar(node, "`version`")?;
        let number = match text.split_once('.') {
            None => text.parse().ok().map(|major| (major, None)),
            Some((major, minor)) => major
                .parse()
                .ok()
                .zip(minor.parse().ok())
                .map(|(major, minor)| (major, Some(minor))),
        };
        Ok(Version { node, text, number })
    }

    fn services(&self, map: NodeId) -> Result<Vec<Service>, StackError> {
        if !self.doc.is_mapping(map) {
            return Err(self.shape(map, "`services` must be a mapping of service names"));
        }
        self.doc
            .entries(map)
            .into_iter()
            .map(|entry| self.service(entry))
            .collect()
    }

    fn service(&self, entry: Entry) -> Result<Service, StackError> {
        let name = self.scalar(entry.key, "a service name")?;
        let node = entry.value;
        if !self.doc.is_mapping(node) {
            return Err(self.shape(node, format!("service `{name}` must be a mapping")));
        }
        let mut labels = Vec::new();
        if let Some(deploy) = self.doc.get(node, "deploy")
            && !self.doc.is_null(deploy.value)
        {
            if !self.doc.is_mapping(deploy.value) {
                return Err(self.shape(deploy.value, format!("`{name}.deploy` must be a mapping")));
            }
            if let Some(list) = self.doc.get(deploy.value, "labels") {
                labels.extend(self.labels(list.value, LabelSource::Service, &name)?);
            }
        }
        if let Some(list) = self.doc.get(node, "labels") {
            labels.extend(self.labels(list.value, LabelSource::Container, &name)?);
        }
        let networks = match self.doc.get(node, "networks") {
            Some(entry) => Some(ServiceNetworks {
                entry,
                refs: self.network_refs(entry.value, &name)?,
            }),
            None => None,
        };
        let ports = match self.doc.get(node, "ports") {
            Some(entry) => Some(Ports {
                entry,
                items: self.ports(entry.value, &name)?,
            }),
            None => None,
        };
        Ok(Service {
            name,
            key: entry.key,
            node,
            labels,
            networks,
            ports,
        })
    }

    /// The place of an item or entry node: its container and index there.
    fn place(&self, node: NodeId) -> Place {
        let container = self.doc.parent(node).expect("items have a container");
        let index = match &self.doc.node(container).kind {
            Kind::Sequence(items) => items.iter().position(|i| *i == node),
            Kind::Mapping(pairs) => pairs.iter().position(|(k, _)| *k == node),
            _ => None,
        }
        .expect("a node is in its container");
        Place { container, index }
    }

    /// `labels:` in list form (`- KEY=VALUE`) or map form (`KEY: VALUE`).
    fn labels(
        &self,
        node: NodeId,
        source: LabelSource,
        service: &str,
    ) -> Result<Vec<StackLabel>, StackError> {
        let what = match source {
            LabelSource::Service => format!("`{service}.deploy.labels`"),
            LabelSource::Container => format!("`{service}.labels`"),
        };
        if self.doc.is_null(node) {
            return Ok(Vec::new());
        }
        if let Some(items) = self.doc.sequence(node) {
            return items
                .iter()
                .map(|item| {
                    let text = self.scalar(*item, &format!("an item of {what}"))?;
                    let (key, value) = text.split_once('=').unwrap_or((&text, ""));
                    Ok(StackLabel {
                        key: key.to_owned(),
                        value: value.to_owned(),
                        source,
                        line: self.doc.line(*item),
                        place: self.place(*item),
                    })
                })
                .collect();
        }
        if !self.doc.is_mapping(node) {
            return Err(self.shape(node, format!("{what} must be a list or a mapping")));
        }
        self.doc
            .entries(node)
            .into_iter()
            .map(|entry| {
                let value = if self.doc.is_null(entry.value) {
                    String::new()
                } else {
                    self.scalar(entry.value, &format!("a value of {what}"))?
                };
                Ok(StackLabel {
                    key: self.scalar(entry.key, &format!("a key of {what}"))?,
                    value,
                    source,
                    line: self.doc.line(entry.key),
                    place: self.place(entry.key),
                })
            })
            .collect()
    }

    /// A service's `networks:`, list form or map form.
    fn network_refs(&self, node: NodeId, service: &str) -> Result<Vec<NetworkRef>, StackError> {
        let what = format!("`{service}.networks`");
        let keys: Vec<NodeId> = if let Some(items) = self.doc.sequence(node) {
            items.to_vec()
        } else if self.doc.is_mapping(node) {
            self.doc.entries(node).iter().map(|e| e.key).collect()
        } else {
            return Err(self.shape(node, format!("{what} must be a list or a mapping")));
        };
        keys.into_iter()
            .map(|key| {
                Ok(NetworkRef {
                    key: self.scalar(key, &format!("a network of {what}"))?,
                    line: self.doc.line(key),
                    place: self.place(key),
                })
            })
            .collect()
    }

    fn ports(&self, node: NodeId, service: &str) -> Result<Vec<Port>, StackError> {
        let items = self
            .doc
            .sequence(node)
            .ok_or_else(|| self.shape(node, format!("`{service}.ports` must be a list")))?;
        items
            .iter()
            .map(|item| {
                let item = self.doc.resolve(*item);
                if self.doc.is_mapping(item) {
                    Ok(self.long_port(item))
                } else {
                    let text = self.scalar(item, &format!("an item of `{service}.ports`"))?;
                    Ok(self.short_port(item, &text))
                }
            })
            .collect()
    }

    fn long_port(&self, node: NodeId) -> Port {
        let field = |key: &str| {
            self.doc
                .get(node, key)
                .and_then(|e| self.doc.scalar(e.value).map(|v| (v.to_owned(), e.value)))
        };
        Port {
            node,
            line: self.doc.line(node),
            target: field("target").and_then(|(t, _)| labels::port(&t)),
            published: field("published").map(|(p, _)| p),
            protocol: field("protocol").map(|(p, _)| p),
            mode: field("mode").map(|(m, _)| m),
            mode_node: field("mode").map(|(_, node)| node),
            long: true,
        }
    }

    /// `[[IP:]PUBLISHED:]TARGET[/PROTOCOL]`; ranges leave the target unknown.
    fn short_port(&self, node: NodeId, text: &str) -> Port {
        let (ports, protocol) = match text.split_once('/') {
            Some((ports, protocol)) => (ports, Some(protocol.to_owned())),
            None => (text, None),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let target = parts.last().copied().unwrap_or_default();
        let published = (parts.len() >= 2).then(|| parts[parts.len() - 2].to_owned());
        Port {
            node,
            line: self.doc.line(node),
            target: labels::port(target),
            published,
            protocol,
            mode: None,
            mode_node: None,
            long: false,
        }
    }

    fn network_decls(&self, map: NodeId) -> Result<Vec<NetworkDecl>, StackError> {
        if !self.doc.is_mapping(map) {
            return Err(self.shape(map, "the top-level `networks` must be a mapping"));
        }
        self.doc
            .entries(map)
            .into_iter()
            .map(|entry| {
                let key = self.scalar(entry.key, "a network key")?;
                let value = entry.value;
                let text = |field: &str| {
                    self.doc
                        .get(value, field)
                        .and_then(|e| self.doc.scalar(e.value).map(|v| (v.to_owned(), e.value)))
                };
                let external = self.doc.get(value, "external");
                let external_name = external
                    .and_then(|e| self.doc.get(e.value, "name"))
                    .and_then(|e| self.doc.scalar(e.value))
                    .map(str::to_owned);
                Ok(NetworkDecl {
                    name: text("name"),
                    external: external_name.is_some()
                        || external.is_some_and(|e| self.doc.scalar(e.value) == Some("true")),
                    external_name,
                    attachable: text("attachable").is_some_and(|(v, _)| v == "true"),
                    key,
                    key_node: entry.key,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = r#"version: "3.4"
x-deploy: &deploy
  replicas: 2
  labels: &lb
    com.docker.lb.hosts: shop.example.com
    com.docker.lb.port: "8080"
services:
  web:
    image: shop/web
    deploy: *deploy
    labels:
      - com.example.team=shop
    ports:
      - "80:8080/tcp"
      - target: 9090
        mode: host
    networks: [front, back]
  db:
    image: postgres
networks:
  front:
  back:
    name: shop-back
  edge:
    external:
      name: bridge
"#;

    #[test]
    fn reads_services_labels_networks_and_ports() {
        let stack = Stack::parse("shop.yml", SHOP).unwrap();
        assert_eq!(stack.version.as_ref().unwrap().number, Some((3, Some(4))));
        let web = &stack.services[0];
        assert!(web.is_routed());
        let labels: Vec<(&str, &str, LabelSource, usize)> = web
            .labels
            .iter()
            .map(|l| (l.key.as_str(), l.value.as_str(), l.source, l.line))
            .collect();
        assert_eq!(
            labels,
            [
                (
                    "com.docker.lb.hosts",
                    "shop.example.com",
                    LabelSource::Service,
                    5
                ),
                ("com.docker.lb.port", "8080", LabelSource::Service, 6),
                ("com.example.team", "shop", LabelSource::Container, 12),
            ]
        );
        let ports = &web.ports.as_ref().unwrap().items;
        assert_eq!(
            (
                ports[0].published.as_deref(),
                ports[0].target,
                ports[0].protocol.as_deref(),
                ports[0].long
            ),
            (Some("80"), Some(8080), Some("tcp"), false)
        );
        assert!(ports[1].is_host_mode() && ports[1].target == Some(9090));
        assert_eq!(web.network_keys(), ["front", "back"]);
        let db = &stack.services[1];
        assert!(!db.is_routed());
        assert_eq!(db.network_keys(), ["default"]);
        assert_eq!(
            stack.network_names(web),
            [
                NetworkName::InStack("front".into()),
                NetworkName::Exact("shop-back".into())
            ]
        );
        let edge = stack.network("edge").unwrap();
        assert!(edge.is_node_local());
        assert!(!stack.network("back").unwrap().is_node_local());
    }

    #[test]
    fn refuses_shapes_docker_refuses() {
        let error =
            Stack::parse("s.yml", "services:\n  web:\n    deploy:\n      labels: 3\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "s.yml, line 4: `web.deploy.labels` must be a list or a mapping"
        );
        let error = Stack::parse("s.yml", "services:\n  web: nginx\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "s.yml, line 2: service `web` must be a mapping"
        );
        let error = Stack::parse("s.yml", "services: [\n").unwrap_err();
        assert_eq!(error.code(), "invalid_yaml");
    }
}

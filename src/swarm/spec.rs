//! Reading and editing a service spec in the engine's own JSON. Pure: no I/O.
//!
//! Edits touch only the fields they name and keep every other byte of the spec as the
//! engine returned it, including fields this tool does not know about. Each edit names the
//! [`Field`] it changes, so a failed run can put exactly those fields back to their values
//! before the run, on the spec as it is by then (keeping what concurrent writers changed),
//! and a re-read can prove it did.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::swarm::{Network, Port};

/// Swarm's `UpdateConfig` defaults, filled in when a spec has none (as the docker CLI
/// does): sending a partial object would mean `Parallelism: 0`, "update every task at once".
fn default_update_config() -> Value {
    json!({
        "Parallelism": 1,
        "FailureAction": "pause",
        "Monitor": 5_000_000_000_u64,
        "MaxFailureRatio": 0,
        "Order": "stop-first"
    })
}

/// One change to a service spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpecEdit {
    /// Point the config mounted at `target` to another config object.
    SwapConfig {
        /// Mount path, `/config.toml`.
        target: String,
        /// The config now mounted.
        from: String,
        /// The config to mount.
        to: String,
        /// Its ID (filled in once the config exists).
        to_id: Option<String>,
    },
    /// `UpdateConfig.FailureAction`.
    FailureAction {
        /// Current value (`pause` if unset).
        from: String,
        /// New value.
        to: String,
    },
    /// `Mode.Replicated.Replicas`.
    Replicas {
        /// Current count.
        from: u64,
        /// New count.
        to: u64,
    },
    /// `TaskTemplate.Placement.Constraints`.
    Constraints {
        /// Current constraints.
        from: Vec<String>,
        /// New constraints.
        to: Vec<String>,
    },
    /// The `EndpointSpec.Ports` entries of the targets in `from` and `to`; every other entry,
    /// and the other fields of a kept entry (such as `Name`), stay as they are.
    Ports {
        /// The entries of those targets now.
        from: Vec<Port>,
        /// What they must be.
        to: Vec<Port>,
    },
    /// `TaskTemplate.ContainerSpec.Image`.
    Image {
        /// The image now.
        from: String,
        /// The image to run.
        to: String,
    },
    /// Bump `TaskTemplate.ForceUpdate` so every task is re-created.
    ForceUpdate,
}

impl std::fmt::Display for SpecEdit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |ports: &[Port]| {
            ports
                .iter()
                .map(Port::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            SpecEdit::SwapConfig {
                target, from, to, ..
            } => write!(f, "config {target}: {from} -> {to}"),
            SpecEdit::FailureAction { from, to } => {
                write!(f, "update failure action: {from} -> {to}")
            }
            SpecEdit::Replicas { from, to } => write!(f, "replicas: {from} -> {to}"),
            SpecEdit::Constraints { from, to } => write!(f, "constraints: {from:?} -> {to:?}"),
            SpecEdit::Ports { from, to } => write!(f, "ports: [{}] -> [{}]", list(from), list(to)),
            SpecEdit::Image { from, to } => write!(f, "image: {from} -> {to}"),
            SpecEdit::ForceUpdate => write!(f, "re-create every task (force update)"),
        }
    }
}

/// Why `edits` no longer fit `spec`: a config swap whose target mounts neither the config
/// it was planned from nor the one it swaps to (another run rotated it meanwhile).
pub fn swap_conflict(spec: &Value, edits: &[SpecEdit]) -> Option<String> {
    edits.iter().find_map(|edit| {
        let SpecEdit::SwapConfig {
            target, from, to, ..
        } = edit
        else {
            return None;
        };
        let mounted = config_ref(spec, target)
            .map(|(name, _)| name)
            .unwrap_or_default();
        (mounted != *from && mounted != *to)
            .then(|| format!("{target} mounts {mounted}, planned from {from}"))
    })
}

/// The config reference mounted at `target`: `(ConfigName, ConfigID)`.
pub fn config_ref(spec: &Value, target: &str) -> Option<(String, String)> {
    config_entry(spec, target)
        .map(|config| (text(&config, "/ConfigName"), text(&config, "/ConfigID")))
}

/// `TaskTemplate.ContainerSpec.Image`.
pub fn image(spec: &Value) -> String {
    text(spec, "/TaskTemplate/ContainerSpec/Image")
}

/// `Mode.Replicated.Replicas`, or `None` for a global service.
pub fn replicas(spec: &Value) -> Option<u64> {
    spec.pointer("/Mode/Replicated/Replicas")
        .and_then(Value::as_u64)
}

/// `TaskTemplate.Placement.Constraints`.
pub fn constraints(spec: &Value) -> Vec<String> {
    spec.pointer("/TaskTemplate/Placement/Constraints")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The networks a service's tasks attach to: the `Target` (a network ID, or a name as
/// given at creation) of each `TaskTemplate.Networks` entry, else of the deprecated
/// top-level `Networks`.
pub fn networks(spec: &Value) -> Vec<String> {
    ["/TaskTemplate/Networks", "/Networks"]
        .iter()
        .filter_map(|pointer| spec.pointer(pointer).and_then(Value::as_array))
        .find(|items| !items.is_empty())
        .map(|items| items.iter().map(|item| text(item, "/Target")).collect())
        .unwrap_or_default()
}

/// The names of the networks a service's tasks attach to ([`networks`]), each found in
/// `known` by ID or name; a target no network matches is shown as it is.
pub fn network_names(spec: &Value, known: &[Network]) -> Vec<String> {
    networks(spec)
        .into_iter()
        .map(|target| {
            known
                .iter()
                .find(|n| n.id == target || n.name == target)
                .map_or(target, |n| n.name.clone())
        })
        .collect()
}

/// `EndpointSpec.Ports`.
pub fn ports(spec: &Value) -> Vec<Port> {
    ports_at(spec, "/EndpointSpec/Ports")
}

/// A port list at `pointer` (spec, endpoint or task port status).
pub fn ports_at(value: &Value, pointer: &str) -> Vec<Port> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| items.iter().map(port_from_json).collect())
        .unwrap_or_default()
}

fn port_from_json(port: &Value) -> Port {
    let number = |key: &str| {
        port.get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
    };
    let word = |key: &str, default: &str| {
        port.get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    Port {
        protocol: word("Protocol", "tcp"),
        target: number("TargetPort").unwrap_or(0),
        published: number("PublishedPort").filter(|&p| p != 0),
        mode: word("PublishMode", "ingress"),
    }
}

fn port_to_json(port: &Port) -> Value {
    let mut object = Map::new();
    object.insert("Protocol".into(), json!(port.protocol));
    object.insert("TargetPort".into(), json!(port.target));
    if let Some(published) = port.published {
        object.insert("PublishedPort".into(), json!(published));
    }
    object.insert("PublishMode".into(), json!(port.mode));
    Value::Object(object)
}

/// `UpdateConfig.FailureAction`, `pause` (Swarm's default) when unset.
pub fn failure_action(spec: &Value) -> String {
    spec.pointer("/UpdateConfig/FailureAction")
        .and_then(Value::as_str)
        .unwrap_or("pause")
        .to_owned()
}

/// `UpdateConfig.Parallelism`: how many tasks Swarm replaces at once, 0 for all of them;
/// Swarm's 1 when the spec has no `UpdateConfig`.
pub fn update_parallelism(spec: &Value) -> u64 {
    spec.get("UpdateConfig").map_or(1, |config| {
        config
            .get("Parallelism")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    })
}

/// `UpdateConfig.Monitor` in nanoseconds, Swarm's 5 s when unset.
pub fn monitor_nanos(spec: &Value) -> u64 {
    spec.pointer("/UpdateConfig/Monitor")
        .and_then(Value::as_u64)
        .filter(|&n| n > 0)
        .unwrap_or(5_000_000_000)
}

fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

impl SpecEdit {
    /// Writes this edit into `spec`, creating only the objects on the edited path.
    pub fn write_into(&self, spec: &mut Value) {
        match self {
            SpecEdit::SwapConfig {
                target, to, to_id, ..
            } => swap_config(spec, target, to, to_id.as_deref()),
            SpecEdit::FailureAction { to, .. } => {
                let update = object_at(spec, &["UpdateConfig"]);
                if update.is_empty()
                    && let Value::Object(defaults) = default_update_config()
                {
                    *update = defaults;
                }
                update.insert("FailureAction".into(), json!(to));
            }
            SpecEdit::Replicas { to, .. } => {
                object_at(spec, &["Mode", "Replicated"]).insert("Replicas".into(), json!(to));
            }
            SpecEdit::Constraints { to, .. } => {
                object_at(spec, &["TaskTemplate", "Placement"])
                    .insert("Constraints".into(), json!(to));
            }
            SpecEdit::Ports { from, to } => set_ports(spec, &port_keys(from, to), to),
            SpecEdit::Image { to, .. } => {
                object_at(spec, &["TaskTemplate", "ContainerSpec"])
                    .insert("Image".into(), json!(to));
            }
            SpecEdit::ForceUpdate => {
                let template = object_at(spec, &["TaskTemplate"]);
                let next = template
                    .get("ForceUpdate")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    + 1;
                template.insert("ForceUpdate".into(), json!(next));
            }
        }
    }

    /// The field this edit changes; `None` for [`SpecEdit::ForceUpdate`], a counter whose
    /// only effect is re-creating the tasks (restoring the other fields re-creates them too).
    pub fn field(&self) -> Option<Field> {
        Some(match self {
            SpecEdit::SwapConfig { target, .. } => Field::ConfigMount(target.clone()),
            SpecEdit::FailureAction { .. } => Field::UpdateConfig,
            SpecEdit::Replicas { .. } => Field::Replicas,
            SpecEdit::Constraints { .. } => Field::Constraints,
            SpecEdit::Ports { from, to } => Field::Ports(port_keys(from, to)),
            SpecEdit::Image { .. } => Field::Image,
            SpecEdit::ForceUpdate => return None,
        })
    }
}

/// The (target port, protocol) pairs a ports edit manages.
fn port_keys(from: &[Port], to: &[Port]) -> Vec<(u16, String)> {
    let mut keys: Vec<(u16, String)> = from
        .iter()
        .chain(to)
        .map(|p| (p.target, p.protocol.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn port_key(entry: &Value) -> (u16, String) {
    let port = port_from_json(entry);
    (port.target, port.protocol)
}

/// Takes the `EndpointSpec.Ports` list out of `spec` (empty when there is none).
fn take_ports(spec: &mut Value) -> Vec<Value> {
    match object_at(spec, &["EndpointSpec"]).remove("Ports") {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    }
}

/// Makes the entries of `keys` say `wanted`: an entry of the same target and protocol is
/// updated in place (its other fields kept), the other entries of `keys` are removed, and
/// the wanted ports that had no entry are appended.
fn set_ports(spec: &mut Value, keys: &[(u16, String)], wanted: &[Port]) {
    let mut pending: Vec<&Port> = wanted.iter().collect();
    let mut ports = Vec::new();
    for mut entry in take_ports(spec) {
        let key = port_key(&entry);
        if !keys.contains(&key) {
            ports.push(entry);
            continue;
        }
        let Some(at) = pending
            .iter()
            .position(|p| p.target == key.0 && p.protocol == key.1)
        else {
            continue;
        };
        let port = pending.remove(at);
        if let Value::Object(fields) = &mut entry {
            fields.remove("PublishedPort");
            if let Some(published) = port.published {
                fields.insert("PublishedPort".into(), json!(published));
            }
            fields.insert("PublishMode".into(), json!(port.mode));
        }
        ports.push(entry);
    }
    ports.extend(pending.into_iter().map(port_to_json));
    put_ports(spec, ports);
}

/// Puts the `EndpointSpec.Ports` list back; an empty one is left out, as the engine returns
/// a spec that publishes nothing.
fn put_ports(spec: &mut Value, ports: Vec<Value>) {
    if !ports.is_empty() {
        object_at(spec, &["EndpointSpec"]).insert("Ports".into(), Value::Array(ports));
    }
}

/// A part of a service spec that an edit changes, read and written as a whole: what a
/// restore puts back, and what the re-read after it compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The config reference mounted at this path.
    ConfigMount(String),
    /// `UpdateConfig`.
    UpdateConfig,
    /// `Mode.Replicated.Replicas`.
    Replicas,
    /// `TaskTemplate.Placement.Constraints`.
    Constraints,
    /// The `EndpointSpec.Ports` entries of these (target port, protocol) pairs.
    Ports(Vec<(u16, String)>),
    /// `TaskTemplate.ContainerSpec.Image`.
    Image,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::ConfigMount(target) => write!(f, "config {target}"),
            Field::UpdateConfig => f.write_str("update config"),
            Field::Replicas => f.write_str("replicas"),
            Field::Constraints => f.write_str("constraints"),
            Field::Image => f.write_str("image"),
            Field::Ports(keys) => {
                let keys: Vec<String> = keys.iter().map(|(t, p)| format!("{t}/{p}")).collect();
                write!(f, "ports {}", keys.join(", "))
            }
        }
    }
}

impl Field {
    /// The field's value in `spec` (`null` when absent); port entries in the spec's order.
    pub fn read(&self, spec: &Value) -> Value {
        let at = |pointer: &str| spec.pointer(pointer).cloned().unwrap_or(Value::Null);
        match self {
            Field::ConfigMount(target) => config_entry(spec, target).unwrap_or(Value::Null),
            Field::UpdateConfig => at("/UpdateConfig"),
            Field::Replicas => at("/Mode/Replicated/Replicas"),
            Field::Constraints => at("/TaskTemplate/Placement/Constraints"),
            Field::Image => at("/TaskTemplate/ContainerSpec/Image"),
            Field::Ports(keys) => {
                let entries: Vec<Value> = spec
                    .pointer("/EndpointSpec/Ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|entry| keys.contains(&port_key(entry)))
                    .cloned()
                    .collect();
                Value::Array(entries)
            }
        }
    }

    /// Sets the field in `spec` to `value`, as [`Field::read`] returns it (`null` removes it).
    pub fn write(&self, spec: &mut Value, value: &Value) {
        let set = |spec: &mut Value, path: &[&str], key: &str| {
            let object = object_at(spec, path);
            match value {
                Value::Null => object.remove(key),
                other => object.insert(key.into(), other.clone()),
            };
        };
        match self {
            Field::ConfigMount(target) => set_config_entry(spec, target, value),
            Field::UpdateConfig => set(spec, &[], "UpdateConfig"),
            Field::Replicas => set(spec, &["Mode", "Replicated"], "Replicas"),
            Field::Constraints => set(spec, &["TaskTemplate", "Placement"], "Constraints"),
            Field::Image => set(spec, &["TaskTemplate", "ContainerSpec"], "Image"),
            Field::Ports(keys) => {
                // The entries go where the first of their kind was, so a restore gives back
                // the list in its old order.
                let mut entries = value.as_array().cloned().unwrap_or_default();
                let mut ports = Vec::new();
                for entry in take_ports(spec) {
                    if !keys.contains(&port_key(&entry)) {
                        ports.push(entry);
                    } else if !entries.is_empty() {
                        ports.append(&mut entries);
                    }
                }
                ports.append(&mut entries);
                put_ports(spec, ports);
            }
        }
    }

    /// Whether the field says the same in both specs (port entries in any order).
    pub fn same_in(&self, a: &Value, b: &Value) -> bool {
        let canonical = |spec: &Value| match self.read(spec) {
            Value::Array(mut entries) if matches!(self, Field::Ports(_)) => {
                entries.sort_by_key(Value::to_string);
                Value::Array(entries)
            }
            other => other,
        };
        canonical(a) == canonical(b)
    }
}

fn config_entry(spec: &Value, target: &str) -> Option<Value> {
    spec.pointer("/TaskTemplate/ContainerSpec/Configs")?
        .as_array()?
        .iter()
        .find(|config| config.pointer("/File/Name").and_then(Value::as_str) == Some(target))
        .cloned()
}

fn set_config_entry(spec: &mut Value, target: &str, value: &Value) {
    let container = object_at(spec, &["TaskTemplate", "ContainerSpec"]);
    let Value::Array(configs) = container.entry("Configs").or_insert_with(|| json!([])) else {
        return;
    };
    let at = configs
        .iter()
        .position(|c| c.pointer("/File/Name").and_then(Value::as_str) == Some(target));
    match (at, value) {
        (Some(at), Value::Null) => {
            configs.remove(at);
        }
        (Some(at), entry) => configs[at] = entry.clone(),
        (None, Value::Null) => {}
        (None, entry) => configs.push(entry.clone()),
    }
}

fn swap_config(spec: &mut Value, target: &str, name: &str, id: Option<&str>) {
    let Some(configs) = spec
        .pointer_mut("/TaskTemplate/ContainerSpec/Configs")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let mounted = configs
        .iter_mut()
        .find(|config| config.pointer("/File/Name").and_then(Value::as_str) == Some(target));
    if let Some(Value::Object(config)) = mounted {
        config.insert("ConfigName".into(), json!(name));
        config.insert("ConfigID".into(), json!(id.unwrap_or_default()));
    }
}

/// The object at `path` under `spec`, created (empty) where missing.
fn object_at<'a>(spec: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut current = spec;
    for key in path {
        if !current.is_object() {
            *current = json!({});
        }
        current = current
            .as_object_mut()
            .expect("just made an object")
            .entry(*key)
            .or_insert_with(|| json!({}));
    }
    if !current.is_object() {
        *current = json!({});
    }
    current.as_object_mut().expect("just made an object")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tcp_port as port;

    fn core_spec() -> Value {
        json!({
            "Name": "ucp-interlock",
            "Labels": {"com.docker.ucp.InstanceID": "x"},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "sha256:abc",
                    "Configs": [
                        {"File": {"Name": "/other", "UID": "0", "GID": "0", "Mode": 292}, "ConfigID": "o1", "ConfigName": "other"},
                        {"File": {"Name": "/config.toml", "UID": "0", "GID": "0", "Mode": 288}, "ConfigID": "c1", "ConfigName": "conf-1"}
                    ],
                    "SomeFutureField": {"kept": true}
                },
                "ForceUpdate": 0
            },
            "Mode": {"Replicated": {"Replicas": 1}}
        })
    }

    #[test]
    fn swap_config_finds_the_target_not_the_first_entry() {
        let mut spec = core_spec();
        assert_eq!(
            config_ref(&spec, "/config.toml"),
            Some(("conf-1".into(), "c1".into()))
        );
        let edit = SpecEdit::SwapConfig {
            target: "/config.toml".into(),
            from: "conf-1".into(),
            to: "conf-2".into(),
            to_id: Some("c2".into()),
        };
        edit.write_into(&mut spec);
        let mut expected = core_spec();
        expected["TaskTemplate"]["ContainerSpec"]["Configs"][1]["ConfigName"] = json!("conf-2");
        expected["TaskTemplate"]["ContainerSpec"]["Configs"][1]["ConfigID"] = json!("c2");
        assert_eq!(spec, expected);
    }

    #[test]
    fn a_swap_conflicts_only_when_someone_else_rotated_the_config() {
        let swap = |from: &str, to: &str| SpecEdit::SwapConfig {
            target: "/config.toml".into(),
            from: from.into(),
            to: to.into(),
            to_id: None,
        };
        assert_eq!(
            swap_conflict(&core_spec(), &[swap("conf-1", "conf-2")]),
            None
        );
        assert_eq!(
            swap_conflict(&core_spec(), &[swap("conf-0", "conf-1")]),
            None
        );
        assert_eq!(
            swap_conflict(&core_spec(), &[swap("conf-0", "conf-2")]),
            Some("/config.toml mounts conf-1, planned from conf-0".into())
        );
        assert_eq!(swap_conflict(&core_spec(), &[SpecEdit::ForceUpdate]), None);
    }

    #[test]
    fn networks_come_from_the_task_template_else_the_old_top_level_field() {
        let template = json!({"TaskTemplate": {"Networks": [{"Target": "n1"}, {"Target": "n2", "Aliases": ["x"]}]}});
        assert_eq!(networks(&template), ["n1", "n2"]);
        let old = json!({"TaskTemplate": {"Networks": []}, "Networks": [{"Target": "n3"}]});
        assert_eq!(networks(&old), ["n3"]);
        assert!(networks(&core_spec()).is_empty());
        let known = [("n1", "front"), ("n3", "back")].map(|(id, name)| Network {
            id: id.into(),
            name: name.into(),
        });
        let by_name = json!({"TaskTemplate": {"Networks": [{"Target": "n1"}, {"Target": "back"}, {"Target": "gone"}]}});
        assert_eq!(network_names(&by_name, &known), ["front", "back", "gone"]);
    }

    #[test]
    fn failure_action_starts_from_swarm_defaults() {
        let mut spec = core_spec();
        (SpecEdit::FailureAction {
            from: "pause".into(),
            to: "rollback".into(),
        })
        .write_into(&mut spec);
        assert_eq!(
            spec["UpdateConfig"],
            json!({"Parallelism": 1, "FailureAction": "rollback", "Monitor": 5_000_000_000_u64, "MaxFailureRatio": 0, "Order": "stop-first"})
        );
        spec["UpdateConfig"]["Parallelism"] = json!(3);
        (SpecEdit::FailureAction {
            from: "rollback".into(),
            to: "pause".into(),
        })
        .write_into(&mut spec);
        assert_eq!(spec["UpdateConfig"]["Parallelism"], json!(3));
    }

    #[test]
    fn other_edits_touch_only_their_fields() {
        let mut spec = core_spec();
        let port = Port {
            protocol: "tcp".into(),
            target: 8080,
            published: None,
            mode: "host".into(),
        };
        SpecEdit::Ports {
            from: vec![],
            to: vec![port.clone()],
        }
        .write_into(&mut spec);
        (SpecEdit::Replicas { from: 1, to: 3 }).write_into(&mut spec);
        (SpecEdit::Constraints {
            from: vec![],
            to: vec!["node.labels.role==dtr".into()],
        })
        .write_into(&mut spec);
        (SpecEdit::ForceUpdate).write_into(&mut spec);
        assert_eq!(ports(&spec), vec![port]);
        assert_eq!(replicas(&spec), Some(3));
        assert_eq!(constraints(&spec), vec!["node.labels.role==dtr".to_owned()]);
        assert_eq!(spec["TaskTemplate"]["ForceUpdate"], json!(1));
        assert_eq!(
            spec["TaskTemplate"]["ContainerSpec"],
            core_spec()["TaskTemplate"]["ContainerSpec"]
        );
        assert_eq!(spec["Labels"], core_spec()["Labels"]);
    }

    #[test]
    fn a_ports_edit_changes_only_its_entries_and_keeps_their_other_fields() {
        let mut spec = json!({"EndpointSpec": {"Mode": "vip", "Ports": [
            {"Name": "http", "Protocol": "tcp", "TargetPort": 80, "PublishedPort": 80, "PublishMode": "ingress"},
            {"Name": "metrics", "Protocol": "tcp", "TargetPort": 9100, "PublishedPort": 9100, "PublishMode": "ingress"},
            {"Protocol": "tcp", "TargetPort": 443, "PublishedPort": 8443, "PublishMode": "ingress"}
        ]}});
        let edit = SpecEdit::Ports {
            from: vec![
                port(Some(80), 80, "ingress"),
                port(Some(8443), 443, "ingress"),
            ],
            to: vec![port(Some(7080), 80, "host"), port(Some(7443), 443, "host")],
        };
        edit.write_into(&mut spec);
        assert_eq!(
            spec,
            json!({"EndpointSpec": {"Mode": "vip", "Ports": [
                {"Name": "http", "Protocol": "tcp", "TargetPort": 80, "PublishedPort": 7080, "PublishMode": "host"},
                {"Name": "metrics", "Protocol": "tcp", "TargetPort": 9100, "PublishedPort": 9100, "PublishMode": "ingress"},
                {"Protocol": "tcp", "TargetPort": 443, "PublishedPort": 7443, "PublishMode": "host"}
            ]}})
        );
        let remove = SpecEdit::Ports {
            from: vec![port(Some(7443), 443, "host")],
            to: vec![],
        };
        remove.write_into(&mut spec);
        assert_eq!(
            spec["EndpointSpec"]["Ports"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn a_field_written_back_restores_only_itself() {
        let before = core_spec();
        let edits = [
            SpecEdit::SwapConfig {
                target: "/config.toml".into(),
                from: "conf-1".into(),
                to: "conf-2".into(),
                to_id: Some("c2".into()),
            },
            SpecEdit::FailureAction {
                from: "pause".into(),
                to: "rollback".into(),
            },
            SpecEdit::Ports {
                from: vec![],
                to: vec![port(None, 8080, "host")],
            },
            SpecEdit::Replicas { from: 1, to: 3 },
            SpecEdit::Constraints {
                from: vec![],
                to: vec!["node.role==manager".into()],
            },
            SpecEdit::Image {
                from: "sha256:abc".into(),
                to: "mirantis/ucp-interlock:3.8.0".into(),
            },
        ];
        let mut after = before.clone();
        edits.iter().for_each(|edit| edit.write_into(&mut after));
        // A concurrent writer changes a field this run does not own.
        after["Labels"]["com.example.writer"] = json!("core");
        for field in edits.iter().filter_map(SpecEdit::field) {
            assert_ne!(field.read(&after), field.read(&before), "{field}");
            field.write(&mut after, &field.read(&before));
            assert_eq!(field.read(&after), field.read(&before), "{field}");
        }
        let mut expected = before.clone();
        expected["Labels"]["com.example.writer"] = json!("core");
        // Restoring leaves empty holders (`EndpointSpec`, `Placement`) but no values.
        expected["EndpointSpec"] = json!({});
        expected["TaskTemplate"]["Placement"] = json!({});
        assert_eq!(after, expected);
        assert_eq!(SpecEdit::ForceUpdate.field(), None);
    }
}

//! Reading and editing a service spec in the engine's own JSON. Pure: no I/O.
//!
//! Edits touch only the fields they name and keep every other byte of the spec as the
//! engine returned it, including fields this tool does not know about.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::swarm::Port;

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
    /// Add a published port.
    AddPort(Port),
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
    /// `EndpointSpec.Ports`.
    Ports {
        /// Current ports.
        from: Vec<Port>,
        /// New ports.
        to: Vec<Port>,
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
            SpecEdit::AddPort(port) => write!(f, "publish {port}"),
            SpecEdit::Replicas { from, to } => write!(f, "replicas: {from} -> {to}"),
            SpecEdit::Constraints { from, to } => write!(f, "constraints: {from:?} -> {to:?}"),
            SpecEdit::Ports { from, to } => write!(f, "ports: [{}] -> [{}]", list(from), list(to)),
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
    spec.pointer("/TaskTemplate/ContainerSpec/Configs")?
        .as_array()?
        .iter()
        .find(|config| config.pointer("/File/Name").and_then(Value::as_str) == Some(target))
        .map(|config| (text(config, "/ConfigName"), text(config, "/ConfigID")))
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
            SpecEdit::AddPort(port) => {
                let endpoint = object_at(spec, &["EndpointSpec"]);
                let ports = endpoint.entry("Ports").or_insert_with(|| json!([]));
                if let Value::Array(ports) = ports {
                    ports.push(port_to_json(port));
                }
            }
            SpecEdit::Replicas { to, .. } => {
                object_at(spec, &["Mode", "Replicated"]).insert("Replicas".into(), json!(to));
            }
            SpecEdit::Constraints { to, .. } => {
                object_at(spec, &["TaskTemplate", "Placement"])
                    .insert("Constraints".into(), json!(to));
            }
            SpecEdit::Ports { to, .. } => {
                let ports = to.iter().map(port_to_json).collect();
                object_at(spec, &["EndpointSpec"]).insert("Ports".into(), Value::Array(ports));
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
        (SpecEdit::AddPort(port.clone())).write_into(&mut spec);
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
}

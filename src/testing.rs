//! Builders of observed swarm states for the pure modules' unit tests: a UCP-like swarm
//! with a manager, two `role=dtr` workers and one other worker, the core on conf-1, and the
//! proxy with two ingress replicas under UCP's default constraints.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::interlock::config::{ExtensionSettings, InterlockConfig, PublishMode};
use crate::runbook::observe::{Survey, SurveyedConfig, SurveyedExtension, SurveyedProxy};
use crate::runbook::plan::{self, Desired, Observed, Plan};
use crate::swarm::{ConfigObject, Network, Node, Port, Service, Task};

/// The lab's config, as `lab.sh reset` stores it.
pub const CONFIG: &str = include_str!("../tests/lab/core-config.toml");
/// The config's name.
pub const CONF_1: &str = "com.docker.ucp.interlock.conf-1";

/// A Ready, Active node with labels (besides UCP's orchestrator label).
pub fn node(id: &str, role: &str, labels: &[(&str, &str)]) -> Node {
    let mut all: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    all.insert("com.docker.ucp.orchestrator.swarm".into(), "true".into());
    Node {
        id: id.into(),
        hostname: format!("host-{id}"),
        role: role.into(),
        ready: true,
        active: true,
        addr: "10.0.0.1".into(),
        labels: all,
        engine_labels: BTreeMap::new(),
        os: "linux".into(),
        arch: "x86_64".into(),
    }
}

/// A service with this spec.
pub fn service(id: &str, spec: Value) -> Service {
    Service {
        id: id.into(),
        name: spec["Name"].as_str().unwrap_or_default().into(),
        version: 10,
        spec,
        previous_spec: None,
        update_state: None,
        update_message: None,
        update_started_at: None,
        update_completed_at: None,
        created_at: None,
        updated_at: None,
        endpoint_ports: vec![],
    }
}

/// A running task of `service_id` on `node_id`, binding `ports`.
pub fn task(service_id: &str, node_id: &str, ports: Vec<Port>) -> Task {
    Task {
        id: format!("task-{service_id}-{node_id}"),
        service_id: service_id.into(),
        node_id: Some(node_id.into()),
        created_at: "2026-11-28T03:00:00Z".into(),
        desired_state: "running".into(),
        state: "running".into(),
        message: "started".into(),
        error: None,
        ports,
        image: "docker/ucp-interlock-proxy:3.0.14".into(),
    }
}

/// A port published on `published`.
pub fn port(published: u16, target: u16, mode: &str) -> Port {
    tcp_port(Some(published), target, mode)
}

/// A TCP port; `None` = published on a port Swarm picks.
pub fn tcp_port(published: Option<u16>, target: u16, mode: &str) -> Port {
    Port {
        protocol: "tcp".into(),
        target,
        published,
        mode: mode.into(),
    }
}

/// The observed state described in the module docs.
pub fn observed() -> Observed {
    let core = service(
        "core",
        json!({
            "Name": "ucp-interlock",
            "TaskTemplate": {"ContainerSpec": {"Image": "docker/ucp-interlock:3.0.14", "Configs": [
                {"File": {"Name": "/config.toml", "UID": "0", "GID": "0", "Mode": 292}, "ConfigID": "c1", "ConfigName": CONF_1}
            ]}},
            "Mode": {"Replicated": {"Replicas": 1}}
        }),
    );
    let proxy = service(
        "proxy",
        json!({
            "Name": "ucp-interlock-proxy",
            "TaskTemplate": {"ContainerSpec": {"Image": "docker/ucp-interlock-proxy:3.0.14"}, "Placement": {"Constraints": [
                "node.labels.com.docker.ucp.orchestrator.swarm==true", "node.platform.os==linux"
            ]}},
            "Mode": {"Replicated": {"Replicas": 2}},
            "UpdateConfig": {"FailureAction": "rollback"},
            "EndpointSpec": {"Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 80, "PublishMode": "ingress"},
                {"Protocol": "tcp", "TargetPort": 443, "PublishedPort": 8443, "PublishMode": "ingress"}
            ]}
        }),
    );
    let config = ConfigObject {
        id: "c1".into(),
        name: CONF_1.into(),
        labels: BTreeMap::from([("com.docker.ucp.InstanceID".to_owned(), "x".to_owned())]),
        created_at: "2026-11-28T03:00:00Z".into(),
    };
    Observed {
        core,
        config: config.clone(),
        config_text: CONFIG.into(),
        lineage: vec![config],
        nodes: vec![
            node("mgr", "manager", &[]),
            node("w1", "worker", &[("role", "dtr")]),
            node("w2", "worker", &[("role", "dtr")]),
            node("w3", "worker", &[]),
        ],
        proxy: Some(proxy),
        retired: vec![],
        others: vec![],
    }
}

/// The lab config pinned to `role=dtr` nodes, as `pin-proxy --label role=dtr` writes it.
pub fn pinned(text: &str) -> String {
    text.replace(
        "ProxyConstraints = [\"node.labels.com.docker.ucp.orchestrator.swarm==true\", \"node.platform.os==linux\"]",
        "ProxyConstraints = [\"node.labels.role==dtr\"]",
    )
}

/// The lab config in host mode on 7080/7443, as `host-mode --http 7080 --https 7443` writes it.
pub fn host_mode(text: &str) -> String {
    text.replace("PublishMode = \"ingress\"", "PublishMode = \"host\"")
        .replace("PublishedPort = 80", "PublishedPort = 7080")
        .replace("PublishedSSLPort = 8443", "PublishedSSLPort = 7443")
}

/// Both: the runbook's end state.
pub fn pinned_host_mode(text: &str) -> String {
    pinned(&host_mode(text))
}

/// The lab core's way of writing the proxy: the default `ProxyConfigPath`, `PollInterval`
/// of the lab config.
pub const CORE_WRITER: plan::CoreWriter<'static> = plan::CoreWriter {
    proxy_config_path: crate::interlock::config::defaults::PROXY_CONFIG_PATH,
    poll_interval: std::time::Duration::from_secs(3),
};

/// The plan from the observed state towards the lab config after `edit`.
pub fn plan_after(observed: &Observed, edit: impl Fn(&str) -> String) -> Plan {
    let (text, settings) = settings_after(edit);
    let live = settings_after(str::to_owned).1;
    plan::build(
        observed,
        &Desired {
            text: &text,
            existing: None,
            settings: &settings,
            live_settings: &live,
            host_mode: settings.publish_mode == PublishMode::Host,
            operation: "test",
            images: &BTreeMap::new(),
            core_writer: CORE_WRITER,
        },
    )
}

/// The settings of the lab config's `default` extension after `edit` changed its text.
pub fn settings_after(edit: impl Fn(&str) -> String) -> (String, ExtensionSettings) {
    let text = edit(CONFIG);
    let settings = InterlockConfig::parse("test", &text)
        .and_then(|config| config.extension("default"))
        .expect("a valid edited config");
    (text, settings)
}

/// The same swarm as `status` surveys it, healthy: the proxy updated at 03:00 by a rolling
/// update (tasks on w1 and w2 created then), surveyed ten minutes later.
pub fn survey() -> Survey {
    let observed = observed();
    let config = InterlockConfig::parse(CONF_1, CONFIG).expect("the lab config parses");
    let settings = config.extension("default").expect("its extension is valid");
    let mut proxy = observed.proxy.expect("observed has a proxy");
    proxy.endpoint_ports = vec![port(80, 80, "ingress"), port(8443, 443, "ingress")];
    proxy.previous_spec = Some(json!({"Name": "ucp-interlock-proxy"}));
    proxy.created_at = Some("2026-11-28T02:00:00Z".into());
    proxy.updated_at = Some("2026-11-28T03:00:01Z".into());
    proxy.update_started_at = Some("2026-11-28T02:59:59Z".into());
    proxy.update_state = Some("completed".into());
    let tasks = vec![task("proxy", "w1", vec![]), task("proxy", "w2", vec![])];
    Survey {
        core: Some(observed.core),
        config: Some(SurveyedConfig {
            object: observed.config,
            text: CONFIG.into(),
            lineage: observed.lineage,
            parsed: Some(config),
        }),
        extensions: vec![SurveyedExtension {
            name: "default".into(),
            settings: Some(settings),
            proxy_service: "ucp-interlock-proxy".into(),
            proxy: Some(SurveyedProxy {
                service: proxy,
                tasks: tasks.clone(),
                history: tasks,
            }),
        }],
        selected: Some("default".into()),
        unclaimed_proxies: vec![],
        nodes: observed.nodes,
        networks: vec![Network {
            id: "n-ingress".into(),
            name: "ingress".into(),
        }],
        extension_services: vec![],
        ucp_agent: None,
        refused: vec![],
        rejected_labels: Vec::new(),
        taken_at: humantime::parse_rfc3339("2026-11-28T03:10:01Z").expect("a time"),
    }
}

//! End-to-end test of service clusters on the lab swarm (see `tests/lab_support`): a second
//! extension whose proxy the core creates, each cluster on its own nodes and ports, edited
//! one without touching the other, collisions refused, and the cluster removed again.

mod lab_support;

use lab_support::{
    CONF, Lab, PROXY, action_kinds, action_targets, code, http_get, json, lab, manifest_dir,
};
use serde_json::{Value, json};

const EAST: &str = "ucp-interlock-proxy-east";

/// A service's spec without the nginx config the core swaps onto every proxy whenever it
/// loads a config or a route changes (`tests/lab/standin-core.sh`): what only interlockctl
/// changes in the lab. `None` when the service does not exist; any other failure of the
/// docker CLI fails the test.
fn spec_of(lab: &Lab, service: &str) -> Option<Value> {
    let output = std::process::Command::new("docker")
        .args(["service", "inspect", "--format", "{{json .Spec}}", service])
        .env("DOCKER_HOST", &lab.docker_host)
        .output()
        .expect("docker runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        assert!(
            stderr.contains(&format!("no such service: {service}")),
            "docker service inspect {service} failed: {stderr}"
        );
        return None;
    }
    let mut spec: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("docker service inspect {service}: {error}: {stderr}"));
    if let Some(container) = spec
        .pointer_mut("/TaskTemplate/ContainerSpec")
        .and_then(Value::as_object_mut)
    {
        container.remove("Configs");
    }
    Some(spec)
}

/// Hostnames of the nodes running a service's tasks, sorted.
fn nodes_of(lab: &Lab, service: &str) -> Vec<String> {
    let mut nodes = lab.running_tasks(service, "{{.Node}}");
    nodes.sort();
    nodes
}

/// Published ports of a service as `published:target/mode`, sorted.
fn ports_of(lab: &Lab, service: &str) -> Vec<String> {
    let spec = &lab.inspect(service)["Spec"];
    let mut ports: Vec<String> = spec["EndpointSpec"]["Ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}:{}/{}",
                p["PublishedPort"], p["TargetPort"], p["PublishMode"]
            )
            .replace('"', "")
        })
        .collect();
    ports.sort();
    ports
}

fn constraints_of(lab: &Lab, service: &str) -> Value {
    lab.inspect(service)["Spec"]["TaskTemplate"]["Placement"]["Constraints"].clone()
}

/// Runs a changing command with `--yes -o json`; expects exit 0 and returns the report.
fn applied(lab: &Lab, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--yes", "-o", "json"]);
    let output = lab.interlockctl(&all);
    let report = json(&output);
    assert_eq!(code(&output), 0, "{report}");
    assert_eq!(report["status"], "applied");
    report
}

/// Runs a command that must be refused with `error_code`, changing nothing.
fn refused(lab: &Lab, args: &[&str], error_code: &str) {
    let before = (spec_of(lab, PROXY), spec_of(lab, EAST), lab.configs());
    let mut all = args.to_vec();
    all.extend(["--yes", "-o", "json"]);
    let output = lab.interlockctl(&all);
    let report = json(&output);
    assert_eq!(code(&output), 4, "{report}");
    assert_eq!(report["errors"][0]["code"], error_code, "{report}");
    assert_eq!(
        (spec_of(lab, PROXY), spec_of(lab, EAST), lab.configs()),
        before,
        "a refusal changes nothing"
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn two_clusters_on_their_own_nodes_and_ports_edited_independently() {
    let lab = lab();
    lab.docker(&["node", "update", "--label-add", "region=east", "ilab-w3"]);
    let default_spec = spec_of(&lab, PROXY);

    // The core creates the new cluster's proxy from the new config; the tool waits for
    // it and verifies it. One replica: one node carries the label.
    let report = applied(
        &lab,
        &[
            "cluster",
            "add",
            "east",
            "--label",
            "region=east",
            "--http",
            "7081",
            "--https",
            "7444",
        ],
    );
    assert_eq!(report["extension"], "east");
    assert_eq!(
        action_kinds(&report),
        ["create_config", "update_service", "await_service"]
    );
    assert_eq!(lab.core_config(), format!("{CONF}-2"));
    assert_eq!(
        constraints_of(&lab, EAST),
        json!(["node.labels.region==east"])
    );
    assert_eq!(ports_of(&lab, EAST), ["7081:80/host", "7444:443/host"]);
    assert_eq!(nodes_of(&lab, EAST), ["ilab-w3"]);
    let east_node = &lab.other_addrs[0];
    assert!(
        http_get(east_node, 7081).is_some(),
        "east answers on its node"
    );
    assert_eq!(spec_of(&lab, PROXY), default_spec, "default untouched");
    let east_spec = spec_of(&lab, EAST);

    // Each cluster is edited without touching the other: default pinned to the role=dtr
    // nodes in host mode (one `apply` of the live config with its section edited)...
    let live = lab.interlockctl(&["show"]).stdout;
    let pinned = live
        .replace(
            "ProxyConstraints = [\"node.labels.com.docker.ucp.orchestrator.swarm==true\", \"node.platform.os==linux\"]",
            "ProxyConstraints = [\"node.labels.role==dtr\"]",
        )
        .replace("PublishMode = \"ingress\"", "PublishMode = \"host\"")
        .replace("PublishedPort = 80\n", "PublishedPort = 7080\n");
    let file = manifest_dir().join("target/clusters-default-pinned.toml");
    std::fs::write(&file, pinned).unwrap();
    applied(
        &lab,
        &["--extension", "default", "apply", file.to_str().unwrap()],
    );
    assert_eq!(
        constraints_of(&lab, PROXY),
        json!(["node.labels.role==dtr"])
    );
    assert_eq!(ports_of(&lab, PROXY), ["7080:80/host", "8443:443/host"]);
    assert_eq!(spec_of(&lab, EAST), east_spec, "east untouched");
    // ... and east on other ports.
    let pinned_spec = spec_of(&lab, PROXY);
    applied(
        &lab,
        &[
            "--extension",
            "east",
            "host-mode",
            "--http",
            "7082",
            "--https",
            "7445",
        ],
    );
    assert_eq!(ports_of(&lab, EAST), ["7082:80/host", "7445:443/host"]);
    assert_ne!(spec_of(&lab, EAST), east_spec);
    assert_eq!(spec_of(&lab, PROXY), pinned_spec, "default untouched");
    assert!(
        http_get(east_node, 7082).is_some(),
        "east answers on its new port"
    );

    // Refusals change nothing: a port default publishes, a taken name, a label no node has.
    refused(
        &lab,
        &[
            "cluster",
            "add",
            "west",
            "--label",
            "region=east",
            "--http",
            "7080",
            "--https",
            "7999",
        ],
        "port_taken",
    );
    refused(
        &lab,
        &[
            "cluster",
            "add",
            "east",
            "--label",
            "region=east",
            "--http",
            "7090",
            "--https",
            "7091",
        ],
        "cluster_exists",
    );
    refused(
        &lab,
        &[
            "cluster",
            "add",
            "west",
            "--label",
            "region=nowhere",
            "--http",
            "7090",
            "--https",
            "7091",
        ],
        "no_labelled_nodes",
    );

    // The doctor shows both clusters, each probed on its own nodes.
    let output = lab.interlockctl(&["status", "--probe", "-o", "json"]);
    let status = json(&output);
    assert_eq!(code(&output), 0, "{status}");
    let extensions = status["state"]["extensions"].as_array().unwrap();
    let summary: Vec<(&str, &str, bool)> = extensions
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["proxy"]["service"].as_str().unwrap(),
                e["selected"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [("default", PROXY, true), ("east", EAST, false)]);
    let default_probes: Vec<(&str, &Value)> = extensions[0]["proxy"]["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["node"].as_str().unwrap(), &p["status"]))
        .collect();
    assert_eq!(
        default_probes,
        [("ilab-w1", &json!(200)), ("ilab-w2", &json!(200))]
    );
    let east_probes = &extensions[1]["proxy"]["probes"];
    assert_eq!(east_probes.as_array().unwrap().len(), 1);
    assert_eq!(
        (
            &east_probes[0]["node"],
            &east_probes[0]["port"],
            &east_probes[0]["status"]
        ),
        (&json!("ilab-w3"), &json!(7082), &json!(200))
    );

    // Removed: the config loses the table, and the services Interlock would leave behind go.
    let report = applied(&lab, &["cluster", "remove", "east"]);
    assert_eq!(action_targets(&report, "remove_service"), [EAST]);
    assert_eq!(spec_of(&lab, EAST), None);
    assert_eq!(spec_of(&lab, PROXY), pinned_spec, "default untouched");
    let show = lab.interlockctl(&["show"]).stdout;
    assert!(!show.contains("[Extensions.east]"));
    refused(&lab, &["cluster", "remove", "default"], "last_extension");
}

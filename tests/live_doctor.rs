//! End-to-end tests of `status` as a doctor on the lab swarm (see `tests/lab_support`): a
//! proxy attached to several networks, a pending task, `--probe` in host mode, and every
//! broken state reported with exit 1 and the whole picture where the editing commands
//! refuse (exit 4).

mod lab_support;

use std::time::Duration;

use lab_support::{
    CONF, CORE, Lab, PIN_PROXY_PLAN, PROXY, code, json, lab, manifest_dir, wait_until,
};
use serde_json::{Value, json};

/// `NODE CURRENT-STATE` of each proxy task meant to run.
fn proxy_tasks(lab: &Lab) -> Vec<String> {
    lab.running_tasks(PROXY, "{{.Node}} {{.CurrentState}}")
}

/// `status [--probe] -o json`: exit code and report.
fn status(lab: &Lab, probe: bool) -> (i32, Value) {
    let mut args = vec!["status", "-o", "json"];
    if probe {
        args.push("--probe");
    }
    let output = lab.interlockctl(&args);
    (code(&output), json(&output))
}

fn finding_codes(report: &Value) -> Vec<(String, String)> {
    report["state"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_owned(),
                f["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn host_mode_proxy_on_several_networks_probed_from_its_nodes_then_a_pending_task() {
    let lab = lab();
    // The runbook's end state in one run: pinned to the role=dtr nodes, host mode.
    let desired = manifest_dir().join("target/doctor-pinned-host-mode.toml");
    let config = std::fs::read_to_string(manifest_dir().join("tests/lab/core-config.toml"))
        .unwrap()
        .replace(
            "ProxyConstraints = [\"node.labels.com.docker.ucp.orchestrator.swarm==true\", \"node.platform.os==linux\"]",
            "ProxyConstraints = [\"node.labels.role==dtr\"]",
        )
        .replace("PublishMode = \"ingress\"", "PublishMode = \"host\"")
        .replace("PublishedPort = 80", "PublishedPort = 7080");
    std::fs::write(&desired, config).unwrap();
    let applied = lab.interlockctl(&["apply", desired.to_str().unwrap(), "--yes"]);
    assert_eq!(code(&applied), 0);
    let networks = ["lab-net-a", "lab-net-b", "lab-net-c"];
    let mut update = vec!["service", "update", "--quiet", "--no-resolve-image"];
    for network in networks {
        lab.docker(&["network", "create", "--driver", "overlay", network]);
        update.extend(["--network-add", network]);
    }
    update.push(PROXY);
    lab.docker(&update);

    let (exit, report) = status(&lab, true);
    assert_eq!(exit, 0, "{report}");
    assert_eq!(report["status"], "no_changes");
    let proxy = &report["state"]["proxy"];
    assert_eq!(proxy["networks"], json!(networks), "named, not IDs");
    let service = lab.inspect(PROXY);
    assert_eq!(proxy["spec_version"], service["Version"]["Index"]);
    let update = &proxy["last_update"];
    assert_eq!(update["at"], service["UpdatedAt"]);
    assert_eq!(
        (&update["updated"], &update["state"], &update["rolling"]),
        (&json!(true), &json!("completed"), &json!(true)),
        "attaching the networks re-created every task: {update}"
    );
    assert!(update["seconds_ago"].as_u64().unwrap() < 60, "{update}");
    assert_eq!(update["running_tasks"], 2);

    // Probes go to the nodes running the proxy, on their own addresses, and only there.
    let probes = proxy["probes"].as_array().unwrap();
    let mut probed: Vec<(&str, u64)> = probes
        .iter()
        .map(|p| (p["addr"].as_str().unwrap(), p["status"].as_u64().unwrap()))
        .collect();
    probed.sort_unstable();
    let mut dtr: Vec<(&str, u64)> = lab.dtr_addrs.iter().map(|a| (a.as_str(), 200)).collect();
    dtr.sort_unstable();
    assert_eq!(
        probed, dtr,
        "every labelled node answers, no other is asked"
    );
    assert!(probes.iter().all(|p| p["port"] == 7080));
    assert_eq!(report["state"]["extensions"][0]["proxy"], *proxy);
    assert_eq!(finding_codes(&report), []);

    // An LB node drained: its task cannot move (the other one holds the host port).
    lab.docker(&["node", "update", "--availability", "drain", "ilab-w2"]);
    wait_until("a pending proxy task", Duration::from_secs(60), || {
        proxy_tasks(&lab).iter().any(|t| t.contains("Pending"))
    });
    let (exit, report) = status(&lab, true);
    assert_eq!(exit, 1, "{report}");
    assert_eq!(report["status"], "failed");
    assert_eq!(
        finding_codes(&report),
        [("error".into(), "proxy_not_as_configured".into())]
    );
    assert_eq!(report["errors"][0]["code"], "proxy_not_as_configured");
    assert_eq!(
        report["state"]["problems"],
        json!(["1 of 2 proxy tasks are running"])
    );
    let tasks = report["state"]["proxy"]["tasks"].as_array().unwrap();
    let pending = tasks.iter().find(|t| t["state"] == "pending").unwrap();
    assert!(
        pending["error"]
            .as_str()
            .unwrap()
            .contains("no suitable node"),
        "says why: {pending}"
    );
    let probes = report["state"]["proxy"]["probes"].as_array().unwrap();
    assert_eq!(
        probes
            .iter()
            .map(|p| (p["node"].as_str().unwrap(), p["status"].as_u64()))
            .collect::<Vec<_>>(),
        [("ilab-w1", Some(200))],
        "only the node still running a task is probed"
    );
    let text = lab.interlockctl(&["status", "--probe"]);
    assert_eq!(code(&text), 1);
    let text = text.stdout;
    assert!(
        text.contains("networks:    3 (lab-net-a, lab-net-b, lab-net-c)"),
        "{text}"
    );
    assert!(
        text.contains("error: 1 of 2 proxy tasks are running"),
        "{text}"
    );
}

/// Mounts `text` on the core as config `name` in place of whatever it mounts, without
/// waiting for the core (a config it cannot load leaves its task failing, the spec stays).
fn mount_on_core(lab: &Lab, name: &str, text: Option<&str>) {
    let current = lab.core_config();
    let mut args = vec![
        "service",
        "update",
        "--detach",
        "--quiet",
        "--no-resolve-image",
        "--update-failure-action",
        "pause",
        "--config-rm",
        &current,
    ];
    let source;
    if let Some(text) = text {
        let file = manifest_dir().join(format!("target/{name}.toml"));
        std::fs::write(&file, text).unwrap();
        lab.docker(&["config", "create", name, file.to_str().unwrap()]);
        source = format!("source={name},target=/config.toml");
        args.extend(["--config-add", &source]);
    }
    args.push(CORE);
    lab.docker(&args);
}

/// The editing path still refuses the state, exit 4 with `error_code`.
fn editing_refuses(lab: &Lab, error_code: &str) {
    let output = lab.interlockctl(&PIN_PROXY_PLAN);
    assert_eq!(code(&output), 4);
    assert_eq!(json(&output)["errors"][0]["code"], error_code);
}

/// `status` on a broken swarm: exit 1, status `failed`, the finding as the first error,
/// and the report still there.
fn broken(lab: &Lab, args: &[&str], error_code: &str) -> Value {
    let mut all = vec!["status", "-o", "json"];
    all.extend(args);
    let output = lab.interlockctl(&all);
    let report = json(&output);
    assert_eq!(code(&output), 1, "{report}");
    assert_eq!(report["status"], "failed");
    assert_eq!(report["errors"][0]["code"], error_code, "{report}");
    assert_eq!(report["state"]["findings"][0]["code"], error_code);
    assert_eq!(report["state"]["findings"][0]["severity"], "error");
    report
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn every_broken_state_is_a_finding_with_the_whole_picture() {
    let lab = lab();
    let good = std::fs::read_to_string(manifest_dir().join("tests/lab/core-config.toml")).unwrap();

    // No proxy: the core and its config are still reported.
    lab.docker(&["service", "rm", PROXY]);
    let report = broken(&lab, &[], "proxy_service_missing");
    assert_eq!(report["state"]["config"], format!("{CONF}-1"));
    assert_eq!(report["state"]["core"]["service"], CORE);
    assert_eq!(report["state"]["extensions"][0]["proxy"], Value::Null);
    assert_eq!(report["state"]["extensions"][0]["proxy_service"], PROXY);
    assert_eq!(report["state"]["findings"][0]["extension"], "default");
    editing_refuses(&lab, "proxy_service_missing");
    let text = lab.interlockctl(&["status"]);
    assert_eq!(code(&text), 1);
    let text = text.stdout;
    assert!(
        text.contains("Proxy:      ucp-interlock-proxy (does not exist)"),
        "{text}"
    );

    // A config without ProxyReplicas: the extension's proxy is still found by its name.
    let image = lab.inspect(CORE)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .unwrap()
        .to_owned();
    lab.docker(&[
        "service",
        "create",
        "--detach",
        "--quiet",
        "--no-resolve-image",
        "--name",
        PROXY,
        "--label",
        "type=com.docker.interlock.core.proxy",
        &image,
        "/standin-proxy.sh",
    ]);
    mount_on_core(
        &lab,
        "lab-no-replicas",
        Some(&good.replace("    ProxyReplicas = 2\n", "")),
    );
    let report = broken(&lab, &[], "missing_proxy_replicas");
    assert_eq!(report["state"]["config"], "lab-no-replicas");
    assert_eq!(report["state"]["extensions"][0]["proxy"]["service"], PROXY);
    editing_refuses(&lab, "missing_proxy_replicas");

    // Not TOML: the proxies are found by Interlock's label; `show` prints the config.
    let not_toml = good.replace("PollInterval = \"3s\"", "PollInterval = 3s\"");
    mount_on_core(&lab, "lab-not-toml", Some(&not_toml));
    let report = broken(&lab, &[], "invalid_toml");
    assert_eq!(report["state"]["extensions"], json!([]));
    assert_eq!(report["state"]["unclaimed_proxies"][0]["service"], PROXY);
    assert_eq!(
        finding_codes(&report).len(),
        1,
        "no warning about the proxy"
    );
    editing_refuses(&lab, "invalid_toml");
    let show = lab.interlockctl(&["show"]);
    assert_eq!(code(&show), 0);
    assert_eq!(show.stdout, not_toml);
    let stderr = show.stderr;
    assert!(
        stderr.contains("warning: lab-not-toml is not valid TOML (line 8"),
        "{stderr}"
    );

    // No config mounted at all.
    mount_on_core(&lab, "", None);
    let report = broken(&lab, &[], "config_missing");
    assert_eq!(report["state"]["config"], Value::Null);
    assert_eq!(report["state"]["core"]["service"], CORE);
    editing_refuses(&lab, "config_missing");

    // No core.
    let report = broken(&lab, &["--service", "lab-no-core"], "core_service_missing");
    assert_eq!(report["state"]["core"], Value::Null);
    assert_eq!(report["state"]["unclaimed_proxies"][0]["service"], PROXY);
}

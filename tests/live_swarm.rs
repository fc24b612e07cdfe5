//! End-to-end tests of the runbook against the real multi-node lab swarm (see
//! `tests/lab_support`). They are part of the default suite: the real engine is what users
//! run against.

mod lab_support;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use lab_support::{CONF, CORE, PROXY, code, http_get, json, lab, manifest_dir};
use serde_json::Value;

/// Fields the plan names, and the proxy's nginx config the core itself swaps in after every
/// config load (a concurrent writer's change); everything else must come back byte for byte.
fn without_planned_fields(mut spec: Value) -> Value {
    let template = &mut spec["TaskTemplate"];
    if let Some(configs) = template["ContainerSpec"]["Configs"].as_array_mut() {
        configs.retain(|c| {
            c["File"]["Name"] != "/config.toml" && c["File"]["Name"] != "/etc/nginx/nginx.conf"
        });
    }
    template.as_object_mut().unwrap().remove("ForceUpdate");
    template["Placement"]
        .as_object_mut()
        .unwrap()
        .remove("Constraints");
    spec["UpdateConfig"]
        .as_object_mut()
        .unwrap()
        .remove("FailureAction");
    spec.as_object_mut().unwrap().remove("EndpointSpec");
    spec["Mode"]["Replicated"]
        .as_object_mut()
        .unwrap()
        .remove("Replicas");
    spec
}

/// Gives both services a spec with every kind of field a production service has.
fn enrich_specs(lab: &lab_support::Lab) {
    let secret = "lab-secret-roundtrip";
    let mut create = Command::new("docker");
    create
        .args(["secret", "create", "--label", "lab=1", secret, "-"])
        .env("DOCKER_HOST", &lab.docker_host)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = create.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret").unwrap();
    assert!(child.wait().unwrap().success());
    let rich = format!(
        "--env-add LAB_ROUNDTRIP=1 --label-add com.example.team=edge --container-label-add com.example.tier=lb \
         --mount-add type=tmpfs,target=/scratch,tmpfs-size=1048576 \
         --secret-add source={secret},target=lab-secret,mode=0400 \
         --health-cmd true --health-interval 1s --health-retries 2 \
         --limit-memory 64M --reserve-cpu 0.01 --restart-condition on-failure --restart-max-attempts 3 \
         --placement-pref-add spread=node.labels.role --log-driver json-file --log-opt max-size=1m \
         --update-order stop-first --rollback-monitor 2s"
    );
    for service in [CORE, PROXY] {
        let mut args = vec!["service", "update", "--quiet", "--no-resolve-image"];
        args.extend(rich.split_whitespace());
        args.push(service);
        lab.docker(&args);
    }
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn runbook_end_to_end_on_rich_specs() {
    let lab = lab();
    enrich_specs(&lab);
    let before = [CORE, PROXY].map(|s| without_planned_fields(lab.inspect(s)["Spec"].clone()));
    lab.runbook();

    // Nothing outside the plan changed, in either service.
    let after = [CORE, PROXY].map(|s| without_planned_fields(lab.inspect(s)["Spec"].clone()));
    assert_eq!(
        before[0], after[0],
        "core spec fields outside the plan changed"
    );
    assert_eq!(
        before[1], after[1],
        "proxy spec fields outside the plan changed"
    );
    assert_eq!(
        after[0]["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretName"],
        "lab-secret-roundtrip"
    );

    // The runbook's outcome.
    assert_eq!(lab.core_config(), format!("{CONF}-3"));
    assert_eq!(
        lab.configs(),
        [1, 2, 3].map(|n| format!("{CONF}-{n}")).to_vec(),
        "the old configs still exist"
    );
    let mut dtr = lab.dtr_addrs.clone();
    dtr.sort();
    assert_eq!(
        lab.proxy_node_addrs(),
        dtr,
        "one proxy task on each role=dtr node, none elsewhere"
    );
    for addr in &lab.dtr_addrs {
        assert!(
            http_get(addr, 7080).is_some(),
            "the proxy answers on {addr}:7080"
        );
    }
    for addr in &lab.other_addrs {
        let target = format!("{addr}:7080").parse().unwrap();
        assert!(
            TcpStream::connect_timeout(&target, Duration::from_secs(1)).is_err(),
            "{addr}:7080 must not answer"
        );
    }
    let core_ports = &lab.inspect(CORE)["Spec"]["EndpointSpec"]["Ports"];
    assert_eq!(
        (&core_ports[0]["TargetPort"], &core_ports[0]["PublishMode"]),
        (&Value::from(8080), &Value::from("host"))
    );

    // What an operator sees.
    let text = lab.interlockctl(&["status"]);
    assert_eq!(code(&text), 0);
    insta::with_settings!({filters => vec![
        (r"version \d+", "version [index]"),
        (r"updated \d+[smhd] ago", "updated [time] ago"),
    ]}, {
        insta::assert_snapshot!(
            "status_text_after_runbook",
            String::from_utf8(text.stdout).unwrap()
        );
    });
    let status = lab.interlockctl(&["status", "-o", "json"]);
    assert_eq!(code(&status), 0);
    insta::assert_json_snapshot!("status_json_after_runbook", json(&status), {
        ".state.lineage[].created" => "[created]",
        ".state.proxy.spec_version" => "[index]",
        ".state.proxy.last_update.at" => "[time]",
        ".state.proxy.last_update.seconds_ago" => "[seconds]",
        ".state.proxy.last_update.started_at" => "[time]",
        ".state.proxy.last_update.completed_at" => "[time]",
        ".state.extensions[].proxy.spec_version" => "[index]",
        ".state.extensions[].proxy.last_update.at" => "[time]",
        ".state.extensions[].proxy.last_update.seconds_ago" => "[seconds]",
        ".state.extensions[].proxy.last_update.started_at" => "[time]",
        ".state.extensions[].proxy.last_update.completed_at" => "[time]",
    });

    // Running either command again changes nothing.
    let before = (lab.versions(), lab.configs());
    for args in [
        &["pin-proxy", "--label", "role=dtr", "--yes", "-o", "json"][..],
        &[
            "host-mode",
            "--http",
            "7080",
            "--https",
            "7443",
            "--yes",
            "-o",
            "json",
        ],
    ] {
        let output = lab.interlockctl(args);
        assert_eq!(code(&output), 0);
        assert_eq!(json(&output)["status"], "no_changes");
        assert_eq!(json(&output)["config"]["next"], Value::Null);
    }
    assert_eq!(
        (lab.versions(), lab.configs()),
        before,
        "re-runs change nothing"
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_config_the_core_cannot_load_is_rolled_back_and_the_proxy_keeps_serving() {
    let lab = lab();
    lab.runbook();
    let live = lab.interlockctl(&["show"]);
    let bad = String::from_utf8(live.stdout)
        .unwrap()
        .replace("PollInterval = \"3s\"", "PollInterval = \"soon\"");
    let file = manifest_dir().join("target/unloadable-config.toml");
    std::fs::write(&file, bad).unwrap();
    let output = lab.interlockctl(&["apply", file.to_str().unwrap(), "--yes", "-o", "json"]);
    assert_eq!(code(&output), 5);
    let report = json(&output);
    assert_eq!(report["status"], "rolled_back");
    assert_eq!(report["errors"][0]["code"], "rolled_back");
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("on ilab-mgr: failed (task: non-zero exit (1))"),
        "names the failed core task: {message}"
    );
    assert_eq!(
        lab.core_config(),
        format!("{CONF}-3"),
        "the core is back on its previous config"
    );
    for addr in &lab.dtr_addrs {
        assert!(
            http_get(addr, 7080).is_some(),
            "the proxy still answers on {addr}:7080"
        );
    }
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn dry_run_and_check_change_nothing() {
    let lab = lab();
    let before = (lab.versions(), lab.configs());
    let dry = lab.interlockctl(&[
        "pin-proxy",
        "--label",
        "role=dtr",
        "--dry-run",
        "-o",
        "json",
    ]);
    assert_eq!(code(&dry), 0);
    let report = json(&dry);
    assert_eq!(
        (report["status"].as_str(), report["dry_run"].as_bool()),
        (Some("planned"), Some(true))
    );
    assert_eq!(report["config"]["next"], format!("{CONF}-2"));
    let kinds: Vec<&str> = report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["create_config", "update_service", "update_service"]);
    assert_eq!(
        code(&lab.interlockctl(&["host-mode", "--http", "7080", "--https", "7443", "--check"])),
        3
    );
    assert_eq!(
        (lab.versions(), lab.configs()),
        before,
        "--dry-run and --check change nothing"
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn without_a_terminal_and_without_yes_nothing_changes() {
    let lab = lab();
    let before = (lab.versions(), lab.configs());
    let output = lab.interlockctl(&["pin-proxy", "--label", "role=dtr"]);
    assert_eq!(code(&output), 7);
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("hint: review the plan, then pass `--yes`")
    );
    assert_eq!((lab.versions(), lab.configs()), before);
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn rollback_twice_returns_to_where_it_started() {
    let lab = lab();
    assert_eq!(
        code(&lab.interlockctl(&["pin-proxy", "--label", "role=dtr", "--yes"])),
        0
    );
    let pinned = lab.proxy_node_addrs();
    assert_eq!(code(&lab.interlockctl(&["rollback", "--yes"])), 0);
    assert_eq!(lab.core_config(), format!("{CONF}-1"));
    let constraints = &lab.inspect(PROXY)["Spec"]["TaskTemplate"]["Placement"]["Constraints"];
    assert_eq!(
        constraints.as_array().unwrap().len(),
        2,
        "the UCP default constraints are back: {constraints}"
    );
    assert_eq!(code(&lab.interlockctl(&["rollback", "--yes"])), 0);
    assert_eq!(lab.core_config(), format!("{CONF}-2"));
    assert_eq!(lab.proxy_node_addrs(), pinned);
    assert_eq!(
        lab.configs().len(),
        2,
        "rollback reuses configs, never copies them"
    );
}

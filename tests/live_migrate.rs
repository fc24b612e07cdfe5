//! `migrate` on the lab: the whole runbook in one run, from the seed's starting state (the
//! proxy on the UCP default nodes, published through ingress) to a verified host-mode proxy
//! on the labelled nodes, against the stand-in core that writes the proxy as the real one
//! does; and a run whose config the core cannot load.

mod lab_support;

use serde_json::{Value, json};

use lab_support::front::{Act, Front};
use lab_support::{CORE, PROXY, action_kinds, conf, http_get, lab, md5_hex, mounted_proxy_config};

const MIGRATE: [&str; 7] = [
    "migrate", "--label", "role=dtr", "--http", "7080", "--https", "7443",
];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    [&MIGRATE[..], extra].concat()
}

/// The dry run shows both edits in one diff and changes nothing; the run creates one config,
/// updates the core and the proxy once each, and verifies the proxy in host mode on the
/// role=dtr nodes, answering on each; a re-run changes nothing.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn migrate_takes_the_seed_state_to_a_verified_host_mode_proxy_in_one_run() {
    let lab = lab();
    let before = (lab.versions(), lab.configs());

    let planned = lab
        .interlockctl(&args(&["--dry-run", "-o", "json"]))
        .assert_report(0);
    assert_eq!(planned["status"], "planned");
    let diff = planned["config"]["diff"].as_str().unwrap();
    for line in [
        "+    ProxyConstraints = [\"node.labels.role==dtr\"]",
        "+    PublishMode = \"host\"",
        "+    PublishedPort = 7080",
        "+    PublishedSSLPort = 7443",
    ] {
        assert!(
            diff.contains(line),
            "one diff holds both edits: {line}\n{diff}"
        );
    }
    assert_eq!(
        action_kinds(&planned),
        ["create_config", "update_service", "update_service"]
    );
    assert_eq!(
        (lab.versions(), lab.configs()),
        before,
        "a dry run changes nothing"
    );

    let report = lab
        .interlockctl(&args(&["--yes", "-o", "json"]))
        .assert_report(0);
    assert_eq!(report["status"], "applied");
    assert_eq!(report["config"]["next"], conf(2));
    assert_eq!(lab.configs(), [conf(1), conf(2)], "one new config");
    let proxy = lab.inspect(PROXY);
    assert_eq!(
        proxy["Spec"]["TaskTemplate"]["Placement"]["Constraints"],
        json!(["node.labels.role==dtr"])
    );
    assert_eq!(proxy["Spec"]["Mode"]["Replicated"]["Replicas"], 2);
    let ports: Vec<(u64, &str)> = proxy["Spec"]["EndpointSpec"]["Ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["PublishedPort"].as_u64().unwrap(),
                p["PublishMode"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(ports, [(7080, "host"), (7443, "host")]);
    let nginx = mounted_proxy_config(&proxy["Spec"]).expect("the core's nginx config");
    assert!(
        lab.config_text(&nginx).contains(&format!(
            "# core config: {}",
            md5_hex(&lab.config_text(&conf(2)))
        )),
        "the proxy carries the nginx config the core rendered from conf-2"
    );
    let core = lab.spec(CORE);
    assert_eq!(
        core["EndpointSpec"]["Ports"],
        json!([{ "Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host" }])
    );
    assert_eq!(lab.proxy_node_addrs(), lab.dtr_addrs);
    for addr in &lab.dtr_addrs {
        assert!(http_get(addr, 7080).is_some(), "{addr}:7080 answers");
    }

    let settled = (lab.versions(), lab.configs());
    let again = lab
        .interlockctl(&args(&["--yes", "-o", "json"]))
        .assert_report(0);
    assert_eq!(again["status"], "no_changes");
    assert_eq!(again["actions"], json!([]));
    assert_eq!(
        (lab.versions(), lab.configs()),
        settled,
        "a re-run changes nothing"
    );
}

/// The config the run created, as the engine stored it, is one the core cannot load
/// (`PollInterval = "soon"`): the core's new task exits, Swarm rolls the core back, and the
/// proxy's edits, held for the core's swap, are never sent. Exit 5 after a re-read shows the
/// core on conf-1 and the proxy exactly as before the run.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_migrate_whose_config_the_core_cannot_load_is_restored_with_exit_5() {
    let lab = lab();
    let proxy_before = lab.inspect(PROXY);
    let core_before = lab.spec(CORE);
    let front = Front::start(&lab.socket(), |request| {
        if request.starts_with("POST ") && request.contains("/configs/create") {
            Act::Rewrite(unloadable)
        } else {
            Act::Forward
        }
    });
    let run = lab
        .interlockctl_command(&args(&["--yes", "-o", "json"]))
        .env("DOCKER_HOST", front.docker_host())
        .run();
    eprintln!("{}", run.render());
    let report = run.assert_report(5);
    assert_eq!(report["status"], "rolled_back");
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.ends_with(&format!(
            "restored: {CORE} config /config.toml, ports 8080/tcp, update config (Swarm had rolled it back)"
        )),
        "only the core was changed: {message}"
    );
    assert_eq!(lab.core_config(), conf(1));
    assert_eq!(
        lab.spec(CORE),
        core_before,
        "the core is on its previous spec"
    );
    let proxy_after = lab.inspect(PROXY);
    assert_eq!(
        proxy_after["Version"], proxy_before["Version"],
        "nothing was sent to the proxy"
    );
    assert_eq!(proxy_after["Spec"], proxy_before["Spec"]);
    let states = lab.running_tasks(PROXY, "{{.CurrentState}}");
    assert_eq!(
        states.iter().filter(|s| s.starts_with("Running")).count(),
        2
    );
}

/// The `Data` of a config create, with `PollInterval = "soon"`.
fn unloadable(body: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let base64 = &base64::engine::general_purpose::STANDARD;
    let mut create: Value = serde_json::from_slice(body).expect("a config create");
    let text = String::from_utf8(base64.decode(create["Data"].as_str().unwrap()).unwrap()).unwrap();
    let broken = text.replace("PollInterval = \"3s\"", "PollInterval = \"soon\"");
    assert_ne!(broken, text, "the lab config has PollInterval = \"3s\"");
    create["Data"] = json!(base64.encode(broken));
    serde_json::to_vec(&create).unwrap()
}

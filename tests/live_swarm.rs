//! End-to-end tests of the runbook against the real multi-node lab swarm (see
//! `tests/lab_support`): the runbook on rich service specs, a config the core cannot load,
//! planning and confirming, `--replicas`' default, and `rollback` in each of its forms. They
//! are part of the default suite: the real engine is what users run against.
//!
//! The lab's stand-in core is a concurrent writer of the proxy, as the real one is: on every
//! config load it swaps a new `com.docker.interlock.proxy.*` config onto the proxy (see
//! `tests/lab/NOTES.md`). Comparisons of proxy specs name that mount as its change.

mod lab_support;

use std::io::Write;
use std::process::Command;

use lab_support::{
    CORE, HOST_MODE, Lab, PIN_PROXY, PIN_PROXY_PLAN, PROXY, action_kinds, actions, closed, conf,
    config_changes, http_get, lab, text,
};
use serde_json::{Value, json};

const UCP_CONSTRAINTS: [&str; 2] = [
    "node.labels.com.docker.ucp.orchestrator.swarm==true",
    "node.platform.os==linux",
];

/// `spec` with its proxy-config mount (the core's change, not the run's) replaced by a
/// placeholder, after checking it is one the core made.
fn without_the_cores_proxy_config(mut spec: Value) -> Value {
    let mount = config_mount(&mut spec, "/etc/nginx/nginx.conf");
    let name = mount["ConfigName"].as_str().expect("a config name");
    assert!(
        name.starts_with("com.docker.interlock.proxy."),
        "the proxy config is one the core created: {name}"
    );
    mount["ConfigName"] = json!("<the core's proxy config>");
    mount["ConfigID"] = json!("<its ID>");
    spec
}

/// `spec` with the config at `/config.toml` replaced by `name`.
fn mounting(mut spec: Value, lab: &Lab, name: &str) -> Value {
    let mount = config_mount(&mut spec, "/config.toml");
    mount["ConfigName"] = json!(name);
    mount["ConfigID"] = json!(lab.config_id(name));
    spec
}

/// The config reference of `spec` mounted at `target`.
fn config_mount<'a>(spec: &'a mut Value, target: &str) -> &'a mut Value {
    spec["TaskTemplate"]["ContainerSpec"]["Configs"]
        .as_array_mut()
        .expect("the service mounts configs")
        .iter_mut()
        .find(|c| c["File"]["Name"] == target)
        .unwrap_or_else(|| panic!("a config is mounted at {target}"))
}

/// `spec` with its published ports of `target` replaced by `entry` (in place), or with
/// `entry` appended when there was none.
fn publishing(mut spec: Value, target: u16, entry: Value) -> Value {
    let ports = spec["EndpointSpec"]["Ports"]
        .as_array_mut()
        .expect("the service publishes ports");
    match ports.iter_mut().find(|p| p["TargetPort"] == target) {
        Some(port) => *port = entry,
        None => ports.push(entry),
    }
    spec
}

fn port(published: Option<u16>, target: u16, mode: &str) -> Value {
    let mut entry = json!({ "Protocol": "tcp", "TargetPort": target, "PublishMode": mode });
    if let Some(published) = published {
        entry["PublishedPort"] = json!(published);
    }
    entry
}

/// The `update_service` actions of a report: (service, detail).
fn updates(report: &Value) -> Vec<(String, String)> {
    actions(report)
        .filter(|a| a["kind"] == "update_service")
        .map(|a| (text(a, "target").to_owned(), text(a, "detail").to_owned()))
        .collect()
}

/// How many updates of `service` the run timed: its own, plus one when it re-created the
/// proxy's tasks because some kept stale ports.
fn timed_updates(report: &Value, service: &str) -> usize {
    report["timings"]
        .as_array()
        .map_or(0, |t| t.iter().filter(|t| t["service"] == service).count())
}

/// `spec` without `TaskTemplate.ForceUpdate`, a counter no run puts back.
fn without_force_update(mut spec: Value) -> Value {
    take_force_update(&mut spec);
    spec
}

/// Takes `TaskTemplate.ForceUpdate` out of `spec`: its value, 0 when unset.
fn take_force_update(spec: &mut Value) -> u64 {
    spec["TaskTemplate"]
        .as_object_mut()
        .expect("a task template")
        .remove("ForceUpdate")
        .and_then(|value| value.as_u64())
        .unwrap_or(0)
}

/// Gives both services a spec with every kind of field a production service has, and a
/// published port of their own that no runbook step manages.
fn enrich_specs(lab: &Lab) {
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
    for (service, own_port) in [(CORE, "9092"), (PROXY, "9091")] {
        let publish = format!("published={own_port},target={own_port}");
        let mut args = vec!["service", "update", "--quiet", "--no-resolve-image"];
        args.extend(rich.split_whitespace());
        args.extend(["--publish-add", &publish, service]);
        lab.docker(&args);
    }
}

/// The runbook on services with rich specs: each run's plan names exactly what changes,
/// and the whole specs afterwards (`EndpointSpec` included) differ from before only there:
/// the core's config, its failure action and its host port 8080; the proxy's constraints
/// and the entries of ports 80 and 443. Besides that, the core's own proxy-config swap on
/// the proxy, and a force update when the run says it re-created stale tasks.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn runbook_end_to_end_on_rich_specs() {
    let lab = lab();
    enrich_specs(&lab);
    let (core_before, proxy_before) = (lab.spec(CORE), lab.spec(PROXY));

    let pinned = lab.interlockctl(&[&PIN_PROXY[..], &["-o", "json"]].concat());
    let pinned = pinned.assert_report(0);
    let constraints = "[\"node.labels.com.docker.ucp.orchestrator.swarm==true\", \"node.platform.os==linux\"] -> [\"node.labels.role==dtr\"]";
    assert_eq!(
        updates(&pinned),
        [
            (
                CORE.to_owned(),
                format!(
                    "config /config.toml: {} -> {}; update failure action: pause -> rollback",
                    conf(1),
                    conf(2)
                )
            ),
            (PROXY.to_owned(), format!("constraints: {constraints}")),
        ]
    );
    let hosted = lab.interlockctl(&[&HOST_MODE[..], &["-o", "json"]].concat());
    let hosted = hosted.assert_report(0);
    assert_eq!(
        updates(&hosted),
        [
            (
                CORE.to_owned(),
                format!(
                    "config /config.toml: {} -> {}; ports: [] -> [8080/tcp (host)]",
                    conf(2),
                    conf(3)
                )
            ),
            (
                PROXY.to_owned(),
                "ports: [80:80/tcp (ingress), 8443:443/tcp (ingress)] -> [7080:80/tcp (host), 7443:443/tcp (host)]"
                    .to_owned()
            ),
        ]
    );

    let mut core_expected = mounting(core_before, &lab, &conf(3));
    core_expected["UpdateConfig"]["FailureAction"] = json!("rollback");
    let core_expected = publishing(core_expected, 8080, port(None, 8080, "host"));
    assert_eq!(lab.spec(CORE), core_expected, "the core's whole spec");

    let mut proxy_expected = proxy_before;
    proxy_expected["TaskTemplate"]["Placement"]["Constraints"] = json!(["node.labels.role==dtr"]);
    let proxy_expected = publishing(proxy_expected, 80, port(Some(7080), 80, "host"));
    let mut proxy_expected = publishing(proxy_expected, 443, port(Some(7443), 443, "host"));
    let mut proxy_after = lab.spec(PROXY);
    let (pin_updates, host_updates) =
        (timed_updates(&pinned, PROXY), timed_updates(&hosted, PROXY));
    assert!(
        pin_updates >= 1 && host_updates >= 1,
        "each run timed its proxy update"
    );
    // Each run's edits may also join the rollout the core's write started, which forces
    // each task's re-creation once (at most one more per run).
    let forced = take_force_update(&mut proxy_after);
    let reported = take_force_update(&mut proxy_expected) + (pin_updates + host_updates - 2) as u64;
    assert!(
        (reported..=reported + 2).contains(&forced),
        "ForceUpdate {forced} counts the force updates the runs reported ({reported}) and at \
         most one join of the core's rollout per run"
    );
    assert_eq!(
        without_the_cores_proxy_config(proxy_after),
        without_the_cores_proxy_config(proxy_expected),
        "the proxy's whole spec"
    );

    // The runbook's outcome.
    assert_eq!(lab.core_config(), conf(3));
    assert_eq!(
        lab.configs(),
        [1, 2, 3].map(conf),
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
        assert!(closed(addr, 7080), "{addr}:7080 must not answer");
    }

    // What an operator sees, once the core's own proxy-config swap is over.
    lab.settle();
    let text = lab.interlockctl(&["status"]);
    text.assert_code(0);
    insta::with_settings!({filters => vec![
        (r"version \d+", "version [index]"),
        (r"updated \d+[smhd] ago", "updated [time] ago"),
    ]}, {
        insta::assert_snapshot!("status_text_after_runbook", text.stdout);
    });
    let status = lab.interlockctl(&["status", "-o", "json"]);
    insta::assert_json_snapshot!("status_json_after_runbook", status.assert_report(0), {
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
    for args in [&PIN_PROXY[..], &HOST_MODE[..]] {
        let report = lab
            .interlockctl(&[args, &["-o", "json"]].concat())
            .assert_report(0);
        assert_eq!(report["status"], "no_changes");
        assert_eq!(report["config"]["next"], Value::Null);
    }
    assert_eq!(
        (lab.versions(), lab.configs()),
        before,
        "re-runs change nothing"
    );
}

/// A config the core cannot load: Swarm rolls the core back by itself (which clears its
/// previous spec), the run says exit 5, and the proxy keeps serving. `rollback` then returns
/// to the current config's recorded parent, the only record left.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_config_the_core_cannot_load_is_rolled_back_then_rollback_follows_the_recorded_parent() {
    let lab = lab();
    lab.runbook();
    let live = lab.interlockctl(&["show"]).assert_code(0).stdout.clone();
    let bad = live.replace("PollInterval = \"3s\"", "PollInterval = \"soon\"");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("unloadable-config.toml");
    std::fs::write(&file, bad).unwrap();
    let output = lab.interlockctl(&["apply", file.to_str().unwrap(), "--yes", "-o", "json"]);
    let report = output.assert_report(5);
    assert_eq!(report["status"], "rolled_back");
    assert_eq!(report["errors"][0]["code"], "rolled_back");
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("on ilab-mgr: failed (task: non-zero exit (1))"),
        "names the failed core task: {message}"
    );
    assert_eq!(lab.core_config(), conf(3), "the core is back on its config");
    for addr in &lab.dtr_addrs {
        assert!(
            http_get(addr, 7080).is_some(),
            "the proxy still answers on {addr}:7080"
        );
    }

    let core = lab.inspect(CORE);
    assert_eq!(core["UpdateStatus"]["State"], "rollback_completed");
    assert_eq!(
        core["PreviousSpec"],
        Value::Null,
        "Swarm's rollback cleared it"
    );
    let rollback = lab.interlockctl(&["rollback", "--yes", "-o", "json"]);
    let report = rollback.assert_report(0);
    assert_eq!(
        (&report["config"]["current"], &report["config"]["next"]),
        (&json!(conf(3)), &json!(conf(2))),
        "conf-3's recorded parent"
    );
    assert_eq!(lab.core_config(), conf(2));
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn dry_run_and_check_change_nothing() {
    let lab = lab();
    let before = (lab.versions(), lab.configs());
    let dry = lab.interlockctl(&PIN_PROXY_PLAN);
    let report = dry.assert_report(0);
    assert_eq!(
        (report["status"].as_str(), report["dry_run"].as_bool()),
        (Some("planned"), Some(true))
    );
    assert_eq!(report["config"]["next"], conf(2));
    assert_eq!(
        action_kinds(&report),
        ["create_config", "update_service", "update_service"]
    );
    lab.interlockctl(&["host-mode", "--http", "7080", "--https", "7443", "--check"])
        .assert_code(3);
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
    output.assert_code(7);
    assert!(
        output
            .stderr
            .contains("hint: review the plan, then pass `--yes`"),
        "{}",
        output.render()
    );
    assert_eq!((lab.versions(), lab.configs()), before);
}

/// On an operator's terminal the plan is shown and a prompt asks; answering `n` changes
/// nothing and exits 7.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn declining_the_prompt_on_a_terminal_changes_nothing() {
    let lab = lab();
    let before = (lab.versions(), lab.configs());
    let declined = lab
        .interlockctl_command(&["pin-proxy", "--label", "role=dtr"])
        .run_on_terminal("Apply these changes?", b"n");
    eprintln!("{}", declined.render());
    declined.assert_code(7);
    let shown = &declined.stderr;
    assert!(
        shown.contains("+    ProxyConstraints = [\"node.labels.role==dtr\"]"),
        "the diff comes first: {shown}"
    );
    assert!(shown.contains("Plan:\n"), "{shown}");
    assert!(
        shown.contains("error: the plan was not confirmed"),
        "{shown}"
    );
    assert_eq!((lab.versions(), lab.configs()), before, "nothing changed");
}

/// The diff and the plan come before the run's first request that changes anything: in the
/// order of what the run printed with `-v`, which traces every Engine API request once it
/// was answered, both precede the first `POST` (the config's creation).
fn assert_shown_before_the_first_change(stderr: &str) {
    let at = |needle: &str| {
        stderr
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not printed: {stderr}"))
    };
    let diff = at("+    ProxyConstraints = [\"node.labels.role==dtr\"]\n");
    let plan = at("Plan:\n");
    let first_write = at("api: POST ");
    assert!(
        diff < plan && plan < first_write,
        "diff, then plan, then the first change: {stderr}"
    );
    let first_line = stderr[first_write..].lines().next().unwrap_or_default();
    assert!(
        first_line.contains("/configs/create"),
        "the first change creates the config: {first_line}"
    );
    assert!(
        !stderr[..first_write].contains("api: DELETE"),
        "nothing removed before: {stderr}"
    );
}

/// `pin-proxy` without `--replicas` sets `ProxyReplicas` to the number of nodes that carry
/// the label and are Ready and Active, where the fixture has 2: 3 of four labelled nodes
/// when one is drained, and 3 again when instead one is down (its engine paused, so it no
/// longer answers the manager).
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn replicas_default_to_the_ready_active_labelled_nodes() {
    let lab = lab();
    for node in ["ilab-mgr", "ilab-w3"] {
        lab.docker(&["node", "update", "--label-add", "role=dtr", node]);
    }
    let assert_three_replicas_planned = |left_out: &str| {
        let report = lab.interlockctl(&PIN_PROXY_PLAN).assert_report(0);
        let changes = config_changes(&report);
        assert!(
            changes.contains(&("Extensions.default.ProxyReplicas", "2", "3")),
            "{left_out}: {changes:?}"
        );
        assert!(
            updates(&report).contains(&(
                PROXY.to_owned(),
                format!(
                    "replicas: 2 -> 3; constraints: {:?} -> [\"node.labels.role==dtr\"]",
                    UCP_CONSTRAINTS
                )
            )),
            "{left_out}: {report}"
        );
    };
    lab.docker(&["node", "update", "--availability", "drain", "ilab-w3"]);
    assert_three_replicas_planned("ilab-w3 drained");

    lab.docker(&["node", "update", "--availability", "active", "ilab-w3"]);
    let down = lab.node_down("ilab-w2");
    let status = |node: &str| {
        lab.docker(&[
            "node",
            "inspect",
            "--format",
            "{{.Status.State}} {{.Spec.Availability}}",
            node,
        ])
    };
    assert_eq!(
        (status("ilab-w2"), status("ilab-w3")),
        ("down active".to_owned(), "ready active".to_owned()),
        "as the docker CLI reports them"
    );
    assert_three_replicas_planned("ilab-w2 down");
    drop(down);
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn rollback_twice_returns_to_where_it_started() {
    let lab = lab();
    let pin = lab.interlockctl(&[&PIN_PROXY[..], &["-v"]].concat());
    pin.assert_code(0);
    assert_shown_before_the_first_change(&pin.stderr);
    let pinned = lab.proxy_node_addrs();
    lab.interlockctl(&["rollback", "--yes"]).assert_code(0);
    assert_eq!(lab.core_config(), conf(1));
    assert_eq!(
        lab.spec(PROXY)["TaskTemplate"]["Placement"]["Constraints"],
        json!(UCP_CONSTRAINTS),
        "the UCP default constraints are back"
    );
    lab.interlockctl(&["rollback", "--yes"]).assert_code(0);
    assert_eq!(lab.core_config(), conf(2));
    assert_eq!(lab.proxy_node_addrs(), pinned);
    assert_eq!(
        lab.configs(),
        [1, 2].map(conf),
        "rollback reuses configs, never copies them"
    );
}

/// `rollback` after `host-mode` returns both services to what they were before that run:
/// the proxy on its ingress ports, the core without the host port 8080 the run added. Then
/// `rollback --to NAME` goes further back, to the fixture's own config and specs; names
/// outside the lineage, and a lineage with nothing before, are refused.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn rollback_undoes_host_mode_and_rollback_to_goes_back_to_a_named_config() {
    let lab = lab();
    let unchanged = (lab.versions(), lab.configs());
    let nothing = lab.interlockctl(&["rollback", "--yes", "-o", "json"]);
    let report = nothing.assert_report(4);
    assert_eq!(report["errors"][0]["code"], "nothing_to_roll_back");
    assert_eq!(
        report["errors"][0]["message"],
        format!("{} has no previous config to return to", conf(1))
    );
    let unknown = lab.interlockctl(&["rollback", "--to", "nope", "--yes", "-o", "json"]);
    let report = unknown.assert_report(4);
    assert_eq!(report["errors"][0]["code"], "config_not_found");
    assert_eq!(
        report["errors"][0]["hint"],
        format!("pass `--to` one of: {}", conf(1))
    );
    assert_eq!(
        (lab.versions(), lab.configs()),
        unchanged,
        "refusals change nothing"
    );

    let (core_fixture, proxy_fixture) = (lab.spec(CORE), lab.spec(PROXY));
    lab.interlockctl(&PIN_PROXY).assert_code(0);
    let (core_pinned, proxy_pinned) = (lab.spec(CORE), lab.spec(PROXY));
    lab.interlockctl(&HOST_MODE).assert_code(0);
    assert!(lab.spec(CORE)["EndpointSpec"]["Ports"].is_array());

    lab.interlockctl(&["rollback", "--yes"]).assert_code(0);
    assert_eq!(lab.core_config(), conf(2));
    assert_eq!(
        lab.spec(CORE),
        core_pinned,
        "no host port 8080, back on conf-2"
    );
    assert_eq!(
        without_force_update(without_the_cores_proxy_config(lab.spec(PROXY))),
        without_force_update(without_the_cores_proxy_config(proxy_pinned)),
        "the proxy is back on its ingress ports 80 and 8443"
    );
    // Ingress ports never answer in the lab (tests/lab/NOTES.md): the spec above shows them.
    for addr in &lab.dtr_addrs {
        assert!(closed(addr, 7080), "{addr}:7080 is closed again");
    }

    let to = lab.interlockctl(&["rollback", "--to", &conf(1), "--yes", "-o", "json"]);
    let report = to.assert_report(0);
    assert_eq!(report["config"]["next"], conf(1));
    assert_eq!(lab.core_config(), conf(1));
    let mut core_expected = core_fixture;
    core_expected["UpdateConfig"]["FailureAction"] = json!("rollback");
    assert_eq!(lab.spec(CORE), core_expected, "the fixture's core");
    assert_eq!(
        without_force_update(without_the_cores_proxy_config(lab.spec(PROXY))),
        without_force_update(without_the_cores_proxy_config(proxy_fixture)),
        "the fixture's proxy"
    );
    assert_eq!(lab.configs(), [1, 2, 3].map(conf), "no config was copied");
}

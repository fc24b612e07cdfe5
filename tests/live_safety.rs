//! End-to-end safety tests on the lab swarm (see `tests/lab_support`): preflight refusals
//! that change nothing and what `--force` overrides, a backup that cannot be written, runs
//! interrupted at each step (the connection cut, or the process killed) and finished by a
//! re-run, concurrent runs, history, prune and backups.

mod lab_support;

use std::sync::Arc;
use std::time::Duration;

use lab_support::front::{Act, Front, Gate, Nth, RUN_STEPS};
use lab_support::{
    CORE, Lab, PIN_PROXY, PROXY, Run, action_kinds, action_targets, conf, config_changes, lab,
    manifest_dir, wait_until,
};
use serde_json::{Value, json};

/// Runs `args`, expects exit 4 with `error_code` and `message` in the first error, and no
/// change to any service version or config.
fn assert_refused(lab: &Lab, args: &[&str], error_code: &str, message: &str) {
    let before = (lab.versions(), lab.configs());
    let mut args = args.to_vec();
    args.extend(["--yes", "-o", "json"]);
    let run = lab.interlockctl(&args);
    let report = run.assert_report(4);
    assert_eq!(report["status"], "refused");
    let errors = report["errors"].as_array().unwrap();
    let error = errors
        .iter()
        .find(|e| e["code"] == error_code)
        .unwrap_or_else(|| panic!("no {error_code} in {errors:?}"));
    assert!(
        error["message"].as_str().unwrap().contains(message),
        "{error}"
    );
    assert!(
        error["hint"].as_str().is_some_and(|h| !h.is_empty()),
        "a refusal names the fix: {error}"
    );
    assert!(run.stderr.contains(message), "{}", run.render());
    assert_eq!(
        (lab.versions(), lab.configs()),
        before,
        "a refusal changes nothing"
    );
}

/// A copy of the live config with each `from` replaced by its `to`, written to a file for
/// `apply`.
fn edited_live_config(lab: &Lab, name: &str, edits: &[(&str, &str)]) -> String {
    let mut text = lab.interlockctl(&["show"]).assert_code(0).stdout.clone();
    for (from, to) in edits {
        assert!(text.contains(from), "{from} is in the live config");
        text = text.replace(from, to);
    }
    let path = manifest_dir().join(format!("target/{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The live config with 3 proxy replicas pinned to `role=dtr` in host mode: more than the
/// two nodes that carry the label.
fn too_many_replicas(lab: &Lab) -> String {
    edited_live_config(
        lab,
        "too-many-replicas",
        &[
            ("ProxyReplicas = 2", "ProxyReplicas = 3"),
            ("PublishMode = \"ingress\"", "PublishMode = \"host\""),
            (
                "ProxyConstraints = [\"node.labels.com.docker.ucp.orchestrator.swarm==true\", \"node.platform.os==linux\"]",
                "ProxyConstraints = [\"node.labels.role==dtr\"]",
            ),
        ],
    )
}

/// Publishes port 7443 through ingress from a service of its own (`lab-web`).
fn publish_7443_elsewhere(lab: &Lab) {
    lab.docker(&[
        "service",
        "create",
        "--quiet",
        "--detach",
        "--no-resolve-image",
        "--name",
        "lab-web",
        "--publish",
        "published=7443,target=80",
        &lab.image,
        "sleep",
        "3600",
    ]);
}

/// Makes the proxy's update pause: a task that cannot start, with Swarm's default failure
/// action.
fn pause_a_proxy_update(lab: &Lab) {
    lab.docker(&[
        "service",
        "update",
        "--detach",
        "--update-failure-action",
        "pause",
        "--args",
        "/no/such/command",
        PROXY,
    ]);
    wait_until(
        "the proxy's update to pause",
        Duration::from_secs(60),
        || lab.inspect(PROXY)["UpdateStatus"]["State"] == "paused",
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn refuses_a_label_no_ready_node_carries() {
    let lab = lab();
    assert_refused(
        &lab,
        &["pin-proxy", "--label", "role=edge"],
        "no_labelled_nodes",
        "no Ready, Active node has the label role=edge",
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn refuses_more_host_mode_replicas_than_eligible_nodes() {
    let lab = lab();
    let file = too_many_replicas(&lab);
    assert_refused(
        &lab,
        &["apply", &file],
        "too_few_nodes",
        "3 proxy replicas in host mode need 3 eligible nodes, but only 2",
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn refuses_a_port_another_service_publishes() {
    let lab = lab();
    publish_7443_elsewhere(&lab);
    assert_refused(
        &lab,
        &["host-mode", "--http", "7080", "--https", "7443"],
        "port_in_use",
        "port 7443 is already published by service lab-web (through ingress",
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn refuses_when_an_object_is_missing() {
    let lab = lab();
    assert_refused(
        &lab,
        &["--service", "nope", "pin-proxy", "--label", "role=dtr"],
        "core_service_missing",
        "service nope does not exist",
    );
    assert_refused(
        &lab,
        &[
            "--service",
            "ucp-interlock-extension",
            "pin-proxy",
            "--label",
            "role=dtr",
        ],
        "config_missing",
        "mounts no config at /config.toml",
    );
    assert_refused(
        &lab,
        &["--extension", "east", "pin-proxy", "--label", "role=dtr"],
        "extension_not_found",
        "has no [Extensions.east]",
    );
    let file = edited_live_config(&lab, "no-replicas", &[("    ProxyReplicas = 2\n", "")]);
    assert_refused(
        &lab,
        &["apply", &file],
        "missing_proxy_replicas",
        "has no ProxyReplicas",
    );
    lab.docker(&["service", "rm", PROXY]);
    assert_refused(
        &lab,
        &["pin-proxy", "--label", "role=dtr"],
        "proxy_service_missing",
        "the proxy service ucp-interlock-proxy does not exist",
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn refuses_while_a_previous_update_is_paused() {
    let lab = lab();
    pause_a_proxy_update(&lab);
    assert_refused(
        &lab,
        &["pin-proxy", "--label", "role=dtr"],
        "update_in_progress",
        "a previous update of ucp-interlock-proxy is paused",
    );
}

/// `--force`, given through the command line, overrides the node-count and port checks
/// (the plan is made, with a warning per overridden refusal) and nothing else: a label no
/// node carries, a missing proxy and a paused update are still refused. All runs are dry
/// runs: what a forced run then does is Swarm's business.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn force_overrides_only_the_node_count_and_port_checks() {
    let lab = lab();
    let file = too_many_replicas(&lab);
    publish_7443_elsewhere(&lab);
    for (args, code, warning) in [
        (
            vec!["apply", file.as_str()],
            "too_few_nodes",
            "3 proxy replicas in host mode need 3 eligible nodes, but only 2",
        ),
        (
            vec!["host-mode", "--http", "7080", "--https", "7443"],
            "port_in_use",
            "port 7443 is already published by service lab-web",
        ),
    ] {
        let dry = [&args[..], &["--dry-run", "-o", "json"]].concat();
        let refused = lab.interlockctl(&dry).assert_report(4);
        assert_eq!(refused["errors"][0]["code"], code);
        let forced = lab
            .interlockctl(&[&dry[..], &["--force"]].concat())
            .assert_report(0);
        assert_eq!(forced["status"], "planned", "{forced}");
        let warnings = forced["warnings"].to_string();
        assert!(warnings.contains(warning), "{forced}");
    }
    for (args, code) in [
        (
            vec!["pin-proxy", "--label", "role=edge"],
            "no_labelled_nodes",
        ),
        (
            vec!["pin-proxy", "--label", "role=dtr", "--replicas", "0"],
            "invalid_replicas",
        ),
    ] {
        let forced = [&args[..], &["--dry-run", "--force", "-o", "json"]].concat();
        let report = lab.interlockctl(&forced).assert_report(4);
        assert_eq!(report["errors"][0]["code"], code, "{report}");
    }
    pause_a_proxy_update(&lab);
    assert_refused(
        &lab,
        &["pin-proxy", "--label", "role=dtr", "--force"],
        "update_in_progress",
        "a previous update of ucp-interlock-proxy is paused",
    );
    lab.docker(&["service", "rm", PROXY]);
    assert_refused(
        &lab,
        &["pin-proxy", "--label", "role=dtr", "--force"],
        "proxy_service_missing",
        "the proxy service ucp-interlock-proxy does not exist",
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn history_and_prune_keep_what_a_rollback_needs() {
    let lab = lab();
    lab.runbook();
    let history = lab
        .interlockctl(&["history", "-o", "json"])
        .assert_report(0);
    let names: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [1, 2, 3].map(conf));
    let third = &history["history"][2];
    assert_eq!(
        (third["operation"].as_str(), third["parent"].as_str()),
        (Some("host-mode"), Some(conf(2).as_str()))
    );
    assert!(third["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(third["current"], true);

    // conf-3 is current and conf-2 is the core's rollback target: only conf-1 may go.
    let prune_all = ["prune", "--keep", "0", "-o", "json"];
    let dry = lab
        .interlockctl(&[&prune_all[..], &["--dry-run"]].concat())
        .assert_report(0);
    assert_eq!(action_kinds(&dry), ["delete_config"]);
    assert_eq!(action_targets(&dry, "delete_config"), [conf(1)]);
    assert_eq!(
        lab.configs(),
        [1, 2, 3].map(conf),
        "--dry-run deletes nothing"
    );
    lab.interlockctl(&[&prune_all[..], &["--yes"]].concat())
        .assert_code(0);
    assert_eq!(lab.configs(), [2, 3].map(conf));
    assert_eq!(
        lab.interlockctl(&prune_all).assert_report(0)["status"],
        "no_changes"
    );
    lab.interlockctl(&["rollback", "--yes"]).assert_code(0);
    assert_eq!(lab.core_config(), conf(2), "the rollback target survived");
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_backup_of_the_previous_state_is_written_before_any_change() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("backups");
    let report = lab
        .interlockctl(
            &[
                &PIN_PROXY[..],
                &["-o", "json", "--backup-dir", root.to_str().unwrap()],
            ]
            .concat(),
        )
        .assert_report(0);
    let backup = std::path::PathBuf::from(report["backup"].as_str().unwrap());
    assert!(backup.starts_with(&root));
    let mut files: Vec<String> = std::fs::read_dir(&backup)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            format!("{}.toml", conf(1)),
            format!("{PROXY}.spec.json"),
            format!("{CORE}.spec.json")
        ]
    );
    let mode = |path: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&backup), 0o700, "private: the config holds secrets");
    for file in &files {
        assert_eq!(mode(&backup.join(file)), 0o600, "{file}");
    }
    let saved = std::fs::read_to_string(backup.join(format!("{}.toml", conf(1)))).unwrap();
    assert_eq!(
        saved,
        std::fs::read_to_string(manifest_dir().join("tests/lab/core-config.toml")).unwrap()
    );
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(backup.join(format!("{PROXY}.spec.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 2);
}

/// A backup that cannot be written stops the run before the first change: exit 4 with
/// `backup_failed`, naming the directory, and no config or service changed.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_backup_that_cannot_be_written_changes_nothing() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    // Not a directory: unwritable even for root, whom file modes do not stop.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let root = file.join("backups");
    let root = root.to_str().unwrap();
    assert_refused(
        &lab,
        &["pin-proxy", "--label", "role=dtr", "--backup-dir", root],
        "backup_failed",
        &format!("cannot write the backup to {root}/"),
    );
}

/// On the lab: secrets that change in the live config, in the shapes the lab's stand-in core
/// reads (a string, an inline table, an array of inline tables, an array of tables; the
/// multi-line ones are covered on the fake engine), are hidden in the diff (text and JSON)
/// and the change list, which still show each one as changed.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn changed_secrets_in_the_live_config_are_hidden() {
    let lab = lab();
    let with_secrets = |version: &str| {
        let registry = format!(
            "TargetSSLPort = 443\n    Registry = {{ Server = \"dtr.lab\", Token = \"LABSECRET-inline-table-{version}\" }}\n    \
             Upstreams = [{{ Name = \"metrics\", ApiKey = \"LABSECRET-array-of-inline-tables-{version}\" }}]"
        );
        let backends = format!(
            "UnderscoresInHeaders = false\n    [[Extensions.default.Backends]]\n      Name = \"registry\"\n      \
             Password = \"LABSECRET-array-of-tables-{version}\""
        );
        let admin_pass = format!("AdminPass = \"LABSECRET-basic-{version}\"");
        edited_live_config(
            &lab,
            &format!("lab-secrets-{version}"),
            &[
                ("TargetSSLPort = 443", &registry),
                ("UnderscoresInHeaders = false", &backends),
                ("AdminPass = \"\"", &admin_pass),
            ],
        )
    };
    let first = with_secrets("1");
    let rotated = with_secrets("2");
    lab.interlockctl(&["apply", &first, "--yes"]).assert_code(0);

    let text = lab.interlockctl(&["apply", &rotated, "--dry-run"]);
    text.assert_code(0);
    let stderr = &text.stderr;
    assert!(!stderr.contains("LABSECRET"), "{stderr}");
    let hidden = |marker: char| {
        stderr
            .lines()
            .filter(|line| line.starts_with(marker) && line.contains("\"<redacted>\""))
            .count()
    };
    assert_eq!((hidden('-'), hidden('+')), (4, 4), "{stderr}");

    let output = lab.interlockctl(&["apply", &rotated, "--dry-run", "-o", "json"]);
    let report = output.assert_report(0);
    assert!(!output.stdout.contains("LABSECRET"));
    assert_eq!(report["status"], "planned");
    let changes = config_changes(&report);
    let hidden = "\"<redacted>\"";
    let upstreams = "[{ Name = \"metrics\", ApiKey = \"<redacted>\" }]";
    assert_eq!(
        changes,
        [
            ("Extensions.default.Registry.Token", hidden, hidden),
            ("Extensions.default.Upstreams", upstreams, upstreams),
            ("Extensions.default.Config.AdminPass", hidden, hidden),
            ("Extensions.default.Backends[0].Password", hidden, hidden),
        ]
    );
}

/// The state a finished `pin-proxy --label role=dtr` leaves, whatever interrupted it; read
/// once the core's own proxy-config swap is over.
fn assert_pinned(lab: &Lab) {
    assert_eq!(lab.core_config(), conf(2));
    assert_eq!(lab.configs(), [1, 2].map(conf), "exactly one new config");
    assert_eq!(
        lab.spec(PROXY)["TaskTemplate"]["Placement"]["Constraints"],
        json!(["node.labels.role==dtr"])
    );
    lab.settle();
    let status = lab.interlockctl(&["status", "-o", "json"]).assert_report(0);
    assert_eq!(status["state"]["drift"], json!([]), "{status}");
    assert_eq!(status["state"]["problems"], json!([]), "{status}");
}

/// Points in a `pin-proxy` run: the request acted on, and the step the run is in then.
struct Point {
    step: &'static str,
    request: Nth,
}

/// The config created; the core's update sent; the proxy's update sent; the waits.
const POINTS: [Point; 4] = [
    Point {
        step: "creating the config",
        request: RUN_STEPS[0],
    },
    Point {
        step: "updating the core",
        request: RUN_STEPS[1],
    },
    Point {
        step: "updating the proxy",
        request: RUN_STEPS[2],
    },
    Point {
        step: "waiting for the rollouts",
        request: RUN_STEPS[3],
    },
];

/// Where the swarm stands once the engine handled the request at `point`: the config made,
/// and then each update sent.
fn assert_step_reached(lab: &Lab, point: &Point) {
    let constraints = || lab.spec(PROXY)["TaskTemplate"]["Placement"]["Constraints"].clone();
    let pinned = json!(["node.labels.role==dtr"]);
    assert_eq!(
        lab.configs(),
        [1, 2].map(conf),
        "{}: conf-2 exists",
        point.step
    );
    let (core, proxy_pinned) = match point.step {
        "creating the config" => (conf(1), false),
        "updating the core" => (conf(2), false),
        _ => (conf(2), true),
    };
    assert_eq!(lab.core_config(), core, "{}: the core's config", point.step);
    assert_eq!(
        constraints() == pinned,
        proxy_pinned,
        "{}: the proxy's constraints",
        point.step
    );
}

/// The last line of a run's `-v` output that tells its step: neither an API call, the
/// totals, nor the error that ended it.
fn last_step_line(run: &Run) -> &str {
    run.stderr
        .lines()
        .rev()
        .find(|line| {
            !(line.is_empty()
                || ["api: ", "engine: ", "error: ", "hint: "]
                    .iter()
                    .any(|prefix| line.starts_with(prefix)))
        })
        .unwrap_or_default()
}

/// The run's `-v` output says which step it was in when it stopped.
fn assert_last_step(run: &Run, point: &Point) {
    let last = last_step_line(run);
    let expected = match point.step {
        "creating the config" => format!("creating config {}", conf(2)),
        "updating the core" => format!("updating {CORE} at version "),
        "updating the proxy" => format!("updating {PROXY} at version "),
        _ => String::new(),
    };
    assert!(
        last.starts_with(&expected),
        "{}: the run's last step line is {last:?}:\n{}",
        point.step,
        run.render()
    );
    if point.step == "waiting for the rollouts" {
        assert!(
            run.stderr
                .contains(&format!("updating {PROXY} at version "))
                && !run.stderr.contains("Verified:"),
            "{}: both updates sent, nothing verified yet:\n{}",
            point.step,
            run.render()
        );
    }
}

/// The connection is cut right after the engine handled the request of each step: the run
/// fails, the swarm shows the step done, and a re-run finishes the job.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn an_interrupted_run_is_finished_by_a_re_run_at_every_step() {
    let lab = lab();
    for point in &POINTS {
        lab_support::reset();
        let front = Front::start(&lab.socket(), point.request.rule(|| Act::Cut));
        let interrupted = lab
            .interlockctl_command(&[&PIN_PROXY[..], &["-v"]].concat())
            .env("DOCKER_HOST", front.docker_host())
            .run();
        eprintln!("{}", interrupted.render());
        let cut = front.acted(Duration::ZERO);
        assert!(cut.is_some(), "{}: the cut happened", point.step);
        assert_eq!(interrupted.code, 1, "{}: the cut fails the run", point.step);
        assert!(
            interrupted
                .stderr
                .contains("-> failed: connection closed before message completed"),
            "{}: the run saw the connection close:\n{}",
            point.step,
            interrupted.render()
        );
        assert_last_step(&interrupted, point);
        // The engine may refuse the cut update when the core wrote the service just before
        // (out of sequence): the step is then not done, and the re-run does it.
        let refused = cut
            .as_deref()
            .is_some_and(|cut| !cut.contains(" -> HTTP/1.1 2"));
        if !refused {
            assert_step_reached(&lab, point);
        }
        lab.interlockctl(&PIN_PROXY).assert_code(0);
        assert_pinned(&lab);
    }
    lab_support::report(&format!(
        "interruption points exercised on the lab: {}",
        POINTS.len()
    ));
}

/// The run is killed (SIGKILL) while it waits for the engine's answer to the request of
/// each step, the engine having handled it: its last output and the swarm show the step it
/// was in, and a re-run finishes the job.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_killed_run_is_finished_by_a_re_run() {
    let lab = lab();
    for point in &POINTS {
        lab_support::reset();
        let front = Front::start(&lab.socket(), point.request.rule(|| Act::Hold));
        let mut running = lab
            .interlockctl_command(&[&PIN_PROXY[..], &["-v"]].concat())
            .env("DOCKER_HOST", front.docker_host())
            .spawn();
        let held = front.acted(Duration::from_secs(120));
        running.kill();
        let killed = running.finish();
        eprintln!("{}", killed.render());
        assert!(held.is_some(), "{}: the run reached the step", point.step);
        assert_eq!(killed.code, -9, "{}: killed by SIGKILL", point.step);
        assert_last_step(&killed, point);
        assert_step_reached(&lab, point);
        lab.interlockctl(&PIN_PROXY).assert_code(0);
        assert_pinned(&lab);
    }
    lab_support::report(&format!(
        "SIGKILL moments exercised on the lab: {}",
        POINTS.len()
    ));
}

/// The proxy's placement and published ports as the docker CLI shows them are the ones the
/// live config's lines name (written out here, apart from the tool's own `status`): one of
/// the lab's three states in `concurrent_runs_never_clash`.
fn assert_proxy_as_the_live_config_says(lab: &Lab, round: usize) {
    let text = lab.config_text(&lab.core_config());
    let has = |line: &str| text.lines().any(|l| l.trim() == line);
    let ports: &[u64] = if has("PublishedPort = 7081") {
        &[7081, 7444]
    } else if has("PublishedPort = 7080") {
        &[7080, 7443]
    } else {
        &[80, 8443]
    };
    let constraints = if has("ProxyConstraints = [\"node.labels.role==dtr\"]") {
        json!(["node.labels.role==dtr"])
    } else {
        json!([
            "node.labels.com.docker.ucp.orchestrator.swarm==true",
            "node.platform.os==linux"
        ])
    };
    let spec = lab.spec(PROXY);
    let mut published: Vec<u64> = spec["EndpointSpec"]["Ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|port| port["PublishedPort"].as_u64())
        .collect();
    published.sort_unstable();
    assert_eq!(
        (
            published.as_slice(),
            &spec["TaskTemplate"]["Placement"]["Constraints"]
        ),
        (ports, &constraints),
        "round {round}: the proxy as the live config says:\n{text}"
    );
}

/// Two runs at once, held until both have planned from the same state (each one's first
/// config create waits at a gate until the other's arrives): when they want the same config both
/// succeed; otherwise exactly one applies and the other stops with `changed_underneath`
/// instead of making the proxy match a config that is no longer live. Either way the core
/// and the proxy agree afterwards. The rounds: the same command and values, two commands,
/// the same command with other values (which run wins is up to the engine, so the order of
/// a pair does not matter).
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn concurrent_runs_never_clash() {
    let lab = lab();
    let pin: &[&str] = &["pin-proxy", "--label", "role=dtr"];
    let host: &[&str] = &["host-mode", "--http", "7080", "--https", "7443"];
    let rounds: [(&[&str], &[&str]); 3] = [
        (pin, pin),
        (pin, host),
        (host, &["host-mode", "--http", "7081", "--https", "7444"]),
    ];
    for (round, (first, second)) in rounds.iter().enumerate() {
        lab_support::reset();
        let gate = Gate::new(2, Duration::from_secs(60));
        let start = |args: &[&str]| {
            let gate = Arc::clone(&gate);
            // The run's first config create waits; a retry under the next name does not.
            let front = Front::start(
                &lab.socket(),
                RUN_STEPS[0].rule(move || Act::After(Arc::clone(&gate))),
            );
            let running = lab
                .interlockctl_command(&[args, &["--yes", "-o", "json"]].concat())
                .env("DOCKER_HOST", front.docker_host())
                .spawn();
            (front, running)
        };
        let (a, b) = (start(first), start(second));
        let runs = [a.1.finish(), b.1.finish()];
        for run in &runs {
            eprintln!("round {round}:\n{}", run.render());
        }
        assert_eq!(
            gate.arrived(),
            2,
            "round {round}: both runs planned from conf-1"
        );
        let mut outcomes: Vec<(i32, String)> = runs
            .iter()
            .map(|run| {
                let error = &run.json()["errors"][0]["code"];
                (run.code, error.as_str().unwrap_or_default().to_owned())
            })
            .collect();
        outcomes.sort();
        let expected = if first == second {
            vec![(0, String::new()), (0, String::new())]
        } else {
            vec![(0, String::new()), (1, "changed_underneath".to_owned())]
        };
        assert_eq!(
            outcomes, expected,
            "round {round}: {first:?} and {second:?}"
        );
        lab.settle();
        assert_proxy_as_the_live_config_says(&lab, round);
        let status = lab.interlockctl(&["status", "-o", "json"]).assert_report(0);
        assert_eq!(
            status["state"]["drift"],
            json!([]),
            "round {round}: core and proxy agree: {status}"
        );
        assert_eq!(
            status["state"]["problems"],
            json!([]),
            "round {round}: {status}"
        );
    }
    lab_support::report(&format!(
        "concurrent rounds without a clash: {}",
        rounds.len()
    ));
}

/// A config saved on Windows, applied to the lab: the config object keeps its CRLF line
/// breaks, the core loads it, and a later `pin-proxy` on that live config writes a config
/// with CRLF too, its diff showing the one changed line. The same file with a byte-order
/// mark, which the running config does not have, is refused before anything changes.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_config_saved_on_windows_keeps_its_crlf_and_a_new_byte_order_mark_is_refused() {
    let lab = lab();
    let lf = std::fs::read_to_string(manifest_dir().join("tests/lab/core-config.toml")).unwrap();
    let windows = lf
        .replace("PollInterval = \"3s\"", "PollInterval = \"2s\"")
        .replace('\n', "\r\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("windows.toml");
    let with_bom = dir.path().join("windows-bom.toml");
    std::fs::write(&file, &windows).unwrap();
    std::fs::write(&with_bom, format!("\u{feff}{windows}")).unwrap();

    assert_refused(
        &lab,
        &["apply", with_bom.to_str().unwrap()],
        "byte_order_mark",
        "starts with a UTF-8 byte-order mark, which the running config does not have",
    );

    let applied = lab
        .interlockctl(&["apply", file.to_str().unwrap(), "--yes", "-o", "json"])
        .assert_report(0);
    assert_eq!(applied["config"]["next"], conf(2));
    assert_eq!(
        lab.config_text(&conf(2)),
        windows,
        "byte for byte, CRLF kept"
    );

    let pinned = lab
        .interlockctl(&[&PIN_PROXY[..], &["-o", "json"]].concat())
        .assert_report(0);
    let before = "    ProxyConstraints = [\"node.labels.com.docker.ucp.orchestrator.swarm==true\", \"node.platform.os==linux\"]\r\n";
    let after = "    ProxyConstraints = [\"node.labels.role==dtr\"]\r\n";
    assert_eq!(windows.matches(before).count(), 1, "the lab config's line");
    assert_eq!(
        lab.config_text(&conf(3)),
        windows.replace(before, after),
        "only the edited line differs, CRLF kept"
    );
    let diff = pinned["config"]["diff"].as_str().unwrap();
    assert_eq!(
        lab_support::changed_lines(diff),
        [
            format!("-{}", before.trim_end()),
            format!("+{}", after.trim_end())
        ],
        "one line out, one in: {diff}"
    );
}

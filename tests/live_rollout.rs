//! End-to-end tests of the rollout against the lab's concurrent writer: the stand-in core
//! swaps a new nginx config object onto the proxy on every config load and whenever a routed
//! service appears or goes (`tests/lab/standin-core.sh`), as the real core does.

mod lab_support;

use std::time::{Duration, SystemTime};

use lab_support::{CORE, PROXY, lab, wait_until};

/// The content of the proxy config the core last swapped onto the proxy.
fn proxy_config(lab: &lab_support::Lab) -> String {
    let mounted = lab_support::mounted_proxy_config(&lab.spec(PROXY))
        .expect("the core mounted a proxy config");
    lab.config_text(&mounted)
}

/// A routed service is created while `pin-proxy` runs: the core rolls the proxy again with a
/// new nginx config while the run's own proxy update rolls. The run waits for that rollout,
/// verifies, and both writers' changes are in the proxy's spec at the end.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_route_change_in_the_middle_of_a_run_is_kept_and_waited_for() {
    let lab = lab();
    let (core_version, _) = lab.versions();
    let run = lab
        .interlockctl_command(&["pin-proxy", "--label", "role=dtr", "--yes", "-o", "json"])
        .spawn();
    // Once the run has updated the core, a routed service appears.
    wait_until(
        "the run's update of the core",
        Duration::from_secs(30),
        || lab.versions().0 != core_version,
    );
    lab.create_idle_service(
        "lab-route",
        &[
            "com.docker.lb.hosts=app.example.org",
            "com.docker.lb.port=80",
        ],
        &[],
    );
    let report = run.finish().assert_report(0);
    let ended = SystemTime::now();
    assert_eq!(report["status"], "applied");

    // Read at once, with no wait: while the run was going the core noticed the route (within
    // its one-second poll) and swapped in a config naming it, and the run waited until that
    // rollout of the proxy, which its own core update caused, was over.
    let proxy = lab.inspect(PROXY);
    assert!(
        proxy_config(&lab).contains("# route: lab-route"),
        "the route change happened before the run ended"
    );
    assert_eq!(
        proxy["UpdateStatus"]["State"], "completed",
        "the run ended with no rollout running on the proxy"
    );
    // The swarm's own times: the run's core update started, the proxy config with the route
    // was created, and the proxy's last rollout completed, in that order, before the end.
    let time = |value: &serde_json::Value| {
        let text = value.as_str().unwrap_or_else(|| panic!("a time: {value}"));
        humantime::parse_rfc3339_weak(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    };
    let core_started = time(&lab.inspect(CORE)["UpdateStatus"]["StartedAt"]);
    let mounted = lab_support::mounted_proxy_config(&proxy["Spec"]).expect("mounted");
    let created = lab.docker(&[
        "config",
        "inspect",
        "--format",
        "{{json .CreatedAt}}",
        &mounted,
    ]);
    let created = time(&serde_json::from_str(&created).expect("a JSON string"));
    let completed = time(&proxy["UpdateStatus"]["CompletedAt"]);
    assert!(
        core_started <= created && created <= completed && completed <= ended,
        "core update {core_started:?}, route config {created:?}, proxy rollout done {completed:?}, run ended {ended:?}"
    );
    let timed: Vec<&str> = report["timings"]
        .as_array()
        .expect("timings")
        .iter()
        .map(|t| t["service"].as_str().unwrap())
        .collect();
    assert!(
        timed.contains(&CORE) && timed.contains(&PROXY),
        "the run timed both rollouts: {timed:?}"
    );
    assert_eq!(
        proxy["Spec"]["TaskTemplate"]["Placement"]["Constraints"],
        serde_json::json!(["node.labels.role==dtr"]),
        "the run's change stays beside the core's"
    );
    let status = lab.interlockctl(&["status", "-o", "json"]).assert_report(0);
    assert_eq!(status["state"]["drift"], serde_json::json!([]));
    assert_eq!(status["state"]["core"]["service"], CORE);
}

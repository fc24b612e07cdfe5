//! End-to-end tests of the rollout against the lab's concurrent writer: the stand-in core
//! swaps a new nginx config object onto the proxy on every config load and whenever a routed
//! service appears or goes (`tests/lab/standin-core.sh`), as the real core does.

mod lab_support;

use std::time::{Duration, Instant};

use lab_support::{CORE, PROXY, lab};

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
    let deadline = Instant::now() + Duration::from_secs(30);
    while lab.versions().0 == core_version {
        assert!(Instant::now() < deadline, "the run never updated the core");
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.docker(&[
        "service",
        "create",
        "--detach",
        "--quiet",
        "--no-resolve-image",
        "--replicas",
        "0",
        "--name",
        "lab-route",
        "--label",
        "com.docker.lb.hosts=app.example.org",
        "--label",
        "com.docker.lb.port=80",
        &lab.image,
        "true",
    ]);
    let report = run.finish().assert_report(0);
    assert_eq!(report["status"], "applied");

    // The core noticed the route (within its one-second poll) and swapped a config naming it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy_config(&lab).contains("# route: lab-route") {
        assert!(
            Instant::now() < deadline,
            "the core never swapped in the new route"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let proxy = lab.inspect(PROXY);
    assert_eq!(
        proxy["Spec"]["TaskTemplate"]["Placement"]["Constraints"],
        serde_json::json!(["node.labels.role==dtr"]),
        "the run's change stays beside the core's"
    );
    let status = lab.interlockctl(&["status", "-o", "json"]).assert_report(0);
    assert_eq!(status["state"]["drift"], serde_json::json!([]));
    assert_eq!(status["state"]["core"]["service"], CORE);
}

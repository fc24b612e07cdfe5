//! Problem 4 on the lab swarm (see `tests/lab_support` and `tests/lab/NOTES.md`): a bad
//! `com.docker.lb.hosts` label reaches the proxy's nginx config and the proxy flaps until
//! Swarm rolls it back; `labels watch --reject --notify` undoes such a label before the core
//! renders it, tells a receiver, leaves valid changes alone, survives an engine restart and
//! ends on SIGTERM with exit 0.

mod lab_support;

use std::time::Duration;

use serde_json::Value;

use lab_support::{
    CORE, Lab, PROXY, Receiver, Running, kinds, lab, mounted_proxy_config, ndjson, restart_engine,
    wait_until,
};

fn relabel(lab: &Lab, name: &str, label: &str) {
    lab.docker(&[
        "service",
        "update",
        "--quiet",
        "--detach",
        "--label-add",
        label,
        name,
    ]);
}

/// Every task Swarm keeps for a service: ID, desired state, state.
fn tasks(lab: &Lab, name: &str) -> String {
    let format = "{{.ID}} {{.DesiredState}} {{.CurrentState}}";
    let all = lab.docker(&["service", "ps", "--no-trunc", "--format", format, name]);
    // The state's age ("Running 2 seconds ago") is not part of the comparison.
    all.lines()
        .map(|line| {
            line.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn version(lab: &Lab, name: &str) -> u64 {
    lab.inspect(name)["Version"]["Index"]
        .as_u64()
        .expect("a version")
}

/// The proxy's tasks that failed so far (all Swarm keeps), with their errors.
fn failed_proxy_tasks(lab: &Lab) -> Vec<String> {
    lab.docker(&[
        "service",
        "ps",
        "--no-trunc",
        "--format",
        "{{.CurrentState}} {{.Error}}",
        PROXY,
    ])
    .lines()
    .filter(|line| line.starts_with("Failed"))
    .map(str::to_owned)
    .collect()
}

/// Every proxy config the core rendered so far, with its text.
fn rendered_proxy_configs(lab: &Lab) -> Vec<String> {
    let filter = "name=com.docker.interlock.proxy.";
    let names = lab.docker(&["config", "ls", "--filter", filter, "--format", "{{.Name}}"]);
    assert!(!names.is_empty(), "the fixture's proxy config at least");
    names.lines().map(|name| lab.config_text(name)).collect()
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn without_the_watch_a_bad_hosts_label_makes_the_proxy_flap() {
    let lab = lab();
    lab.create_idle_service(
        "lab-typo",
        &[
            "com.docker.lb.hosts=typo.example;evil",
            "com.docker.lb.port=80",
        ],
        &[],
    );
    // The core renders the value into the proxy's config and swaps it on; the new proxy
    // tasks fail at start, and Swarm rolls the proxy back (FailureAction = rollback).
    wait_until("the proxy's rollback", Duration::from_secs(60), || {
        lab.inspect(PROXY)["UpdateStatus"]["State"] == "rollback_completed"
    });
    assert!(
        rendered_proxy_configs(&lab)
            .iter()
            .any(|text| text.contains("server_name typo.example;evil;")),
        "the core rendered the bad value into a proxy config"
    );
    let failed = failed_proxy_tasks(&lab);
    assert!(!failed.is_empty(), "proxy tasks failed on the bad config");
    assert!(
        failed
            .iter()
            .all(|line| line.ends_with(r#""task: non-zero exit (1)""#)),
        "{failed:?}"
    );
    let mounted = mounted_proxy_config(&lab.spec(PROXY)).expect("a mounted proxy config");
    assert_eq!(
        mounted, "com.docker.interlock.proxy.lab-fixture",
        "rolled back"
    );
}

/// The core's container on the manager (it runs there: `node.role==manager`).
fn core_container(lab: &Lab) -> String {
    let label = format!("label=com.docker.swarm.service.name={CORE}");
    let id = lab.docker(&["ps", "-q", "--filter", &label]);
    assert!(
        !id.is_empty() && !id.contains('\n'),
        "one core container: {id:?}"
    );
    id
}

fn wait_for_line(watch: &Running, what: &str, seen: impl Fn(&Value) -> bool) {
    let found = watch.wait_for_stdout(Duration::from_secs(60), |out| {
        out.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .any(|line| seen(&line))
    });
    assert!(found, "no {what} line:\n{}", watch.stdout_so_far());
}

fn is(kind: &'static str, service: &'static str) -> impl Fn(&Value) -> bool {
    move |line| line["kind"] == kind && (service.is_empty() || line["service"] == service)
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn the_watch_rejects_bad_labels_before_the_core_renders_them() {
    let lab = lab();
    let receiver = Receiver::start(Some(200));
    let watch = lab
        .interlockctl_command(&[
            "labels",
            "watch",
            "--reject",
            "--notify",
            &receiver.url,
            "-o",
            "json",
        ])
        .limit(Duration::from_secs(180))
        .spawn();
    wait_for_line(&watch, "watching", is("watching", ""));

    // The core is frozen while the labels change, so that the test does not depend on
    // where in the core's poll a change falls (the benchmark `watch` measures that window:
    // from the event to the rejecting update, against the core's poll interval).
    let core = core_container(&lab);
    lab.docker(&["pause", &core]);
    // A new service with a bad hosts label is rejected; a valid create and update are left
    // alone; an update that breaks a valid service gets its previous labels back.
    lab.create_idle_service(
        "lab-bad",
        &[
            "com.docker.lb.hosts=bad.example;evil",
            "com.docker.lb.port=80",
        ],
        &[],
    );
    lab.create_idle_service(
        "lab-ok",
        &["com.docker.lb.hosts=ok.example", "com.docker.lb.port=80"],
        &[],
    );
    relabel(
        &lab,
        "lab-ok",
        "com.docker.lb.hosts=ok.example,www.ok.example",
    );
    let ok_version = version(&lab, "lab-ok");
    lab.create_idle_service(
        "lab-web",
        &["com.docker.lb.hosts=web.example", "com.docker.lb.port=80"],
        &[],
    );
    // lab-web runs a task, to show that a rejection re-creates none.
    lab.docker(&["service", "scale", "--detach=false", "lab-web=1"]);
    let web_tasks = tasks(&lab, "lab-web");
    relabel(&lab, "lab-web", "com.docker.lb.hosts=web.example{");
    wait_for_line(&watch, "rejected lab-bad", is("rejected", "lab-bad"));
    wait_for_line(&watch, "rejected lab-web", is("rejected", "lab-web"));
    lab.docker(&["unpause", &core]);
    assert_eq!(tasks(&lab, "lab-web"), web_tasks, "no task re-created");
    assert_eq!(web_tasks.lines().count(), 1, "{web_tasks}");
    // No task of a test service is left running when the engine restarts below (the lab's
    // reset must stop every task of the removed services).
    lab.docker(&["service", "scale", "--detach=false", "lab-web=0"]);
    assert_eq!(
        version(&lab, "lab-ok"),
        ok_version,
        "a valid service is not written"
    );
    let web = lab.spec("lab-web");
    assert_eq!(web["Labels"]["com.docker.lb.hosts"], "web.example");
    assert!(web["Labels"]["com.docker.interlockctl.rejected"].is_string());
    let bad = lab.spec("lab-bad");
    let routing: Vec<&String> = bad["Labels"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("com.docker.lb."))
        .collect();
    assert!(
        routing.is_empty(),
        "lab-bad's routing labels are gone: {routing:?}"
    );

    // The core renders the valid routes (and never the bad ones); no proxy task failed.
    wait_until(
        "the core's rendering of lab-ok",
        Duration::from_secs(60),
        || {
            let proxy = lab.inspect(PROXY);
            let rendered = mounted_proxy_config(&proxy["Spec"]).is_some_and(|name| {
                lab.config_text(&name)
                    .contains("server_name ok.example www.ok.example;")
            });
            rendered && proxy["UpdateStatus"]["State"] == "completed"
        },
    );
    for text in rendered_proxy_configs(&lab) {
        assert!(
            !text.contains("evil") && !text.contains('{'),
            "rendered: {text}"
        );
    }
    assert_eq!(failed_proxy_tasks(&lab), Vec::<String>::new());
    let bodies = receiver.bodies();
    assert!(
        bodies.iter().any(|b| b.contains(r#""service":"lab-bad""#)
            && b.contains(r#"bad.example;evil"#)
            && b.contains(r#""code":"unsafe_character""#)),
        "{bodies:?}"
    );

    // A valid update of a rejected service clears the watch's note.
    relabel(&lab, "lab-bad", "com.docker.lb.hosts=fixed.example");
    wait_for_line(&watch, "cleared lab-bad", is("cleared", "lab-bad"));
    let fixed = lab.spec("lab-bad");
    assert_eq!(fixed["Labels"]["com.docker.lb.hosts"], "fixed.example");
    assert_eq!(
        fixed["Labels"]["com.docker.interlockctl.rejected"],
        Value::Null
    );

    // The engine restarts under the watch; a bad label made as it comes back is caught.
    restart_engine();
    lab.create_idle_service(
        "lab-late",
        &[
            "com.docker.lb.hosts=late.example\"",
            "com.docker.lb.port=80",
        ],
        &[],
    );
    wait_for_line(&watch, "rejected lab-late", is("rejected", "lab-late"));

    watch.signal(libc::SIGTERM);
    let run = watch.finish();
    eprintln!("{}", run.render());
    run.assert_code(0);
    let lines = ndjson(&run);
    let kinds = kinds(&lines);
    let count = |kind: &str| kinds.iter().filter(|k| **k == kind).count();
    assert_eq!(count("engine_gone"), 1, "said once: {kinds:?}");
    assert_eq!(count("reconnected"), 1, "said once: {kinds:?}");
    let position = |pred: &dyn Fn(&Value) -> bool| lines.iter().position(pred).unwrap();
    assert!(position(&is("reconnected", "")) < position(&is("rejected", "lab-late")));
    assert_eq!(count("rejected"), 3, "{kinds:?}");
    assert!(
        !lines.iter().any(|l| l["service"] == "lab-ok"),
        "nothing about lab-ok"
    );
    assert_eq!(kinds.last(), Some(&"stopped"));
    let restored: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["kind"] == "rejected")
        .map(|l| {
            (
                l["service"].as_str().unwrap(),
                l["restored"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        restored,
        [
            ("lab-bad", "none"),
            ("lab-web", "previous"),
            ("lab-late", "none")
        ]
    );
}

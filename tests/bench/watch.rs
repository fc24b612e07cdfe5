//! `labels watch --reject` on the lab: how long a bad label lives. From the engine's event (its
//! own timestamp) to the watch's rejecting update answered, as the watch reports it in each
//! `rejected` line (`after_event_ms`; the lab's engine and the watch share one clock), over
//! services created one after another and over a burst created at once. The figure to beat
//! is the Interlock core's poll: it renders a new label up to `PollInterval` (3 s by
//! default) after it was made, so a median far below that is a bad label the core never
//! sees in most polls. The outside view (a `docker service create` started to the rejected
//! line read) is printed beside it: it adds the docker CLI's own start.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::lab_support::{self, Lab, Running};
use crate::measure::Samples;

/// Services created one after another, then at once.
const ONE_BY_ONE: usize = 24;
const BURST: usize = 20;

/// A service whose hosts label the core would render into a broken nginx config.
fn create(lab: &Lab, name: &str) -> Command {
    let mut docker = lab.idle_service_command(
        name,
        &[
            "com.docker.lb.hosts=bench.example;evil",
            "com.docker.lb.port=80",
        ],
        &[],
    );
    docker.stdout(Stdio::null());
    docker
}

/// The `after_event_ms` of the watch's `rejected` line for `service`, once it is there.
fn rejected_after(watch: &Running, service: &str) -> Option<f64> {
    let find = |out: &str| {
        out.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["kind"] == "rejected" && line["service"] == service)
            .and_then(|line| line["after_event_ms"].as_f64())
    };
    watch.wait_for_stdout(Duration::from_secs(30), |out| find(out).is_some());
    find(&watch.stdout_so_far())
}

fn millis(ms: f64) -> Duration {
    Duration::from_secs_f64(ms / 1000.0)
}

pub fn run() {
    let lab = lab_support::lab();
    let watch = lab
        .interlockctl_command(&["labels", "watch", "--reject", "-o", "json"])
        .limit(Duration::from_secs(600))
        .spawn();
    watch.wait_for_stdout(Duration::from_secs(30), |out| {
        out.contains(r#""kind":"watching""#)
    });

    let (mut after_event, mut outside) = (Vec::new(), Vec::new());
    for i in 0..ONE_BY_ONE {
        let name = format!("lab-bench-{i}");
        let started = Instant::now();
        assert!(create(&lab, &name).status().expect("docker runs").success());
        let ms = rejected_after(&watch, &name).unwrap_or_else(|| panic!("{name} not rejected"));
        outside.push(Samples::of(started.elapsed()));
        after_event.push(Samples::of(millis(ms)));
    }
    let mut burst = Vec::new();
    let creates: Vec<_> = (0..BURST)
        .map(|i| {
            create(&lab, &format!("lab-burst-{i}"))
                .spawn()
                .expect("docker runs")
        })
        .collect();
    for mut child in creates {
        assert!(child.wait().expect("docker ends").success());
    }
    for i in 0..BURST {
        let name = format!("lab-burst-{i}");
        let ms = rejected_after(&watch, &name).unwrap_or_else(|| panic!("{name} not rejected"));
        burst.push(Samples::of(millis(ms)));
    }
    watch.signal(libc::SIGTERM);
    let run = watch.finish();
    assert_eq!(run.code, 0, "the watch ends with exit 0 on SIGTERM");

    println!(
        "event -> rejecting update, {ONE_BY_ONE} services one by one: {}",
        Samples::merge(after_event).summary()
    );
    println!(
        "event -> rejecting update, {BURST} services created at once: {}",
        Samples::merge(burst).summary()
    );
    println!(
        "outside view (docker service create started -> rejected line read), one by one: {}",
        Samples::merge(outside).summary()
    );
    println!("target: median under 200 ms; the Interlock core polls every 3 s by default");
    lab_support::reset();
}

//! End-to-end tests on the lab swarm (see `tests/lab_support`) of where the tool runs:
//! Ctrl-C at each step of a run, and the re-run that finishes the job.

mod lab_support;

use std::time::{Duration, Instant};

use lab_support::front::{Act, Front, Gate};
use lab_support::{CONF, CORE, Lab, PIN_PROXY, PROXY, lab};
use serde_json::json;

fn conf(n: u32) -> String {
    format!("{CONF}-{n}")
}

/// The state a finished `pin-proxy --label role=dtr` leaves; read once the core's own
/// proxy-config swap is over.
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
}

fn is_config_create(request: &str) -> bool {
    request.starts_with("POST /configs/create")
}

fn is_service_update(request: &str) -> bool {
    request.starts_with("POST /services/") && request.contains("/update")
}

fn is_up_to_date_tasks(request: &str) -> bool {
    request.starts_with("GET /tasks") && request.contains("_up-to-date")
}

/// A moment of a `pin-proxy` run: the `nth` request that `matches` is held at the front
/// while SIGINT arrives; the step the message must name, and what it says was sent.
struct Moment {
    step: String,
    matches: fn(&str) -> bool,
    nth: usize,
    /// `(core's config, proxy pinned)` once the run stopped.
    reached: (u32, bool),
    said: String,
}

fn moments() -> [Moment; 4] {
    let config = format!("create config {}", conf(2));
    let (core, proxy) = (format!("update {CORE}"), format!("update {PROXY}"));
    [
        Moment {
            step: "creating the config".into(),
            matches: is_config_create,
            nth: 1,
            reached: (1, false),
            said: format!("sent: {config}; not sent: {core}, {proxy}"),
        },
        Moment {
            step: format!("updating {CORE}"),
            matches: is_service_update,
            nth: 1,
            reached: (2, false),
            said: format!("sent: {config}, {core}; not sent: {proxy}"),
        },
        Moment {
            step: format!("updating {PROXY}"),
            matches: is_service_update,
            nth: 2,
            reached: (2, true),
            said: format!("sent: {config}, {core}, {proxy} (sent; its answer never came)"),
        },
        Moment {
            step: "waiting for the rollouts".into(),
            matches: is_up_to_date_tasks,
            nth: 3,
            reached: (2, true),
            said: format!("sent: {config}, {core}, {proxy}"),
        },
    ]
}

/// Waits until `gate` holds a request.
fn wait_at(gate: &Gate) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while gate.arrived() == 0 {
        assert!(
            Instant::now() < deadline,
            "the run never reached the moment"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGINT at each step of a `pin-proxy` (the step's request held at the engine's door):
/// the run sends nothing more, lets the request on its way be answered, exits 130 with
/// status `interrupted` and a message naming the step, what was sent and what was not, and
/// how to finish or undo; the swarm shows exactly that, and a re-run finishes the job. At
/// the proxy's update the answer never comes: a second Ctrl-C exits at once and says so.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn ctrl_c_at_each_step_says_what_was_sent_and_a_re_run_finishes() {
    let lab = lab();
    let started = Instant::now();
    for moment in moments() {
        lab_support::reset();
        let twice = moment.step == format!("updating {PROXY}");
        let gate = Gate::new(2, Duration::from_millis(1500));
        let mut seen = 0;
        let (matches, nth) = (moment.matches, moment.nth);
        let held_at = gate.clone();
        let front = Front::start(&lab.socket(), move |request| {
            seen += usize::from(matches(request));
            match () {
                () if !(matches(request) && seen == nth) => Act::Forward,
                () if twice => Act::Hold,
                () => Act::After(held_at.clone()),
            }
        });
        let running = lab
            .interlockctl_command(&[&PIN_PROXY[..], &["-o", "json"]].concat())
            .env("DOCKER_HOST", front.docker_host())
            .spawn();
        if twice {
            assert!(front.acted(Duration::from_secs(60)).is_some(), "held");
        } else {
            wait_at(&gate);
        }
        running.signal(libc::SIGINT);
        if twice {
            assert!(
                running.wait_for_stderr(Duration::from_secs(10), |stderr| {
                    stderr.contains("press Ctrl-C again to exit at once")
                }),
                "{}: the run says it waits for the answer",
                moment.step
            );
            running.signal(libc::SIGINT);
        }
        let stopped = running.finish();
        eprintln!("{}", stopped.render());
        assert_eq!(stopped.code, 130, "{}: exit 130", moment.step);
        let message = format!(
            "interrupted by SIGINT while {}; {}",
            moment.step, moment.said
        );
        assert!(
            stopped.stderr.contains(&format!("error: {message}\n\nhint: Swarm keeps rolling out the updates that were sent; run the same command again to finish the job, or `interlockctl rollback` to undo it")),
            "{}: the message:\n{}",
            moment.step,
            stopped.render()
        );
        if !twice {
            let report = stopped.json();
            assert_eq!(report["status"], "interrupted", "{}", moment.step);
            assert_eq!(report["errors"][0]["message"], message, "{}", moment.step);
        }
        let (core, pinned) = moment.reached;
        assert_eq!(lab.core_config(), conf(core), "{}: the core", moment.step);
        assert_eq!(
            lab.spec(PROXY)["TaskTemplate"]["Placement"]["Constraints"]
                == json!(["node.labels.role==dtr"]),
            pinned,
            "{}: the proxy",
            moment.step
        );
        drop(front);
        lab.interlockctl(&PIN_PROXY).assert_code(0);
        assert_pinned(&lab);
    }
    lab_support::report(&format!(
        "Ctrl-C moments exercised on the lab: 4, in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
}

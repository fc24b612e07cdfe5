//! End-to-end tests on the lab swarm (see `tests/lab_support`) of where the tool runs:
//! Ctrl-C at each step of a run and the re-run that finishes the job; the manager reached
//! through ssh (the lab's sshd on the manager), by `DOCKER_HOST` and by a docker context.

mod lab_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lab_support::front::{Act, Front, Gate, Nth, RUN_STEPS};
use lab_support::{CORE, Lab, PIN_PROXY, PROXY, conf, harness, lab, wait_until};
use serde_json::json;

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

/// A moment of a `pin-proxy` run: its `request` is held at the front while SIGINT arrives;
/// the step the message must name, and what it says was sent.
struct Moment {
    step: String,
    request: Nth,
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
            request: RUN_STEPS[0],
            reached: (1, false),
            said: format!("sent: {config}; not sent: {core}, {proxy}"),
        },
        Moment {
            step: format!("updating {CORE}"),
            request: RUN_STEPS[1],
            reached: (2, false),
            said: format!("sent: {config}, {core}; not sent: {proxy}"),
        },
        Moment {
            step: format!("updating {PROXY}"),
            request: RUN_STEPS[2],
            reached: (2, true),
            said: format!("sent: {config}, {core}, {proxy} (sent; its answer never came)"),
        },
        Moment {
            step: "waiting for the rollouts".into(),
            request: RUN_STEPS[3],
            reached: (2, true),
            said: format!("sent: {config}, {core}, {proxy}"),
        },
    ]
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
        let held_at = gate.clone();
        let front = Front::start(
            &lab.socket(),
            moment.request.rule(move || {
                if twice {
                    Act::Hold
                } else {
                    Act::After(held_at.clone())
                }
            }),
        );
        let running = lab
            .interlockctl_command(&[&PIN_PROXY[..], &["-o", "json"]].concat())
            .env("DOCKER_HOST", front.docker_host())
            .spawn();
        if twice {
            assert!(front.acted(Duration::from_secs(60)).is_some(), "held");
        } else {
            wait_until(
                "the run's request at the moment",
                Duration::from_secs(60),
                || gate.arrived() > 0,
            );
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

/// An `ssh` first on PATH that is the system's with an ssh config of the test's own (the
/// lab's key and known_hosts), as a user's `~/.ssh/config` would give them: `ssh` reads the
/// config of the home directory of the passwd entry, not `$HOME`, so the test cannot write one.
fn ssh_with_the_labs_key(lab: &Lab, dir: &Path) -> String {
    let config = dir.join("ssh_config");
    let addr = lab.ssh_host.rsplit('@').next().expect("ssh://root@ADDR");
    std::fs::write(
        &config,
        format!(
            "Host {addr}\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  \
             StrictHostKeyChecking yes\n  BatchMode yes\n",
            key = lab.ssh_dir.join("id_ed25519").display(),
            known = lab.ssh_dir.join("known_hosts").display(),
        ),
    )
    .unwrap();
    let ssh = dir.join("ssh");
    std::fs::write(
        &ssh,
        format!(
            "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
            config.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&ssh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A whole `pin-proxy` through the manager's sshd: with `DOCKER_HOST=ssh://root@MGR:22`
/// (the port given, so `ssh -p`), and with a context made by `docker context create
/// --docker host=ssh://root@MGR` chosen by `DOCKER_CONTEXT`; each run says which engine it
/// used, applies, and leaves the swarm pinned.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn pin_proxy_through_an_ssh_host_and_an_ssh_context() {
    let lab = lab();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = ssh_with_the_labs_key(&lab, dir.path());
    let docker_config = dir.path().join("docker");
    let through_ssh = |env: &[(&str, &str)]| {
        let mut run = harness::interlockctl(&[&PIN_PROXY[..], &["-o", "json", "-v"]].concat())
            .env("PATH", &path)
            .env("DOCKER_CONFIG", &docker_config);
        for (key, value) in env {
            run = run.env(key, *value);
        }
        let run = run.run();
        eprintln!("{}", run.render());
        run
    };
    let host = format!("{}:22", lab.ssh_host);
    let by_host = through_ssh(&[("DOCKER_HOST", &host)]);
    assert_eq!(by_host.assert_report(0)["status"], "applied");
    assert!(
        by_host.stderr.contains(&format!(
            "engine {host} (context default, from DOCKER_HOST)"
        )),
        "{}",
        by_host.render()
    );
    assert_pinned(&lab);

    lab_support::reset();
    let mut docker = Command::new("docker");
    docker
        .env("DOCKER_CONFIG", &docker_config)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT");
    lab_support::docker_cli(
        docker,
        &[
            "context",
            "create",
            "lab-ssh",
            "--docker",
            &format!("host={}", lab.ssh_host),
        ],
    );
    let by_context = through_ssh(&[("DOCKER_CONTEXT", "lab-ssh")]);
    assert_eq!(by_context.assert_report(0)["status"], "applied");
    assert!(
        by_context.stderr.contains(&format!(
            "engine {} (context lab-ssh, from DOCKER_CONTEXT)",
            lab.ssh_host
        )),
        "{}",
        by_context.render()
    );
    assert_pinned(&lab);
    lab_support::report(&format!(
        "pin-proxy through ssh, by host and by context: {:.0} s",
        started.elapsed().as_secs_f64()
    ));
}

/// The core's and the proxy's specs once the core's own proxy rollout is over, each
/// `ConfigID` replaced by its `ConfigName` (two runs create conf-2 with other IDs) and the
/// proxy's nginx config mount left out (the stand-in core names it), plus conf-2's labels.
fn end_state(lab: &Lab) -> serde_json::Value {
    lab.settle();
    let normalized = |service: &str| {
        let mut spec = lab.spec(service);
        for reference in spec
            .pointer_mut("/TaskTemplate/ContainerSpec/Configs")
            .and_then(serde_json::Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            reference["ConfigID"] = reference["ConfigName"].clone();
        }
        spec
    };
    let mut proxy = normalized(PROXY);
    proxy["TaskTemplate"]["ContainerSpec"]["Configs"] = json!(null);
    let labels = lab.docker(&[
        "config",
        "inspect",
        "--format",
        "{{json .Spec.Labels}}",
        &conf(2),
    ]);
    json!({"core": normalized(CORE), "proxy": proxy, "conf-2 labels": labels})
}

/// `pin-proxy --plan-out FILE` changes nothing and writes an owner-only plan; `apply --plan
/// FILE` ends exactly where a direct `pin-proxy` ends (whole specs compared); the same plan
/// again, or a plan made before another run changed the core, is `stale_plan` (exit 4,
/// nothing changed); an altered plan is `invalid_plan`.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_saved_plan_applies_like_the_command_and_goes_stale() {
    let lab = lab();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("pin-proxy.plan.json");
    let plan = plan.to_str().unwrap();
    let before = lab.versions();
    let planned = lab
        .interlockctl(&[
            "pin-proxy",
            "--label",
            "role=dtr",
            "--plan-out",
            plan,
            "-o",
            "json",
        ])
        .assert_report(0);
    assert_eq!(planned["status"], "planned");
    assert_eq!(lab.versions(), before, "--plan-out changes nothing");
    assert_eq!(lab.configs(), [conf(1)]);
    let mode = std::fs::metadata(plan).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    let altered = dir.path().join("altered.json");
    let text = std::fs::read_to_string(plan).unwrap();
    std::fs::write(&altered, text.replace("role==dtr", "role==web")).unwrap();
    let invalid = lab
        .interlockctl(&[
            "apply",
            "--plan",
            altered.to_str().unwrap(),
            "--yes",
            "-o",
            "json",
        ])
        .assert_report(4);
    assert_eq!(invalid["errors"][0]["code"], "invalid_plan");

    let applied = lab
        .interlockctl(&["apply", "--plan", plan, "--yes", "-o", "json"])
        .assert_report(0);
    assert_eq!(applied["status"], "applied");
    let through_the_plan = end_state(&lab);

    let host_mode = dir.path().join("host-mode.plan.json");
    let host_mode = host_mode.to_str().unwrap();
    lab.interlockctl(&[
        "host-mode",
        "--http",
        "7080",
        "--https",
        "7443",
        "--plan-out",
        host_mode,
    ])
    .assert_code(0);
    lab.interlockctl(&[
        "pin-proxy",
        "--label",
        "role=dtr",
        "--replicas",
        "1",
        "--yes",
    ])
    .assert_code(0);
    let before = lab.versions();
    for stale_plan in [plan, host_mode] {
        let stale = lab
            .interlockctl(&["apply", "--plan", stale_plan, "--yes", "-o", "json"])
            .assert_report(4);
        assert_eq!(stale["errors"][0]["code"], "stale_plan", "{stale_plan}");
        let message = stale["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("{CORE} is at version")),
            "{message}"
        );
    }
    assert_eq!(lab.versions(), before, "a stale plan changes nothing");

    lab_support::reset();
    lab.interlockctl(&PIN_PROXY).assert_code(0);
    assert_eq!(
        end_state(&lab),
        through_the_plan,
        "plan then apply = pin-proxy"
    );
    lab_support::report(&format!(
        "saved plan on the lab: {:.0} s",
        started.elapsed().as_secs_f64()
    ));
}

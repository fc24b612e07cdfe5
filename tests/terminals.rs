//! Where the binary runs: the colour conventions (`NO_COLOR`, `CLICOLOR`, `CLICOLOR_FORCE`,
//! `TERM`), progress on terminals that cannot draw a spinner, and each `INTERLOCKCTL_*`
//! variable a pipeline sets once (a flag beats its variable). Offline runs and the in-process
//! fake engine: no lab.

mod common;
mod fake_engine;

use std::time::{Duration, Instant};

use common::{Interlockctl, Run};
use fake_engine::{CORE, FakeEngine, PROXY, conf};

const CLUSTERS: &str = "fixtures/configs/valid/service-clusters.toml";
const PIN_PROXY: &[&str] = &["pin-proxy", "--label", "role=dtr", "--yes"];

/// An offline `pin-proxy` on the one-extension fixture: prints a diff on stderr.
fn offline_pin(args: &[&str]) -> Interlockctl {
    let mut all = vec![
        "pin-proxy",
        "--label",
        "role=dtr",
        "--config-file",
        "fixtures/configs/valid/ucp-3.1.toml",
    ];
    all.extend_from_slice(args);
    common::interlockctl(&all)
}

/// `interlockctl ARGS` against the fake engine; the harness's `NO_COLOR=1` stays.
fn against(engine: &FakeEngine, args: &[&str]) -> Interlockctl {
    common::interlockctl(args)
        .env("DOCKER_HOST", engine.docker_host())
        .limit(Duration::from_secs(90))
}

fn coloured(stderr: &str) -> bool {
    stderr.contains("\x1b[32m+") && stderr.contains("\x1b[31m-")
}

/// Colour as every CLI decides it: off a terminal only `CLICOLOR_FORCE=1` (or `--color
/// always`) colours; `NO_COLOR` beats it; on a terminal `CLICOLOR=0` and `TERM=dumb` turn it
/// off; `--color` beats the environment either way.
#[test]
fn colour_follows_no_color_clicolor_clicolor_force_and_term() {
    let piped = |env: &[(&str, &str)], args: &[&str]| {
        let mut run = offline_pin(args).env("NO_COLOR", "");
        for (key, value) in env {
            run = run.env(key, *value);
        }
        run.run().assert_code(0).stderr.clone()
    };
    assert!(!coloured(&piped(&[], &[])), "a pipe gets no colour");
    assert!(coloured(&piped(&[("CLICOLOR_FORCE", "1")], &[])));
    assert!(!coloured(&piped(
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
        &[]
    )));
    assert!(!coloured(&piped(
        &[("CLICOLOR_FORCE", "1")],
        &["--color", "never"]
    )));
    assert!(coloured(&piped(
        &[("NO_COLOR", "1")],
        &["--color", "always"]
    )));

    let on_terminal = |env: &[(&str, &str)]| {
        let mut run = offline_pin(&[])
            .env("NO_COLOR", "")
            .env("TERM", "xterm-256color");
        for (key, value) in env {
            run = run.env(key, *value);
        }
        run.run_on_terminal("+++ ", b"")
            .assert_code(0)
            .stderr
            .clone()
    };
    assert!(coloured(&on_terminal(&[])), "a terminal gets colour");
    assert!(!coloured(&on_terminal(&[("NO_COLOR", "1")])));
    assert!(!coloured(&on_terminal(&[("CLICOLOR", "0")])));
    assert!(!coloured(&on_terminal(&[("TERM", "dumb")])));
}

/// The plain progress lines of a `pin-proxy` against the fake engine, in the order shown.
fn progress_lines(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|line| {
            line.starts_with(&format!("  {CORE}:")) || line.starts_with(&format!("  {PROXY}:"))
        })
        .collect()
}

/// A `pin-proxy` on a terminal (stderr and stdin), with `env`.
fn pin_on_terminal(env: &[(&str, &str)]) -> Run {
    let engine = FakeEngine::start();
    let mut run = against(&engine, PIN_PROXY).env("TERM", "xterm-256color");
    for (key, value) in env {
        run = run.env(key, *value);
    }
    run.run_on_terminal("Applied and verified.", b"")
        .assert_code(0)
        .clone()
}

/// On `TERM=dumb` each wait is plain lines on stderr, without a cursor movement, where a
/// terminal that can draw gets a spinner instead.
#[test]
fn term_dumb_shows_progress_as_plain_lines() {
    let dumb = pin_on_terminal(&[("TERM", "dumb")]);
    let lines = progress_lines(&dumb);
    assert!(
        lines.contains(&format!("  {PROXY}: 2/2 tasks running, converged").as_str()),
        "{}",
        dumb.render()
    );
    assert!(!dumb.stderr.contains('\x1b'), "{}", dumb.render());
    let drawing = pin_on_terminal(&[]);
    assert_eq!(
        progress_lines(&drawing),
        Vec::<&str>::new(),
        "{}",
        drawing.render()
    );
}

/// `INTERLOCKCTL_NO_PROGRESS=1` is `--no-progress`: plain lines on a terminal too; `0` is
/// not; a value that is no boolean is a usage error naming the option.
#[test]
fn interlockctl_no_progress_turns_spinners_into_lines() {
    let quiet = pin_on_terminal(&[("INTERLOCKCTL_NO_PROGRESS", "1")]);
    assert!(!progress_lines(&quiet).is_empty(), "{}", quiet.render());
    let drawing = pin_on_terminal(&[("INTERLOCKCTL_NO_PROGRESS", "0")]);
    assert!(progress_lines(&drawing).is_empty(), "{}", drawing.render());
    let bad = offline_pin(&[])
        .env("INTERLOCKCTL_NO_PROGRESS", "maybe")
        .run();
    bad.assert_code(2);
    assert!(bad.stderr.contains("--no-progress"), "{}", bad.render());
}

/// `INTERLOCKCTL_OUTPUT=json` makes every report JSON; `-o text` beats it; a script on
/// stdout (`completions`) stays a script.
#[test]
fn interlockctl_output_selects_json_and_the_flag_beats_it() {
    let json = offline_pin(&[]).env("INTERLOCKCTL_OUTPUT", "json").run();
    assert_eq!(json.assert_report(0)["command"], "pin-proxy");
    let text = offline_pin(&["-o", "text"])
        .env("INTERLOCKCTL_OUTPUT", "json")
        .run();
    assert!(
        text.assert_code(0).stdout.contains("ProxyConstraints"),
        "{}",
        text.render()
    );
    let script = common::interlockctl(&["completions", "bash"])
        .env("INTERLOCKCTL_OUTPUT", "json")
        .run();
    assert!(script.assert_code(0).stdout.contains("_interlockctl()"));
}

/// `INTERLOCKCTL_EXTENSION` picks the extension; `--extension` beats it.
#[test]
fn interlockctl_extension_picks_the_extension_and_the_flag_beats_it() {
    let extension = |args: &[&str]| {
        let mut all = vec!["pin-proxy", "--label", "role=x", "--config-file", CLUSTERS];
        all.extend_from_slice(args);
        common::interlockctl(&all)
            .env("INTERLOCKCTL_EXTENSION", "us-west")
            .env("INTERLOCKCTL_OUTPUT", "json")
            .run()
            .assert_report(0)["extension"]
            .clone()
    };
    assert_eq!(extension(&[]), "us-west");
    assert_eq!(extension(&["--extension", "dmz"]), "dmz");
}

/// `INTERLOCKCTL_SERVICE` names the core service; `--service` beats it.
#[test]
fn interlockctl_service_names_the_core_and_the_flag_beats_it() {
    let engine = FakeEngine::start();
    let missing = against(&engine, &["show"])
        .env("INTERLOCKCTL_SERVICE", "other-interlock")
        .run();
    assert_ne!(missing.code, 0, "{}", missing.render());
    assert!(
        missing.stderr.contains("other-interlock"),
        "{}",
        missing.render()
    );
    let shown = against(&engine, &["show", "--service", CORE])
        .env("INTERLOCKCTL_SERVICE", "other-interlock")
        .run();
    assert!(
        shown.assert_code(0).stderr.contains(&conf(1)),
        "{}",
        shown.render()
    );
}

/// `INTERLOCKCTL_TIMEOUT` bounds the wait for a proxy that never converges; `--timeout`
/// beats it.
#[test]
fn interlockctl_timeout_bounds_the_wait_and_the_flag_beats_it() {
    for (variable, flag) in [("1s", None), ("1h", Some("1s"))] {
        let engine = FakeEngine::start_arranged(|swarm| {
            swarm.faults.never_scheduled = vec![PROXY.into()];
        });
        let mut args = PIN_PROXY.to_vec();
        args.extend(["-o", "json"]);
        if let Some(flag) = flag {
            args.extend(["--timeout", flag]);
        }
        let started = Instant::now();
        let run = against(&engine, &args)
            .env("INTERLOCKCTL_TIMEOUT", variable)
            .run();
        assert_eq!(run.assert_report(6)["status"], "timed_out");
        assert!(started.elapsed() < Duration::from_secs(30), "{variable}");
    }
}

/// `INTERLOCKCTL_BACKUP_DIR` is where the backup goes; `--backup-dir` beats it.
#[test]
fn interlockctl_backup_dir_holds_the_backup_and_the_flag_beats_it() {
    let dirs = tempfile::tempdir().unwrap();
    let (variable, flag) = (dirs.path().join("variable"), dirs.path().join("flag"));
    for (args, expected) in [
        (&[][..], &variable),
        (&["--backup-dir", flag.to_str().unwrap()][..], &flag),
    ] {
        let engine = FakeEngine::start();
        let mut all = PIN_PROXY.to_vec();
        all.extend(["-o", "json"]);
        all.extend_from_slice(args);
        let report = against(&engine, &all)
            .env("INTERLOCKCTL_BACKUP_DIR", &variable)
            .run()
            .assert_report(0);
        let backup = report["backup"].as_str().unwrap();
        assert!(backup.starts_with(expected.to_str().unwrap()), "{backup}");
        assert!(std::path::Path::new(backup).is_dir(), "{backup}");
    }
}

/// SIGTERM (a cancelled CI job) while the proxy's rollout is waited for: exit 143, status
/// `interrupted`, and the message names the step, what was sent and how to finish or undo;
/// nothing more is sent (the lab's `live_pipelines` test re-runs to finish the job). SIGINT
/// before anything was sent says nothing was.
#[test]
fn a_signal_stops_the_run_and_says_what_was_sent() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.never_scheduled = vec![PROXY.into()];
    });
    let mut args = PIN_PROXY.to_vec();
    args.extend(["-o", "json", "-v"]);
    let running = against(&engine, &args).spawn();
    assert!(running.wait_for_stderr(Duration::from_secs(30), |stderr| {
        stderr.contains(&format!("updating {PROXY} at version"))
    }));
    std::thread::sleep(Duration::from_millis(300));
    let requests = engine.requests().len();
    running.signal(libc::SIGTERM);
    let stopped = running.finish();
    let report = stopped.assert_report(143);
    assert_eq!(report["status"], "interrupted");
    assert_eq!(report["errors"][0]["code"], "interrupted");
    assert_eq!(
        report["errors"][0]["message"],
        format!(
            "interrupted by SIGTERM while waiting for the rollouts; sent: create config {}, \
             update {CORE}, update {PROXY}",
            conf(2)
        )
    );
    let hint = report["errors"][0]["hint"].as_str().unwrap();
    assert!(
        hint.contains("run the same command again") && hint.contains("interlockctl rollback"),
        "{hint}"
    );
    assert_eq!(
        engine.requests()[requests..]
            .iter()
            .filter(|request| request.method != "GET")
            .count(),
        0,
        "nothing sent after the signal"
    );

    let waiting = FakeEngine::start_arranged(|swarm| {
        swarm.faults.foreign_rollout = Some((PROXY.into(), usize::MAX));
    });
    let running = against(&waiting, PIN_PROXY).spawn();
    assert!(running.wait_for_stderr(Duration::from_secs(30), |stderr| {
        stderr.contains("Waiting for the rollout already running")
    }));
    running.signal(libc::SIGINT);
    let stopped = running.finish();
    stopped.assert_code(130);
    assert!(
        stopped.stderr.contains(
            "error: interrupted by SIGINT while planning: nothing was sent to the swarm\n\nhint: \
             nothing was changed; run the command again"
        ),
        "{}",
        stopped.render()
    );
}

/// An ssh:// host without an `ssh` to run, or whose remote has no `docker` CLI (an `ssh`
/// that answers as such a login does): exit 1, and the error says which and how to fix it.
#[test]
fn ssh_hosts_without_ssh_or_without_a_remote_docker_say_so() {
    let bin = tempfile::tempdir().unwrap();
    let status = |path: &std::path::Path| {
        common::interlockctl(&["status"])
            .env("DOCKER_HOST", "ssh://ops@manager:2222")
            .env("PATH", path)
            .run()
    };
    let no_ssh = status(bin.path());
    no_ssh.assert_code(1);
    assert!(
        no_ssh.stderr.contains(
            "error: cannot reach the Docker engine at ssh://ops@manager:2222: cannot run `ssh` \
             for ssh://ops@manager:2222: No such file or directory (os error 2); install an \
             OpenSSH client"
        ),
        "{}",
        no_ssh.render()
    );
    let ssh = bin.path().join("ssh");
    std::fs::write(
        &ssh,
        "#!/bin/sh\necho \"$@\" > \"$0.args\"\necho 'bash: line 1: docker: command not found' >&2\nexit 127\n",
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&ssh).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&ssh, permissions).unwrap();
    let no_docker = status(bin.path());
    no_docker.assert_code(1);
    assert!(
        no_docker
            .stderr
            .contains("the remote host of ssh://ops@manager:2222 has no `docker` CLI on its PATH"),
        "{}",
        no_docker.render()
    );
    assert_eq!(
        std::fs::read_to_string(bin.path().join("ssh.args")).unwrap(),
        "-o ConnectTimeout=30 -T -l ops -p 2222 -- manager docker system dial-stdio\n"
    );
}

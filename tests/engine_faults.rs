//! The real binary against the in-process fake engine (`tests/fake_engine`): the runbook,
//! every interruption point of it, and the error paths, fast enough for the default suite.
//!
//! Each test starts its own fake (its own port and swarm), so the tests run in parallel.

mod common;
mod fake_engine;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use common::{Interlockctl, Receiver, Run, action_kinds, action_targets, kinds, ndjson};

use fake_engine::{
    CONCURRENT_LABEL, CONF, CORE, CORE_CONFIG, ConcurrentUpdate, CutWhen, FakeEngine, ImagePutBack,
    PROXY, Swarm, Trigger, UCP_CONSTRAINTS, UNLOADABLE, UnmarkedRollout, conf,
};

const PIN_PROXY: &[&str] = &["pin-proxy", "--label", "role=dtr", "--yes"];
const HOST_MODE: &[&str] = &["host-mode", "--http", "7080", "--https", "7443", "--yes"];

/// `interlockctl ARGS` against `docker_host` (through the harness of `tests/common`), with
/// `-o json` and `--timeout 20s` unless the test gives them.
fn invocation(docker_host: &str, args: &[&str]) -> Interlockctl {
    let mut args: Vec<&str> = args.to_vec();
    if !args.contains(&"-o") {
        args.extend(["-o", "json"]);
    }
    if !args.contains(&"--timeout") {
        args.extend(["--timeout", "20s"]);
    }
    common::interlockctl(&args)
        .env("DOCKER_HOST", docker_host)
        .limit(Duration::from_secs(90))
}

fn interlockctl(engine: &FakeEngine, args: &[&str]) -> Run {
    invocation(&engine.docker_host(), args).run()
}

/// Runs the offline editor on `input` and returns the edited TOML.
fn offline(input: &Path, args: &[&str]) -> String {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config-file", input.to_str().expect("a UTF-8 path")]);
    common::run(&all).assert_code(0).stdout.clone()
}

fn sha256(text: &str) -> String {
    let hex: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

fn host_port(published: u16, target: u16) -> Value {
    json!({ "Protocol": "tcp", "TargetPort": target, "PublishedPort": published, "PublishMode": "host" })
}

/// The parts of the swarm a run may change, normalised so two fakes compare equal: each
/// `ConfigID` is checked to name the config of its `ConfigName`, then replaced by that name.
#[derive(Debug, PartialEq)]
struct FinalState {
    core: Value,
    proxy: Value,
    configs: Vec<(String, String, BTreeMap<String, String>)>,
    proxy_tasks: Vec<(String, Vec<String>)>,
}

fn final_state(engine: &FakeEngine) -> FinalState {
    engine.with(|swarm| {
        let spec = |name: &str| {
            let mut spec = swarm.service(name).expect("service exists").spec.clone();
            if let Some(configs) = spec
                .pointer_mut("/TaskTemplate/ContainerSpec/Configs")
                .and_then(Value::as_array_mut)
            {
                for reference in configs {
                    let name = reference["ConfigName"].as_str().unwrap_or_default();
                    let config = swarm.config(name).expect("the referenced config exists");
                    assert_eq!(reference["ConfigID"], json!(config.id), "ID and name agree");
                    reference["ConfigID"] = json!(format!("<ID of {name}>"));
                }
            }
            spec
        };
        FinalState {
            core: spec(CORE),
            proxy: spec(PROXY),
            configs: swarm
                .config_names(CONF)
                .into_iter()
                .map(|name| {
                    let config = swarm.config(&name).expect("listed");
                    (name, config.data.clone(), config.labels.clone())
                })
                .collect(),
            proxy_tasks: swarm.running_tasks(PROXY),
        }
    })
}

/// Service versions and config names: what "nothing changed" compares.
fn fingerprint(engine: &FakeEngine) -> (Vec<(String, u64)>, Vec<String>) {
    engine.with(|swarm| {
        let versions = swarm
            .services
            .iter()
            .map(|s| (s.name().to_owned(), s.version))
            .collect();
        (versions, swarm.config_names(""))
    })
}

fn writes(engine: &FakeEngine) -> Vec<String> {
    engine
        .requests()
        .iter()
        .filter(|r| r.is_write())
        .map(ToString::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1. The runbook on the fake

#[test]
fn runbook_applies_then_reruns_change_nothing() {
    let engine = FakeEngine::start();
    let initial_core = engine.with(|s| s.service(CORE).unwrap().spec.clone());

    let pinned = interlockctl(&engine, PIN_PROXY).assert_report(0);
    assert_eq!(pinned["status"], "applied");
    assert_eq!(pinned["changed"], true);
    assert_eq!(pinned["config"]["current"], conf(1));
    assert_eq!(pinned["config"]["next"], conf(2));
    assert_eq!(
        action_kinds(&pinned),
        ["create_config", "update_service", "update_service"]
    );
    assert_eq!(pinned["errors"], json!([]));
    assert_eq!(
        engine.with(|s| s.running_tasks(PROXY)),
        [("w1".to_owned(), vec![]), ("w2".to_owned(), vec![])],
        "the proxy runs on the role=dtr nodes only"
    );

    let hosted = interlockctl(&engine, HOST_MODE).assert_report(0);
    assert_eq!(hosted["status"], "applied");
    assert_eq!(hosted["config"]["current"], conf(2));
    assert_eq!(hosted["config"]["next"], conf(3));

    // The config: exactly what the offline editor makes of the lab's config.
    let dir = tempfile::tempdir().unwrap();
    let conf1 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/core-config.toml");
    let conf2 = offline(
        &conf1,
        &["pin-proxy", "--label", "role=dtr", "--replicas", "2"],
    );
    std::fs::write(dir.path().join("conf-2.toml"), &conf2).unwrap();
    let conf3 = offline(
        &dir.path().join("conf-2.toml"),
        &["host-mode", "--http", "7080", "--https", "7443"],
    );
    engine.with(|swarm| {
        assert_eq!(swarm.mounted_config(CORE), Some(conf(3)));
        assert_eq!(swarm.config_names(CONF), [conf(1), conf(2), conf(3)]);
        assert_eq!(swarm.config(&conf(1)).unwrap().data, CORE_CONFIG);
        assert_eq!(swarm.config(&conf(2)).unwrap().data, conf2);
        assert_eq!(swarm.config(&conf(3)).unwrap().data, conf3);
        for (n, parent, operation, text) in [
            (2, conf(1), "pin-proxy", &conf2),
            (3, conf(2), "host-mode", &conf3),
        ] {
            let labels = &swarm.config(&conf(n)).unwrap().labels;
            assert_eq!(labels["com.docker.interlockctl.parent"], parent);
            assert_eq!(labels["com.docker.interlockctl.operation"], operation);
            assert_eq!(labels["com.docker.interlockctl.digest"], sha256(text));
            assert_eq!(
                labels["com.docker.ucp.access.label"], "/",
                "UCP labels are kept"
            );
        }

        let core = &swarm.service(CORE).unwrap().spec;
        assert_eq!(core["UpdateConfig"]["FailureAction"], "rollback");
        assert_eq!(
            core["EndpointSpec"]["Ports"],
            json!([{ "Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host" }])
        );
        let mount = &core["TaskTemplate"]["ContainerSpec"]["Configs"][0];
        assert_eq!(
            mount["File"],
            initial_core["TaskTemplate"]["ContainerSpec"]["Configs"][0]["File"]
        );
        let mut unplanned = core.clone();
        unplanned["TaskTemplate"]["ContainerSpec"]["Configs"] = json!(null);
        unplanned["UpdateConfig"]["FailureAction"] = json!(null);
        unplanned["EndpointSpec"]["Ports"] = json!(null);
        let mut before = initial_core.clone();
        before["TaskTemplate"]["ContainerSpec"]["Configs"] = json!(null);
        before["UpdateConfig"]["FailureAction"] = json!(null);
        before["EndpointSpec"]["Ports"] = json!(null);
        assert_eq!(unplanned, before, "the core's other fields are untouched");

        let proxy = &swarm.service(PROXY).unwrap().spec;
        assert_eq!(proxy["Mode"]["Replicated"]["Replicas"], 2);
        assert_eq!(
            proxy["TaskTemplate"]["Placement"]["Constraints"],
            json!(["node.labels.role==dtr"])
        );
        assert_eq!(
            proxy["EndpointSpec"]["Ports"],
            json!([host_port(7080, 80), host_port(7443, 443)])
        );
        let ports = vec!["7080:80".to_owned(), "7443:443".to_owned()];
        assert_eq!(
            swarm.running_tasks(PROXY),
            [("w1".to_owned(), ports.clone()), ("w2".to_owned(), ports)],
            "each role=dtr node runs one proxy task that binds the host ports"
        );
    });

    let before = fingerprint(&engine);
    engine.clear_requests();
    for args in [PIN_PROXY, HOST_MODE] {
        let again = interlockctl(&engine, args).assert_report(0);
        assert_eq!(again["status"], "no_changes");
        assert_eq!(again["changed"], false);
        assert_eq!(again["config"]["next"], Value::Null);
        assert_eq!(again["actions"], json!([]));
    }
    assert_eq!(fingerprint(&engine), before, "re-runs change nothing");
    assert_eq!(
        writes(&engine),
        Vec::<String>::new(),
        "re-runs send no writes"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Interrupted anywhere, a re-run finishes the job

/// One interruption point: cut the k-th request of the runbook.
#[derive(Debug, Clone)]
struct Point {
    k: usize,
    when: CutWhen,
    request: String,
}

/// Cuts the connection at `point`, then re-runs the runbook; returns the interrupted
/// command and its exit code, or what went wrong.
fn interrupted_runbook(point: &Point, expected: &FinalState) -> Result<(String, i32), String> {
    let engine = FakeEngine::start();
    engine.cut_at(point.k, point.when);
    let mut interrupted = None;
    for (name, args) in [("pin-proxy", PIN_PROXY), ("host-mode", HOST_MODE)] {
        let run = interlockctl(&engine, args);
        if engine.cut_fired() {
            // A lost connection is an engine failure: exit 1, one JSON document, a hint.
            let report = serde_json::from_str::<Value>(&run.stdout).unwrap_or(Value::Null);
            let failed_cleanly = run.code == 1
                && report["status"] == "failed"
                && report["errors"][0]["code"] == "engine_unreachable";
            if !failed_cleanly && run.code != 0 {
                return Err(format!(
                    "the interrupted run ended badly:\n{}",
                    run.render()
                ));
            }
            interrupted = Some((name.to_owned(), run.code));
            break;
        }
        if run.code != 0 {
            return Err(format!("a run before the cut failed:\n{}", run.render()));
        }
    }
    let Some(interrupted) = interrupted else {
        return Err("the cut never happened: the runbook sent fewer requests this time".into());
    };
    for args in [PIN_PROXY, HOST_MODE] {
        let run = interlockctl(&engine, args);
        if run.code != 0 {
            return Err(format!(
                "the re-run did not finish the job:\n{}",
                run.render()
            ));
        }
    }
    let state = final_state(&engine);
    if &state != expected {
        return Err(format!(
            "the final state differs from an uninterrupted run's:\n  got      {state:?}\n  expected {expected:?}"
        ));
    }
    Ok(interrupted)
}

/// Prints to stdout (seen with `--nocapture`) and straight to the stderr handle, which
/// libtest does not capture, so the count shows in every `cargo test` run.
fn report(line: &str) {
    use std::io::Write;
    println!("{line}");
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Runs `job` on every item with a few threads (the runs mostly wait on the tool's polls).
fn in_parallel<T: Sync, R: Send>(items: &[T], job: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get() * 4)
        .min(12);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let result = job(item);
                    results.lock().unwrap().push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[test]
fn interrupted_anywhere_a_rerun_finishes_the_job() {
    let started = Instant::now();
    let reference = FakeEngine::start();
    interlockctl(&reference, PIN_PROXY).assert_report(0);
    interlockctl(&reference, HOST_MODE).assert_report(0);
    let expected = final_state(&reference);
    let log = reference.requests();
    assert!(
        log.iter().all(|r| r.status.is_some_and(|s| s < 400)),
        "{log:#?}"
    );

    // Every request, lost before the engine handles it; every write also handled and
    // only its answer lost (the config exists, the update happened, the tool never knew).
    let mut points: Vec<Point> = log
        .iter()
        .map(|r| Point {
            k: r.n,
            when: CutWhen::BeforeHandling,
            request: format!("{} {}", r.method, r.path),
        })
        .collect();
    points.extend(log.iter().filter(|r| r.is_write()).map(|r| Point {
        k: r.n,
        when: CutWhen::AfterHandling,
        request: format!("{} {}", r.method, r.path),
    }));

    let results = in_parallel(&points, |point| interrupted_runbook(point, &expected));
    let mut failures = Vec::new();
    let mut by_command: BTreeMap<(String, i32), usize> = BTreeMap::new();
    for (point, result) in points.iter().zip(&results) {
        match result {
            Ok(interrupted) => *by_command.entry(interrupted.clone()).or_default() += 1,
            Err(why) => failures.push(format!(
                "cut at request {} ({}, {:?}): {why}",
                point.k, point.request, point.when
            )),
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "runbook requests: {}\n  {}",
        log.len(),
        log.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    eprintln!("interrupted runs by (command, exit code): {by_command:?}");
    let summary = format!(
        "interruption points exercised: {} ({} requests cut before handling, {} writes cut after handling) in {:.1?}",
        points.len(),
        log.len(),
        points.len() - log.len(),
        elapsed
    );
    report(&summary);
    assert!(
        failures.is_empty(),
        "{} of {} interruption points failed:\n{}",
        failures.len(),
        points.len(),
        failures.join("\n")
    );
    let writes = log.iter().filter(|r| r.is_write()).count();
    assert!(
        log.len() >= 40,
        "a runbook takes dozens of requests: {}",
        log.len()
    );
    assert!(
        writes >= 6,
        "2 config creates and 4 service updates at least: {writes}"
    );
    assert_eq!(points.len(), log.len() + writes);
}

/// Writes the lab's config with a `PollInterval` the core cannot load; returns its path.
fn unloadable_config(dir: &Path) -> String {
    let file = dir.join("unloadable.toml");
    std::fs::write(
        &file,
        CORE_CONFIG.replace("PollInterval = \"3s\"", UNLOADABLE),
    )
    .unwrap();
    file.to_str().expect("UTF-8 path").to_owned()
}

#[test]
fn an_interrupted_failing_apply_reruns_to_the_same_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let file = unloadable_config(dir.path());
    let apply: &[&str] = &["apply", &file, "--yes"];
    let reference = FakeEngine::start();
    interlockctl(&reference, apply).assert_report(5);
    let expected = final_state(&reference);
    let log = reference.requests();
    let mut points: Vec<(usize, CutWhen)> =
        log.iter().map(|r| (r.n, CutWhen::BeforeHandling)).collect();
    points.extend(
        log.iter()
            .filter(|r| r.is_write())
            .map(|r| (r.n, CutWhen::AfterHandling)),
    );

    let results = in_parallel(&points, |&(k, when)| -> Result<(), String> {
        let engine = FakeEngine::start();
        engine.cut_at(k, when);
        let interrupted = interlockctl(&engine, apply);
        if !engine.cut_fired() || ![1, 5].contains(&interrupted.code) {
            return Err(format!("the interrupted run:\n{}", interrupted.render()));
        }
        let rerun = interlockctl(&engine, apply);
        if rerun.code != 5 {
            return Err(format!("the re-run:\n{}", rerun.render()));
        }
        let state = final_state(&engine);
        if state != expected {
            return Err(format!("final state {state:?}\nexpected {expected:?}"));
        }
        Ok(())
    });
    let failures: Vec<String> = points
        .iter()
        .zip(results)
        .filter_map(|((k, when), r)| r.err().map(|e| format!("cut at {k} ({when:?}): {e}")))
        .collect();
    report(&format!(
        "failing-apply interruption points exercised: {}",
        points.len()
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(points.len() >= 15, "{}", points.len());
    // Whatever the interruption, the failed config exists once and the core is back on conf-1.
    assert_eq!(expected.configs.len(), 2);
    assert_eq!(
        expected.core["TaskTemplate"]["ContainerSpec"]["Configs"][0]["ConfigName"],
        conf(1)
    );
}

// ---------------------------------------------------------------------------------------
// 3. Error paths

/// The specs of the core and of the default proxy.
fn specs(engine: &FakeEngine) -> (Value, Value) {
    engine.with(|s| {
        (
            s.service(CORE).unwrap().spec.clone(),
            s.service(PROXY).unwrap().spec.clone(),
        )
    })
}

/// How a failing run ends: its exit code and error codes (in order; the `status` follows from
/// the exit code, see [`status_of_exit`]), then where it leaves the core and the default
/// proxy, each with why; `None` is not checked.
#[derive(Default)]
struct Failure {
    exit: (i32, &'static [&'static str]),
    /// N of `conf(N)`, the config the core mounts.
    core_mounts: (u32, &'static str),
    /// The core's spec is the one read before the run.
    core_as_before: Option<&'static str>,
    /// The proxy's spec is the one read before the run.
    proxy_as_before: Option<&'static str>,
    proxy_tasks: Option<(usize, &'static str)>,
    /// The core's one task runs on mgr, binding no host port.
    core_task_on_mgr: bool,
}

/// The JSON `status` of a failed run with this exit code, as the contract pairs them.
fn status_of_exit(code: i32) -> &'static str {
    match code {
        1 => "failed",
        5 => "rolled_back",
        6 => "timed_out",
        _ => panic!("no failure status for exit {code}"),
    }
}

/// Runs `interlockctl ARGS` on `engine` and asserts that it ends as `expected` says; returns
/// the report, whose messages each test checks itself.
fn assert_failure(engine: &FakeEngine, args: &[&str], expected: &Failure) -> Value {
    let (core_before, proxy_before) = specs(engine);
    let (code, errors) = expected.exit;
    let report = interlockctl(engine, args).assert_report(code);
    assert_eq!(report["status"], status_of_exit(code));
    assert_eq!(common::error_codes(&report), errors, "{}", report["errors"]);
    let (core_after, proxy_after) = specs(engine);
    if let Some(why) = expected.core_as_before {
        assert_eq!(core_after, core_before, "{why}");
    }
    if let Some(why) = expected.proxy_as_before {
        assert_eq!(proxy_after, proxy_before, "{why}");
    }
    engine.with(|swarm| {
        let (n, why) = expected.core_mounts;
        assert_eq!(swarm.mounted_config(CORE), Some(conf(n)), "{why}");
        if let Some((running, why)) = expected.proxy_tasks {
            assert_eq!(swarm.running_tasks(PROXY).len(), running, "{why}");
        }
        if expected.core_task_on_mgr {
            assert_eq!(swarm.running_tasks(CORE), [("mgr".to_owned(), vec![])]);
        }
    });
    report
}

#[test]
fn a_config_the_core_cannot_load_is_rolled_back_with_exit_5() {
    let engine = FakeEngine::start();
    let proxy_version = engine.with(|s| s.service(PROXY).unwrap().version);
    let dir = tempfile::tempdir().unwrap();
    let file = unloadable_config(dir.path());
    let failure = Failure {
        exit: (5, &["rolled_back"]),
        core_mounts: (1, "back on its previous config"),
        core_as_before: Some("Swarm restored the previous spec"),
        core_task_on_mgr: true,
        ..Failure::default()
    };
    let report = assert_failure(&engine, &["apply", &file, "--yes"], &failure);
    assert_eq!(report["config"]["next"], conf(2));
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains(CORE), "{message}");
    assert!(
        message.contains("on mgr: failed (task: non-zero exit (1))"),
        "names the failed task: {message}"
    );
    engine.with(|swarm| {
        let core = swarm.service(CORE).unwrap();
        assert_eq!(
            core.update_status.as_ref().unwrap()["State"],
            "rollback_completed"
        );
        assert_eq!(
            swarm.service(PROXY).unwrap().version,
            proxy_version,
            "the proxy was not touched"
        );
    });
}

#[test]
fn someone_elses_update_after_the_first_inspect_is_kept() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.concurrent_update = Some(ConcurrentUpdate {
            service: CORE.into(),
            trigger: Trigger::AfterInspect(1),
        });
    });
    interlockctl(&engine, PIN_PROXY).assert_report(0);
    engine.with(|swarm| {
        assert_eq!(swarm.mounted_config(CORE), Some(conf(2)));
        let core = &swarm.service(CORE).unwrap().spec;
        assert_eq!(
            core["Labels"][CONCURRENT_LABEL], "someone-else",
            "the other change survives"
        );
        assert_eq!(core["UpdateConfig"]["FailureAction"], "rollback");
    });
}

#[test]
fn an_update_out_of_sequence_is_retried_and_keeps_the_other_change() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.concurrent_update = Some(ConcurrentUpdate {
            service: CORE.into(),
            trigger: Trigger::BeforeFirstUpdate,
        });
    });
    let report = interlockctl(&engine, PIN_PROXY).assert_report(0);
    assert_eq!(report["status"], "applied");
    let core_id = engine.with(|s| s.service(CORE).unwrap().id.clone());
    let core_updates: Vec<Option<u16>> = engine
        .requests()
        .iter()
        .filter(|r| r.path == format!("/services/{core_id}/update"))
        .map(|r| r.status)
        .collect();
    assert_eq!(
        core_updates,
        [Some(500), Some(200)],
        "one out-of-sequence answer, one retry"
    );
    engine.with(|swarm| {
        assert_eq!(swarm.mounted_config(CORE), Some(conf(2)));
        let core = &swarm.service(CORE).unwrap().spec;
        assert_eq!(
            core["Labels"][CONCURRENT_LABEL], "someone-else",
            "the other change survives"
        );
        assert_eq!(swarm.config_names(CONF), [conf(1), conf(2)]);
    });
}

#[test]
fn a_taken_config_name_makes_the_tool_use_the_next_number() {
    let squatter = "# someone else's config\n";
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.add_config(&conf(2), squatter, &[]);
    });
    let report = interlockctl(&engine, PIN_PROXY).assert_report(0);
    assert_eq!(report["config"]["next"], conf(3));
    engine.with(|swarm| {
        assert_eq!(swarm.mounted_config(CORE), Some(conf(3)));
        assert_eq!(swarm.config_names(CONF), [conf(1), conf(2), conf(3)]);
        assert_eq!(swarm.config(&conf(2)).unwrap().data, squatter, "left alone");
        assert!(
            swarm
                .config(&conf(3))
                .unwrap()
                .data
                .contains("node.labels.role==dtr")
        );
    });
}

#[test]
fn a_config_name_taken_between_list_and_create_is_retried_with_the_next_number() {
    let squatter = "# another run's config\n";
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.config_taken_before_create = Some((conf(2), squatter.into()));
    });
    let report = interlockctl(&engine, PIN_PROXY).assert_report(0);
    assert_eq!(report["config"]["next"], conf(3));
    let creates: Vec<Option<u16>> = engine
        .requests()
        .iter()
        .filter(|r| r.path == "/configs/create")
        .map(|r| r.status)
        .collect();
    assert_eq!(creates, [Some(409), Some(201)]);
    engine.with(|swarm| {
        assert_eq!(swarm.mounted_config(CORE), Some(conf(3)));
        assert_eq!(swarm.config_names(CONF), [conf(1), conf(2), conf(3)]);
        assert_eq!(swarm.config(&conf(2)).unwrap().data, squatter, "left alone");
    });
}

#[test]
fn a_proxy_that_never_converges_times_out_with_exit_6() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.never_scheduled = vec![PROXY.into()];
    });
    let started = Instant::now();
    let failure = Failure {
        exit: (6, &["timed_out"]),
        core_mounts: (2, "nothing was rolled back"),
        ..Failure::default()
    };
    let args = [PIN_PROXY, &["--timeout", "1s"]].concat();
    let report = assert_failure(&engine, &args, &failure);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(PROXY) && message.contains("1/2 tasks running"),
        "{message}"
    );
    assert!(message.contains("no suitable node"), "says why: {message}");
    engine.with(|swarm| {
        let proxy = swarm.service(PROXY).unwrap();
        assert_eq!(proxy.update_status.as_ref().unwrap()["State"], "updating");
        assert_eq!(
            proxy.spec["TaskTemplate"]["Placement"]["Constraints"],
            json!(["node.labels.role==dtr"])
        );
    });
}

#[test]
fn an_unreachable_engine_exits_1_with_a_docker_host_hint() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let run = invocation(&format!("tcp://{addr}"), PIN_PROXY).run();
    let report = run.assert_report(1);
    assert_eq!(report["status"], "failed");
    assert_eq!(report["errors"][0]["code"], "engine_unreachable");
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&addr.to_string()),
        "{report}"
    );
    assert!(
        report["errors"][0]["hint"]
            .as_str()
            .unwrap()
            .contains("DOCKER_HOST")
    );
    assert!(
        run.stderr.contains("hint:") && run.stderr.contains("DOCKER_HOST"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_worker_engine_is_refused_as_not_a_manager() {
    let engine = FakeEngine::start_arranged(|swarm| swarm.control_available = false);
    let before = fingerprint(&engine);
    let report = interlockctl(&engine, PIN_PROXY).assert_report(1);
    assert_eq!(report["status"], "failed");
    assert_eq!(report["errors"][0]["code"], "not_a_manager");
    assert!(
        report["errors"][0]["hint"]
            .as_str()
            .unwrap()
            .contains("manager")
    );
    let paths: Vec<String> = engine.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        ["/version", "/info"],
        "it stops after asking who it talks to"
    );
    assert_eq!(fingerprint(&engine), before);
}

/// On the fake engine (the lab's engines all speak a recent API): an engine older than API
/// 1.30 has no swarm configs, so the run stops after asking its version, changes nothing, and
/// says which version it found and what to do.
#[test]
fn an_engine_below_api_1_30_is_refused() {
    let engine = FakeEngine::start_arranged(|swarm| swarm.api_version = "1.29".into());
    let before = fingerprint(&engine);
    let report = interlockctl(&engine, PIN_PROXY).assert_report(1);
    assert_eq!(report["status"], "failed");
    assert_eq!(report["errors"][0]["code"], "api_too_old");
    assert_eq!(
        report["errors"][0]["message"],
        "the Docker engine speaks API 1.29, but swarm configs need 1.30 or later"
    );
    assert_eq!(
        report["errors"][0]["hint"],
        "upgrade the engine to Docker 17.06 or later"
    );
    assert_eq!(fingerprint(&engine), before, "nothing changed");
    assert_eq!(writes(&engine), Vec::<String>::new());
}

#[test]
fn a_missing_proxy_service_is_refused_with_exit_4() {
    let engine = FakeEngine::start_arranged(|swarm| {
        let id = swarm.service(PROXY).unwrap().id.clone();
        swarm.services.retain(|s| s.id != id);
        swarm.tasks.retain(|t| t.service_id != id);
    });
    let before = fingerprint(&engine);
    let report = interlockctl(&engine, PIN_PROXY).assert_report(4);
    assert_eq!(report["status"], "refused");
    assert_eq!(report["errors"][0]["code"], "proxy_service_missing");
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(PROXY)
    );
    assert_eq!(fingerprint(&engine), before, "nothing changed");
    assert_eq!(writes(&engine), Vec::<String>::new());

    // The doctor reports it instead, with the rest of the picture.
    let status = interlockctl(&engine, &["status"]).assert_report(1);
    assert_eq!(status["status"], "failed");
    assert_eq!(status["errors"][0]["code"], "proxy_service_missing");
    assert_eq!(status["state"]["core"]["service"], CORE);
    assert_eq!(status["state"]["extensions"][0]["proxy"], Value::Null);
}

#[test]
fn status_of_a_healthy_swarm_exits_0_without_findings() {
    // A proxy whose failed updates pause (Swarm's default) is the one warning.
    let paused = FakeEngine::start();
    let status = interlockctl(&paused, &["status"]).assert_report(0);
    let codes: Vec<&Value> = status["state"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["code"])
        .collect();
    assert_eq!(codes, [&json!("proxy_without_rollback")]);

    // Created with `--update-failure-action rollback`, as the lab's proxy is.
    let engine = FakeEngine::start_arranged(|swarm| {
        let proxy = swarm.service_mut(PROXY).expect("the proxy");
        proxy.spec["UpdateConfig"]["FailureAction"] = json!("rollback");
    });
    let status = interlockctl(&engine, &["status"]).assert_report(0);
    let state = &status["state"];
    assert_eq!(state["findings"], json!([]));
    assert_eq!(state["extensions"][0]["name"], "default");
    let proxy = &state["extensions"][0]["proxy"];
    assert_eq!(*proxy, state["proxy"]);
    assert_eq!(proxy["networks"], json!([]));
    assert_eq!(
        (
            &proxy["last_update"]["updated"],
            &proxy["last_update"]["rolling"]
        ),
        (&json!(false), &Value::Null),
        "never updated since it was created"
    );
    assert_eq!(writes(&engine), Vec::<String>::new());
}

#[test]
fn a_live_config_that_is_not_toml_is_refused_with_exit_4() {
    let engine = FakeEngine::start_arranged(|swarm| {
        let conf1 = swarm
            .configs
            .iter_mut()
            .find(|c| c.name == conf(1))
            .unwrap();
        conf1.data = "ListenAddr = \":8080\"\n[Extensions.default\nProxyReplicas = 2\n".into();
    });
    let before = fingerprint(&engine);
    let report = interlockctl(&engine, PIN_PROXY).assert_report(4);
    assert_eq!(report["errors"][0]["code"], "invalid_toml");
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("{} is not valid TOML (line 2, column", conf(1))),
        "{message}"
    );
    assert_eq!(fingerprint(&engine), before, "nothing changed");
    assert_eq!(writes(&engine), Vec::<String>::new());

    // The doctor reports it, and finds the proxy by Interlock's label.
    let status = interlockctl(&engine, &["status"]).assert_report(1);
    assert_eq!(status["errors"][0]["code"], "invalid_toml");
    assert_eq!(status["state"]["unclaimed_proxies"][0]["service"], PROXY);
    let show = interlockctl(&engine, &["show"]).assert_report(0);
    assert!(
        show["config"]["content"]
            .as_str()
            .unwrap()
            .contains("[Extensions.default\n")
    );
    assert!(
        show["warnings"][0]
            .as_str()
            .unwrap()
            .contains("is not valid TOML")
    );
}

/// On a busy cluster the core rolls the proxy often: a run that finds a rollout running waits
/// for it, says so, and then plans from where it ended. That rollout leaves the proxy with 3
/// replicas: only a plan made after it puts them back to the config's 2.
#[test]
fn a_rollout_in_progress_is_waited_for_then_the_run_plans_afresh() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.foreign_rollout = Some((PROXY.into(), 4));
    });
    let mut args = PIN_PROXY.to_vec();
    args.extend(["-o", "text"]);
    let run = interlockctl(&engine, &args);
    assert_eq!(run.code, 0, "{}", run.render());
    assert!(
        run.stderr.contains(&format!(
            "  update service {PROXY}: replicas: 3 -> 2; constraints: "
        )),
        "the plan starts from the 3 replicas the rollout left: {}",
        run.render()
    );
    assert!(
        run.stderr.contains(&format!(
            "Waiting for the rollout already running on {PROXY} (updating) before planning ..."
        )),
        "{}",
        run.render()
    );
    assert!(
        run.stderr.ends_with("Applied and verified.\n"),
        "{}",
        run.render()
    );
    engine.with(|swarm| {
        assert_eq!(swarm.mounted_config(CORE), Some(conf(2)));
        let proxy = &swarm.service(PROXY).unwrap().spec;
        assert_eq!(
            proxy["TaskTemplate"]["Placement"]["Constraints"],
            json!(["node.labels.role==dtr"])
        );
        assert_eq!(proxy["Mode"]["Replicated"]["Replicas"], 2);
    });
}

/// The Interlock core swaps a new nginx config onto the proxy once it loaded the run's
/// config, and Swarm marks that rollout only a moment later: for that moment the proxy shows
/// no rollout while none of its tasks runs the current spec. Verification waits for the
/// tasks instead of failing on them (on the lab this raced when the run had nothing to send
/// to the proxy itself).
#[test]
fn a_rollout_swarm_has_not_marked_yet_is_waited_for_before_verifying() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.update_service(PROXY, |spec| {
            spec["TaskTemplate"]["Placement"]["Constraints"] = json!(["node.labels.role==dtr"]);
        });
        swarm.faults.unmarked_rollout = Some(UnmarkedRollout {
            service: PROXY.into(),
            after_update_of: CORE.into(),
            held: 3,
        });
    });
    let report = interlockctl(&engine, PIN_PROXY).assert_report(0);
    assert_eq!(report["status"], "applied");
    assert_eq!(
        action_targets(&report, "update_service"),
        [CORE],
        "the run had nothing to send to the proxy"
    );
    engine.with(|swarm| {
        let proxy = swarm.service(PROXY).unwrap();
        assert_eq!(
            proxy.spec["TaskTemplate"]["ContainerSpec"]["Env"],
            json!(["WRITER=someone-else"])
        );
        assert_eq!(
            swarm.running_tasks(PROXY).len(),
            2,
            "verified on the new tasks"
        );
    });
}

#[test]
fn a_rollout_that_outlasts_the_timeout_is_exit_6_and_nothing_changes() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.foreign_rollout = Some((CORE.into(), usize::MAX));
    });
    let before = fingerprint(&engine);
    let mut args = HOST_MODE.to_vec();
    args.extend(["--timeout", "1s"]);
    let report = interlockctl(&engine, &args).assert_report(6);
    assert_eq!(report["status"], "timed_out");
    assert_eq!(report["errors"][0]["code"], "timed_out");
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("{CORE} did not converge in time")),
        "{message}"
    );
    assert_eq!(fingerprint(&engine), before, "nothing changed");
    assert_eq!(writes(&engine), Vec::<String>::new());
}

#[test]
fn a_paused_update_is_refused_with_exit_4() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.service_mut(CORE).unwrap().update_status = Some(json!({
            "State": "paused",
            "StartedAt": "2026-01-01T00:00:00Z",
            "Message": "update paused due to failure or early termination of task x"
        }));
    });
    let before = fingerprint(&engine);
    let report = interlockctl(&engine, HOST_MODE).assert_report(4);
    assert_eq!(report["status"], "refused");
    assert_eq!(report["errors"][0]["code"], "update_in_progress");
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert_eq!(message, format!("a previous update of {CORE} is paused"));
    assert_eq!(fingerprint(&engine), before, "nothing changed");
    assert_eq!(writes(&engine), Vec::<String>::new());
}

#[test]
fn rollback_after_pin_proxy_restores_conf_1_and_the_default_constraints() {
    let engine = FakeEngine::start();
    let initial_proxy = engine.with(|s| s.service(PROXY).unwrap().spec.clone());
    interlockctl(&engine, PIN_PROXY).assert_report(0);

    let report = interlockctl(&engine, &["rollback", "--yes"]).assert_report(0);
    assert_eq!(report["status"], "applied");
    assert_eq!(report["config"]["current"], conf(2));
    assert_eq!(report["config"]["next"], conf(1));
    assert_eq!(
        action_kinds(&report),
        ["reuse_config", "update_service", "update_service"]
    );
    engine.with(|swarm| {
        assert_eq!(swarm.mounted_config(CORE), Some(conf(1)));
        assert_eq!(
            swarm.config_names(CONF),
            [conf(1), conf(2)],
            "no copy of conf-1"
        );
        let proxy = &swarm.service(PROXY).unwrap().spec;
        assert_eq!(
            proxy["TaskTemplate"]["Placement"]["Constraints"],
            json!(UCP_CONSTRAINTS)
        );
        assert_eq!(proxy["Mode"]["Replicated"]["Replicas"], 2);
        assert_eq!(proxy["EndpointSpec"], initial_proxy["EndpointSpec"]);
        // Apart from the safety net this tool adds to every service it updates: Swarm
        // rolls a failed update back instead of pausing it half-done.
        let mut expected = initial_proxy.clone();
        expected["UpdateConfig"]["FailureAction"] = json!("rollback");
        assert_eq!(proxy, &expected, "the proxy spec is the original again");
        assert_eq!(swarm.running_tasks(PROXY).len(), 2);
    });

    // Rolling back again returns to where it started, still without copying a config.
    let report = interlockctl(&engine, &["rollback", "--yes"]).assert_report(0);
    assert_eq!(report["config"]["next"], conf(2));
    engine.with(|swarm| {
        assert_eq!(swarm.mounted_config(CORE), Some(conf(2)));
        assert_eq!(swarm.config_names(CONF), [conf(1), conf(2)]);
        assert_eq!(
            swarm.service(PROXY).unwrap().spec["TaskTemplate"]["Placement"]["Constraints"],
            json!(["node.labels.role==dtr"])
        );
        assert_eq!(
            swarm.running_tasks(PROXY),
            [("w1".to_owned(), vec![]), ("w2".to_owned(), vec![])]
        );
    });
}

#[test]
fn a_failing_proxy_update_restores_the_previous_state_with_exit_5() {
    // Proxy tasks pinned to role=dtr exit 1 (say, the dedicated nodes cannot run them).
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.failing_tasks = vec![(PROXY.into(), "node.labels.role==dtr".into())];
    });
    let initial_proxy = engine.with(|s| s.service(PROXY).unwrap().spec.clone());
    let failure = Failure {
        exit: (5, &["rolled_back"]),
        core_mounts: (1, "the core was rolled back"),
        proxy_tasks: Some((2, "both proxy replicas run again")),
        ..Failure::default()
    };
    let report = assert_failure(&engine, PIN_PROXY, &failure);
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(PROXY) && message.contains("non-zero exit (1)"),
        "{message}"
    );
    engine.with(|swarm| {
        let proxy = swarm.service(PROXY).unwrap();
        let state = proxy.update_status.as_ref().map(|s| s["State"].clone());
        assert_eq!(
            proxy.spec["TaskTemplate"]["Placement"]["Constraints"],
            json!(UCP_CONSTRAINTS),
            "exit 5 promises the previous state, but the proxy's update is {state:?} on the new spec"
        );
        assert_eq!(proxy.spec, initial_proxy);
    });
}

/// On the fake engine (the lab cannot make Swarm's own rollback fail on demand): the proxy's
/// new tasks fail, Swarm rolls the update back, and the rolled-back spec's tasks fail too, so
/// Swarm pauses its rollback (`rollback_paused`). Every field is back (the proxy's by Swarm,
/// the core's by the run), yet the proxy does not serve: exit 1 `partially_restored` naming
/// the paused rollback, the task that does not run and the failed tasks' errors, never exit 5.
#[test]
fn a_rollback_swarm_pauses_is_partially_restored_with_exit_1_not_restored() {
    let engine = FakeEngine::start_arranged(|swarm| {
        // Every new proxy task exits 1, whatever its spec (say, its nodes lost their image).
        swarm.faults.failing_tasks = vec![(PROXY.into(), "docker/ucp-interlock-proxy".into())];
    });
    let failure = Failure {
        exit: (1, &["update_failed", "partially_restored"]),
        core_mounts: (1, "the core is back on its previous config"),
        core_as_before: Some("the core is on its previous spec"),
        proxy_as_before: Some("the proxy's spec is the previous one"),
        proxy_tasks: Some((1, "one of two proxy tasks runs")),
        core_task_on_mgr: true,
    };
    let report = assert_failure(&engine, PIN_PROXY, &failure);
    let cause = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        cause.starts_with(&format!(
            "the update of {PROXY} failed: rollback paused due to failure or early termination of task "
        )) && cause.contains(": failed (task: non-zero exit (1))"),
        "the failed tasks' errors: {cause}"
    );
    let left = report["errors"][1]["message"].as_str().unwrap();
    assert!(
        left.starts_with(&format!(
            "not everything this run changed is back: {PROXY} does not serve: Swarm paused it (rollback paused due to failure or early termination of task "
        )),
        "{left}"
    );
    assert!(
        left.contains(", 1 of 2 proxy tasks are running, task ")
            && left.contains(": failed (task: non-zero exit (1))"),
        "{left}"
    );
    assert_eq!(
        left.matches("does not serve").count(),
        1,
        "the core serves: {left}"
    );
    assert_eq!(
        report["errors"][1]["hint"],
        "run `interlockctl status` to see where it stands, then `interlockctl rollback` or fix it by hand (the backup holds the previous specs)"
    );
    let update = engine.with(|swarm| swarm.service(PROXY).unwrap().update_status.clone());
    assert_eq!(update.unwrap()["State"], "rollback_paused");
}

/// Host mode serves on 7080 and 7443; a run moving it to 7081 and 7444 fails verification
/// (no task binds its host ports) and is put back, but the re-created tasks bind none
/// either: the proxy's spec is back, its tasks are not, so exit 1 names the stale ports.
#[test]
fn a_restored_proxy_whose_tasks_keep_stale_ports_is_partially_restored_with_exit_1() {
    let engine = FakeEngine::start();
    interlockctl(&engine, HOST_MODE).assert_report(0);
    let (_, proxy_before) = specs(&engine);
    engine.with(|swarm| swarm.faults.host_ports_never_bound = vec![PROXY.into()]);
    let moved = ["host-mode", "--http", "7081", "--https", "7444", "--yes"];
    let failure = Failure {
        exit: (1, &["verification_failed", "partially_restored"]),
        core_mounts: (2, "the core is back on its previous config"),
        core_as_before: Some("the core is on its previous spec"),
        ..Failure::default()
    };
    let report = assert_failure(&engine, &moved, &failure);
    assert_eq!(
        report["errors"][1]["message"],
        format!(
            "not everything this run changed is back: {PROXY} does not serve: proxy task on mgr does not bind the configured host ports, proxy task on w1 does not bind the configured host ports"
        )
    );
    assert_eq!(
        specs(&engine).1["EndpointSpec"],
        proxy_before["EndpointSpec"],
        "the ports 7080 and 7443 are back in the spec"
    );
    assert_eq!(
        engine.with(|swarm| swarm.running_tasks(PROXY)),
        [("mgr".to_owned(), vec![]), ("w1".to_owned(), vec![])],
        "running, but bound to no port"
    );
}

/// The engine refuses the proxy's update once the core's was accepted (a 500): the core is
/// put back on its previous config, the proxy was never changed, and exit 5 comes from a
/// re-read of both.
#[test]
fn a_refused_proxy_update_puts_the_core_back_with_exit_5() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.updates_refused_from = vec![(PROXY.into(), 1)];
    });
    let failure = Failure {
        exit: (5, &["rolled_back"]),
        core_mounts: (1, "the core is back on its previous config"),
        core_as_before: Some("the core as before"),
        proxy_as_before: Some("the proxy as before"),
        core_task_on_mgr: true,
        ..Failure::default()
    };
    let report = assert_failure(&engine, PIN_PROXY, &failure);
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("the swarm does not accept changes")
            && message.ends_with(&format!(
                "; restored: {CORE} config /config.toml, update config"
            )),
        "{message}"
    );
    assert_eq!(
        report["errors"][0]["hint"],
        "the swarm serves with its previous config; fix the cause above and run the command again"
    );
    assert_eq!(
        engine.with(|swarm| swarm.running_tasks(PROXY)),
        [("mgr".to_owned(), vec![]), ("w1".to_owned(), vec![])]
    );
}

/// The proxy's update is refused and so is the core's restore: exit 1 `partially_restored`
/// naming the core, which stays on the run's config; the proxy was never changed.
#[test]
fn a_refused_proxy_update_whose_core_restore_is_refused_too_is_partially_restored() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.updates_refused_from = vec![(PROXY.into(), 1), (CORE.into(), 2)];
    });
    let failure = Failure {
        exit: (1, &["api_error", "partially_restored"]),
        core_mounts: (2, "the core stays on the run's config"),
        proxy_as_before: Some("the proxy was never changed"),
        ..Failure::default()
    };
    let report = assert_failure(&engine, PIN_PROXY, &failure);
    let left = report["errors"][1]["message"].as_str().unwrap();
    assert!(
        left.starts_with(&format!(
            "not everything this run changed is back: {CORE}: config /config.toml, update config could not be put back ("
        )) && left.contains(&format!("{CORE} config /config.toml is {{")),
        "names the core: {left}"
    );
    assert!(!left.contains(&format!("{PROXY}:")), "{left}");
}

/// The lab's config pinned to `role=dtr`, with a `PollInterval` the core cannot load.
fn unloadable_pinned_config(dir: &Path) -> String {
    let file = dir.join("unloadable-pinned.toml");
    let pinned = CORE_CONFIG
        .replace("PollInterval = \"3s\"", UNLOADABLE)
        .replace(
            "ProxyConstraints = [\"node.labels.com.docker.ucp.orchestrator.swarm==true\", \"node.platform.os==linux\"]",
            "ProxyConstraints = [\"node.labels.role==dtr\"]",
        );
    assert!(
        pinned.contains("role==dtr"),
        "the fixture's ProxyConstraints line"
    );
    std::fs::write(&file, pinned).unwrap();
    file.to_str().expect("UTF-8 path").to_owned()
}

/// The two updates overlap: the core's new config fails while the proxy's update rolls.
/// Swarm rolls the core back; the run puts the proxy's fields back itself, and says exit 5
/// only after reading both again.
#[test]
fn a_core_that_fails_while_the_proxy_rolls_leaves_both_as_they_were_with_exit_5() {
    let engine = FakeEngine::start();
    let dir = tempfile::tempdir().unwrap();
    let file = unloadable_pinned_config(dir.path());
    let failure = Failure {
        exit: (5, &["rolled_back"]),
        core_mounts: (1, "the core is back on its previous config"),
        core_as_before: Some("the core is on its previous spec"),
        proxy_as_before: Some("every proxy field is back"),
        proxy_tasks: Some((2, "both proxy replicas run")),
        ..Failure::default()
    };
    let report = assert_failure(&engine, &["apply", &file, "--yes"], &failure);
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.ends_with(&format!(
            "; restored: {PROXY} constraints, update config; {CORE} config /config.toml, update config (Swarm had rolled it back)"
        )),
        "says what was restored, and by whom: {message}"
    );
}

/// A restore that cannot be sent is not a restore: exit 1 with `partially_restored`, naming
/// what still differs, never exit 5.
#[test]
fn a_restore_the_engine_refuses_is_partially_restored_with_exit_1() {
    let engine = FakeEngine::start_arranged(|swarm| {
        // The run's own proxy update goes through; the one putting it back does not.
        swarm.faults.updates_refused_from = vec![(PROXY.into(), 2)];
    });
    let dir = tempfile::tempdir().unwrap();
    let file = unloadable_pinned_config(dir.path());
    let failure = Failure {
        exit: (1, &["update_failed", "partially_restored"]),
        core_mounts: (1, "the core is back on its previous config"),
        core_as_before: Some("Swarm rolled the core back"),
        ..Failure::default()
    };
    let report = assert_failure(&engine, &["apply", &file, "--yes"], &failure);
    let message = report["errors"][1]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "not everything this run changed is back: {PROXY}: constraints, update config could not be put back ("
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "{PROXY} constraints is [\"node.labels.role==dtr\"] instead of [\"node.labels.com.docker.ucp.orchestrator.swarm==true\",\"node.platform.os==linux\"]"
        )),
        "names what still differs: {message}"
    );
    assert_eq!(
        specs(&engine).1["TaskTemplate"]["Placement"]["Constraints"],
        json!(["node.labels.role==dtr"]),
        "the proxy is still changed, as the error says"
    );
}

/// Verification fails after the stale-task force update: the proxy goes back to its own
/// previous ports (not to Swarm's previous spec, which is by then the run's new spec), the
/// core back to its previous config without the host port, and what someone else changed
/// on the proxy meanwhile stays.
#[test]
fn a_proxy_that_fails_verification_is_put_back_field_by_field_with_exit_5() {
    let engine = FakeEngine::start();
    interlockctl(&engine, PIN_PROXY).assert_report(0);
    let (_, proxy_before) = specs(&engine);
    engine.with(|swarm| {
        swarm.faults.host_ports_never_bound = vec![PROXY.into()];
        let seen = swarm.inspections_of(PROXY);
        swarm.faults.concurrent_update = Some(ConcurrentUpdate {
            service: PROXY.into(),
            trigger: Trigger::AfterInspect(seen + 2),
        });
    });
    let failure = Failure {
        exit: (5, &["verification_failed"]),
        core_mounts: (2, "the core is back on its previous config"),
        core_as_before: Some("no host port 8080, back on conf-2"),
        ..Failure::default()
    };
    let report = assert_failure(&engine, HOST_MODE, &failure);
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.ends_with(&format!(
            "; restored: {PROXY} ports 80/tcp, 443/tcp; {CORE} config /config.toml, ports 8080/tcp"
        )),
        "{message}"
    );
    let (_, proxy_after) = specs(&engine);
    assert_eq!(proxy_after["EndpointSpec"], proxy_before["EndpointSpec"]);
    assert_eq!(
        proxy_after["Labels"][CONCURRENT_LABEL], "someone-else",
        "the concurrent writer's change stays"
    );
}

/// A run that changes nothing restores nothing, so it never says exit 5: a proxy that does
/// not serve as configured is exit 1.
#[test]
fn a_run_with_nothing_to_change_that_fails_verification_is_exit_1() {
    let engine = FakeEngine::start();
    interlockctl(&engine, PIN_PROXY).assert_report(0);
    engine.with(|swarm| {
        let proxy_id = swarm.service(PROXY).unwrap().id.clone();
        let task = swarm
            .tasks
            .iter_mut()
            .find(|t| t.service_id == proxy_id && t.state == "running")
            .unwrap();
        task.state = "failed".into();
        task.err = Some("task: non-zero exit (137)".into());
    });
    let before = fingerprint(&engine);
    engine.clear_requests();
    let report = interlockctl(&engine, PIN_PROXY).assert_report(1);
    assert_eq!(report["status"], "failed");
    assert_eq!(report["changed"], false);
    assert_eq!(report["errors"][0]["code"], "verification_failed");
    assert_eq!(
        report["errors"][0]["message"],
        "the proxy does not serve as configured: 1 of 2 proxy tasks are running"
    );
    assert_eq!(fingerprint(&engine), before, "nothing changed");
    assert_eq!(writes(&engine), Vec::<String>::new());
}

#[test]
fn proxy_tasks_that_kept_stale_ports_are_recreated_and_verified() {
    // tests/lab/NOTES.md: after a constraints-only update, a later ports-only update does not
    // re-create the task that survived; it keeps its old ports.
    let engine = FakeEngine::start();
    interlockctl(&engine, PIN_PROXY).assert_report(0);
    engine.with(|swarm| {
        swarm.update_service(PROXY, |spec| {
            spec["EndpointSpec"]["Ports"] = json!([host_port(7080, 80), host_port(7443, 443)]);
        });
        let ports = vec!["7080:80".to_owned(), "7443:443".to_owned()];
        assert_eq!(
            swarm.running_tasks(PROXY),
            [("w1".to_owned(), vec![]), ("w2".to_owned(), ports)],
            "the survivor on w1 kept its old ports"
        );
    });
    engine.clear_requests();
    let report = interlockctl(&engine, HOST_MODE).assert_report(0);
    assert_eq!(report["status"], "applied");
    let proxy_id = engine.with(|s| s.service(PROXY).unwrap().id.clone());
    let proxy_updates = engine
        .requests()
        .iter()
        .filter(|r| r.path == format!("/services/{proxy_id}/update"))
        .count();
    assert_eq!(
        proxy_updates, 1,
        "one forced update re-creates the stale task"
    );
    engine.with(|swarm| {
        let ports = vec!["7080:80".to_owned(), "7443:443".to_owned()];
        assert_eq!(
            swarm.running_tasks(PROXY),
            [("w1".to_owned(), ports.clone()), ("w2".to_owned(), ports)]
        );
        assert_eq!(
            swarm.service(PROXY).unwrap().spec["TaskTemplate"]["ForceUpdate"],
            1
        );
    });
}

// ---------------------------------------------------------------------------------------
// Service clusters

/// The proxy service of the `eu` cluster the tests add.
const EU_PROXY: &str = "ucp-interlock-proxy-eu";
/// `cluster add eu` on the role=dtr nodes, ports 7081 and 7444.
const ADD_EU: &[&str] = &[
    "cluster", "add", "eu", "--label", "role=dtr", "--http", "7081", "--https", "7444", "--yes",
];

/// The core creates the new cluster's proxy from the new config; the run waits for it and
/// verifies it. `cluster remove` then rotates the core onto a config without the cluster and
/// removes the proxy Interlock would leave running; the default proxy stays as it was.
#[test]
fn a_cluster_is_added_with_the_proxy_the_core_creates_and_removed_with_it() {
    let engine = FakeEngine::start();
    let (_, default_proxy) = specs(&engine);
    let report = interlockctl(&engine, ADD_EU).assert_report(0);
    assert_eq!(report["status"], "applied");
    assert_eq!(report["extension"], "eu");
    assert_eq!(
        action_kinds(&report),
        ["create_config", "update_service", "await_service"]
    );
    engine.with(|swarm| {
        assert_eq!(swarm.mounted_config(CORE), Some(conf(2)));
        let eu = &swarm.service(EU_PROXY).expect("the core created it").spec;
        assert_eq!(
            eu["TaskTemplate"]["Placement"]["Constraints"],
            json!(["node.labels.role==dtr"])
        );
        assert_eq!(
            swarm.running_tasks(EU_PROXY),
            [
                (
                    "w1".to_owned(),
                    vec!["7081:80".to_owned(), "7444:443".to_owned()]
                ),
                (
                    "w2".to_owned(),
                    vec!["7081:80".to_owned(), "7444:443".to_owned()]
                ),
            ]
        );
    });

    let report = interlockctl(&engine, &["cluster", "remove", "eu", "--yes"]).assert_report(0);
    assert_eq!(
        action_kinds(&report),
        ["create_config", "update_service", "remove_service"]
    );
    assert_eq!(report["actions"][2]["target"], EU_PROXY);
    engine.with(|swarm| {
        assert_eq!(swarm.mounted_config(CORE), Some(conf(3)));
        assert!(swarm.service(EU_PROXY).is_none(), "removed");
    });
    assert_eq!(
        specs(&engine).1,
        default_proxy,
        "the default proxy is untouched"
    );
}

/// The new cluster's proxy does not verify: the core goes back to its previous config
/// (config and host port), then the proxy the core created from the run's config is
/// removed, and exit 5 comes from a re-read that shows both.
#[test]
fn a_new_cluster_whose_proxy_fails_verification_is_removed_after_the_core_is_back() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.host_ports_never_bound = vec![EU_PROXY.into()];
    });
    let failure = Failure {
        exit: (5, &["verification_failed"]),
        core_mounts: (1, "the core is back on its previous config"),
        core_as_before: Some("the core as before"),
        proxy_as_before: Some("the default proxy as before"),
        ..Failure::default()
    };
    let report = assert_failure(&engine, ADD_EU, &failure);
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.ends_with(&format!(
            "; restored: {CORE} config /config.toml, ports 8080/tcp, update config; {EU_PROXY} removed (the core created it from this run's config)"
        )),
        "{message}"
    );
    assert!(engine.with(|swarm| swarm.service(EU_PROXY).is_none()));
}

/// The core leaves the restore undone: the created proxy is left (the core, still on the
/// run's config, would create it again) and named, with exit 1 `partially_restored`.
#[test]
fn a_new_cluster_whose_core_cannot_be_put_back_keeps_its_proxy_and_says_so() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.host_ports_never_bound = vec![EU_PROXY.into()];
        // The run's core update goes through; the one putting it back does not.
        swarm.faults.updates_refused_from = vec![(CORE.into(), 2)];
    });
    let failure = Failure {
        exit: (1, &["verification_failed", "partially_restored"]),
        core_mounts: (2, "the core stays on the run's config"),
        ..Failure::default()
    };
    let report = assert_failure(&engine, ADD_EU, &failure);
    let message = report["errors"][1]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "{EU_PROXY}, which the core created from this run's config, still exists"
        )),
        "{message}"
    );
    assert!(engine.with(|swarm| swarm.service(EU_PROXY).is_some()));
}

/// The core creates the new cluster's proxy with one replica instead of two, and the engine
/// refuses the update making it match: the core goes back to its previous config, the
/// created proxy is removed, the default proxy is untouched, exit 5.
#[test]
fn a_refused_update_of_a_created_cluster_proxy_puts_the_core_back_with_exit_5() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.created_proxy_replicas = Some(1);
        swarm.faults.updates_refused_from = vec![(EU_PROXY.into(), 1)];
    });
    let failure = Failure {
        exit: (5, &["rolled_back"]),
        core_mounts: (1, "the core is back on its previous config"),
        core_as_before: Some("the core as before"),
        proxy_as_before: Some("the default proxy as before"),
        core_task_on_mgr: true,
        ..Failure::default()
    };
    let report = assert_failure(&engine, ADD_EU, &failure);
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("the swarm does not accept changes")
            && message.ends_with(&format!(
                "; restored: {CORE} config /config.toml, ports 8080/tcp, update config; {EU_PROXY} removed (the core created it from this run's config)"
            )),
        "{message}"
    );
    assert!(
        engine.with(|swarm| swarm.service(EU_PROXY).is_none()),
        "removed"
    );
}

/// The same, with the core's restore refused too: exit 1 `partially_restored` naming the
/// core, and the created proxy left (on the run's config the core would create it again).
#[test]
fn a_refused_update_of_a_created_cluster_proxy_and_of_the_core_restore_is_partially_restored() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.created_proxy_replicas = Some(1);
        swarm.faults.updates_refused_from = vec![(EU_PROXY.into(), 1), (CORE.into(), 2)];
    });
    let failure = Failure {
        exit: (1, &["api_error", "partially_restored"]),
        core_mounts: (2, "the core stays on the run's config"),
        proxy_as_before: Some("the default proxy untouched"),
        ..Failure::default()
    };
    let report = assert_failure(&engine, ADD_EU, &failure);
    let left = report["errors"][1]["message"].as_str().unwrap();
    assert!(
        left.starts_with(&format!(
            "not everything this run changed is back: {CORE}: config /config.toml, ports 8080/tcp, update config could not be put back ("
        )) && left.contains(&format!(
            "{EU_PROXY}, which the core created from this run's config, still exists"
        )),
        "names the core and the created proxy: {left}"
    );
    engine.with(|swarm| {
        let eu = swarm.service(EU_PROXY).expect("left");
        assert_eq!(
            eu.spec["Mode"]["Replicated"]["Replicas"], 1,
            "as the core made it"
        );
    });
}

/// A core that never creates the proxy: exit 6 once `--timeout` passes, nothing undone.
#[test]
fn a_new_cluster_whose_proxy_the_core_never_creates_times_out_with_exit_6() {
    let engine = FakeEngine::start_arranged(|swarm| swarm.faults.core_creates_no_proxy = true);
    let failure = Failure {
        exit: (6, &["timed_out"]),
        core_mounts: (2, "nothing rolled back"),
        ..Failure::default()
    };
    let report = assert_failure(&engine, &[ADD_EU, &["--timeout", "2s"]].concat(), &failure);
    assert_eq!(
        report["errors"][0]["message"],
        format!("the Interlock core did not create {EU_PROXY} in time")
    );
    assert!(engine.with(|swarm| swarm.service(EU_PROXY).is_none()));
}

// ---------------------------------------------------------------------------------------
// Secrets

/// Live, on the fake engine (the lab's stand-in core reads no multi-line strings): a live
/// config with secrets in every shape, rotated by `apply`, shows no secret value in the
/// diff on stderr (text), nor in the JSON report's diff and change list, yet both show each
/// secret as changed; the config object holds the secrets whole.
#[test]
fn changed_secrets_of_every_shape_are_hidden_in_live_runs() {
    let engine = FakeEngine::start();
    let every_shape = "fixtures/configs/secrets/every-shape.toml";
    let rotated = "fixtures/configs/secrets/every-shape-rotated.toml";
    interlockctl(&engine, &["apply", every_shape, "--yes"]).assert_report(0);

    let text = interlockctl(&engine, &["apply", rotated, "--yes", "-o", "text"]);
    assert_eq!(text.code, 0, "{}", text.render());
    assert!(!text.render().contains("SECRET-"), "{}", text.render());
    let hidden_changes = |marker: char| {
        text.stderr
            .lines()
            .filter(|line| line.starts_with(marker) && line.contains("<redacted>"))
            .count()
    };
    // The lines of the six secrets (two of them within one line of a multi-line string).
    assert_eq!(
        (hidden_changes('-'), hidden_changes('+')),
        (6, 6),
        "{}",
        text.render()
    );

    let back = interlockctl(&engine, &["apply", every_shape, "--yes"]);
    let report = back.assert_report(0);
    assert!(!back.stdout.contains("SECRET-"), "{}", back.render());
    let diff = report["config"]["diff"].as_str().unwrap();
    assert_eq!(
        diff.matches("-      AdminPass = \"<redacted>\"\n").count(),
        1,
        "{diff}"
    );
    let changed: Vec<&str> = report["config"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|change| change["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        changed,
        [
            "TLSKey",
            "Extensions.default.ProxyReplicas",
            "Extensions.default.Registry.Token",
            "Extensions.default.Upstreams",
            "Extensions.default.Config.AdminPass",
            "Extensions.default.Config.SessionSecret",
            "Extensions.default.Backends[0].Password",
        ]
    );
    engine.with(|swarm| {
        let live = swarm.mounted_config(CORE).unwrap();
        assert_eq!(live, conf(2), "the first config with this content, reused");
        let data = &swarm.config(&live).unwrap().data;
        assert!(data.contains("AdminPass = \"SECRET-basic-1\""), "{data}");
    });
}

// ---------------------------------------------------------------------------------------
// Backups

/// On the fake engine: under umask 000, each changing run's backup directory is 0700 and
/// its files 0600 (they hold the config's secrets), and two runs right after each other get
/// directories of their own, each complete. (Two in the same second: `backup`'s unit tests.)
#[test]
fn backups_are_private_whatever_the_umask_and_never_shared() {
    use std::os::unix::fs::PermissionsExt;
    let engine = FakeEngine::start();
    let root = tempfile::tempdir().unwrap();
    let backup_dir = root.path().join("backups").display().to_string();
    let mut backups = Vec::new();
    for args in [PIN_PROXY, HOST_MODE] {
        let args = [args, &["--backup-dir", &backup_dir]].concat();
        let report = invocation(&engine.docker_host(), &args)
            .umask("000")
            .run()
            .assert_report(0);
        backups.push(PathBuf::from(report["backup"].as_str().unwrap()));
    }
    assert_ne!(backups[0], backups[1]);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    for (backup, config) in backups.iter().zip([conf(1), conf(2)]) {
        assert_eq!(mode(backup), 0o700, "{}", backup.display());
        let mut files: Vec<String> = std::fs::read_dir(backup)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .inspect(|file| assert_eq!(mode(file), 0o600, "{}", file.display()))
            .map(|file| file.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                format!("{config}.toml"),
                format!("{PROXY}.spec.json"),
                format!("{CORE}.spec.json"),
            ]
        );
    }
}

// ---------------------------------------------------------------------------------------
// The fake itself

/// Without `--backup-dir`, `XDG_STATE_HOME` or `HOME` there is nowhere to save the previous
/// state: the run is refused before its first change.
#[test]
fn no_directory_for_the_backup_is_refused_with_exit_4() {
    let engine = FakeEngine::start();
    let before = fingerprint(&engine);
    let run = invocation(&engine.docker_host(), PIN_PROXY)
        .env("HOME", "")
        .run();
    let report = run.assert_report(4);
    assert_eq!(report["status"], "refused");
    assert_eq!(report["errors"][0]["code"], "no_backup_dir");
    assert_eq!(fingerprint(&engine), before, "nothing changed");
    assert_eq!(writes(&engine), Vec::<String>::new());
}

#[test]
fn the_fake_cuts_the_connection_without_an_answer() {
    let engine = FakeEngine::start();
    assert!(fake_engine::raw_get(&engine, "/version").starts_with("HTTP/1.1 200 OK"));
    engine.cut_at(1, CutWhen::BeforeHandling);
    assert_eq!(
        fake_engine::raw_get(&engine, "/v1.41/info"),
        "",
        "no bytes at all"
    );
    assert!(engine.cut_fired());
    assert!(
        fake_engine::raw_get(&engine, "/info").starts_with("HTTP/1.1 200 OK"),
        "once"
    );
    let log: Vec<String> = engine.requests().iter().map(ToString::to_string).collect();
    assert_eq!(
        log,
        [
            "#1 GET /version -> 200",
            "#2 GET /info -> cut",
            "#3 GET /info -> 200"
        ]
    );
}

#[test]
fn the_fake_starts_converged_like_the_lab() {
    let swarm = Swarm::lab();
    assert_eq!(swarm.mounted_config(CORE), Some(conf(1)));
    assert_eq!(swarm.running_tasks(CORE), [("mgr".to_owned(), vec![])]);
    assert_eq!(
        swarm.running_tasks(PROXY),
        [("mgr".to_owned(), vec![]), ("w1".to_owned(), vec![])]
    );
    assert!(swarm.services.iter().all(|s| s.update_status.is_none()));
}

#[test]
fn the_fake_serves_its_swarm_with_or_without_an_api_version_prefix() {
    let engine = FakeEngine::start();
    let expected = engine.with(|s| s.inspect(CORE)).expect("the core exists");
    for path in ["/services/ucp-interlock", "/v1.41/services/ucp-interlock"] {
        let answer = fake_engine::raw_get(&engine, path);
        let (head, body) = answer.split_once("\r\n\r\n").expect("a response");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert_eq!(serde_json::from_str::<Value>(body).unwrap(), expected);
    }
    let missing = fake_engine::raw_get(&engine, "/services/nope");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

// ---------------------------------------------------------------------------------------
// The proxy's edits held for the core's write (a core that swaps its nginx config onto the
// proxy, as the real one does)

const MIGRATE: &[&str] = &[
    "migrate", "--label", "role=dtr", "--http", "7080", "--https", "7443", "--yes",
];

/// `migrate` on a core that writes the proxy: one config, one core update, and one proxy
/// update written onto the spec the core's swap left (so it needs no retry), after which
/// the proxy carries both the core's new nginx config and the run's fields. A re-run changes
/// nothing.
#[test]
fn migrate_writes_the_proxy_edits_onto_the_cores_swap_in_one_update() {
    let engine = FakeEngine::start_with(Swarm::lab().with_core_writing_the_proxy());
    let nginx_before = engine.with(|s| s.proxy_config()).unwrap();
    let report = interlockctl(&engine, MIGRATE).assert_report(0);
    assert_eq!(report["status"], "applied");
    assert_eq!(report["config"]["next"], conf(2));
    assert_eq!(
        action_kinds(&report),
        ["create_config", "update_service", "update_service"]
    );
    assert_eq!(
        (
            engine.with(|s| s.updates_of(CORE)),
            engine.with(|s| s.updates_of(PROXY))
        ),
        (1, 1)
    );

    let conf1 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/core-config.toml");
    let migrated = offline(
        &conf1,
        &[
            "migrate",
            "--label",
            "role=dtr",
            "--replicas",
            "2",
            "--http",
            "7080",
            "--https",
            "7443",
        ],
    );
    engine.with(|swarm| {
        assert_eq!(swarm.mounted_config(CORE), Some(conf(2)));
        assert_eq!(swarm.config(&conf(2)).unwrap().data, migrated);
        let core = &swarm.service(CORE).unwrap().spec;
        assert_eq!(
            core["EndpointSpec"]["Ports"],
            json!([{ "Protocol": "tcp", "TargetPort": 8080, "PublishMode": "host" }])
        );
        let nginx = swarm.proxy_config().unwrap();
        assert_ne!(nginx, nginx_before, "the core swapped its new rendering");
        assert_eq!(
            swarm.config(&nginx).unwrap().data,
            format!("# nginx.conf rendered by the fake core from {}\n", conf(2))
        );
        let proxy = &swarm.service(PROXY).unwrap().spec;
        assert_eq!(
            proxy["TaskTemplate"]["Placement"]["Constraints"],
            json!(["node.labels.role==dtr"])
        );
        assert_eq!(
            proxy["EndpointSpec"]["Ports"],
            json!([host_port(7080, 80), host_port(7443, 443)])
        );
        assert_eq!(
            proxy["TaskTemplate"]["ForceUpdate"], 1,
            "written onto the swap's rollout, the edits re-create every task of it"
        );
        assert_eq!(
            swarm.running_tasks(PROXY),
            [
                (
                    "w1".to_owned(),
                    vec!["7080:80".to_owned(), "7443:443".to_owned()]
                ),
                (
                    "w2".to_owned(),
                    vec!["7080:80".to_owned(), "7443:443".to_owned()]
                )
            ]
        );
    });
    let again = interlockctl(&engine, MIGRATE).assert_report(0);
    assert_eq!(again["status"], "no_changes");
    assert_eq!(again["actions"], json!([]));
}

/// A core that cannot load the config never swaps: the held proxy edits are never sent, so
/// the restore has only the core to put back (Swarm did), and the proxy is exactly as it was.
#[test]
fn a_core_that_fails_to_load_leaves_the_held_proxy_untouched_with_exit_5() {
    let engine = FakeEngine::start_with(Swarm::lab().with_core_writing_the_proxy());
    let proxy_version = engine.with(|s| s.service(PROXY).unwrap().version);
    let dir = tempfile::tempdir().unwrap();
    let file = unloadable_pinned_config(dir.path());
    let failure = Failure {
        exit: (5, &["rolled_back"]),
        core_mounts: (1, "the core is back on its previous config"),
        core_as_before: Some("the core is on its previous spec"),
        proxy_as_before: Some("the proxy was never touched"),
        proxy_tasks: Some((2, "both proxy replicas run")),
        ..Failure::default()
    };
    let report = assert_failure(&engine, &["apply", &file, "--yes"], &failure);
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.ends_with(&format!(
            "; restored: {CORE} config /config.toml, update config (Swarm had rolled it back)"
        )),
        "only the core was changed, so only the core is restored: {message}"
    );
    assert_eq!(
        engine.with(|s| s.updates_of(PROXY)),
        0,
        "nothing was sent to the proxy"
    );
    assert_eq!(
        engine.with(|swarm| swarm.service(PROXY).unwrap().version),
        proxy_version
    );
}

/// A core whose rendering did not change swaps nothing: the held edits go out once the
/// core's new task has run for the new config's `PollInterval`, and the proxy keeps the
/// nginx config it mounts.
#[test]
fn a_core_that_swaps_nothing_gets_the_proxy_edits_after_its_poll_interval() {
    let engine = FakeEngine::start_with(Swarm::lab().with_core_writing_the_proxy());
    engine.with(|s| s.faults.core_renders_nothing_new = true);
    let nginx_before = engine.with(|s| s.proxy_config()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pinned.toml");
    let pinned = CORE_CONFIG
        .replace("PollInterval = \"3s\"", "PollInterval = \"500ms\"")
        .replace(
            "ProxyConstraints = [\"node.labels.com.docker.ucp.orchestrator.swarm==true\", \"node.platform.os==linux\"]",
            "ProxyConstraints = [\"node.labels.role==dtr\"]",
        );
    std::fs::write(&file, &pinned).unwrap();
    let run = interlockctl(&engine, &["apply", file.to_str().unwrap(), "--yes", "-v"]);
    assert_eq!(run.assert_report(0)["status"], "applied");
    assert!(
        run.stderr
            .contains("the core's write of ucp-interlock-proxy: NotWritten"),
        "{}",
        run.stderr
    );
    assert_eq!(
        (
            engine.with(|s| s.updates_of(CORE)),
            engine.with(|s| s.updates_of(PROXY))
        ),
        (1, 1)
    );
    engine.with(|swarm| {
        assert_eq!(swarm.mounted_config(CORE), Some(conf(2)));
        assert_eq!(swarm.proxy_config(), Some(nginx_before), "nothing swapped");
        assert_eq!(
            swarm.service(PROXY).unwrap().spec["TaskTemplate"]["Placement"]["Constraints"],
            json!(["node.labels.role==dtr"])
        );
        assert_eq!(swarm.running_tasks(PROXY).len(), 2);
    });
}

/// A proxy whose tasks Swarm replaces one at a time gets the run's edits at once, ahead of the
/// core's swap: written onto the swap's rollout, they would restart Swarm's updater mid-way,
/// which may stop a second task while the first is down. Both changes still end up on it.
#[test]
fn a_proxy_replaced_one_task_at_a_time_gets_its_edits_ahead_of_the_swap() {
    let engine = FakeEngine::start_with(Swarm::lab().with_core_writing_the_proxy());
    engine.with(|s| {
        s.service_mut(PROXY).unwrap().spec["UpdateConfig"]["Parallelism"] = json!(1);
    });
    let nginx_before = engine.with(|s| s.proxy_config()).unwrap();
    let run = interlockctl(&engine, &[PIN_PROXY, &["-v"]].concat());
    assert_eq!(run.assert_report(0)["status"], "applied");
    // The `-v` detail of a hold (JSON runs print no status lines, only details).
    assert!(
        !run.stderr.contains("the core's write of"),
        "the proxy's edits were not held: {}",
        run.stderr
    );
    engine.with(|swarm| {
        assert_ne!(swarm.proxy_config(), Some(nginx_before), "the core swapped");
        assert_eq!(
            swarm.service(PROXY).unwrap().spec["TaskTemplate"]["Placement"]["Constraints"],
            json!(["node.labels.role==dtr"])
        );
    });
}

// ---------------------------------------------------------------------------------------
// labels watch: the acts' failure paths (the events themselves are tested on the lab)

/// A routed service `web` whose update broke its hosts label: its previous spec is valid.
fn broken_web(swarm: &mut Swarm) {
    swarm.add_service(json!({
        "Name": "web",
        "Labels": { "com.docker.lb.hosts": "web.example", "com.docker.lb.port": "80", "team": "blue" },
        "TaskTemplate": { "ContainerSpec": { "Image": "sha256:0123456789abcdef" } },
        "Mode": { "Replicated": { "Replicas": 1 } }
    }));
    swarm.update_service("web", |spec| {
        spec["Labels"]["com.docker.lb.hosts"] = json!("web.example;evil");
    });
}

/// `labels watch ARGS -o json` against the fake, started; its first check done.
fn watching(engine: &FakeEngine, args: &[&str]) -> common::Running {
    let mut all = vec!["labels", "watch", "-o", "json"];
    all.extend(args);
    let running = common::interlockctl(&all)
        .env("DOCKER_HOST", engine.docker_host())
        .limit(Duration::from_secs(60))
        .spawn();
    assert!(
        running.wait_for_stdout(Duration::from_secs(20), |out| out
            .contains(r#""kind":"watching""#)),
        "the watch never reported its first check:\n{}",
        running.stdout_so_far()
    );
    running
}

#[test]
fn watch_rejects_again_after_someone_else_updated_the_service_in_between() {
    let engine = FakeEngine::start_arranged(|swarm| {
        broken_web(swarm);
        swarm.faults.concurrent_update = Some(ConcurrentUpdate {
            service: "web".into(),
            trigger: Trigger::BeforeFirstUpdate,
        });
    });
    let tasks_before = engine.with(|swarm| swarm.running_tasks("web"));
    let running = watching(&engine, &["--reject"]);
    running.signal(libc::SIGTERM);
    let run = running.finish();
    run.assert_code(0);
    let lines = ndjson(&run);
    assert_eq!(
        kinds(&lines),
        ["finding", "rejected", "watching", "stopped"]
    );
    let rejected = &lines[1];
    assert_eq!(rejected["service"], "web");
    assert_eq!(rejected["restored"], "previous");
    assert_eq!(rejected["writes"], 2, "the first write met the conflict");
    assert_eq!(
        rejected["removed"],
        json!({ "com.docker.lb.hosts": "web.example;evil" })
    );
    assert_eq!(lines[3]["signal"], "SIGTERM");
    for line in &lines {
        assert!(
            line["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
    }

    let id = engine.with(|swarm| swarm.service("web").unwrap().id.clone());
    let updates: Vec<String> = engine
        .requests()
        .iter()
        .filter(|r| r.is_write())
        .map(|r| {
            format!(
                "{} {} -> {:?}",
                r.method,
                r.path.replace(&id, "web"),
                r.status
            )
        })
        .collect();
    assert_eq!(
        updates,
        [
            "POST /services/web/update -> Some(500)",
            "POST /services/web/update -> Some(200)"
        ]
    );
    let labels = engine.with(|swarm| swarm.service("web").unwrap().spec["Labels"].clone());
    assert_eq!(labels["com.docker.lb.hosts"], "web.example");
    assert_eq!(labels["com.docker.lb.port"], "80");
    assert_eq!(labels["team"], "blue");
    assert_eq!(
        labels[CONCURRENT_LABEL], "someone-else",
        "the other writer's change stays"
    );
    let note: Value =
        serde_json::from_str(labels["com.docker.interlockctl.rejected"].as_str().unwrap())
            .expect("the note is JSON");
    assert_eq!(note["restored"], "previous");
    assert_eq!(note["removed"], rejected["removed"]);
    assert_eq!(
        engine.with(|swarm| swarm.running_tasks("web")),
        tasks_before,
        "no task re-created"
    );

    // labels check and status show the note.
    let check = interlockctl(&engine, &["labels", "check", "web"]);
    let report = check.assert_report(0);
    assert_eq!(report["findings"][0]["code"], "labels_rejected");
    assert!(
        common::text(&report["findings"][0], "message")
            .starts_with("labels watch rejected its labels at ")
    );
    let status = interlockctl(&engine, &["status"]).assert_report(0);
    let codes: Vec<&str> = status["state"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"labels_rejected"), "{codes:?}");
}

#[test]
fn watch_notifications_never_hold_it_up_and_a_failing_receiver_is_reported() {
    let engine = FakeEngine::start_arranged(broken_web);
    let (ok, failing, hanging) = (
        Receiver::start(Some(200)),
        Receiver::start(Some(500)),
        Receiver::start(None),
    );
    let started = Instant::now();
    let running = watching(
        &engine,
        &[
            "--notify",
            &ok.url,
            "--notify",
            &failing.url,
            "--notify",
            &hanging.url,
            "--notify-timeout",
            "1s",
        ],
    );
    let watching_after = started.elapsed();
    // The 500 is tried 3 times (pauses of 1 s and 2 s) and reported; the hanging receiver's
    // third try is still under way when the watch is told to stop.
    assert!(
        running.wait_for_stdout(Duration::from_secs(20), |out| out
            .contains(r#""kind":"notify_failed""#)),
        "{}",
        running.stdout_so_far()
    );
    running.signal(libc::SIGTERM);
    let stopping = Instant::now();
    let run = running.finish();
    run.assert_code(0);
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "stopped in {:?}",
        stopping.elapsed()
    );
    assert!(watching_after < Duration::from_secs(10));

    let lines = ndjson(&run);
    let of = |url: &str, kind: &str| -> Vec<&Value> {
        let shown = url.trim_end_matches("/hooks/T000/SECRET");
        lines
            .iter()
            .filter(|l| l["kind"] == kind && l["url"] == shown)
            .collect()
    };
    let position = |kind: &str| kinds(&lines).iter().position(|k| *k == kind).unwrap();
    assert!(
        position("watching") < position("notified"),
        "the watch did not wait: {lines:?}"
    );
    assert_eq!(of(&ok.url, "notified")[0]["status"], 200);
    let failed = of(&failing.url, "notify_failed");
    assert_eq!(failed[0]["tries"], 3);
    assert_eq!(failed[0]["error"], "the receiver answered 500");
    let hung = of(&hanging.url, "notify_failed");
    assert_eq!(hung.len(), 1, "{lines:?}");
    assert!(
        common::text(hung[0], "error").starts_with("no answer within 1s"),
        "{}",
        hung[0]
    );
    assert_eq!(kinds(&lines).last(), Some(&"stopped"));
    assert!(
        !run.stdout.contains("SECRET"),
        "webhook paths are not shown"
    );

    assert_eq!(failing.bodies().len(), 3);
    let body: Value = serde_json::from_str(&ok.bodies()[0]).expect("a JSON body");
    assert_eq!(body["service"], "web");
    assert!(common::text(&body, "text").starts_with(
        "interlockctl labels watch: service web has 1 invalid com.docker.lb.* label(s); reported"
    ), "{body}");
    assert!(common::text(&body, "text").contains(r#"com.docker.lb.hosts="web.example;evil""#));
    assert_eq!(body["findings"][0]["code"], "unsafe_character");
}

/// A core that mounts no config: the watch says once, at its first check, that the
/// `service_cluster` labels are not checked (the core judged next is the same version).
#[test]
fn watch_says_once_that_service_clusters_are_not_checked() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.service_mut(CORE).unwrap().spec["TaskTemplate"]["ContainerSpec"]["Configs"] =
            json!([]);
    });
    let running = watching(&engine, &[]);
    running.signal(libc::SIGTERM);
    let run = running.finish();
    run.assert_code(0);
    let lines = ndjson(&run);
    assert_eq!(kinds(&lines), ["warning", "watching", "stopped"]);
    assert_eq!(
        lines[0]["message"],
        format!(
            "service_cluster labels are not checked: service {CORE} mounts no config at /config.toml"
        )
    );
}

#[test]
fn watch_refuses_a_notify_url_it_cannot_use_before_reading_the_swarm() {
    let engine = FakeEngine::start();
    let run = invocation(
        &engine.docker_host(),
        &["labels", "watch", "--notify", "ftp://hooks.example/x"],
    )
    .run();
    let report = run.assert_report(4);
    assert_eq!(report["errors"][0]["code"], "bad_notify_url");
    assert_eq!(
        report["errors"][0]["message"],
        "--notify ftp://hooks.example/x: not an http:// or https:// URL with a host"
    );
    assert_eq!(
        engine.requests(),
        Vec::new(),
        "nothing was asked of the engine"
    );
}

// ---------------------------------------------------------------------------------------
// `upgrade`

const EXTENSION: &str = "ucp-interlock-extension";
const UPGRADE: &[&str] = &[
    "upgrade",
    "--to",
    "3.8.0",
    "--repository",
    "mirantis",
    "--yes",
];

fn interlock_specs(engine: &FakeEngine) -> Vec<Value> {
    engine.with(|s| {
        [CORE, EXTENSION, PROXY]
            .map(|name| s.service(name).unwrap().spec.clone())
            .to_vec()
    })
}

/// The proxy's new image cannot run: Swarm rolls the proxy back, the run puts back the
/// core's image and config and the extension's image, and says exit 5 only after a re-read
/// shows all three services as they were.
#[test]
fn an_upgrade_whose_proxy_cannot_run_puts_every_image_and_the_config_back_with_exit_5() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.failing_tasks = vec![(PROXY.into(), "ucp-interlock-proxy:3.8.0".into())];
    });
    let before = interlock_specs(&engine);
    let report = interlockctl(&engine, UPGRADE).assert_report(5);
    assert_eq!(report["status"], "rolled_back");
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("the update of {PROXY} failed: ")),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "{EXTENSION} image, update config; {CORE} config /config.toml, image, update config"
        )),
        "names every field put back: {message}"
    );
    assert_eq!(interlock_specs(&engine), before, "every service as it was");
    engine.with(|swarm| {
        assert_eq!(swarm.mounted_config(CORE), Some(conf(1)));
        assert_eq!(swarm.running_tasks(PROXY).len(), 2);
    });
}

/// Something puts the extension's old image back a few seconds after the run moved it (as a
/// core does whose config still names the old image): the run's second look, two
/// `PollInterval`s after it saw every task on its new image, catches it, and the run puts
/// every image and the config back (exit 5).
#[test]
fn an_old_image_put_back_after_verification_is_caught_and_the_upgrade_undone() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm.faults.image_put_back = Some(ImagePutBack {
            service: EXTENSION.into(),
            image: "docker/ucp-interlock-extension:3.0.14".into(),
            after: Duration::from_secs(4),
            since: None,
        });
    });
    let before = interlock_specs(&engine);
    let report = interlockctl(&engine, UPGRADE).assert_report(5);
    assert_eq!(common::error_codes(&report), ["verification_failed"]);
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "the services do not run the new images: {EXTENSION} was put back on docker/ucp-interlock-extension:3.0.14 (the run moved it to mirantis/ucp-interlock-extension:3.8.0); restored: "
        )),
        "{message}"
    );
    assert_eq!(interlock_specs(&engine), before, "every service as it was");
}

/// An image the registry says does not exist is refused (exit 4, each named, nothing
/// written); an engine that cannot ask its registry (air-gapped) gets a warning, as from the
/// docker CLI, and the run goes on.
#[test]
fn a_missing_image_is_refused_and_an_unreachable_registry_is_a_warning() {
    let engine = FakeEngine::start();
    let report = interlockctl(&engine, &["upgrade", "--to", "3.9.0", "--yes"]).assert_report(4);
    assert_eq!(common::error_codes(&report), ["image_not_found"; 3]);
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("image docker/ucp-interlock-extension:3.9.0 does not exist: the registry says \"manifest unknown"),
        "{report}"
    );
    assert_eq!(writes(&engine), Vec::<String>::new(), "nothing changed");

    let air_gapped = FakeEngine::start_arranged(|swarm| swarm.registry = None);
    let report =
        interlockctl(&air_gapped, &["upgrade", "--to", "3.9.0", "--dry-run"]).assert_report(0);
    assert_eq!(report["status"], "planned");
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings[0].as_str().unwrap().starts_with(
            "image docker/ucp-interlock-extension:3.9.0 could not be looked up in its registry (Get "
        ),
        "{warnings:?}"
    );
}

/// With a service cluster, `upgrade` moves every cluster's proxy and every extension service
/// that exists, and verifies each cluster's proxy.
#[test]
fn an_upgrade_moves_every_service_cluster() {
    let engine = FakeEngine::start();
    interlockctl(&engine, ADD_EU).assert_report(0);
    let report = interlockctl(&engine, UPGRADE).assert_report(0);
    assert_eq!(
        action_targets(&report, "update_service"),
        [CORE, EXTENSION, PROXY, EU_PROXY]
    );
    engine.with(|swarm| {
        for (service, image) in [
            (CORE, "mirantis/ucp-interlock:3.8.0"),
            (EXTENSION, "mirantis/ucp-interlock-extension:3.8.0"),
            (PROXY, "mirantis/ucp-interlock-proxy:3.8.0"),
            (EU_PROXY, "mirantis/ucp-interlock-proxy:3.8.0"),
        ] {
            let spec = &swarm.service(service).unwrap().spec;
            assert_eq!(
                spec["TaskTemplate"]["ContainerSpec"]["Image"], image,
                "{service}"
            );
        }
    });
}

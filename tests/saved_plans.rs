//! Saved plans against the in-process fake engine: `--plan-out FILE` on every changing
//! command, `apply --plan FILE` ending where the direct command ends, and the refusals
//! (`stale_plan`, `invalid_plan`, exit 4, nothing changed). The lab's own test is in
//! `live_pipelines.rs`.

mod common;
mod fake_engine;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use common::Run;
use fake_engine::{CONF, CORE, FakeEngine, PROXY};

fn run(engine: &FakeEngine, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["-o", "json", "--timeout", "20s"]);
    common::interlockctl(&all)
        .env("DOCKER_HOST", engine.docker_host())
        .limit(Duration::from_secs(90))
        .run()
}

/// The specs of the core and the proxy, and the configs with their contents and labels,
/// each `ConfigID` replaced by its config's name (two fakes give configs other IDs).
fn state(engine: &FakeEngine) -> Value {
    engine.with(|swarm| {
        let spec = |name: &str| {
            let mut spec = swarm
                .service(name)
                .expect("the service exists")
                .spec
                .clone();
            for reference in spec
                .pointer_mut("/TaskTemplate/ContainerSpec/Configs")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                reference["ConfigID"] = reference["ConfigName"].clone();
            }
            spec
        };
        let configs: Vec<Value> = swarm
            .config_names(CONF)
            .iter()
            .map(|name| {
                let config = swarm.config(name).expect("listed");
                json!([name, config.data, config.labels])
            })
            .collect();
        json!({"core": spec(CORE), "proxy": spec(PROXY), "configs": configs})
    })
}

fn versions(engine: &FakeEngine) -> Vec<(String, u64)> {
    engine.with(|swarm| {
        swarm
            .services
            .iter()
            .map(|s| (s.name().to_owned(), s.version))
            .collect()
    })
}

fn mode(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions()) & 0o777
}

/// Every changing command (`rollback` after a `pin-proxy`, `cluster remove` after a `cluster
/// add`) writes its plan (status `planned`, nothing changed, the file
/// owner-only whatever the umask), and `apply --plan` of it ends exactly where the command
/// itself ends: specs, configs, contents and labels compared whole.
#[test]
fn every_changing_command_plans_and_its_plan_applies_like_the_command() {
    let desired = tempfile::NamedTempFile::new().unwrap();
    let add_edge = vec![
        "cluster", "add", "edge", "--label", "role=dtr", "--http", "8081", "--https", "8444",
    ];
    // Each command, after the run that gives it something to do.
    let setups: Vec<(&str, Vec<&str>)> = vec![
        (
            "rollback",
            vec!["pin-proxy", "--label", "role=dtr", "--yes"],
        ),
        ("cluster remove", [&add_edge[..], &["--yes"]].concat()),
    ];
    let commands: Vec<Vec<String>> = vec![
        vec!["pin-proxy", "--label", "role=dtr"],
        vec!["rollback"],
        vec!["cluster", "remove", "edge"],
        vec!["host-mode", "--http", "7080", "--https", "7443"],
        vec![
            "migrate", "--label", "role=dtr", "--http", "7080", "--https", "7443",
        ],
        vec!["apply", "DESIRED"],
        vec![
            "cluster", "add", "edge", "--label", "role=dtr", "--http", "8081", "--https", "8444",
        ],
        vec!["upgrade", "--to", "3.8.0", "--repository", "mirantis"],
    ]
    .into_iter()
    .map(|words| words.into_iter().map(str::to_owned).collect())
    .collect();
    let dir = tempfile::tempdir().unwrap();
    for words in commands {
        let direct = FakeEngine::start();
        let planned = FakeEngine::start();
        // The desired file of `apply`: the live config with the proxy pinned.
        let live = direct.with(|swarm| {
            let name = swarm.mounted_config(CORE).unwrap();
            swarm.config(&name).unwrap().data.clone()
        });
        std::fs::write(
            desired.path(),
            live.replace("ProxyReplicas = 2", "ProxyReplicas = 1"),
        )
        .unwrap();
        let words: Vec<&str> = words
            .iter()
            .map(|w| {
                if w == "DESIRED" {
                    desired.path().to_str().unwrap()
                } else {
                    w.as_str()
                }
            })
            .collect();
        let name = if words[0] == "cluster" {
            format!("cluster {}", words[1])
        } else {
            words[0].to_owned()
        };
        for (_, setup) in setups.iter().filter(|(command, _)| *command == name) {
            run(&direct, setup).assert_code(0);
            run(&planned, setup).assert_code(0);
        }
        let mut yes = words.clone();
        yes.push("--yes");
        let applied = run(&direct, &yes).assert_report(0);
        assert_eq!(applied["status"], "applied", "{name}");

        let plan = dir
            .path()
            .join(format!("{}.plan.json", name.replace(' ', "-")));
        let before = versions(&planned);
        let mut plan_out = words.clone();
        plan_out.extend(["--plan-out", plan.to_str().unwrap()]);
        let report = common::interlockctl(&[&plan_out[..], &["-o", "json"]].concat())
            .env("DOCKER_HOST", planned.docker_host())
            .umask("000")
            .run()
            .assert_report(0);
        assert_eq!(report["status"], "planned", "{name}");
        assert_eq!(
            versions(&planned),
            before,
            "{name}: --plan-out changes nothing"
        );
        assert_eq!(mode(&plan), 0o600, "{name}: the plan is owner-only");

        let applied = run(
            &planned,
            &["apply", "--plan", plan.to_str().unwrap(), "--yes"],
        )
        .assert_report(0);
        assert_eq!(applied["status"], "applied", "{name}");
        assert_eq!(
            state(&planned),
            state(&direct),
            "{name}: plan then apply = the command"
        );
    }
}

/// A plan is refused with `stale_plan` (exit 4, nothing changed) once applied, and when
/// another run changed the core after it was made; the message names what moved.
#[test]
fn a_plan_is_stale_once_applied_or_when_the_swarm_moved() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let plan = plan.to_str().unwrap();
    let engine = FakeEngine::start();
    run(
        &engine,
        &["pin-proxy", "--label", "role=dtr", "--plan-out", plan],
    )
    .assert_report(0);
    run(&engine, &["apply", "--plan", plan, "--yes"]).assert_report(0);
    let before = versions(&engine);
    let again = run(&engine, &["apply", "--plan", plan, "--yes"]).assert_report(4);
    assert_eq!(again["errors"][0]["code"], "stale_plan");
    assert_eq!(versions(&engine), before, "nothing changed");

    let engine = FakeEngine::start();
    run(
        &engine,
        &["pin-proxy", "--label", "role=dtr", "--plan-out", plan],
    )
    .assert_report(0);
    run(
        &engine,
        &["host-mode", "--http", "7080", "--https", "7443", "--yes"],
    )
    .assert_report(0);
    let before = versions(&engine);
    let moved = run(&engine, &["apply", "--plan", plan, "--yes"]).assert_report(4);
    assert_eq!(moved["status"], "refused");
    assert_eq!(moved["errors"][0]["code"], "stale_plan");
    let message = moved["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("the core now mounts {CONF}-2 instead of {CONF}-1"))
            && message.contains(&format!("{CORE} is at version")),
        "{message}"
    );
    assert_eq!(versions(&engine), before, "nothing changed");
}

/// A file that is not an unaltered plan of this schema is `invalid_plan` (exit 4); so is an
/// `apply --plan` of a file that is not there. Without a plan, `--plan-out` is refused as a
/// usage error where nothing would change.
#[test]
fn a_corrupt_or_foreign_plan_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let engine = FakeEngine::start();
    run(
        &engine,
        &[
            "pin-proxy",
            "--label",
            "role=dtr",
            "--plan-out",
            plan.to_str().unwrap(),
        ],
    )
    .assert_report(0);
    let good = std::fs::read_to_string(&plan).unwrap();
    let before = versions(&engine);
    let cases = [
        (
            "altered",
            good.replace("role=dtr", "role=web"),
            "altered after it was written",
        ),
        ("truncated", good[..good.len() / 2].to_owned(), "not JSON"),
        (
            "other schema",
            good.replacen("\"schema_version\": 1", "\"schema_version\": 7", 1),
            "schema version 7",
        ),
        (
            "not a plan",
            "{\"schema_version\": 1}".to_owned(),
            "its `kind` is not",
        ),
    ];
    for (case, text, why) in cases {
        let bad = dir.path().join(format!("{case}.json"));
        std::fs::write(&bad, text).unwrap();
        let report = run(
            &engine,
            &["apply", "--plan", bad.to_str().unwrap(), "--yes"],
        )
        .assert_report(4);
        assert_eq!(report["errors"][0]["code"], "invalid_plan", "{case}");
        let message = report["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(why), "{case}: {message}");
    }
    let missing = run(&engine, &["apply", "--plan", "no-such-plan.json", "--yes"]).assert_report(4);
    assert_eq!(missing["errors"][0]["code"], "invalid_plan");
    assert_eq!(versions(&engine), before, "nothing changed");
    let status = common::interlockctl(&["status", "--plan-out", "x.json"]).run();
    status.assert_code(2);
    assert!(
        status
            .stderr
            .contains("'--plan-out <FILE>' cannot be used with a command that changes nothing"),
        "{}",
        status.render()
    );
}

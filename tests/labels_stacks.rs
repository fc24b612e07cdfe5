//! `labels check`, `stack lint` and `stack fix` through the binary.
//!
//! - the label corpus (`fixtures/labels/`): every invalid label is an error with exit 4,
//!   every valid one passes, in stack files (map and list form) and on a swarm (the fake
//!   engine, all labels in one run);
//! - snapshots of `stack lint` and `stack fix` on every stack fixture (`fixtures/stacks/`),
//!   the JSON documents, and the `--help` of the new commands;
//! - `stack fix --write` on every fixture: the file then passes `stack lint`, keeps every
//!   comment, equals the diff shown before, and a second fix changes nothing;
//! - refusals: unreadable and invalid files, stdin twice, unknown services, unfixable files;
//! - live `labels check` on the fake engine: networks, service clusters, narrowing.

mod common;
mod fake_engine;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Run, manifest_dir, run, run_with_stdin};
use fake_engine::{CORE, CORE_CONFIG, FakeEngine, Swarm, conf};
use interlockctl::interlock::edit::unified_diff;
use interlockctl::interlock::labels::known_labels;
use serde_json::{Value, json};

fn snapshot(name: &str, run: &Run) {
    insta::assert_snapshot!(name.to_owned(), run.render());
}

// ---------------------------------------------------------------------------------------
// The label corpus
// ---------------------------------------------------------------------------------------

/// One corpus entry.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    value: String,
    with: Vec<(String, String)>,
    attach: Option<String>,
    code: Option<String>,
    expect_warning: Option<String>,
}

impl Entry {
    /// The service's labels: this one, then its companions.
    fn labels(&self) -> Vec<(String, String)> {
        let mut labels = vec![(self.key.clone(), self.value.clone())];
        labels.extend(self.with.iter().cloned());
        labels
    }
}

fn corpus(name: &str) -> Vec<Entry> {
    let path = manifest_dir().join(format!("fixtures/labels/{name}.toml"));
    let text = std::fs::read_to_string(&path).expect("corpus reads");
    let doc: toml_edit::DocumentMut = text.parse().expect("corpus is TOML");
    let string = |table: &toml_edit::Table, key: &str| {
        table.get(key).and_then(|i| i.as_str()).map(str::to_owned)
    };
    doc["label"]
        .as_array_of_tables()
        .expect("[[label]] entries")
        .iter()
        .map(|table| Entry {
            key: string(table, "key").expect("key"),
            value: string(table, "value").expect("value"),
            with: table
                .get("with")
                .and_then(|w| w.as_inline_table())
                .map(|w| {
                    w.iter()
                        .map(|(k, v)| (k.to_owned(), v.as_str().unwrap().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            attach: string(table, "attach"),
            code: string(table, "code"),
            expect_warning: string(table, "expect_warning"),
        })
        .collect()
}

/// A YAML double-quoted scalar that reads back as `text`, whatever it holds.
fn yaml_quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c => out.push_str(&format!("\\U{:08X}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// A stack file with one service `app` carrying the entry's labels, in map form or list
/// form, attached to the entry's network if it names one.
fn stack_for(entry: &Entry, list_form: bool) -> String {
    let mut text = String::from(
        "version: \"3.5\"\nservices:\n  app:\n    image: app\n    deploy:\n      labels:\n",
    );
    for (key, value) in entry.labels() {
        if list_form {
            text.push_str(&format!(
                "        - {}\n",
                yaml_quoted(&format!("{key}={value}"))
            ));
        } else {
            text.push_str(&format!(
                "        {}: {}\n",
                yaml_quoted(&key),
                yaml_quoted(&value)
            ));
        }
    }
    if let Some(network) = &entry.attach {
        text.push_str(&format!(
            "    networks: [n0]\nnetworks:\n  n0:\n    name: {}\n",
            yaml_quoted(network)
        ));
    }
    text
}

/// The findings of one label key in a JSON report, as `(severity, code)`.
fn findings_on(report: &Value, service: Option<&str>, key: &str) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .expect("a findings array")
        .iter()
        .filter(|f| f["label"] == key && service.is_none_or(|s| f["service"] == s))
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_owned(),
                f["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn errors(report: &Value) -> Vec<&Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect()
}

#[test]
fn corpus_covers_every_label_and_every_injection_character() {
    let valid = corpus("valid");
    for label in known_labels() {
        assert!(
            valid.iter().any(|e| e.key == label),
            "no valid example of {label} in fixtures/labels/valid.toml"
        );
    }
    let invalid = corpus("invalid");
    let injected = |c: char| {
        invalid
            .iter()
            .any(|e| e.code.as_deref() == Some("unsafe_character") && e.value.contains(c))
    };
    for c in [
        ';', '{', '}', '"', '\'', '$', '#', '\\', ' ', '\t', '\n', '\r', '\0', '\u{7}', '\u{7f}',
        '\u{a0}', '\u{2028}',
    ] {
        assert!(
            injected(c),
            "no injection attempt with {c:?} in invalid.toml"
        );
    }
}

#[test]
fn every_invalid_label_is_an_error_with_exit_4_in_a_stack_file() {
    for (index, entry) in corpus("invalid").iter().enumerate() {
        let stack = stack_for(entry, index % 2 == 1);
        let run = run_with_stdin(
            &["labels", "check", "--stack", "-", "-o", "json"],
            Some(stack.as_bytes()),
        );
        let report = run.assert_code(4).json();
        let expected = entry.code.clone().expect("invalid entries name their code");
        assert!(
            findings_on(&report, Some("app"), &entry.key)
                .contains(&("error".into(), expected.clone())),
            "{}={:?}: expected the error {expected}\n{stack}\n{}",
            entry.key,
            entry.value,
            run.render()
        );
        assert_eq!(report["status"], "refused");
        assert_eq!(report["errors"][0]["code"], "invalid_labels");
    }
}

#[test]
fn every_valid_label_passes_in_a_stack_file() {
    for (index, entry) in corpus("valid").iter().enumerate() {
        let stack = stack_for(entry, index % 2 == 1);
        let run = run_with_stdin(
            &["labels", "check", "--stack", "-", "-o", "json"],
            Some(stack.as_bytes()),
        );
        let report = run.assert_code(0).json();
        assert!(
            errors(&report).is_empty(),
            "{}={:?} is valid\n{}",
            entry.key,
            entry.value,
            run.render()
        );
        if let Some(code) = &entry.expect_warning {
            assert!(
                findings_on(&report, Some("app"), &entry.key)
                    .contains(&("warning".into(), code.clone())),
                "{}={:?}: expected the warning {code}\n{}",
                entry.key,
                entry.value,
                run.render()
            );
        }
    }
}

/// A fake swarm whose live config has `ServiceCluster = "us-east"`.
fn swarm_with_cluster(swarm: &mut Swarm) {
    let text = CORE_CONFIG.replace(
        "ProxyReplicas = 2",
        "ProxyReplicas = 2\n    ServiceCluster = \"us-east\"",
    );
    let id = swarm.add_config(&conf(2), &text, &[]);
    swarm.update_service(CORE, |spec| {
        let config = &mut spec["TaskTemplate"]["ContainerSpec"]["Configs"][0];
        config["ConfigID"] = json!(id);
        config["ConfigName"] = json!(conf(2));
    });
}

/// A service spec with these service labels, attached to these network IDs.
fn app_spec(name: &str, labels: &[(String, String)], networks: &[String]) -> Value {
    let labels: serde_json::Map<String, Value> =
        labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let attachments: Vec<Value> = networks.iter().map(|id| json!({ "Target": id })).collect();
    json!({
        "Name": name,
        "Labels": labels,
        "TaskTemplate": {
            "ContainerSpec": { "Image": "registry.example.com/app:1" },
            "Networks": attachments
        },
        "Mode": { "Replicated": { "Replicas": 1 } }
    })
}

fn live(engine: &FakeEngine, args: &[&str]) -> Run {
    common::interlockctl(args)
        .env("DOCKER_HOST", engine.docker_host())
        .run()
}

#[test]
fn the_corpus_on_a_swarm_in_one_run() {
    let valid = corpus("valid");
    let invalid = corpus("invalid");
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm_with_cluster(swarm);
        for (kind, entries) in [("valid", &valid), ("invalid", &invalid)] {
            for (index, entry) in entries.iter().enumerate() {
                let networks: Vec<String> = entry
                    .attach
                    .iter()
                    .map(|name| swarm.add_network(name))
                    .collect();
                swarm.add_service(app_spec(
                    &format!("{kind}-{index}"),
                    &entry.labels(),
                    &networks,
                ));
            }
        }
    });
    let run = live(&engine, &["labels", "check", "-o", "json"]);
    let report = run.assert_code(4).json();
    for (index, entry) in invalid.iter().enumerate() {
        let service = format!("invalid-{index}");
        let expected = ("error".to_owned(), entry.code.clone().unwrap());
        assert!(
            findings_on(&report, Some(&service), &entry.key).contains(&expected),
            "{service}: {}={:?} should be {expected:?}",
            entry.key,
            entry.value
        );
    }
    for index in 0..valid.len() {
        let service = format!("valid-{index}");
        let wrong: Vec<&Value> = errors(&report)
            .into_iter()
            .filter(|f| f["service"] == service.as_str())
            .collect();
        assert!(wrong.is_empty(), "{service}: {wrong:?}");
    }
    // The Interlock services themselves carry no com.docker.lb.* labels.
    assert!(report["findings"].as_array().unwrap().iter().all(|f| {
        let service = f["service"].as_str().unwrap();
        service.starts_with("valid-") || service.starts_with("invalid-")
    }));
}

// ---------------------------------------------------------------------------------------
// Live `labels check` on the fake engine
// ---------------------------------------------------------------------------------------

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Three routed services and one that is not: a good one, one with a typo and an injection,
/// one naming a network and a cluster.
fn shop_swarm(swarm: &mut Swarm) {
    let front = swarm.add_network("shop_front");
    swarm.add_network("shop_back");
    swarm.add_service(app_spec(
        "shop_web",
        &labels(&[
            ("com.docker.lb.hosts", "shop.example.com"),
            ("com.docker.lb.port", "8080"),
            ("com.docker.lb.network", "shop_front"),
            ("com.docker.lb.service_cluster", "us-east"),
        ]),
        std::slice::from_ref(&front),
    ));
    swarm.add_service(app_spec(
        "shop_api",
        &labels(&[
            ("com.docker.lb.hosts", "api.example.com;"),
            ("com.docker.lb.prot", "9000"),
            ("com.docker.lb.network", "shop_back"),
        ]),
        &[front],
    ));
    swarm.add_service(app_spec(
        "shop_db",
        &labels(&[("com.example.backup", "nightly")]),
        &[],
    ));
}

#[test]
fn live_check_text_and_json() {
    let engine = FakeEngine::start_arranged(|swarm| {
        swarm_with_cluster(swarm);
        shop_swarm(swarm);
    });
    let text = live(&engine, &["labels", "check"]);
    snapshot("live__text", &text);
    text.assert_code(4);
    let json_run = live(&engine, &["labels", "check", "-o", "json"]);
    insta::assert_json_snapshot!("live__json", json_run.assert_code(4).json());
    assert!(
        json_run
            .stderr
            .starts_with("error: labels check of 6 service(s): 3 errors")
    );

    let narrowed = live(&engine, &["labels", "check", "shop_web", "-o", "json"]);
    let report = narrowed.assert_code(0).json();
    assert_eq!(report["findings"], json!([]), "{}", narrowed.render());

    let unknown = live(&engine, &["labels", "check", "shop_web", "nope"]);
    snapshot("live__unknown_service", &unknown);
    unknown.assert_code(4);
}

#[test]
fn live_clusters_are_not_checked_without_a_readable_config() {
    let engine = FakeEngine::start_arranged(shop_swarm);
    // The lab's config has no ServiceCluster at all: `us-east` is unknown.
    let report = live(&engine, &["labels", "check", "shop_web", "-o", "json"])
        .assert_code(4)
        .json();
    assert_eq!(
        findings_on(&report, Some("shop_web"), "com.docker.lb.service_cluster"),
        [("error".to_owned(), "unknown_service_cluster".to_owned())]
    );
    // No core service by that name: reported as not checked, not a failure.
    let run = live(
        &engine,
        &[
            "--service",
            "no-such-core",
            "labels",
            "check",
            "shop_web",
            "-o",
            "json",
        ],
    );
    let report = run.assert_code(0).json();
    assert_eq!(
        report["findings"],
        json!([{
            "severity": "not_checked",
            "code": "service_cluster_not_checked",
            "service": "shop_web",
            "source": "Spec.Labels",
            "label": "com.docker.lb.service_cluster",
            "value": "us-east",
            "message": "not compared with the live Interlock config: the Interlock core service no-such-core does not exist",
            "hint": "run `interlockctl labels check` against the swarm to compare it"
        }])
    );
    // The run says why, and how to narrow a check to services (not with `--service`, which
    // names the core).
    assert_eq!(
        report["warnings"],
        json!([
            "`com.docker.lb.service_cluster` labels are not checked: the Interlock core service \
             no-such-core does not exist (`--service` names the Interlock core service; to check \
             only some services, name them: `labels check SERVICE...`)"
        ])
    );
    let text = live(
        &engine,
        &["--service", "no-such-core", "labels", "check", "shop_web"],
    );
    assert!(
        text.assert_code(0).stderr.starts_with(
            "warning: `com.docker.lb.service_cluster` labels are not checked: the Interlock core \
             service no-such-core does not exist"
        ),
        "{}",
        text.render()
    );
}

// ---------------------------------------------------------------------------------------
// Stack files
// ---------------------------------------------------------------------------------------

/// The stack fixtures the snapshots were reviewed for.
const STACKS: &[&str] = &[
    "anchored",
    "host-mode-ready",
    "ingress-era",
    "label-typos",
    "seed-final",
    "seed-first",
    "shop",
];

fn stack_path(stem: &str) -> String {
    format!("fixtures/stacks/{stem}.yml")
}

#[test]
fn stack_fixture_set_is_complete() {
    let mut found: Vec<String> = std::fs::read_dir(manifest_dir().join("fixtures/stacks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, STACKS, "update STACKS and the snapshots");
}

#[test]
fn snapshots_of_lint_and_fix_on_every_stack() {
    for stem in STACKS {
        let path = stack_path(stem);
        let lint = run(&["stack", "lint", &path]);
        snapshot(&format!("lint__{stem}"), &lint);
        let fix = run(&["stack", "fix", &path]);
        snapshot(&format!("fix__{stem}"), &fix);
        let lint_json = run(&["stack", "lint", &path, "-o", "json"]);
        assert_eq!(
            lint_json.code, lint.code,
            "{stem}: text and JSON exit alike"
        );
        let report = lint_json.json();
        let expected = if errors(&report).is_empty() { 0 } else { 4 };
        assert_eq!(
            lint.code, expected,
            "{stem}: exit 4 exactly when there are errors"
        );
        assert_eq!(report["command"], "stack lint");
    }
    for stem in ["shop", "ingress-era"] {
        let ingress = run(&[
            "stack",
            "lint",
            &stack_path(stem),
            "--proxy-mode",
            "ingress",
        ]);
        snapshot(&format!("lint_ingress__{stem}"), &ingress);
    }
}

#[test]
fn snapshots_of_json_documents() {
    let lint = run(&["stack", "lint", &stack_path("label-typos"), "-o", "json"]);
    insta::assert_json_snapshot!("json__lint_label_typos", lint.assert_code(4).json());
    let fix = run(&["stack", "fix", &stack_path("seed-first"), "-o", "json"]);
    insta::assert_json_snapshot!("json__fix_seed_first", fix.assert_code(0).json());
    assert!(
        fix.stderr.is_empty(),
        "JSON mode keeps stderr quiet: {}",
        fix.stderr
    );
    let check = run(&[
        "labels",
        "check",
        "--stack",
        &stack_path("ingress-era"),
        "-o",
        "json",
    ]);
    insta::assert_json_snapshot!("json__check_ingress_era", check.assert_code(0).json());
}

/// Comment texts of a YAML file (from `#` to the end of the line; the fixtures have no `#`
/// inside values).
fn comments(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| {
            let at = line.find(" #").map(|at| at + 1).or_else(|| {
                line.trim_start()
                    .starts_with('#')
                    .then(|| line.find('#').unwrap())
            })?;
            Some(line[at..].trim_end())
        })
        .collect()
}

fn temp_copy(stem: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{stem}.yml"));
    std::fs::copy(manifest_dir().join(stack_path(stem)), &path).unwrap();
    (dir, path)
}

#[test]
fn fix_write_passes_lint_keeps_comments_and_is_idempotent() {
    for stem in STACKS {
        let (dir, path) = temp_copy(stem);
        let file = format!("{stem}.yml");
        let before = std::fs::read_to_string(&path).unwrap();
        let shown = common::interlockctl(&["stack", "fix", &file])
            .dir(dir.path())
            .run();
        let write = common::interlockctl(&["stack", "fix", &file, "--write"])
            .dir(dir.path())
            .run();
        let after = std::fs::read_to_string(&path).unwrap();
        if *stem == "label-typos" {
            write.assert_code(4);
            assert_eq!(after, before, "an unfixable file is not touched");
            continue;
        }
        write.assert_code(0);
        assert_eq!(
            shown.stdout,
            unified_diff(&before, &after, &file, &file, true),
            "{stem}: the diff shown is what --write writes"
        );
        // The same, judged by a tool of its own: GNU patch applies the shown diff to the
        // file as it was and gets the file as written.
        let patched = dir.path().join("patched.yml");
        std::fs::write(&patched, &before).unwrap();
        let applied = std::process::Command::new("patch")
            .args(["--quiet", "--force", "--output=-"])
            .arg(&patched)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(shown.stdout.as_bytes())?;
                child.wait_with_output()
            })
            .expect("patch runs");
        assert!(applied.status.success(), "{stem}: patch refused the diff");
        assert_eq!(
            String::from_utf8_lossy(&applied.stdout),
            after,
            "{stem}: patch turns the file into what --write wrote"
        );
        let lint = common::interlockctl(&["stack", "lint", &file])
            .dir(dir.path())
            .run();
        lint.assert_code(0);
        for comment in comments(&before) {
            assert!(
                after.contains(comment),
                "{stem}: lost the comment {comment:?}\n{after}"
            );
        }
        let again = common::interlockctl(&["stack", "fix", &file, "--write"])
            .dir(dir.path())
            .run();
        again.assert_code(0);
        assert!(
            again.stderr.starts_with("No changes:"),
            "{}",
            again.render()
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), after);
    }
}

#[test]
fn the_seed_first_stack_becomes_the_seed_final_one() {
    let (dir, path) = temp_copy("seed-first");
    common::interlockctl(&["stack", "fix", "seed-first.yml", "--write"])
        .dir(dir.path())
        .run()
        .assert_code(0);
    let fixed = std::fs::read_to_string(&path).unwrap();
    let seed_final =
        std::fs::read_to_string(manifest_dir().join(stack_path("seed-final"))).unwrap();
    // The same stack as the report's final one, up to the network's key and the comments.
    let body = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| l.replace("pleaseusethedefaultdocker0bridge", "bridge"))
            .collect()
    };
    assert_eq!(body(&fixed), body(&seed_final));
}

#[test]
fn fix_modes_and_refusals() {
    let (dir, path) = temp_copy("shop");
    let in_dir = |args: &[&str]| common::interlockctl(args).dir(dir.path()).run();
    let before = std::fs::read_to_string(&path).unwrap();
    in_dir(&["stack", "fix", "shop.yml", "--check"]).assert_code(3);
    in_dir(&["stack", "fix", "shop.yml", "--write", "--dry-run"]).assert_code(0);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        before,
        "nothing written"
    );

    let stdin_write = run_with_stdin(&["stack", "fix", "-", "--write"], Some(before.as_bytes()));
    snapshot("refusal__fix_stdin_write", &stdin_write);
    stdin_write.assert_code(4);
    let stdin_diff = run_with_stdin(&["stack", "fix", "-"], Some(before.as_bytes()));
    stdin_diff.assert_code(0);
    assert!(stdin_diff.stdout.starts_with("--- stdin\n+++ stdin\n"));
}

#[test]
fn refusals_name_the_problem_and_change_nothing() {
    let invalid_yaml = "services:\n  web:\n    deploy:\n      labels: [a, b\n";
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        (
            "missing_file",
            &["stack", "lint", "fixtures/stacks/nope.yml"],
            None,
        ),
        ("invalid_yaml", &["stack", "lint", "-"], Some(invalid_yaml)),
        (
            "bad_shape",
            &["labels", "check", "--stack", "-"],
            Some("services:\n  web:\n    deploy:\n      labels: 7\n"),
        ),
        (
            "stdin_twice",
            &["labels", "check", "--stack", "-", "--stack", "-"],
            Some(""),
        ),
        (
            "unknown_service",
            &[
                "labels",
                "check",
                "--stack",
                "fixtures/stacks/shop.yml",
                "web",
            ],
            None,
        ),
        (
            "unfixable",
            &["stack", "fix", "fixtures/stacks/label-typos.yml"],
            None,
        ),
    ];
    for (name, args, stdin) in cases {
        let run = run_with_stdin(args, stdin.map(str::as_bytes));
        snapshot(&format!("refusal__{name}"), &run);
        run.assert_code(4);
        assert!(
            run.stderr.contains("error: ") && run.stderr.contains("hint: "),
            "{}",
            run.render()
        );
    }
}

#[test]
fn labels_check_narrows_to_named_services_across_stack_files() {
    let run = run(&[
        "labels",
        "check",
        "--stack",
        "fixtures/stacks/label-typos.yml",
        "--stack",
        "fixtures/stacks/ingress-era.yml",
        "status",
        "blog",
        "-o",
        "json",
    ]);
    let report = run.assert_code(0).json();
    let per_service: BTreeMap<String, usize> =
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .fold(BTreeMap::new(), |mut counts, f| {
                *counts
                    .entry(f["service"].as_str().unwrap().to_owned())
                    .or_default() += 1;
                counts
            });
    assert_eq!(
        per_service,
        BTreeMap::from([("blog".into(), 1), ("status".into(), 1)])
    );
}

#[test]
fn help_of_the_new_commands() {
    for args in [
        &["labels", "check", "--help"][..],
        &["stack", "lint", "--help"],
        &["stack", "fix", "--help"],
    ] {
        let mut help = run(args);
        help.assert_code(0);
        // The global options are the same for every command and snapshotted elsewhere.
        let end = help
            .stdout
            .find("Global Options:")
            .expect("a global options section");
        help.stdout.truncate(end);
        snapshot(&format!("help__{}_{}", args[0], args[1]), &help);
    }
}

#[test]
fn relative_paths_in_findings_are_the_ones_given() {
    let absolute = manifest_dir().join(stack_path("seed-first"));
    let run = run(&["stack", "lint", absolute.to_str().unwrap(), "-o", "json"]);
    let report = run.assert_code(4).json();
    assert_eq!(
        Path::new(report["findings"][0]["file"].as_str().unwrap()),
        absolute
    );
}

//! Offline mode (`--config-file PATH|-`, `--out PATH`), end to end through the binary.
//!
//! - snapshots of what a user sees (exit code, stdout, stderr) for `pin-proxy`, `host-mode`
//!   and `apply` on every valid fixture, in text and JSON, and of every `--help`;
//! - every edit changes exactly the lines of its keys, keeps every other byte, parses, and is
//!   idempotent;
//! - every invalid input is refused with exit 4, a reason and a hint, and writes nothing;
//! - `--check`, `--dry-run`, stdin input;
//! - global options before or after the command, in any combination;
//! - secrets of every shape hidden in diffs and change lists;
//! - `completions`, `man` and `--version`;
//! - a property test over generated configs and values.
//!
//! Snapshots live in `tests/snapshots/`; review changes with `cargo insta review` (or run
//! with `INSTA_UPDATE=always` and read the diff) before accepting them.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{Fixture, Run, fixtures, run, run_with_stdin};
use interlockctl::interlock::config::InterlockConfig;
use interlockctl::interlock::edit::Edit;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

/// The valid fixtures the snapshots were reviewed for; a new fixture must be added here
/// (and get a desired file in `fixtures/configs/desired/`).
const VALID: &[&str] = &[
    "hand-edited",
    "service-clusters",
    "ucp-3.0",
    "ucp-3.1",
    "ucp-3.2",
];

fn strs(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// `--config-file FIXTURE [--extension X] [-o json] ARGS...`
fn offline_args(fixture: &Fixture, json: bool, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--config-file".to_owned(), fixture.path.clone()];
    all.extend(fixture.extension_args());
    if json {
        all.extend(strs(&["-o", "json"]));
    }
    all.extend(strs(args));
    all
}

fn snapshot(name: &str, run: &Run) {
    insta::assert_snapshot!(name.to_owned(), run.render());
}

// ---------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------

#[test]
fn fixture_sets_are_complete() {
    let valid: Vec<String> = fixtures("valid").into_iter().map(|f| f.stem).collect();
    assert_eq!(
        valid, VALID,
        "update VALID and the snapshots for new fixtures"
    );
    let desired: Vec<String> = fixtures("desired").into_iter().map(|f| f.stem).collect();
    assert_eq!(desired, VALID, "every valid fixture needs a desired file");
}

/// The text and JSON runs of one command on every valid fixture, snapshotted, with the
/// JSON document checked against the text run (same TOML, same diff).
fn snapshot_on_every_fixture(command: &str, args: impl Fn(&Fixture) -> Vec<String>) {
    for fixture in fixtures("valid") {
        let args = args(&fixture);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = run(&offline_args(&fixture, false, &args));
        let json = run(&offline_args(&fixture, true, &args));
        snapshot(&format!("{command}__text__{}", fixture.stem), &text);
        snapshot(&format!("{command}__json__{}", fixture.stem), &json);

        text.assert_code(0);
        json.assert_code(0);
        assert!(!text.stdout.is_empty());
        let report = json.json();
        assert_eq!(report["schema_version"], 1);
        assert_eq!(report["command"], command);
        assert_eq!(report["dry_run"], false);
        assert_eq!(report["changed"], true);
        assert_eq!(report["status"], "applied");
        assert_eq!(report["extension"], fixture.extension());
        assert_eq!(report["config"]["service"], "ucp-interlock");
        assert_eq!(report["config"]["current"], fixture.path.as_str());
        assert_eq!(report["config"]["next"], Json::Null);
        assert_eq!(report["config"]["content"], text.stdout.as_str());
        assert_eq!(
            format!(
                "{}Edited config written to stdout.\n",
                report["config"]["diff"].as_str().unwrap()
            ),
            text.stderr,
            "the text run prints the JSON's diff and a summary"
        );
        let changes = report["config"]["changes"].as_array().unwrap().len();
        assert!(changes > 0);
        assert_eq!(
            report["actions"],
            json!([{ "kind": "write_file", "target": "stdout",
                     "detail": format!("{changes} key(s) changed") }])
        );
        assert_eq!(report["errors"], json!([]));
        assert!(
            json.stderr.is_empty(),
            "JSON mode keeps stderr quiet on success"
        );
    }
}

#[test]
fn snapshots_pin_proxy() {
    snapshot_on_every_fixture("pin-proxy", |_| {
        strs(&["pin-proxy", "--label", "role=dtr", "--replicas", "5"])
    });
}

/// Offline, `upgrade` moves the config's image keys (every extension's) only.
#[test]
fn snapshots_upgrade() {
    snapshot_on_every_fixture("upgrade", |_| {
        strs(&["upgrade", "--to", "3.7.12", "--repository", "mirantis"])
    });
}

#[test]
fn snapshots_host_mode() {
    snapshot_on_every_fixture("host-mode", |_| {
        strs(&["host-mode", "--http", "7080", "--https", "7443"])
    });
}

/// Both edits in one diff: byte for byte what `pin-proxy` then `host-mode` make.
#[test]
fn snapshots_migrate() {
    snapshot_on_every_fixture("migrate", |_| {
        strs(&[
            "migrate",
            "--label",
            "role=dtr",
            "--replicas",
            "5",
            "--http",
            "7080",
            "--https",
            "7443",
        ])
    });
}

/// `migrate` writes exactly what `pin-proxy` then `host-mode` write, on every fixture.
#[test]
fn migrate_is_pin_proxy_then_host_mode_in_one_edit() {
    let dir = tempfile::tempdir().unwrap();
    for fixture in fixtures("valid") {
        let edit = |input: &str, args: &[&str]| {
            let mut all = strs(&["--config-file", input]);
            all.extend(fixture.extension_args());
            all.extend(strs(args));
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            run(&all).assert_code(0).stdout.clone()
        };
        let pinned = edit(
            &fixture.path,
            &["pin-proxy", "--label", "role=dtr", "--replicas", "5"],
        );
        let between = dir.path().join(format!("{}.toml", fixture.stem));
        std::fs::write(&between, &pinned).unwrap();
        let both = edit(
            between.to_str().unwrap(),
            &["host-mode", "--http", "7080", "--https", "7443"],
        );
        let migrated = edit(
            &fixture.path,
            &[
                "migrate",
                "--label",
                "role=dtr",
                "--replicas",
                "5",
                "--http",
                "7080",
                "--https",
                "7443",
            ],
        );
        assert_eq!(migrated, both, "{}", fixture.stem);
    }
}

#[test]
fn snapshots_apply() {
    snapshot_on_every_fixture("apply", |fixture| {
        vec!["apply".to_owned(), fixture.desired_path()]
    });
}

#[test]
fn snapshots_service_clusters_without_extension_is_refused() {
    let args = [
        "--config-file",
        "fixtures/configs/valid/service-clusters.toml",
        "host-mode",
        "--http",
        "7080",
        "--https",
        "7443",
    ];
    let text = run(&args);
    snapshot("service-clusters-without-extension__text", &text);
    text.assert_code(4);
    let mut json_args = strs(&args);
    json_args.extend(strs(&["-o", "json"]));
    let json = run(&json_args);
    snapshot("service-clusters-without-extension__json", &json);
    json.assert_code(4);
    assert_eq!(json.json()["status"], "refused");
    assert_eq!(json.json()["errors"][0]["code"], "ambiguous_extension");
}

#[test]
fn snapshots_help() {
    for command in [
        None,
        Some("pin-proxy"),
        Some("host-mode"),
        Some("migrate"),
        Some("show"),
        Some("apply"),
        Some("status"),
        Some("rollback"),
        Some("upgrade"),
        Some("completions"),
        Some("man"),
        Some("cluster add"),
        Some("cluster remove"),
    ] {
        let mut args: Vec<&str> = command
            .map(str::split_whitespace)
            .into_iter()
            .flatten()
            .collect();
        args.push("--help");
        let help = run(&args);
        help.assert_code(0);
        assert!(help.stderr.is_empty());
        let name = command.map_or_else(|| "interlockctl".to_owned(), |c| c.replace(' ', "-"));
        snapshot(&format!("help__{name}"), &help);
    }
}

/// The commit of the checkout the tests run in, as `--version` shows it; `None` without git
/// or when this crate is not the top of the checkout (a source tarball).
fn checkout_commit() -> Option<String> {
    let git = |args: &[&str]| {
        let output = std::process::Command::new("git")
            .args(args)
            .current_dir(common::manifest_dir())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8(output.stdout).unwrap().trim().to_owned())
    };
    let toplevel = std::fs::canonicalize(git(&["rev-parse", "--show-toplevel"])?).ok()?;
    (toplevel == std::fs::canonicalize(common::manifest_dir()).unwrap())
        .then(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .flatten()
}

/// `--version` names the version, the commit when built from a checkout, and the Engine
/// API versions supported; `-V` only the version.
#[test]
fn version_names_the_commit_and_the_engine_api_range() {
    let version = env!("CARGO_PKG_VERSION");
    let commit = checkout_commit()
        .map(|commit| format!(" (commit {commit})"))
        .unwrap_or_default();
    let long = run(&["--version"]);
    long.assert_code(0);
    assert_eq!(
        long.stdout,
        format!("interlockctl {version}{commit}\nDocker Engine API 1.30 to 1.53\n")
    );
    let short = run(&["-V"]);
    short.assert_code(0);
    assert_eq!(short.stdout, format!("interlockctl {version}\n"));
}

/// `completions SHELL` prints a script for each shell clap_complete knows; the snapshots
/// show what a user installs.
#[test]
fn snapshots_completions() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = run(&["completions", shell]);
        script.assert_code(0);
        assert_eq!(script.stderr, "");
        assert!(script.stdout.contains("pin-proxy"), "{shell}");
        assert!(script.stdout.contains("config-file"), "{shell}");
        snapshot(&format!("completions__{shell}"), &script);
    }
    // No script in JSON: a usage error, reported as one JSON document like every other.
    let json = run(&["completions", "bash", "-o", "json"]).assert_report(2);
    assert_eq!(json["status"], "refused");
    assert_eq!(
        json["errors"][0]["message"],
        "the argument '--output json' cannot be used with 'completions': it prints a script or page on stdout, not a report"
    );
    let unknown = run(&["completions", "tcsh"]);
    unknown.assert_code(2);
    assert!(
        unknown
            .stderr
            .contains("[possible values: bash, elvish, fish, powershell, zsh]")
    );
}

/// The bash script, sourced into a real bash as README "Install" says, completes commands
/// and global options.
#[test]
fn the_bash_completion_script_completes_commands_and_options() {
    let script = run(&["completions", "bash"]).stdout;
    let complete = |words: &str| {
        let program = format!(
            "{script}\nCOMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _interlockctl interlockctl \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let output = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &program])
            .output()
            .expect("bash runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(complete("interlockctl pin"), "pin-proxy\n");
    assert_eq!(
        complete("interlockctl pin-proxy --config-f"),
        "--config-file\n"
    );
    assert_eq!(complete("interlockctl --dry"), "--dry-run\n");
}

/// `man` prints the main page; `man --out DIR` writes one page per command (the main page
/// the same as on stdout), or with `--dry-run` only lists them.
#[test]
fn snapshots_man() {
    let page = run(&["man"]);
    page.assert_code(0);
    assert_eq!(page.stderr, "");
    insta::with_settings!({ filters => vec![(r"\(commit [0-9a-f]{12}\)", "(commit [COMMIT])")] }, {
        snapshot("man__interlockctl", &page);
    });

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let out_text = out.display().to_string();
    let planned = run(&["man", "--out", &out_text, "--dry-run"]);
    planned.assert_code(0);
    assert!(!out.exists(), "a dry run writes nothing");
    let written = run(&["--out", &out_text, "man"]);
    written.assert_code(0);
    let mut pages = dir_entries(&out);
    pages.sort();
    assert_eq!(
        pages,
        [
            "interlockctl-apply.1",
            "interlockctl-cluster-add.1",
            "interlockctl-cluster-remove.1",
            "interlockctl-cluster.1",
            "interlockctl-completions.1",
            "interlockctl-history.1",
            "interlockctl-host-mode.1",
            "interlockctl-labels-check.1",
            "interlockctl-labels-watch.1",
            "interlockctl-labels.1",
            "interlockctl-man.1",
            "interlockctl-migrate.1",
            "interlockctl-pin-proxy.1",
            "interlockctl-prune.1",
            "interlockctl-rollback.1",
            "interlockctl-show.1",
            "interlockctl-stack-fix.1",
            "interlockctl-stack-lint.1",
            "interlockctl-stack.1",
            "interlockctl-status.1",
            "interlockctl-upgrade.1",
            "interlockctl.1",
        ]
    );
    assert_eq!(
        std::fs::read_to_string(out.join("interlockctl.1")).unwrap(),
        page.stdout
    );
    let pin_proxy = std::fs::read_to_string(out.join("interlockctl-pin-proxy.1")).unwrap();
    assert!(pin_proxy.contains("\\-\\-label"), "{pin_proxy}");
    let report = run(&["man", "--out", &out_text, "-o", "json"]).json();
    assert_eq!(report["status"], "applied");
    assert_eq!(report["actions"].as_array().unwrap().len(), pages.len());
    let text: String = [planned, written]
        .iter()
        .map(|r| r.render() + "\n")
        .collect();
    insta::with_settings!({ filters => vec![(out_text.as_str(), "[DIR]")] }, {
        insta::assert_snapshot!("man__out", text);
    });
}

/// The other offline modes a user meets: stdin, `--out`, `--check`, `--dry-run`, a rerun
/// with nothing to change, and `pin-proxy` without `--replicas` (a warning).
#[test]
fn snapshots_offline_modes() {
    let ucp = "fixtures/configs/valid/ucp-3.2.toml";
    let fixture = std::fs::read(common::manifest_dir().join(ucp)).unwrap();
    let host_mode = ["host-mode", "--http", "7080", "--https", "7443"];

    let stdin = run_with_stdin(
        &[&["--config-file", "-"][..], &host_mode].concat(),
        Some(&fixture),
    );
    snapshot("modes__stdin", &stdin);

    let check = run(&[&["--check", "--config-file", ucp][..], &host_mode].concat());
    snapshot("modes__check", &check);
    let check_json = run(&[
        &["--check", "-o", "json", "--config-file", ucp][..],
        &host_mode,
    ]
    .concat());
    snapshot("modes__check_json", &check_json);

    let dry_run = run(&[&["--dry-run", "--config-file", ucp][..], &host_mode].concat());
    snapshot("modes__dry_run", &dry_run);

    let no_replicas = run(&["--config-file", ucp, "pin-proxy", "--label", "role=dtr"]);
    snapshot("modes__pin_proxy_without_replicas", &no_replicas);
    let no_replicas_json = run(&[
        "--config-file",
        ucp,
        "-o",
        "json",
        "pin-proxy",
        "--label",
        "role=dtr",
    ]);
    snapshot("modes__pin_proxy_without_replicas_json", &no_replicas_json);

    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().display().to_string();
    let out = format!("{tmp}/new.toml");
    let with_out = run(&[&["--config-file", ucp, "--out", &out][..], &host_mode].concat());
    let mut masked = with_out.clone();
    masked.args = masked
        .args
        .iter()
        .map(|a| a.replace(&tmp, "[TMP]"))
        .collect();
    masked.stdout = masked.stdout.replace(&tmp, "[TMP]");
    masked.stderr = masked.stderr.replace(&tmp, "[TMP]");
    snapshot("modes__out", &masked);
    with_out.assert_code(0);
    assert!(with_out.stdout.is_empty(), "--out keeps stdout empty");

    let again = run(&[&["--config-file", &out][..], &host_mode].concat());
    let mut masked = again.clone();
    masked.args = masked
        .args
        .iter()
        .map(|a| a.replace(&tmp, "[TMP]"))
        .collect();
    snapshot("modes__no_changes", &masked);
    let again_json = run(&[&["-o", "json", "--config-file", &out][..], &host_mode].concat());
    let mut masked = again_json.clone();
    masked.args = masked
        .args
        .iter()
        .map(|a| a.replace(&tmp, "[TMP]"))
        .collect();
    masked.stdout = masked.stdout.replace(&tmp, "[TMP]");
    snapshot("modes__no_changes_json", &masked);
}

// ---------------------------------------------------------------------------------------
// Every edit changes exactly the lines of its keys
// ---------------------------------------------------------------------------------------

/// A value an edit writes.
#[derive(Debug, Clone, Copy)]
enum Want {
    Int(i64),
    Str(&'static str),
    Strs(&'static [&'static str]),
}

impl Want {
    /// How the tool writes it (toml_edit's default formatting).
    fn literal(self) -> String {
        match self {
            Want::Int(n) => n.to_string(),
            Want::Str(s) => format!("\"{s}\""),
            Want::Strs(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn is_in(self, doc: &toml_edit::DocumentMut, extension: &str, key: &str) -> bool {
        match self {
            Want::Int(n) => common::int(doc, extension, key) == Some(n),
            Want::Str(s) => common::string(doc, extension, key).as_deref() == Some(s),
            Want::Strs(items) => common::strings(doc, extension, key)
                .is_some_and(|found| found.iter().map(String::as_str).eq(items.iter().copied())),
        }
    }
}

struct EditCase {
    name: &'static str,
    args: &'static [&'static str],
    sets: &'static [(&'static str, Want)],
}

const EDITS: &[EditCase] = &[
    EditCase {
        name: "pin-proxy",
        args: &["pin-proxy", "--label", "role=dtr", "--replicas", "5"],
        sets: &[
            ("ProxyConstraints", Want::Strs(&["node.labels.role==dtr"])),
            ("ProxyReplicas", Want::Int(5)),
        ],
    },
    EditCase {
        name: "host-mode",
        args: &["host-mode", "--http", "7080", "--https", "7443"],
        sets: &[
            ("PublishMode", Want::Str("host")),
            ("PublishedPort", Want::Int(7080)),
            ("PublishedSSLPort", Want::Int(7443)),
        ],
    },
    EditCase {
        name: "pin-proxy with extension constraints",
        args: &[
            "pin-proxy",
            "--label",
            " com.example.lb = edge-1 ",
            "--replicas",
            "3",
            "--extension-constraint",
            "node.role != manager",
            "--extension-constraint",
            "node.labels.zone==dmz",
        ],
        sets: &[
            (
                "ProxyConstraints",
                Want::Strs(&["node.labels.com.example.lb==edge-1"]),
            ),
            ("ProxyReplicas", Want::Int(3)),
            (
                "Constraints",
                Want::Strs(&["node.role!=manager", "node.labels.zone==dmz"]),
            ),
        ],
    },
];

#[test]
fn edits_change_exactly_the_lines_of_their_keys() {
    for fixture in fixtures("valid") {
        let input = fixture.text();
        let extension = fixture.extension();
        for edit in EDITS {
            let context = format!("{} on {}", edit.name, fixture.path);
            let result = run(&offline_args(&fixture, false, edit.args));
            result.assert_code(0);
            let output = &result.stdout;

            // Byte for byte: the input with each key's value replaced, nothing else.
            let literals: Vec<(&str, String)> = edit
                .sets
                .iter()
                .map(|(key, want)| (*key, want.literal()))
                .collect();
            let expected = common::replace_values(&input, extension, &literals);
            assert_eq!(
                *output, expected,
                "{context}: output is not the input with only the edited values replaced"
            );

            // The same seen as a line diff: the deleted lines are exactly the keys' lines in
            // the input, the inserted ones exactly their lines in the output.
            let key_lines = |text: &str| -> BTreeSet<usize> {
                edit.sets
                    .iter()
                    .flat_map(|(key, _)| {
                        common::key_lines(text, extension, key)
                            .unwrap_or_else(|| panic!("{context}: {key} missing"))
                            .lines
                    })
                    .collect()
            };
            let diff = similar::TextDiff::from_lines(input.as_str(), output.as_str());
            let (mut deleted, mut inserted) = (BTreeSet::new(), BTreeSet::new());
            for change in diff.iter_all_changes() {
                match change.tag() {
                    similar::ChangeTag::Delete => deleted.insert(change.old_index().unwrap()),
                    similar::ChangeTag::Insert => inserted.insert(change.new_index().unwrap()),
                    similar::ChangeTag::Equal => false,
                };
            }
            assert_eq!(deleted, key_lines(&input), "{context}: deleted lines");
            assert_eq!(inserted, key_lines(output), "{context}: inserted lines");

            // Still TOML, with the new values, and every other leaf as it was.
            let before = common::parse(&input);
            let after = common::parse(output);
            for (key, want) in edit.sets {
                assert!(
                    want.is_in(&after, extension, key),
                    "{context}: {key} is not {want:?}"
                );
            }
            let keys: Vec<&str> = edit.sets.iter().map(|(key, _)| *key).collect();
            let untouched = |doc| {
                common::leaves(doc)
                    .into_iter()
                    .filter(|(path, _)| !common::is_extension_key(path, extension, &keys))
                    .collect::<Vec<_>>()
            };
            assert_eq!(untouched(&before), untouched(&after), "{context}");

            // The library reads the edited settings the same way.
            let settings = InterlockConfig::parse("out", output)
                .unwrap()
                .extension(extension)
                .unwrap();
            for (key, want) in edit.sets {
                let read = match (*key, *want) {
                    ("ProxyConstraints", Want::Strs(v)) => settings.proxy_constraints == v,
                    ("Constraints", Want::Strs(v)) => settings.constraints == v,
                    ("ProxyReplicas", Want::Int(n)) => {
                        i64::try_from(settings.proxy_replicas) == Ok(n)
                    }
                    ("PublishMode", Want::Str(s)) => settings.publish_mode.as_str() == s,
                    ("PublishedPort", Want::Int(n)) => {
                        settings.published_port.map(i64::from) == Some(n)
                    }
                    ("PublishedSSLPort", Want::Int(n)) => {
                        settings.published_ssl_port.map(i64::from) == Some(n)
                    }
                    other => panic!("no check for {other:?}"),
                };
                assert!(read, "{context}: the library reads {key} as {settings:?}");
            }
        }
    }
}

#[test]
fn edits_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for fixture in fixtures("valid") {
        for edit in EDITS {
            let context = format!("{} on {}", edit.name, fixture.path);
            let first = run(&offline_args(&fixture, false, edit.args));
            first.assert_code(0);
            let first_path = dir.path().join("first.toml");
            std::fs::write(&first_path, &first.stdout).unwrap();
            let on_output = |json: bool, extra: &[&str]| {
                let mut args = vec!["--config-file".to_owned(), first_path.display().to_string()];
                args.extend(fixture.extension_args());
                if json {
                    args.extend(strs(&["-o", "json"]));
                }
                args.extend(strs(extra));
                args.extend(strs(edit.args));
                run(&args)
            };

            let again = on_output(true, &[]);
            again.assert_code(0);
            let report = again.json();
            assert_eq!(report["status"], "no_changes", "{context}");
            assert_eq!(report["changed"], false, "{context}");
            assert_eq!(report["config"]["changes"], json!([]), "{context}");
            assert_eq!(report["config"]["diff"], "", "{context}");
            assert_eq!(report["actions"], json!([]), "{context}");
            assert_eq!(report["config"]["content"], first.stdout.as_str());

            let second_path = dir.path().join("second.toml");
            let second_out = second_path.display().to_string();
            let again = on_output(false, &["--out", &second_out]);
            again.assert_code(0);
            assert_eq!(again.stdout, "", "{context}");
            assert_eq!(again.stderr, "No changes.\n", "{context}");
            assert_eq!(
                std::fs::read(&second_path).unwrap(),
                first.stdout.as_bytes(),
                "{context}"
            );

            // In place: the file keeps its bytes.
            let first_out = first_path.display().to_string();
            on_output(false, &["--out", &first_out]).assert_code(0);
            assert_eq!(
                std::fs::read(&first_path).unwrap(),
                first.stdout.as_bytes(),
                "{context}"
            );
            on_output(false, &["--check"]).assert_code(0);
            std::fs::remove_file(&second_path).unwrap();
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["first.toml"], "no temp files are left behind");
}

/// The keys each desired file changes, with the values before and after.
/// `(key, before, after)` as the JSON report lists them.
type Change = (&'static str, &'static str, &'static str);

const DESIRED_CHANGES: &[(&str, &[Change])] = &[
    (
        "hand-edited",
        &[
            ("Extensions.default.proxyReplicas", "2", "4"),
            ("Extensions.default.Config.MaxConnections", "4096", "8192"),
        ],
    ),
    (
        "service-clusters",
        &[
            ("Extensions.us-west.PublishMode", "\"ingress\"", "\"host\""),
            ("Extensions.us-west.PublishedPort", "9080", "7080"),
        ],
    ),
    (
        "ucp-3.0",
        &[
            ("Extensions.default.ProxyReplicas", "2", "3"),
            ("Extensions.default.PublishedSSLPort", "8443", "9443"),
        ],
    ),
    (
        "ucp-3.1",
        &[
            ("Extensions.default.PublishMode", "\"ingress\"", "\"host\""),
            ("Extensions.default.PublishedPort", "80", "8080"),
        ],
    ),
    (
        "ucp-3.2",
        &[
            ("Extensions.default.ProxyReplicas", "2", "5"),
            (
                "Extensions.default.ProxyConstraints",
                "[\"node.labels.com.docker.ucp.orchestrator.swarm==true\", \"node.platform.os==linux\"]",
                "[\"node.labels.role==dtr\"]",
            ),
        ],
    ),
];

#[test]
fn apply_writes_the_desired_file_verbatim_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for fixture in fixtures("valid") {
        let desired_path = fixture.desired_path();
        let desired = std::fs::read_to_string(common::manifest_dir().join(&desired_path)).unwrap();
        let context = format!("apply {desired_path} on {}", fixture.path);
        let apply = ["apply", desired_path.as_str()];

        let text = run(&offline_args(&fixture, false, &apply));
        text.assert_code(0);
        assert_eq!(text.stdout, desired, "{context}");
        common::parse(&text.stdout);

        let json = run(&offline_args(&fixture, true, &apply));
        json.assert_code(0);
        let (_, expected) = DESIRED_CHANGES
            .iter()
            .find(|(stem, _)| *stem == fixture.stem)
            .unwrap_or_else(|| panic!("{context}: add the changes to DESIRED_CHANGES"));
        let expected: Vec<Json> = expected
            .iter()
            .map(|(key, before, after)| json!({ "key": key, "before": before, "after": after }))
            .collect();
        assert_eq!(
            json.json()["config"]["changes"],
            Json::Array(expected),
            "{context}"
        );

        // Applying the desired file to itself changes nothing, and --out keeps its bytes.
        let out = dir.path().join(format!("{}.toml", fixture.stem));
        std::fs::write(&out, &desired).unwrap();
        let mut args = vec![
            "--config-file".to_owned(),
            out.display().to_string(),
            "--out".to_owned(),
            out.display().to_string(),
        ];
        args.extend(fixture.extension_args());
        let mut json_args = args.clone();
        json_args.extend(strs(&["-o", "json"]));
        args.extend(strs(&apply));
        json_args.extend(strs(&apply));
        let again = run(&json_args);
        again.assert_code(0);
        assert_eq!(again.json()["status"], "no_changes", "{context}");
        assert_eq!(again.json()["changed"], false, "{context}");
        run(&args).assert_code(0);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), desired, "{context}");
    }
}

// ---------------------------------------------------------------------------------------
// Refusals: exit 4, the reason and a hint on stderr, nothing written
// ---------------------------------------------------------------------------------------

struct Refusal {
    name: String,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
    /// A distinctive part of the message.
    needle: String,
    /// `errors[0].code` in JSON.
    code: &'static str,
}

/// Each invalid fixture: the distinctive part of its message (`{path}` stands for the
/// fixture's path: every message names the file at fault), and its error code.
const INVALID_FIXTURES: &[(&str, &str, &str)] = &[
    (
        "bad-publish-mode",
        r#"{path}: [Extensions.default] PublishMode = "routing-mesh" is neither "ingress" nor "host""#,
        "invalid_publish_mode",
    ),
    (
        "case-duplicate-key",
        "{path}: [Extensions.default] has both ProxyReplicas and proxyreplicas; Interlock reads key names case-insensitively",
        "duplicate_key",
    ),
    (
        "duplicate-key",
        "{path} is not valid TOML (line 16, column 5): duplicate key",
        "invalid_toml",
    ),
    (
        "missing-proxy-replicas",
        "{path}: [Extensions.default] has no ProxyReplicas; the Interlock core crashes without it",
        "missing_proxy_replicas",
    ),
    (
        "no-extensions",
        "{path} has no [Extensions] table",
        "no_extensions",
    ),
    (
        "not-toml",
        "{path} is not valid TOML (line 4, column 23)",
        "invalid_toml",
    ),
    (
        "replicas-not-a-number",
        r#"{path}: [Extensions.default] ProxyReplicas = "two" is not a whole number, 0 or more"#,
        "invalid_value",
    ),
];

const UCP: &str = "fixtures/configs/valid/ucp-3.2.toml";
const CLUSTERS: &str = "fixtures/configs/valid/service-clusters.toml";
const PIN: &[&str] = &["pin-proxy", "--label", "role=dtr", "--replicas", "5"];
const HOST: &[&str] = &["host-mode", "--http", "7080", "--https", "7443"];

fn refusals() -> Vec<Refusal> {
    let case = |name: &str, config: &str, args: &[&str], needle: &str, code| Refusal {
        name: name.to_owned(),
        args: [&["--config-file", config][..], args]
            .concat()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        stdin: None,
        needle: needle.to_owned(),
        code,
    };
    let mut cases = Vec::new();

    let invalid = fixtures("invalid");
    let stems: Vec<&str> = invalid.iter().map(|f| f.stem.as_str()).collect();
    let known: Vec<&str> = INVALID_FIXTURES.iter().map(|(stem, _, _)| *stem).collect();
    assert_eq!(
        stems, known,
        "every invalid fixture needs an entry in INVALID_FIXTURES"
    );
    for (fixture, (_, needle, code)) in invalid.iter().zip(INVALID_FIXTURES) {
        let path = fixture.path.as_str();
        let needle = &needle.replace("{path}", path);
        let name = &fixture.stem;
        cases.push(case(
            &format!("{name}: pin-proxy"),
            path,
            PIN,
            needle,
            *code,
        ));
        cases.push(case(
            &format!("{name}: host-mode"),
            path,
            HOST,
            needle,
            *code,
        ));
        cases.push(case(
            &format!("{name}: as apply's desired file"),
            UCP,
            &["apply", path],
            needle,
            *code,
        ));
    }
    let not_toml =
        std::fs::read(common::manifest_dir().join("fixtures/configs/invalid/not-toml.toml"))
            .unwrap();
    cases.push(Refusal {
        name: "not-toml on stdin".into(),
        args: strs(&[&["--config-file", "-"][..], HOST].concat()),
        stdin: Some(not_toml.clone()),
        needle: "stdin is not valid TOML (line 4, column 23)".into(),
        code: "invalid_toml",
    });
    cases.push(Refusal {
        name: "not-toml as apply's desired file on stdin".into(),
        args: strs(&["--config-file", UCP, "apply", "-"]),
        stdin: Some(not_toml),
        needle: "stdin is not valid TOML (line 4, column 23)".into(),
        code: "invalid_toml",
    });

    let port = |flag: &str, value: &str| format!("{flag} {value} is outside 1..=65535");
    let host = |http: &'static str, https: &'static str| {
        vec!["host-mode", "--http", http, "--https", https]
    };
    let pin = |label: &'static str| vec!["pin-proxy", "--label", label, "--replicas", "5"];
    let label = |label: &str, why: &str| format!("--label `{label}`{why}");
    let inputs: Vec<(&str, Vec<&str>, String, &str)> = vec![
        ("--http 0", host("0", "7443"), port("--http", "0"), "invalid_port"),
        ("--https 0", host("7080", "0"), port("--https", "0"), "invalid_port"),
        ("--http 65536", host("65536", "7443"), port("--http", "65536"), "invalid_port"),
        ("--https 65536", host("7080", "65536"), port("--https", "65536"), "invalid_port"),
        ("--http -1", host("-1", "7443"), port("--http", "-1"), "invalid_port"),
        ("--https -1", host("7080", "-1"), port("--https", "-1"), "invalid_port"),
        (
            "http == https",
            host("7443", "7443"),
            "--http and --https are both 7443; the proxy needs two different ports".into(),
            "same_ports",
        ),
        (
            "--replicas 0",
            vec!["pin-proxy", "--label", "role=dtr", "--replicas", "0"],
            "--replicas 0 would stop every proxy task".into(),
            "invalid_replicas",
        ),
        ("label without =", pin("role"), label("role", " is not KEY=VALUE"), "invalid_label"),
        ("label without key", pin("=dtr"), label("=dtr", " is not KEY=VALUE"), "invalid_label"),
        ("label without value", pin("role="), label("role=", " is not KEY=VALUE"), "invalid_label"),
        (
            "label key with a blank",
            pin("ro le=dtr"),
            label("ro le=dtr", ": the key `ro le` must start with a letter or `_`"),
            "invalid_label",
        ),
        (
            "label key starting with a digit",
            pin("1role=dtr"),
            label("1role=dtr", ": the key `1role` must start with a letter or `_`"),
            "invalid_label",
        ),
        (
            "label value with a comma",
            pin("role=a,b"),
            label("role=a,b", ": the value `a,b` contains `,`"),
            "invalid_label",
        ),
        (
            "constraint with a single =",
            [PIN, &["--extension-constraint", "node.role=manager"][..]].concat(),
            "--extension-constraint `node.role=manager` is not a Swarm constraint: it needs `==` or `!=`"
                .into(),
            "invalid_constraint",
        ),
        (
            "--extension nope",
            [&["--extension", "nope"][..], HOST].concat(),
            format!("{UCP} has no [Extensions.nope] (it has: default)"),
            "extension_not_found",
        ),
        (
            "migrate: label without value",
            vec!["migrate", "--label", "role=", "--http", "7080", "--https", "7443"],
            label("role=", " is not KEY=VALUE"),
            "invalid_label",
        ),
        (
            "migrate: --http 0",
            vec!["migrate", "--label", "role=dtr", "--http", "0", "--https", "7443"],
            port("--http", "0"),
            "invalid_port",
        ),
        (
            "migrate: http == https",
            vec!["migrate", "--label", "role=dtr", "--http", "7443", "--https", "7443"],
            "--http and --https are both 7443; the proxy needs two different ports".into(),
            "same_ports",
        ),
        (
            "unreadable desired file",
            vec!["apply", "fixtures/configs/desired/no-such-file.toml"],
            "cannot read fixtures/configs/desired/no-such-file.toml: ".into(),
            "unreadable_file",
        ),
    ];
    for (name, args, needle, code) in inputs {
        cases.push(case(name, UCP, &args, &needle, code));
    }

    let ambiguous = "service-clusters.toml has several extensions (us-east, us-west, dmz) and none is called `default`";
    cases.push(case(
        "service-clusters without --extension: pin-proxy",
        CLUSTERS,
        PIN,
        ambiguous,
        "ambiguous_extension",
    ));
    cases.push(case(
        "service-clusters without --extension: host-mode",
        CLUSTERS,
        HOST,
        ambiguous,
        "ambiguous_extension",
    ));
    cases.push(case(
        "service-clusters without --extension: apply",
        CLUSTERS,
        &["apply", "fixtures/configs/desired/service-clusters.toml"],
        ambiguous,
        "ambiguous_extension",
    ));
    cases.push(case(
        "service-clusters --extension nope",
        CLUSTERS,
        &[&["--extension", "nope"][..], HOST].concat(),
        "has no [Extensions.nope] (it has: us-east, us-west, dmz)",
        "extension_not_found",
    ));

    cases.push(case(
        "missing config file",
        "fixtures/configs/no-such-file.toml",
        HOST,
        "cannot read fixtures/configs/no-such-file.toml: ",
        "unreadable_file",
    ));
    cases.push(case(
        "config file is a directory",
        "fixtures/configs/valid",
        HOST,
        "cannot read fixtures/configs/valid: ",
        "unreadable_file",
    ));
    cases.push(Refusal {
        name: "stdin for both --config-file and apply".into(),
        args: strs(&["--config-file", "-", "apply", "-"]),
        stdin: Some(std::fs::read(common::manifest_dir().join(UCP)).unwrap()),
        needle: "`--config-file -` and `apply -` cannot both read stdin".into(),
        code: "stdin_twice",
    });
    cases
}

fn run_refusal(case: &Refusal, extra: &[String]) -> Run {
    let mut args = extra.to_vec();
    args.extend(case.args.iter().cloned());
    run_with_stdin(&args, case.stdin.as_deref())
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn invalid_inputs_are_refused_and_write_nothing() {
    let cases = refusals();
    let mut transcript = String::new();
    for case in &cases {
        let context = &case.name;
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.toml");
        let existing = dir.path().join("existing.toml");
        let sentinel = b"# the user's file; must survive\nX = 1\n";
        std::fs::write(&existing, sentinel).unwrap();

        for (out, json) in [(&fresh, false), (&existing, false), (&fresh, true)] {
            let mut extra = vec!["--out".to_owned(), out.display().to_string()];
            if json {
                extra.extend(strs(&["-o", "json"]));
            }
            let result = run_refusal(case, &extra);
            result.assert_code(4);
            assert!(
                result.stderr.starts_with("error: ") && result.stderr.contains(&case.needle),
                "{context}: stderr lacks `{}`:\n{}",
                case.needle,
                result.render()
            );
            assert!(
                result.stderr.contains("\nhint: "),
                "{context}: no hint:\n{}",
                result.render()
            );
            if json {
                let report = result.json();
                assert_eq!(report["status"], "refused", "{context}");
                assert_eq!(report["changed"], false, "{context}");
                assert_eq!(report["actions"], json!([]), "{context}");
                let errors = report["errors"].as_array().unwrap();
                assert_eq!(errors.len(), 1, "{context}");
                assert_eq!(errors[0]["code"], case.code, "{context}");
                assert!(
                    errors[0]["message"]
                        .as_str()
                        .unwrap()
                        .contains(&case.needle),
                    "{context}: {}",
                    errors[0]["message"]
                );
                assert!(
                    errors[0]["hint"].as_str().is_some_and(|h| !h.is_empty()),
                    "{context}"
                );
            } else {
                assert_eq!(result.stdout, "", "{context}: stdout must stay empty");
            }
            assert!(!fresh.exists(), "{context}: --out was created");
            assert_eq!(
                std::fs::read(&existing).unwrap(),
                sentinel,
                "{context}: --out was modified"
            );
            assert_eq!(
                dir_entries(dir.path()),
                ["existing.toml"],
                "{context}: stray files"
            );
        }

        let plain = run_refusal(case, &[]);
        transcript.push_str(&format!("### {}\n{}\n", case.name, plain.render()));
    }
    insta::assert_snapshot!("refusals", transcript);
}

#[test]
fn usage_errors_exit_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.toml").display().to_string();
    for args in [
        vec![
            "--out",
            &out,
            "host-mode",
            "--http",
            "7080",
            "--https",
            "7443",
        ],
        vec![
            "--config-file",
            UCP,
            "--out",
            &out,
            "host-mode",
            "--http",
            "x",
            "--https",
            "7443",
        ],
        vec![
            "--config-file",
            UCP,
            "--out",
            &out,
            "host-mode",
            "--http",
            "7080",
        ],
        vec![
            "--config-file",
            UCP,
            "--out",
            &out,
            "pin-proxy",
            "--replicas",
            "2",
        ],
        vec![
            "--config-file",
            UCP,
            "--out",
            &out,
            "pin-proxy",
            "--label",
            "a=b",
            "--replicas",
            "-1",
        ],
        vec![
            "--config-file",
            UCP,
            "--out",
            &out,
            "--check",
            "--dry-run",
            "pin-proxy",
            "--label",
            "a=b",
        ],
        vec!["--config-file", UCP, "--out", &out, "apply"],
    ] {
        let result = run(&args);
        result.assert_code(2);
        assert_eq!(result.stdout, "");
        assert!(result.stderr.starts_with("error: "), "{}", result.render());
        assert!(dir_entries(dir.path()).is_empty(), "{}", result.render());

        // With `-o json` (in each spelling) the refusal is one JSON document as well.
        for json in [&["-o", "json"][..], &["--output=json"], &["-ojson"]] {
            let result = run(&[&args[..], json].concat());
            let report = result.assert_report(2);
            assert_eq!(report["status"], "refused", "{}", result.render());
            assert_eq!(report["changed"], false);
            assert_eq!(report["errors"].as_array().map(Vec::len), Some(1));
            assert_eq!(report["errors"][0]["code"], "usage");
            let message = report["errors"][0]["message"].as_str().unwrap();
            assert!(
                result
                    .stderr
                    .starts_with(&format!("error: {}", &message[..10])),
                "the message is clap's: {}",
                result.render()
            );
            assert!(dir_entries(dir.path()).is_empty(), "{}", result.render());
        }
    }
    let report = run(&["-o", "json", "cluster", "add", "eu"]).assert_report(2);
    assert_eq!(report["command"], "cluster add");
    assert_eq!(
        report["errors"][0]["message"],
        "the following required arguments were not provided: --label <KEY=VALUE> --http <PORT> --https <PORT>"
    );
}

/// A write to stdout that fails (a full disk) loses the edited config: exit 1 saying so, not
/// exit 0; a closed pipe (`| head`) is no such failure.
#[test]
fn a_failed_write_to_stdout_is_exit_1() {
    let edit = ["--config-file", UCP, "pin-proxy", "--label", "role=dtr"];
    for json in [false, true] {
        let mut args = edit.to_vec();
        if json {
            args.extend(["-o", "json"]);
        }
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_interlockctl"))
            .args(&args)
            .stdout(std::fs::File::create("/dev/full").expect("/dev/full"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("error: could not write the output to stdout: No space left on device"),
            "{stderr}"
        );
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_interlockctl"))
        .args(edit)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before the first byte
    assert_eq!(
        child.wait().unwrap().code(),
        Some(0),
        "a closed pipe is exit 0"
    );
}

/// A config saved on Windows keeps its CRLF line breaks and its byte-order mark: the output
/// is the input with the one edited line replaced, and the diff shows only that line.
#[test]
fn crlf_line_breaks_and_a_byte_order_mark_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let lf = std::fs::read_to_string(UCP).unwrap();
    let before_line = "    ProxyConstraints = [\"node.labels.com.docker.ucp.orchestrator.swarm==true\", \"node.platform.os==linux\"]\r\n";
    let after_line = "    ProxyConstraints = [\"node.labels.role==dtr\"]\r\n";
    for bom in ["", "\u{feff}"] {
        let windows = format!("{bom}{}", lf.replace('\n', "\r\n"));
        assert_eq!(
            windows.matches(before_line).count(),
            1,
            "the fixture's line"
        );
        let file = dir.path().join("windows.toml");
        std::fs::write(&file, &windows).unwrap();
        let file = file.to_str().unwrap();
        let edit = ["pin-proxy", "--label", "role=dtr", "--replicas", "2"];
        let text = run(&[&edit[..], &["--config-file", file]].concat());
        text.assert_code(0);
        assert_eq!(
            text.stdout,
            windows.replace(before_line, after_line),
            "BOM {bom:?}: only the edited line differs"
        );
        let report =
            run(&[&edit[..], &["--config-file", file, "-o", "json"]].concat()).assert_report(0);
        let diff = report["config"]["diff"].as_str().unwrap();
        assert_eq!(
            common::changed_lines(diff),
            [
                format!("-{}", before_line.trim_end()),
                format!("+{}", after_line.trim_end()),
            ],
            "{diff}"
        );
        assert!(
            diff.contains(&format!("-{before_line}+{after_line}")),
            "the diff's lines keep their CRLF: {diff:?}"
        );
    }
}

/// Global options stand before or after the command, as in the docker CLI: every
/// combination of up to two offline options (with `--config-file`) gives the same run, byte
/// for byte, all before the command or all after it, and `--out` writes the same file.
#[test]
fn global_options_work_before_or_after_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("edited.toml").display().to_string();
    let options: [&[&str]; 8] = [
        &["--out", &out],
        &["--extension", "default"],
        &["-o", "json"],
        &["--dry-run"],
        &["--check"],
        &["--show-secrets"],
        &["-q"],
        &["-v"],
    ];
    let run_and_collect = |args: &[&str]| {
        let result = run(args);
        let written = std::fs::read_to_string(&out).ok();
        let _ = std::fs::remove_file(&out);
        (result, written)
    };
    let mut combinations = 0;
    for first in 0..options.len() {
        for second in first..options.len() {
            let mut flags = vec!["--config-file", UCP];
            flags.extend_from_slice(options[first]);
            if second != first {
                flags.extend_from_slice(options[second]);
            }
            let (before, before_file) = run_and_collect(&[&flags[..], PIN].concat());
            // Each option took effect, not only the same way on both sides: the edit (changes
            // pending) succeeded, was written where asked, and was only planned when asked.
            let given = |flag: &str| flags.contains(&flag);
            let planning = given("--dry-run") || given("--check");
            let conflicting = [["--dry-run", "--check"], ["-q", "-v"]]
                .iter()
                .any(|pair| pair.iter().all(|flag| given(flag)));
            let code = match (conflicting, given("--check")) {
                (true, _) => 2,
                (false, true) => 3,
                (false, false) => 0,
            };
            assert_eq!(before.code, code, "{}", before.render());
            let edited = "ProxyConstraints = [\"node.labels.role==dtr\"]";
            let written = before_file
                .as_deref()
                .is_some_and(|file| file.contains(edited));
            assert_eq!(
                written,
                code == 0 && given("--out") && !planning,
                "{}",
                before.render()
            );
            let printed = before.stdout.contains(edited);
            assert_eq!(
                printed,
                code == 0 && !given("--out") && !planning && !given("-o"),
                "the edited TOML on stdout: {}",
                before.render()
            );
            if given("-o") && code != 2 {
                let report: Json = serde_json::from_str(&before.stdout).expect("one JSON document");
                assert_eq!(report["errors"], json!([]));
            }
            let (after, after_file) = run_and_collect(&[PIN, &flags[..]].concat());
            assert_eq!(
                (before.code, &before.stdout, &before.stderr, &before_file),
                (after.code, &after.stdout, &after.stderr, &after_file),
                "\n{}\n{}",
                before.render(),
                after.render()
            );
            combinations += 1;
        }
    }
    assert_eq!(combinations, 36);
}

/// The command line from the report (`--config-file` before the command, `--out` after
/// it) and the relations between global options, split around the command.
#[test]
fn snapshots_global_options_split_around_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("edited.toml").display().to_string();
    let runs = [
        run(&[&["--config-file", UCP][..], PIN, &["--out", &out]].concat()),
        run(&[&["--out", &out][..], PIN, &["--config-file", UCP]].concat()),
        run(&[&["--out", &out][..], PIN].concat()),
        run(&[&["--check", "--config-file", UCP][..], PIN, &["--dry-run"]].concat()),
        run(&[&["-q", "--config-file", UCP][..], PIN, &["-v"]].concat()),
        run(&[
            &["--context", "lab"][..],
            &["status", "-H", "unix:///lab.sock"],
        ]
        .concat()),
    ];
    let text: String = runs.iter().map(|r| r.render() + "\n").collect();
    insta::with_settings!({ filters => vec![(out.as_str(), "[OUT]")] }, {
        insta::assert_snapshot!("global_options", text);
    });
}

// ---------------------------------------------------------------------------------------
// --check, --dry-run, stdin
// ---------------------------------------------------------------------------------------

#[test]
fn check_exits_3_when_changes_are_pending_and_0_when_not() {
    for fixture in fixtures("valid") {
        for edit in EDITS {
            let context = format!("{} on {}", edit.name, fixture.path);
            let dir = tempfile::tempdir().unwrap();
            let fresh = dir.path().join("fresh.toml");
            let existing = dir.path().join("existing.toml");
            std::fs::write(&existing, "keep = true\n").unwrap();

            for out in [&fresh, &existing] {
                let out = out.display().to_string();
                let args = offline_args(
                    &fixture,
                    false,
                    &[&["--check", "--out", &out][..], edit.args].concat(),
                );
                let pending = run(&args);
                pending.assert_code(3);
                assert_eq!(pending.stdout, "", "{context}");
                assert!(
                    pending
                        .stderr
                        .starts_with(&format!("--- {}\n+++ {out}\n", fixture.path)),
                    "{context}: {}",
                    pending.stderr
                );
                assert!(
                    pending
                        .stderr
                        .ends_with("Changes pending; nothing was changed.\n"),
                    "{context}"
                );
                let json = run(&offline_args(
                    &fixture,
                    true,
                    &[&["--check", "--out", &out][..], edit.args].concat(),
                ));
                json.assert_code(3);
                let report = json.json();
                assert_eq!(report["status"], "planned", "{context}");
                assert_eq!(report["dry_run"], true, "{context}");
                assert_eq!(report["changed"], true, "{context}");
                assert!(report["config"].get("content").is_none(), "{context}");
            }
            assert!(!fresh.exists(), "{context}: --check created --out");
            assert_eq!(
                std::fs::read_to_string(&existing).unwrap(),
                "keep = true\n",
                "{context}"
            );

            // On the edited output, nothing is pending.
            let edited = run(&offline_args(&fixture, false, edit.args));
            let done = dir.path().join("done.toml");
            std::fs::write(&done, &edited.stdout).unwrap();
            let mut args = vec![
                "--check".to_owned(),
                "--config-file".to_owned(),
                done.display().to_string(),
            ];
            args.extend(fixture.extension_args());
            args.extend(strs(edit.args));
            let clean = run(&args);
            clean.assert_code(0);
            assert_eq!(clean.stdout, "", "{context}");
            assert_eq!(clean.stderr, "No changes.\n", "{context}");
            args.extend(strs(&["-o", "json"]));
            let report = run(&args).assert_code(0).json();
            assert_eq!(report["status"], "planned", "{context}");
            assert_eq!(report["changed"], false, "{context}");
        }
    }
}

#[test]
fn dry_run_writes_nothing() {
    for fixture in fixtures("valid") {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.toml");
        let existing = dir.path().join("existing.toml");
        std::fs::write(&existing, "keep = true\n").unwrap();
        let desired = fixture.desired_path();
        let apply = ["apply", desired.as_str()];
        for args in [PIN, HOST, &apply[..]] {
            for (out, json) in [(&fresh, false), (&existing, false), (&fresh, true)] {
                let out = out.display().to_string();
                let result = run(&offline_args(
                    &fixture,
                    json,
                    &[&["--dry-run", "--out", &out][..], args].concat(),
                ));
                result.assert_code(0);
                if json {
                    let report = result.json();
                    assert_eq!(report["status"], "planned");
                    assert_eq!(report["dry_run"], true);
                    assert_eq!(report["changed"], true);
                } else {
                    assert_eq!(result.stdout, "", "{}", result.render());
                    assert!(
                        result
                            .stderr
                            .ends_with("Changes pending; nothing was changed.\n")
                    );
                }
            }
            // Without --out, a dry run prints no TOML either.
            let result = run(&offline_args(
                &fixture,
                false,
                &[&["--dry-run"][..], args].concat(),
            ));
            result.assert_code(0);
            assert_eq!(result.stdout, "", "{}", result.render());
        }
        assert_eq!(dir_entries(dir.path()), ["existing.toml"]);
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep = true\n");
    }
}

#[test]
fn stdin_input_works_like_a_file() {
    for fixture in fixtures("valid") {
        let bytes = fixture.text().into_bytes();
        for edit in EDITS {
            let from_file = run(&offline_args(&fixture, false, edit.args));
            let mut args = vec!["--config-file".to_owned(), "-".to_owned()];
            args.extend(fixture.extension_args());
            args.extend(strs(edit.args));
            let from_stdin = run_with_stdin(&args, Some(&bytes));
            from_stdin.assert_code(0);
            assert_eq!(from_stdin.stdout, from_file.stdout);
            assert_eq!(
                from_stdin.stderr,
                from_file
                    .stderr
                    .replacen(&format!("--- {}\n", fixture.path), "--- stdin\n", 1)
            );
            args.extend(strs(&["-o", "json"]));
            let report = run_with_stdin(&args, Some(&bytes)).assert_code(0).json();
            assert_eq!(report["config"]["current"], "stdin");
        }
        // apply's desired file may come from stdin too.
        let desired = std::fs::read(common::manifest_dir().join(fixture.desired_path())).unwrap();
        let mut args = vec!["--config-file".to_owned(), fixture.path.clone()];
        args.extend(fixture.extension_args());
        args.extend(strs(&["apply", "-"]));
        let applied = run_with_stdin(&args, Some(&desired));
        applied.assert_code(0);
        assert_eq!(applied.stdout.as_bytes(), desired);
    }
}

#[cfg(unix)]
#[test]
fn out_keeps_the_mode_of_the_file_it_replaces() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::copy(
        common::manifest_dir().join("fixtures/configs/valid/hand-edited.toml"),
        &config,
    )
    .unwrap();
    // hand-edited.toml holds an AdminPass: a private file must stay private.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = config.display().to_string();
    run(&[&["--config-file", &path, "--out", &path][..], HOST].concat()).assert_code(0);
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "--out widened the mode to {mode:o}");
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("\tPublishMode=\"host\"\n")
    );
    assert_eq!(dir_entries(dir.path()), ["config.toml"]);
}

#[test]
fn unwritable_out_fails_with_exit_1_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("a-directory")).unwrap();
    for (out, reason) in [
        ("a-directory", "cannot write "),
        ("missing/new.toml", "cannot write "),
    ] {
        let out = dir.path().join(out).display().to_string();
        let text = run(&[&["--config-file", UCP, "--out", &out][..], HOST].concat());
        text.assert_code(1);
        assert_eq!(text.stdout, "");
        assert!(
            text.stderr.contains(&format!("error: {reason}{out}: ")),
            "{}",
            text.render()
        );
        let json = run(&[
            &["-o", "json", "--config-file", UCP, "--out", &out][..],
            HOST,
        ]
        .concat());
        json.assert_code(1);
        assert_eq!(json.json()["status"], "failed");
        assert_eq!(json.json()["errors"][0]["code"], "write_failed");
        assert_eq!(dir_entries(dir.path()), ["a-directory"], "{out}");
        assert!(dir_entries(&dir.path().join("a-directory")).is_empty());
    }
}

// ---------------------------------------------------------------------------------------
// Property test over generated configs and values
// ---------------------------------------------------------------------------------------

/// How one `key = value` line is written.
#[derive(Debug, Clone)]
struct Style {
    indent: &'static str,
    eq: &'static str,
    trailing: &'static str,
    comment_before: bool,
    comment_after: bool,
    blank_before: bool,
}

fn style() -> impl Strategy<Value = Style> {
    (
        prop::sample::select(vec!["", " ", "  ", "    ", "\t", "\t\t"]),
        prop::sample::select(vec![" = ", "=", "  =  ", "\t= ", " =\t", "= "]),
        prop::sample::select(vec!["", "", " ", "\t "]),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(indent, eq, trailing, comment_before, comment_after, blank_before)| Style {
                indent,
                eq,
                trailing,
                comment_before,
                comment_after,
                blank_before,
            },
        )
}

/// A key name as written: as documented, lower case, lower camel case, or random case.
fn cased(name: &'static str) -> impl Strategy<Value = String> {
    let lower_first = format!("{}{}", name[..1].to_ascii_lowercase(), &name[1..]);
    prop_oneof![
        3 => Just(name.to_owned()),
        1 => Just(name.to_ascii_lowercase()),
        1 => Just(lower_first),
        1 => prop::collection::vec(any::<bool>(), name.len()).prop_map(move |upper| {
            name.chars()
                .zip(upper)
                .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect()
        }),
    ]
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    literal: String,
    style: Style,
}

fn entry(
    key: impl Strategy<Value = String>,
    literal: impl Strategy<Value = String>,
) -> impl Strategy<Value = Entry> {
    (key, literal, style()).prop_map(|(key, literal, style)| Entry {
        key,
        literal,
        style,
    })
}

fn constraint() -> impl Strategy<Value = String> {
    prop_oneof![
        "node\\.labels\\.[a-z][a-z0-9_.-]{0,6}(==|!=)[a-z0-9][a-z0-9._-]{0,6}",
        "node\\.role(==|!=)(manager|worker)",
        "node\\.platform\\.os==linux",
    ]
}

fn string_array(items: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop::collection::vec(items, 0..4).prop_map(|items| {
        format!(
            "[{}]",
            items
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn port_literal() -> impl Strategy<Value = String> {
    (1i64..=65535).prop_map(|p| p.to_string())
}

/// Values an unknown key may hold, escapes included.
fn any_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1000i64..100_000).prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "[a-zA-Z0-9 ._/:-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        "[a-zA-Z0-9 ._/:-]{0,12}".prop_map(|s| format!("'{s}'")),
        Just(r#""'$remote_addr \"$request\" '\n\t\t    '$status'""#.to_owned()),
        string_array("[a-z0-9.=]{0,8}"),
    ]
}

/// Unknown keys (never a case-insensitive match of a known key), made unique by index.
fn extras(max: usize) -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::vec(entry("[A-Za-z][A-Za-z0-9_]{0,8}", any_literal()), 0..=max).prop_map(
        |entries| {
            entries
                .into_iter()
                .enumerate()
                .map(|(i, mut e)| {
                    e.key = format!("X{i}{}", e.key);
                    e
                })
                .collect()
        },
    )
}

#[derive(Debug, Clone)]
struct GenExtension {
    name: String,
    header_comment: bool,
    entries: Vec<Entry>,
    config: Option<Vec<Entry>>,
    closing_comment: bool,
}

fn optional(entry: impl Strategy<Value = Entry>) -> impl Strategy<Value = Option<Entry>> {
    prop::option::weighted(0.7, entry)
}

fn extension_body() -> impl Strategy<Value = (Vec<Entry>, Option<Vec<Entry>>, bool, bool)> {
    let known = (
        entry(
            cased("ProxyReplicas"),
            (0i64..=20).prop_map(|n| n.to_string()),
        ),
        optional(entry(cased("ProxyConstraints"), string_array(constraint()))),
        optional(entry(cased("Constraints"), string_array(constraint()))),
        optional(entry(
            cased("PublishMode"),
            prop::sample::select(vec!["\"ingress\"", "\"host\"", "'ingress'", "'host'"])
                .prop_map(str::to_owned),
        )),
        optional(entry(cased("PublishedPort"), port_literal())),
        optional(entry(cased("PublishedSSLPort"), port_literal())),
        optional(entry(cased("TargetPort"), port_literal())),
        optional(entry(
            cased("ProxyServiceName"),
            "[a-z][a-z0-9-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        )),
    );
    (
        known,
        extras(3),
        prop::option::of(extras(3)),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_flat_map(|(known, extras, config, header_comment, closing_comment)| {
            let (replicas, a, b, c, d, e, f, g) = known;
            let mut entries: Vec<Entry> = [Some(replicas), a, b, c, d, e, f, g]
                .into_iter()
                .flatten()
                .collect();
            entries.extend(extras);
            (
                Just(entries).prop_shuffle(),
                Just(config),
                Just(header_comment),
                Just(closing_comment),
            )
        })
}

#[derive(Debug, Clone)]
struct GenConfig {
    top: Vec<Entry>,
    leading_comment: bool,
    extensions_keyword: &'static str,
    extensions_header: bool,
    extensions: Vec<GenExtension>,
    final_newline: bool,
}

fn gen_config() -> impl Strategy<Value = GenConfig> {
    let top = (
        entry(cased("ListenAddr"), Just("\":8080\"".to_owned())),
        entry(
            cased("DockerURL"),
            Just("\"unix:///var/run/docker.sock\"".to_owned()),
        ),
        optional(entry(cased("PollInterval"), Just("'3s'".to_owned()))),
        extras(2),
    )
        .prop_map(|(a, b, c, extras)| {
            let mut top = vec![a, b];
            top.extend(c);
            top.extend(extras);
            top
        });
    let names = prop::collection::btree_set("[a-z][a-z0-9-]{0,8}", 1..=3);
    (
        top,
        any::<bool>(),
        prop::sample::select(vec!["Extensions", "extensions", "EXTENSIONS"]),
        any::<bool>(),
        names,
        prop::bool::weighted(0.8),
    )
        .prop_flat_map(
            |(top, leading_comment, keyword, header, names, final_newline)| {
                let names: Vec<String> = names.into_iter().collect();
                let bodies = prop::collection::vec(extension_body(), names.len());
                (bodies, Just(names)).prop_map(move |(bodies, names)| GenConfig {
                    top: top.clone(),
                    leading_comment,
                    extensions_keyword: keyword,
                    extensions_header: header,
                    extensions: names
                        .into_iter()
                        .zip(bodies)
                        .map(
                            |(name, (entries, config, header_comment, closing_comment))| {
                                GenExtension {
                                    name,
                                    header_comment,
                                    entries,
                                    config,
                                    closing_comment,
                                }
                            },
                        )
                        .collect(),
                    final_newline,
                })
            },
        )
}

fn render_entries(out: &mut String, entries: &[Entry]) {
    for e in entries {
        let s = &e.style;
        if s.blank_before {
            out.push('\n');
        }
        if s.comment_before {
            out.push_str(&format!("{}# about {}\n", s.indent, e.key));
        }
        out.push_str(&format!(
            "{}{}{}{}{}",
            s.indent, e.key, s.eq, e.literal, s.trailing
        ));
        if s.comment_after {
            out.push_str(" # keep me");
        }
        out.push('\n');
    }
}

impl GenConfig {
    fn render(&self) -> String {
        let mut out = String::new();
        if self.leading_comment {
            out.push_str("# generated config\n\n");
        }
        render_entries(&mut out, &self.top);
        let kw = self.extensions_keyword;
        if self.extensions_header {
            out.push_str(&format!("\n[{kw}]\n"));
        }
        for ext in &self.extensions {
            let comment = if ext.header_comment { " # cluster" } else { "" };
            out.push_str(&format!("  [{kw}.{}]{comment}\n", ext.name));
            render_entries(&mut out, &ext.entries);
            if let Some(config) = &ext.config {
                out.push_str(&format!("  [{kw}.{}.Config]\n", ext.name));
                render_entries(&mut out, config);
            }
            if ext.closing_comment {
                out.push_str("  # end of this extension\n");
            }
        }
        if !self.final_newline {
            out.pop();
        }
        out
    }
}

#[derive(Debug, Clone)]
enum GenEdit {
    Pin {
        key: String,
        value: String,
        replicas: Option<u64>,
        constraints: Vec<(String, bool)>,
    },
    Host {
        http: u16,
        https: u16,
    },
}

fn gen_edit() -> impl Strategy<Value = GenEdit> {
    prop_oneof![
        (
            "[a-zA-Z_][a-zA-Z0-9._-]{0,10}",
            "[A-Za-z0-9][A-Za-z0-9:._/-]{0,10}",
            prop::option::of(1u64..=1000),
            prop::collection::vec((constraint(), any::<bool>()), 0..3),
        )
            .prop_map(|(key, value, replicas, constraints)| GenEdit::Pin {
                key,
                value,
                replicas,
                constraints,
            }),
        (1u16..=65535, 1u16..=65535)
            .prop_filter("different ports", |(a, b)| a != b)
            .prop_map(|(http, https)| GenEdit::Host { http, https }),
    ]
}

/// A constraint as typed (maybe with blanks around the operator) and as written.
fn spaced(constraint: &str, spaces: bool) -> String {
    if spaces {
        constraint
            .replacen("==", " == ", 1)
            .replacen("!=", " != ", 1)
    } else {
        constraint.to_owned()
    }
}

impl GenEdit {
    fn edit(&self) -> Edit {
        match self {
            GenEdit::Pin {
                key,
                value,
                replicas,
                constraints,
            } => {
                let constraints: Vec<String> =
                    constraints.iter().map(|(c, s)| spaced(c, *s)).collect();
                Edit::pin_proxy(&format!("{key}={value}"), *replicas, &constraints)
                    .expect("generated flags are valid")
            }
            GenEdit::Host { http, https } => Edit::host_mode(i64::from(*http), i64::from(*https))
                .expect("generated ports are valid"),
        }
    }

    /// The keys the edit sets, in the order it sets them, with their new literals.
    fn sets(&self) -> Vec<(&'static str, String)> {
        let array = |items: &[String]| {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        match self {
            GenEdit::Pin {
                key,
                value,
                replicas,
                constraints,
            } => {
                let mut sets = vec![(
                    "ProxyConstraints",
                    array(&[format!("node.labels.{key}=={value}")]),
                )];
                if let Some(n) = replicas {
                    sets.push(("ProxyReplicas", n.to_string()));
                }
                if !constraints.is_empty() {
                    let written: Vec<String> = constraints.iter().map(|(c, _)| c.clone()).collect();
                    sets.push(("Constraints", array(&written)));
                }
                sets
            }
            GenEdit::Host { http, https } => vec![
                ("PublishMode", "\"host\"".to_owned()),
                ("PublishedPort", http.to_string()),
                ("PublishedSSLPort", https.to_string()),
            ],
        }
    }
}

/// Whether a value already equals `literal` (semantically: `'host'` equals `"host"`).
fn same(value: Option<&toml_edit::Value>, literal: &str) -> bool {
    let wanted: toml_edit::Value = literal.parse().unwrap();
    let normal = |v: &toml_edit::Value| -> String {
        match v {
            toml_edit::Value::String(s) => format!("{:?}", s.value()),
            toml_edit::Value::Array(a) => a
                .iter()
                .map(|v| format!("{:?}", v.as_str()))
                .collect::<Vec<_>>()
                .join(","),
            other => other.clone().decorated("", "").to_string(),
        }
    };
    value.is_some_and(|v| v.type_name() == wanted.type_name() && normal(v) == normal(&wanted))
}

fn with_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_owned()
    } else {
        format!("{text}\n")
    }
}

/// The property: for a generated config and edit, the edit succeeds, the output parses
/// with the new values, every other leaf and line is kept, and the edit is idempotent.
fn check_generated(
    config: &GenConfig,
    edit: &GenEdit,
    pick: prop::sample::Index,
    explicit: bool,
) -> Result<(), TestCaseError> {
    let text = config.render();
    let extension = pick.get(&config.extensions).name.clone();
    let requested = (explicit || config.extensions.len() > 1).then_some(extension.as_str());

    let parsed = InterlockConfig::parse("generated", &text);
    prop_assert!(
        parsed.is_ok(),
        "generator made invalid TOML: {:?}\n{}",
        parsed.err(),
        text
    );
    let parsed = parsed.unwrap();
    prop_assert_eq!(parsed.select_extension(requested), Ok(extension.clone()));
    let edited = edit.edit().edited_config(&parsed, &extension, None);
    prop_assert!(
        edited.is_ok(),
        "edit refused: {}\n{}",
        edited.err().unwrap(),
        text
    );
    let edited = edited.unwrap();
    let out = edited.config.text();

    // The output parses, with the new values.
    let out_doc = out.parse::<toml_edit::DocumentMut>();
    prop_assert!(
        out_doc.is_ok(),
        "output is not TOML: {:?}\n{}",
        out_doc.err(),
        out
    );
    let out_doc = out_doc.unwrap();
    let in_doc = common::parse(&text);
    let sets = edit.sets();
    for (key, literal) in &sets {
        prop_assert!(
            same(common::extension_value(&out_doc, &extension, key), literal),
            "{} is not {}:\n{}",
            key,
            literal,
            out
        );
    }

    // Every other leaf keeps its value (and its place).
    let keys: Vec<&str> = sets.iter().map(|(k, _)| *k).collect();
    let untouched = |doc| {
        common::leaves(doc)
            .into_iter()
            .filter(|(path, _)| !common::is_extension_key(path, &extension, &keys))
            .collect::<Vec<_>>()
    };
    prop_assert_eq!(untouched(&in_doc), untouched(&out_doc));

    // Line by line: existing keys keep their line with only the value replaced; absent
    // keys are added after the table's last key, indented like its first; every other
    // line is byte-identical.
    let changed: Vec<(&str, String)> = sets
        .iter()
        .filter(|(key, literal)| {
            let old = common::extension_value(&in_doc, &extension, key);
            old.is_some() && !same(old, literal)
        })
        .map(|(k, l)| (*k, l.clone()))
        .collect();
    let inserted: Vec<&str> = sets
        .iter()
        .filter(|(key, _)| common::extension_value(&in_doc, &extension, key).is_none())
        .map(|(k, _)| *k)
        .collect();
    prop_assert_eq!(
        with_newline(&common::without_key_lines(&out, &extension, &inserted)),
        with_newline(&common::replace_values(&text, &extension, &changed)),
        "input:\n{}\noutput:\n{}",
        text,
        out
    );
    let in_keys = common::extension_keys(&text, &extension);
    let out_keys = common::extension_keys(&out, &extension);
    let indent: String = in_keys[0]
        .prefix
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect();
    prop_assert_eq!(out_keys.len(), in_keys.len() + inserted.len());
    for (found, key) in out_keys[in_keys.len()..].iter().zip(&inserted) {
        prop_assert_eq!(&found.key, key);
        prop_assert_eq!(&found.prefix, &format!("{indent}{key} = "));
        prop_assert!(found.suffix.trim().is_empty(), "{:?}", found.suffix);
    }

    // The change records name exactly the changed and added keys.
    let mut expected_changes: Vec<String> = sets
        .iter()
        .filter(|(k, _)| changed.iter().any(|(c, _)| c == k) || inserted.contains(k))
        .map(|(k, _)| format!("Extensions.{extension}.{k}"))
        .collect();
    let mut reported: Vec<String> = edited.changes.iter().map(|c| c.key.clone()).collect();
    expected_changes.sort();
    reported.sort();
    prop_assert_eq!(reported, expected_changes);
    prop_assert_eq!(edited.changes.is_empty(), out == text);

    // Idempotent: the same edit on the output changes nothing.
    let again = edit
        .edit()
        .edited_config(
            &InterlockConfig::parse("out", &out).unwrap(),
            &extension,
            None,
        )
        .unwrap();
    prop_assert!(again.changes.is_empty(), "{:?}", again.changes);
    prop_assert_eq!(again.config.text(), out.clone());

    // `apply` of the output onto the input gives the output verbatim.
    let replace = Edit::Replace {
        source: "desired".into(),
        text: out.clone(),
        existing: None,
    };
    let applied = replace.edited_config(&parsed, &extension, None).unwrap();
    prop_assert_eq!(applied.config.text(), out);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn generated_configs_edit_cleanly(
        config in gen_config(),
        edit in gen_edit(),
        pick in any::<prop::sample::Index>(),
        explicit in any::<bool>(),
    ) {
        check_generated(&config, &edit, pick, explicit)?;
    }
}

// ---------------------------------------------------------------------------------------
// Secrets: hidden in diffs and change lists unless --show-secrets; the TOML output is whole

#[test]
fn secrets_are_redacted_in_diffs_unless_asked_for() {
    let base = [
        "--config-file",
        "fixtures/configs/valid/hand-edited.toml",
        "apply",
        "fixtures/configs/desired/hand-edited.toml",
    ];
    let hidden = run(&[&base[..], &["-o", "json"]].concat());
    hidden.assert_code(0);
    let report = hidden.json();
    let diff = report["config"]["diff"].as_str().unwrap();
    assert!(diff.contains(" \t\tAdminPass = \"<redacted>\"\n"), "{diff}");
    assert!(!diff.contains("s3cret-admin-pass"));
    let content = report["config"]["content"].as_str().unwrap();
    assert!(
        content.contains("AdminPass = \"s3cret-admin-pass\""),
        "content is the data itself"
    );

    let text = run(&base);
    text.assert_code(0);
    assert!(
        text.stdout.contains("AdminPass = \"s3cret-admin-pass\""),
        "the output file is whole"
    );
    assert!(
        !text.stderr.contains("s3cret-admin-pass"),
        "{}",
        text.stderr
    );

    let shown = run(&[&base[..], &["-o", "json", "--show-secrets"]].concat());
    shown.assert_code(0);
    assert!(
        shown.json()["config"]["diff"]
            .as_str()
            .unwrap()
            .contains(" \t\tAdminPass = \"s3cret-admin-pass\"\n")
    );
}

const EVERY_SHAPE: &str = "fixtures/configs/secrets/every-shape.toml";
const EVERY_SHAPE_ROTATED: &str = "fixtures/configs/secrets/every-shape-rotated.toml";

/// Each shape a secret takes in `fixtures/configs/secrets/every-shape.toml`: the key path in
/// the change list and the value's distinctive part, which changes in `-rotated`.
const SECRET_SHAPES: &[(&str, &str, &str)] = &[
    ("multi-line basic string", "TLSKey", "multiline-basic"),
    (
        "inline table",
        "Extensions.default.Registry.Token",
        "inline-table",
    ),
    (
        "array of inline tables",
        "Extensions.default.Upstreams",
        "array-of-inline-tables",
    ),
    (
        "basic string",
        "Extensions.default.Config.AdminPass",
        "basic",
    ),
    (
        "multi-line literal string",
        "Extensions.default.Config.SessionSecret",
        "multiline-literal",
    ),
    (
        "array of tables",
        "Extensions.default.Backends[0].Password",
        "array-of-tables",
    ),
];

/// Secrets that change, in every shape, are hidden in the diff (text and JSON) and the
/// change list, yet the diff and the list still show that each one changed;
/// `--show-secrets` shows them.
#[test]
fn changed_secrets_of_every_shape_are_hidden_in_diffs_and_change_lists() {
    let base = [
        "--config-file",
        EVERY_SHAPE,
        "--dry-run",
        "apply",
        EVERY_SHAPE_ROTATED,
    ];
    let text = run(&base);
    text.assert_code(0);
    let json = run(&[&base[..], &["-o", "json"]].concat());
    json.assert_code(0);
    snapshot("secrets__every_shape__text", &text);
    snapshot("secrets__every_shape__json", &json);
    assert!(!text.render().contains("SECRET-"), "{}", text.render());
    assert!(!json.render().contains("SECRET-"), "{}", json.render());

    let report = json.json();
    let diff = report["config"]["diff"].as_str().unwrap();
    assert_eq!(
        text.stderr,
        format!("{diff}Changes pending; nothing was changed.\n")
    );
    let changes = report["config"]["changes"].as_array().unwrap();
    for (shape, key, _) in SECRET_SHAPES {
        let change = changes
            .iter()
            .find(|c| c["key"] == *key)
            .unwrap_or_else(|| panic!("{shape}: {key} is listed as changed"));
        for side in ["before", "after"] {
            assert!(
                change[side].as_str().unwrap().contains("\"<redacted>\""),
                "{shape}: {change}"
            );
        }
    }
    // One removed and one added line per changed secret line: 6 shapes, plus ProxyReplicas.
    let count = |marker: char| {
        diff.lines()
            .filter(|l| l.starts_with(marker) && !l.starts_with("---") && !l.starts_with("+++"))
            .count()
    };
    assert_eq!((count('-'), count('+')), (7, 7), "{diff}");

    let shown = run(&[&base[..], &["-o", "json", "--show-secrets"]].concat());
    let report = shown.json();
    let diff = report["config"]["diff"].as_str().unwrap();
    let changes = report["config"]["changes"].to_string();
    for (shape, _, part) in SECRET_SHAPES {
        for version in ["1", "2"] {
            let secret = format!("SECRET-{part}-{version}");
            assert!(diff.contains(&secret), "{shape}: {secret} in\n{diff}");
            assert!(changes.contains(&secret), "{shape}: {secret} in {changes}");
        }
    }
}

/// `cluster add` then `cluster remove` on every valid fixture: the new table is added after
/// everything else, the file before it keeps every byte, and removing it restores the
/// input byte for byte. Plus what a user sees for a cluster added to the service-clusters
/// fixture, and the refusals.
#[test]
fn clusters_are_added_after_everything_else_and_removed_byte_for_byte() {
    for fixture in fixtures("valid") {
        let from = fixture.extension();
        let input = fixture.text();
        let added = run(&strs(&[
            "--config-file",
            &fixture.path,
            "cluster",
            "add",
            "edge",
            "--from",
            from,
            "--label",
            "role=edge",
            "--http",
            "17080",
            "--https",
            "17443",
            "--replicas",
            "2",
        ]));
        added.assert_code(0);
        let settings = InterlockConfig::parse("added", &added.stdout)
            .unwrap()
            .extension("edge")
            .unwrap();
        assert_eq!(
            settings.proxy_service_name, "ucp-interlock-proxy-edge",
            "{}",
            fixture.stem
        );
        assert_eq!(settings.proxy_constraints, ["node.labels.role==edge"]);
        assert_eq!(
            (settings.published_port, settings.proxy_replicas),
            (Some(17080), 2)
        );
        // Everything before the file's closing comment lines stays in front, byte for byte.
        let mut lines: Vec<&str> = input.lines().collect();
        while lines
            .last()
            .is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            lines.pop();
        }
        assert!(
            added.stdout.starts_with(&lines.join("\n")),
            "{}",
            fixture.stem
        );
        let path = common::manifest_dir().join(format!("target/cluster-{}.toml", fixture.stem));
        std::fs::write(&path, &added.stdout).unwrap();
        let removed = run(&strs(&[
            "--config-file",
            path.to_str().unwrap(),
            "cluster",
            "remove",
            "edge",
        ]));
        removed.assert_code(0);
        assert_eq!(
            removed.stdout, input,
            "{}: remove restores the input",
            fixture.stem
        );
    }

    let clusters = "fixtures/configs/valid/service-clusters.toml";
    let eu = run(&strs(&[
        "--config-file",
        clusters,
        "cluster",
        "add",
        "eu",
        "--from",
        "us-west",
        "--label",
        "region=eu",
        "--http",
        "11080",
        "--https",
        "11443",
    ]));
    snapshot("cluster__add_to_service_clusters", &eu);
    eu.assert_code(0);
    let taken = run(&strs(&[
        "--config-file",
        clusters,
        "cluster",
        "add",
        "dmz",
        "--label",
        "region=eu",
        "--http",
        "9080",
        "--https",
        "10443",
        "--extension",
        "us-east",
    ]));
    snapshot("cluster__refusals", &taken);
    taken.assert_code(4);
    assert!(taken.stdout.is_empty());
    let last = run(&strs(&[
        "--config-file",
        "fixtures/configs/valid/ucp-3.2.toml",
        "cluster",
        "remove",
        "default",
        "-o",
        "json",
    ]));
    last.assert_code(4);
    assert_eq!(last.json()["errors"][0]["code"], "last_extension");
}

//! Offline figures, each against a baseline in the same run, alternating the two so both
//! see the same machine load: start-up (`--version`) against the floor of starting any
//! process (`true`), and planning `host-mode` on a config with 200 extensions against the
//! same on the one-extension UCP 3.2 fixture.

use std::process::Command;

use crate::measure::{Samples, ratio};

const ROUNDS: usize = 30;
const FIXTURE: &str = "fixtures/configs/valid/ucp-3.2.toml";
const EXTENSIONS: usize = 200;

fn run_quietly(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .expect("the program starts");
    assert!(output.status.success(), "{program} {args:?} failed");
}

/// Times `a` and `b` alternately, `ROUNDS` times each.
fn side_by_side(a: impl Fn(), b: impl Fn()) -> (Samples, Samples) {
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        first.push(Samples::collect(1, &a));
        second.push(Samples::collect(1, &b));
    }
    (Samples::merge(first), Samples::merge(second))
}

/// The fixture with its `default` extension copied `count` times under other names, each
/// with its own proxy service.
fn many_extensions(fixture: &str, count: usize) -> String {
    let start = fixture
        .find("[Extensions.default]")
        .expect("an extension table");
    let table = &fixture[start..];
    let mut text = fixture.to_owned();
    for i in 1..count {
        text.push('\n');
        text.push_str(
            &table
                .replace("Extensions.default", &format!("Extensions.ext-{i}"))
                .replace(
                    "\"ucp-interlock-proxy\"",
                    &format!("\"ucp-interlock-proxy-{i}\""),
                ),
        );
    }
    text
}

pub fn run() {
    let binary = env!("CARGO_BIN_EXE_interlockctl");
    let (tool, floor) = side_by_side(
        || run_quietly(binary, &["--version"]),
        || run_quietly("true", &[]),
    );
    println!("start-up   interlockctl --version: {}", tool.summary());
    println!("           true (process floor):   {}", floor.summary());
    println!("           ratio: {:.2}x the floor", ratio(&tool, &floor));

    let dir = tempfile::tempdir().expect("a temp dir");
    let fixture = std::fs::read_to_string(FIXTURE).expect("the fixture reads");
    let big = dir.path().join("many-extensions.toml");
    std::fs::write(&big, many_extensions(&fixture, EXTENSIONS)).expect("writes");
    let plan = |file: &str, extension: &str| {
        run_quietly(
            binary,
            &[
                "--config-file",
                file,
                "--extension",
                extension,
                "-o",
                "json",
                "host-mode",
                "--http",
                "7080",
                "--https",
                "7443",
            ],
        );
    };
    let big = big.to_str().expect("a UTF-8 path");
    let (many, one) = side_by_side(|| plan(big, "ext-150"), || plan(FIXTURE, "default"));
    println!(
        "planning   host-mode on {EXTENSIONS} extensions: {}",
        many.summary()
    );
    println!("           host-mode on 1 extension:    {}", one.summary());
    println!("           ratio: {:.2}x", ratio(&many, &one));
}

//! interlockctl's benchmarks: `cargo bench` runs every section, `cargo bench -- NAME...`
//! only the named ones. Each section measures side by side in one run and prints its
//! figures with their spread (median, min, max), never a pass/fail verdict: the targets
//! live here and in the README's Performance section, not in timed test assertions.

mod lab;
#[path = "../lab_support/mod.rs"]
mod lab_support;
mod labels;
mod measure;
mod offline;

/// One benchmark section: its name on the command line and what it runs.
struct Section {
    name: &'static str,
    about: &'static str,
    run: fn(),
}

const SECTIONS: &[Section] = &[
    Section {
        name: "offline",
        about: "start-up against a process floor; planning on 200 extensions against 1",
        run: offline::run,
    },
    Section {
        name: "e2e",
        about: "lab: pin-proxy + host-mode and migrate against the docker CLI runbook; proxy task re-creations; service gaps; overhead; memory",
        run: lab::e2e,
    },
    Section {
        name: "api",
        about: "lab: engine calls and bytes per command with 10 and 300 extra services",
        run: lab::api,
    },
    Section {
        name: "labels",
        about: "`labels check` over 10,000 labels: the library check, and one run of the binary",
        run: labels::run,
    },
];

fn main() {
    // `cargo bench` passes `--bench`; any other word selects sections by name.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let unknown: Vec<&String> = wanted
        .iter()
        .filter(|name| SECTIONS.iter().all(|s| s.name != name.as_str()))
        .collect();
    if !unknown.is_empty() {
        let names: Vec<&str> = SECTIONS.iter().map(|s| s.name).collect();
        eprintln!(
            "unknown section(s) {unknown:?}; sections: {}",
            names.join(", ")
        );
        std::process::exit(2);
    }
    for section in SECTIONS
        .iter()
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s.name))
    {
        println!("== {}: {}", section.name, section.about);
        (section.run)();
        println!();
    }
}

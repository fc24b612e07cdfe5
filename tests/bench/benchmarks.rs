//! interlockctl's benchmarks: `cargo bench` runs every section, `cargo bench -- NAME...`
//! only the named ones. Each section measures side by side in one run and prints its
//! figures with their spread (median, min, max), never a pass/fail verdict: the targets
//! live here and in the README's Performance section, not in timed test assertions.

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
        about: "start-up (--version) against `true`, as a floor for process start",
        run: offline::run,
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

//! `labels check` over 10,000 labels against its 100 ms target: the library check alone
//! (1,000 services of 10 labels, one in ten of them invalid), and one run of the binary
//! over the same labels in a generated stack file (process start and YAML parsing
//! included).

use std::process::Command;
use std::time::Duration;

use interlockctl::interlock::labels::{self, Facts, Label, LabelSource, NetworkName, Origin};

use crate::measure::Samples;

const SERVICES: usize = 1_000;
const TARGET: Duration = Duration::from_millis(100);

/// The 10 labels of service `n`: Interlock's, a few others, and every tenth one broken.
fn service_labels(n: usize) -> Vec<(String, String)> {
    let mut labels = vec![
        (
            "com.docker.lb.hosts".into(),
            format!("app{n}.example.com,www.app{n}.example.com"),
        ),
        ("com.docker.lb.port".into(), "8080".into()),
        ("com.docker.lb.context_root".into(), format!("/app{n}")),
        ("com.docker.lb.context_root_rewrite".into(), "true".into()),
        (
            "com.docker.lb.ssl_cert".into(),
            format!("app{n}.example.com.cert"),
        ),
        (
            "com.docker.lb.ssl_key".into(),
            format!("app{n}.example.com.key"),
        ),
        (
            "com.docker.lb.sticky_session_cookie".into(),
            "app_session".into(),
        ),
        ("com.docker.lb.network".into(), format!("stack{n}_front")),
        ("com.docker.ucp.access.label".into(), "/prod/apps".into()),
        ("com.example.team".into(), format!("team-{}", n % 17)),
    ];
    if n.is_multiple_of(10) {
        labels[0].1.push_str(";evil");
        labels[2].0 = "com.docker.lb.context_rot".into();
    }
    labels
}

fn check_all(services: &[Vec<(String, String)>], networks: &[NetworkName]) -> usize {
    let facts = Facts {
        origin: Origin::Swarm,
        networks: Some(networks),
        clusters: Ok(&[]),
    };
    services
        .iter()
        .map(|pairs| {
            let labels: Vec<Label<'_>> = pairs
                .iter()
                .map(|(key, value)| Label {
                    key,
                    value,
                    source: LabelSource::Service,
                })
                .collect();
            labels::check(&labels, &facts).len()
        })
        .sum()
}

fn stack_file(services: &[Vec<(String, String)>]) -> String {
    let mut text = String::from("version: \"3.5\"\nservices:\n");
    for (n, pairs) in services.iter().enumerate() {
        text.push_str(&format!(
            "  app{n}:\n    image: app\n    deploy:\n      labels:\n"
        ));
        for (key, value) in pairs {
            text.push_str(&format!("        {key}: \"{value}\"\n"));
        }
        text.push_str("    networks: [front]\n");
    }
    text.push_str("networks:\n  front:\n");
    text
}

fn report(name: &str, samples: &Samples) {
    println!("{name}{}", samples.summary());
    println!(
        "          {:.3} of the {} ms target",
        samples.median().as_secs_f64() / TARGET.as_secs_f64(),
        TARGET.as_millis()
    );
}

pub fn run() {
    let services: Vec<Vec<(String, String)>> = (0..SERVICES).map(service_labels).collect();
    let total: usize = services.iter().map(Vec::len).sum();
    let networks = [NetworkName::InStack("front".into())];
    let mut findings = 0;
    let library = Samples::collect(30, || findings = check_all(&services, &networks));
    println!("{total} labels, {SERVICES} services, {findings} findings per run");
    report("library   labels::check:             ", &library);

    let dir = std::env::temp_dir().join(format!("interlockctl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp directory");
    let path = dir.join("stack.yml");
    std::fs::write(&path, stack_file(&services)).expect("the stack file is written");
    let binary = env!("CARGO_BIN_EXE_interlockctl");
    let cli = Samples::collect(10, || {
        let output = Command::new(binary)
            .args(["labels", "check", "--stack"])
            .arg(&path)
            .args(["-o", "json"])
            .output()
            .expect("the binary runs");
        assert_eq!(output.status.code(), Some(4), "the broken labels exit 4");
    });
    report("binary    labels check --stack FILE: ", &cli);
    let _ = std::fs::remove_dir_all(&dir);
}

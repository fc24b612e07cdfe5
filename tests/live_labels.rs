//! `labels check` against the real lab swarm (see `tests/lab_support`): services created
//! with good and bad `com.docker.lb.*` labels, checked all at once and by name, with the
//! network and service-cluster rules read from the engine and the live Interlock config.

mod lab_support;

use lab_support::{code, json, lab};
use serde_json::Value;

/// The lab's overlay network (the Interlock services' own).
const NETWORK: &str = "ucp-interlock";

fn findings(report: &Value) -> Vec<(String, String, String, String)> {
    report["findings"]
        .as_array()
        .expect("a findings array")
        .iter()
        .map(|f| {
            let text = |key: &str| f[key].as_str().unwrap_or("-").to_owned();
            (
                text("service"),
                text("label"),
                text("severity"),
                text("code"),
            )
        })
        .collect()
}

fn strings(rows: &[(&str, &str, &str, &str)]) -> Vec<(String, String, String, String)> {
    rows.iter()
        .map(|(a, b, c, d)| ((*a).into(), (*b).into(), (*c).into(), (*d).into()))
        .collect()
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn labels_check_on_the_lab_swarm() {
    let lab = lab();
    lab.create_idle_service(
        "lab-web",
        &[
            "com.docker.lb.hosts=web.lab.example",
            "com.docker.lb.port=80",
            "com.docker.lb.network=ucp-interlock",
        ],
        &[NETWORK],
    );
    lab.create_idle_service(
        "lab-api",
        &[
            "com.docker.lb.hosts=api.lab.example;evil",
            "com.docker.lb.prot=8080",
            "com.docker.lb.network=ucp-interlock",
        ],
        &[],
    );
    lab.create_idle_service(
        "lab-cluster",
        &[
            "com.docker.lb.hosts=cluster.lab.example",
            "com.docker.lb.port=80",
            "com.docker.lb.service_cluster=us-east",
        ],
        &[],
    );

    // Every service of the swarm: the Interlock services carry no com.docker.lb.* labels.
    let all = lab.interlockctl(&["labels", "check", "-o", "json"]);
    assert_eq!(code(&all), 4);
    let report = json(&all);
    assert_eq!(
        findings(&report),
        strings(&[
            (
                "lab-api",
                "com.docker.lb.hosts",
                "error",
                "unsafe_character"
            ),
            (
                "lab-api",
                "com.docker.lb.network",
                "error",
                "network_not_attached"
            ),
            ("lab-api", "com.docker.lb.prot", "error", "unknown_label"),
            ("lab-api", "-", "warning", "missing_port"),
            (
                "lab-cluster",
                "com.docker.lb.service_cluster",
                "error",
                "unknown_service_cluster"
            ),
        ])
    );
    assert_eq!(report["status"], "refused");
    assert_eq!(
        report["errors"][0]["message"],
        "labels check of 6 service(s): 4 errors, 1 warning, 0 not checked"
    );

    // By name, in text: one line per finding, read from the real engine.
    let text = lab.interlockctl(&["labels", "check", "lab-api", "lab-cluster"]);
    assert_eq!(code(&text), 4);
    assert_eq!(
        text.stdout,
        "error: service lab-api (Spec.Labels): com.docker.lb.hosts=\"api.lab.example;evil\": contains `;`, which ends an nginx directive: in nginx.conf it would stop the proxy from loading its config, or inject directives; hint: remove it; the value must be comma-separated DNS names, each with an optional `:PORT` and an optional leading `*.`, like `app.example.com,*.example.org`\n\
         error: service lab-api (Spec.Labels): com.docker.lb.network=\"ucp-interlock\": the service is not attached to network `ucp-interlock` (it is attached to no network); hint: name a network the service is attached to, or attach it to this one\n\
         error: service lab-api (Spec.Labels): com.docker.lb.prot=\"8080\": Interlock has no label `com.docker.lb.prot`; did you mean `com.docker.lb.port`?; hint: rename it to `com.docker.lb.port`\n\
         warning: service lab-api: is routed but has no `com.docker.lb.port`: Interlock does not know which port to send traffic to; hint: add `com.docker.lb.port` with the port the service listens on\n\
         error: service lab-cluster (Spec.Labels): com.docker.lb.service_cluster=\"us-east\": no extension of the live Interlock config has ServiceCluster = \"us-east\" (it has: none); hint: use the ServiceCluster of an existing extension, or add the extension first\n"
    );

    // The good service alone passes: its network label names the network the engine
    // lists for it (the spec holds only the network's ID).
    let web = lab.interlockctl(&["labels", "check", "lab-web", "-o", "json"]);
    assert_eq!(code(&web), 0);
    assert_eq!(json(&web)["findings"], serde_json::json!([]));

    // Without a live config to compare with, a cluster is not checked, and that is no error.
    let no_core = lab.interlockctl(&[
        "--service",
        "lab-no-core",
        "labels",
        "check",
        "lab-cluster",
        "-o",
        "json",
    ]);
    assert_eq!(code(&no_core), 0);
    assert_eq!(
        findings(&json(&no_core)),
        strings(&[(
            "lab-cluster",
            "com.docker.lb.service_cluster",
            "not_checked",
            "service_cluster_not_checked"
        )])
    );

    // A name the swarm does not have is refused.
    let unknown = lab.interlockctl(&["labels", "check", "lab-web", "lab-nope", "-o", "json"]);
    assert_eq!(code(&unknown), 4);
    assert_eq!(json(&unknown)["errors"][0]["code"], "service_not_found");
}

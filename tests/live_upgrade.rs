//! End-to-end test of `upgrade` on the lab, its fixture on Interlock's own image names
//! (`LAB_INTERLOCK_IMAGES=names` in `tests/lab/lab.sh`: the stand-in image tagged on every node
//! as `docker/ucp-interlock*:3.0.14`, `mirantis/ucp-interlock*:3.8.0` and `...:3.8.1`, whose
//! core exits at once; engines that never pull). The stand-in core puts the extension back on
//! the image its config names, as the real core reconciles it, so an upgrade that forgot the
//! config's image keys would be caught by the run's second look.

mod lab_support;

use lab_support::{CONF, CORE, Lab, PROXY, error_codes, lab};
use std::time::Instant;

const EXTENSION: &str = "ucp-interlock-extension";
const SERVICES: [&str; 3] = [CORE, EXTENSION, PROXY];

/// The image a service's spec names.
fn image(lab: &Lab, service: &str) -> String {
    lab.spec(service)["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .expect("an image")
        .to_owned()
}

/// The images the running tasks of a service run.
fn task_images(lab: &Lab, service: &str) -> Vec<String> {
    lab.running_tasks(service, "{{.Image}}")
}

/// Asserts each service and every one of its running tasks run `org/<service>:version`.
fn assert_on(lab: &Lab, org: &str, version: &str) {
    for service in SERVICES {
        let wanted = format!("{org}/{service}:{version}");
        assert_eq!(image(lab, service), wanted, "{service}'s spec");
        let tasks = task_images(lab, service);
        assert!(
            !tasks.is_empty() && tasks.iter().all(|t| *t == wanted),
            "{service}'s tasks run {tasks:?}, not {wanted}"
        );
    }
}

/// Refusals first (nothing changed), then after the seed's migration: `upgrade` moves core,
/// extension and proxy to the new images and the config's image keys with them, the proxy
/// still verified in host mode; a re-run changes nothing; `rollback` returns every image; an
/// upgrade whose core cannot start is put back, images and config, on every service.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn upgrade_moves_every_image_and_rollback_and_a_failed_core_put_them_back() {
    let lab = lab();
    let started = Instant::now();
    // The default fixture runs the stand-in by its image ID: not an Interlock image.
    let refused = lab
        .interlockctl(&["upgrade", "--to", "3.8.0", "--yes", "-o", "json"])
        .assert_report(4);
    assert_eq!(error_codes(&refused), ["not_interlock_image"; 3]);
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("ucp-interlock runs sha256:")),
        "{refused}"
    );
    let invalid = lab
        .interlockctl(&["upgrade", "--to", "3.8.0!", "--yes", "-o", "json"])
        .assert_report(4);
    assert_eq!(error_codes(&invalid), ["invalid_tag"]);
    assert_eq!(lab.configs(), [format!("{CONF}-1")], "nothing was changed");

    lab_support::reset_with_interlock_images();
    lab.runbook();
    let migrated = lab.core_config();
    let upgrade = ["upgrade", "--to", "3.8.0", "--repository", "mirantis"];
    lab.interlockctl(&[&upgrade[..], &["--check"]].concat())
        .assert_code(3);
    assert_on(&lab, "docker", "3.0.14");

    let report = lab
        .interlockctl(&[&upgrade[..], &["--yes", "-o", "json"]].concat())
        .assert_report(0);
    assert_eq!(report["status"], "applied");
    assert_on(&lab, "mirantis", "3.8.0");
    let config = lab.config_text(&lab.core_config());
    for key in [
        "Image = \"mirantis/ucp-interlock-extension:3.8.0\"",
        "ProxyImage = \"mirantis/ucp-interlock-proxy:3.8.0\"",
    ] {
        assert!(config.contains(key), "{key} in\n{config}");
    }
    lab.settle();
    // Exit 0 with --probe: no error finding, every proxy node answers on its host port.
    let status = lab
        .interlockctl(&["status", "--probe", "-o", "json"])
        .assert_report(0);
    assert_eq!(status["state"]["problems"], serde_json::json!([]));
    assert_eq!(status["state"]["proxy"]["publish_mode"], "host");
    assert!(
        status["state"]["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .all(|v| v["version"] == "3.8.0"),
        "{status}"
    );

    let again = lab
        .interlockctl(&[&upgrade[..], &["--yes", "-o", "json"]].concat())
        .assert_report(0);
    assert_eq!(
        (&again["status"], &again["changed"]),
        (&"no_changes".into(), &false.into())
    );

    lab.interlockctl(&["rollback", "--yes"]).assert_code(0);
    assert_on(&lab, "docker", "3.0.14");
    assert_eq!(lab.core_config(), migrated);

    let failed = lab
        .interlockctl(&[
            "upgrade",
            "--to",
            "3.8.1",
            "--repository",
            "mirantis",
            "--yes",
            "-o",
            "json",
        ])
        .assert_report(5);
    assert_eq!(failed["status"], "rolled_back", "{failed}");
    assert_on(&lab, "docker", "3.0.14");
    assert_eq!(
        lab.core_config(),
        migrated,
        "the core is back on its config"
    );
    lab_support::report(&format!(
        "live_upgrade: {:.1} s on the lab after its first reset",
        started.elapsed().as_secs_f64()
    ));
}

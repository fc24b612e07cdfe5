//! How interlockctl reaches the lab's engine and what it says about it, end to end (see
//! `tests/lab_support`): `show` on the manager's socket with `-q` and `-v`, and the
//! manager's TLS listener (`lab.sh` gives the manager's engine one, with a CA and a client
//! certificate of its own) reached the ways an operator does: a sourced client bundle, a
//! context made by `docker context create`, and a CA that is not the engine's, refused.

mod lab_support;

use std::path::Path;
use std::process::Command;

use lab_support::{CONF, Lab, PIN_PROXY, harness, lab, manifest_dir};

/// The lab's fixture config, as `show` must print it.
fn fixture_config() -> String {
    std::fs::read_to_string(manifest_dir().join("tests/lab/core-config.toml"))
        .expect("the fixture config reads")
}

/// The TLS address without its scheme, as messages name it.
fn tls_addr(lab: &Lab) -> &str {
    lab.tls_host
        .strip_prefix("tcp://")
        .expect("LAB_TLS_HOST is a tcp:// address")
}

/// `show` prints the live config on stdout and its name on stderr; `-q` keeps stderr
/// empty (a dry run too), `-v` names the engine, what selected it, each API call and the
/// totals; `-o json` carries the config as `config.content`.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn show_prints_the_config_and_its_name_and_q_and_v_say_less_and_more() {
    let lab = lab();
    let conf1 = format!("{CONF}-1");
    let show = lab.interlockctl(&["show"]);
    show.assert_code(0);
    assert_eq!(show.stdout, fixture_config());
    assert_eq!(show.stderr, format!("{conf1}\n"));

    let quiet = lab.interlockctl(&["-q", "show"]);
    quiet.assert_code(0);
    assert_eq!(
        (quiet.stdout.as_str(), quiet.stderr.as_str()),
        (show.stdout.as_str(), "")
    );
    let quiet_plan = lab.interlockctl(&["pin-proxy", "--label", "role=dtr", "--dry-run", "-q"]);
    quiet_plan.assert_code(0);
    assert_eq!(
        (quiet_plan.stdout.as_str(), quiet_plan.stderr.as_str()),
        ("", "")
    );

    let verbose = lab.interlockctl(&["show", "-v"]);
    verbose.assert_code(0);
    assert_eq!(verbose.stdout, show.stdout);
    let lines: Vec<&str> = verbose.stderr.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "engine {} (context default, from DOCKER_HOST)",
            lab.docker_host
        )
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("api: GET /version -> 200 (")),
        "each API call: {lines:?}"
    );
    assert!(lines.contains(&conf1.as_str()), "{lines:?}");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("engine: ") && l.contains(" requests over ")),
        "the totals come last: {lines:?}"
    );

    let json = lab.interlockctl(&["show", "-o", "json"]).assert_report(0);
    assert_eq!(json["config"]["current"], conf1);
    assert_eq!(json["config"]["content"], fixture_config());
}

/// A sourced UCP client bundle: `DOCKER_HOST=tcp://...`, `DOCKER_TLS_VERIFY=1` and
/// `DOCKER_CERT_PATH` with `ca.pem`, `cert.pem`, `key.pem`. `-v` says TLS is verified, and
/// a whole `pin-proxy` (reads, writes, the event stream of the waits) runs over it.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_client_bundle_environment_connects_over_tls() {
    let lab = lab();
    let bundle = |args: &[&str]| {
        let run = lab
            .interlockctl_command(args)
            .env("DOCKER_HOST", &lab.tls_host)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", &lab.cert_path)
            .run();
        eprintln!("{}", run.render());
        run
    };
    let show = bundle(&["show", "-v"]);
    show.assert_code(0);
    assert_eq!(show.stdout, fixture_config());
    assert_eq!(
        show.stderr.lines().next(),
        Some(
            format!(
                "engine {} (TLS) (context default, from DOCKER_HOST)",
                lab.tls_host
            )
            .as_str()
        )
    );
    let pinned = bundle(&[&PIN_PROXY[..], &["-o", "json"]].concat()).assert_report(0);
    assert_eq!(pinned["status"], "applied");
    assert_eq!(lab.core_config(), format!("{CONF}-2"));
}

/// A context made with `docker context create` from the same files, in a docker config
/// directory of its own (`DOCKER_CONFIG`): chosen by `--context`, by `DOCKER_CONTEXT`, and as
/// the current context after `docker context use`.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_docker_context_made_by_the_docker_cli_connects_over_tls() {
    let lab = lab();
    let config = tempfile::tempdir().unwrap();
    let file = |name: &str| lab.cert_path.join(name).display().to_string();
    let docker = |args: &[&str]| {
        let mut docker = Command::new("docker");
        docker
            .env("DOCKER_CONFIG", config.path())
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT");
        lab_support::docker_cli(docker, args)
    };
    let endpoint = format!(
        "host={},ca={},cert={},key={}",
        lab.tls_host,
        file("ca.pem"),
        file("cert.pem"),
        file("key.pem")
    );
    docker(&["context", "create", "lab-tls", "--docker", &endpoint]);
    let show = |env: &[(&str, &str)], args: &[&str]| {
        // Without the lab's DOCKER_HOST: a context is chosen only when no host is given.
        let run = env
            .iter()
            .fold(
                harness::interlockctl(&[&["show", "-v"], args].concat())
                    .env("DOCKER_CONFIG", config.path()),
                |run, (key, value)| run.env(key, value),
            )
            .run();
        eprintln!("{}", run.render());
        run.assert_code(0);
        assert_eq!(run.stdout, fixture_config());
        run.stderr.lines().next().unwrap_or_default().to_owned()
    };
    let engine = |chosen_by: &str| {
        format!(
            "engine {} (TLS) (context lab-tls, from {chosen_by})",
            lab.tls_host
        )
    };
    assert_eq!(show(&[], &["--context", "lab-tls"]), engine("--context"));
    assert_eq!(
        show(&[("DOCKER_CONTEXT", "lab-tls")], &[]),
        engine("DOCKER_CONTEXT")
    );
    docker(&["context", "use", "lab-tls"]);
    assert_eq!(show(&[], &[]), engine("currentContext in config.json"));
}

/// A bundle whose `ca.pem` is another CA's: the engine's certificate is not trusted, the
/// run fails with exit 1 before reading anything, and the message names the address, the
/// TLS handshake and the reason; the hint names the settings to check.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_wrong_ca_is_refused_with_a_clear_error() {
    let lab = lab();
    let bundle = tempfile::tempdir().unwrap();
    write_other_ca(&bundle.path().join("ca.pem"));
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(lab.cert_path.join(file), bundle.path().join(file)).unwrap();
    }
    let run = lab
        .interlockctl_command(&["show", "-o", "json"])
        .env("DOCKER_HOST", &lab.tls_host)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", bundle.path())
        .run();
    eprintln!("{}", run.render());
    let report = run.assert_report(1);
    assert_eq!(report["status"], "failed");
    let error = &report["errors"][0];
    assert_eq!(error["code"], "engine_unreachable", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("TLS handshake with {}", tls_addr(&lab)))
            && message.contains("invalid peer certificate: UnknownIssuer"),
        "{message}"
    );
    assert!(
        error["hint"].as_str().unwrap().contains("DOCKER_HOST"),
        "{error}"
    );
    assert!(
        run.stderr.contains(&format!("error: {message}")),
        "{}",
        run.render()
    );
}

/// A CA certificate that signed nothing the lab uses.
fn write_other_ca(path: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "not the lab's CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(path, ca.pem()).unwrap();
}

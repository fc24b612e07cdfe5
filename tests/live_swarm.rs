//! End-to-end tests against the real multi-node lab swarm that `tests/lab/lab.sh` starts
//! (one dockerd per node, workers in network namespaces). They are part of the default
//! suite: the real engine is what users run against. Tests that change the swarm hold one
//! lock and start from `lab.sh reset`.
//!
//! Set `INTERLOCKCTL_SKIP_LAB=1` to skip them on a machine where the lab cannot run (it
//! needs root); they then say so loudly instead of passing silently.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

const CORE: &str = "ucp-interlock";
const PROXY: &str = "ucp-interlock-proxy";
const CONF: &str = "com.docker.ucp.interlock.conf";

/// The lab's addresses and socket, from the env file `lab.sh up` writes.
struct Lab {
    docker_host: String,
    dtr_addrs: Vec<String>,
    other_addrs: Vec<String>,
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lab_script() -> PathBuf {
    manifest_dir().join("tests/lab/lab.sh")
}

fn run_script(args: &[&str]) {
    let status = Command::new("bash")
        .arg(lab_script())
        .args(args)
        .status()
        .expect("bash runs");
    assert!(status.success(), "tests/lab/lab.sh {args:?} failed");
}

fn start_lab() -> Lab {
    run_script(&["up"]);
    let env = std::fs::read_to_string("/run/interlockctl-lab/env")
        .expect("lab.sh up writes its env file");
    let value = |key: &str| -> String {
        env.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key} missing from the lab env file"))
            .trim_matches('"')
            .to_owned()
    };
    let words = |key: &str| {
        value(key)
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let dtr_addrs = words("LAB_DTR_ADDRS");
    let other_addrs = words("LAB_NODE_ADDRS")
        .into_iter()
        .filter(|a| !dtr_addrs.contains(a))
        .collect();
    Lab {
        docker_host: value("DOCKER_HOST"),
        dtr_addrs,
        other_addrs,
    }
}

/// The lab, started once per test process, and held exclusively by one test at a time.
fn lab() -> Option<MutexGuard<'static, Lab>> {
    if std::env::var_os("INTERLOCKCTL_SKIP_LAB").is_some() {
        eprintln!("SKIPPED: INTERLOCKCTL_SKIP_LAB is set; this end-to-end test did not run");
        return None;
    }
    static LAB: OnceLock<Mutex<Lab>> = OnceLock::new();
    let guard = LAB
        .get_or_init(|| Mutex::new(start_lab()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    run_script(&["reset"]);
    Some(guard)
}

impl Lab {
    fn interlockctl(&self, args: &[&str]) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_interlockctl"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DOCKER_HOST", &self.docker_host)
            .env("NO_COLOR", "1")
            .env("HOME", manifest_dir().join("target"))
            .current_dir(manifest_dir())
            .output()
            .expect("interlockctl runs");
        eprintln!(
            "$ interlockctl {}\n[exit {:?}]\n{}",
            args.join(" "),
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn docker(&self, args: &[&str]) -> String {
        let output = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.docker_host)
            .output()
            .expect("docker runs");
        assert!(
            output.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    fn inspect(&self, service: &str) -> Value {
        let json: Value =
            serde_json::from_str(&self.docker(&["service", "inspect", service])).expect("json");
        json[0].clone()
    }

    fn configs(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .docker(&["config", "ls", "--format", "{{.Name}}"])
            .lines()
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    fn core_config(&self) -> String {
        self.inspect(CORE)["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"]
            .as_array()
            .expect("configs")
            .iter()
            .find(|c| c["File"]["Name"] == "/config.toml")
            .expect("a /config.toml config")["ConfigName"]
            .as_str()
            .expect("name")
            .to_owned()
    }

    fn versions(&self) -> (u64, u64) {
        let version = |s: &str| {
            self.inspect(s)["Version"]["Index"]
                .as_u64()
                .expect("version")
        };
        (version(CORE), version(PROXY))
    }

    /// The nodes running the proxy, as addresses.
    fn proxy_node_addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self
            .docker(&[
                "service",
                "ps",
                PROXY,
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Node}}",
            ])
            .lines()
            .map(|node| self.docker(&["node", "inspect", node, "--format", "{{.Status.Addr}}"]))
            .collect();
        addrs.sort();
        addrs
    }

    fn runbook(&self) {
        assert_eq!(
            code(&self.interlockctl(&["pin-proxy", "--label", "role=dtr", "--yes"])),
            0
        );
        assert_eq!(
            code(&self.interlockctl(&["host-mode", "--http", "7080", "--https", "7443", "--yes"])),
            0
        );
    }
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited")
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON document")
}

/// GET / from `addr:port`, retried for a few seconds while a host port comes up.
fn http_get(addr: &str, port: u16) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let target = format!("{addr}:{port}").parse().expect("socket address");
            let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(3)))?;
            stream.write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")?;
            let mut body = String::new();
            stream.read_to_string(&mut body)?;
            Ok(body)
        })();
        match attempt {
            Ok(body) if body.contains("interlock-proxy-standin") => return Some(body),
            _ if Instant::now() > deadline => return None,
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

#[test]
fn runbook_end_to_end_then_reruns_change_nothing_and_a_bad_config_rolls_back() {
    let Some(lab) = lab() else { return };
    lab.runbook();

    assert_eq!(lab.core_config(), format!("{CONF}-3"));
    assert_eq!(
        lab.configs(),
        [1, 2, 3].map(|n| format!("{CONF}-{n}")).to_vec(),
        "the old configs still exist"
    );
    let mut dtr = lab.dtr_addrs.clone();
    dtr.sort();
    assert_eq!(
        lab.proxy_node_addrs(),
        dtr,
        "one proxy task on each role=dtr node, none elsewhere"
    );
    for addr in &lab.dtr_addrs {
        assert!(
            http_get(addr, 7080).is_some(),
            "the proxy answers on {addr}:7080"
        );
    }
    for addr in &lab.other_addrs {
        assert!(
            TcpStream::connect_timeout(
                &format!("{addr}:7080").parse().unwrap(),
                Duration::from_secs(1)
            )
            .is_err()
        );
    }
    let core_ports = &lab.inspect(CORE)["Spec"]["EndpointSpec"]["Ports"];
    assert_eq!(core_ports[0]["TargetPort"], 8080);
    assert_eq!(core_ports[0]["PublishMode"], "host");

    let before = (lab.versions(), lab.configs());
    for args in [
        &["pin-proxy", "--label", "role=dtr", "--yes", "-o", "json"][..],
        &[
            "host-mode",
            "--http",
            "7080",
            "--https",
            "7443",
            "--yes",
            "-o",
            "json",
        ],
    ] {
        let output = lab.interlockctl(args);
        assert_eq!(code(&output), 0);
        assert_eq!(json(&output)["status"], "no_changes");
        assert_eq!(json(&output)["config"]["next"], Value::Null);
    }
    assert_eq!(
        (lab.versions(), lab.configs()),
        before,
        "re-runs change nothing"
    );

    // A config the Interlock core cannot load: Swarm rolls the core back, we exit 5.
    let live = lab.interlockctl(&["show"]);
    let bad = String::from_utf8(live.stdout)
        .unwrap()
        .replace("PollInterval = \"3s\"", "PollInterval = \"soon\"");
    let file = manifest_dir().join("target/unloadable-config.toml");
    std::fs::write(&file, bad).unwrap();
    let output = lab.interlockctl(&["apply", file.to_str().unwrap(), "--yes", "-o", "json"]);
    assert_eq!(code(&output), 5);
    let report = json(&output);
    assert_eq!(report["status"], "rolled_back");
    assert_eq!(report["errors"][0]["code"], "rolled_back");
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("on ilab-mgr: failed (task: non-zero exit (1))"),
        "names the failed core task: {message}"
    );
    assert_eq!(
        lab.core_config(),
        format!("{CONF}-3"),
        "the core is back on its previous config"
    );
    for addr in &lab.dtr_addrs {
        assert!(
            http_get(addr, 7080).is_some(),
            "the proxy still answers on {addr}:7080"
        );
    }
}

#[test]
fn dry_run_and_check_change_nothing() {
    let Some(lab) = lab() else { return };
    let before = (lab.versions(), lab.configs());
    let dry = lab.interlockctl(&[
        "pin-proxy",
        "--label",
        "role=dtr",
        "--dry-run",
        "-o",
        "json",
    ]);
    assert_eq!(code(&dry), 0);
    let report = json(&dry);
    assert_eq!(
        (report["status"].as_str(), report["dry_run"].as_bool()),
        (Some("planned"), Some(true))
    );
    assert_eq!(report["config"]["next"], format!("{CONF}-2"));
    let kinds: Vec<&str> = report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["create_config", "update_service", "update_service"]);
    assert_eq!(
        code(&lab.interlockctl(&["host-mode", "--http", "7080", "--https", "7443", "--check"])),
        3
    );
    assert_eq!(
        (lab.versions(), lab.configs()),
        before,
        "--dry-run and --check change nothing"
    );
}

#[test]
fn without_a_terminal_and_without_yes_nothing_changes() {
    let Some(lab) = lab() else { return };
    let before = (lab.versions(), lab.configs());
    let output = lab.interlockctl(&["pin-proxy", "--label", "role=dtr"]);
    assert_eq!(code(&output), 7);
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("hint: review the plan, then pass `--yes`")
    );
    assert_eq!((lab.versions(), lab.configs()), before);
}

/// Fields the plan names; everything else must come back byte for byte.
fn without_planned_fields(mut spec: Value) -> Value {
    let template = &mut spec["TaskTemplate"];
    if let Some(configs) = template["ContainerSpec"]["Configs"].as_array_mut() {
        configs.retain(|c| c["File"]["Name"] != "/config.toml");
    }
    template.as_object_mut().unwrap().remove("ForceUpdate");
    template["Placement"]
        .as_object_mut()
        .unwrap()
        .remove("Constraints");
    spec["UpdateConfig"]
        .as_object_mut()
        .unwrap()
        .remove("FailureAction");
    spec.as_object_mut().unwrap().remove("EndpointSpec");
    spec["Mode"]["Replicated"]
        .as_object_mut()
        .unwrap()
        .remove("Replicas");
    spec
}

#[test]
fn every_field_the_plan_does_not_name_survives() {
    let Some(lab) = lab() else { return };
    let secret = "lab-secret-roundtrip";
    let _ = Command::new("docker")
        .args(["secret", "rm", secret])
        .env("DOCKER_HOST", &lab.docker_host)
        .output();
    let mut create = Command::new("docker");
    create
        .args(["secret", "create", "--label", "lab=1", secret, "-"])
        .env("DOCKER_HOST", &lab.docker_host)
        .stdin(std::process::Stdio::piped());
    let mut child = create.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret").unwrap();
    assert!(child.wait().unwrap().success());
    let rich = [
        "--env-add",
        "LAB_ROUNDTRIP=1",
        "--label-add",
        "com.example.team=edge",
        "--container-label-add",
        "com.example.tier=lb",
        "--mount-add",
        "type=tmpfs,target=/scratch,tmpfs-size=1048576",
        "--secret-add",
        &format!("source={secret},target=lab-secret,mode=0400"),
        "--health-cmd",
        "true",
        "--health-interval",
        "30s",
        "--health-retries",
        "2",
        "--limit-memory",
        "64M",
        "--reserve-cpu",
        "0.01",
        "--restart-condition",
        "on-failure",
        "--restart-max-attempts",
        "3",
        "--placement-pref-add",
        "spread=node.labels.role",
        "--log-driver",
        "json-file",
        "--log-opt",
        "max-size=1m",
        "--update-order",
        "stop-first",
        "--rollback-monitor",
        "2s",
    ];
    for service in [CORE, PROXY] {
        let mut args = vec!["service", "update", "--quiet", "--no-resolve-image"];
        args.extend(rich.iter().copied());
        args.push(service);
        lab.docker(&args);
    }
    let before = [CORE, PROXY].map(|s| without_planned_fields(lab.inspect(s)["Spec"].clone()));
    lab.runbook();
    let after = [CORE, PROXY].map(|s| without_planned_fields(lab.inspect(s)["Spec"].clone()));
    assert_eq!(
        before[0], after[0],
        "core spec fields outside the plan changed"
    );
    assert_eq!(
        before[1], after[1],
        "proxy spec fields outside the plan changed"
    );
    assert_eq!(
        after[0]["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretName"],
        secret
    );
}

#[test]
fn status_shows_placement_ports_and_lineage() {
    let Some(lab) = lab() else { return };
    lab.runbook();
    let text = lab.interlockctl(&["status"]);
    assert_eq!(code(&text), 0);
    insta::assert_snapshot!(
        "status_text_after_runbook",
        String::from_utf8(text.stdout).unwrap()
    );
    let output = lab.interlockctl(&["status", "-o", "json"]);
    assert_eq!(code(&output), 0);
    insta::assert_json_snapshot!("status_json_after_runbook", json(&output), {
        ".state.lineage[].created" => "[created]",
    });
}

#[test]
fn rollback_twice_returns_to_where_it_started() {
    let Some(lab) = lab() else { return };
    assert_eq!(
        code(&lab.interlockctl(&["pin-proxy", "--label", "role=dtr", "--yes"])),
        0
    );
    let pinned = lab.proxy_node_addrs();
    assert_eq!(code(&lab.interlockctl(&["rollback", "--yes"])), 0);
    assert_eq!(lab.core_config(), format!("{CONF}-1"));
    let constraints = &lab.inspect(PROXY)["Spec"]["TaskTemplate"]["Placement"]["Constraints"];
    assert_eq!(
        constraints.as_array().unwrap().len(),
        2,
        "the UCP default constraints are back: {constraints}"
    );
    assert_eq!(code(&lab.interlockctl(&["rollback", "--yes"])), 0);
    assert_eq!(lab.core_config(), format!("{CONF}-2"));
    assert_eq!(lab.proxy_node_addrs(), pinned);
    assert_eq!(
        lab.configs().len(),
        2,
        "rollback reuses configs, never copies them"
    );
}

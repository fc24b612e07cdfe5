//! End-to-end safety tests on the lab swarm (see `tests/lab_support`): preflight refusals
//! that change nothing, runs interrupted anywhere and finished by a re-run, concurrent runs,
//! history, prune and backups.

mod lab_support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lab_support::{CONF, CORE, Lab, PROXY, code, json, lab, manifest_dir};
use serde_json::Value;

/// Runs `args`, expects exit 4 with `error_code` and `message` in the first error, and no
/// change to any service version or config.
fn assert_refused(lab: &Lab, args: &[&str], error_code: &str, message: &str) {
    let before = (lab.versions(), lab.configs());
    let mut args = args.to_vec();
    args.extend(["--yes", "-o", "json"]);
    let output = lab.interlockctl(&args);
    assert_eq!(code(&output), 4, "{args:?} must be refused");
    let report = json(&output);
    assert_eq!(report["status"], "refused");
    let errors = report["errors"].as_array().unwrap();
    let error = errors
        .iter()
        .find(|e| e["code"] == error_code)
        .unwrap_or_else(|| panic!("no {error_code} in {errors:?}"));
    assert!(
        error["message"].as_str().unwrap().contains(message),
        "{error}"
    );
    assert!(
        error["hint"].as_str().is_some_and(|h| !h.is_empty()),
        "a refusal names the fix: {error}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains(message));
    assert_eq!(
        (lab.versions(), lab.configs()),
        before,
        "a refusal changes nothing"
    );
}

/// A copy of the live config with `from` replaced by `to`, written to a file for `apply`.
fn edited_live_config(lab: &Lab, name: &str, edits: &[(&str, &str)]) -> String {
    let mut text = String::from_utf8(lab.interlockctl(&["show"]).stdout).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from} is in the live config");
        text = text.replace(from, to);
    }
    let path = manifest_dir().join(format!("target/{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn refuses_a_label_no_ready_node_carries() {
    let lab = lab();
    assert_refused(
        &lab,
        &["pin-proxy", "--label", "role=edge"],
        "no_labelled_nodes",
        "no Ready, Active node has the label role=edge",
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn refuses_more_host_mode_replicas_than_eligible_nodes() {
    let lab = lab();
    let file = edited_live_config(
        &lab,
        "too-many-replicas",
        &[
            ("ProxyReplicas = 2", "ProxyReplicas = 3"),
            ("PublishMode = \"ingress\"", "PublishMode = \"host\""),
            (
                "ProxyConstraints = [\"node.labels.com.docker.ucp.orchestrator.swarm==true\", \"node.platform.os==linux\"]",
                "ProxyConstraints = [\"node.labels.role==dtr\"]",
            ),
        ],
    );
    assert_refused(
        &lab,
        &["apply", &file],
        "too_few_nodes",
        "3 proxy replicas in host mode need 3 eligible nodes, but only 2",
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn refuses_a_port_another_service_publishes() {
    let lab = lab();
    let image = lab.inspect(PROXY)["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .unwrap()
        .to_owned();
    lab.docker(&[
        "service",
        "create",
        "--quiet",
        "--detach",
        "--no-resolve-image",
        "--name",
        "lab-web",
        "--publish",
        "published=7443,target=80",
        &image,
        "sleep",
        "3600",
    ]);
    assert_refused(
        &lab,
        &["host-mode", "--http", "7080", "--https", "7443"],
        "port_in_use",
        "port 7443 is already published by service lab-web (through ingress",
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn refuses_when_an_object_is_missing() {
    let lab = lab();
    assert_refused(
        &lab,
        &["--service", "nope", "pin-proxy", "--label", "role=dtr"],
        "core_service_missing",
        "service nope does not exist",
    );
    assert_refused(
        &lab,
        &[
            "--service",
            "ucp-interlock-extension",
            "pin-proxy",
            "--label",
            "role=dtr",
        ],
        "config_missing",
        "mounts no config at /config.toml",
    );
    assert_refused(
        &lab,
        &["--extension", "east", "pin-proxy", "--label", "role=dtr"],
        "extension_not_found",
        "has no [Extensions.east]",
    );
    let file = edited_live_config(&lab, "no-replicas", &[("    ProxyReplicas = 2\n", "")]);
    assert_refused(
        &lab,
        &["apply", &file],
        "missing_proxy_replicas",
        "has no ProxyReplicas",
    );
    lab.docker(&["service", "rm", PROXY]);
    assert_refused(
        &lab,
        &["pin-proxy", "--label", "role=dtr"],
        "proxy_service_missing",
        "the proxy service ucp-interlock-proxy does not exist",
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn refuses_while_a_previous_update_is_paused() {
    let lab = lab();
    // A proxy update whose tasks cannot start, with Swarm's default failure action: paused.
    let output = Command::new("docker")
        .args([
            "service",
            "update",
            "--detach",
            "--update-failure-action",
            "pause",
            "--args",
            "/no/such/command",
            PROXY,
        ])
        .env("DOCKER_HOST", &lab.docker_host)
        .output()
        .unwrap();
    assert!(output.status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while lab.inspect(PROXY)["UpdateStatus"]["State"] != "paused" {
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy update never paused"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_refused(
        &lab,
        &["pin-proxy", "--label", "role=dtr"],
        "update_in_progress",
        "a previous update of ucp-interlock-proxy is paused",
    );
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn history_and_prune_keep_what_a_rollback_needs() {
    let lab = lab();
    lab.runbook();
    let history = json(&lab.interlockctl(&["history", "-o", "json"]));
    let names: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [1, 2, 3].map(|n| format!("{CONF}-{n}")));
    let third = &history["history"][2];
    assert_eq!(
        (third["operation"].as_str(), third["parent"].as_str()),
        (Some("host-mode"), Some(format!("{CONF}-2").as_str()))
    );
    assert!(third["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(third["current"], true);

    // conf-3 is current and conf-2 is the core's rollback target: only conf-1 may go.
    let dry = json(&lab.interlockctl(&["prune", "--keep", "0", "--dry-run", "-o", "json"]));
    let doomed: Vec<&str> = dry["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["target"].as_str().unwrap())
        .collect();
    assert_eq!(doomed, [format!("{CONF}-1")]);
    assert_eq!(lab.configs().len(), 3, "--dry-run deletes nothing");
    assert_eq!(
        code(&lab.interlockctl(&["prune", "--keep", "0", "--yes"])),
        0
    );
    assert_eq!(lab.configs(), [2, 3].map(|n| format!("{CONF}-{n}")));
    assert_eq!(
        json(&lab.interlockctl(&["prune", "--keep", "0", "-o", "json"]))["status"],
        "no_changes"
    );
    assert_eq!(
        code(&lab.interlockctl(&["rollback", "--yes"])),
        0,
        "the rollback target survived the prune"
    );
    assert_eq!(lab.core_config(), format!("{CONF}-2"));
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_backup_of_the_previous_state_is_written_before_any_change() {
    let lab = lab();
    let dir = manifest_dir().join("target/lab-backups");
    let _ = std::fs::remove_dir_all(&dir);
    let output = lab.interlockctl(&[
        "pin-proxy",
        "--label",
        "role=dtr",
        "--yes",
        "-o",
        "json",
        "--backup-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code(&output), 0);
    let backup = std::path::PathBuf::from(json(&output)["backup"].as_str().unwrap());
    assert!(backup.starts_with(&dir));
    let mut files: Vec<String> = std::fs::read_dir(&backup)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            format!("{CONF}-1.toml"),
            format!("{PROXY}.spec.json"),
            format!("{CORE}.spec.json")
        ]
    );
    let mode = |path: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&backup), 0o700, "private: the config holds secrets");
    for file in &files {
        assert_eq!(mode(&backup.join(file)), 0o600, "{file}");
    }
    let saved = std::fs::read_to_string(backup.join(format!("{CONF}-1.toml"))).unwrap();
    assert_eq!(
        saved,
        std::fs::read_to_string(manifest_dir().join("tests/lab/core-config.toml")).unwrap()
    );
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(backup.join(format!("{PROXY}.spec.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 2);
}

/// On the lab: secrets that change in the live config, in the shapes the lab's stand-in core
/// reads (a string, an inline table, an array of inline tables, an array of tables; the
/// multi-line ones are covered on the fake engine), are hidden in the diff (text and JSON)
/// and the change list, which still show each one as changed.
#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn changed_secrets_in_the_live_config_are_hidden() {
    let lab = lab();
    let with_secrets = |version: &str| {
        let registry = format!(
            "TargetSSLPort = 443\n    Registry = {{ Server = \"dtr.lab\", Token = \"LABSECRET-inline-table-{version}\" }}\n    \
             Upstreams = [{{ Name = \"metrics\", ApiKey = \"LABSECRET-array-of-inline-tables-{version}\" }}]"
        );
        let backends = format!(
            "UnderscoresInHeaders = false\n    [[Extensions.default.Backends]]\n      Name = \"registry\"\n      \
             Password = \"LABSECRET-array-of-tables-{version}\""
        );
        let admin_pass = format!("AdminPass = \"LABSECRET-basic-{version}\"");
        edited_live_config(
            &lab,
            &format!("lab-secrets-{version}"),
            &[
                ("TargetSSLPort = 443", &registry),
                ("UnderscoresInHeaders = false", &backends),
                ("AdminPass = \"\"", &admin_pass),
            ],
        )
    };
    let first = with_secrets("1");
    let rotated = with_secrets("2");
    assert_eq!(code(&lab.interlockctl(&["apply", &first, "--yes"])), 0);

    let text = lab.interlockctl(&["apply", &rotated, "--dry-run"]);
    assert_eq!(code(&text), 0);
    let stderr = String::from_utf8(text.stderr).unwrap();
    assert!(!stderr.contains("LABSECRET"), "{stderr}");
    let hidden = |marker: char| {
        stderr
            .lines()
            .filter(|line| line.starts_with(marker) && line.contains("\"<redacted>\""))
            .count()
    };
    assert_eq!((hidden('-'), hidden('+')), (4, 4), "{stderr}");

    let output = lab.interlockctl(&["apply", &rotated, "--dry-run", "-o", "json"]);
    assert_eq!(code(&output), 0);
    assert!(!String::from_utf8_lossy(&output.stdout).contains("LABSECRET"));
    let report = json(&output);
    assert_eq!(report["status"], "planned");
    let changes: Vec<(&str, &str, &str)> = report["config"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let text = |field: &str| c[field].as_str().unwrap();
            (text("key"), text("before"), text("after"))
        })
        .collect();
    let hidden = "\"<redacted>\"";
    let upstreams = "[{ Name = \"metrics\", ApiKey = \"<redacted>\" }]";
    assert_eq!(
        changes,
        [
            ("Extensions.default.Registry.Token", hidden, hidden),
            ("Extensions.default.Upstreams", upstreams, upstreams),
            ("Extensions.default.Config.AdminPass", hidden, hidden),
            ("Extensions.default.Backends[0].Password", hidden, hidden),
        ]
    );
}

/// The state a finished `pin-proxy --label role=dtr` leaves, whatever interrupted it.
fn assert_pinned(lab: &Lab) {
    assert_eq!(lab.core_config(), format!("{CONF}-2"));
    assert_eq!(
        lab.configs(),
        [1, 2].map(|n| format!("{CONF}-{n}")),
        "exactly one new config"
    );
    let proxy = lab.inspect(PROXY);
    assert_eq!(
        proxy["Spec"]["TaskTemplate"]["Placement"]["Constraints"],
        serde_json::json!(["node.labels.role==dtr"])
    );
    let status = json(&lab.interlockctl(&["status", "-o", "json"]));
    assert_eq!(status["state"]["drift"], serde_json::json!([]), "{status}");
    assert_eq!(
        status["state"]["problems"],
        serde_json::json!([]),
        "{status}"
    );
}

/// A TCP front for the lab manager's socket that forwards every connection, except the
/// one whose request line matches `cut` at its `nth` occurrence: that request reaches the
/// engine, but its answer is dropped, as when a laptop's VPN drops mid-run. interlockctl
/// keeps connections alive; the proxy asks the engine to close each one after its answer
/// (`Connection: close`), so every request comes on a connection of its own.
struct CuttingProxy {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl CuttingProxy {
    fn start(socket: &str, cut: impl Fn(&str) -> bool + Send + 'static, nth: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        let socket = socket.to_owned();
        std::thread::spawn(move || {
            let mut seen = 0;
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let mut engine = UnixStream::connect(&socket).unwrap();
                let head = read_head(&mut client);
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let matches = cut(&line);
                seen += usize::from(matches);
                log.lock().unwrap().push(line);
                engine.write_all(&closing(&head)).unwrap();
                if matches && seen == nth {
                    let mut answer = [0_u8; 4096];
                    let _ = engine.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = engine.read(&mut answer);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                pipe(client, engine);
            }
        });
        CuttingProxy { port, requests }
    }

    fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

/// Reads what the client sent first: headers and whatever body came with them.
fn read_head(client: &mut TcpStream) -> Vec<u8> {
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0_u8; 65536];
    while let Ok(n @ 1..) = client.read(&mut buf) {
        head.extend_from_slice(&buf[..n]);
        if request_complete(&head) {
            break;
        }
    }
    client.set_read_timeout(None).unwrap();
    head
}

/// The request with `Connection: close` added after its request line.
fn closing(head: &[u8]) -> Vec<u8> {
    let end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(head.len(), |at| at + 2);
    let mut out = head[..end].to_vec();
    out.extend_from_slice(b"Connection: close\r\n");
    out.extend_from_slice(&head[end..]);
    out
}

fn request_complete(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let Some((headers, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    body.len() >= length
}

fn pipe(client: TcpStream, engine: UnixStream) {
    let (mut client_read, mut engine_write) =
        (client.try_clone().unwrap(), engine.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut engine_write);
    });
    let (mut engine_read, mut client_write) = (engine, client);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut engine_read, &mut client_write);
        let _ = client_write.shutdown(Shutdown::Both);
    });
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn an_interrupted_run_is_finished_by_a_re_run_at_every_step() {
    let lab = lab();
    let socket = lab.docker_host.trim_start_matches("unix://").to_owned();
    type Cut = (&'static str, fn(&str) -> bool, usize);
    let steps: [Cut; 4] = [
        (
            "after the config is created",
            |l| l.starts_with("GET /services/"),
            3,
        ),
        (
            "during the core's update",
            |l| l.starts_with("POST /services/") && l.contains("/update"),
            1,
        ),
        (
            "during the wait for the core",
            |l| l.starts_with("GET /tasks"),
            2,
        ),
        (
            "during the proxy's update",
            |l| l.starts_with("POST /services/") && l.contains("/update"),
            2,
        ),
    ];
    for (step, cut, nth) in steps {
        lab_support::reset();
        let proxy = CuttingProxy::start(&socket, cut, nth);
        let mut command = lab.interlockctl_command(&["pin-proxy", "--label", "role=dtr", "--yes"]);
        let interrupted = command.env("DOCKER_HOST", proxy.host()).output().unwrap();
        let requests = proxy.requests.lock().unwrap().clone();
        eprintln!(
            "cut {step}: exit {:?} after {} requests",
            interrupted.status.code(),
            requests.len()
        );
        assert_ne!(
            code(&interrupted),
            0,
            "the cut {step} must fail the run: {requests:#?}"
        );
        assert_eq!(
            code(&lab.interlockctl(&["pin-proxy", "--label", "role=dtr", "--yes"])),
            0,
            "the re-run after a cut {step}"
        );
        assert_pinned(&lab);
    }
    lab_support::report(&format!(
        "interruption points exercised on the lab: {}",
        steps.len()
    ));
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn a_killed_run_is_finished_by_a_re_run() {
    let lab = lab();
    let moments = [300, 1500, 4000, 8000];
    for millis in moments {
        lab_support::reset();
        let mut child = lab
            .interlockctl_command(&["pin-proxy", "--label", "role=dtr", "--yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(millis));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let rerun = lab.interlockctl(&["pin-proxy", "--label", "role=dtr", "--yes"]);
        assert_eq!(code(&rerun), 0, "the re-run after SIGKILL at {millis} ms");
        assert_pinned(&lab);
    }
    lab_support::report(&format!(
        "SIGKILL moments exercised on the lab: {}",
        moments.len()
    ));
}

#[test]
#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]
fn concurrent_runs_never_clash() {
    let lab = lab();
    let rounds: [(&[&str], &[&str]); 5] = [
        (
            &["pin-proxy", "--label", "role=dtr"],
            &["pin-proxy", "--label", "role=dtr"],
        ),
        (
            &["pin-proxy", "--label", "role=dtr"],
            &["host-mode", "--http", "7080", "--https", "7443"],
        ),
        (
            &["host-mode", "--http", "7080", "--https", "7443"],
            &["pin-proxy", "--label", "role=dtr"],
        ),
        (
            &["pin-proxy", "--label", "role=dtr", "--replicas", "1"],
            &["pin-proxy", "--label", "role=dtr"],
        ),
        (
            &["host-mode", "--http", "7080", "--https", "7443"],
            &["host-mode", "--http", "7081", "--https", "7444"],
        ),
    ];
    for (round, (first, second)) in rounds.iter().enumerate() {
        lab_support::reset();
        let spawn = |args: &[&str]| {
            let mut args = args.to_vec();
            args.extend(["--yes", "-o", "json"]);
            lab.interlockctl_command(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(first), spawn(second));
        let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        for output in &outputs {
            eprintln!(
                "round {round}: exit {:?}\n{}",
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let results: Vec<(i32, Value)> = outputs.iter().map(|o| (code(o), json(o))).collect();
        for (exit, report) in &results {
            let error = report["errors"][0]["code"].as_str().unwrap_or("");
            assert!(
                *exit == 0 || (*exit == 1 && error == "changed_underneath"),
                "round {round}: a run either applies or says it was changed underneath: {report}"
            );
        }
        assert!(
            results.iter().any(|(exit, _)| *exit == 0),
            "round {round}: one run applied"
        );
        let configs = lab.configs();
        let mut unique = configs.clone();
        unique.dedup();
        assert_eq!(
            configs, unique,
            "round {round}: no two configs share a name"
        );
        let status = json(&lab.interlockctl(&["status", "-o", "json"]));
        assert_eq!(
            status["state"]["drift"],
            serde_json::json!([]),
            "round {round}: core and proxy agree: {status}"
        );
        assert_eq!(
            status["state"]["problems"],
            serde_json::json!([]),
            "round {round}: {status}"
        );
    }
    lab_support::report(&format!(
        "concurrent rounds without a clash: {}",
        rounds.len()
    ));
}

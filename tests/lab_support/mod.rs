//! Shared helpers of the end-to-end tests: the lab swarm that `tests/lab/lab.sh` starts
//! (one dockerd per node, workers in network namespaces), the interlockctl binary run
//! against it (through the one harness of `tests/common`, included here as [`harness`]),
//! small readers of the swarm's state through the docker CLI, [`Lab::settle`] for the stand-in
//! core's own proxy rollouts, and [`front`] for tests that act at one chosen Engine API
//! request of a run. What the tests rely on about the lab is in `tests/lab/NOTES.md`.
//!
//! Tests that change the swarm hold one lock and start from `lab.sh reset`. Each one is
//! marked `#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]`:
//! with `INTERLOCKCTL_SKIP_LAB=1` (exactly; the build script turns it into the `skip_lab`
//! cfg) they are skipped on a machine where the lab cannot run (it needs root), and the test
//! summary counts them as ignored. Any other value, or none, runs them.
#![allow(dead_code)] // each test binary uses its own subset

#[path = "../common/mod.rs"]
pub mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

#[allow(unused_imports)] // each test binary uses its own subset
pub use harness::{
    Interlockctl, Receiver, Run, Running, action_kinds, action_targets, actions, changed_lines,
    config_changes, error_codes, kinds, manifest_dir, ndjson, text,
};

pub mod front;

pub const CORE: &str = "ucp-interlock";
pub const PROXY: &str = "ucp-interlock-proxy";
pub const CONF: &str = "com.docker.ucp.interlock.conf";

/// The lab's config number `n`: `com.docker.ucp.interlock.conf-N`.
pub fn conf(n: u32) -> String {
    format!("{CONF}-{n}")
}
/// Runbook part 1 on the lab, confirmed.
pub const PIN_PROXY: [&str; 4] = ["pin-proxy", "--label", "role=dtr", "--yes"];
/// Runbook part 1 on the lab, planned only, as JSON.
pub const PIN_PROXY_PLAN: [&str; 6] = [
    "pin-proxy",
    "--label",
    "role=dtr",
    "--dry-run",
    "-o",
    "json",
];
/// Runbook part 2 on the lab, confirmed.
pub const HOST_MODE: [&str; 6] = ["host-mode", "--http", "7080", "--https", "7443", "--yes"];

/// The lab's addresses and socket, from the env file `lab.sh up` writes.
pub struct Lab {
    pub docker_host: String,
    pub dtr_addrs: Vec<String>,
    pub other_addrs: Vec<String>,
    /// The stand-in image's ID, for services the tests create (never pulled).
    pub image: String,
    /// The manager engine's TLS address (`tcp://ADDR:2376`, `--tlsverify`).
    pub tls_host: String,
    /// A directory laid out like a client bundle for it: `ca.pem`, `cert.pem`, `key.pem`.
    pub cert_path: PathBuf,
    /// The manager through its sshd: `ssh://root@ADDR`.
    pub ssh_host: String,
    /// The lab's ssh client key (`id_ed25519`) and the sshd's `known_hosts` line.
    pub ssh_dir: PathBuf,
    /// Each node's own engine (`unix://` address), by the node's hostname (`ilab-w1`).
    pub node_engines: std::collections::BTreeMap<String, String>,
}

fn lab_script() -> PathBuf {
    manifest_dir().join("tests/lab/lab.sh")
}

fn run_script(args: &[&str]) {
    run_script_with(args, &[]);
}

fn run_script_with(args: &[&str], env: &[(&str, &str)]) {
    let status = Command::new("bash")
        .arg(lab_script())
        .args(args)
        .envs(env.iter().copied())
        .status()
        .expect("bash runs");
    assert!(status.success(), "tests/lab/lab.sh {args:?} {env:?} failed");
}

/// The env file `lab.sh up` writes: `KEY=value` lines.
const ENV_FILE: &str = "/run/interlockctl-lab/env";

fn env_value(env: &str, key: &str) -> Option<String> {
    env.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .map(|value| value.trim_matches('"').to_owned())
}

/// The manager's socket of a lab that is up: its env file exists and the manager's engine
/// accepts a connection there. `None` when the lab is down.
pub fn running_lab_socket() -> Option<PathBuf> {
    let env = std::fs::read_to_string(ENV_FILE).ok()?;
    let socket = PathBuf::from(env_value(&env, "DOCKER_HOST")?.strip_prefix("unix://")?);
    std::os::unix::net::UnixStream::connect(&socket).ok()?;
    Some(socket)
}

fn start_lab() -> Lab {
    run_script(&["up"]);
    let env = std::fs::read_to_string(ENV_FILE).expect("lab.sh up writes its env file");
    let value = |key: &str| -> String {
        env_value(&env, key).unwrap_or_else(|| panic!("{key} missing from the lab env file"))
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
        image: value("LAB_IMAGE"),
        tls_host: value("LAB_TLS_HOST"),
        cert_path: PathBuf::from(value("LAB_CERT_PATH")),
        ssh_host: value("LAB_SSH_HOST"),
        ssh_dir: PathBuf::from(value("LAB_SSH_DIR")),
        node_engines: words("LAB_NODES")
            .into_iter()
            .map(|node| {
                let key = format!(
                    "LAB_SOCK_{}",
                    node.trim_start_matches("ilab-")
                        .to_uppercase()
                        .replace('-', "_")
                );
                (node, value(&key))
            })
            .collect(),
    }
}

/// Held by the test process that uses the lab: test binaries of several checkouts (or a
/// benchmark) share one lab swarm, and each starts from `lab.sh reset`.
const PROCESS_LOCK: &str = "/run/lock/interlockctl-lab-tests.lock";

/// Takes the lab for this process, waiting while another process holds it.
fn lock_lab_for_this_process() -> std::fs::File {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PROCESS_LOCK)
        .expect("the lab's process lock file opens");
    file.lock().expect("the lab's process lock is taken");
    file
}

/// The lab, started once per test process, and held exclusively by one test at a time.
pub fn lab() -> MutexGuard<'static, Lab> {
    if cfg!(skip_lab) {
        panic!(
            "INTERLOCKCTL_SKIP_LAB=1, yet this test reached the lab: mark it \
             #[cfg_attr(skip_lab, ignore = \"INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm\")], \
             or run without the variable"
        );
    }
    static LAB: OnceLock<(std::fs::File, Mutex<Lab>)> = OnceLock::new();
    let (_process_lock, lab) =
        LAB.get_or_init(|| (lock_lab_for_this_process(), Mutex::new(start_lab())));
    let guard = lab.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    reset();
    guard
}

/// Polls `done` every 100 ms until it holds; fails the test naming `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes a line to the test output even when the harness captures it (how many
/// interruption points a test exercised is part of what it shows).
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Brings the lab's fixture back to its initial state.
pub fn reset() {
    run_script(&["reset"]);
}

/// Restarts the manager's engine (`lab.sh restart-engine`, by its recorded PID); returns
/// once the swarm is back.
pub fn restart_engine() {
    run_script(&["restart-engine"]);
}

/// [`reset`] with the services on Interlock's own image names, `docker/ucp-interlock*:3.0.14`
/// (`LAB_INTERLOCK_IMAGES=names`, see `tests/lab/lab.sh`), and a core that keeps the extension
/// on the image its config names.
pub fn reset_with_interlock_images() {
    run_script_with(&["reset"], &[("LAB_INTERLOCK_IMAGES", "names")]);
}

/// [`reset`] with a core that never writes the proxy's spec (the benchmark compares both).
pub fn reset_without_core_writer() {
    run_script_with(&["reset"], &[("LAB_CORE_WRITER", "off")]);
}

/// A lab worker whose engine is paused (the swarm reports it Down) until this is dropped,
/// also when the test fails.
#[must_use = "the node's engine goes on when this is dropped"]
pub struct DownNode(&'static str);

impl Drop for DownNode {
    fn drop(&mut self) {
        run_script(&["node-resume", self.0]);
    }
}

impl Lab {
    /// Pauses a worker's engine until the returned guard is dropped (`lab.sh node-pause`):
    /// the engine the lab started stays, so nothing the test starts outlives it.
    pub fn node_down(&self, worker: &'static str) -> DownNode {
        run_script(&["node-pause", worker]);
        DownNode(worker)
    }

    /// interlockctl against the lab (`DOCKER_HOST` set), not started yet.
    pub fn interlockctl_command(&self, args: &[&str]) -> Interlockctl {
        harness::interlockctl(args).env("DOCKER_HOST", &self.docker_host)
    }

    /// Runs interlockctl against the lab to completion; the run goes to the test log, which
    /// the test harness shows when the test fails.
    pub fn interlockctl(&self, args: &[&str]) -> Run {
        let run = self.interlockctl_command(args).run();
        eprintln!("{}", run.render());
        run
    }

    /// `docker ARGS` against the lab's manager; its stdout, trimmed.
    pub fn docker(&self, args: &[&str]) -> String {
        let mut docker = Command::new("docker");
        docker.env("DOCKER_HOST", &self.docker_host);
        docker_cli(docker, args)
    }

    /// `docker ARGS` against the engine of the node with this hostname (that node's own
    /// containers and events, not the manager's view of the swarm); its stdout, trimmed.
    pub fn docker_on(&self, node: &str, args: &[&str]) -> String {
        let mut docker = Command::new("docker");
        docker.env("DOCKER_HOST", &self.node_engines[node]);
        docker_cli(docker, args)
    }

    /// Creates a service from the stand-in image with these labels (and networks) that runs
    /// no task: the label checks read only specs, and the core routes it all the same. Named
    /// `lab-*` so that `lab.sh reset` removes it.
    pub fn create_idle_service(&self, name: &str, labels: &[&str], networks: &[&str]) {
        docker_cli(self.idle_service_command(name, labels, networks), &[]);
    }

    /// The `docker service create` of [`Lab::create_idle_service`], not yet run (to time it,
    /// or to start several at once).
    pub fn idle_service_command(&self, name: &str, labels: &[&str], networks: &[&str]) -> Command {
        let mut docker = Command::new("docker");
        docker.env("DOCKER_HOST", &self.docker_host).args([
            "service",
            "create",
            "--quiet",
            "--detach",
            "--no-resolve-image",
            "--replicas",
            "0",
            "--name",
            name,
        ]);
        for label in labels {
            docker.args(["--label", label]);
        }
        for network in networks {
            docker.args(["--network", network]);
        }
        docker.args([self.image.as_str(), "sleep", "3600"]);
        docker
    }

    pub fn inspect(&self, service: &str) -> Value {
        let json: Value =
            serde_json::from_str(&self.docker(&["service", "inspect", service])).expect("json");
        json[0].clone()
    }

    /// The core's config lineage (`com.docker.ucp.interlock.conf-N`), sorted; the proxy
    /// configs the core swaps onto the proxy are not part of it.
    pub fn configs(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .docker(&[
                "config",
                "ls",
                "--filter",
                &format!("name={CONF}"),
                "--format",
                "{{.Name}}",
            ])
            .lines()
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    /// A config's ID.
    pub fn config_id(&self, name: &str) -> String {
        self.docker(&["config", "inspect", "--format", "{{.ID}}", name])
    }

    /// A service's spec.
    pub fn spec(&self, service: &str) -> Value {
        self.inspect(service)["Spec"].clone()
    }

    /// A config's content.
    pub fn config_text(&self, name: &str) -> String {
        use base64::Engine as _;
        let data = self.docker(&["config", "inspect", "--format", "{{json .Spec.Data}}", name]);
        let data: String = serde_json::from_str(&data).expect("base64 in a JSON string");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64");
        String::from_utf8(bytes).expect("UTF-8")
    }

    /// Waits until the core has swapped the proxy config made from the config it mounts
    /// onto the proxy, and that rollout is over (see `tests/lab/NOTES.md`): the core is a
    /// concurrent writer of the proxy, and a test that reads the proxy's tasks right after
    /// a run could see that rollout half done.
    pub fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        let digest = md5_hex(&self.config_text(&self.core_config()));
        loop {
            let proxy = self.inspect(PROXY);
            let mounted = mounted_proxy_config(&proxy["Spec"]);
            let rolling = matches!(
                proxy["UpdateStatus"]["State"].as_str(),
                Some("updating" | "rollback_started")
            );
            let current = mounted.is_some_and(|name| {
                self.config_text(&name)
                    .contains(&format!("# core config: {digest}"))
            });
            if current && !rolling {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the core did not swap its proxy config for {} in time",
                self.core_config()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The manager's engine socket.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(
            self.docker_host
                .strip_prefix("unix://")
                .expect("the lab's DOCKER_HOST is a unix socket"),
        )
    }

    pub fn core_config(&self) -> String {
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

    /// `Version.Index` of the core and the proxy; `None` for a service that does not exist.
    pub fn versions(&self) -> (Option<u64>, Option<u64>) {
        let version = |service: &str| {
            let output = Command::new("docker")
                .args([
                    "service",
                    "inspect",
                    "--format",
                    "{{.Version.Index}}",
                    service,
                ])
                .env("DOCKER_HOST", &self.docker_host)
                .output()
                .expect("docker runs");
            String::from_utf8_lossy(&output.stdout).trim().parse().ok()
        };
        (version(CORE), version(PROXY))
    }

    /// One `docker service ps --format FORMAT` line per task of `service` meant to run.
    pub fn running_tasks(&self, service: &str, format: &str) -> Vec<String> {
        self.docker(&[
            "service",
            "ps",
            service,
            "--filter",
            "desired-state=running",
            "--format",
            format,
        ])
        .lines()
        .map(str::to_owned)
        .collect()
    }

    /// The nodes running the proxy, as addresses.
    pub fn proxy_node_addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self
            .running_tasks(PROXY, "{{.Node}}")
            .iter()
            .map(|node| self.docker(&["node", "inspect", node, "--format", "{{.Status.Addr}}"]))
            .collect();
        addrs.sort();
        addrs
    }

    /// The runbook, both parts: `pin-proxy --label role=dtr`, then `host-mode --http 7080
    /// --https 7443`; each must succeed.
    pub fn runbook(&self) {
        self.interlockctl(&PIN_PROXY).assert_code(0);
        self.interlockctl(&HOST_MODE).assert_code(0);
    }
}

/// A run's exit code (the same as `run.code`).
pub fn code(run: &Run) -> i32 {
    run.code
}

/// A run's JSON document (the same as `run.json()`).
#[track_caller]
pub fn json(run: &Run) -> Value {
    run.json()
}

/// GET / from `addr:port`, retried for a few seconds while a host port comes up.
pub fn http_get(addr: &str, port: u16) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match http_get_once(addr, port, Duration::from_secs(2), Duration::from_secs(3)) {
            Some(body) => return Some(body),
            None if Instant::now() > deadline => return None,
            None => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// One `GET /` of `addr:port` (connecting within `connect`, the answer read within `read`):
/// its body when the stand-in proxy answered.
pub fn http_get_once(addr: &str, port: u16, connect: Duration, read: Duration) -> Option<String> {
    let target = format!("{addr}:{port}").parse().expect("socket address");
    let attempt = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&target, connect)?;
        stream.set_read_timeout(Some(read))?;
        stream.write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")?;
        let mut body = String::new();
        stream.read_to_string(&mut body)?;
        Ok(body)
    };
    attempt()
        .ok()
        .filter(|body| body.contains("interlock-proxy-standin"))
}

/// Runs `docker` (a command with its environment set) with `args`, which must succeed; its
/// stdout, trimmed.
pub fn docker_cli(mut docker: Command, args: &[&str]) -> String {
    let output = docker.args(args).output().expect("docker runs");
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

/// The name of the nginx config the core mounted on a proxy spec, if any.
pub fn mounted_proxy_config(spec: &Value) -> Option<String> {
    spec["TaskTemplate"]["ContainerSpec"]["Configs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["File"]["Name"] == "/etc/nginx/nginx.conf")
        .and_then(|c| c["ConfigName"].as_str().map(str::to_owned))
}

/// Whether nothing listens on `addr:port` (a connection is refused or times out).
pub fn closed(addr: &str, port: u16) -> bool {
    let target = format!("{addr}:{port}").parse().expect("socket address");
    TcpStream::connect_timeout(&target, Duration::from_secs(1)).is_err()
}

/// `md5sum` of `text`, as the stand-in core writes it into its proxy configs.
pub fn md5_hex(text: &str) -> String {
    let mut child = Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("md5sum runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("md5sum reads");
    let output = child.wait_with_output().expect("md5sum ends");
    String::from_utf8(output.stdout).expect("UTF-8")[..32].to_owned()
}

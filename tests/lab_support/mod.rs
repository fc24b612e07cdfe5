//! Shared helpers of the end-to-end tests: the lab swarm that `tests/lab/lab.sh` starts
//! (one dockerd per node, workers in network namespaces), the interlockctl binary run
//! against it, and small readers of the swarm's state through the docker CLI.
//!
//! Tests that change the swarm hold one lock and start from `lab.sh reset`. Each one is
//! marked `#[cfg_attr(skip_lab, ignore = "INTERLOCKCTL_SKIP_LAB=1: needs the lab swarm")]`:
//! with `INTERLOCKCTL_SKIP_LAB=1` (exactly; the build script turns it into the `skip_lab`
//! cfg) they are skipped on a machine where the lab cannot run (it needs root), and the test
//! summary counts them as ignored. Any other value, or none, runs them.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const CORE: &str = "ucp-interlock";
pub const PROXY: &str = "ucp-interlock-proxy";
pub const CONF: &str = "com.docker.ucp.interlock.conf";

/// The lab's addresses and socket, from the env file `lab.sh up` writes.
pub struct Lab {
    pub docker_host: String,
    pub dtr_addrs: Vec<String>,
    pub other_addrs: Vec<String>,
    /// The stand-in image's ID, for services the tests create (never pulled).
    pub image: String,
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

/// Writes a line to the test output even when the harness captures it (how many
/// interruption points a test exercised is part of what it shows).
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Brings the lab's fixture back to its initial state.
pub fn reset() {
    run_script(&["reset"]);
}

/// [`reset`] with a core that never writes the proxy's spec (the benchmark compares both).
pub fn reset_without_core_writer() {
    run_script_with(&["reset"], &[("LAB_CORE_WRITER", "off")]);
}

impl Lab {
    /// The interlockctl command against the lab, under a cleared environment.
    pub fn interlockctl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_interlockctl"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DOCKER_HOST", &self.docker_host)
            .env("NO_COLOR", "1")
            .env("HOME", manifest_dir().join("target/lab-home"))
            .current_dir(manifest_dir());
        command
    }

    /// Runs interlockctl to completion, echoing its stderr for the test log.
    pub fn interlockctl(&self, args: &[&str]) -> Output {
        let output = self
            .interlockctl_command(args)
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

    pub fn docker(&self, args: &[&str]) -> String {
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

    pub fn inspect(&self, service: &str) -> Value {
        let json: Value =
            serde_json::from_str(&self.docker(&["service", "inspect", service])).expect("json");
        json[0].clone()
    }

    /// The configs of the core's lineage (not the proxy configs the core itself writes).
    pub fn configs(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .docker(&["config", "ls", "--format", "{{.Name}}"])
            .lines()
            .filter(|name| name.starts_with(CONF))
            .map(str::to_owned)
            .collect();
        names.sort();
        names
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

    /// The nodes running the proxy, as addresses.
    pub fn proxy_node_addrs(&self) -> Vec<String> {
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

    pub fn runbook(&self) {
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

pub fn code(output: &Output) -> i32 {
    output.status.code().expect("exited")
}

pub fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON document")
}

/// GET / from `addr:port`, retried for a few seconds while a host port comes up.
pub fn http_get(addr: &str, port: u16) -> Option<String> {
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

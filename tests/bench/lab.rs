//! Figures on the lab swarm (`tests/lab/lab.sh`; needs root, like the end-to-end tests).
//!
//! `e2e`: `interlockctl pin-proxy` + `host-mode` against the same two steps done the
//! runbook's way with the docker CLI (`runbook.sh` beside this file), each from the same
//! fresh fixture, alternating which goes first, at least 3 rounds; once with the lab's core
//! rolling the proxy after every config load (as the real core does), once with a core that
//! never writes the proxy. A round counts only when
//! both ends are verified by the same checker ([`verified`]). It also prints Swarm's own part
//! of the tool's runs ([`swarm_span`]: the ratio a tool that took no time of its own would
//! reach), the tool's overhead per service update (its request to its "converged", minus
//! Swarm's own rollout time from the run's JSON `timings`) and the peak memory of its runs.
//!
//! `api`: Engine API calls and bytes per command with 10 and with 300 extra services and 500
//! extra configs; only list calls may grow with the swarm's size.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use interlockctl::interlock::config::{InterlockConfig, PublishMode};
use serde_json::Value;

use crate::lab_support::{self, CORE, Lab, PROXY};
use crate::measure::{Samples, ratio};

const ROUNDS: usize = 3;

/// A finished child process: its exit status, stdout, and peak resident memory (KiB).
struct Finished {
    success: bool,
    stdout: String,
    max_rss_kib: i64,
}

/// Runs `command` to completion and reads its peak memory from the kernel (`wait4`).
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also returns its resource usage"
)]
fn run_measured(mut command: Command) -> Finished {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the command starts");
    let pid = i32::try_from(child.id()).expect("a pid");
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout {
        std::io::Read::read_to_string(&mut out, &mut stdout).expect("stdout reads");
    }
    let mut status = 0;
    // SAFETY: `usage` is a plain C struct the kernel fills in; `pid` is our own child,
    // waited for exactly once (the `Child` handle was consumed above and never waits).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 on the child");
    Finished {
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stdout,
        max_rss_kib: usage.ru_maxrss,
    }
}

/// One run of the tool's two commands: duration, overheads, Swarm's own time, peak memory.
struct ToolRun {
    took: Duration,
    overheads: Vec<Duration>,
    /// Swarm's part: [`swarm_span`] of each command, summed.
    swarm: Duration,
    max_rss_kib: i64,
}

fn tool(lab: &Lab) -> Option<ToolRun> {
    let commands: [&[&str]; 2] = [
        &["pin-proxy", "--label", "role=dtr", "--yes", "-o", "json"],
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
    ];
    let mut took = Duration::ZERO;
    let mut overheads = Vec::new();
    let mut swarm = Duration::ZERO;
    let mut max_rss_kib = 0;
    for args in commands {
        let command = lab.interlockctl_command(args).command();
        // The tool from spawn to exit, and nothing else: not the probes of `swarm_span`.
        let start = Instant::now();
        let finished = run_measured(command);
        took += start.elapsed();
        if !finished.success {
            println!("  interlockctl {} failed", args[0]);
            return None;
        }
        max_rss_kib = max_rss_kib.max(finished.max_rss_kib);
        let report: Value = serde_json::from_str(&finished.stdout).expect("one JSON report");
        for timing in report["timings"].as_array().into_iter().flatten() {
            let (Some(seconds), Some(rollout)) =
                (timing["seconds"].as_f64(), timing["swarm_seconds"].as_f64())
            else {
                continue;
            };
            overheads.push(Duration::from_secs_f64((seconds - rollout).max(0.0)));
        }
        swarm += swarm_span(lab).expect("the command updated the core: it has an UpdateStatus");
    }
    Some(ToolRun {
        took,
        overheads,
        swarm,
        max_rss_kib,
    })
}

/// Swarm's own time for the command that just ended: from the start of its core update
/// (`UpdateStatus.StartedAt` of the core, which nothing else updates) to the completion of
/// the last rollout on the core or the proxy (the core's swap of a new nginx config onto
/// the proxy, or the tool's re-creation of stale tasks, included).
fn swarm_span(lab: &Lab) -> Option<Duration> {
    let time = |service: &Value, key: &str| {
        service["UpdateStatus"][key]
            .as_str()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
    };
    let (core, proxy) = (lab.inspect(CORE), lab.inspect(PROXY));
    let started = time(&core, "StartedAt")?;
    // The proxy has no UpdateStatus when no rollout ever ran on it (an update that left
    // every task as it was starts none).
    let completed = [time(&core, "CompletedAt"), time(&proxy, "CompletedAt")]
        .into_iter()
        .flatten()
        .max()?;
    completed.duration_since(started).ok()
}

fn runbook(lab: &Lab) -> Option<Duration> {
    let script = lab_support::manifest_dir().join("tests/bench/runbook.sh");
    let start = Instant::now();
    let status = Command::new("bash")
        .arg(script)
        .env("DOCKER_HOST", &lab.docker_host)
        .stdout(Stdio::null())
        .status()
        .expect("bash runs");
    let took = start.elapsed();
    if !status.success() {
        println!("  runbook.sh failed");
        return None;
    }
    Some(took)
}

/// The end state both ways must reach, read with the docker CLI right after the last
/// command returned (nothing is waited for): the live config says host mode on 7080/7443
/// pinned to `role=dtr` with 2 replicas; the core publishes 8080 on the host; the proxy's
/// spec matches and no rollout runs on it; each of its 2 tasks runs on a `role=dtr` node,
/// binds both host ports, and answers HTTP there.
pub fn verified(lab: &Lab) -> Result<(), String> {
    let name = lab.core_config();
    let text = lab.docker(&[
        "config",
        "inspect",
        "--format",
        "{{printf \"%s\" .Spec.Data}}",
        &name,
    ]);
    let settings = InterlockConfig::parse(&name, &text)
        .and_then(|config| config.extension("default"))
        .map_err(|e| e.to_string())?;
    let expect = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
    // The lines both ways must have written, as the checker's own oracle besides the crate's
    // parser.
    for line in [
        "PublishMode = \"host\"",
        "PublishedPort = 7080",
        "PublishedSSLPort = 7443",
        "ProxyReplicas = 2",
        "ProxyConstraints = [\"node.labels.role==dtr\"]",
    ] {
        expect(
            text.lines().any(|l| l.trim() == line),
            &format!("config: no line `{line}`"),
        )?;
    }
    expect(
        settings.publish_mode == PublishMode::Host,
        "config: not host mode",
    )?;
    expect(
        (settings.published_port, settings.published_ssl_port) == (Some(7080), Some(7443)),
        "config: ports",
    )?;
    expect(
        settings.proxy_constraints == ["node.labels.role==dtr"] && settings.proxy_replicas == 2,
        "config: placement",
    )?;
    let core = lab.inspect(CORE);
    let core_ports = core["Spec"]["EndpointSpec"]["Ports"].to_string();
    expect(
        core_ports.contains("\"TargetPort\":8080") && core_ports.contains("\"host\""),
        "core: 8080 not on the host",
    )?;
    let proxy = lab.inspect(PROXY);
    let state = proxy["UpdateStatus"]["State"].as_str().unwrap_or_default();
    expect(
        !matches!(state, "updating" | "rollback_started"),
        "proxy: still rolling",
    )?;
    expect(
        proxy["Spec"]["TaskTemplate"]["Placement"]["Constraints"]
            == serde_json::json!(["node.labels.role==dtr"]),
        "proxy: constraints",
    )?;
    expect(
        proxy["Spec"]["Mode"]["Replicated"]["Replicas"] == 2,
        "proxy: replicas",
    )?;
    let tasks = lab.docker(&[
        "service",
        "ps",
        "-q",
        "--filter",
        "desired-state=running",
        PROXY,
    ]);
    let tasks: Vec<&str> = tasks.split_whitespace().collect();
    expect(tasks.len() == 2, "proxy: not 2 tasks")?;
    for task in tasks {
        let line = lab.docker(&[
            "inspect",
            "--format",
            "{{.Status.State}} {{.NodeID}} {{range .Status.PortStatus.Ports}}{{.PublishedPort}} {{end}}",
            task,
        ]);
        let words: Vec<&str> = line.split_whitespace().collect();
        expect(
            words.first() == Some(&"running"),
            "proxy: a task is not running",
        )?;
        let addr = lab.docker(&["node", "inspect", "--format", "{{.Status.Addr}}", words[1]]);
        expect(
            lab.dtr_addrs.contains(&addr),
            "proxy: a task off the role=dtr nodes",
        )?;
        expect(
            words.contains(&"7080") && words.contains(&"7443"),
            "proxy: a task without its host ports",
        )?;
        expect(
            lab_support::http_get(&addr, 7080).is_some(),
            "proxy: a node does not answer on 7080",
        )?;
    }
    Ok(())
}

fn verdict(lab: &Lab, who: &str) -> bool {
    match verified(lab) {
        Ok(()) => true,
        Err(why) => {
            println!("  {who}: not verified ({why}); the round does not count");
            false
        }
    }
}

fn mib(kib: i64) -> f64 {
    kib as f64 / 1024.0
}

pub fn e2e() {
    let lab = lab_support::lab();
    println!("with the core rolling the proxy on every config load (as the real core does):");
    compare(&lab, lab_support::reset);
    println!(
        "with a core that never writes the proxy (the setting of the figures before rollout v2):"
    );
    compare(&lab, lab_support::reset_without_core_writer);
    lab_support::reset();
}

/// `ROUNDS` verified rounds of the tool against the runbook, each from `reset`.
fn compare(lab: &Lab, reset: fn()) {
    let (mut tools, mut books, mut overheads) = (Vec::new(), Vec::new(), Vec::new());
    let mut swarms = Vec::new();
    let mut max_rss_kib = 0;
    for round in 0..ROUNDS {
        let mut tool_run = None;
        let mut book = None;
        // Alternate which goes first, so both see the same drift of the machine.
        for tool_turn in [round % 2 == 0, round % 2 != 0] {
            reset();
            if tool_turn {
                tool_run = tool(lab).filter(|_| verdict(lab, "interlockctl"));
            } else {
                book = runbook(lab).filter(|_| verdict(lab, "runbook"));
            }
        }
        let (Some(run), Some(book)) = (tool_run, book) else {
            continue;
        };
        println!(
            "  round {}: interlockctl {:.2} s (of which Swarm {:.2} s), runbook {:.2} s (both verified)",
            round + 1,
            run.took.as_secs_f64(),
            run.swarm.as_secs_f64(),
            book.as_secs_f64()
        );
        tools.push(Samples::of(run.took));
        swarms.push(Samples::of(run.swarm));
        books.push(Samples::of(book));
        overheads.extend(run.overheads.into_iter().map(Samples::of));
        max_rss_kib = max_rss_kib.max(run.max_rss_kib);
    }
    if tools.is_empty() {
        println!("  no round was verified on both sides");
        return;
    }
    let (tools, books) = (Samples::merge(tools), Samples::merge(books));
    println!(
        "  end to end   interlockctl pin-proxy + host-mode: {}",
        tools.summary()
    );
    println!(
        "               runbook.sh (docker CLI):             {}",
        books.summary()
    );
    println!(
        "               ratio of medians: {:.2} (target <= 0.80)",
        ratio(&tools, &books)
    );
    let swarms = Samples::merge(swarms);
    println!(
        "  Swarm        its own rollouts in the tool's runs:   {}",
        swarms.summary()
    );
    println!(
        "               against the runbook: {:.2} (what the ratio would be if the tool took no time of its own)",
        ratio(&swarms, &books)
    );
    let overheads = Samples::merge(overheads);
    println!(
        "  overhead     per service update, beyond Swarm's rollout: {} (target: median <= 300 ms)",
        overheads.summary()
    );
    println!(
        "  memory       peak RSS of one interlockctl run: {:.1} MiB",
        mib(max_rss_kib)
    );
}

/// Requests per endpoint kind, and the totals, of one command, from its `-v` output.
struct Traffic {
    calls: BTreeMap<String, usize>,
    totals: String,
}

/// `GET /services/ucp-interlock` → `GET /services/{name}`; list calls keep their path.
fn endpoint_kind(line: &str) -> String {
    let request = line.trim_start_matches("api: ");
    let request = request.split(" -> ").next().unwrap_or_default();
    let (method, target) = request.split_once(' ').unwrap_or(("?", request));
    let path = target.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let kind = match parts.as_slice() {
        [collection] => format!("/{collection}"),
        [collection, _] => format!("/{collection}/{{id}}"),
        [collection, _, action] => format!("/{collection}/{{id}}/{action}"),
        _ => path.to_owned(),
    };
    format!("{method} {kind}")
}

fn traffic(lab: &Lab, args: &[&str]) -> Traffic {
    let mut all = args.to_vec();
    all.push("-v");
    let stderr = lab.interlockctl_command(&all).run().stderr;
    let mut calls = BTreeMap::new();
    let mut totals = String::new();
    for line in stderr.lines() {
        if line.starts_with("api: ") {
            *calls.entry(endpoint_kind(line)).or_default() += 1;
        } else if let Some(rest) = line.strip_prefix("engine: ") {
            totals = rest.to_owned();
        }
    }
    Traffic { calls, totals }
}

/// Adds services and configs numbered from `from` up to (not including) `to`.
fn grow_swarm(
    lab: &Lab,
    (from_services, to_services): (usize, usize),
    (from_configs, to_configs): (usize, usize),
) {
    for i in from_services..to_services {
        lab.docker(&[
            "service",
            "create",
            "--detach",
            "--quiet",
            "--no-resolve-image",
            "--replicas",
            "0",
            "--name",
            &format!("lab-bench-{i}"),
            &lab.image,
            "true",
        ]);
    }
    for i in from_configs..to_configs {
        let name = format!("lab-bench-config-{i}");
        let status = Command::new("sh")
            .args(["-c", &format!("echo {i} | docker config create {name} -")])
            .env("DOCKER_HOST", &lab.docker_host)
            .stdout(Stdio::null())
            .status()
            .expect("sh runs");
        assert!(status.success(), "docker config create {name}");
    }
}

pub fn api() {
    let lab = lab_support::lab();
    let commands: [&[&str]; 5] = [
        &["status"],
        &["history"],
        &["show"],
        &["pin-proxy", "--label", "role=dtr", "--dry-run"],
        &[
            "host-mode",
            "--http",
            "7080",
            "--https",
            "7443",
            "--dry-run",
        ],
    ];
    let mut small = Vec::new();
    let (mut grown_services, mut grown_configs) = (0, 0);
    for (services, configs) in [(10, 500), (300, 500)] {
        grow_swarm(&lab, (grown_services, services), (grown_configs, configs));
        (grown_services, grown_configs) = (services, configs);
        println!("with {services} extra services and {configs} extra configs:");
        for (i, args) in commands.iter().enumerate() {
            let traffic = traffic(&lab, args);
            println!("  {:<40} {}", args.join(" "), traffic.totals);
            if services == 10 {
                small.push(traffic.calls);
                continue;
            }
            let grew: Vec<String> = traffic
                .calls
                .iter()
                .filter(|(kind, n)| small[i].get(*kind) != Some(n))
                .map(|(kind, n)| {
                    format!("{kind} {} -> {n}", small[i].get(kind).copied().unwrap_or(0))
                })
                .collect();
            let only_lists = traffic
                .calls
                .keys()
                .filter(|k| !small[i].contains_key(*k))
                .count()
                == 0
                && grew.is_empty();
            println!(
                "  {:<40} calls per endpoint unchanged: {}",
                "",
                if only_lists {
                    "yes".to_owned()
                } else {
                    grew.join(", ")
                }
            );
        }
    }
    lab_support::reset();
}

//! Figures on the lab swarm (`tests/lab/lab.sh`; needs root, like the end-to-end tests).
//!
//! `e2e`: the runbook's two parts done three ways, each from the same fresh fixture, the
//! order rotating every round, at least 3 rounds: `interlockctl pin-proxy` + `host-mode`,
//! `interlockctl migrate` (both parts in one run), and the runbook's way with the docker CLI
//! (`runbook.sh` beside this file); once with the lab's core rolling the proxy after every
//! config load (as the real core does), once (without `migrate`) with a core that never
//! writes the proxy. A round counts only when every way is verified by the same checker
//! ([`verified`]). It also prints Swarm's own part of the pair's runs ([`swarm_span`]: the
//! ratio a tool that took no time of its own would reach), the proxy tasks each way created
//! per replica slot and how many of them started a container, counted from the swarm and
//! the nodes' engines ([`created_per_slot`]; the runbook's two parts apart), the tool's
//! overhead per service update (its request to its "converged", minus Swarm's own rollout
//! time from the run's JSON `timings`) and the peak memory of its runs.
//! Last, the service gaps while a proxy already in host mode is pinned to another label,
//! by `pin-proxy` and by hand ([`gaps`]).
//!
//! `api`: Engine API calls and bytes per command with 10 and with 300 extra services and 500
//! extra configs; only list calls may grow with the swarm's size.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

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

/// One run of the tool's commands: duration, overheads, Swarm's own time, peak memory, and
/// the proxy tasks each command created per slot.
struct ToolRun {
    took: Duration,
    overheads: Vec<Duration>,
    /// Swarm's part: [`swarm_span`] of each command, summed.
    swarm: Duration,
    max_rss_kib: i64,
    created: Vec<PerSlot>,
}

const PIN_PROXY: &[&str] = &["pin-proxy", "--label", "role=dtr", "--yes", "-o", "json"];
const HOST_MODE: &[&str] = &[
    "host-mode",
    "--http",
    "7080",
    "--https",
    "7443",
    "--yes",
    "-o",
    "json",
];
const MIGRATE: &[&str] = &[
    "migrate", "--label", "role=dtr", "--http", "7080", "--https", "7443", "--yes", "-o", "json",
];

/// Runs `commands` one after the other; `None` when one fails.
fn tool(lab: &Lab, commands: &[&[&str]]) -> Option<ToolRun> {
    let mut took = Duration::ZERO;
    let mut overheads = Vec::new();
    let mut swarm = Duration::ZERO;
    let mut max_rss_kib = 0;
    let mut created = Vec::new();
    for args in commands {
        let since = SystemTime::now();
        let command = lab.interlockctl_command(args).command();
        // The tool from spawn to exit, and nothing else: not the probes of `swarm_span`.
        let start = Instant::now();
        let finished = run_measured(command);
        took += start.elapsed();
        if !finished.success {
            println!("  interlockctl {} failed", args[0]);
            return None;
        }
        created.extend(created_per_slot(lab, since, &[]));
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
        created,
    })
}

/// Proxy tasks created per replica slot (slot 1 first), and of those the ones whose
/// container started.
#[derive(Debug, Clone, Default)]
struct PerSlot(BTreeMap<u64, Created>);

#[derive(Debug, Clone, Copy, Default)]
struct Created {
    tasks: usize,
    started: usize,
}

impl std::fmt::Display for PerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let counts = |of: fn(&Created) -> usize| {
            let counts: Vec<String> = self.0.values().map(|c| of(c).to_string()).collect();
            counts.join("/")
        };
        write!(
            f,
            "{} (started {})",
            counts(|c| c.tasks),
            counts(|c| c.started)
        )
    }
}

/// The proxy tasks Swarm created from `since`, per slot, one count for each part of the time
/// since then that `splits` cut (each split starts the next part), from one read of the
/// tasks Swarm keeps (its task history retention, 5 per slot on the lab, caps a slot's count
/// at 5 when the task from before `since` is gone); a task counts as started when its
/// container started (a task Swarm replaced before it ran has none, or one never started).
fn created_per_slot(lab: &Lab, since: SystemTime, splits: &[SystemTime]) -> Vec<PerSlot> {
    let ids = lab.docker(&["service", "ps", "-q", "--no-trunc", PROXY]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let started = started_proxy_tasks(lab, since);
    let mut parts = vec![PerSlot::default(); splits.len() + 1];
    let tasks: Value = serde_json::from_str(&lab.docker(&[&["inspect"][..], &ids[..]].concat()))
        .expect("docker inspect prints JSON");
    for task in tasks.as_array().into_iter().flatten() {
        let Some(created) = task["CreatedAt"]
            .as_str()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        else {
            continue;
        };
        let slot = task["Slot"].as_u64().unwrap_or(0);
        for part in &mut parts {
            part.0.entry(slot).or_default();
        }
        if created < since {
            continue;
        }
        let count = parts[splits.partition_point(|split| *split <= created)]
            .0
            .entry(slot)
            .or_default();
        count.tasks += 1;
        count.started += usize::from(task["ID"].as_str().is_some_and(|id| started.contains(id)));
    }
    parts
}

/// The proxy tasks whose container started from `since` until now, from each node's engine
/// events (kept after the container is gone).
fn started_proxy_tasks(lab: &Lab, since: SystemTime) -> BTreeSet<String> {
    let unix = |time: SystemTime| {
        let seconds = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        format!("{seconds:.6}")
    };
    let (since, until) = (unix(since), unix(SystemTime::now()));
    let service = format!("label=com.docker.swarm.service.name={PROXY}");
    let mut started = BTreeSet::new();
    for node in lab.node_engines.keys() {
        let events = lab.docker_on(
            node,
            &[
                "events",
                "--since",
                &since,
                "--until",
                &until,
                "--filter",
                "type=container",
                "--filter",
                "event=start",
                "--filter",
                &service,
                "--format",
                "{{index .Actor.Attributes \"com.docker.swarm.task.id\"}}",
            ],
        );
        started.extend(events.split_whitespace().map(str::to_owned));
    }
    started
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

/// One run of `runbook.sh`: its duration and the proxy tasks each part created per slot.
struct RunbookRun {
    took: Duration,
    created: Vec<PerSlot>,
}

fn runbook(lab: &Lab, args: &[&str]) -> Option<RunbookRun> {
    let script = lab_support::manifest_dir().join("tests/bench/runbook.sh");
    let since = SystemTime::now();
    let start = Instant::now();
    let output = Command::new("bash")
        .arg(script)
        .args(args)
        .env("DOCKER_HOST", &lab.docker_host)
        .stderr(Stdio::null())
        .output()
        .expect("bash runs");
    let took = start.elapsed();
    if !output.status.success() {
        println!("  runbook.sh failed");
        return None;
    }
    let part_2 = String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("part 2 starts at "))
        .and_then(|seconds| seconds.trim().parse::<f64>().ok())
        .map(|seconds| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(seconds));
    let created = created_per_slot(lab, since, part_2.as_slice());
    Some(RunbookRun { took, created })
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
    compare(&lab, lab_support::reset, true);
    println!(
        "with a core that never writes the proxy (the setting of the figures before rollout v2):"
    );
    compare(&lab, lab_support::reset_without_core_writer, false);
    gaps(&lab);
    lab_support::reset();
}

/// What one round measured of each way.
#[derive(Default)]
struct Ways {
    pair: Vec<Samples>,
    migrate: Vec<Samples>,
    books: Vec<Samples>,
    swarms: Vec<Samples>,
    overheads: Vec<Samples>,
    max_rss_kib: i64,
    created: BTreeMap<&'static str, Vec<PerSlot>>,
}

/// `ROUNDS` verified rounds of the tool against the runbook, each from `reset`: the pair
/// `pin-proxy` + `host-mode`, `migrate` when `with_migrate`, and `runbook.sh`, in an order
/// that rotates every round, so each sees the same drift of the machine.
fn compare(lab: &Lab, reset: fn(), with_migrate: bool) {
    let mut ways = Ways::default();
    let mut order = vec!["pair", "runbook"];
    if with_migrate {
        order.insert(1, "migrate");
    }
    for round in 0..ROUNDS {
        let mut pair = None;
        let mut migrate = None;
        let mut book = None;
        for turn in 0..order.len() {
            reset();
            match order[(round + turn) % order.len()] {
                "pair" => {
                    pair = tool(lab, &[PIN_PROXY, HOST_MODE])
                        .filter(|_| verdict(lab, "interlockctl pin-proxy + host-mode"));
                }
                "migrate" => {
                    migrate =
                        tool(lab, &[MIGRATE]).filter(|_| verdict(lab, "interlockctl migrate"));
                }
                _ => book = runbook(lab, &[]).filter(|_| verdict(lab, "runbook")),
            }
        }
        let (Some(run), Some(book)) = (pair, book) else {
            continue;
        };
        if with_migrate && migrate.is_none() {
            continue;
        }
        let migrate_took = migrate
            .as_ref()
            .map(|m| format!("migrate {:.2} s, ", m.took.as_secs_f64()))
            .unwrap_or_default();
        println!(
            "  round {}: pin-proxy + host-mode {:.2} s (of which Swarm {:.2} s), {migrate_took}runbook {:.2} s (all verified)",
            round + 1,
            run.took.as_secs_f64(),
            run.swarm.as_secs_f64(),
            book.took.as_secs_f64()
        );
        ways.pair.push(Samples::of(run.took));
        ways.swarms.push(Samples::of(run.swarm));
        ways.books.push(Samples::of(book.took));
        ways.overheads
            .extend(run.overheads.into_iter().map(Samples::of));
        ways.max_rss_kib = ways.max_rss_kib.max(run.max_rss_kib);
        let mut created = |way: &'static str, slots: Option<&PerSlot>| {
            ways.created.entry(way).or_default().extend(slots.cloned());
        };
        created("runbook part 1", book.created.first());
        created("runbook part 2", book.created.get(1));
        created("pin-proxy", run.created.first());
        created("host-mode", run.created.get(1));
        if let Some(migrate) = migrate {
            created("migrate", migrate.created.first());
            ways.overheads
                .extend(migrate.overheads.into_iter().map(Samples::of));
            ways.migrate.push(Samples::of(migrate.took));
        }
    }
    if ways.pair.is_empty() {
        println!("  no round was verified on every side");
        return;
    }
    let rounds = ways.pair.len();
    let (pair, books) = (Samples::merge(ways.pair), Samples::merge(ways.books));
    let migrate = (!ways.migrate.is_empty()).then(|| Samples::merge(ways.migrate));
    println!(
        "  end to end   interlockctl pin-proxy + host-mode: {}",
        pair.summary()
    );
    if let Some(migrate) = &migrate {
        println!(
            "               interlockctl migrate:               {}",
            migrate.summary()
        );
    }
    println!(
        "               runbook.sh (docker CLI):             {}",
        books.summary()
    );
    println!(
        "               ratio of medians, pin-proxy + host-mode: {:.2} (target <= 0.80)",
        ratio(&pair, &books)
    );
    if let Some(migrate) = &migrate {
        println!(
            "               ratio of medians, migrate: {:.2} (target <= 0.50), {rounds} rounds, every way verified in each",
            ratio(migrate, &books)
        );
    }
    let swarms = Samples::merge(ways.swarms);
    println!(
        "  Swarm        its own rollouts in pin-proxy + host-mode: {}",
        swarms.summary()
    );
    println!(
        "               against the runbook: {:.2} (what the ratio would be if the tool took no time of its own)",
        ratio(&swarms, &books)
    );
    println!(
        "  re-created   proxy tasks created per slot (slot 1/slot 2), and of those started, each round (target: 1 per slot per run):"
    );
    for (way, counts) in &ways.created {
        let counts: Vec<String> = counts.iter().map(ToString::to_string).collect();
        println!("               {way:<16} {}", counts.join(", "));
    }
    let overheads = Samples::merge(ways.overheads);
    println!(
        "  overhead     per service update, beyond Swarm's rollout: {} (target: median <= 300 ms)",
        overheads.summary()
    );
    println!(
        "  memory       peak RSS of one interlockctl run: {:.1} MiB",
        mib(ways.max_rss_kib)
    );
}

/// Service gaps while a proxy already in host mode changes: from a host-mode fixture (the
/// runbook done with `migrate`, then the proxy's update parallelism set to 1), the proxy is pinned to another label that the same two
/// nodes carry (`edge=yes`), once by `pin-proxy` and once by `runbook.sh repin`. Each
/// proxy node's port 7080 is probed every 100 ms from the change's start until the swarm has
/// settled (the core's swap included); per node the failed probes and the longest gap, and
/// whether at any moment no node answered.
fn gaps(lab: &Lab) {
    println!(
        "service gaps while a host-mode proxy is pinned to another label (probes every 100 ms):"
    );
    for way in ["interlockctl pin-proxy", "runbook.sh repin"] {
        lab_support::reset();
        let ready = tool(lab, &[MIGRATE]).is_some() && verdict(lab, "host-mode fixture");
        if !ready {
            continue;
        }
        // One task at a time, as the Interlock core sets up its proxies (the fixture replaces
        // both at once to keep the suite fast, which leaves no node serving in any rollout).
        lab.docker(&[
            "service",
            "update",
            "--quiet",
            "--detach",
            "--update-parallelism",
            "1",
            PROXY,
        ]);
        for node in lab
            .docker(&["node", "ls", "-q", "--filter", "node.label=role=dtr"])
            .split_whitespace()
        {
            lab.docker(&["node", "update", "--label-add", "edge=yes", node]);
        }
        let probing = Probing::start(lab.dtr_addrs.clone());
        // The command's own time (`took` of its run), not the counting that follows it.
        let took = if way.starts_with("interlockctl") {
            tool(
                lab,
                &[&["pin-proxy", "--label", "edge=yes", "--yes", "-o", "json"]],
            )
            .map(|run| run.took)
        } else {
            runbook(lab, &["repin", "edge=yes"]).map(|run| run.took)
        };
        lab.settle();
        let probes = probing.stop();
        let Some(took) = took else {
            println!("  {way}: failed");
            continue;
        };
        println!(
            "  {way:<24} ran {:.2} s, probed {:.2} s:",
            took.as_secs_f64(),
            probes.span.as_secs_f64()
        );
        for (addr, node) in &probes.nodes {
            println!(
                "               {addr}: {} of {} probes failed, longest gap {} ms",
                node.failed,
                node.probes,
                node.longest_gap.as_millis()
            );
        }
        println!(
            "               every node down at once: {}",
            if probes.all_down == 0 {
                "never".to_owned()
            } else {
                format!("{} probe rounds", probes.all_down)
            }
        );
    }
}

/// What the probes saw of one node.
#[derive(Default)]
struct NodeProbes {
    probes: usize,
    failed: usize,
    longest_gap: Duration,
}

/// What the probes saw.
struct Probed {
    span: Duration,
    nodes: BTreeMap<String, NodeProbes>,
    /// Rounds in which no node answered.
    all_down: usize,
}

/// A thread probing every node's port 7080 each 100 ms until stopped.
struct Probing {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Probed>,
}

impl Probing {
    fn start(addrs: Vec<String>) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut nodes: BTreeMap<String, NodeProbes> = BTreeMap::new();
            let mut down_since: BTreeMap<String, Instant> = BTreeMap::new();
            let mut all_down = 0;
            while !stopped.load(Ordering::SeqCst) {
                let round = Instant::now();
                let mut answered = 0;
                for addr in &addrs {
                    let ok = probe(addr, 7080);
                    let node = nodes.entry(addr.clone()).or_default();
                    node.probes += 1;
                    let now = Instant::now();
                    if ok {
                        answered += 1;
                        if let Some(since) = down_since.remove(addr) {
                            node.longest_gap = node.longest_gap.max(now - since);
                        }
                    } else {
                        node.failed += 1;
                        let since = *down_since.entry(addr.clone()).or_insert(now);
                        node.longest_gap = node.longest_gap.max(now - since);
                    }
                }
                if answered == 0 {
                    all_down += 1;
                }
                std::thread::sleep(Duration::from_millis(100).saturating_sub(round.elapsed()));
            }
            Probed {
                span: start.elapsed(),
                nodes,
                all_down,
            }
        });
        Probing { stop, thread }
    }

    fn stop(self) -> Probed {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("the probing thread ends")
    }
}

/// One HTTP GET of `addr:port` within 300 ms: whether the stand-in proxy answered.
fn probe(addr: &str, port: u16) -> bool {
    let timeout = Duration::from_millis(300);
    lab_support::http_get_once(addr, port, timeout, timeout).is_some()
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

//! An in-process fake Docker Engine for fast end-to-end tests of the real binary.
//!
//! [`FakeEngine::start`] serves the Engine API over HTTP/1.1 on `127.0.0.1:<free port>` from a
//! background thread with its own tokio runtime, so the tests stay synchronous and point the
//! binary at it with `DOCKER_HOST=tcp://127.0.0.1:PORT`. Behind it sits [`Swarm`], an
//! in-memory swarm shaped like the lab's (`tests/lab/lab.sh`): four nodes, the Interlock core
//! with `com.docker.ucp.interlock.conf-1` (the lab's `core-config.toml`) at `/config.toml`, and
//! the proxy with 2 replicas, the UCP default constraints and ingress ports 80 and 8443.
//!
//! What it emulates, just enough for interlockctl:
//! - service inspect and update with optimistic concurrency (`version` must be the current
//!   `Version.Index`, else "update out of sequence"), `PreviousSpec`, `rollback=previous`;
//! - tasks that converge at once: an update re-creates the tasks whose spec changed and
//!   places them on Ready, Active nodes that satisfy the constraints, spreading, with one task
//!   per node for each host-mode published port; host-mode ports show in the task's
//!   `Status.PortStatus` (twice, as the engine lists IPv4 and IPv6);
//! - Swarm's quirks the tool must cope with: a task whose node still satisfies new
//!   constraints survives a constraints-only update, and such a survivor is not re-created by a
//!   later ports-only update (it keeps its old ports; `tests/lab/NOTES.md`); the `_up-to-date` task
//!   filter; an update that re-creates no task leaves no `UpdateStatus`;
//! - the Interlock core failing on a config it cannot load: a task whose `/config.toml` holds
//!   `PollInterval = "soon"` exits 1; with `FailureAction = rollback` Swarm restores the
//!   previous spec (`rollback_completed`, `PreviousSpec` cleared; `rollback_paused` when the
//!   restored spec's new tasks fail too), else the update pauses;
//! - the Interlock core creating a missing proxy: a core update whose new task loads its
//!   config creates the proxy service of every extension that has none (a new service
//!   cluster's), from the extension's settings;
//! - the Interlock core writing the proxy (`Swarm::with_core_writing_the_proxy`): each core
//!   update whose new task loads its config swaps the nginx config rendered from it onto the
//!   proxy, as the lab's stand-in does;
//! - a rollout Swarm's updater is slow to mark: a spec change whose tasks are not replaced
//!   and whose update status stays as it was for a few inspects (`unmarked_rollout`);
//! - service removal;
//! - `GET /events`: a subscription that stays open and never sends an event (what a `labels
//!   watch` does at start is tested here; events themselves on the lab);
//! - configs: create (409 on a taken name), list with a name-prefix filter, inspect;
//! - service, node and network lists; task lists filtered by `service`, `_up-to-date`,
//!   `desired-state`;
//! - `/info` of a worker (`ControlAvailable: false`), whose swarm calls answer 503, and
//!   `/version` of an engine of any API version.
//!
//! What it deliberately does not emulate: global services, restart policies (a failed task is
//! not restarted), update parallelism, delays and `start-first` ordering (an update happens in
//! one step), node failures, network attachments and VIPs, ingress port conflicts, secrets, task history
//! retention (every task is kept), label/ID filters other than those named above, ID-prefix
//! lookups, and every endpoint interlockctl does not call (they answer 404 and are logged).
//!
//! Faults ([`Faults`]) are injected per engine: cut the connection on the k-th request, let
//! someone else update a service behind the tool's back or run a rollout on it, take a config
//! name just before the tool creates it, leave a service's new tasks pending, make those of
//! one spec exit 1, never bind a service's host ports, refuse a service's updates, keep the
//! core from creating a missing proxy or have it create one with another replica count. Every request is logged ([`FakeEngine::requests`]) so
//! a test can count them and see what was answered.
//!
//! Layout: this file holds the handle, the faults and the HTTP server; `swarm.rs` the model
//! and the fixture specs; `api.rs` the routes, status codes and error messages.
//!
//! The server uses hyper's `server` feature, which Cargo.toml does not ask for itself: bollard's
//! `hyperlocal` dependency turns it on. If that ever changes, add `"server"` to hyper's features
//! under `[dev-dependencies]`.

#![allow(dead_code)] // each test binary uses its own subset

mod api;
mod swarm;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

pub use swarm::Swarm;

use api::{percent_decode, route, strip_version};

/// The Interlock core service.
pub const CORE: &str = "ucp-interlock";
/// The default extension's proxy service.
pub const PROXY: &str = "ucp-interlock-proxy";
/// The core config lineage's base name.
pub const CONF: &str = "com.docker.ucp.interlock.conf";
/// The lab's core config (ProxyReplicas 2, ingress, ports 80 and 8443, UCP constraints).
pub const CORE_CONFIG: &str = include_str!("../lab/core-config.toml");
/// The config a task of the core cannot load (the lab's stand-in core fails on it too).
pub const UNLOADABLE: &str = "PollInterval = \"soon\"";
/// `UpdateConfig.Monitor` of the fixture services: 100 ms, so waits are short.
pub const MONITOR_NANOS: u64 = 100_000_000;
/// Where the proxy mounts the nginx config a core that writes the proxy renders.
pub const PROXY_CONFIG_PATH: &str = "/etc/nginx/nginx.conf";
/// The label someone else's concurrent update adds to a service's spec.
pub const CONCURRENT_LABEL: &str = "com.example.changed-by";

/// The UCP default placement constraints of the proxy and the extension.
pub const UCP_CONSTRAINTS: [&str; 2] = [
    "node.labels.com.docker.ucp.orchestrator.swarm==true",
    "node.platform.os==linux",
];

/// `<base>-<n>`: `conf(2)` is `com.docker.ucp.interlock.conf-2`.
pub fn conf(n: u32) -> String {
    format!("{CONF}-{n}")
}

// ---------------------------------------------------------------------------------------
// Faults

/// When a cut happens relative to the engine's handling of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutWhen {
    /// The request is lost: nothing happens and no answer comes.
    BeforeHandling,
    /// The engine does the work (creates, updates), then the answer is lost.
    AfterHandling,
}

/// What triggers someone else's update of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Right after the engine answered the n-th inspect of the service (1-based).
    AfterInspect(usize),
    /// Right before the engine handles the first update request for the service.
    BeforeFirstUpdate,
}

/// Someone else updates a service once: adds [`CONCURRENT_LABEL`] to its spec's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrentUpdate {
    /// The service's name.
    pub service: String,
    /// When.
    pub trigger: Trigger,
}

/// Faults to inject; all off by default.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Close the connection without an answer on the k-th request (1-based, all requests
    /// counted), once.
    pub cut: Option<(usize, CutWhen)>,
    /// Someone else's update of a service behind the tool's back, once.
    pub concurrent_update: Option<ConcurrentUpdate>,
    /// Someone else creates a config `(name, data)` right before the first config create.
    pub config_taken_before_create: Option<(String, String)>,
    /// Services whose new tasks are never scheduled (they stay `pending`).
    pub never_scheduled: Vec<String>,
    /// `(service, text)`: new tasks of the service whose `TaskTemplate` (as JSON) contains
    /// `text` exit 1 right after they start, as with a spec the container cannot run with.
    pub failing_tasks: Vec<(String, String)>,
    /// `(service, n)`: a rollout someone else started runs on the service (`updating`) until
    /// the n-th inspect of it, then completes, having scaled it by one replica (so a plan
    /// made before the rollout ended differs from one made after it).
    pub foreign_rollout: Option<(String, usize)>,
    /// Services whose running tasks never bind their host ports (stale however often they
    /// are re-created).
    pub host_ports_never_bound: Vec<String>,
    /// `(service, n)` each: the n-th and every later update request of the service is
    /// refused with a 500 (an engine that stops accepting changes).
    pub updates_refused_from: Vec<(String, usize)>,
    /// The core never creates a missing proxy (as a core that cannot reach the engine).
    pub core_creates_no_proxy: bool,
    /// The core creates a missing proxy with this replica count, whatever its extension's
    /// `ProxyReplicas` (as an Interlock that does not apply it), so the run must update it.
    pub created_proxy_replicas: Option<u64>,
    /// Someone else puts a service's old image back once it ran another for a while (a
    /// reconciler of the old version, as a core whose config still names the old images).
    pub image_put_back: Option<ImagePutBack>,
    /// Someone else changes a service's tasks right after an update of another one (the
    /// Interlock core swapping a new nginx config onto the proxy once it loaded its new
    /// config), and Swarm's updater is slow to mark that rollout.
    pub unmarked_rollout: Option<UnmarkedRollout>,
    /// A core that writes the proxy renders the same nginx config from its new config as
    /// from the old one, and so swaps nothing.
    pub core_renders_nothing_new: bool,
}

/// The first inspect of `service` at least `after` since the fake first saw it on another
/// image than `image` sets `image` again, before answering; once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePutBack {
    pub service: String,
    pub image: String,
    pub after: std::time::Duration,
    /// When the fake first saw the service on another image.
    pub since: Option<std::time::Instant>,
}

/// A change of `service`'s task template made right after the engine handled an update of
/// `after_update_of`. For the next `held` inspects of `service` the change is not rolled out
/// and not marked: its tasks run the older spec, its update status is what it was. Then it
/// rolls out at once and completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmarkedRollout {
    pub service: String,
    pub after_update_of: String,
    pub held: usize,
}

// ---------------------------------------------------------------------------------------
// The HTTP side

/// One request the engine received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// 1-based position among all requests.
    pub n: usize,
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path without the `/vX.Y` prefix bollard adds.
    pub path: String,
    /// The decoded query string.
    pub query: String,
    /// The status answered; `None` when the connection was cut instead.
    pub status: Option<u16>,
}

impl LoggedRequest {
    /// `POST /configs/create`: whether this request asks for a change.
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }
}

impl std::fmt::Display for LoggedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{} {} {}", self.n, self.method, self.path)?;
        if !self.query.is_empty() {
            write!(f, "?{}", self.query)?;
        }
        match self.status {
            Some(status) => write!(f, " -> {status}"),
            None => write!(f, " -> cut"),
        }
    }
}

#[derive(Debug)]
struct Shared {
    swarm: Swarm,
    log: Vec<LoggedRequest>,
    cut_fired: bool,
}

/// The error that makes hyper close the connection without writing a response.
#[derive(Debug)]
struct CutConnection;

impl std::fmt::Display for CutConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection cut by fault injection")
    }
}

impl std::error::Error for CutConnection {}

/// A running fake engine; stops when dropped.
pub struct FakeEngine {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeEngine {
    /// Serves [`Swarm::lab`].
    pub fn start() -> Self {
        Self::start_with(Swarm::lab())
    }

    /// Serves the lab swarm after `arrange` changed it (faults, state).
    pub fn start_arranged(arrange: impl FnOnce(&mut Swarm)) -> Self {
        let mut swarm = Swarm::lab();
        arrange(&mut swarm);
        Self::start_with(swarm)
    }

    /// Serves `swarm`.
    pub fn start_with(swarm: Swarm) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Mutex::new(Shared {
            swarm,
            log: Vec::new(),
            cut_fired: false,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            std::thread::spawn(move || serve(listener, shared, stop))
        };
        FakeEngine {
            addr,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// `tcp://127.0.0.1:PORT`.
    pub fn docker_host(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// Reads or changes the swarm.
    pub fn with<R>(&self, f: impl FnOnce(&mut Swarm) -> R) -> R {
        f(&mut self.lock().swarm)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// Forgets the logged requests; the cut counter keeps counting from here.
    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    /// Cuts the connection of the k-th request from now (1-based).
    pub fn cut_at(&self, k: usize, when: CutWhen) {
        let mut shared = self.lock();
        let at = shared.log.len() + k;
        shared.swarm.faults.cut = Some((at, when));
        shared.cut_fired = false;
    }

    /// Whether the planned cut happened.
    pub fn cut_fired(&self) -> bool {
        self.lock().cut_fired
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: TcpListener, shared: Arc<Mutex<Shared>>, stop: Arc<AtomicBool>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let shared = Arc::clone(&shared);
                    async move { handle(&shared, request).await }
                });
                // A cut ends the connection with an error; nothing to report.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// A whole JSON answer, or the event stream.
type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

async fn handle(
    shared: &Mutex<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, CutConnection> {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = strip_version(uri.path()).to_owned();
    let events = path == "/events";
    let query = uri.query().unwrap_or_default().to_owned();

    let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
    let n = shared.log.len() + 1;
    let cut = match shared.swarm.faults.cut {
        Some((at, when)) if at == n => Some(when),
        _ => None,
    };
    let answer = match cut {
        Some(CutWhen::BeforeHandling) => None,
        Some(CutWhen::AfterHandling) => {
            route(&mut shared.swarm, &method, &path, &query, &body);
            None
        }
        None => Some(route(&mut shared.swarm, &method, &path, &query, &body)),
    };
    shared.log.push(LoggedRequest {
        n,
        method: method.to_string(),
        path,
        query: percent_decode(&query),
        status: answer.as_ref().map(|(status, _)| status.as_u16()),
    });
    let Some((status, value)) = answer else {
        shared.cut_fired = true;
        return Err(CutConnection);
    };
    let body = if events && status.is_success() {
        // Subscribed: a stream that stays open and quiet (no event is ever emitted).
        let quiet = futures_util::stream::pending::<
            Result<hyper::body::Frame<Bytes>, std::convert::Infallible>,
        >();
        http_body_util::StreamBody::new(quiet).boxed()
    } else {
        Full::new(Bytes::from(value.to_string())).boxed()
    };
    let response = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .expect("a valid response");
    Ok(response)
}

/// For tests of the fake itself: one raw HTTP/1.1 GET, returning what came back (possibly
/// nothing, when the connection was cut).
pub fn raw_get(engine: &FakeEngine, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(engine.addr).expect("connect to the fake engine");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

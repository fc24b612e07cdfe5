//! A TCP front for the lab manager's engine socket, for tests that must act at one chosen
//! Engine API request of a run: interlockctl connects to it (`DOCKER_HOST=tcp://...`), and
//! it forwards every request and answer (keep-alive connections and event streams included)
//! except where the test's rule says otherwise for a request ([`Act`]). It sees requests one
//! at a time per connection, as HTTP/1.1 without pipelining sends them: a request is only
//! sent once the answer to the previous one on that connection has arrived.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the front does with one request.
pub enum Act {
    /// Forwards it and its answer.
    Forward,
    /// Lets the engine handle it, then drops the answer and closes the connection, as when
    /// a laptop's VPN drops mid-run.
    Cut,
    /// Lets the engine handle it and keeps the answer: the run waits for it until killed.
    Hold,
    /// Holds it until the gate opens, then forwards it.
    After(Arc<Gate>),
    /// Forwards it with its body changed by the function (the Content-Length follows), as
    /// an engine that stores something else than it was sent.
    Rewrite(fn(&[u8]) -> Vec<u8>),
}

/// Opens once `expected` requests arrived at it (or its time limit passed), so runs that
/// each send one reach the same point before any goes on.
pub struct Gate {
    expected: usize,
    arrived: Mutex<usize>,
    opened: Condvar,
    limit: Duration,
}

impl Gate {
    /// A gate for `expected` requests, open anyway after `limit`.
    pub fn new(expected: usize, limit: Duration) -> Arc<Gate> {
        Arc::new(Gate {
            expected,
            arrived: Mutex::new(0),
            opened: Condvar::new(),
            limit,
        })
    }

    /// How many requests arrived so far.
    pub fn arrived(&self) -> usize {
        *self.arrived.lock().unwrap()
    }

    fn pass(&self) {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.opened.notify_all();
        let deadline = Instant::now() + self.limit;
        while *arrived < self.expected && Instant::now() < deadline {
            arrived = self
                .opened
                .wait_timeout(arrived, deadline - Instant::now())
                .unwrap()
                .0;
        }
    }
}

/// One request of a run, told apart by what it asks: the `nth` one that `matches`, counted
/// once `after` service updates went through. A run's steps are found this way whatever else
/// it asks in between (inspects, task lists, the event stream).
#[derive(Clone, Copy)]
pub struct Nth {
    pub matches: fn(&str) -> bool,
    pub after: usize,
    pub nth: usize,
}

/// The request of each step of a `pin-proxy` (or `host-mode`) run, in order: creating the
/// config, updating the core, updating the proxy, and the first wait for the rollouts once
/// both updates went through.
pub const RUN_STEPS: [Nth; 4] = [
    Nth {
        matches: is_config_create,
        after: 0,
        nth: 1,
    },
    Nth {
        matches: is_service_update,
        after: 0,
        nth: 1,
    },
    Nth {
        matches: is_service_update,
        after: 0,
        nth: 2,
    },
    Nth {
        matches: is_up_to_date_tasks,
        after: 2,
        nth: 1,
    },
];

impl Nth {
    /// A rule for a [`Front`] that acts with `act` on this request and forwards every other.
    pub fn rule(
        self,
        mut act: impl FnMut() -> Act + Send + 'static,
    ) -> impl FnMut(&str) -> Act + Send + 'static {
        let (mut updates, mut seen) = (0, 0);
        move |request| {
            let counted = updates >= self.after && (self.matches)(request);
            updates += usize::from(is_service_update(request));
            seen += usize::from(counted);
            if counted && seen == self.nth {
                act()
            } else {
                Act::Forward
            }
        }
    }
}

pub fn is_config_create(request: &str) -> bool {
    request.starts_with("POST /configs/create")
}

pub fn is_service_update(request: &str) -> bool {
    request.starts_with("POST /services/") && request.contains("/update")
}

/// The task list a run reads to count converged tasks (`_up-to-date`).
pub fn is_up_to_date_tasks(request: &str) -> bool {
    request.starts_with("GET /tasks") && request.contains("_up-to-date")
}

type Rule = Box<dyn FnMut(&str) -> Act + Send>;

struct Shared {
    socket: PathBuf,
    rule: Mutex<Rule>,
    log: Mutex<Vec<String>>,
    acted: (Mutex<Option<String>>, Condvar),
    stopped: AtomicBool,
}

/// A running front; stops accepting when dropped.
pub struct Front {
    port: u16,
    shared: Arc<Shared>,
}

impl Front {
    /// Serves on a free loopback port; `rule` decides per request (`METHOD /path?query`),
    /// in the order the requests arrive.
    pub fn start(socket: &Path, rule: impl FnMut(&str) -> Act + Send + 'static) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("its address").port();
        let shared = Arc::new(Shared {
            socket: socket.to_owned(),
            rule: Mutex::new(Box::new(rule)),
            log: Mutex::new(Vec::new()),
            acted: (Mutex::new(None), Condvar::new()),
            stopped: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let shared = Arc::clone(&accepting);
                std::thread::spawn(move || serve(client, &shared));
            }
        });
        Front { port, shared }
    }

    /// `tcp://127.0.0.1:PORT`, for `DOCKER_HOST`.
    pub fn docker_host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Every request seen so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Waits (at most `limit`) until a request was cut or held; that request and the status
    /// line of the engine's answer to it (`METHOD /path -> HTTP/1.1 200 OK`).
    pub fn acted(&self, limit: Duration) -> Option<String> {
        let (acted, signal) = &self.shared.acted;
        let guard = acted.lock().unwrap();
        let (guard, _) = signal
            .wait_timeout_while(guard, limit, |acted| acted.is_none())
            .unwrap();
        guard.clone()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One client connection: requests in order, each acted on as the rule says.
fn serve(client: TcpStream, shared: &Shared) {
    let Ok(engine) = UnixStream::connect(&shared.socket) else {
        return;
    };
    let (mut answers, mut to_client) = (
        engine.try_clone().expect("a second handle"),
        client.try_clone().expect("a second handle"),
    );
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut answers, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    let mut requests = BufReader::new(client.try_clone().expect("a second handle"));
    let mut to_engine = engine;
    while let Some((line, request)) = read_request(&mut requests) {
        let act = (shared.rule.lock().unwrap())(&line);
        shared.log.lock().unwrap().push(line.clone());
        let request = match &act {
            Act::Rewrite(change) => rewritten(&request, *change),
            _ => request,
        };
        match act {
            Act::Forward | Act::Rewrite(_) => {}
            Act::After(gate) => gate.pass(),
            Act::Cut | Act::Hold => {
                let answer = handle_elsewhere(&shared.socket, &request);
                let (acted, signal) = &shared.acted;
                *acted.lock().unwrap() = Some(format!("{line} -> {answer}"));
                signal.notify_all();
                if matches!(act, Act::Hold) {
                    while !shared.stopped.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = to_engine.shutdown(Shutdown::Both);
                return;
            }
        }
        if to_engine.write_all(&request).is_err() {
            return;
        }
    }
    let _ = to_engine.shutdown(Shutdown::Write);
}

/// The next request of a connection: `METHOD /path?query`, and its bytes; `None` at the
/// end of the connection.
fn read_request(reader: &mut impl BufRead) -> Option<(String, Vec<u8>)> {
    let mut bytes = Vec::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        bytes.extend_from_slice(line.as_bytes());
        let header = line.to_ascii_lowercase();
        assert!(
            !header.starts_with("transfer-encoding:"),
            "the front forwards only bodies with a Content-Length: {line}"
        );
        if let Some(value) = header.strip_prefix("content-length:") {
            length = value.trim().parse().expect("a Content-Length");
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    bytes.extend_from_slice(&body);
    let first = String::from_utf8_lossy(&bytes);
    let mut words = first.split_whitespace();
    let line = format!("{} {}", words.next()?, words.next()?);
    Some((line, bytes))
}

/// `request` with its body changed by `change` and its Content-Length set to match.
fn rewritten(request: &[u8], change: fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let split = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a request head")
        + 4;
    let body = change(&request[split..]);
    let head: String = String::from_utf8_lossy(&request[..split])
        .split_inclusive("\r\n")
        .map(|line| {
            if line.to_ascii_lowercase().starts_with("content-length:") {
                format!("Content-Length: {}\r\n", body.len())
            } else {
                line.to_owned()
            }
        })
        .collect();
    [head.into_bytes(), body].concat()
}

/// Sends `request` to the engine on a connection of its own and reads the answer, so the
/// engine has handled it when this returns; the answer goes nowhere.
/// Returns the status line of the engine's answer, empty when none came.
fn handle_elsewhere(socket: &Path, request: &[u8]) -> String {
    let mut engine = UnixStream::connect(socket).expect("the lab's engine socket");
    engine
        .write_all(request)
        .expect("the request reaches the engine");
    engine
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 8192];
    while !answer_complete(&answer) {
        match engine.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

/// Whether `data` holds a whole HTTP answer (Content-Length or chunked framing).
fn answer_complete(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let head = head.to_ascii_lowercase();
    if head.contains("transfer-encoding: chunked") {
        return body.ends_with("0\r\n\r\n");
    }
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().unwrap_or(0));
    body.len() >= length
}

//! The one way the tests run the binary, for the offline, fake-engine and lab tests alike:
//! [`interlockctl`] builds the command under a cleared environment (`PATH` kept,
//! `NO_COLOR=1`, `COLUMNS=100`, a fresh temporary `HOME`) in the crate root, and a finished
//! run is a [`Run`]: exit code, stdout, stderr, the JSON document parsed, and the whole run
//! rendered for snapshots and failure messages. A run in the background ([`Running`]) lets
//! a test watch its stderr and kill it.
//!
//! `tests/lab_support` builds the lab's runs on this module (it includes it as its own
//! child module), so a test file declares either `mod common;` or `mod lab_support;`, never
//! both. `fixtures.rs` lists the config fixtures and reads TOML text independently of the
//! code under test.
#![allow(dead_code)] // each test binary uses its own subset

mod fixtures;

#[allow(unused_imports)] // the lab tests read no fixtures
pub use fixtures::*;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The crate root; the binary runs here so paths in its output are relative.
pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// How long a run may take before the harness kills it: longer than any lab rollout with
/// the default `--timeout` of 5 minutes, so only a hang reaches it.
const DEFAULT_LIMIT: Duration = Duration::from_secs(360);

/// What one run of the binary did.
#[derive(Debug, Clone)]
pub struct Run {
    /// The arguments, for messages and snapshots.
    pub args: Vec<String>,
    /// The exit code; `-N` when the process was killed by signal N.
    pub code: i32,
    /// stdout, as UTF-8.
    pub stdout: String,
    /// stderr, as UTF-8.
    pub stderr: String,
}

impl Run {
    fn new(args: Vec<String>, status: ExitStatus, stdout: Vec<u8>, stderr: Vec<u8>) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Run {
            args,
            code: status
                .code()
                .or_else(|| status.signal().map(|signal| -signal))
                .expect("a process exits with a code or by a signal"),
            stdout: String::from_utf8(stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
        }
    }

    /// The run as one text: command line, exit code, stdout, stderr. Snapshots hold this.
    pub fn render(&self) -> String {
        format!(
            "$ interlockctl {}\nexit: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            shell_words(&self.args),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    /// stdout parsed as the one JSON document `-o json` promises.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| {
            panic!(
                "stdout is not one JSON document ({error}):\n{}",
                self.render()
            )
        })
    }

    /// Panics with the whole run unless it exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code:\n{}", self.render());
        self
    }

    /// The JSON report of a run that must have exited with `code`.
    #[track_caller]
    pub fn assert_report(&self, code: i32) -> Value {
        self.assert_code(code).json()
    }
}

/// The lines a unified diff removes or adds (`-`/`+`, without the file headers), in order.
pub fn changed_lines(diff: &str) -> Vec<&str> {
    diff.lines()
        .filter(|line| line.starts_with(['-', '+']))
        .filter(|line| !line.starts_with("---") && !line.starts_with("+++"))
        .collect()
}

/// A report's config changes as `(key, before, after)`, in the report's order.
pub fn config_changes(report: &Value) -> Vec<(&str, &str, &str)> {
    report["config"]["changes"]
        .as_array()
        .expect("config.changes")
        .iter()
        .map(|change| {
            (
                text(change, "key"),
                text(change, "before"),
                text(change, "after"),
            )
        })
        .collect()
}

/// The kinds of a report's actions, in order.
pub fn action_kinds(report: &Value) -> Vec<&str> {
    actions(report).map(|action| text(action, "kind")).collect()
}

/// The targets of a report's actions of `kind`, in order.
pub fn action_targets<'a>(report: &'a Value, kind: &str) -> Vec<&'a str> {
    actions(report)
        .filter(|action| action["kind"] == kind)
        .map(|action| text(action, "target"))
        .collect()
}

/// A report's actions, in order.
pub fn actions(report: &Value) -> impl Iterator<Item = &Value> {
    report["actions"].as_array().expect("actions").iter()
}

/// The string `field` of a report's object.
/// The error codes of a report, in order.
pub fn error_codes(report: &Value) -> Vec<&str> {
    report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["code"].as_str().expect("a code"))
        .collect()
}

pub fn text<'a>(object: &'a Value, field: &str) -> &'a str {
    object[field].as_str().expect("a string")
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|arg| {
            if !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@".contains(c))
            {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `interlockctl ARGS`, ready to run: see [`Interlockctl`].
pub fn interlockctl<S: AsRef<str>>(args: &[S]) -> Interlockctl {
    Interlockctl {
        args: args.iter().map(|a| a.as_ref().to_owned()).collect(),
        env: Vec::new(),
        dir: manifest_dir().to_owned(),
        stdin: Vec::new(),
        umask: None,
        limit: DEFAULT_LIMIT,
        home: tempfile::tempdir().expect("a temporary HOME"),
    }
}

/// One invocation of the binary: its arguments, what it gets besides the cleared
/// environment, and its own temporary `HOME` (removed when this is dropped, so keep it
/// alive while the process runs).
pub struct Interlockctl {
    args: Vec<String>,
    env: Vec<(String, OsString)>,
    dir: PathBuf,
    stdin: Vec<u8>,
    umask: Option<String>,
    limit: Duration,
    home: tempfile::TempDir,
}

impl Interlockctl {
    /// Sets an environment variable (`HOME` too, replacing the temporary one).
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Runs in `dir` instead of the crate root.
    pub fn dir(mut self, dir: &Path) -> Self {
        dir.clone_into(&mut self.dir);
        self
    }

    /// Feeds `bytes` on stdin (empty otherwise).
    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        bytes.clone_into(&mut self.stdin);
        self
    }

    /// Starts the binary from a shell that first sets this umask.
    pub fn umask(mut self, umask: &str) -> Self {
        self.umask = Some(umask.to_owned());
        self
    }

    /// Kills the run after `limit` (a hang fails the test instead of stalling the suite).
    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// The temporary `HOME`.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The arguments.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The process to start, for callers that arrange its stdio themselves (a terminal, a
    /// measurement); `self` must outlive it.
    pub fn command(&self) -> Command {
        let binary = env!("CARGO_BIN_EXE_interlockctl");
        let mut command = match &self.umask {
            None => Command::new(binary),
            Some(umask) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
                    .arg(binary);
                shell
            }
        };
        command
            .args(&self.args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .env("HOME", self.home.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs to completion.
    pub fn run(self) -> Run {
        let output = assert_cmd::Command::from_std(self.command())
            .write_stdin(self.stdin.clone())
            .timeout(self.limit)
            .output()
            .expect("the binary runs");
        Run::new(self.args, output.status, output.stdout, output.stderr)
    }

    /// Runs with stdin and stderr on a new pseudo-terminal (the process's controlling
    /// terminal, as in an operator's shell) and stdout captured: once the terminal shows
    /// `prompt`, `keys` are typed. The run's `stderr` is what the terminal showed.
    pub fn run_on_terminal(self, prompt: &str, keys: &[u8]) -> Run {
        let terminal = Terminal::open();
        let mut command = self.command();
        command
            .stdin(terminal.slave().expect("the terminal opens"))
            .stderr(terminal.slave().expect("the terminal opens"))
            .stdout(Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec: a new session whose
        // controlling terminal is the one on stdin.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("the binary starts");
        // The terminal ends (reads fail) once no process holds it open, this one included.
        drop(command);
        let mut screen = terminal.screen();
        let shown = screen.wait_for(prompt, self.limit);
        if shown {
            terminal.type_keys(keys);
        }
        let output = child.wait_with_output().expect("the binary ends");
        let mut run = Run::new(
            self.args,
            output.status,
            output.stdout,
            screen.rest().into_bytes(),
        );
        assert!(
            shown,
            "the terminal never showed {prompt:?}:\n{}",
            run.render()
        );
        run.stderr = run.stderr.replace("\r\n", "\n");
        run
    }

    /// Starts the run in the background, stdin closed, stdout and stderr captured as they
    /// come.
    pub fn spawn(self) -> Running {
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stdout = Captured::read(child.stdout.take().expect("piped stdout"));
        let stderr = Captured::read(child.stderr.take().expect("piped stderr"));
        Running {
            invocation: self,
            child,
            stdout,
            stderr,
        }
    }
}

/// One output pipe of a run in the background, read line by line as it comes.
struct Captured {
    text: Arc<(Mutex<Vec<u8>>, Condvar)>,
    reader: JoinHandle<()>,
}

impl Captured {
    fn read(pipe: impl Read + Send + 'static) -> Captured {
        let text = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let reader = {
            let text = Arc::clone(&text);
            std::thread::spawn(move || {
                let mut pipe = BufReader::new(pipe);
                loop {
                    let mut line = Vec::new();
                    let read = pipe.read_until(b'\n', &mut line).expect("the pipe reads");
                    let (bytes, arrived) = &*text;
                    bytes.lock().unwrap().extend_from_slice(&line);
                    arrived.notify_all();
                    if read == 0 {
                        return;
                    }
                }
            })
        };
        Captured { text, reader }
    }

    /// Waits until the text so far satisfies `seen`, for at most `limit`.
    fn wait_for(&self, limit: Duration, seen: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let (text, arrived) = &*self.text;
        let mut text = text.lock().unwrap();
        loop {
            if seen(&String::from_utf8_lossy(&text)) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            text = arrived.wait_timeout(text, deadline - now).unwrap().0;
        }
    }

    /// Everything read, once the pipe closed.
    fn rest(self) -> Vec<u8> {
        self.reader.join().expect("the pipe's reader ends");
        std::mem::take(&mut *self.text.0.lock().unwrap())
    }
}

/// A run in the background.
pub struct Running {
    invocation: Interlockctl,
    child: Child,
    stdout: Captured,
    stderr: Captured,
}

impl Running {
    /// Waits until its stderr so far satisfies `seen`, for at most `limit`; `false` when it
    /// did not in time.
    pub fn wait_for_stderr(&self, limit: Duration, seen: impl Fn(&str) -> bool) -> bool {
        self.stderr.wait_for(limit, seen)
    }

    /// Waits until its stdout so far satisfies `seen`, for at most `limit`; `false` when it
    /// did not in time.
    pub fn wait_for_stdout(&self, limit: Duration, seen: impl Fn(&str) -> bool) -> bool {
        self.stdout.wait_for(limit, seen)
    }

    /// Its stdout so far.
    pub fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stdout.text.0.lock().unwrap()).into_owned()
    }

    /// Sends SIGKILL.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL is sent");
    }

    /// Sends a signal (`libc::SIGTERM`, ...).
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("a pid");
        // SAFETY: a plain kill(2) to the child this handle owns (not reaped yet).
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "the signal is sent");
    }

    /// Waits for the process to end (killing it after the invocation's limit).
    pub fn finish(mut self) -> Run {
        let deadline = Instant::now() + self.invocation.limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("the child is waited for") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = self.stdout.rest();
        let stderr = self.stderr.rest();
        Run::new(self.invocation.args, status, stdout, stderr)
    }
}

/// The lines of a run that prints one JSON object per line (`labels watch -o json`).
pub fn ndjson(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Their `kind`s, in order.
pub fn kinds(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["kind"].as_str().unwrap()).collect()
}

/// A webhook receiver on 127.0.0.1: answers every request with `status`, or never when
/// `None`; keeps the bodies it got.
pub struct Receiver {
    pub url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    pub fn start(status: Option<u16>) -> Receiver {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://{}/hooks/T000/SECRET",
            listener.local_addr().unwrap()
        );
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&bodies);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                kept.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                match status {
                    Some(status) => {
                        let _ = write!(
                            &stream,
                            "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                    }
                    None => held.push(stream),
                }
            }
        });
        Receiver { url, bodies }
    }

    pub fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

/// Runs `interlockctl ARGS` with `stdin` (empty when `None`).
pub fn run_with_stdin<S: AsRef<str>>(args: &[S], stdin: Option<&[u8]>) -> Run {
    interlockctl(args).stdin(stdin.unwrap_or_default()).run()
}

/// Runs `interlockctl ARGS` with empty stdin.
pub fn run<S: AsRef<str>>(args: &[S]) -> Run {
    interlockctl(args).run()
}

/// A pseudo-terminal: the master side stays here, the slave side is the child's terminal.
struct Terminal {
    master: std::fs::File,
    slave_path: PathBuf,
}

impl Terminal {
    fn open() -> Terminal {
        use std::os::fd::FromRawFd;
        // SAFETY: plain libc calls on a descriptor this function owns; `ptsname_r` writes
        // at most `name.len()` bytes.
        unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
            assert_eq!(libc::grantpt(fd), 0, "grantpt");
            assert_eq!(libc::unlockpt(fd), 0, "unlockpt");
            let mut name = [0 as libc::c_char; 128];
            assert_eq!(libc::ptsname_r(fd, name.as_mut_ptr(), name.len()), 0);
            let slave_path = std::ffi::CStr::from_ptr(name.as_ptr())
                .to_string_lossy()
                .into_owned();
            Terminal {
                master: std::fs::File::from_raw_fd(fd),
                slave_path: PathBuf::from(slave_path),
            }
        }
    }

    /// A handle on the terminal for the child (opened without becoming ours).
    fn slave(&self) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&self.slave_path)
    }

    /// What the terminal shows, read as it comes.
    fn screen(&self) -> Screen {
        let mut master = self.master.try_clone().expect("a second handle");
        let shown = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let reader = {
            let shown = Arc::clone(&shown);
            std::thread::spawn(move || {
                let mut buffer = [0_u8; 4096];
                // Reading ends with EIO once the child closed its last handle.
                while let Ok(n @ 1..) = master.read(&mut buffer) {
                    shown.0.lock().unwrap().extend_from_slice(&buffer[..n]);
                    shown.1.notify_all();
                }
                shown.1.notify_all();
            })
        };
        Screen { shown, reader }
    }

    fn type_keys(&self, keys: &[u8]) {
        use std::io::Write;
        (&self.master)
            .write_all(keys)
            .expect("keys reach the terminal");
    }
}

/// The output of a [`Terminal`].
struct Screen {
    shown: Arc<(Mutex<Vec<u8>>, Condvar)>,
    reader: JoinHandle<()>,
}

impl Screen {
    fn wait_for(&mut self, text: &str, limit: Duration) -> bool {
        let (shown, arrived) = &*self.shown;
        let deadline = Instant::now() + limit;
        let mut bytes = shown.lock().unwrap();
        while !String::from_utf8_lossy(&bytes).contains(text) {
            let now = Instant::now();
            if now >= deadline || self.reader.is_finished() {
                return false;
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            bytes = arrived.wait_timeout(bytes, wait).unwrap().0;
        }
        true
    }

    /// Everything shown, once the child is gone.
    fn rest(self) -> String {
        self.reader.join().expect("the terminal reader ends");
        let bytes = std::mem::take(&mut *self.shown.0.lock().unwrap());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

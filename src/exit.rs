//! Exit codes: a contract that CI pipelines branch on (see README "Exit codes").
//!
//! Every path out of the program maps to exactly one of these; nothing else calls
//! `std::process::exit` with a literal.

use serde::Serialize;

/// How a run ended, as the process exit code reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitCode {
    /// Applied and verified, or nothing to change.
    Success = 0,
    /// Failed for another reason: engine unreachable, API error, bug.
    Failure = 1,
    /// Usage error in the flags (clap reports these).
    Usage = 2,
    /// `--check`: changes are pending; nothing was changed.
    ChangesPending = 3,
    /// Invalid input, invalid config, or a failed preflight check; nothing was changed.
    Refused = 4,
    /// The change failed and the previous state was restored.
    RolledBack = 5,
    /// Timed out waiting for the swarm to converge; nothing was rolled back.
    TimedOut = 6,
    /// The prompt was declined, or there was no terminal to ask and no `--yes`.
    NotConfirmed = 7,
    /// Stopped by SIGINT (Ctrl-C): 128 + 2, as shells report it.
    Interrupted = 130,
    /// Stopped by SIGTERM (a cancelled CI job): 128 + 15.
    Terminated = 143,
}

impl ExitCode {
    /// The numeric code handed to the operating system.
    pub fn code(self) -> i32 {
        self as i32
    }
}

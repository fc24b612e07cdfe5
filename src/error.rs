//! One error type for the whole run, carrying the exit code and the user-facing problems.
//!
//! Domain modules keep their own `thiserror` enums (callers match on them); each implements
//! [`Diagnostic`] to give a stable machine code and a hint that names the fix. Commands turn
//! those into an [`Error`] with the exit code the CLI contract assigns.

use serde::Serialize;

use crate::exit::ExitCode;

/// A domain error that knows its stable code and the fix to suggest.
pub trait Diagnostic: std::error::Error {
    /// Stable snake_case identifier, used in JSON `errors[].code`.
    fn code(&self) -> &'static str;
    /// What the user can do about it, if anything specific.
    fn hint(&self) -> Option<String>;
}

/// One problem as reported to the user, in text and in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Stable snake_case identifier.
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Problem {
    /// A problem from its parts.
    pub fn new(code: &str, message: impl Into<String>, hint: Option<String>) -> Self {
        Problem {
            code: code.to_owned(),
            message: message.into(),
            hint,
        }
    }

    /// The problem a domain error describes, with its whole cause chain in the message.
    pub fn from_diagnostic<E: Diagnostic>(error: &E) -> Self {
        Problem::new(error.code(), error_chain(error), error.hint())
    }
}

/// `error: cause: cause` on one line, like anyhow's `{:#}`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Why a run stopped early: the exit code plus the problems to show.
#[derive(Debug)]
pub struct Error {
    /// The exit code for this failure.
    pub exit: ExitCode,
    /// What went wrong; never empty.
    pub problems: Vec<Problem>,
}

impl Error {
    /// A failure with the given exit code.
    pub fn new(exit: ExitCode, problem: Problem) -> Self {
        Error {
            exit,
            problems: vec![problem],
        }
    }

    /// Invalid input or config, or a failed preflight check: exit 4, nothing changed.
    pub fn refused<E: Diagnostic>(error: &E) -> Self {
        Error::new(ExitCode::Refused, Problem::from_diagnostic(error))
    }

    /// Several refusals found together (all preflight checks report at once).
    pub fn refused_all(problems: Vec<Problem>) -> Self {
        Error {
            exit: ExitCode::Refused,
            problems,
        }
    }

    /// A refusal without a domain type: exit 4, nothing changed.
    pub fn refusal(code: &str, message: impl Into<String>, hint: Option<String>) -> Self {
        Error::new(ExitCode::Refused, Problem::new(code, message, hint))
    }

    /// Any other failure: exit 1.
    pub fn failed<E: Diagnostic>(error: &E) -> Self {
        Error::new(ExitCode::Failure, Problem::from_diagnostic(error))
    }

    /// A failure without a domain type (I/O on local files, for example).
    pub fn other(code: &str, message: impl Into<String>, hint: Option<String>) -> Self {
        Error::new(ExitCode::Failure, Problem::new(code, message, hint))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let messages: Vec<&str> = self.problems.iter().map(|p| p.message.as_str()).collect();
        f.write_str(&messages.join("; "))
    }
}

impl std::error::Error for Error {}

/// Result type of the command layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

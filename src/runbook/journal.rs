//! The journal of a changing run: the step it is in, what it has sent to the engine and what
//! it has not, so a run stopped by Ctrl-C or SIGTERM can say exactly that.
//!
//! An interrupted run stops sending: [`Journal::sending`] lets the one request already on its
//! way finish (its answer tells whether the engine took it) and never starts another once
//! [`Journal::stop`] was called. Waits are simply dropped: Swarm keeps rolling out what was
//! sent, and a re-run plans from where it finds the swarm. Shared, cheap to clone; no I/O.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::error::{Error, Problem};
use crate::exit::ExitCode;

/// A signal that stops a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C): exit 130.
    Interrupt,
    /// SIGTERM (a cancelled CI job): exit 143.
    Terminate,
}

impl Signal {
    /// The signal's name, as `kill -l` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The exit code of a run it stopped.
    pub fn exit(self) -> ExitCode {
        match self {
            Signal::Interrupt => ExitCode::Interrupted,
            Signal::Terminate => ExitCode::Terminated,
        }
    }
}

/// What a changing run has done so far; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    entries: Arc<Mutex<Entries>>,
    settled: Arc<Notify>,
}

#[derive(Debug, Default)]
struct Entries {
    step: Option<String>,
    sent: Vec<String>,
    unsent: Vec<String>,
    in_flight: Option<String>,
    stopped_in: Option<String>,
}

impl Journal {
    /// The changes a run is about to send, in order (`create config X`, `update S`, ...).
    pub fn plan(&self, changes: Vec<String>) {
        self.lock().unsent = changes;
    }

    /// A planned change that goes out under another name (a config name another run took).
    pub fn rename(&self, from: &str, to: &str) {
        for change in &mut self.lock().unsent {
            if change == from {
                to.clone_into(change);
            }
        }
    }

    /// The step the run is in now (`creating the config`, `waiting for the rollouts`).
    pub fn step(&self, step: &str) {
        self.lock().step = Some(step.to_owned());
    }

    /// Sends one change (`change` names it as [`Journal::plan`] did) unless the run was
    /// stopped, in which case the future never completes and nothing is sent. The request
    /// started is awaited even after a stop, so its outcome is known.
    pub async fn sending<T, E>(
        &self,
        change: &str,
        request: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let stopped = {
            let mut entries = self.lock();
            if entries.stopped_in.is_none() {
                entries.in_flight = Some(change.to_owned());
            }
            entries.stopped_in.is_some()
        };
        if stopped {
            return std::future::pending().await;
        }
        let outcome = request.await;
        {
            let mut entries = self.lock();
            entries.in_flight = None;
            if outcome.is_ok() {
                entries.unsent.retain(|unsent| unsent != change);
                entries.sent.push(change.to_owned());
            }
        }
        self.settled.notify_waiters();
        outcome
    }

    /// Stops the run at its next request; the request on its way, if any (see
    /// [`Journal::settled`]).
    pub fn stop(&self) -> Option<String> {
        let mut entries = self.lock();
        entries.stopped_in = Some(entries.step.clone().unwrap_or_else(|| "planning".into()));
        entries.in_flight.clone()
    }

    /// Resolves once no request is on its way.
    pub async fn settled(&self) {
        loop {
            let notified = self.settled.notified();
            if self.lock().in_flight.is_none() {
                return;
            }
            notified.await;
        }
    }

    /// The error that ends a run `signal` stopped: the step it was in, what was sent (and a
    /// request whose answer never came), what was not, and how to finish or undo.
    pub fn interrupted(&self, signal: Signal) -> Error {
        let entries = self.lock();
        let step = entries
            .stopped_in
            .clone()
            .or_else(|| entries.step.clone())
            .unwrap_or_else(|| "planning".into());
        let mut message = format!("interrupted by {} while {step}", signal.name());
        let mut sent = entries.sent.clone();
        if let Some(request) = &entries.in_flight {
            sent.push(format!("{request} (sent; its answer never came)"));
        }
        let hint = if sent.is_empty() {
            message.push_str(": nothing was sent to the swarm");
            "nothing was changed; run the command again".to_owned()
        } else {
            message.push_str(&format!("; sent: {}", sent.join(", ")));
            let unsent: Vec<&String> = entries
                .unsent
                .iter()
                .filter(|change| Some(*change) != entries.in_flight.as_ref())
                .collect();
            if !unsent.is_empty() {
                let unsent: Vec<&str> = unsent.iter().map(|change| change.as_str()).collect();
                message.push_str(&format!("; not sent: {}", unsent.join(", ")));
            }
            "Swarm keeps rolling out the updates that were sent; run the same command again to \
             finish the job, or `interlockctl rollback` to undo it"
                .to_owned()
        };
        Error::new(
            signal.exit(),
            Problem::new("interrupted", message, Some(hint)),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(journal: &Journal, signal: Signal) -> (ExitCode, String, String) {
        let error = journal.interrupted(signal);
        let problem = &error.problems[0];
        (
            error.exit,
            problem.message.clone(),
            problem.hint.clone().unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn says_what_was_sent_and_what_was_not() {
        let journal = Journal::default();
        journal.plan(vec![
            "create config c-2".into(),
            "update core".into(),
            "update proxy".into(),
        ]);
        journal.step("creating the config");
        journal
            .sending("create config c-2", async { Ok::<_, ()>(()) })
            .await
            .unwrap();
        journal.step("updating the core");
        journal.stop();
        let (exit, text, hint) = message(&journal, Signal::Terminate);
        assert_eq!(exit, ExitCode::Terminated);
        assert_eq!(
            text,
            "interrupted by SIGTERM while updating the core; sent: create config c-2; not sent: \
             update core, update proxy"
        );
        assert!(hint.contains("run the same command again") && hint.contains("rollback"));
    }

    #[tokio::test]
    async fn nothing_is_sent_after_a_stop() {
        let journal = Journal::default();
        journal.stop();
        let sent = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            journal.sending("update core", async { Ok::<_, ()>(()) }),
        )
        .await;
        assert!(sent.is_err(), "the request never starts");
        let (exit, text, hint) = message(&journal, Signal::Interrupt);
        assert_eq!(exit, ExitCode::Interrupted);
        assert_eq!(
            text,
            "interrupted by SIGINT while planning: nothing was sent to the swarm"
        );
        assert_eq!(hint, "nothing was changed; run the command again");
    }

    #[tokio::test]
    async fn a_request_on_its_way_is_awaited_and_named() {
        let journal = Journal::default();
        journal.plan(vec!["update core".into()]);
        journal.step("updating the core");
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let sending = journal.sending("update core", async { released.await.map_err(|_| ()) });
        let watcher = async {
            tokio::task::yield_now().await;
            assert_eq!(journal.stop().as_deref(), Some("update core"));
            let (_, text, _) = message(&journal, Signal::Interrupt);
            assert!(
                text.contains("sent: update core (sent; its answer never came)"),
                "{text}"
            );
            release.send(()).unwrap();
            journal.settled().await;
        };
        let (sent, ()) = tokio::join!(sending, watcher);
        sent.unwrap();
        let (_, text, _) = message(&journal, Signal::Interrupt);
        assert_eq!(
            text,
            "interrupted by SIGINT while updating the core; sent: update core"
        );
    }
}

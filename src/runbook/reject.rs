//! `labels watch --reject`'s act on one service: put its routing labels back to the last
//! valid ones (see `interlock::rejection`), or clear the note of an earlier rejection once
//! the service carries valid labels of its own.
//!
//! Each write carries the `Version.Index` the decision was made at. When someone else
//! updated the service in between (Swarm answers "update out of sequence"), the service is
//! read again and the decision made again on what it is now: a fix deployed meanwhile is
//! left alone, a newer bad label is rejected in its turn, and the valid labels found at the
//! first read are still the ones to go back to (the other update made the bad spec the
//! previous one). The failure path is the caller's:
//! an error here is reported for this service and the watch goes on.

use serde_json::Value;

use crate::interlock::findings::{Finding, Severity};
use crate::interlock::rejection::{self, Record};
use crate::swarm::{Service, SwarmApi, SwarmError};

/// Writes tried before giving up on a service someone else keeps updating.
const ATTEMPTS: usize = 5;

/// What a rejection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The labels were put back; `attempts` writes were sent.
    Rejected { record: Record, attempts: usize },
    /// Read again after a conflict, the service had nothing to reject any more.
    NothingToReject,
    /// The service was removed meanwhile.
    Gone,
}

/// The errors a rejection fixes: those of the service's own labels. An error in its
/// container labels is not: changing those re-creates its tasks.
pub fn rejectable(findings: &[Finding]) -> bool {
    findings.iter().any(|finding| {
        finding.severity == Severity::Error && finding.source != Some("ContainerSpec.Labels")
    })
}

/// Rejects the labels of `service` (as just read and judged by `judge`); `at` is the time
/// recorded in the note.
pub async fn reject<S: SwarmApi>(
    api: &S,
    service: Service,
    judge: &impl Fn(&Service) -> Vec<Finding>,
    at: &str,
) -> Result<Rejection, SwarmError> {
    // Someone else's update in between makes the bad spec the previous one: the valid
    // labels seen at the first read stay the ones to go back to.
    let first_valid = valid_previous(&service, judge);
    let written = write(api, service, |service| {
        if !rejectable(&judge(service)) {
            return None;
        }
        let labels = valid_previous(service, judge).or_else(|| first_valid.clone());
        let (spec, record) = rejection::rejected_spec(&service.spec, labels.as_ref(), at);
        Some((spec, record))
    })
    .await?;
    Ok(match written {
        Written::Done(record, attempts) => Rejection::Rejected { record, attempts },
        Written::NothingToDo => Rejection::NothingToReject,
        Written::Gone => Rejection::Gone,
    })
}

/// The labels of the service's previous spec, when they pass the check.
fn valid_previous(
    service: &Service,
    judge: &impl Fn(&Service) -> Vec<Finding>,
) -> Option<rejection::Labels> {
    let previous = service.previous_spec.as_ref()?;
    let before = Service {
        spec: previous.clone(),
        ..service.clone()
    };
    (!rejectable(&judge(&before))).then(|| rejection::labels(previous))
}

/// Removes the note of an earlier rejection from `service` (as just read) when its labels
/// changed since; `true` when it did.
pub async fn clear_record<S: SwarmApi>(api: &S, service: Service) -> Result<bool, SwarmError> {
    let written = write(api, service, |service| {
        rejection::record_outdated(&service.spec)
            .then(|| (rejection::cleared_spec(&service.spec), ()))
    })
    .await?;
    Ok(matches!(written, Written::Done(..)))
}

enum Written<T> {
    Done(T, usize),
    NothingToDo,
    Gone,
}

/// Writes the spec `decide` makes of the service, at the version it was read at; on a
/// conflict reads the service again and decides again.
async fn write<S: SwarmApi, T>(
    api: &S,
    mut service: Service,
    decide: impl Fn(&Service) -> Option<(Value, T)>,
) -> Result<Written<T>, SwarmError> {
    let mut attempt = 1;
    loop {
        let Some((spec, outcome)) = decide(&service) else {
            return Ok(Written::NothingToDo);
        };
        match api
            .update_service(&service.id, service.version, &spec)
            .await
        {
            Ok(()) => return Ok(Written::Done(outcome, attempt)),
            Err(SwarmError::OutOfSequence(_)) if attempt < ATTEMPTS => attempt += 1,
            Err(error) => return Err(error),
        }
        match api.service(&service.id).await? {
            Some(now) => service = now,
            None => return Ok(Written::Gone),
        }
    }
}

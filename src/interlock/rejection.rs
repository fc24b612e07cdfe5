//! What `labels watch --reject` writes onto a service whose routing labels are invalid, and
//! the note it leaves there: pure, so the decision is tested without an engine.
//!
//! A rejection changes only the service's own labels (`Spec.Labels`): they are not part of
//! the task template, so Swarm re-creates no task. The routing labels (`com.docker.lb.*`) go
//! back to those of the service's previous spec when those are valid, otherwise they are
//! removed, so the Interlock core never renders the bad value. What was taken away is kept in
//! [`RECORD_LABEL`] (outside `com.docker.lb.`, so Interlock ignores it), for `labels check`
//! and `status` to show, until an update of the service brings valid routing labels of its
//! own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::interlock::labels::PREFIX;

/// The label of the tool's note on a service whose labels it rejected.
pub const RECORD_LABEL: &str = "com.docker.interlockctl.rejected";

/// Labels as a service spec holds them.
pub type Labels = BTreeMap<String, String>;

/// Where the routing labels of a rejected service came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Restored {
    /// Those of its previous spec, which pass the check.
    Previous,
    /// None: the service had no valid previous labels, so they were removed.
    None,
}

impl Restored {
    /// Words for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Restored::Previous => "restored the routing labels of its previous spec",
            Restored::None => "removed its routing labels (no valid previous ones)",
        }
    }
}

/// The note [`RECORD_LABEL`] holds (as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// The routing labels taken away, as they were.
    pub removed: Labels,
    /// What was put in their place.
    pub restored: Restored,
    /// A digest of the routing labels written back: while the service still carries exactly
    /// these, the note stays.
    pub kept: String,
}

impl Record {
    /// The note on a service spec, if any (an unreadable one counts as none).
    pub fn of(spec: &Value) -> Option<Record> {
        let text = spec.pointer("/Labels")?.get(RECORD_LABEL)?.as_str()?;
        serde_json::from_str(text).ok()
    }

    /// One line for `labels check`, `status` and notifications.
    pub fn describe(&self) -> String {
        format!(
            "labels watch rejected its labels at {} and {}; removed: {}",
            self.at,
            self.restored.describe(),
            self.removed_text()
        )
    }

    /// The labels removed, as `key="value"` pairs.
    pub fn removed_text(&self) -> String {
        let removed: Vec<String> = self
            .removed
            .iter()
            .map(|(key, value)| format!("{key}={value:?}"))
            .collect();
        removed.join(", ")
    }
}

/// The hint beside a rejection note.
pub const RECORD_HINT: &str = "fix the labels where the service is deployed from (stack file, \
     pipeline) and deploy again; the first update with valid labels clears this note";

/// The service's own labels (`Spec.Labels`).
pub fn labels(spec: &Value) -> Labels {
    spec.pointer("/Labels")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(key, value)| (key.clone(), value.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The `com.docker.lb.*` labels among `labels`.
pub fn routing(labels: &Labels) -> Labels {
    labels
        .iter()
        .filter(|(key, _)| key.starts_with(PREFIX))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// A short digest of routing labels.
fn digest(routing: &Labels) -> String {
    let text = serde_json::to_string(routing).expect("labels serialize");
    let hash = Sha256::digest(text.as_bytes());
    hash.iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The spec with its routing labels replaced by `valid_previous` (or removed when `None`)
/// and the note recorded; every other field and label as it was.
pub fn rejected_spec(spec: &Value, valid_previous: Option<&Labels>, at: &str) -> (Value, Record) {
    let current = labels(spec);
    let restored_routing = valid_previous.map(routing).unwrap_or_default();
    let mut written: Labels = current
        .iter()
        .filter(|(key, _)| !key.starts_with(PREFIX))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    written.extend(restored_routing.clone());
    let record = Record {
        at: at.to_owned(),
        removed: routing(&current)
            .into_iter()
            .filter(|(key, value)| restored_routing.get(key) != Some(value))
            .collect(),
        restored: match valid_previous {
            Some(_) => Restored::Previous,
            None => Restored::None,
        },
        kept: digest(&restored_routing),
    };
    let note = serde_json::to_string(&record).expect("a record serializes");
    written.insert(RECORD_LABEL.to_owned(), note);
    (with_labels(spec, &written), record)
}

/// Whether the note on a service whose labels are valid now should go: its routing labels
/// are no longer the ones the rejection wrote (someone deployed valid ones since).
/// An unreadable note is outdated too.
pub fn record_outdated(spec: &Value) -> bool {
    let labels = labels(spec);
    labels.contains_key(RECORD_LABEL)
        && Record::of(spec).is_none_or(|record| record.kept != digest(&routing(&labels)))
}

/// The spec without the note.
pub fn cleared_spec(spec: &Value) -> Value {
    let mut written = labels(spec);
    written.remove(RECORD_LABEL);
    with_labels(spec, &written)
}

fn with_labels(spec: &Value, labels: &Labels) -> Value {
    let mut spec = spec.clone();
    let map: Map<String, Value> = labels
        .iter()
        .map(|(key, value)| (key.clone(), Value::String(value.clone())))
        .collect();
    if let Some(object) = spec.as_object_mut() {
        object.insert("Labels".to_owned(), Value::Object(map));
    }
    spec
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(labels: Value) -> Value {
        json!({
            "Name": "web",
            "Labels": labels,
            "TaskTemplate": { "ContainerSpec": { "Image": "nginx", "Labels": { "a": "b" } } },
            "Mode": { "Replicated": { "Replicas": 2 } }
        })
    }

    #[test]
    fn a_rejection_restores_the_previous_routing_labels_and_keeps_everything_else() {
        let bad = spec(json!({
            "com.docker.lb.hosts": "web.example;evil",
            "com.docker.lb.port": "8080",
            "team": "blue"
        }));
        let previous = labels(&spec(json!({
            "com.docker.lb.hosts": "web.example",
            "com.docker.lb.port": "8080",
            "team": "red"
        })));
        let (written, record) = rejected_spec(&bad, Some(&previous), "2026-12-07T01:00:00.000Z");
        let mut expected = bad.clone();
        expected["Labels"] = json!({
            "com.docker.interlockctl.rejected": serde_json::to_string(&record).unwrap(),
            "com.docker.lb.hosts": "web.example",
            "com.docker.lb.port": "8080",
            "team": "blue"
        });
        assert_eq!(written, expected);
        assert_eq!(
            record.removed,
            Labels::from([("com.docker.lb.hosts".into(), "web.example;evil".into())])
        );
        assert_eq!(record.restored, Restored::Previous);
        assert_eq!(Record::of(&written), Some(record.clone()));
        assert!(!record_outdated(&written));
        assert_eq!(
            record.describe(),
            "labels watch rejected its labels at 2026-12-07T01:00:00.000Z and restored the \
             routing labels of its previous spec; removed: com.docker.lb.hosts=\"web.example;evil\""
        );
    }

    #[test]
    fn without_valid_previous_labels_the_routing_labels_go() {
        let bad = spec(json!({ "com.docker.lb.hosts": "a b", "com.docker.lb.port": "80" }));
        let (written, record) = rejected_spec(&bad, None, "t");
        assert_eq!(routing(&labels(&written)), Labels::new());
        assert_eq!(record.restored, Restored::None);
        assert_eq!(record.removed.len(), 2);
        assert_eq!(written["TaskTemplate"], bad["TaskTemplate"]);
    }

    #[test]
    fn the_note_goes_once_other_routing_labels_were_deployed() {
        let bad = spec(json!({ "com.docker.lb.hosts": "a;b" }));
        let (mut written, _) = rejected_spec(&bad, None, "t");
        assert!(!record_outdated(&written));
        written["Labels"]["com.docker.lb.hosts"] = json!("a.example");
        assert!(record_outdated(&written));
        let cleared = cleared_spec(&written);
        assert_eq!(
            cleared["Labels"],
            json!({ "com.docker.lb.hosts": "a.example" })
        );
        assert!(!record_outdated(&cleared));
    }

    #[test]
    fn an_unreadable_note_is_outdated() {
        let odd = spec(json!({ RECORD_LABEL: "not json" }));
        assert_eq!(Record::of(&odd), None);
        assert!(record_outdated(&odd));
    }
}

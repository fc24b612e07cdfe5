//! Saved plans: `--plan-out FILE` writes what a changing command would do, and `apply --plan
//! FILE` applies exactly that, as Terraform's saved plans (review in a merge request, apply on
//! merge).
//!
//! The file is a versioned JSON document: the command that made it (so `apply --plan` runs the
//! same edit through the same runbook), the new config's full text, each service's spec as it
//! will be sent (the new config's ID aside, which the engine assigns when it is created), and
//! the fingerprint of the state it was planned on: each observed service's version index and
//! the current config's name and content digest. `apply --plan` refuses (`stale_plan`) when
//! the fingerprint or the outcome differs now, naming what moved, and a file that is not an
//! unaltered plan of this schema (a digest of its content is kept) is `invalid_plan`.
//!
//! The file holds the config's secrets: it is written owner-only (0600), atomically (a
//! temporary file in the same directory, renamed over the target). Reading and writing the
//! file is the only I/O here.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::runbook::plan::{Observed, Plan, content_digest};
use crate::swarm::Service;

/// What a saved plan's file says it is.
const KIND: &str = "interlockctl-plan";
/// The schema of the plan file; another one is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// A saved plan, as written to and read from its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    /// Always `interlockctl-plan`.
    pub kind: String,
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The version of interlockctl that wrote it.
    pub tool_version: String,
    /// The command's name, as config labels record the operation.
    pub operation: String,
    /// The command and its arguments, as `apply --plan` runs them again.
    pub command: Vec<String>,
    /// The desired config of `apply FILE`: the file itself may not be where the plan is
    /// applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_config: Option<String>,
    /// The global options the plan depends on: `service`, `extension`, `force`.
    pub options: BTreeMap<String, String>,
    /// The state it was planned on.
    pub fingerprint: Fingerprint,
    /// The config the core will mount: its name (planned; another run may take it first)
    /// and its full text. `None` when the config stays.
    pub next_config: Option<NextConfigText>,
    /// Each service update, in order, with the spec as it will be sent.
    pub updates: Vec<ServiceUpdate>,
    /// Services the plan removes.
    pub removed_services: Vec<String>,
    /// `sha256:` of the document with this field empty: an altered file is refused.
    pub digest: String,
}

/// The config a plan rotates the core onto.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextConfigText {
    /// Its planned name.
    pub name: String,
    /// Its TOML, secrets included.
    pub text: String,
}

/// One service update of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceUpdate {
    /// The service.
    pub service: String,
    /// The version index it must still have.
    pub version: u64,
    /// The spec sent.
    pub spec: Value,
}

/// The state a plan was made on: what must not have moved when it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Each observed service (core, proxy, services to remove): name → version index.
    pub services: BTreeMap<String, u64>,
    /// The config the core mounted.
    pub config: String,
    /// Its content digest.
    pub config_digest: String,
}

impl Fingerprint {
    /// The fingerprint of an observation.
    pub fn of(observed: &Observed) -> Fingerprint {
        let services = std::iter::once(&observed.core)
            .chain(&observed.proxy)
            .chain(&observed.retired)
            .chain(&observed.others)
            .map(|service| (service.name.clone(), service.version))
            .collect();
        Fingerprint {
            services,
            config: observed.config.name.clone(),
            config_digest: content_digest(&observed.config_text),
        }
    }

    /// What moved from `self` (planned) to `now`, one phrase each.
    fn moved(&self, now: &Fingerprint) -> Vec<String> {
        let mut moved = Vec::new();
        if self.config != now.config {
            moved.push(format!(
                "the core now mounts {} instead of {}",
                now.config, self.config
            ));
        } else if self.config_digest != now.config_digest {
            moved.push(format!("{} has other content", self.config));
        }
        for (service, version) in &self.services {
            match now.services.get(service) {
                Some(current) if current == version => {}
                Some(current) => moved.push(format!(
                    "{service} is at version {current}, the plan was made at {version}"
                )),
                None => moved.push(format!("{service} is gone")),
            }
        }
        for service in now.services.keys() {
            if !self.services.contains_key(service) {
                moved.push(format!("{service} exists now"));
            }
        }
        moved
    }
}

/// What `--plan-out` needs besides the outcome: where to write, and what to run again.
#[derive(Debug, Clone)]
pub struct PlanOut {
    /// The file.
    pub path: PathBuf,
    /// The command line words of the command (see `Command::words`).
    pub command: Vec<String>,
    /// The desired config of `apply FILE`.
    pub desired_config: Option<String>,
    /// The global options the plan depends on.
    pub options: BTreeMap<String, String>,
}

/// What a run computed: the parts of a saved plan that describe its outcome.
pub struct Outcome<'a> {
    /// The observation.
    pub observed: &'a Observed,
    /// The plan.
    pub plan: &'a Plan,
    /// The new config's text.
    pub new_text: &'a str,
}

impl Outcome<'_> {
    fn next_config(&self) -> Option<NextConfigText> {
        self.plan.config.as_ref().map(|config| NextConfigText {
            name: config.name().to_owned(),
            text: self.new_text.to_owned(),
        })
    }

    fn updates(&self) -> Vec<ServiceUpdate> {
        let observed = self.observed;
        let sent = |service: &Service, edits: &[crate::swarm::spec::SpecEdit]| {
            let mut spec = service.spec.clone();
            edits.iter().for_each(|edit| edit.write_into(&mut spec));
            ServiceUpdate {
                service: service.name.clone(),
                version: service.version,
                spec,
            }
        };
        let mut updates = Vec::new();
        if !self.plan.core_edits.is_empty() {
            updates.push(sent(&observed.core, &self.plan.core_edits));
        }
        if let Some(proxy) = observed
            .proxy
            .as_ref()
            .filter(|_| !self.plan.proxy_edits.is_empty())
        {
            updates.push(sent(proxy, &self.plan.proxy_edits));
        }
        for update in &self.plan.others {
            if let Some(service) = observed.others.iter().find(|s| s.name == update.service) {
                updates.push(sent(service, &update.edits));
            }
        }
        updates
    }
}

impl SavedPlan {
    /// The plan of a run of `operation` (`plan_out` says how it was asked for) that computed
    /// `outcome`.
    pub fn new(plan_out: &PlanOut, operation: &str, outcome: &Outcome<'_>) -> SavedPlan {
        let mut saved = SavedPlan {
            kind: KIND.to_owned(),
            schema_version: SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            operation: operation.to_owned(),
            command: plan_out.command.clone(),
            desired_config: plan_out.desired_config.clone(),
            options: plan_out.options.clone(),
            fingerprint: Fingerprint::of(outcome.observed),
            next_config: outcome.next_config(),
            updates: outcome.updates(),
            removed_services: outcome.plan.removed_services.clone(),
            digest: String::new(),
        };
        saved.digest = saved.content_digest();
        saved
    }

    fn content_digest(&self) -> String {
        let unsigned = SavedPlan {
            digest: String::new(),
            ..self.clone()
        };
        content_digest(&serde_json::to_string(&unsigned).expect("a plan serializes"))
    }

    /// Parses a plan file's text: `invalid_plan` unless it is an unaltered plan of this
    /// schema.
    pub fn parse(text: &str, source: &Path) -> Result<SavedPlan> {
        let invalid = |why: String| {
            Error::refusal(
                "invalid_plan",
                format!(
                    "{} is not a plan interlockctl can apply: {why}",
                    source.display()
                ),
                Some(
                    "make the plan again with `--plan-out FILE` and apply that file unchanged"
                        .into(),
                ),
            )
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON ({e})")))?;
        if value["kind"] != KIND {
            return Err(invalid(format!("its `kind` is not \"{KIND}\"")));
        }
        if value["schema_version"] != SCHEMA_VERSION {
            return Err(invalid(format!(
                "it is of schema version {}, this interlockctl applies version {SCHEMA_VERSION}",
                value["schema_version"]
            )));
        }
        let saved: SavedPlan =
            serde_json::from_value(value).map_err(|e| invalid(format!("{e}")))?;
        if saved.digest != saved.content_digest() {
            return Err(invalid(
                "its content does not match its digest: it was altered after it was written".into(),
            ));
        }
        Ok(saved)
    }

    /// Refuses (`stale_plan`) when the state the plan was made on moved.
    pub fn check_state(&self, observed: &Observed) -> Result<()> {
        let moved = self.fingerprint.moved(&Fingerprint::of(observed));
        if moved.is_empty() {
            return Ok(());
        }
        Err(stale(&moved.join("; ")))
    }

    /// Refuses (`stale_plan`) when the run computed another outcome than the plan's.
    pub fn check_outcome(&self, outcome: &Outcome<'_>) -> Result<()> {
        let mut differs = Vec::new();
        if self.next_config != outcome.next_config() {
            differs.push("the new config".to_owned());
        }
        let updates = outcome.updates();
        if self.updates != updates {
            differs.push("the service updates".to_owned());
        }
        if self.removed_services != outcome.plan.removed_services {
            differs.push("the services to remove".to_owned());
        }
        if differs.is_empty() {
            return Ok(());
        }
        Err(stale(&format!(
            "planning now gives other {}",
            differs.join(" and ")
        )))
    }

    /// Writes the plan to `path` owner-only and atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("a plan serializes") + "\n";
        write_private_atomically(path, &json).map_err(|error| {
            Error::refusal(
                "plan_not_written",
                format!("cannot write the plan to {}: {error}", path.display()),
                Some(
                    "pass `--plan-out` a file in a writable directory; nothing was changed".into(),
                ),
            )
        })
    }
}

fn stale(what: &str) -> Error {
    Error::refusal(
        "stale_plan",
        format!("the swarm moved since the plan was made: {what}; nothing was changed"),
        Some("make a new plan with `--plan-out FILE`, review it, then apply that one".into()),
    )
}

/// Writes `text` to a new file beside `path` with mode 0600, flushes it to disk, then renames
/// it over `path`: a reader sees the old file or the whole new one, never part of it.
fn write_private_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{observed, pinned, plan_after, settings_after};

    fn saved() -> (SavedPlan, Observed) {
        let observed = observed();
        let plan = plan_after(&observed, pinned);
        let (text, _) = settings_after(pinned);
        let outcome = Outcome {
            observed: &observed,
            plan: &plan,
            new_text: &text,
        };
        let plan_out = PlanOut {
            path: PathBuf::from("plan.json"),
            command: vec!["pin-proxy".into(), "--label".into(), "role=dtr".into()],
            desired_config: None,
            options: BTreeMap::from([("service".to_owned(), "ucp-interlock".to_owned())]),
        };
        (SavedPlan::new(&plan_out, "pin-proxy", &outcome), observed)
    }

    #[test]
    fn a_written_plan_reads_back_and_its_state_still_matches() {
        let (saved, observed) = saved();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        saved.write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let read = SavedPlan::parse(&text, &path).unwrap();
        assert_eq!(read, saved);
        read.check_state(&observed).unwrap();
        assert_eq!(
            read.updates
                .iter()
                .map(|u| u.service.as_str())
                .collect::<Vec<_>>(),
            ["ucp-interlock", "ucp-interlock-proxy"]
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn a_moved_service_or_config_makes_the_plan_stale() {
        let (saved, mut observed) = saved();
        observed.core.version += 3;
        observed.config_text.push_str("\n# edited\n");
        let error = saved.check_state(&observed).unwrap_err();
        assert_eq!(error.problems[0].code, "stale_plan");
        let message = &error.problems[0].message;
        assert!(message.contains("ucp-interlock is at version"), "{message}");
        assert!(message.contains("has other content"), "{message}");
    }

    #[test]
    fn anything_but_an_unaltered_plan_of_this_schema_is_invalid() {
        let (saved, _) = saved();
        let good = serde_json::to_string_pretty(&saved).unwrap();
        let path = Path::new("plan.json");
        let other_schema = good.replace("\"schema_version\": 1", "\"schema_version\": 2");
        let altered = good.replace("role=dtr", "role=web");
        for (text, why) in [
            ("{not json", "not JSON"),
            ("{\"kind\": \"terraform\"}", "its `kind` is not"),
            (other_schema.as_str(), "schema version 2"),
            (altered.as_str(), "altered after it was written"),
        ] {
            let error = SavedPlan::parse(text, path).unwrap_err();
            assert_eq!(error.problems[0].code, "invalid_plan");
            assert!(
                error.problems[0].message.contains(why),
                "{why}: {}",
                error.problems[0].message
            );
        }
        assert!(SavedPlan::parse(&good, path).is_ok());
    }
}

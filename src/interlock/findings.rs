//! A finding of a check (`labels check`, `stack lint`): what is wrong where, and the fix.
//!
//! Findings are data, not failures: a check reports all of them at once, and only the
//! command decides the exit code from their severities. The JSON document carries them
//! as they are (`findings` array), so the field names are part of the contract.

use serde::Serialize;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Breaks routing or the proxy, or cannot be deployed: the check exits 4.
    Error,
    /// Works, but costs something or may not do what was meant.
    Warning,
    /// Could not be checked (a compose variable, or no live config to compare with).
    NotChecked,
}

impl Severity {
    /// The word used in text output.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::NotChecked => "not checked",
        }
    }
}

/// One finding, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// Stable snake_case identifier of the kind of finding.
    pub code: &'static str,
    /// The stack file it was found in; absent for a live swarm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line in the stack file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The service it concerns; absent for file-wide findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Where the label was read: `deploy.labels` or `labels` in a stack file,
    /// `Spec.Labels` or `ContainerSpec.Labels` on a swarm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    /// The label key it concerns, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// That label's value, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// How many findings of each severity, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Errors.
    pub errors: usize,
    /// Warnings.
    pub warnings: usize,
    /// Not checked.
    pub not_checked: usize,
}

impl Counts {
    /// Counts `findings` by severity.
    pub fn of(findings: &[Finding]) -> Self {
        findings.iter().fold(Counts::default(), |mut counts, f| {
            match f.severity {
                Severity::Error => counts.errors += 1,
                Severity::Warning => counts.warnings += 1,
                Severity::NotChecked => counts.not_checked += 1,
            }
            counts
        })
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: usize, word: &str| {
            if n == 1 {
                format!("1 {word}")
            } else {
                format!("{n} {word}s")
            }
        };
        write!(
            f,
            "{}, {}, {} not checked",
            plural(self.errors, "error"),
            plural(self.warnings, "warning"),
            self.not_checked
        )
    }
}

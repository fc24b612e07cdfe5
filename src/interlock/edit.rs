//! The config edits of `pin-proxy`, `host-mode`, `migrate` (both at once), `apply`,
//! `rollback`, `cluster` and `upgrade`, shared by the offline and the live path so both produce
//! byte-identical TOML for the same request. Pure.

use similar::{DiffOp, DiffTag, DiffableStr};

use crate::error::{Error, Result};
use crate::interlock::cluster::{self, NewCluster};
use crate::interlock::config::{InterlockConfig, KeyChange, PublishMode};
use crate::interlock::image::Upgrade;
use crate::interlock::input::{self, Constraint, InputError, NodeLabel};
use crate::interlock::secrets::redact_keeping_lines;
use crate::swarm::ConfigObject;

/// A validated request to change the config.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Runbook part 1: pin the proxy to labelled nodes.
    PinProxy(ProxyPin),
    /// Runbook part 2: host-mode publishing on these ports.
    HostMode(HostPorts),
    /// The whole runbook: the edits of [`Edit::PinProxy`] and [`Edit::HostMode`] in one
    /// config.
    Migrate(ProxyPin, HostPorts),
    /// `apply FILE` or `rollback`: the whole desired config.
    Replace {
        /// Where the desired config came from, for messages.
        source: String,
        /// Its text, used verbatim.
        text: String,
        /// The config object that holds this text already (rollback), so none is created.
        existing: Option<ConfigObject>,
    },
    /// `cluster add`: a new extension copied from the selected one.
    AddCluster(NewCluster),
    /// `cluster remove`: the extension goes; the run works on another one.
    RemoveCluster {
        /// The extension to remove.
        name: String,
    },
    /// `upgrade`: every image key that names an Interlock image moves to the new version
    /// (the services' images move with it, see `runbook::plan`).
    Upgrade(Upgrade),
}

/// The edited config and what changed.
#[derive(Debug, Clone)]
pub struct Edited {
    /// The config after the edit.
    pub config: InterlockConfig,
    /// The keys that changed; empty when the config already says this.
    pub changes: Vec<KeyChange>,
    /// Notes for the user that do not stop the run.
    pub warnings: Vec<String>,
}

/// Runbook part 1's request: the proxy on labelled nodes.
#[derive(Debug, Clone)]
pub struct ProxyPin {
    /// The dedicated nodes' label.
    label: NodeLabel,
    /// Explicit `--replicas`, else one per labelled node (live) or unchanged (offline).
    replicas: Option<u64>,
    /// New extension `Constraints`, if any were given.
    extension_constraints: Vec<String>,
}

/// Runbook part 2's request: host-mode publishing on these ports (also a new cluster's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPorts {
    /// `PublishedPort`.
    pub(crate) http: u16,
    /// `PublishedSSLPort`.
    pub(crate) https: u16,
}

impl Edit {
    /// The existing config object this edit returns to, if any.
    pub fn existing_config(&self) -> Option<&ConfigObject> {
        match self {
            Edit::Replace { existing, .. } => existing.as_ref(),
            _ => None,
        }
    }

    /// The node label whose Ready, Active nodes give the default proxy replicas.
    pub fn node_label(&self) -> Option<&NodeLabel> {
        match self {
            Edit::PinProxy(pin) | Edit::Migrate(pin, _) => Some(&pin.label),
            Edit::AddCluster(cluster) => Some(&cluster.label),
            _ => None,
        }
    }

    /// The extension of the live (or input) config a run observes: the one `requested`
    /// (`--extension`; `--from` for `cluster add`) or the only one or `default`; for
    /// `cluster remove`, one that stays.
    pub fn observed_extension(
        &self,
        config: &InterlockConfig,
        requested: Option<&str>,
    ) -> Result<String> {
        match self {
            Edit::RemoveCluster { name } => cluster::remaining_extension(config, name, requested),
            _ => config
                .select_extension(requested)
                .map_err(|e| Error::refused(&e)),
        }
    }

    /// The extension whose proxy the rest of the run plans for and verifies: the new
    /// cluster for `cluster add`, else the observed one.
    pub fn target_extension(&self, observed: &str) -> String {
        match self {
            Edit::AddCluster(cluster) => cluster.name.clone(),
            _ => observed.to_owned(),
        }
    }

    /// The proxy service of the cluster this edit adds: the core creates it when it loads
    /// the new config, so it may not exist yet.
    pub fn new_proxy_service(&self) -> Option<String> {
        match self {
            Edit::AddCluster(cluster) => Some(cluster.proxy_service_name()),
            _ => None,
        }
    }

    /// Where this edit moves Interlock's images, if it does.
    pub fn upgrade(&self) -> Option<&Upgrade> {
        match self {
            Edit::Upgrade(upgrade) => Some(upgrade),
            _ => None,
        }
    }

    /// The extension this edit removes, if any.
    pub fn removed_extension(&self) -> Option<&str> {
        match self {
            Edit::RemoveCluster { name } => Some(name),
            _ => None,
        }
    }

    /// Validates `pin-proxy`'s flags.
    pub fn pin_proxy(
        label: &str,
        replicas: Option<u64>,
        extension_constraints: &[String],
    ) -> Result<Self, InputError> {
        Ok(Edit::PinProxy(ProxyPin::parse(
            label,
            replicas,
            extension_constraints,
        )?))
    }

    /// Validates `host-mode`'s flags.
    pub fn host_mode(http: i64, https: i64) -> Result<Self, InputError> {
        Ok(Edit::HostMode(HostPorts::parse(http, https)?))
    }

    /// Validates `migrate`'s flags: those of `pin-proxy` and of `host-mode`.
    pub fn migrate(
        label: &str,
        replicas: Option<u64>,
        extension_constraints: &[String],
        http: i64,
        https: i64,
    ) -> Result<Self, InputError> {
        Ok(Edit::Migrate(
            ProxyPin::parse(label, replicas, extension_constraints)?,
            HostPorts::parse(http, https)?,
        ))
    }

    /// The config after this edit of its extension `extension` (the observed one, see
    /// [`Edit::observed_extension`]). `labelled_nodes` is the number of Ready, Active nodes
    /// carrying the edit's node label, when a swarm was asked.
    pub fn edited_config(
        &self,
        config: &InterlockConfig,
        extension: &str,
        labelled_nodes: Option<u64>,
    ) -> Result<Edited> {
        let mut next = config.clone();
        let mut warnings = Vec::new();
        let changes = match self {
            Edit::PinProxy(pin) => pin.apply(&mut next, extension, labelled_nodes, &mut warnings),
            Edit::HostMode(ports) => ports.apply(&mut next, extension),
            Edit::Migrate(pin, ports) => {
                let mut changes = pin.apply(&mut next, extension, labelled_nodes, &mut warnings);
                changes.extend(ports.apply(&mut next, extension));
                changes
            }
            Edit::Replace { source, text, .. } => {
                let source = if source == "-" { "stdin" } else { source };
                next = InterlockConfig::parse(source, text).map_err(|e| Error::refused(&e))?;
                next.changes_from(config)
            }
            Edit::AddCluster(new) => {
                let replicas = new.replicas.or(labelled_nodes);
                if replicas.is_none() {
                    warnings.push(replicas_unknown(&format!(
                        "copied from [Extensions.{extension}]"
                    )));
                }
                new.add_to(&mut next, extension, replicas)?
            }
            Edit::RemoveCluster { name } => cluster::remove_from(&mut next, name)?,
            Edit::Upgrade(upgrade) => next.move_images(upgrade),
        };
        next.extension(&self.target_extension(extension))
            .map_err(|e| Error::refused(&e))?;
        Ok(Edited {
            config: next,
            changes,
            warnings,
        })
    }
}

impl ProxyPin {
    /// `pin-proxy`'s flags, validated.
    fn parse(
        label: &str,
        replicas: Option<u64>,
        extension_constraints: &[String],
    ) -> Result<Self, InputError> {
        Ok(ProxyPin {
            label: NodeLabel::parse(label)?,
            replicas: replicas.map(input::replicas).transpose()?,
            extension_constraints: extension_constraints
                .iter()
                .map(|expr| {
                    Constraint::parse("--extension-constraint", expr).map(|c| c.to_string())
                })
                .collect::<Result<_, _>>()?,
        })
    }

    /// Runbook part 1: the proxy on the labelled nodes (`--replicas`, else
    /// `labelled_nodes` when known), and the extension's own constraints when any were
    /// given. Unknown replicas are left as they are, with a warning.
    fn apply(
        &self,
        config: &mut InterlockConfig,
        extension: &str,
        labelled_nodes: Option<u64>,
        warnings: &mut Vec<String>,
    ) -> Vec<KeyChange> {
        let replicas = self.replicas.or(labelled_nodes);
        if replicas.is_none() {
            warnings.push(replicas_unknown("left as it is"));
        }
        let extension_constraints = (!self.extension_constraints.is_empty())
            .then_some(self.extension_constraints.as_slice());
        [
            config.set_proxy_constraints(extension, &[self.label.constraint().to_string()]),
            replicas.and_then(|n| config.set_proxy_replicas(extension, n)),
            extension_constraints.and_then(|c| config.set_extension_constraints(extension, c)),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl HostPorts {
    /// `host-mode`'s flags, validated.
    pub(crate) fn parse(http: i64, https: i64) -> Result<Self, InputError> {
        let (http, https) = input::http_https_ports(http, https)?;
        Ok(HostPorts { http, https })
    }

    /// Runbook part 2: host-mode publishing on these ports.
    pub(crate) fn apply(self, config: &mut InterlockConfig, extension: &str) -> Vec<KeyChange> {
        [
            config.set_publish_mode(extension, PublishMode::Host),
            config.set_published_port(extension, self.http),
            config.set_published_ssl_port(extension, self.https),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

fn replicas_unknown(what: &str) -> String {
    format!(
        "ProxyReplicas {what}: offline, the labelled nodes cannot be counted; pass --replicas N"
    )
}

/// A unified diff between two config texts, empty when they are equal. Unless
/// `show_secrets`, secret values show as `"<redacted>"`: the lines are compared as written,
/// so a changed secret still shows as a removed and an added line, but are shown from the
/// redacted texts, line for line (each further line of a multi-line secret as `<redacted>`).
pub fn unified_diff(
    before: &str,
    after: &str,
    before_name: &str,
    after_name: &str,
    show_secrets: bool,
) -> String {
    if before == after {
        return String::new();
    }
    let diff = similar::TextDiff::from_lines(before, after);
    let (shown_before, shown_after) = if show_secrets {
        (before.to_owned(), after.to_owned())
    } else {
        (redact_keeping_lines(before), redact_keeping_lines(after))
    };
    let shown = ShownLines {
        written_before: diff.old_slices(),
        before: shown_before.tokenize_lines(),
        after: shown_after.tokenize_lines(),
    };
    let mut out = format!("--- {before_name}\n+++ {after_name}\n");
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        out.push_str(&format!("{}\n", hunk.header()));
        for (marker, line) in hunk.ops().iter().flat_map(|op| shown.of(op)) {
            out.push(marker);
            out.push_str(line);
            if !line.ends_with(['\n', '\r']) {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

/// The lines a diff shows: the texts' lines as written or redacted, by line number.
struct ShownLines<'a> {
    written_before: &'a [&'a str],
    before: Vec<&'a str>,
    after: Vec<&'a str>,
}

impl<'a> ShownLines<'a> {
    /// The marked lines of one diff operation.
    fn of(&self, op: &DiffOp) -> Vec<(char, &'a str)> {
        let (tag, before, after) = op.as_tag_tuple();
        match tag {
            // A line both texts share may be secret in only one of them (its table was
            // renamed): it is shown hidden if either hides it.
            DiffTag::Equal => before
                .zip(after)
                .map(|(old, new)| {
                    let hidden_before = self.before[old] != self.written_before[old];
                    (
                        ' ',
                        if hidden_before {
                            self.before[old]
                        } else {
                            self.after[new]
                        },
                    )
                })
                .collect(),
            DiffTag::Delete | DiffTag::Insert | DiffTag::Replace => before
                .map(|old| ('-', self.before[old]))
                .chain(after.map(|new| ('+', self.after[new])))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unified_diff;

    fn similar_diff(before: &str, after: &str) -> String {
        similar::TextDiff::from_lines(before, after)
            .unified_diff()
            .context_radius(3)
            .header("a", "b")
            .to_string()
    }

    #[test]
    fn with_secrets_shown_the_diff_is_the_plain_unified_diff() {
        let cases = [
            ("a = 1\nb = 2\n", "a = 1\nb = 3\n"),
            ("a = 1\nb = 2", "a = 1\nb = 3"),
            ("a = 1\n", "a = 1\nb = 2"),
            (
                "x = 0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n",
                "x = 1\n1\n2\n3\n4\n5\n6\n7\n8\n10\n",
            ),
            ("a = 1\r\nb = 2\r\n", "a = 1\r\nb = 3\r\n"),
        ];
        for (before, after) in cases {
            assert_eq!(
                unified_diff(before, after, "a", "b", true),
                similar_diff(before, after),
                "{before:?} -> {after:?}"
            );
        }
        assert_eq!(unified_diff("a = 1\n", "a = 1\n", "a", "b", false), "");
    }

    #[test]
    fn a_changed_secret_shows_as_changed_and_hidden_in_every_shape() {
        let before = "[E]\nR = 1\nAdminPass = \"old-pass\"\nAuth = { AdminPass = \"old-inline\" }\nKey = \"\"\"\nold-multi\nold-lines\"\"\" # doc\n[[E.Users]]\nToken = 'old-aot'\n";
        let after = before.replace("old", "new");
        assert_eq!(
            unified_diff(before, &after, "a", "b", false),
            "--- a\n+++ b\n@@ -1,9 +1,9 @@\n [E]\n R = 1\n\
             -AdminPass = \"<redacted>\"\n-Auth = { AdminPass = \"<redacted>\" }\n\
             +AdminPass = \"<redacted>\"\n+Auth = { AdminPass = \"<redacted>\" }\n\
             \x20Key = \"<redacted>\"\n\
             -<redacted>\n-<redacted> # doc\n+<redacted>\n+<redacted> # doc\n\
             \x20[[E.Users]]\n-Token = \"<redacted>\"\n+Token = \"<redacted>\"\n"
        );
    }

    #[test]
    fn a_line_secret_in_only_one_of_the_texts_is_hidden_as_context() {
        let before = "[Plain]\nValue = \"kept\"\n";
        let after = "[Secrets]\nValue = \"kept\"\n";
        assert_eq!(
            unified_diff(before, after, "a", "b", false),
            "--- a\n+++ b\n@@ -1,2 +1,2 @@\n-[Plain]\n+[Secrets]\n Value = \"<redacted>\"\n"
        );
    }
}

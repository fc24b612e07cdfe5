//! Validation of what the user asks for on the command line, before anything is planned.
//!
//! Swarm rejects a malformed placement constraint only when the service update reaches the
//! manager, halfway through a migration; checking the same rules here turns that into a
//! refusal (exit 4) that changes nothing. The rules follow swarmkit's constraint parser:
//! the left-hand side is `[A-Za-z_][A-Za-z0-9._-]+`, the value is letters, digits, blanks
//! and `:-_.*()?+[]\^$|/`, and the operator is `==` or `!=`.

use std::fmt;

use serde::Serialize;

use crate::error::Diagnostic;

/// Invalid command-line input; each variant names the flag and the fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    /// `--label` is not `KEY=VALUE`.
    #[error("--label `{0}` is not KEY=VALUE")]
    LabelSyntax(String),
    /// The label key or value has characters a Swarm constraint cannot carry.
    #[error("--label `{label}`: {reason}")]
    LabelChars { label: String, reason: String },
    /// A constraint is not `LHS==VALUE` or `LHS!=VALUE`, or uses forbidden characters.
    #[error("{flag} `{expr}` is not a Swarm constraint: {reason}")]
    Constraint {
        flag: &'static str,
        expr: String,
        reason: String,
    },
    /// A port outside 1..=65535.
    #[error("{flag} {port} is outside 1..=65535")]
    PortRange { flag: &'static str, port: i64 },
    /// HTTP and HTTPS on the same port.
    #[error("--http and --https are both {0}; the proxy needs two different ports")]
    SamePorts(u16),
    /// Zero proxy replicas would take all inbound traffic down.
    #[error("--replicas 0 would stop every proxy task and all inbound traffic")]
    ZeroReplicas,
    /// A service cluster's name must make valid service names and a bare TOML key.
    #[error("cluster name `{0}` cannot name Swarm services and an [Extensions.NAME] table")]
    ClusterName(String),
}

impl Diagnostic for InputError {
    fn code(&self) -> &'static str {
        match self {
            InputError::LabelSyntax(_) | InputError::LabelChars { .. } => "invalid_label",
            InputError::Constraint { .. } => "invalid_constraint",
            InputError::PortRange { .. } => "invalid_port",
            InputError::SamePorts(_) => "same_ports",
            InputError::ZeroReplicas => "invalid_replicas",
            InputError::ClusterName(_) => "invalid_cluster_name",
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            InputError::LabelSyntax(_) => "pass the node label as KEY=VALUE, e.g. `--label role=dtr`".into(),
            InputError::LabelChars { .. } => {
                "use a key of letters, digits, `.`, `_` or `-` (starting with a letter or `_`), and a value without `=`, `!`, `<`, `>`, `~`, quotes or `,`".into()
            }
            InputError::Constraint { flag, .. } => {
                format!("write {flag} as `node.labels.KEY==VALUE` or `node.role!=manager`")
            }
            InputError::PortRange { flag, .. } => format!("pass {flag} a port between 1 and 65535"),
            InputError::SamePorts(_) => "pick different ports, e.g. `--http 7080 --https 7443`".into(),
            InputError::ZeroReplicas => "pass `--replicas 1` or more, or leave it out to run one proxy per labelled node".into(),
            InputError::ClusterName(_) => "use letters, digits, `-` and `_`, starting with a letter or digit, at most 39 characters, e.g. `us-east`".into(),
        })
    }
}

/// A node label selecting the proxy's dedicated nodes (`--label role=dtr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeLabel {
    /// Label key, e.g. `role`.
    pub key: String,
    /// Label value, e.g. `dtr`.
    pub value: String,
}

impl NodeLabel {
    /// Parses `KEY=VALUE`, checking both halves against Swarm's constraint syntax.
    pub fn parse(text: &str) -> Result<Self, InputError> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| InputError::LabelSyntax(text.to_owned()))?;
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() {
            return Err(InputError::LabelSyntax(text.to_owned()));
        }
        let chars_error = |reason: String| InputError::LabelChars {
            label: text.to_owned(),
            reason,
        };
        check_label_key(key).map_err(chars_error)?;
        check_value(value).map_err(chars_error)?;
        Ok(NodeLabel {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }

    /// The placement constraint that selects nodes carrying this label.
    pub fn constraint(&self) -> Constraint {
        Constraint {
            lhs: format!("node.labels.{}", self.key),
            operator: Operator::Equal,
            value: self.value.clone(),
        }
    }
}

impl fmt::Display for NodeLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// `==` or `!=`, the two operators Swarm constraints have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
}

/// A Swarm placement constraint, e.g. `node.labels.role==dtr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// What is compared: `node.role`, `node.labels.KEY`, `node.platform.os`, ...
    pub lhs: String,
    /// How it is compared.
    pub operator: Operator,
    /// The value compared against.
    pub value: String,
}

impl Constraint {
    /// Parses a constraint expression as given to `flag` (used in the error).
    pub fn parse(flag: &'static str, text: &str) -> Result<Self, InputError> {
        let error = |reason: &str| InputError::Constraint {
            flag,
            expr: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (lhs, operator, value) = if let Some((lhs, value)) = text.split_once("==") {
            (lhs, Operator::Equal, value)
        } else if let Some((lhs, value)) = text.split_once("!=") {
            (lhs, Operator::NotEqual, value)
        } else {
            return Err(error("it needs `==` or `!=`"));
        };
        let (lhs, value) = (lhs.trim(), value.trim());
        check_lhs(lhs).map_err(|reason| error(&reason))?;
        check_value(value).map_err(|reason| error(&reason))?;
        Ok(Constraint {
            lhs: lhs.to_owned(),
            operator,
            value: value.to_owned(),
        })
    }

    /// The constraints of a config's `ProxyConstraints`, skipping any Swarm would reject
    /// anyway (such a proxy service could not be updated).
    pub fn parse_proxy_constraints(constraints: &[String]) -> Vec<Constraint> {
        constraints
            .iter()
            .filter_map(|c| Constraint::parse("ProxyConstraints", c).ok())
            .collect()
    }

    /// Whether a node with these attributes satisfies the constraint. `attribute` returns
    /// the node's value for a left-hand side, or `None` when the node lacks it.
    pub fn matches(&self, attribute: impl Fn(&str) -> Option<String>) -> bool {
        let actual = attribute(&self.lhs);
        let equal = actual.is_some_and(|actual| {
            if self.lhs.starts_with("node.labels.") || self.lhs.starts_with("engine.labels.") {
                actual == self.value
            } else {
                actual.eq_ignore_ascii_case(&self.value)
            }
        });
        match self.operator {
            Operator::Equal => equal,
            Operator::NotEqual => !equal,
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operator = match self.operator {
            Operator::Equal => "==",
            Operator::NotEqual => "!=",
        };
        write!(f, "{}{operator}{}", self.lhs, self.value)
    }
}

fn check_lhs(lhs: &str) -> Result<(), String> {
    let mut chars = lhs.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if lhs.len() >= 2 && first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "`{lhs}` must start with a letter or `_` and hold only letters, digits, `.`, `_` and `-`"
        ))
    }
}

/// A label key as the hint describes it: it becomes `node.labels.KEY` in a constraint.
fn check_label_key(key: &str) -> Result<(), String> {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        Ok(())
    } else {
        Err(format!(
            "the key `{key}` must start with a letter or `_` and hold only letters, digits, `.`, `_` and `-`"
        ))
    }
}

fn check_value(value: &str) -> Result<(), String> {
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || c.is_whitespace() || ":-_.*()?+[]\\^$|/".contains(c);
    match value.chars().find(|&c| !allowed(c)) {
        None if !value.is_empty() => Ok(()),
        None => Err("the value is empty".to_owned()),
        Some(c) => Err(format!("the value `{value}` contains `{c}`")),
    }
}

/// Checks a port given to `flag`, returning it as a `u16`.
pub fn port(flag: &'static str, value: i64) -> Result<u16, InputError> {
    u16::try_from(value)
        .ok()
        .filter(|&port| port != 0)
        .ok_or(InputError::PortRange { flag, port: value })
}

/// Checks `--http` and `--https` together.
pub fn http_https_ports(http: i64, https: i64) -> Result<(u16, u16), InputError> {
    let (http, https) = (port("--http", http)?, port("--https", https)?);
    if http == https {
        return Err(InputError::SamePorts(http));
    }
    Ok((http, https))
}

/// Checks `--replicas`.
pub fn replicas(value: u64) -> Result<u64, InputError> {
    if value == 0 {
        Err(InputError::ZeroReplicas)
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_into_constraints() {
        let label = NodeLabel::parse("role=dtr").unwrap();
        assert_eq!(label.constraint().to_string(), "node.labels.role==dtr");
        let label = NodeLabel::parse(" com.example.lb = edge-1 ").unwrap();
        assert_eq!(label.to_string(), "com.example.lb=edge-1");
    }

    #[test]
    fn bad_labels_are_refused() {
        for text in [
            "role",
            "=dtr",
            "role=",
            "ro le=dtr",
            "1role=dtr",
            "role=dtr,x",
            "role=a=b",
            "role=\"dtr\"",
        ] {
            assert!(NodeLabel::parse(text).is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn constraints_parse_and_print() {
        for (text, printed) in [
            ("node.role==manager", "node.role==manager"),
            ("node.labels.role != dtr", "node.labels.role!=dtr"),
            ("node.platform.os==linux", "node.platform.os==linux"),
        ] {
            assert_eq!(Constraint::parse("--x", text).unwrap().to_string(), printed);
        }
        for text in [
            "node.role=manager",
            "node.role",
            "==x",
            "node.role==",
            "node.role>=x",
            "node.role==a;b",
        ] {
            assert!(
                Constraint::parse("--x", text).is_err(),
                "{text} should be refused"
            );
        }
    }

    #[test]
    fn constraints_match_like_swarm() {
        let node = |lhs: &str| match lhs {
            "node.role" => Some("Manager".to_owned()),
            "node.labels.role" => Some("dtr".to_owned()),
            _ => None,
        };
        let check = |expr: &str| Constraint::parse("--x", expr).unwrap().matches(node);
        assert!(check("node.role==manager"));
        assert!(check("node.labels.role==dtr"));
        assert!(!check("node.labels.role==DTR"));
        assert!(check("node.labels.zone!=east"));
        assert!(!check("node.labels.zone==east"));
    }

    #[test]
    fn ports_and_replicas() {
        assert_eq!(http_https_ports(7080, 7443), Ok((7080, 7443)));
        assert_eq!(
            http_https_ports(0, 7443),
            Err(InputError::PortRange {
                flag: "--http",
                port: 0
            })
        );
        assert_eq!(
            http_https_ports(80, 65536),
            Err(InputError::PortRange {
                flag: "--https",
                port: 65536
            })
        );
        assert_eq!(
            http_https_ports(8080, 8080),
            Err(InputError::SamePorts(8080))
        );
        assert_eq!(replicas(0), Err(InputError::ZeroReplicas));
        assert_eq!(replicas(5), Ok(5));
    }
}

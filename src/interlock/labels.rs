//! The `com.docker.lb.*` service labels, checked before Interlock copies them into nginx.conf.
//!
//! Interlock puts label values into the proxy's generated nginx.conf as they are. One stray
//! `;`, brace, quote or newline in one service's label makes that file invalid, every proxy
//! task that loads it fails, and all routing on the swarm stops (the seed's Problem 4). So:
//! every known label has a grammar here; characters nginx treats specially are refused in
//! every label whatever its grammar; an unknown key (or a misspelt prefix) is an error that
//! names the nearest known key; compose variables (`${VAR}`) in stack files are reported as
//! not checked, since their value is known only at deploy time.
//!
//! Pure: the caller says what it knows about the service (its networks, the live config's
//! service clusters) through [`Facts`]; nothing here reads a swarm or a file, or prints.

use crate::interlock::findings::Severity;

/// The prefix of every label Interlock reads.
pub const PREFIX: &str = "com.docker.lb.";

/// The labels Interlock knows (after [`PREFIX`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `hosts`: the Host headers routed to the service.
    Hosts,
    /// `port`: the port the service listens on.
    Port,
    /// `network`: the network the proxy joins to reach the service.
    Network,
    /// `context_root`: path-based routing.
    ContextRoot,
    /// `context_root_rewrite`: strip the context root before proxying.
    ContextRootRewrite,
    /// `ssl_cert`: the secret holding the certificate.
    SslCert,
    /// `ssl_key`: the secret holding the key.
    SslKey,
    /// `ssl_only`: redirect HTTP to HTTPS.
    SslOnly,
    /// `ssl_backend`: TLS from the proxy to the service.
    SslBackend,
    /// `ssl_backend_tls_verify`: how the proxy verifies the service's certificate.
    SslBackendTlsVerify,
    /// `ssl_passthrough`: pass TLS through untouched.
    SslPassthrough,
    /// `websocket_endpoints`: paths upgraded to websockets.
    WebsocketEndpoints,
    /// `service_cluster`: which extension's proxy serves the service.
    ServiceCluster,
    /// `sticky_session_cookie`: cookie-based stickiness.
    StickySessionCookie,
    /// `ip_hash`: client-IP stickiness.
    IpHash,
    /// `redirects`: 302 redirects.
    Redirects,
    /// `backend_mode`: task IPs or the service VIP.
    BackendMode,
    /// `default_backend`: catch-all for unknown hosts.
    DefaultBackend,
    /// `max_fails`: passive health checks.
    MaxFails,
    /// `fail_timeout`: passive health checks.
    FailTimeout,
}

const KEYS: &[(&str, Key)] = &[
    ("hosts", Key::Hosts),
    ("port", Key::Port),
    ("network", Key::Network),
    ("context_root", Key::ContextRoot),
    ("context_root_rewrite", Key::ContextRootRewrite),
    ("ssl_cert", Key::SslCert),
    ("ssl_key", Key::SslKey),
    ("ssl_only", Key::SslOnly),
    ("ssl_backend", Key::SslBackend),
    ("ssl_backend_tls_verify", Key::SslBackendTlsVerify),
    ("ssl_passthrough", Key::SslPassthrough),
    ("websocket_endpoints", Key::WebsocketEndpoints),
    ("service_cluster", Key::ServiceCluster),
    ("sticky_session_cookie", Key::StickySessionCookie),
    ("ip_hash", Key::IpHash),
    ("redirects", Key::Redirects),
    ("backend_mode", Key::BackendMode),
    ("default_backend", Key::DefaultBackend),
    ("max_fails", Key::MaxFails),
    ("fail_timeout", Key::FailTimeout),
];

/// Every label Interlock knows, as full names.
pub fn known_labels() -> Vec<String> {
    KEYS.iter().map(|(_, key)| key.label()).collect()
}

impl Key {
    /// The key a full label name stands for, if it is one Interlock knows.
    pub fn of_label(label: &str) -> Option<Key> {
        let suffix = label.strip_prefix(PREFIX)?;
        KEYS.iter()
            .find(|(name, _)| *name == suffix)
            .map(|(_, k)| *k)
    }

    /// The full label name, e.g. `com.docker.lb.hosts`.
    pub fn label(self) -> String {
        let name = KEYS
            .iter()
            .find(|(_, key)| *key == self)
            .map_or("", |(name, _)| *name);
        format!("{PREFIX}{name}")
    }

    /// What a valid value looks like, for hints.
    fn grammar(self) -> &'static str {
        match self {
            Key::Hosts => {
                "comma-separated DNS names, each with an optional `:PORT` and an optional leading `*.`, like `app.example.com,*.example.org`"
            }
            Key::Port => {
                "the port the service listens on inside its containers, 1 to 65535, like `8080`"
            }
            Key::Network | Key::ServiceCluster => {
                "a name of letters, digits and `-_.`, starting with a letter or digit"
            }
            Key::ContextRoot => "an absolute path of letters, digits and `-._~/`, like `/app`",
            Key::WebsocketEndpoints => {
                "comma-separated absolute paths of letters, digits and `-._~/`, like `/ws,/socket`"
            }
            Key::SslCert | Key::SslKey => {
                "the name of a swarm secret: letters, digits and `-_.`, starting and ending with a letter or digit"
            }
            Key::ContextRootRewrite
            | Key::SslOnly
            | Key::SslBackend
            | Key::SslPassthrough
            | Key::IpHash
            | Key::DefaultBackend => "`true` or `false`",
            Key::SslBackendTlsVerify => "`none` or `required`",
            Key::StickySessionCookie => "a cookie name of letters, digits and `_`",
            Key::Redirects => {
                "`;`-separated pairs `SOURCE,TARGET` of http(s) URLs, like `http://old.example.com,https://new.example.com`"
            }
            Key::BackendMode => "`task` or `vip`",
            Key::MaxFails => "a whole number, like `3`",
            Key::FailTimeout => "an nginx time, like `10s` or `1m30s`",
        }
    }
}

/// Where the labels come from, which decides what `$` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A running swarm: values are final; `$` is a literal `$`.
    Swarm,
    /// A compose/stack file: `${VAR}` and `$VAR` are filled in at deploy time, `$$` is `$`.
    StackFile,
}

/// Which labels of a service a label is: Interlock reads only the service's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSource {
    /// Service labels (`deploy.labels` in a stack file, `Spec.Labels` on a swarm).
    Service,
    /// Container labels (service-level `labels` in a stack file): Interlock ignores them.
    Container,
}

/// One label of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label<'a> {
    /// The key, e.g. `com.docker.lb.hosts`.
    pub key: &'a str,
    /// The value as written.
    pub value: &'a str,
    /// Service or container label.
    pub source: LabelSource,
}

/// A network a service is attached to, as the `network` label may name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkName {
    /// Known by exactly this name (a swarm network, or a stack network with `name:`).
    Exact(String),
    /// A network a stack creates from this key: deployed as `<stack>_KEY`, and the stack's
    /// name is not in the file.
    InStack(String),
}

impl NetworkName {
    fn matches(&self, value: &str) -> bool {
        match self {
            NetworkName::Exact(name) => name == value,
            NetworkName::InStack(key) => {
                value == key
                    || value
                        .strip_suffix(key.as_str())
                        .is_some_and(|s| s.ends_with('_'))
            }
        }
    }
}

impl std::fmt::Display for NetworkName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetworkName::Exact(name) => f.write_str(name),
            NetworkName::InStack(key) => write!(f, "<stack>_{key}"),
        }
    }
}

/// What the caller knows about the service and the swarm.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// Where the labels come from.
    pub origin: Origin,
    /// The networks the service is attached to; `None` when unknown.
    pub networks: Option<&'a [NetworkName]>,
    /// The `ServiceCluster` values of the live Interlock config, or why it is unknown.
    pub clusters: Result<&'a [String], &'a str>,
}

/// A finding about the labels of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFinding {
    /// Index of the label it is about, in the slice given to [`check`]; `None` when it is
    /// about the service's labels as a whole.
    pub label: Option<usize>,
    /// How much it matters.
    pub severity: Severity,
    /// Stable identifier.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// A problem with a value before it is tied to a label.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Issue {
    severity: Severity,
    code: &'static str,
    message: String,
    hint: String,
}

impl Issue {
    fn error(code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Error,
            code,
            message: message.into(),
            hint: hint.into(),
        }
    }

    fn warning(code: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Warning,
            ..Issue::error(code, message, hint)
        }
    }

    fn at(self, label: Option<usize>) -> LabelFinding {
        LabelFinding {
            label,
            severity: self.severity,
            code: self.code,
            message: self.message,
            hint: self.hint,
        }
    }
}

/// Checks the labels of one service; labels that are not Interlock's (and not a misspelling
/// of one) are ignored. Findings come in label order, then the ones about the whole set.
pub fn check(labels: &[Label<'_>], facts: &Facts<'_>) -> Vec<LabelFinding> {
    let mut findings = Vec::new();
    let mut valid: Vec<(usize, Key, String)> = Vec::new();
    for (index, label) in labels.iter().enumerate() {
        let key = match classify(label.key) {
            Class::NotInterlock => continue,
            Class::Unknown(issue) => {
                findings.push(issue.at(Some(index)));
                continue;
            }
            Class::Known(key) => key,
        };
        if label.source == LabelSource::Container {
            findings.push(
                Issue::warning(
                    "container_label",
                    "Interlock reads service labels only; as a container label this has no effect",
                    "move it under the service's `deploy.labels`",
                )
                .at(Some(index)),
            );
        }
        let value = match interpolate(facts.origin, label.value) {
            Interpolated::Variable(reference) => {
                findings.push(LabelFinding {
                    label: Some(index),
                    severity: Severity::NotChecked,
                    code: "compose_variable",
                    message: format!(
                        "the value uses the compose variable {reference}, which is set only at deploy time"
                    ),
                    hint: "check the deployed values with `docker stack config -c FILE | interlockctl labels check --stack -`".into(),
                });
                continue;
            }
            Interpolated::Literal(value) => value,
        };
        match check_value(key, &value, facts) {
            Ok(warnings) => {
                findings.extend(warnings.into_iter().map(|w| w.at(Some(index))));
                if label.source == LabelSource::Service {
                    valid.push((index, key, value));
                }
            }
            Err(issue) => findings.push(issue.at(Some(index))),
        }
    }
    findings.extend(duplicates(labels));
    findings.extend(across_labels(labels, &valid));
    findings
}

enum Class {
    NotInterlock,
    Unknown(Issue),
    Known(Key),
}

/// Whether a key is Interlock's, a misspelling of one, or someone else's.
fn classify(key: &str) -> Class {
    if let Some(known) = Key::of_label(key) {
        return Class::Known(known);
    }
    let lower = key.to_ascii_lowercase();
    let under_prefix = lower.starts_with(PREFIX);
    // A cheap test first: only keys that begin almost like the prefix can be a misspelling.
    let head: String = lower.chars().take(PREFIX.len()).collect();
    let near_prefix = key.len() >= PREFIX.len() - 2 && edit_distance(&head, PREFIX) <= 2;
    if !under_prefix && !near_prefix {
        return Class::NotInterlock;
    }
    let (distance, nearest) = KEYS
        .iter()
        .map(|(name, _)| {
            let full = format!("{PREFIX}{name}");
            (edit_distance(&lower, &full), full)
        })
        .min_by_key(|(distance, _)| *distance)
        .expect("KEYS is not empty");
    if under_prefix {
        Class::Unknown(Issue::error(
            "unknown_label",
            format!("Interlock has no label `{key}`; did you mean `{nearest}`?"),
            format!("rename it to `{nearest}`"),
        ))
    } else if distance <= 2 {
        Class::Unknown(Issue::error(
            "unknown_label",
            format!("`{key}` looks like a misspelt `{nearest}`, which Interlock would ignore"),
            format!("rename it to `{nearest}`"),
        ))
    } else {
        Class::NotInterlock
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

enum Interpolated {
    /// The value the label will have.
    Literal(String),
    /// The first variable reference, e.g. `${HOST}`.
    Variable(String),
}

/// A stack file's value as `docker stack deploy` fills it in: `$$` is `$`; `${VAR}` and
/// `$VAR` make it unknowable offline. A lone `$` stays a `$` (and is refused later).
fn interpolate(origin: Origin, value: &str) -> Interpolated {
    if origin == Origin::Swarm || !value.contains('$') {
        return Interpolated::Literal(value.to_owned());
    }
    let mut literal = String::with_capacity(value.len());
    let mut chars = value.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c != '$' {
            literal.push(c);
            continue;
        }
        match chars.peek().map(|(_, next)| *next) {
            Some('$') => {
                chars.next();
                literal.push('$');
            }
            Some('{') => {
                let end = value[at..].find('}').map_or(value.len(), |e| at + e + 1);
                return Interpolated::Variable(value[at..end].to_owned());
            }
            Some(next) if next == '_' || next.is_ascii_alphabetic() => {
                let name_len = value[at + 1..]
                    .find(|c: char| c != '_' && !c.is_ascii_alphanumeric())
                    .unwrap_or(value.len() - at - 1);
                return Interpolated::Variable(value[at..=at + name_len].to_owned());
            }
            _ => literal.push('$'),
        }
    }
    Interpolated::Literal(literal)
}

/// The first character nginx would read specially, as a refusal.
fn unsafe_character(key: Key, text: &str) -> Result<(), Issue> {
    for c in text.chars() {
        let why = match c {
            ';' => "ends an nginx directive",
            '{' | '}' => "opens or closes an nginx block",
            '"' | '\'' => "changes how nginx reads the rest of the line",
            '$' => "starts an nginx variable",
            '#' => "starts an nginx comment",
            '\\' => "is nginx's escape character",
            c if c.is_control() => "splits or corrupts the generated nginx.conf",
            c if c.is_whitespace() => "separates nginx arguments",
            _ => continue,
        };
        let shown = match c {
            ' ' => "a space".to_owned(),
            c if c.is_control() || c.is_whitespace() => {
                format!(
                    "the character U+{:04X} (`{}`)",
                    u32::from(c),
                    c.escape_debug()
                )
            }
            c => format!("`{c}`"),
        };
        return Err(Issue::error(
            "unsafe_character",
            format!(
                "contains {shown}, which {why}: in nginx.conf it would stop the proxy from loading its config, or inject directives"
            ),
            format!("remove it; the value must be {}", key.grammar()),
        ));
    }
    Ok(())
}

fn invalid(key: Key, message: impl Into<String>) -> Issue {
    Issue::error(
        "invalid_value",
        message,
        format!("the value must be {}", key.grammar()),
    )
}

/// Checks a value against its label's grammar: warnings when valid, the first error if not.
fn check_value(key: Key, value: &str, facts: &Facts<'_>) -> Result<Vec<Issue>, Issue> {
    if value.is_empty() {
        return Err(invalid(key, "is empty"));
    }
    match key {
        Key::Hosts => check_list(key, value, host),
        Key::WebsocketEndpoints => check_list(key, value, |item| path(key, item)),
        Key::Redirects => redirects(value).map(|_| Vec::new()),
        _ => {
            unsafe_character(key, value)?;
            single(key, value, facts)
        }
    }
}

fn single(key: Key, value: &str, facts: &Facts<'_>) -> Result<Vec<Issue>, Issue> {
    let none = Ok(Vec::new());
    match key {
        Key::Port => port(value)
            .map(|_| Vec::new())
            .ok_or_else(|| invalid(key, format!("`{value}` is not a port from 1 to 65535"))),
        Key::ContextRoot => {
            path(key, value)?;
            Ok(if value.len() > 1 && value.ends_with('/') {
                vec![Issue::warning(
                    "trailing_slash",
                    "ends with `/`: the proxy's rewrite rule expects `/PATH/...`, so only `/PATH//...` would match",
                    format!("write `{}`", value.trim_end_matches('/')),
                )]
            } else {
                Vec::new()
            })
        }
        Key::ContextRootRewrite
        | Key::SslOnly
        | Key::SslBackend
        | Key::SslPassthrough
        | Key::IpHash
        | Key::DefaultBackend => boolean(key, value),
        Key::SslCert | Key::SslKey => secret_name(key, value).map(|()| Vec::new()),
        Key::SslBackendTlsVerify => one_of(key, value, &["none", "required"]),
        Key::BackendMode => one_of(key, value, &["task", "vip"]),
        Key::StickySessionCookie => {
            if value.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) {
                none
            } else {
                Err(invalid(
                    key,
                    format!("`{value}` cannot be part of the nginx variable `$cookie_{value}`"),
                ))
            }
        }
        Key::MaxFails => match value.parse::<u32>() {
            Ok(_) if value.bytes().all(|b| b.is_ascii_digit()) => none,
            _ => Err(invalid(key, format!("`{value}` is not a whole number"))),
        },
        Key::FailTimeout => {
            if nginx_time(value) {
                none
            } else {
                Err(invalid(key, format!("`{value}` is not an nginx time")))
            }
        }
        Key::Network => {
            name(key, value)?;
            attached_network(value, facts.networks).map(|()| Vec::new())
        }
        Key::ServiceCluster => {
            name(key, value)?;
            Ok(service_cluster(value, facts.clusters).into_iter().collect())
        }
        Key::Hosts | Key::WebsocketEndpoints | Key::Redirects => {
            unreachable!("list labels are checked item by item")
        }
    }
}

/// A comma-separated list: each item checked alone. A space after a comma is only a
/// warning (whether Interlock trims it is not documented); any other whitespace is refused.
fn check_list(
    key: Key,
    value: &str,
    item_check: impl Fn(&str) -> Result<(), Issue>,
) -> Result<Vec<Issue>, Issue> {
    let mut warnings = Vec::new();
    for (position, raw) in value.split(',').enumerate() {
        let item = if position == 0 {
            raw
        } else {
            raw.trim_start_matches(' ')
        };
        if item.len() != raw.len() && warnings.is_empty() {
            warnings.push(Issue::warning(
                "space_after_comma",
                "has a space after a comma; whether Interlock trims it is not documented",
                format!("write `{}`", spaceless_list(value)),
            ));
        }
        unsafe_character(key, item)?;
        if item.is_empty() {
            return Err(invalid(
                key,
                "has an empty item (two commas in a row, or one at an end)",
            ));
        }
        item_check(item)?;
    }
    Ok(warnings)
}

fn spaceless_list(value: &str) -> String {
    value
        .split(',')
        .map(|item| item.trim_start_matches(' '))
        .collect::<Vec<_>>()
        .join(",")
}

/// A port number 1..=65535, written with digits only.
pub fn port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|port| *port > 0)
}

/// A host name with an optional `:PORT` and an optional leading `*.`.
fn host(item: &str) -> Result<(), Issue> {
    let key = Key::Hosts;
    let name = match item.rsplit_once(':') {
        Some((name, port_text)) => {
            port(port_text).ok_or_else(|| {
                invalid(
                    key,
                    format!("`{item}`: `{port_text}` is not a port from 1 to 65535"),
                )
            })?;
            name
        }
        None => item,
    };
    dns_name(name.strip_prefix("*.").unwrap_or(name))
        .map_err(|why| invalid(key, format!("`{item}` is not a DNS name: {why}")))
}

/// Why `name` is not a DNS name (ASCII letters, digits and `-` in dot-separated labels).
fn dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if !name.is_ascii() {
        return Err("it has non-ASCII letters; write the punycode form (`xn--...`)".into());
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters".into());
    }
    if name.ends_with('.') {
        return Err("it ends with a dot".into());
    }
    for part in name.split('.') {
        if part.is_empty() {
            return Err("it has an empty part between dots".into());
        }
        if part.len() > 63 {
            return Err(format!("`{part}` is longer than 63 characters"));
        }
        if let Some(bad) = part
            .chars()
            .find(|c| *c != '-' && !c.is_ascii_alphanumeric())
        {
            return Err(if bad == '*' {
                "`*` is allowed only as a leading `*.`".into()
            } else {
                format!("`{bad}` is not allowed")
            });
        }
        if part.starts_with('-') || part.ends_with('-') {
            return Err(format!("`{part}` starts or ends with `-`"));
        }
    }
    Ok(())
}

/// An absolute URL path of unreserved characters (it also lands in a rewrite regex).
fn path(key: Key, value: &str) -> Result<(), Issue> {
    if !value.starts_with('/') {
        return Err(invalid(key, format!("`{value}` does not start with `/`")));
    }
    match value
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !"-._~/".contains(*c))
    {
        Some(bad) => Err(invalid(
            key,
            format!("`{value}` has `{bad}`, which nginx would read as part of a location regex"),
        )),
        None => Ok(()),
    }
}

fn boolean(key: Key, value: &str) -> Result<Vec<Issue>, Issue> {
    match value {
        "true" => Ok(Vec::new()),
        "false" => Ok(vec![Issue::warning(
            "false_may_enable",
            "some Interlock versions turn the feature on when the label is present, whatever its value",
            "remove the label to turn the feature off",
        )]),
        // What Go's strconv.ParseBool also accepts.
        "1" | "t" | "T" | "TRUE" | "True" | "0" | "f" | "F" | "FALSE" | "False" => {
            Ok(vec![Issue::warning(
                "unusual_boolean",
                format!("`{value}` is not how Interlock's documentation writes a boolean"),
                "write `true` or `false`",
            )])
        }
        _ => Err(invalid(key, format!("`{value}` is not `true` or `false`"))),
    }
}

fn one_of(key: Key, value: &str, allowed: &[&str]) -> Result<Vec<Issue>, Issue> {
    if allowed.contains(&value) {
        Ok(Vec::new())
    } else {
        Err(invalid(
            key,
            format!("`{value}` is not one of the values Interlock knows"),
        ))
    }
}

/// A swarm object name: Docker's rule for secrets, at most 64 characters.
fn secret_name(key: Key, value: &str) -> Result<(), Issue> {
    let edges_ok = value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    let chars_ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if edges_ok && chars_ok && value.len() <= 64 {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("`{value}` is not a valid secret name"),
        ))
    }
}

/// A network or cluster name.
fn name(key: Key, value: &str) -> Result<(), Issue> {
    let first_ok = value.starts_with(|c: char| c.is_ascii_alphanumeric());
    let rest_ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(invalid(key, format!("`{value}` is not a valid name")))
    }
}

/// nginx's time syntax: one or more `NUMBER[UNIT]`, units `ms s m h d w M y`.
fn nginx_time(value: &str) -> bool {
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d", "w", "M", "y"]
            .into_iter()
            .find(|unit| rest.starts_with(unit))
            .unwrap_or("");
        rest = &rest[unit.len()..];
    }
    !value.is_empty()
}

fn attached_network(value: &str, networks: Option<&[NetworkName]>) -> Result<(), Issue> {
    let Some(networks) = networks else {
        return Ok(());
    };
    if networks.iter().any(|network| network.matches(value)) {
        return Ok(());
    }
    let attached = if networks.is_empty() {
        "no network".to_owned()
    } else {
        networks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(Issue::error(
        "network_not_attached",
        format!("the service is not attached to network `{value}` (it is attached to {attached})"),
        "name a network the service is attached to, or attach it to this one",
    ))
}

fn service_cluster(value: &str, clusters: Result<&[String], &str>) -> Option<Issue> {
    match clusters {
        Ok(clusters) if clusters.iter().any(|c| c == value) => None,
        Ok(clusters) => Some(Issue::error(
            "unknown_service_cluster",
            format!(
                "no extension of the live Interlock config has ServiceCluster = \"{value}\" (it has: {})",
                if clusters.is_empty() {
                    "none".to_owned()
                } else {
                    clusters.join(", ")
                }
            ),
            "use the ServiceCluster of an existing extension, or add the extension first",
        )),
        Err(why) => Some(Issue {
            severity: Severity::NotChecked,
            code: "service_cluster_not_checked",
            message: format!("not compared with the live Interlock config: {why}"),
            hint: "run `interlockctl labels check` against the swarm to compare it".into(),
        }),
    }
}

/// `SOURCE,TARGET;...` with http(s) URLs; returns the (source, target) hosts.
fn redirects(value: &str) -> Result<Vec<(String, String)>, Issue> {
    let key = Key::Redirects;
    let pairs: Vec<&str> = value.split(';').collect();
    let mut hosts = Vec::new();
    for (position, pair) in pairs.iter().enumerate() {
        // The documented example ends with `;`: an empty last item is allowed.
        if pair.is_empty() && position + 1 == pairs.len() && position > 0 {
            continue;
        }
        unsafe_character(key, pair)?;
        let Some((source, target)) = pair.split_once(',') else {
            return Err(invalid(
                key,
                format!("`{pair}` is not a `SOURCE,TARGET` pair"),
            ));
        };
        hosts.push((url_host(source)?, url_host(target)?));
    }
    Ok(hosts)
}

fn url_host(url: &str) -> Result<String, Issue> {
    let key = Key::Redirects;
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            invalid(
                key,
                format!("`{url}` does not start with http:// or https://"),
            )
        })?;
    let (authority, url_path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    host(authority).map_err(|issue| invalid(key, format!("in `{url}`: {}", issue.message)))?;
    if !url_path.is_empty() {
        path(key, url_path)?;
    }
    Ok(host_without_port(authority))
}

fn host_without_port(item: &str) -> String {
    item.rsplit_once(':')
        .map_or(item, |(name, _)| name)
        .to_ascii_lowercase()
}

/// A key set twice in one list: the last one wins, the earlier one is dead text.
fn duplicates(labels: &[Label<'_>]) -> Vec<LabelFinding> {
    let mut findings = Vec::new();
    for (index, label) in labels.iter().enumerate() {
        let later = labels[index + 1..]
            .iter()
            .any(|other| other.key == label.key && other.source == label.source);
        if later && Key::of_label(label.key).is_some() {
            findings.push(
                Issue::warning(
                    "duplicate_label",
                    "is set again later in the same list; only the last value is used",
                    "delete one of the two",
                )
                .at(Some(index)),
            );
        }
    }
    findings
}

/// Rules that involve several labels of the service (service labels only).
fn across_labels(labels: &[Label<'_>], valid: &[(usize, Key, String)]) -> Vec<LabelFinding> {
    let present = |key: Key| {
        labels
            .iter()
            .rposition(|l| l.source == LabelSource::Service && Key::of_label(l.key) == Some(key))
    };
    let value = |key: Key| {
        valid
            .iter()
            .rev()
            .find(|(_, k, _)| *k == key)
            .map(|(index, _, value)| (*index, value.as_str()))
    };
    let mut findings = Vec::new();
    let any_interlock = labels
        .iter()
        .any(|l| l.source == LabelSource::Service && Key::of_label(l.key).is_some());
    if any_interlock && present(Key::Hosts).is_none() {
        findings.push(
            Issue::warning(
                "missing_hosts",
                format!(
                    "has Interlock labels but no `{}`, so nothing is routed to it",
                    Key::Hosts.label()
                ),
                format!("add `{}` with the host names to route", Key::Hosts.label()),
            )
            .at(None),
        );
    }
    if present(Key::Hosts).is_some() && present(Key::Port).is_none() {
        findings.push(
            Issue::warning(
                "missing_port",
                format!("is routed but has no `{}`: Interlock does not know which port to send traffic to", Key::Port.label()),
                format!("add `{}` with the port the service listens on", Key::Port.label()),
            )
            .at(None),
        );
    }
    for (has, lacks) in [(Key::SslCert, Key::SslKey), (Key::SslKey, Key::SslCert)] {
        if let (Some(index), None) = (present(has), present(lacks)) {
            findings.push(
                Issue::error(
                    "incomplete_tls",
                    format!(
                        "has `{}` without `{}`: nginx refuses a certificate without its key",
                        has.label(),
                        lacks.label()
                    ),
                    format!("add `{}`, or remove `{}`", lacks.label(), has.label()),
                )
                .at(Some(index)),
            );
        }
    }
    if let (Some((index, redirect_value)), Some((_, hosts_value))) =
        (value(Key::Redirects), value(Key::Hosts))
    {
        let routed: Vec<String> = hosts_value
            .split(',')
            .map(|h| host_without_port(h.trim_start_matches(' ')))
            .collect();
        let covered = |host: &str| {
            routed.iter().any(|r| {
                r == host
                    || r.strip_prefix('*')
                        .is_some_and(|suffix| host.ends_with(suffix))
            })
        };
        let hosts = redirects(redirect_value).unwrap_or_default();
        if let Some(missing) = hosts
            .iter()
            .flat_map(|(source, target)| [source, target])
            .find(|host| !covered(host))
        {
            findings.push(
                Issue::error(
                    "redirect_host_not_routed",
                    format!(
                        "redirects to or from `{missing}`, which is not in `{}`",
                        Key::Hosts.label()
                    ),
                    format!("add `{missing}` to `{}`", Key::Hosts.label()),
                )
                .at(Some(index)),
            );
        }
    }
    if value(Key::SslPassthrough).is_some_and(|(_, v)| v == "true")
        && let Some(index) = present(Key::Redirects)
    {
        findings.push(
            Issue::warning(
                "redirects_with_passthrough",
                "redirects do not work with `ssl_passthrough`: the proxy never sees the request",
                "remove the redirects, or terminate TLS at the proxy",
            )
            .at(Some(index)),
        );
    }
    if value(Key::BackendMode).is_some_and(|(_, v)| v == "vip") {
        for key in [Key::StickySessionCookie, Key::WebsocketEndpoints] {
            if let Some(index) = present(key) {
                findings.push(
                    Issue::warning(
                        "unsupported_in_vip_mode",
                        format!("`{}` has no effect with `backend_mode=vip`: the proxy sees one address per service, not its tasks", key.label()),
                        "use `backend_mode=task`, or remove this label",
                    )
                    .at(Some(index)),
                );
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_FACTS: Facts<'static> = Facts {
        origin: Origin::Swarm,
        networks: None,
        clusters: Err("no live config in this test"),
    };

    fn service(pairs: &[(&'static str, &'static str)]) -> Vec<Label<'static>> {
        pairs
            .iter()
            .map(|(key, value)| Label {
                key,
                value,
                source: LabelSource::Service,
            })
            .collect()
    }

    fn codes(labels: &[Label<'_>], facts: &Facts<'_>) -> Vec<(Option<usize>, &'static str)> {
        check(labels, facts)
            .into_iter()
            .map(|f| (f.label, f.code))
            .collect()
    }

    #[test]
    fn a_clean_routed_service_has_no_findings() {
        let labels = service(&[
            ("com.docker.lb.hosts", "app.example.com,*.example.org:8443"),
            ("com.docker.lb.port", "8080"),
            ("com.docker.ucp.access.label", "/dev/ops"),
        ]);
        assert_eq!(codes(&labels, &NO_FACTS), []);
    }

    #[test]
    fn every_nginx_special_character_is_refused() {
        for value in [
            "a.com;", "a{", "}", "a\"b", "a'b", "a$b", "a#b", "a\\b", "a\nb", "a\tb", "a b",
            "a\u{7}", "a\u{a0}b",
        ] {
            let labels = [Label {
                key: "com.docker.lb.port",
                value,
                source: LabelSource::Service,
            }];
            let findings = check(&labels, &NO_FACTS);
            assert_eq!(findings[0].code, "unsafe_character", "{value:?}");
            assert_eq!(findings[0].severity, Severity::Error, "{value:?}");
        }
    }

    #[test]
    fn unsafe_character_messages_name_the_character() {
        let labels = service(&[("com.docker.lb.hosts", "a.com\nb.com")]);
        let finding = &check(&labels, &NO_FACTS)[0];
        assert_eq!(
            finding.message,
            "contains the character U+000A (`\\n`), which splits or corrupts the generated nginx.conf: in nginx.conf it would stop the proxy from loading its config, or inject directives"
        );
        assert!(
            finding
                .hint
                .starts_with("remove it; the value must be comma-separated DNS names")
        );
    }

    #[test]
    fn unknown_keys_name_the_nearest_known_one() {
        let labels = service(&[
            ("com.docker.lb.hots", "a.com"),
            ("com.docker.lb.Port", "80"),
            ("com.dokcer.lb.network", "x"),
            ("com.docker.ucp.access.label", "/"),
            ("org.example.port", "1"),
        ]);
        let findings = check(&labels, &NO_FACTS);
        let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "Interlock has no label `com.docker.lb.hots`; did you mean `com.docker.lb.hosts`?",
                "Interlock has no label `com.docker.lb.Port`; did you mean `com.docker.lb.port`?",
                "`com.dokcer.lb.network` looks like a misspelt `com.docker.lb.network`, which Interlock would ignore",
            ]
        );
    }

    #[test]
    fn grammars_accept_and_refuse() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("com.docker.lb.port", "65535", None),
            ("com.docker.lb.port", "0", Some("invalid_value")),
            ("com.docker.lb.port", "65536", Some("invalid_value")),
            ("com.docker.lb.port", "+80", Some("invalid_value")),
            ("com.docker.lb.hosts", "a.com,", Some("invalid_value")),
            ("com.docker.lb.hosts", "a_b.com", Some("invalid_value")),
            ("com.docker.lb.hosts", "a.*.com", Some("invalid_value")),
            ("com.docker.lb.hosts", "bücher.de", Some("invalid_value")),
            ("com.docker.lb.hosts", "xn--bcher-kva.de:443", None),
            ("com.docker.lb.context_root", "/app/v1", None),
            ("com.docker.lb.context_root", "app", Some("invalid_value")),
            (
                "com.docker.lb.context_root",
                "/app(.*)",
                Some("invalid_value"),
            ),
            ("com.docker.lb.ssl_cert", "demo_app.example.org.cert", None),
            ("com.docker.lb.ssl_cert", "-cert", Some("invalid_value")),
            ("com.docker.lb.sticky_session_cookie", "app_session", None),
            (
                "com.docker.lb.sticky_session_cookie",
                "app-session",
                Some("invalid_value"),
            ),
            ("com.docker.lb.backend_mode", "vip", None),
            ("com.docker.lb.backend_mode", "VIP", Some("invalid_value")),
            ("com.docker.lb.max_fails", "3", None),
            ("com.docker.lb.max_fails", "-3", Some("invalid_value")),
            ("com.docker.lb.fail_timeout", "1m30s", None),
            (
                "com.docker.lb.fail_timeout",
                "30 s",
                Some("unsafe_character"),
            ),
            ("com.docker.lb.fail_timeout", "s30", Some("invalid_value")),
            ("com.docker.lb.websocket_endpoints", "/ws,/socket", None),
            (
                "com.docker.lb.websocket_endpoints",
                "/ws,socket",
                Some("invalid_value"),
            ),
            ("com.docker.lb.ip_hash", "yes", Some("invalid_value")),
            ("com.docker.lb.network", "demo_demo-network", None),
            ("com.docker.lb.network", "-net", Some("invalid_value")),
        ];
        for (key, value, expected) in cases {
            let mut labels = service(&[(key, value)]);
            labels.extend(service(&[
                ("com.docker.lb.hosts", "a.com"),
                ("com.docker.lb.port", "1"),
            ]));
            let errors: Vec<&str> = check(&labels, &NO_FACTS)
                .into_iter()
                .filter(|f| f.label == Some(0) && f.code != "incomplete_tls")
                .filter(|f| f.severity == Severity::Error)
                .map(|f| f.code)
                .collect();
            assert_eq!(
                errors,
                expected.iter().copied().collect::<Vec<_>>(),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn warnings_do_not_refuse() {
        let labels = service(&[
            ("com.docker.lb.hosts", "a.com, b.com"),
            ("com.docker.lb.port", "80"),
            ("com.docker.lb.ssl_only", "false"),
            ("com.docker.lb.ip_hash", "True"),
            ("com.docker.lb.context_root", "/app/"),
        ]);
        assert_eq!(
            codes(&labels, &NO_FACTS),
            [
                (Some(0), "space_after_comma"),
                (Some(2), "false_may_enable"),
                (Some(3), "unusual_boolean"),
                (Some(4), "trailing_slash"),
            ]
        );
        assert_eq!(check(&labels, &NO_FACTS)[0].hint, "write `a.com,b.com`");
    }

    #[test]
    fn rules_across_labels() {
        let labels = service(&[
            ("com.docker.lb.ssl_cert", "app.cert"),
            (
                "com.docker.lb.redirects",
                "http://old.example.com,https://new.example.com;",
            ),
            ("com.docker.lb.hosts", "new.example.com"),
            ("com.docker.lb.backend_mode", "vip"),
            ("com.docker.lb.sticky_session_cookie", "s"),
            ("com.docker.lb.ssl_passthrough", "true"),
        ]);
        assert_eq!(
            codes(&labels, &NO_FACTS),
            [
                (None, "missing_port"),
                (Some(0), "incomplete_tls"),
                (Some(1), "redirect_host_not_routed"),
                (Some(1), "redirects_with_passthrough"),
                (Some(4), "unsupported_in_vip_mode"),
            ]
        );
        let only_port = service(&[("com.docker.lb.port", "80")]);
        assert_eq!(codes(&only_port, &NO_FACTS), [(None, "missing_hosts")]);
        let wildcard = service(&[
            ("com.docker.lb.hosts", "*.example.com"),
            ("com.docker.lb.port", "80"),
            (
                "com.docker.lb.redirects",
                "http://a.example.com,http://b.example.com/x",
            ),
        ]);
        assert_eq!(codes(&wildcard, &NO_FACTS), []);
    }

    #[test]
    fn compose_variables_are_not_checked_and_dollar_dollar_is_a_dollar() {
        let facts = Facts {
            origin: Origin::StackFile,
            ..NO_FACTS
        };
        let labels = service(&[
            ("com.docker.lb.hosts", "${APP_HOST:-app.example.com}"),
            ("com.docker.lb.port", "$PORT"),
            ("com.docker.lb.context_root", "/a$$b"),
        ]);
        let findings = check(&labels, &facts);
        assert_eq!(
            findings
                .iter()
                .map(|f| (f.severity, f.code))
                .collect::<Vec<_>>(),
            [
                (Severity::NotChecked, "compose_variable"),
                (Severity::NotChecked, "compose_variable"),
                (Severity::Error, "unsafe_character"),
            ]
        );
        assert_eq!(
            findings[0].message,
            "the value uses the compose variable ${APP_HOST:-app.example.com}, which is set only at deploy time"
        );
        assert!(findings[1].message.contains("variable $PORT,"));
        // On a swarm a `$` is a `$`.
        let live = service(&[("com.docker.lb.port", "${PORT}")]);
        assert_eq!(check(&live, &NO_FACTS)[0].code, "unsafe_character");
    }

    #[test]
    fn network_must_be_attached_and_cluster_must_exist() {
        let networks = [
            NetworkName::Exact("shop-backend".into()),
            NetworkName::InStack("frontend".into()),
        ];
        let clusters = ["us-east".to_owned()];
        let facts = Facts {
            origin: Origin::StackFile,
            networks: Some(&networks),
            clusters: Ok(&clusters),
        };
        let check_one = |key: &'static str, value: &'static str| {
            let labels = [Label {
                key,
                value,
                source: LabelSource::Service,
            }];
            check(&labels, &facts)
                .into_iter()
                .filter(|f| f.label == Some(0))
                .map(|f| f.message)
                .collect::<Vec<_>>()
        };
        assert!(check_one("com.docker.lb.network", "shop-backend").is_empty());
        assert!(check_one("com.docker.lb.network", "shop_frontend").is_empty());
        assert!(check_one("com.docker.lb.network", "frontend").is_empty());
        assert_eq!(
            check_one("com.docker.lb.network", "backend"),
            [
                "the service is not attached to network `backend` (it is attached to shop-backend, <stack>_frontend)"
            ]
        );
        assert!(check_one("com.docker.lb.service_cluster", "us-east").is_empty());
        assert_eq!(
            check_one("com.docker.lb.service_cluster", "us-west"),
            [
                "no extension of the live Interlock config has ServiceCluster = \"us-west\" (it has: us-east)"
            ]
        );
        let unknown = Facts {
            clusters: Err("service ucp-interlock does not exist"),
            ..facts
        };
        let labels = service(&[("com.docker.lb.service_cluster", "us-west")]);
        let finding = &check(&labels, &unknown)[0];
        assert_eq!(finding.severity, Severity::NotChecked);
        assert_eq!(
            finding.message,
            "not compared with the live Interlock config: service ucp-interlock does not exist"
        );
    }

    #[test]
    fn container_labels_are_checked_and_flagged() {
        let labels = [
            Label {
                key: "com.docker.lb.hosts",
                value: "a.com;",
                source: LabelSource::Container,
            },
            Label {
                key: "com.docker.lb.port",
                value: "80",
                source: LabelSource::Service,
            },
            Label {
                key: "com.docker.lb.port",
                value: "81",
                source: LabelSource::Service,
            },
        ];
        assert_eq!(
            codes(&labels, &NO_FACTS),
            [
                (Some(0), "container_label"),
                (Some(0), "unsafe_character"),
                (Some(1), "duplicate_label"),
                (None, "missing_hosts"),
            ]
        );
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("hosts", "hosts"), 0);
        assert_eq!(edit_distance("hots", "hosts"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}

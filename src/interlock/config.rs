//! The Interlock core's `/config.toml`, edited in place.
//!
//! The runbook this tool replaces edited the file with `sed`; a missed `|` or a curly quote
//! silently produced a config that took the proxy down. Here every edit goes through
//! `toml_edit`, names the key it changes and returns a [`KeyChange`] record that feeds the
//! plan. Nothing is ever re-serialized from a struct: comments, key order, blank lines,
//! string escapes and the formatting of every untouched line stay byte for byte.
//!
//! A file saved on Windows keeps its shape: `toml_edit` reads CRLF line breaks but writes LF,
//! so a document whose every line break is CRLF is written back with CRLF (otherwise the
//! diff of a two-key edit would show every line changed and hide the real change), and a
//! leading byte-order mark, which `toml_edit` does not accept, is set aside and written back.
//! (A live run refuses to introduce one: see `runbook::change`.)
//!
//! Keys are looked up case-insensitively because Interlock decodes its config with
//! BurntSushi's TOML library, which matches field names that way (`RLimitNoFile` and
//! `RlimitNoFile` both appear in the wild).

use serde::Serialize;
use toml_edit::{Array, DocumentMut, Item, Table, TableLike, Value};

use crate::error::Diagnostic;
use crate::interlock::image::{IMAGE_KEYS, Upgrade};

/// The service names and ports Interlock falls back to when the config leaves them out.
pub mod defaults {
    /// The proxy service name when `ProxyServiceName` is absent.
    pub const PROXY_SERVICE_NAME: &str = "ucp-interlock-proxy";
    /// The extension service name when `ServiceName` is absent.
    pub const SERVICE_NAME: &str = "ucp-interlock-extension";
    /// nginx's HTTP port inside the proxy container.
    pub const TARGET_PORT: u16 = 80;
    /// nginx's HTTPS port inside the proxy container.
    pub const TARGET_SSL_PORT: u16 = 443;
    /// The extension UCP generates.
    pub const EXTENSION: &str = "default";
    /// How often the core polls for changes when `PollInterval` is absent (Interlock's own
    /// default).
    pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);
    /// Where the core mounts the nginx config it renders on a proxy when `ProxyConfigPath`
    /// is absent.
    pub const PROXY_CONFIG_PATH: &str = "/etc/nginx/nginx.conf";
}

/// A config that cannot be used as it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Not valid TOML.
    #[error("{source_name} is not valid TOML (line {line}, column {column}): {message}")]
    Syntax {
        source_name: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// No `[Extensions]` table, so Interlock would deploy no proxy at all.
    #[error("{0} has no [Extensions] table")]
    NoExtensions(String),
    /// `--extension` names a table that does not exist.
    #[error("{source_name} has no [Extensions.{name}] (it has: {available})")]
    ExtensionNotFound {
        source_name: String,
        name: String,
        available: String,
    },
    /// Several extensions and none called `default`: the user must choose.
    #[error("{source_name} has several extensions ({available}) and none is called `default`")]
    AmbiguousExtension {
        source_name: String,
        available: String,
    },
    /// Two keys of an extension that differ only in case: Interlock matches key names
    /// case-insensitively, so only one of them takes effect, and which one is not obvious.
    #[error(
        "{source_name}: [Extensions.{extension}] has both {first} and {second}; Interlock reads key names case-insensitively, so only one of them takes effect"
    )]
    DuplicateKey {
        source_name: String,
        extension: String,
        first: String,
        second: String,
    },
    /// The Interlock core crashes on start without `ProxyReplicas`.
    #[error(
        "{source_name}: [Extensions.{extension}] has no ProxyReplicas; the Interlock core crashes without it"
    )]
    MissingProxyReplicas {
        source_name: String,
        extension: String,
    },
    /// `PublishMode` other than `ingress` or `host`.
    #[error(
        "{source_name}: [Extensions.{extension}] PublishMode = {value} is neither \"ingress\" nor \"host\""
    )]
    InvalidPublishMode {
        source_name: String,
        extension: String,
        value: String,
    },
    /// A key has a value of the wrong type.
    #[error("{source_name}: [Extensions.{extension}] {key} = {value} is not {expected}")]
    WrongType {
        source_name: String,
        extension: String,
        key: String,
        value: String,
        expected: &'static str,
    },
}

impl Diagnostic for ConfigError {
    fn code(&self) -> &'static str {
        match self {
            ConfigError::Syntax { .. } => "invalid_toml",
            ConfigError::NoExtensions(_) => "no_extensions",
            ConfigError::ExtensionNotFound { .. } => "extension_not_found",
            ConfigError::AmbiguousExtension { .. } => "ambiguous_extension",
            ConfigError::DuplicateKey { .. } => "duplicate_key",
            ConfigError::MissingProxyReplicas { .. } => "missing_proxy_replicas",
            ConfigError::InvalidPublishMode { .. } => "invalid_publish_mode",
            ConfigError::WrongType { .. } => "invalid_value",
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            ConfigError::Syntax { line, .. } => {
                format!("fix the TOML at line {line}; `interlockctl show` prints the live config")
            }
            ConfigError::NoExtensions(_) => {
                "add an `[Extensions.default]` table; Interlock needs at least one extension".into()
            }
            ConfigError::ExtensionNotFound { available, .. }
            | ConfigError::AmbiguousExtension { available, .. } => {
                format!("pass `--extension NAME` with one of: {available}")
            }
            ConfigError::DuplicateKey { first, second, .. } => {
                format!("keep one of {first} and {second} and delete the other")
            }
            ConfigError::MissingProxyReplicas { extension, .. } => {
                format!(
                    "add `ProxyReplicas = 2` (or the count you want) to [Extensions.{extension}]"
                )
            }
            ConfigError::InvalidPublishMode { .. } => {
                "set `PublishMode = \"ingress\"` or `PublishMode = \"host\"`".into()
            }
            ConfigError::WrongType { key, expected, .. } => format!("make {key} {expected}"),
        })
    }
}

/// How the proxy publishes its ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// Swarm routing mesh: the port is reserved on every node.
    Ingress,
    /// Bound only on the nodes that run a proxy task; one task per node per port.
    Host,
}

impl PublishMode {
    /// The spelling used in the config and in the Engine API.
    pub fn as_str(self) -> &'static str {
        match self {
            PublishMode::Ingress => "ingress",
            PublishMode::Host => "host",
        }
    }
}

/// What one extension asks of its proxy service, read from the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionSettings {
    /// The `[Extensions.NAME]` this was read from.
    pub name: String,
    /// `ProxyServiceName`.
    pub proxy_service_name: String,
    /// `ProxyReplicas`.
    pub proxy_replicas: u64,
    /// `ProxyConstraints`.
    pub proxy_constraints: Vec<String>,
    /// `Constraints` (the extension service's own placement).
    pub constraints: Vec<String>,
    /// `PublishMode`.
    pub publish_mode: PublishMode,
    /// `PublishedPort`, if set.
    pub published_port: Option<u16>,
    /// `PublishedSSLPort`, if set.
    pub published_ssl_port: Option<u16>,
    /// `TargetPort`.
    pub target_port: u16,
    /// `TargetSSLPort`.
    pub target_ssl_port: u16,
}

/// One key the edit changed, with values as written in TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyChange {
    /// Dotted path of the key, e.g. `Extensions.default.ProxyReplicas`.
    pub key: String,
    /// The old value, or `None` when the key was added.
    pub before: Option<String>,
    /// The new value.
    pub after: String,
}

/// An Interlock config document; edits keep everything they do not touch.
#[derive(Debug, Clone)]
pub struct InterlockConfig {
    source_name: String,
    doc: DocumentMut,
    shape: TextShape,
}

/// Whether `text` starts with a UTF-8 byte-order mark.
pub fn has_byte_order_mark(text: &str) -> bool {
    text.starts_with(TextShape::BOM)
}

/// What of a document's text `toml_edit` does not keep: a byte-order mark, CRLF line breaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TextShape {
    bom: bool,
    crlf: bool,
}

impl TextShape {
    const BOM: char = '\u{feff}';

    /// The shape of `text`, and the text without its byte-order mark. Line breaks are CRLF
    /// only when every one is (a file that mixes them is written with LF, as `toml_edit` does).
    fn of(text: &str) -> (Self, &str) {
        let body = text.strip_prefix(Self::BOM).unwrap_or(text);
        let crlf =
            body.contains("\r\n") && body.matches('\n').count() == body.matches("\r\n").count();
        let shape = TextShape {
            bom: body.len() < text.len(),
            crlf,
        };
        (shape, body)
    }

    /// `text` as `toml_edit` wrote it, given this shape back.
    fn restore(self, text: String) -> String {
        let mut text = if self.crlf {
            text.replace("\r\n", "\n").replace('\n', "\r\n")
        } else {
            text
        };
        if self.bom {
            text.insert(0, Self::BOM);
        }
        text
    }
}

impl InterlockConfig {
    /// Parses `text`; `source_name` (a file or config name) appears in errors.
    pub fn parse(source_name: &str, text: &str) -> Result<Self, ConfigError> {
        let (shape, text) = TextShape::of(text);
        let doc = text.parse::<DocumentMut>().map_err(|error| {
            let (line, column) = line_column(text, error.span().map_or(0, |span| span.start));
            ConfigError::Syntax {
                source_name: source_name.to_owned(),
                line,
                column,
                message: error.message().trim().to_owned(),
            }
        })?;
        Ok(InterlockConfig {
            source_name: source_name.to_owned(),
            doc,
            shape,
        })
    }

    /// The file or config name the document was read from.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The document as text, byte-identical to the input where nothing was edited (its
    /// byte-order mark and CRLF line breaks included).
    pub fn text(&self) -> String {
        self.shape.restore(self.doc.to_string())
    }

    /// The names of all `[Extensions.NAME]` tables, in file order; an error when there is
    /// none, since Interlock then deploys no proxy at all.
    pub fn extension_names(&self) -> Result<Vec<String>, ConfigError> {
        let names: Vec<String> = self
            .extensions_table()?
            .iter()
            .filter(|(_, item)| item.is_table_like())
            .map(|(name, _)| name.to_owned())
            .collect();
        if names.is_empty() {
            return Err(ConfigError::NoExtensions(self.source_name.clone()));
        }
        Ok(names)
    }

    /// Whether any extension publishes its proxy in host mode.
    pub fn publishes_in_host_mode(&self) -> bool {
        self.extension_names()
            .unwrap_or_default()
            .iter()
            .filter_map(|name| self.extension(name).ok())
            .any(|settings| settings.publish_mode == PublishMode::Host)
    }

    /// Picks the extension to work on: the requested one, else the only one, else `default`.
    pub fn select_extension(&self, requested: Option<&str>) -> Result<String, ConfigError> {
        let names = self.extension_names()?;
        let available = || names.join(", ");
        if let Some(name) = requested {
            return names.iter().find(|n| *n == name).cloned().ok_or_else(|| {
                ConfigError::ExtensionNotFound {
                    source_name: self.source_name.clone(),
                    name: name.to_owned(),
                    available: available(),
                }
            });
        }
        match names.as_slice() {
            [only] => Ok(only.clone()),
            _ if names.iter().any(|n| n == defaults::EXTENSION) => {
                Ok(defaults::EXTENSION.to_owned())
            }
            _ => Err(ConfigError::AmbiguousExtension {
                source_name: self.source_name.clone(),
                available: available(),
            }),
        }
    }

    /// Reads and validates the settings of one extension.
    pub fn extension(&self, name: &str) -> Result<ExtensionSettings, ConfigError> {
        let table = self.extension_table(name)?;
        let keys: Vec<&str> = table.iter().map(|(key, _)| key).collect();
        for (index, first) in keys.iter().enumerate() {
            if let Some(second) = keys[index + 1..]
                .iter()
                .find(|other| other.eq_ignore_ascii_case(first))
            {
                return Err(ConfigError::DuplicateKey {
                    source_name: self.source_name.clone(),
                    extension: name.to_owned(),
                    first: (*first).to_owned(),
                    second: (*second).to_owned(),
                });
            }
        }
        let reader = ExtensionReader {
            source_name: &self.source_name,
            name,
            table,
        };
        let proxy_replicas = reader
            .integer("ProxyReplicas", 0, i64::MAX, "a whole number, 0 or more")?
            .ok_or_else(|| ConfigError::MissingProxyReplicas {
                source_name: self.source_name.clone(),
                extension: name.to_owned(),
            })?;
        Ok(ExtensionSettings {
            name: name.to_owned(),
            proxy_service_name: reader.proxy_service_name()?,
            proxy_replicas: proxy_replicas.unsigned_abs(),
            proxy_constraints: reader.strings("ProxyConstraints")?,
            constraints: reader.strings("Constraints")?,
            publish_mode: reader.publish_mode()?,
            published_port: reader.port("PublishedPort")?,
            published_ssl_port: reader.port("PublishedSSLPort")?,
            target_port: reader.port("TargetPort")?.unwrap_or(defaults::TARGET_PORT),
            target_ssl_port: reader
                .port("TargetSSLPort")?
                .unwrap_or(defaults::TARGET_SSL_PORT),
        })
    }

    /// `PollInterval`: how often the core looks for changes to render, so the longest it
    /// takes a started core to write the proxy. The default when absent or not a duration
    /// (the core refuses such a config; the rollout finds that out).
    pub fn poll_interval(&self) -> std::time::Duration {
        self.top_level("PollInterval")
            .and_then(Item::as_str)
            .and_then(|text| humantime::parse_duration(text).ok())
            .unwrap_or(defaults::POLL_INTERVAL)
    }

    /// `ProxyConfigPath`: where the core mounts the nginx config it renders on the
    /// extension's proxy.
    pub fn proxy_config_path(&self, extension: &str) -> String {
        self.string_or_default(extension, "ProxyConfigPath", defaults::PROXY_CONFIG_PATH)
    }

    /// The proxy service an extension names, even when its other settings are unusable
    /// (the default name when it names none, or names it with a value that is no string).
    pub fn proxy_service_name(&self, extension: &str) -> String {
        self.string_or_default(extension, "ProxyServiceName", defaults::PROXY_SERVICE_NAME)
    }

    /// The extension service an extension names (`ServiceName`), read like
    /// [`InterlockConfig::proxy_service_name`].
    pub fn extension_service_name(&self, extension: &str) -> String {
        self.string_or_default(extension, "ServiceName", defaults::SERVICE_NAME)
    }

    fn string_or_default(&self, extension: &str, key: &str, default: &str) -> String {
        self.lenient_string(extension, key)
            .unwrap_or_else(|| default.to_owned())
    }

    /// The `ServiceCluster` an extension serves (the `com.docker.lb.service_cluster` label
    /// value that routes to its proxy), read like [`InterlockConfig::proxy_service_name`];
    /// `None` when it has none or an empty one.
    pub fn service_cluster(&self, extension: &str) -> Option<String> {
        self.lenient_string(extension, "ServiceCluster")
            .filter(|cluster| !cluster.is_empty())
    }

    /// A string setting of an extension, even when its other settings are unusable; `None`
    /// when it is absent or no string.
    fn lenient_string(&self, extension: &str, key: &str) -> Option<String> {
        let table = self.extension_table(extension).ok()?;
        let reader = ExtensionReader {
            source_name: &self.source_name,
            name: extension,
            table,
        };
        reader.string(key).ok().flatten()
    }

    /// Adds `[Extensions.{to}]` as a copy of `[Extensions.{from}]`: every key and sub-table
    /// (`Labels`, `Config`, ...) as written, placed after the last table of the document.
    /// Comment lines above the source's header stay with the source. Returns `false`, and
    /// changes nothing, when `from` does not exist or `to` does.
    pub fn copy_extension(&mut self, from: &str, to: &str) -> bool {
        let mut taken = Vec::new();
        table_positions(self.doc.as_table(), &mut taken);
        let after_last = taken.into_iter().max().unwrap_or(0) + 1;
        let Some(extensions) = self.extensions_table_mut() else {
            return false;
        };
        if extensions.contains_key(to) {
            return false;
        }
        let Some(mut copy) = extensions.get(from).filter(|i| i.is_table_like()).cloned() else {
            return false;
        };
        if let Item::Table(table) = &mut copy {
            let mut positions = Vec::new();
            table_positions(table, &mut positions);
            positions.sort_unstable();
            renumber_tables(table, &positions, after_last);
            let prefix = table
                .decor()
                .prefix()
                .and_then(|p| p.as_str())
                .unwrap_or("");
            let kept: String = prefix
                .split_inclusive('\n')
                .filter(|line| !line.trim_start().starts_with('#'))
                .collect();
            table.decor_mut().set_prefix(kept);
        }
        extensions.insert(to, copy);
        true
    }

    /// Removes `[Extensions.{name}]` with its sub-tables; `false` when it does not exist.
    pub fn remove_extension(&mut self, name: &str) -> bool {
        self.extensions_table_mut()
            .and_then(|extensions| extensions.remove(name))
            .is_some()
    }

    /// Sets `ProxyServiceName`.
    pub fn set_proxy_service_name(&mut self, extension: &str, name: &str) -> Option<KeyChange> {
        self.set(extension, "ProxyServiceName", Value::from(name))
    }

    /// Sets `ServiceName` (the extension service).
    pub fn set_service_name(&mut self, extension: &str, name: &str) -> Option<KeyChange> {
        self.set(extension, "ServiceName", Value::from(name))
    }

    /// Sets `ServiceCluster`: the `com.docker.lb.service_cluster` label value it serves.
    pub fn set_service_cluster(&mut self, extension: &str, cluster: &str) -> Option<KeyChange> {
        self.set(extension, "ServiceCluster", Value::from(cluster))
    }

    /// Sets `ProxyConstraints`: where the proxy replicas may run.
    pub fn set_proxy_constraints(
        &mut self,
        extension: &str,
        constraints: &[String],
    ) -> Option<KeyChange> {
        self.set(extension, "ProxyConstraints", string_array(constraints))
    }

    /// Sets `Constraints`: where the extension service may run.
    pub fn set_extension_constraints(
        &mut self,
        extension: &str,
        constraints: &[String],
    ) -> Option<KeyChange> {
        self.set(extension, "Constraints", string_array(constraints))
    }

    /// Sets `ProxyReplicas`.
    pub fn set_proxy_replicas(&mut self, extension: &str, replicas: u64) -> Option<KeyChange> {
        let replicas = i64::try_from(replicas).unwrap_or(i64::MAX);
        self.set(extension, "ProxyReplicas", Value::from(replicas))
    }

    /// Sets `PublishMode`.
    pub fn set_publish_mode(&mut self, extension: &str, mode: PublishMode) -> Option<KeyChange> {
        self.set(extension, "PublishMode", Value::from(mode.as_str()))
    }

    /// Sets `PublishedPort` (HTTP).
    pub fn set_published_port(&mut self, extension: &str, port: u16) -> Option<KeyChange> {
        self.set(extension, "PublishedPort", Value::from(i64::from(port)))
    }

    /// Sets `PublishedSSLPort` (HTTPS).
    pub fn set_published_ssl_port(&mut self, extension: &str, port: u16) -> Option<KeyChange> {
        self.set(extension, "PublishedSSLPort", Value::from(i64::from(port)))
    }

    /// Moves every image key of every extension (`Image`, `ProxyImage`, `ConfigImage`) that
    /// names one of Interlock's images to where `upgrade` takes it; other values stay.
    pub fn move_images(&mut self, upgrade: &Upgrade) -> Vec<KeyChange> {
        let mut changes = Vec::new();
        for extension in self.extension_names().unwrap_or_default() {
            for key in IMAGE_KEYS {
                let moved = self
                    .lenient_string(&extension, key)
                    .and_then(|image| upgrade.target_of(&image));
                if let Some(moved) = moved {
                    changes.extend(self.set(&extension, key, Value::from(moved)));
                }
            }
        }
        changes
    }

    /// Sets one key of an extension, keeping the key's spelling, position and the
    /// whitespace and comment around its value. Returns `None` when the value is already
    /// equal (then not a byte changes).
    fn set(&mut self, extension: &str, key: &str, mut value: Value) -> Option<KeyChange> {
        let path = format!("Extensions.{extension}.{key}");
        let table = self.extension_table_mut(extension)?;
        let existing = table
            .iter()
            .map(|(name, _)| name.to_owned())
            .find(|name| name.eq_ignore_ascii_case(key));
        let Some(existing) = existing else {
            let after = bare(&value);
            insert_key(table, key, value);
            return Some(KeyChange {
                key: path,
                before: None,
                after,
            });
        };
        let item = table.get_mut(&existing)?;
        let before = item.as_value().map(bare);
        if item.as_value().is_some_and(|old| same_value(old, &value)) {
            return None;
        }
        if let Some(old) = item.as_value() {
            *value.decor_mut() = old.decor().clone();
        }
        let after = bare(&value);
        *item = Item::Value(value);
        Some(KeyChange {
            key: path,
            before,
            after,
        })
    }

    /// A top-level key, whatever its case (the core reads keys case-insensitively).
    fn top_level(&self, key: &str) -> Option<&Item> {
        self.doc
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, item)| item)
    }

    fn extensions_table(&self) -> Result<&dyn TableLike, ConfigError> {
        self.top_level("Extensions")
            .and_then(Item::as_table_like)
            .ok_or_else(|| ConfigError::NoExtensions(self.source_name.clone()))
    }

    fn extension_table(&self, name: &str) -> Result<&dyn TableLike, ConfigError> {
        self.extensions_table()?
            .get(name)
            .and_then(Item::as_table_like)
            .ok_or_else(|| ConfigError::ExtensionNotFound {
                source_name: self.source_name.clone(),
                name: name.to_owned(),
                available: self.extension_names().unwrap_or_default().join(", "),
            })
    }

    fn extensions_table_mut(&mut self) -> Option<&mut dyn TableLike> {
        let key = self
            .doc
            .iter()
            .map(|(key, _)| key.to_owned())
            .find(|key| key.eq_ignore_ascii_case("Extensions"))?;
        self.doc.get_mut(&key)?.as_table_like_mut()
    }

    fn extension_table_mut(&mut self, name: &str) -> Option<&mut dyn TableLike> {
        self.extensions_table_mut()?
            .get_mut(name)?
            .as_table_like_mut()
    }
}

/// Typed, case-insensitive reads of one extension's keys.
struct ExtensionReader<'a> {
    source_name: &'a str,
    name: &'a str,
    table: &'a dyn TableLike,
}

impl ExtensionReader<'_> {
    fn value(&self, key: &str) -> Option<&Value> {
        self.table
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .and_then(|(_, item)| item.as_value())
    }

    fn wrong_type(&self, key: &str, value: &Value, expected: &'static str) -> ConfigError {
        ConfigError::WrongType {
            source_name: self.source_name.to_owned(),
            extension: self.name.to_owned(),
            key: key.to_owned(),
            value: bare(value),
            expected,
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        self.value(key)
            .map(|value| {
                value
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.wrong_type(key, value, "a string"))
            })
            .transpose()
    }

    fn proxy_service_name(&self) -> Result<String, ConfigError> {
        Ok(self
            .string("ProxyServiceName")?
            .unwrap_or_else(|| defaults::PROXY_SERVICE_NAME.to_owned()))
    }

    fn integer(
        &self,
        key: &str,
        min: i64,
        max: i64,
        expected: &'static str,
    ) -> Result<Option<i64>, ConfigError> {
        self.value(key)
            .map(|value| {
                value
                    .as_integer()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| self.wrong_type(key, value, expected))
            })
            .transpose()
    }

    fn port(&self, key: &str) -> Result<Option<u16>, ConfigError> {
        Ok(self
            .integer(
                key,
                1,
                i64::from(u16::MAX),
                "a whole number from 1 to 65535",
            )?
            .and_then(|n| u16::try_from(n).ok()))
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let Some(value) = self.value(key) else {
            return Ok(Vec::new());
        };
        let array = value
            .as_array()
            .ok_or_else(|| self.wrong_type(key, value, "an array of strings"))?;
        array
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.wrong_type(key, value, "an array of strings"))
            })
            .collect()
    }

    fn publish_mode(&self) -> Result<PublishMode, ConfigError> {
        match self.string("PublishMode")?.as_deref() {
            None | Some("ingress") => Ok(PublishMode::Ingress),
            Some("host") => Ok(PublishMode::Host),
            Some(other) => Err(ConfigError::InvalidPublishMode {
                source_name: self.source_name.to_owned(),
                extension: self.name.to_owned(),
                value: format!("{other:?}"),
            }),
        }
    }
}

fn string_array(items: &[String]) -> Value {
    Value::Array(items.iter().map(String::as_str).collect::<Array>())
}

/// A value as written, without the whitespace and comment around it.
fn bare(value: &Value) -> String {
    value.clone().decorated("", "").to_string()
}

/// Semantic equality for the value kinds this module writes (strings, integers, arrays).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a.value() == b.value(),
        (Value::Integer(a), Value::Integer(b)) => a.value() == b.value(),
        (Value::Boolean(a), Value::Boolean(b)) => a.value() == b.value(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(a, b)| same_value(a, b))
        }
        _ => false,
    }
}

/// Adds a key at the end of a table, indented like the keys already there. Only the
/// indentation is copied: a comment line above the first key stays with that key.
fn insert_key(table: &mut dyn TableLike, key: &str, value: Value) {
    let indent = table
        .iter()
        .find(|(_, item)| item.is_value())
        .and_then(|(first, _)| table.key(first))
        .and_then(|first| first.leaf_decor().prefix())
        .and_then(|prefix| prefix.as_str())
        .and_then(|prefix| prefix.rsplit('\n').next())
        .filter(|indent| indent.chars().all(|c| c == ' ' || c == '\t'))
        .map(str::to_owned);
    table.insert(key, Item::Value(value));
    if let (Some(indent), Some(mut new_key)) = (indent, table.key_mut(key)) {
        new_key.leaf_decor_mut().set_prefix(indent);
    }
}

/// The document positions of `table` and every table under it (headers are written in
/// the order of their positions).
fn table_positions(table: &Table, out: &mut Vec<isize>) {
    out.extend(table.position());
    for (_, item) in table.iter() {
        match item {
            Item::Table(child) => table_positions(child, out),
            Item::ArrayOfTables(array) => array.iter().for_each(|t| table_positions(t, out)),
            Item::None | Item::Value(_) => {}
        }
    }
}

/// Gives `table` and the tables under it consecutive positions from `first`, in the order
/// of their old positions (`sorted`), so a copy is written as one block.
fn renumber_tables(table: &mut Table, sorted: &[isize], first: isize) {
    let renumbered = |old: isize| {
        let index = sorted.binary_search(&old).unwrap_or(0);
        first + isize::try_from(index).unwrap_or(0)
    };
    if let Some(old) = table.position() {
        table.set_position(Some(renumbered(old)));
    }
    for (_, item) in table.iter_mut() {
        match item {
            Item::Table(child) => renumber_tables(child, sorted, first),
            Item::ArrayOfTables(array) => array
                .iter_mut()
                .for_each(|t| renumber_tables(t, sorted, first)),
            Item::None | Item::Value(_) => {}
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl InterlockConfig {
    /// Every leaf key whose value differs between `before` and `self`, in document order
    /// (used when a whole desired config replaces the live one).
    pub fn changes_from(&self, before: &InterlockConfig) -> Vec<KeyChange> {
        let (old, new) = (leaves(before.doc.as_table()), leaves(self.doc.as_table()));
        let old_value = |key: &str| old.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let mut changes: Vec<KeyChange> = new
            .iter()
            .filter(|(key, value)| old_value(key).as_ref() != Some(value))
            .map(|(key, value)| KeyChange {
                key: key.clone(),
                before: old_value(key),
                after: value.clone(),
            })
            .collect();
        changes.extend(
            old.iter()
                .filter(|(key, _)| !new.iter().any(|(k, _)| k == key))
                .map(|(key, value)| KeyChange {
                    key: key.clone(),
                    before: Some(value.clone()),
                    after: String::from("(removed)"),
                }),
        );
        changes
    }
}

impl InterlockConfig {
    /// The `ServiceCluster` values of all extensions ([`InterlockConfig::service_cluster`]):
    /// what a service's `com.docker.lb.service_cluster` label may name.
    pub fn service_clusters(&self) -> Vec<String> {
        self.extension_names()
            .unwrap_or_default()
            .iter()
            .filter_map(|name| self.service_cluster(name))
            .collect()
    }
}

/// Dotted path and bare value of every non-table value in a table, recursively.
fn leaves(table: &dyn TableLike) -> Vec<(String, String)> {
    let mut out = Vec::new();
    collect_leaves(table, "", &mut out);
    out
}

fn collect_leaves(table: &dyn TableLike, prefix: &str, out: &mut Vec<(String, String)>) {
    for (key, item) in table.iter() {
        let path = if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        };
        match item {
            Item::Value(Value::InlineTable(inline)) => collect_leaves(inline, &path, out),
            Item::Value(value) => out.push((path, bare(value))),
            Item::Table(table) => collect_leaves(table, &path, out),
            Item::ArrayOfTables(array) => {
                for (index, table) in array.iter().enumerate() {
                    collect_leaves(table, &format!("{path}[{index}]"), out);
                }
            }
            Item::None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[&str] = &[
        "hand-edited",
        "service-clusters",
        "ucp-3.0",
        "ucp-3.1",
        "ucp-3.2",
    ];

    fn fixture(dir: &str, stem: &str) -> String {
        let path = format!(
            "{}/fixtures/configs/{dir}/{stem}.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path).expect("fixture reads")
    }

    fn parse(text: &str) -> InterlockConfig {
        InterlockConfig::parse("test.toml", text).expect("valid TOML")
    }

    /// CRLF comes back only when every line break was CRLF; a byte-order mark always does.
    #[test]
    fn line_breaks_and_a_byte_order_mark_come_back_as_they_were() {
        for text in [
            "a = 1\r\n# note\r\nb = 2\r\n",
            "\u{feff}a = 1\r\nb = 2\r\n",
            "\u{feff}a = 1\nb = 2\n",
            "a = 1\nb = 2\n",
        ] {
            assert_eq!(parse(text).text(), text);
        }
        assert_eq!(
            parse("a = 1\r\nb = 2\n").text(),
            "a = 1\nb = 2\n",
            "mixed: LF, as toml_edit writes"
        );
        assert!(has_byte_order_mark("\u{feff}a = 1\n"));
        assert!(!has_byte_order_mark("a = 1\n"));
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn change(key: &str, before: Option<&str>, after: &str) -> Option<KeyChange> {
        Some(KeyChange {
            key: key.to_owned(),
            before: before.map(str::to_owned),
            after: after.to_owned(),
        })
    }

    #[test]
    fn parsing_and_printing_keeps_every_byte() {
        for stem in VALID {
            let text = fixture("valid", stem);
            assert_eq!(parse(&text).text(), text, "{stem}");
        }
    }

    #[test]
    fn fixtures_read_as_generated() {
        let settings = parse(&fixture("valid", "ucp-3.2"))
            .extension("default")
            .unwrap();
        let swarm_linux = [
            "node.labels.com.docker.ucp.orchestrator.swarm==true",
            "node.platform.os==linux",
        ];
        assert_eq!(
            settings,
            ExtensionSettings {
                name: "default".into(),
                proxy_service_name: "ucp-interlock-proxy".into(),
                proxy_replicas: 2,
                proxy_constraints: strings(&swarm_linux),
                constraints: strings(&swarm_linux),
                publish_mode: PublishMode::Ingress,
                published_port: Some(8080),
                published_ssl_port: Some(8443),
                target_port: 80,
                target_ssl_port: 443,
            }
        );

        // Keys are found whatever their case (`proxyReplicas`, `constraints`).
        let hand = parse(&fixture("valid", "hand-edited"))
            .extension("default")
            .unwrap();
        assert_eq!(hand.proxy_replicas, 2);
        assert_eq!(hand.constraints, strings(&swarm_linux));
        assert_eq!(
            (hand.published_port, hand.published_ssl_port),
            (Some(80), Some(8443))
        );

        let clusters = parse(&fixture("valid", "service-clusters"));
        assert_eq!(
            clusters.extension_names().unwrap(),
            ["us-east", "us-west", "dmz"]
        );
        let west = clusters.extension("us-west").unwrap();
        assert_eq!(west.proxy_service_name, "ucp-interlock-proxy-us-west");
        assert_eq!(
            (west.published_port, west.published_ssl_port),
            (Some(9080), Some(9443))
        );
    }

    #[test]
    fn absent_keys_take_interlocks_defaults() {
        let settings = parse("[Extensions.default]\nProxyReplicas = 0\n")
            .extension("default")
            .unwrap();
        assert_eq!(
            settings,
            ExtensionSettings {
                name: "default".into(),
                proxy_service_name: defaults::PROXY_SERVICE_NAME.into(),
                proxy_replicas: 0,
                proxy_constraints: Vec::new(),
                constraints: Vec::new(),
                publish_mode: PublishMode::Ingress,
                published_port: None,
                published_ssl_port: None,
                target_port: 80,
                target_ssl_port: 443,
            }
        );
    }

    #[test]
    fn extension_selection() {
        let one = parse("[Extensions.edge]\nProxyReplicas = 1\n");
        assert_eq!(one.select_extension(None), Ok("edge".into()));
        assert_eq!(one.select_extension(Some("edge")), Ok("edge".into()));
        assert_eq!(
            one.select_extension(Some("Edge")),
            Err(ConfigError::ExtensionNotFound {
                source_name: "test.toml".into(),
                name: "Edge".into(),
                available: "edge".into(),
            })
        );

        let with_default =
            parse("[Extensions.a]\nProxyReplicas = 1\n[Extensions.default]\nProxyReplicas = 1\n");
        assert_eq!(with_default.select_extension(None), Ok("default".into()));
        assert_eq!(with_default.select_extension(Some("a")), Ok("a".into()));

        let clusters = parse(&fixture("valid", "service-clusters"));
        let ambiguous = clusters.select_extension(None).unwrap_err();
        assert_eq!(
            ambiguous,
            ConfigError::AmbiguousExtension {
                source_name: "test.toml".into(),
                available: "us-east, us-west, dmz".into(),
            }
        );
        assert_eq!(ambiguous.code(), "ambiguous_extension");
        assert_eq!(
            ambiguous.hint().unwrap(),
            "pass `--extension NAME` with one of: us-east, us-west, dmz"
        );

        // `[extensions]` is found whatever its case; an empty one has no extension.
        let lower = parse("[extensions.default]\nProxyReplicas = 1\n");
        assert_eq!(lower.select_extension(None), Ok("default".into()));
        let empty = parse("[Extensions]\n");
        assert_eq!(
            empty.select_extension(None),
            Err(ConfigError::NoExtensions("test.toml".into()))
        );
        let none = parse("ListenAddr = \":8080\"\n");
        assert_eq!(
            none.select_extension(None),
            Err(ConfigError::NoExtensions("test.toml".into()))
        );
        assert_eq!(
            none.extension("default"),
            Err(ConfigError::NoExtensions("test.toml".into()))
        );
    }

    #[test]
    fn set_replaces_only_the_value() {
        let text = fixture("valid", "hand-edited");
        let mut config = parse(&text);
        assert_eq!(
            config.set_proxy_replicas("default", 5),
            change("Extensions.default.ProxyReplicas", Some("2"), "5")
        );
        assert_eq!(
            config.set_publish_mode("default", PublishMode::Host),
            change(
                "Extensions.default.PublishMode",
                Some("\"ingress\""),
                "\"host\""
            )
        );
        assert_eq!(
            config.set_extension_constraints("default", &strings(&["node.role!=manager"])),
            change(
                "Extensions.default.Constraints",
                Some(
                    "[\n\t\t\"node.labels.com.docker.ucp.orchestrator.swarm==true\",   # swarm workloads only\n\t\t\"node.platform.os==linux\",\n\t]"
                ),
                "[\"node.role!=manager\"]"
            )
        );
        let expected = text
            .replace(
                "\tproxyReplicas     =   2   # was 3 until the DTR move\n",
                "\tproxyReplicas     =   5   # was 3 until the DTR move\n",
            )
            .replace("\tPublishMode=\"ingress\"\n", "\tPublishMode=\"host\"\n")
            .replace(
                "\tconstraints = [\n\t\t\"node.labels.com.docker.ucp.orchestrator.swarm==true\",   # swarm workloads only\n\t\t\"node.platform.os==linux\",\n\t]\n",
                "\tconstraints = [\"node.role!=manager\"]\n",
            );
        assert_ne!(expected, text);
        assert_eq!(config.text(), expected);
        // The escapes of MainLogFormat survive as written.
        assert!(config.text().contains(
            r#"MainLogFormat = "'$remote_addr - $remote_user [$time_local] \"$request\" '\n\t\t    '$status"#
        ));
    }

    #[test]
    fn setting_an_equal_value_changes_nothing() {
        let text = "[Extensions.default]\n  ProxyReplicas = 2\n  PublishMode = 'host' # literal string\n  PublishedPort = 0x1F90\n  PublishedSSLPort = 8_443\n  ProxyConstraints = [ 'node.labels.role==dtr' , ] # pinned\n";
        let mut config = parse(text);
        assert_eq!(config.set_proxy_replicas("default", 2), None);
        assert_eq!(config.set_publish_mode("default", PublishMode::Host), None);
        assert_eq!(config.set_published_port("default", 8080), None);
        assert_eq!(config.set_published_ssl_port("default", 8443), None);
        assert_eq!(
            config.set_proxy_constraints("default", &strings(&["node.labels.role==dtr"])),
            None
        );
        assert_eq!(config.text(), text);
        // A different value of the same kind is a change, and keeps the comment.
        assert_eq!(
            config.set_published_port("default", 80),
            change("Extensions.default.PublishedPort", Some("0x1F90"), "80")
        );
        assert_eq!(
            config.set_proxy_constraints("default", &strings(&["node.labels.role==lb"])),
            change(
                "Extensions.default.ProxyConstraints",
                Some("[ 'node.labels.role==dtr' , ]"),
                "[\"node.labels.role==lb\"]"
            )
        );
        assert_eq!(
            config.text(),
            text.replace("0x1F90", "80").replace(
                "[ 'node.labels.role==dtr' , ]",
                "[\"node.labels.role==lb\"]"
            )
        );
    }

    #[test]
    fn absent_keys_are_added_after_the_last_key_indented_like_the_first() {
        let text = "[Extensions]\n  [Extensions.default]\n\n    # the proxy\n    ProxyReplicas = 2 # two\n  [Extensions.default.Config]\n    User = \"nginx\"\n";
        let mut config = parse(text);
        assert_eq!(
            config.set_publish_mode("default", PublishMode::Host),
            change("Extensions.default.PublishMode", None, "\"host\"")
        );
        assert_eq!(
            config.set_published_port("default", 7080),
            change("Extensions.default.PublishedPort", None, "7080")
        );
        assert_eq!(
            config.text(),
            "[Extensions]\n  [Extensions.default]\n\n    # the proxy\n    ProxyReplicas = 2 # two\n    PublishMode = \"host\"\n    PublishedPort = 7080\n  [Extensions.default.Config]\n    User = \"nginx\"\n"
        );
        let settings = parse(&config.text()).extension("default").unwrap();
        assert_eq!(settings.publish_mode, PublishMode::Host);
        assert_eq!(settings.published_port, Some(7080));

        // Without a final newline, the new key still gets a line of its own.
        let mut bare_end = parse("[Extensions.default]\n\tProxyReplicas = 2");
        bare_end.set_published_ssl_port("default", 7443);
        assert_eq!(
            bare_end.text(),
            "[Extensions.default]\n\tProxyReplicas = 2\n\tPublishedSSLPort = 7443\n"
        );
    }

    #[test]
    fn a_copied_extension_goes_after_the_last_table_without_the_comment_above_it() {
        let text = "# top\n[Extensions]\n  # the main one\n  [Extensions.default]\n    ProxyReplicas = 2 # two\n    [Extensions.default.Labels]\n      a = \"b\"\n  [Extensions.other]\n    ProxyReplicas = 1\n";
        let mut config = parse(text);
        assert!(config.copy_extension("default", "east"));
        assert_eq!(
            config.text(),
            format!(
                "{text}  [Extensions.east]\n    ProxyReplicas = 2 # two\n    [Extensions.east.Labels]\n      a = \"b\"\n"
            )
        );
        assert_eq!(
            config.extension_names().unwrap(),
            ["default", "other", "east"]
        );
        assert_eq!(config.extension("east").unwrap().proxy_replicas, 2);
        // Neither an existing name nor a missing source is copied.
        let copied = config.text();
        assert!(!config.copy_extension("default", "other"));
        assert!(!config.copy_extension("nope", "west"));
        assert_eq!(config.text(), copied);

        assert!(config.remove_extension("east"));
        assert_eq!(config.text(), text);
        assert!(config.remove_extension("other"));
        assert!(!config.remove_extension("other"));
        assert_eq!(
            config.text(),
            "# top\n[Extensions]\n  # the main one\n  [Extensions.default]\n    ProxyReplicas = 2 # two\n    [Extensions.default.Labels]\n      a = \"b\"\n"
        );
    }

    #[test]
    fn service_names_are_read_even_from_an_unusable_extension() {
        let config = parse(
            "[Extensions.a]\nProxyServiceName = \"proxy-a\"\nServiceName = \"ext-a\"\n[Extensions.b]\nProxyServiceName = 7\n",
        );
        assert_eq!(
            config.extension("a").unwrap_err().code(),
            "missing_proxy_replicas"
        );
        assert_eq!(config.proxy_service_name("a"), "proxy-a");
        assert_eq!(config.extension_service_name("a"), "ext-a");
        assert_eq!(config.proxy_service_name("b"), defaults::PROXY_SERVICE_NAME);
        assert_eq!(config.extension_service_name("b"), defaults::SERVICE_NAME);
        assert_eq!(
            config.proxy_service_name("nope"),
            defaults::PROXY_SERVICE_NAME
        );
    }

    #[test]
    fn edits_of_a_missing_extension_change_nothing() {
        let text = fixture("valid", "ucp-3.2");
        let mut config = parse(&text);
        assert_eq!(config.set_proxy_replicas("nope", 3), None);
        assert_eq!(config.text(), text);
    }

    #[test]
    fn invalid_fixtures_are_refused_naming_file_key_and_fix() {
        let cases: &[(&str, ConfigError, &str, &str)] = &[
            (
                "bad-publish-mode",
                ConfigError::InvalidPublishMode {
                    source_name: "bad.toml".into(),
                    extension: "default".into(),
                    value: "\"routing-mesh\"".into(),
                },
                "invalid_publish_mode",
                "set `PublishMode = \"ingress\"` or `PublishMode = \"host\"`",
            ),
            (
                "case-duplicate-key",
                ConfigError::DuplicateKey {
                    source_name: "bad.toml".into(),
                    extension: "default".into(),
                    first: "ProxyReplicas".into(),
                    second: "proxyreplicas".into(),
                },
                "duplicate_key",
                "keep one of ProxyReplicas and proxyreplicas and delete the other",
            ),
            (
                "missing-proxy-replicas",
                ConfigError::MissingProxyReplicas {
                    source_name: "bad.toml".into(),
                    extension: "default".into(),
                },
                "missing_proxy_replicas",
                "add `ProxyReplicas = 2` (or the count you want) to [Extensions.default]",
            ),
            (
                "no-extensions",
                ConfigError::NoExtensions("bad.toml".into()),
                "no_extensions",
                "add an `[Extensions.default]` table; Interlock needs at least one extension",
            ),
            (
                "replicas-not-a-number",
                ConfigError::WrongType {
                    source_name: "bad.toml".into(),
                    extension: "default".into(),
                    key: "ProxyReplicas".into(),
                    value: "\"two\"".into(),
                    expected: "a whole number, 0 or more",
                },
                "invalid_value",
                "make ProxyReplicas a whole number, 0 or more",
            ),
        ];
        for (stem, expected, code, hint) in cases {
            let config = InterlockConfig::parse("bad.toml", &fixture("invalid", stem)).unwrap();
            let error = config
                .select_extension(None)
                .and_then(|name| config.extension(&name))
                .unwrap_err();
            assert_eq!(&error, expected, "{stem}");
            assert_eq!(error.code(), *code, "{stem}");
            assert_eq!(error.hint().as_deref(), Some(*hint), "{stem}");
            assert!(error.to_string().starts_with("bad.toml"), "{error}");
        }
        assert_eq!(
            ConfigError::MissingProxyReplicas {
                source_name: "bad.toml".into(),
                extension: "default".into(),
            }
            .to_string(),
            "bad.toml: [Extensions.default] has no ProxyReplicas; the Interlock core crashes without it"
        );
    }

    #[test]
    fn values_of_the_wrong_type_or_range_are_refused() {
        for (line, key, value, expected) in [
            (
                "PublishedPort = 0",
                "PublishedPort",
                "0",
                "a whole number from 1 to 65535",
            ),
            (
                "TargetSSLPort = 65536",
                "TargetSSLPort",
                "65536",
                "a whole number from 1 to 65535",
            ),
            (
                "PublishedPort = \"80\"",
                "PublishedPort",
                "\"80\"",
                "a whole number from 1 to 65535",
            ),
            (
                "ProxyReplicas = -1",
                "ProxyReplicas",
                "-1",
                "a whole number, 0 or more",
            ),
            (
                "ProxyReplicas = 2.0",
                "ProxyReplicas",
                "2.0",
                "a whole number, 0 or more",
            ),
            (
                "ProxyConstraints = \"node.role==worker\"",
                "ProxyConstraints",
                "\"node.role==worker\"",
                "an array of strings",
            ),
            (
                "Constraints = [1]",
                "Constraints",
                "[1]",
                "an array of strings",
            ),
            ("ProxyServiceName = 7", "ProxyServiceName", "7", "a string"),
            ("PublishMode = true", "PublishMode", "true", "a string"),
        ] {
            let replicas = if key == "ProxyReplicas" {
                ""
            } else {
                "ProxyReplicas = 1\n"
            };
            let text = format!("[Extensions.default]\n{replicas}{line}\n");
            assert_eq!(
                parse(&text).extension("default"),
                Err(ConfigError::WrongType {
                    source_name: "test.toml".into(),
                    extension: "default".into(),
                    key: key.into(),
                    value: value.into(),
                    expected,
                }),
                "{line}"
            );
        }
        let host = parse("[Extensions.default]\nProxyReplicas = 1\nPublishMode = \"Host\"\n");
        assert_eq!(
            host.extension("default").unwrap_err().to_string(),
            "test.toml: [Extensions.default] PublishMode = \"Host\" is neither \"ingress\" nor \"host\""
        );
    }

    #[test]
    fn keys_that_differ_only_in_case_are_refused() {
        let config = parse(
            "[Extensions.default]\nProxyReplicas = 1\nPublishMode = \"host\"\npublishmode = \"ingress\"\n",
        );
        let error = config.extension("default").unwrap_err();
        assert_eq!(error.code(), "duplicate_key");
        assert_eq!(
            error.to_string(),
            "test.toml: [Extensions.default] has both PublishMode and publishmode; Interlock reads key names case-insensitively, so only one of them takes effect"
        );
    }

    #[test]
    fn syntax_errors_point_at_line_and_column() {
        let error =
            InterlockConfig::parse("not-toml.toml", &fixture("invalid", "not-toml")).unwrap_err();
        let ConfigError::Syntax { line, column, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!((*line, *column), (4, 23));
        assert_eq!(error.code(), "invalid_toml");
        assert!(
            error
                .to_string()
                .starts_with("not-toml.toml is not valid TOML (line 4, column 23): ")
        );
        assert_eq!(
            error.hint().unwrap(),
            "fix the TOML at line 4; `interlockctl show` prints the live config"
        );

        let duplicate = InterlockConfig::parse("d.toml", &fixture("invalid", "duplicate-key"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            duplicate,
            "d.toml is not valid TOML (line 16, column 5): duplicate key"
        );

        assert_eq!(line_column("", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab\ncd", 99), (2, 3));
        // Columns count characters, not bytes.
        assert_eq!(line_column("é = x", "é ".len()), (1, 3));
    }

    #[test]
    fn changes_from_lists_changed_added_and_removed_leaves() {
        let before = parse(
            "Top = 1\n[Extensions.default]\nProxyReplicas = 2\nGone = \"x\"\n[Extensions.default.Config]\nUser = \"nginx\"\n",
        );
        let after = parse(
            "Top = 1\n[Extensions.default]\nProxyReplicas = 3 # more\nNew = [1, 2]\n[Extensions.default.Config]\nUser = \"nginx\"\n",
        );
        assert_eq!(
            after.changes_from(&before),
            vec![
                KeyChange {
                    key: "Extensions.default.ProxyReplicas".into(),
                    before: Some("2".into()),
                    after: "3".into(),
                },
                KeyChange {
                    key: "Extensions.default.New".into(),
                    before: None,
                    after: "[1, 2]".into(),
                },
                KeyChange {
                    key: "Extensions.default.Gone".into(),
                    before: Some("\"x\"".into()),
                    after: "(removed)".into(),
                },
            ]
        );
        assert_eq!(before.changes_from(&before), Vec::new());
    }

    #[test]
    fn key_changes_serialize_as_the_json_report_shows_them() {
        let json = serde_json::to_value(KeyChange {
            key: "Extensions.default.PublishedPort".into(),
            before: None,
            after: "7080".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "key": "Extensions.default.PublishedPort", "before": null, "after": "7080" })
        );
        assert_eq!(
            serde_json::to_value(PublishMode::Host).unwrap(),
            serde_json::json!("host")
        );
    }

    #[test]
    fn service_clusters_are_read_from_every_extension() {
        let clusters = parse(&fixture("valid", "service-clusters")).service_clusters();
        assert_eq!(clusters, ["us-east", "us-west", "dmz"]);
        assert!(
            parse(&fixture("valid", "ucp-3.2"))
                .service_clusters()
                .is_empty()
        );
    }
}

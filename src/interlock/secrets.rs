//! Keeps secrets in the config (`AdminPass`, keys, tokens) out of diffs, change lists and
//! JSON, which end up in CI output and tickets. Pure.
//!
//! Secrets are found in the parsed document, never in text lines: a value is secret when its
//! key, or the key of a table or array it sits in, looks like a password, secret, token or
//! key. That holds at any depth (tables, dotted keys, inline tables, arrays of tables, arrays
//! of inline tables) and for any shape of value (multi-line basic or literal strings, inline
//! tables, arrays), which a line-by-line reading misses. A text that does not parse is
//! hidden whole: no secret is shown because its surroundings could not be read.

use std::ops::Range;

use toml_edit::{Document, Item, TableLike, Value};

/// What replaces a secret value.
pub const REDACTED: &str = "\"<redacted>\"";

/// Whether a key's value should be hidden: names with `pass`, `secret` or `token`, or
/// ending in `key` (`AdminPass`, `TLSKey`), in any case.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
        || key.ends_with("key")
}

/// A TOML text with each secret value replaced by [`REDACTED`].
pub fn redact_text(text: &str) -> String {
    mask(text, false)
}

/// What stands for each further line of a secret value over several lines.
const REDACTED_LINE: &str = "<redacted>";

/// A TOML text with each secret value replaced by [`REDACTED`] on the value's first line and
/// by `<redacted>` on each further line, so line `N` of the result is line `N` of `text` (a
/// diff of the original texts can show these lines instead).
pub fn redact_keeping_lines(text: &str) -> String {
    mask(text, true)
}

/// One value of a change list (`key` a dotted path as in `Extensions.default.Auth`, `value`
/// as written in TOML) with its secrets hidden: the whole value when a key on the path looks
/// secret, else any secret inside an inline table or array. A value that is no TOML (the
/// `(removed)` marker) stays as it is.
pub fn redact_value(key: &str, value: &str) -> String {
    let document = format!("value = {value}\n");
    if Document::parse(document.as_str()).is_err() {
        return value.to_owned();
    }
    let path_is_secret = key
        .split('.')
        .map(|part| part.split('[').next().unwrap_or(part))
        .any(is_secret_key);
    if path_is_secret {
        return REDACTED.to_owned();
    }
    let redacted = redact_text(&document);
    redacted["value = ".len()..redacted.len() - 1].to_owned()
}

/// `text` with every secret value replaced; with `keep_lines`, each line break inside a
/// value is kept, followed by [`REDACTED_LINE`]. (A parsed value breaks lines only with
/// `\n` or `\r\n`: TOML allows no other carriage return.)
fn mask(text: &str, keep_lines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for span in secret_spans(text) {
        out.push_str(&text[copied..span.start]);
        out.push_str(REDACTED);
        if keep_lines {
            for c in text[span.clone()]
                .chars()
                .filter(|c| matches!(c, '\r' | '\n'))
            {
                out.push(c);
                if c == '\n' {
                    out.push_str(REDACTED_LINE);
                }
            }
        }
        copied = span.end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Byte ranges of the secret values in `text`, in order and disjoint; the whole text when
/// it does not parse.
fn secret_spans(text: &str) -> Vec<Range<usize>> {
    let Ok(document) = Document::parse(text) else {
        return std::iter::once(0..text.len()).collect();
    };
    let mut finder = SpanFinder {
        whole: 0..text.len(),
        spans: Vec::new(),
    };
    finder.table(document.as_table(), false);
    finder.spans.sort_by_key(|span| span.start);
    finder.spans
}

/// Walks a parsed document and collects where its secret values are written.
struct SpanFinder {
    /// The whole text: what to hide if a parsed value had no position (it always has one).
    whole: Range<usize>,
    spans: Vec<Range<usize>>,
}

impl SpanFinder {
    fn table(&mut self, table: &dyn TableLike, secret: bool) {
        for (key, item) in table.iter() {
            self.item(item, secret || is_secret_key(key));
        }
    }

    fn item(&mut self, item: &Item, secret: bool) {
        match item {
            Item::Value(value) => self.value(value, secret),
            Item::Table(table) => self.table(table, secret),
            Item::ArrayOfTables(array) => array.iter().for_each(|table| self.table(table, secret)),
            Item::None => {}
        }
    }

    fn value(&mut self, value: &Value, secret: bool) {
        if secret {
            let span = value.span().unwrap_or_else(|| self.whole.clone());
            self.spans.push(span);
            return;
        }
        match value {
            Value::InlineTable(table) => self.table(table, false),
            Value::Array(array) => array.iter().for_each(|element| self.value(element, false)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys() {
        for key in [
            "AdminPass",
            "adminpass",
            "TLSKey",
            "ApiToken",
            "db.secret",
            "password",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["KeepaliveTimeout", "ProxyReplicas", "SSLVerify", "Keys2"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    /// Every shape of value and every place a key can stand, in one document.
    const SHAPES: &str = r#"[Extensions.default]
AdminPass = "s3cret" # a comment stays
ProxyReplicas = 2
Auth = { User = "admin", AdminPass = "in-inline" }
Users = [{ Name = "a", Token = "in-array" }, "plain"]
Dotted.ApiToken = "dotted"
Multi.Secret = """
line one
line two"""
Literal.Password = '''
lit one
lit two
'''
TLSKey = ["k1",
  "k2"]
[[Extensions.default.Backends]]
Host = "b1"
Password = "in-array-of-tables"
[Extensions.default.Secrets]
Anything = "under-a-secret-table"
"#;

    const SHAPES_REDACTED: &str = r#"[Extensions.default]
AdminPass = "<redacted>" # a comment stays
ProxyReplicas = 2
Auth = { User = "admin", AdminPass = "<redacted>" }
Users = [{ Name = "a", Token = "<redacted>" }, "plain"]
Dotted.ApiToken = "<redacted>"
Multi.Secret = "<redacted>"
Literal.Password = "<redacted>"
TLSKey = "<redacted>"
[[Extensions.default.Backends]]
Host = "b1"
Password = "<redacted>"
[Extensions.default.Secrets]
Anything = "<redacted>"
"#;

    #[test]
    fn secrets_are_found_in_every_shape_and_place() {
        assert_eq!(redact_text(SHAPES), SHAPES_REDACTED);
    }

    #[test]
    fn line_breaks_of_hidden_values_stay() {
        let kept = redact_keeping_lines(SHAPES);
        assert_eq!(kept.lines().count(), SHAPES.lines().count());
        let lines: Vec<&str> = kept.lines().collect();
        assert_eq!(
            lines[6..15],
            [
                "Multi.Secret = \"<redacted>\"",
                "<redacted>",
                "<redacted>",
                "Literal.Password = \"<redacted>\"",
                "<redacted>",
                "<redacted>",
                "<redacted>",
                "TLSKey = \"<redacted>\"",
                "<redacted>",
            ]
        );
        assert_eq!(lines[1], "AdminPass = \"<redacted>\" # a comment stays");
        for secret in [
            "s3cret", "in-", "dotted", "line ", "lit ", "k1", "k2", "under-",
        ] {
            assert!(!kept.contains(secret), "{secret} in\n{kept}");
        }
        let crlf = "a = 1\r\nToken = '''\r\nx\r\n'''\r\n";
        assert_eq!(
            redact_keeping_lines(crlf),
            "a = 1\r\nToken = \"<redacted>\"\r\n<redacted>\r\n<redacted>\r\n"
        );
    }

    #[test]
    fn a_text_that_does_not_parse_is_hidden_whole() {
        assert_eq!(redact_text("AdminPass = \"open"), REDACTED);
    }

    #[test]
    fn change_values_are_hidden_by_path_or_inside() {
        assert_eq!(
            redact_value("Extensions.default.AdminPass", "\"x\""),
            REDACTED
        );
        assert_eq!(
            redact_value("Extensions.default.Secrets.Anything", "\"x\""),
            REDACTED
        );
        assert_eq!(
            redact_value("Extensions.default.Tokens[0].Host", "\"x\""),
            REDACTED
        );
        assert_eq!(
            redact_value(
                "Extensions.default.Auth",
                "{ AdminPass = \"x\", User = \"u\" }"
            ),
            "{ AdminPass = \"<redacted>\", User = \"u\" }"
        );
        assert_eq!(
            redact_value("Extensions.default.Users", "[{ Token = \"x\" }]"),
            "[{ Token = \"<redacted>\" }]"
        );
        assert_eq!(
            redact_value("Extensions.default.AdminPass", "(removed)"),
            "(removed)"
        );
        assert_eq!(redact_value("Extensions.default.ProxyReplicas", "2"), "2");
    }
}

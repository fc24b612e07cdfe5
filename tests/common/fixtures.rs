//! The config fixtures (`fixtures/configs/`), and reading TOML text independently of the
//! code under test: a small line-based locator for `key = value` lines, and a leaf walk
//! over `toml_edit` documents.

use std::ops::Range;
use std::path::PathBuf;

use toml_edit::{DocumentMut, Item, TableLike, Value};

use super::manifest_dir;

/// A fixture: its file stem and its path relative to the crate root.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// e.g. `ucp-3.2`.
    pub stem: String,
    /// e.g. `fixtures/configs/valid/ucp-3.2.toml`.
    pub path: String,
}

impl Fixture {
    /// The fixture's bytes.
    pub fn text(&self) -> String {
        std::fs::read_to_string(manifest_dir().join(&self.path)).expect("fixture reads")
    }

    /// The extension the edits work on.
    pub fn extension(&self) -> &'static str {
        if self.stem == "service-clusters" {
            "us-west"
        } else {
            "default"
        }
    }

    /// The flags needed to pick that extension (service-clusters has three, none `default`).
    pub fn extension_args(&self) -> Vec<String> {
        if self.stem == "service-clusters" {
            vec!["--extension".into(), "us-west".into()]
        } else {
            Vec::new()
        }
    }

    /// The matching desired config for `apply`, from `fixtures/configs/desired/`.
    pub fn desired_path(&self) -> String {
        format!("fixtures/configs/desired/{}.toml", self.stem)
    }
}

/// Every `*.toml` in `fixtures/configs/DIR`, sorted by name.
pub fn fixtures(dir: &str) -> Vec<Fixture> {
    let relative = PathBuf::from("fixtures/configs").join(dir);
    let mut found: Vec<Fixture> = std::fs::read_dir(manifest_dir().join(&relative))
        .expect("fixture directory exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .map(|path| {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            Fixture {
                path: format!("fixtures/configs/{dir}/{stem}.toml"),
                stem,
            }
        })
        .collect();
    found.sort_by(|a, b| a.stem.cmp(&b.stem));
    assert!(!found.is_empty(), "no fixtures in {}", relative.display());
    found
}

// ---------------------------------------------------------------------------------------
// Line-level reading of TOML text, independent of toml_edit and of the code under test.
// Enough for the fixtures and the generated configs: bare or quoted keys, `[a.b]` headers,
// values that are strings, numbers, booleans or (possibly multi-line) arrays.
// ---------------------------------------------------------------------------------------

/// One `key = value` line (or lines, for a multi-line array) of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLines {
    /// The key as spelled in the file.
    pub key: String,
    /// Line indices (0-based) the key and its value occupy.
    pub lines: Range<usize>,
    /// Everything on the first line before the value: indentation, key, `=`, blanks.
    pub prefix: String,
    /// Everything on the last line after the value: blanks and a comment.
    pub suffix: String,
}

/// Splits text into lines, each keeping its `\n`.
pub fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// The path of a `[a.b.c]` header line, or `None` when the line is no header.
fn header_path(line: &str) -> Option<Vec<String>> {
    let trimmed = line.trim();
    if !trimmed.starts_with('[') || trimmed.starts_with("[[") {
        return None;
    }
    let end = trimmed.find(']')?;
    Some(
        trimmed[1..end]
            .split('.')
            .map(|part| part.trim().trim_matches('"').to_owned())
            .collect(),
    )
}

/// Whether a header path is `[Extensions.NAME]` itself (the table holding the proxy keys).
fn is_extension_header(path: &[String], extension: &str) -> bool {
    path.len() == 2 && path[0].eq_ignore_ascii_case("Extensions") && path[1] == extension
}

/// The offset just past the string that starts at `bytes[pos]` (a `"` or `'`).
fn skip_string(bytes: &[u8], mut pos: usize) -> usize {
    let quote = bytes[pos];
    pos += 1;
    while pos < bytes.len() && bytes[pos] != quote {
        if quote == b'"' && bytes[pos] == b'\\' {
            pos += 1;
        }
        pos += 1;
    }
    pos + 1
}

/// Where the value starting on line `first` at byte `start` ends: the index of its last
/// line and the byte offset just past it there (arrays and inline tables may span lines).
fn value_end(all: &[&str], first: usize, start: usize) -> (usize, usize) {
    let mut depth = 0usize;
    let (mut line, mut pos) = (first, start);
    loop {
        let bytes = all[line].trim_end_matches(['\n', '\r']).as_bytes();
        while pos < bytes.len() {
            match bytes[pos] {
                b'"' | b'\'' => {
                    pos = skip_string(bytes, pos);
                    if depth == 0 {
                        return (line, pos);
                    }
                }
                b'[' | b'{' => {
                    depth += 1;
                    pos += 1;
                }
                b']' | b'}' => {
                    depth -= 1;
                    pos += 1;
                    if depth == 0 {
                        return (line, pos);
                    }
                }
                b'#' if depth > 0 => pos = bytes.len(),
                b' ' | b'\t' | b'#' if depth == 0 => return (line, pos),
                _ => pos += 1,
            }
        }
        if depth == 0 {
            return (line, bytes.len());
        }
        line += 1;
        pos = 0;
    }
}

/// Every `key = value` directly in `[Extensions.NAME]`, in file order.
pub fn extension_keys(text: &str, extension: &str) -> Vec<KeyLines> {
    let all = lines(text);
    let mut found = Vec::new();
    let mut inside = false;
    let mut index = 0;
    while index < all.len() {
        let line = all[index];
        if let Some(path) = header_path(line) {
            inside = is_extension_header(&path, extension);
            index += 1;
            continue;
        }
        let trimmed = line.trim_start();
        if !inside || trimmed.is_empty() || trimmed.starts_with('#') {
            index += 1;
            continue;
        }
        let Some(eq) = line.find('=') else {
            index += 1;
            continue;
        };
        let key = line[..eq].trim().trim_matches('"').to_owned();
        let value_start = eq + 1 + (line[eq + 1..].len() - line[eq + 1..].trim_start().len());
        let (last, end) = value_end(&all, index, value_start);
        let suffix = all[last][end..].to_owned();
        found.push(KeyLines {
            key,
            lines: index..last + 1,
            prefix: line[..value_start].to_owned(),
            suffix,
        });
        index = last + 1;
    }
    found
}

/// The lines of `key` (matched case-insensitively, as Interlock does) in `[Extensions.NAME]`.
pub fn key_lines(text: &str, extension: &str, key: &str) -> Option<KeyLines> {
    extension_keys(text, extension)
        .into_iter()
        .find(|k| k.key.eq_ignore_ascii_case(key))
}

/// `text` with each listed key's value replaced by `literal`, keeping everything else on
/// its lines (indentation, key spelling, spacing around `=`, trailing comment). This is what
/// an edit that preserves formatting must produce for keys that already exist.
pub fn replace_values(text: &str, extension: &str, edits: &[(&str, String)]) -> String {
    let all = lines(text);
    let mut spans: Vec<(KeyLines, &String)> = edits
        .iter()
        .map(|(key, literal)| {
            let found = key_lines(text, extension, key)
                .unwrap_or_else(|| panic!("{key} not found in [Extensions.{extension}]"));
            (found, literal)
        })
        .collect();
    spans.sort_by_key(|(k, _)| k.lines.start);
    let mut out = String::new();
    let mut next = 0;
    for (span, literal) in spans {
        out.extend(all[next..span.lines.start].iter().copied());
        out.push_str(&span.prefix);
        out.push_str(literal);
        out.push_str(&span.suffix);
        next = span.lines.end;
    }
    out.extend(all[next..].iter().copied());
    out
}

/// `text` without the lines of the listed keys in `[Extensions.NAME]`.
pub fn without_key_lines(text: &str, extension: &str, keys: &[&str]) -> String {
    let all = lines(text);
    let drop: Vec<Range<usize>> = keys
        .iter()
        .filter_map(|key| key_lines(text, extension, key))
        .map(|k| k.lines)
        .collect();
    all.iter()
        .enumerate()
        .filter(|(index, _)| !drop.iter().any(|range| range.contains(index)))
        .map(|(_, line)| *line)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Values through toml_edit.
// ---------------------------------------------------------------------------------------

/// Parses text as TOML, panicking with the text on failure.
pub fn parse(text: &str) -> DocumentMut {
    text.parse::<DocumentMut>()
        .unwrap_or_else(|error| panic!("output is not valid TOML: {error}\n{text}"))
}

/// The value of `key` in `[Extensions.NAME]`, keys matched case-insensitively.
pub fn extension_value<'a>(doc: &'a DocumentMut, extension: &str, key: &str) -> Option<&'a Value> {
    let extensions = doc
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Extensions"))?
        .1
        .as_table_like()?;
    extensions
        .get(extension)?
        .as_table_like()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))?
        .1
        .as_value()
}

/// An integer value of `[Extensions.NAME]`.
pub fn int(doc: &DocumentMut, extension: &str, key: &str) -> Option<i64> {
    extension_value(doc, extension, key)?.as_integer()
}

/// A string value of `[Extensions.NAME]`.
pub fn string(doc: &DocumentMut, extension: &str, key: &str) -> Option<String> {
    extension_value(doc, extension, key)?
        .as_str()
        .map(str::to_owned)
}

/// An array-of-strings value of `[Extensions.NAME]`.
pub fn strings(doc: &DocumentMut, extension: &str, key: &str) -> Option<Vec<String>> {
    extension_value(doc, extension, key)?
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Every leaf of a document: the key path (as spelled) and the value as written (without
/// the blanks and comments around it), in document order.
pub fn leaves(doc: &DocumentMut) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    walk(doc.as_table(), &mut Vec::new(), &mut out);
    out
}

fn walk(table: &dyn TableLike, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    for (key, item) in table.iter() {
        path.push(key.to_owned());
        match item {
            Item::Value(Value::InlineTable(inline)) => walk(inline, path, out),
            Item::Value(value) => {
                out.push((path.clone(), value.clone().decorated("", "").to_string()))
            }
            Item::Table(table) => walk(table, path, out),
            Item::ArrayOfTables(array) => {
                for (index, table) in array.iter().enumerate() {
                    path.push(index.to_string());
                    walk(table, path, out);
                    path.pop();
                }
            }
            Item::None => {}
        }
        path.pop();
    }
}

/// Whether a leaf path is one of `keys` directly in `[Extensions.NAME]`.
pub fn is_extension_key(path: &[String], extension: &str, keys: &[&str]) -> bool {
    path.len() == 3
        && path[0].eq_ignore_ascii_case("Extensions")
        && path[1] == extension
        && keys.iter().any(|key| path[2].eq_ignore_ascii_case(key))
}

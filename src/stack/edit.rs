//! Targeted edits of a YAML text: remove, replace or add items of the collections the
//! [`Document`] located, and leave every other byte alone.
//!
//! An edit never re-serializes a document: it replaces exactly the lines of the items it
//! changes (block style) or the one flow collection it changes (`[...]`, `{...}`), writes new
//! text with the file's own indentation, and keeps every comment of the lines it removes.
//! Edits of one collection are gathered first ([`Edits`]) and rendered together, so removing
//! several items of one flow list, or all items of a block list, stays one consistent edit.
//! No I/O.

use std::collections::{BTreeMap, BTreeSet};

use saphyr_parser::ScalarStyle;

use crate::stack::yaml::{Document, Kind, NodeId};

/// New YAML content to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum New {
    /// A scalar, written plain when that reads back the same, else double-quoted.
    Scalar(String),
    /// A mapping, in this order.
    Map(Vec<(String, New)>),
    /// A sequence.
    List(Vec<New>),
}

/// Bytes `start..end` of the text become `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TextEdit {
    start: usize,
    end: usize,
    text: String,
}

/// What happens to one collection.
#[derive(Debug, Clone, Default)]
struct CollectionEdit {
    removed: BTreeSet<usize>,
    replaced: BTreeMap<usize, New>,
    appended: Vec<(Option<String>, New)>,
}

/// Edits of one document, gathered, then rendered into a new text.
#[derive(Debug)]
pub struct Edits<'a> {
    doc: &'a Document,
    collections: BTreeMap<NodeId, CollectionEdit>,
    scalars: BTreeMap<NodeId, String>,
    fills: Vec<(NodeId, Vec<(String, New)>)>,
    root_additions: Vec<(String, New)>,
    indent_unit: usize,
    sequence_offset: usize,
    newline: &'static str,
}

impl<'a> Edits<'a> {
    /// No edits yet; the file's indentation and line ends are read from `doc`.
    pub fn new(doc: &'a Document) -> Self {
        let indent_unit = indentation_unit(doc).unwrap_or(2);
        Edits {
            doc,
            collections: BTreeMap::new(),
            scalars: BTreeMap::new(),
            fills: Vec::new(),
            root_additions: Vec::new(),
            indent_unit,
            sequence_offset: sequence_offset(doc).unwrap_or(indent_unit),
            newline: if doc.text().contains("\r\n") {
                "\r\n"
            } else {
                "\n"
            },
        }
    }

    /// Removes item (or entry) `index` of a collection.
    pub fn remove(&mut self, collection: NodeId, index: usize) {
        self.collection(collection).removed.insert(index);
    }

    /// Replaces item `index` of a sequence.
    pub fn replace(&mut self, sequence: NodeId, index: usize, item: New) {
        self.collection(sequence).replaced.insert(index, item);
    }

    /// Adds an item at the end of a sequence.
    pub fn push(&mut self, sequence: NodeId, item: New) {
        self.collection(sequence).appended.push((None, item));
    }

    /// Adds `key: value` at the end of a mapping.
    pub fn insert(&mut self, mapping: NodeId, key: &str, value: New) {
        self.collection(mapping)
            .appended
            .push((Some(key.to_owned()), value));
    }

    /// Gives the entry of `key`, whose value is an empty null (`key:`), these entries.
    pub fn fill(&mut self, key: NodeId, entries: Vec<(String, New)>) {
        self.fills.push((key, entries));
    }

    /// Adds `key: value` at the end of the top-level mapping.
    pub fn insert_at_root(&mut self, key: &str, value: New) {
        self.root_additions.push((key.to_owned(), value));
    }

    /// Gives a scalar a new value, in its own quoting style.
    pub fn set_scalar(&mut self, node: NodeId, value: &str) {
        self.scalars.insert(node, value.to_owned());
    }

    fn collection(&mut self, node: NodeId) -> &mut CollectionEdit {
        self.collections.entry(node).or_default()
    }

    /// The edited text; `Err` names an edit this layout cannot make.
    pub fn render(&self) -> Result<String, String> {
        let mut edits = Vec::new();
        for (node, value) in &self.scalars {
            edits.push(self.scalar_edit(*node, value));
        }
        for (node, edit) in &self.collections {
            if self.doc.node(*node).flow {
                edits.push(self.flow_edit(*node, edit)?);
            } else {
                edits.extend(self.block_edits(*node, edit)?);
            }
        }
        for (key, entries) in &self.fills {
            let key_start = self.doc.node(*key).start;
            let indent = self.column(key_start) + self.indent_unit;
            let text = self.block_entries(entries, indent);
            edits.push(self.insertion(self.next_line_start(key_start), text));
        }
        if !self.root_additions.is_empty() {
            edits.push(self.root_edit());
        }
        apply(self.doc.text(), edits)
    }

    // -- layout ----------------------------------------------------------------------

    fn text(&self) -> &str {
        self.doc.text()
    }

    fn line_start(&self, offset: usize) -> usize {
        self.doc.line_starts()[self.doc.line_of(offset) - 1]
    }

    /// The start of the line after the one holding `offset` (the text's end on the last).
    fn next_line_start(&self, offset: usize) -> usize {
        self.doc
            .line_starts()
            .get(self.doc.line_of(offset))
            .copied()
            .unwrap_or(self.text().len())
    }

    fn column(&self, offset: usize) -> usize {
        offset - self.line_start(offset)
    }

    /// Where the `-` of a block sequence item is.
    fn dash(&self, item: NodeId) -> Result<usize, String> {
        let before = &self.text()[..self.doc.node(item).start];
        let trimmed = before.trim_end();
        if trimmed.ends_with('-') {
            Ok(trimmed.len() - 1)
        } else {
            Err(format!(
                "line {}: no `-` before a list item",
                self.doc.line(item)
            ))
        }
    }

    /// Where the first key of a block mapping starts (the node may start at its anchor).
    fn first_key(&self, mapping: NodeId) -> Option<NodeId> {
        match &self.doc.node(mapping).kind {
            Kind::Mapping(pairs) => pairs.first().map(|(key, _)| *key),
            _ => None,
        }
    }

    fn items(&self, collection: NodeId) -> Vec<(NodeId, NodeId)> {
        match &self.doc.node(collection).kind {
            Kind::Sequence(items) => items.iter().map(|item| (*item, *item)).collect(),
            Kind::Mapping(pairs) => pairs.clone(),
            _ => Vec::new(),
        }
    }

    /// The whole lines an item or entry occupies, and the column of its `-` or key.
    fn item_lines(
        &self,
        collection: NodeId,
        index: usize,
    ) -> Result<(usize, usize, usize), String> {
        let (first, last) = self.items(collection)[index];
        let anchor = if matches!(self.doc.node(collection).kind, Kind::Sequence(_)) {
            self.dash(first)?
        } else {
            self.doc.node(first).start
        };
        let start = self.line_start(anchor);
        if !self.text()[start..anchor].trim().is_empty() {
            return Err(format!(
                "line {}: the entry shares its line with other content",
                self.doc.line(first)
            ));
        }
        let end = self.next_line_start(self.doc.node(last).end.max(self.doc.node(first).end));
        Ok((start, end, self.column(anchor)))
    }

    /// The comments in `start..end`, each as a line of its own at `indent`.
    fn kept_comments(&self, start: usize, end: usize, indent: usize) -> String {
        let text = self.text();
        let inside_scalar = |at: usize| {
            (0..self.doc.node_count()).any(|id| {
                let node = self.doc.node(id);
                matches!(node.kind, Kind::Scalar { .. }) && node.start <= at && at < node.end
            })
        };
        let mut kept = String::new();
        let mut line_start = start;
        for line in text[start..end].split_inclusive('\n') {
            let comment = line
                .char_indices()
                .filter(|(at, c)| {
                    *c == '#'
                        && (*at == 0 || line[..*at].ends_with(char::is_whitespace))
                        && !inside_scalar(line_start + at)
                })
                .map(|(at, _)| line[at..].trim_end())
                .next();
            if let Some(comment) = comment {
                kept.push_str(&" ".repeat(indent));
                kept.push_str(comment);
                kept.push_str(self.newline);
            }
            line_start += line.len();
        }
        kept
    }

    // -- rendering new content --------------------------------------------------------

    fn block_item(&self, item: &New, dash: usize) -> String {
        let mut out = format!("{}- ", " ".repeat(dash));
        match item {
            New::Scalar(value) => {
                out.push_str(&scalar_text(value));
                out.push_str(self.newline);
            }
            New::Map(pairs) => {
                let body = self.block_entries(pairs, dash + 2);
                out.push_str(body.trim_start_matches(' '));
            }
            New::List(items) => {
                out.push_str(&flow_text(&New::List(items.clone())));
                out.push_str(self.newline);
            }
        }
        out
    }

    fn block_entries(&self, pairs: &[(String, New)], indent: usize) -> String {
        pairs
            .iter()
            .map(|(key, value)| self.block_entry(key, value, indent))
            .collect()
    }

    fn block_entry(&self, key: &str, value: &New, indent: usize) -> String {
        let pad = " ".repeat(indent);
        match value {
            New::Scalar(text) => format!("{pad}{key}: {}{}", scalar_text(text), self.newline),
            New::Map(pairs) if pairs.is_empty() => format!("{pad}{key}: {{}}{}", self.newline),
            New::Map(pairs) => format!(
                "{pad}{key}:{}{}",
                self.newline,
                self.block_entries(pairs, indent + self.indent_unit)
            ),
            New::List(items) if items.is_empty() => format!("{pad}{key}: []{}", self.newline),
            New::List(items) => {
                let mut out = format!("{pad}{key}:{}", self.newline);
                for item in items {
                    out.push_str(&self.block_item(item, indent + self.sequence_offset));
                }
                out
            }
        }
    }

    // -- edits ------------------------------------------------------------------------

    fn scalar_edit(&self, node: NodeId, value: &str) -> TextEdit {
        let found = self.doc.node(node);
        let raw = &self.text()[found.start..found.end];
        let text = match &found.kind {
            Kind::Scalar {
                style: ScalarStyle::DoubleQuoted,
                ..
            } => format!("\"{}\"", escape_double(value)),
            Kind::Scalar {
                style: ScalarStyle::SingleQuoted,
                ..
            } => format!("'{}'", value.replace('\'', "''")),
            _ => scalar_text(value),
        };
        // Keep an anchor in front of the value.
        let prefix_len = raw
            .find(['"', '\''])
            .filter(|_| raw.starts_with('&'))
            .unwrap_or(0);
        TextEdit {
            start: found.start + prefix_len,
            end: found.end,
            text,
        }
    }

    fn block_edits(&self, node: NodeId, edit: &CollectionEdit) -> Result<Vec<TextEdit>, String> {
        let items = self.items(node);
        let is_sequence = matches!(self.doc.node(node).kind, Kind::Sequence(_));
        let mut edits = Vec::new();
        for index in &edit.removed {
            let (start, end, indent) = self.item_lines(node, *index)?;
            edits.push(TextEdit {
                start,
                end,
                text: self.kept_comments(start, end, indent),
            });
        }
        for (index, item) in &edit.replaced {
            let (start, end, indent) = self.item_lines(node, *index)?;
            let mut text = self.block_item(item, indent);
            text.push_str(&self.kept_comments(start, end, indent));
            edits.push(TextEdit { start, end, text });
        }
        let emptied = edit.removed.len() == items.len() && edit.replaced.is_empty();
        if !edit.appended.is_empty() {
            let indent = if is_sequence {
                self.column(self.dash(items[0].0)?)
            } else {
                let key = self.first_key(node).ok_or("an empty mapping")?;
                self.column(self.doc.node(key).start)
            };
            let text: String = edit
                .appended
                .iter()
                .map(|(key, value)| match key {
                    Some(key) => self.block_entry(key, value, indent),
                    None => self.block_item(value, indent),
                })
                .collect();
            let at = self.next_line_start(self.doc.node(node).end);
            edits.push(self.insertion(at, text));
        } else if emptied {
            edits.push(self.empty_value(node, if is_sequence { "[]" } else { "{}" })?);
        }
        Ok(edits)
    }

    /// ` []` after the key whose block value lost its last item.
    fn empty_value(&self, node: NodeId, empty: &str) -> Result<TextEdit, String> {
        let parent = self
            .doc
            .parent(node)
            .ok_or("the whole document would be emptied")?;
        let key = self
            .items(parent)
            .into_iter()
            .find(|(_, value)| *value == node)
            .map(|(key, _)| key)
            .filter(|key| *key != node)
            .ok_or_else(|| {
                format!(
                    "line {}: a list item would become empty",
                    self.doc.line(node)
                )
            })?;
        let colon = self.doc.node(key).end
            + self.text()[self.doc.node(key).end..]
                .find(':')
                .ok_or("a key without `:`")?
            + 1;
        Ok(TextEdit {
            start: colon,
            end: colon,
            text: format!(" {empty}"),
        })
    }

    /// Text inserted at the start of a line; a file without a final newline gets one first.
    fn insertion(&self, at: usize, text: String) -> TextEdit {
        let needs_newline = at == self.text().len() && !self.text().ends_with('\n');
        TextEdit {
            start: at,
            end: at,
            text: if needs_newline {
                format!("{}{text}", self.newline)
            } else {
                text
            },
        }
    }

    fn root_edit(&self) -> TextEdit {
        let text: String = self
            .root_additions
            .iter()
            .map(|(key, value)| self.block_entry(key, value, 0))
            .collect();
        self.insertion(self.text().len(), text)
    }

    /// One flow collection, written again from its items' own text and the new ones.
    fn flow_edit(&self, node: NodeId, edit: &CollectionEdit) -> Result<TextEdit, String> {
        let found = self.doc.node(node);
        let raw = &self.text()[found.start..found.end];
        let open_at = raw
            .find(['[', '{'])
            .ok_or("a flow collection without brackets")?;
        if raw.contains('#') && raw.contains('\n') {
            return Err(format!(
                "line {}: a flow collection spread over lines with comments",
                self.doc.line(node)
            ));
        }
        let padded = raw[open_at + 1..].starts_with(' ');
        let mut parts: Vec<String> = Vec::new();
        for (index, (first, last)) in self.items(node).into_iter().enumerate() {
            if edit.removed.contains(&index) {
                continue;
            }
            match edit.replaced.get(&index) {
                Some(item) => parts.push(flow_text(item)),
                None => {
                    let start = self.doc.node(first).start;
                    let end = self.doc.node(last).end.max(self.doc.node(first).end);
                    parts.push(self.text()[start..end].to_owned());
                }
            }
        }
        for (key, value) in &edit.appended {
            parts.push(match key {
                Some(key) => format!("{key}: {}", flow_text(value)),
                None => flow_text(value),
            });
        }
        let (open, close) = (&raw[open_at..=open_at], &raw[raw.len() - 1..]);
        let body = parts.join(", ");
        let text = if padded && !body.is_empty() {
            format!("{open} {body} {close}")
        } else {
            format!("{open}{body}{close}")
        };
        Ok(TextEdit {
            start: found.start + open_at,
            end: found.end,
            text,
        })
    }
}

fn flow_text(value: &New) -> String {
    match value {
        New::List(items) => {
            let parts: Vec<String> = items.iter().map(flow_text).collect();
            format!("[{}]", parts.join(", "))
        }
        New::Scalar(text) => scalar_text(text),
        New::Map(pairs) => {
            let parts: Vec<String> = pairs
                .iter()
                .map(|(key, value)| format!("{key}: {}", flow_text(value)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// A scalar as plain text when that is unambiguous in any context, else double-quoted.
fn scalar_text(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
        && !value.starts_with(['-', '.']);
    if plain {
        value.to_owned()
    } else {
        format!("\"{}\"", escape_double(value))
    }
}

fn escape_double(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Applies non-overlapping edits; insertions at the same offset keep their order.
fn apply(text: &str, mut edits: Vec<TextEdit>) -> Result<String, String> {
    edits.sort_by_key(|edit| (edit.start, edit.end));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for edit in edits {
        if edit.start < at {
            return Err("two changes touch the same lines".into());
        }
        out.push_str(&text[at..edit.start]);
        out.push_str(&edit.text);
        at = edit.end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// How far a nested block mapping is indented: from `services:` to its first service.
fn indentation_unit(doc: &Document) -> Option<usize> {
    let services = doc.get(doc.root(), "services")?;
    let value = doc.node(services.value);
    let Kind::Mapping(pairs) = &value.kind else {
        return None;
    };
    let first = doc.node(pairs.first()?.0).start;
    let key = doc.node(services.key).start;
    let column = |offset: usize| offset - doc.line_starts()[doc.line_of(offset) - 1];
    (!value.flow && column(first) > column(key)).then(|| column(first) - column(key))
}

/// How far a block list's `-` is indented from its key (0 for `key:\n- item`).
fn sequence_offset(doc: &Document) -> Option<usize> {
    let column = |offset: usize| offset - doc.line_starts()[doc.line_of(offset) - 1];
    (0..doc.node_count()).find_map(|id| {
        let Kind::Mapping(pairs) = &doc.node(id).kind else {
            return None;
        };
        pairs.iter().find_map(|(key, value)| {
            let value_node = doc.node(*value);
            let Kind::Sequence(items) = &value_node.kind else {
                return None;
            };
            if value_node.flow {
                return None;
            }
            let item_start = doc.node(*items.first()?).start;
            let dash = doc.text()[..item_start].trim_end().len().checked_sub(1)?;
            column(dash).checked_sub(column(doc.node(*key).start))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edited(text: &str, change: impl FnOnce(&Document, &mut Edits<'_>)) -> String {
        let doc = Document::parse(text).unwrap();
        let mut edits = Edits::new(&doc);
        change(&doc, &mut edits);
        edits.render().unwrap()
    }

    fn value(doc: &Document, path: &[&str]) -> NodeId {
        path.iter()
            .fold(doc.root(), |node, key| doc.get(node, key).unwrap().value)
    }

    #[test]
    fn removing_block_items_keeps_their_comments() {
        let text = "labels:\n  # routing\n  - a=1  # first\n  - b=2\n  - c=3 # third\nnext: 1\n";
        let out = edited(text, |doc, edits| {
            let labels = value(doc, &["labels"]);
            edits.remove(labels, 0);
            edits.remove(labels, 2);
        });
        assert_eq!(
            out,
            "labels:\n  # routing\n  # first\n  - b=2\n  # third\nnext: 1\n"
        );
    }

    #[test]
    fn removing_every_item_leaves_an_empty_list() {
        let text = "deploy:\n  labels:  # lb\n    x: \"1 # not a comment\"\n  replicas: 2\n";
        let out = edited(text, |doc, edits| {
            edits.remove(value(doc, &["deploy", "labels"]), 0)
        });
        assert_eq!(out, "deploy:\n  labels: {}  # lb\n  replicas: 2\n");
    }

    #[test]
    fn flow_collections_are_written_again_from_their_items() {
        let text = "n: [ a, \"b\", c ]  # keep\nm: {x: 1, y: 2}\n";
        let out = edited(text, |doc, edits| {
            let n = value(doc, &["n"]);
            edits.remove(n, 0);
            edits.replace(n, 2, New::Scalar("bridge".into()));
            edits.insert(value(doc, &["m"]), "mode", New::Scalar("host".into()));
        });
        assert_eq!(
            out,
            "n: [ \"b\", bridge ]  # keep\nm: {x: 1, y: 2, mode: host}\n"
        );
    }

    #[test]
    fn additions_follow_the_file_layout() {
        let text = "services:\n    web:\n        ports:\n        - target: 1\n        image: x\n";
        let out = edited(text, |doc, edits| {
            let web = value(doc, &["services", "web"]);
            edits.push(
                value(doc, &["services", "web", "ports"]),
                New::Map(vec![
                    ("target".into(), New::Scalar("8080".into())),
                    ("mode".into(), New::Scalar("host".into())),
                ]),
            );
            edits.insert(
                web,
                "networks",
                New::List(vec![New::Scalar("bridge".into())]),
            );
            edits.insert_at_root(
                "networks",
                New::Map(vec![(
                    "bridge".into(),
                    New::Map(vec![
                        ("external".into(), New::Scalar("true".into())),
                        ("name".into(), New::Scalar("bridge".into())),
                    ]),
                )]),
            );
        });
        assert_eq!(
            out,
            "services:\n    web:\n        ports:\n        - target: 1\n        - target: 8080\n          mode: host\n        image: x\n        networks:\n        - bridge\nnetworks:\n    bridge:\n        external: true\n        name: bridge\n"
        );
    }

    #[test]
    fn replacing_a_block_item_and_a_quoted_scalar() {
        let text = "version: '3.4'\nports:\n  - \"80:8080\"   # web\n  - 443:443\n";
        let out = edited(text, |doc, edits| {
            edits.set_scalar(value(doc, &["version"]), "3.5");
            edits.replace(
                value(doc, &["ports"]),
                0,
                New::Map(vec![
                    ("target".into(), New::Scalar("8080".into())),
                    ("published".into(), New::Scalar("80".into())),
                    ("mode".into(), New::Scalar("host".into())),
                ]),
            );
        });
        assert_eq!(
            out,
            "version: '3.5'\nports:\n  - target: 8080\n    published: 80\n    mode: host\n  # web\n  - 443:443\n"
        );
    }

    #[test]
    fn crlf_files_stay_crlf_and_a_missing_final_newline_is_added() {
        let out = edited("a: 1\r\nb:\r\n  - x\r\n", |doc, edits| {
            edits.push(value(doc, &["b"]), New::Scalar("y".into()));
        });
        assert_eq!(out, "a: 1\r\nb:\r\n  - x\r\n  - y\r\n");
        let out = edited("a: 1", |_, edits| {
            edits.insert_at_root("b", New::Scalar("2".into()));
        });
        assert_eq!(out, "a: 1\nb: 2\n");
    }
}

//! A YAML document as a tree of nodes that know where they are in the text.
//!
//! `stack fix` edits stack files in place: each node keeps its byte range and line, so an
//! edit replaces exactly those bytes and every comment, key order and the formatting of
//! everything else stay as they were. Parsing is saphyr-parser's (a maintained, YAML 1.2
//! compliant parser that reports a span for every event); this module only builds the
//! tree, resolves aliases and merge keys (`<<`), and refuses what a compose loader refuses
//! (several documents, duplicate keys). No I/O.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Index of a node in its [`Document`].
pub type NodeId = usize;

/// What a node is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar and how it was written.
    Scalar {
        /// The value, unquoted and unescaped.
        value: String,
        /// Plain, quoted or block.
        style: ScalarStyle,
    },
    /// A sequence's items.
    Sequence(Vec<NodeId>),
    /// A mapping's `(key, value)` pairs, in file order, merge keys included.
    Mapping(Vec<(NodeId, NodeId)>),
    /// `*name`: the anchored node it stands for.
    Alias(NodeId),
}

/// One node and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Byte offset of its first character (its anchor, if it has one; the first key or `-`
    /// of a block collection).
    pub start: usize,
    /// Byte offset just past its last character of content (for a block scalar, before
    /// the blank lines that follow it).
    pub end: usize,
    /// Written in flow style (`[...]`, `{...}`).
    pub flow: bool,
}

/// A text that is not a YAML document a compose file can be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct YamlError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// A key and its value in a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The key node.
    pub key: NodeId,
    /// The value node, aliases resolved.
    pub value: NodeId,
    /// Reached through a merge key (`<<: *anchor`), not written in this mapping.
    pub merged: bool,
}

/// A parsed document and its text.
#[derive(Debug, Clone)]
pub struct Document {
    text: String,
    nodes: Vec<Node>,
    parents: Vec<Option<NodeId>>,
    root: NodeId,
    line_starts: Vec<usize>,
}

struct Frame {
    node: NodeId,
    pending_key: Option<NodeId>,
}

impl Document {
    /// Parses a single-document YAML text.
    pub fn parse(text: &str) -> Result<Document, YamlError> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        let mut doc = Document {
            text: text.to_owned(),
            nodes: Vec::new(),
            parents: Vec::new(),
            root: 0,
            line_starts,
        };
        let bytes = CharToByte::new(text);
        let mut frames: Vec<Frame> = Vec::new();
        let mut anchors: HashMap<usize, NodeId> = HashMap::new();
        let mut documents = 0;
        let mut root = None;
        for item in Parser::new_from_str(text) {
            let (event, span) =
                item.map_err(|e| doc.error_at(bytes.of(e.marker().index()), e.info().to_owned()))?;
            let (start, end) = (bytes.of(span.start.index()), bytes.of(span.end.index()));
            let id = doc.nodes.len();
            let (node, anchor) = match event {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(doc.error_at(
                            start,
                            "a second YAML document (`---`): a stack file holds one".into(),
                        ));
                    }
                    continue;
                }
                Event::Scalar(value, style, anchor, _) => {
                    let end = match style {
                        ScalarStyle::Literal | ScalarStyle::Folded => {
                            start + text[start..end].trim_end().len()
                        }
                        // The parser's span of a quoted scalar runs on over a trailing
                        // comment; the closing quote is the end.
                        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                            quoted_end(text, start, end)
                        }
                        ScalarStyle::Plain => end,
                    };
                    let kind = Kind::Scalar {
                        value: value.into_owned(),
                        style,
                    };
                    (
                        Node {
                            kind,
                            start,
                            end,
                            flow: false,
                        },
                        anchor,
                    )
                }
                Event::Alias(anchor) => {
                    let target = *anchors.get(&anchor).ok_or_else(|| {
                        doc.error_at(start, "an alias to an unknown anchor".into())
                    })?;
                    let kind = Kind::Alias(target);
                    (
                        Node {
                            kind,
                            start,
                            end,
                            flow: false,
                        },
                        0,
                    )
                }
                Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                    let kind = if matches!(event, Event::SequenceStart(..)) {
                        Kind::Sequence(Vec::new())
                    } else {
                        Kind::Mapping(Vec::new())
                    };
                    let flow = text[start..end].trim_end().ends_with(['[', '{']);
                    doc.nodes.push(Node {
                        kind,
                        start,
                        end: start,
                        flow,
                    });
                    doc.parents.push(frames.last().map(|f| f.node));
                    if anchor > 0 {
                        anchors.insert(anchor, id);
                    }
                    frames.push(Frame {
                        node: id,
                        pending_key: None,
                    });
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let frame = frames.pop().expect("the parser balances collections");
                    doc.close(frame.node, span, &bytes)?;
                    doc.attach(frame.node, &mut frames, &mut root);
                    continue;
                }
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {
                    continue;
                }
            };
            doc.nodes.push(node);
            doc.parents.push(frames.last().map(|f| f.node));
            if anchor > 0 {
                anchors.insert(anchor, id);
            }
            doc.attach(id, &mut frames, &mut root);
        }
        doc.root = root.ok_or_else(|| doc.error_at(0, "the file is empty".into()))?;
        Ok(doc)
    }

    fn error_at(&self, offset: usize, message: String) -> YamlError {
        let line = self.line_of(offset);
        let line_start = self.line_starts[line - 1];
        let column = self.text[line_start..offset.min(self.text.len())]
            .chars()
            .count()
            + 1;
        YamlError {
            line,
            column,
            message,
        }
    }

    /// Sets a collection's end once its last child is known, and refuses duplicate keys.
    fn close(&mut self, id: NodeId, span: Span, bytes: &CharToByte) -> Result<(), YamlError> {
        let last_child = match &self.nodes[id].kind {
            Kind::Sequence(items) => items.last().copied(),
            Kind::Mapping(entries) => entries.last().map(|(_, value)| *value),
            _ => None,
        };
        self.nodes[id].end = if self.nodes[id].flow {
            // The span starts at the closing bracket (its end may run on over a comment).
            bytes.of(span.start.index()) + 1
        } else {
            last_child.map_or(self.nodes[id].start, |child| self.nodes[child].end)
        };
        if let Kind::Mapping(entries) = &self.nodes[id].kind {
            let mut seen: HashMap<&str, NodeId> = HashMap::new();
            for (key, _) in entries {
                let Some(name) = self.scalar(*key) else {
                    continue;
                };
                if let Some(earlier) = seen.insert(name, *key) {
                    let first_line = self.line(earlier);
                    return Err(self.error_at(
                        self.nodes[*key].start,
                        format!("duplicate key `{name}` (first at line {first_line})"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn attach(&mut self, id: NodeId, frames: &mut [Frame], root: &mut Option<NodeId>) {
        let Some(frame) = frames.last_mut() else {
            *root = Some(id);
            return;
        };
        match &mut self.nodes[frame.node].kind {
            Kind::Sequence(items) => items.push(id),
            Kind::Mapping(entries) => match frame.pending_key.take() {
                Some(key) => entries.push((key, id)),
                None => frame.pending_key = Some(id),
            },
            _ => unreachable!("only collections are frames"),
        }
    }

    /// The text the document was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The top-level node.
    pub fn root(&self) -> NodeId {
        self.root
    }

    /// How many nodes the document has (IDs are `0..node_count()`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// A node by ID.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// The collection a node is written in (not the one an alias of it appears in).
    pub fn parent(&self, id: NodeId) -> Option<NodeId> {
        self.parents[id]
    }

    /// The node an alias stands for (a node that is no alias stands for itself).
    pub fn resolve(&self, mut id: NodeId) -> NodeId {
        while let Kind::Alias(target) = self.nodes[id].kind {
            id = target;
        }
        id
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|start| *start <= offset)
    }

    /// 1-based line where a node starts.
    pub fn line(&self, id: NodeId) -> usize {
        self.line_of(self.nodes[id].start)
    }

    /// Byte offsets where each line starts.
    pub fn line_starts(&self) -> &[usize] {
        &self.line_starts
    }

    /// A scalar's value (through aliases); `None` for collections.
    pub fn scalar(&self, id: NodeId) -> Option<&str> {
        match &self.nodes[self.resolve(id)].kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Whether a node is YAML's null (an empty plain scalar, `~` or `null`).
    pub fn is_null(&self, id: NodeId) -> bool {
        matches!(&self.nodes[self.resolve(id)].kind,
            Kind::Scalar { value, style: ScalarStyle::Plain }
                if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A sequence's items (through aliases); `None` for anything else.
    pub fn sequence(&self, id: NodeId) -> Option<&[NodeId]> {
        match &self.nodes[self.resolve(id)].kind {
            Kind::Sequence(items) => Some(items),
            _ => None,
        }
    }

    /// Whether a node (through aliases) is a mapping.
    pub fn is_mapping(&self, id: NodeId) -> bool {
        matches!(self.nodes[self.resolve(id)].kind, Kind::Mapping(_))
    }

    /// A mapping's effective entries: its own (merge keys left out), then those merged in
    /// through `<<` that it does not override, in order. Empty for anything but a mapping.
    pub fn entries(&self, id: NodeId) -> Vec<Entry> {
        let mut found: Vec<Entry> = Vec::new();
        let mut taken = std::collections::HashSet::new();
        self.collect_entries(self.resolve(id), false, &mut found, &mut taken);
        found
    }

    fn collect_entries<'a>(
        &'a self,
        map: NodeId,
        merged: bool,
        found: &mut Vec<Entry>,
        taken: &mut std::collections::HashSet<&'a str>,
    ) {
        let Kind::Mapping(pairs) = &self.nodes[map].kind else {
            return;
        };
        for (key, value) in pairs {
            match self.scalar(*key) {
                Some("<<") => continue,
                Some(name) if !taken.insert(name) => continue,
                _ => found.push(Entry {
                    key: *key,
                    value: self.resolve(*value),
                    merged,
                }),
            }
        }
        for source in self.merge_sources(pairs) {
            self.collect_entries(source, true, found, taken);
        }
    }

    /// The mappings a mapping's `<<` keys merge in, in order.
    fn merge_sources(&self, pairs: &[(NodeId, NodeId)]) -> Vec<NodeId> {
        pairs
            .iter()
            .filter(|(key, _)| self.scalar(*key) == Some("<<"))
            .flat_map(|(_, value)| match self.sequence(*value) {
                Some(list) => list.iter().map(|item| self.resolve(*item)).collect(),
                None => vec![self.resolve(*value)],
            })
            .collect()
    }

    /// The effective entry for `key` in a mapping (see [`Document::entries`]).
    pub fn get(&self, map: NodeId, key: &str) -> Option<Entry> {
        let Kind::Mapping(pairs) = &self.nodes[self.resolve(map)].kind else {
            return None;
        };
        if let Some((k, v)) = pairs.iter().find(|(k, _)| self.scalar(*k) == Some(key)) {
            return Some(Entry {
                key: *k,
                value: self.resolve(*v),
                merged: false,
            });
        }
        self.merge_sources(pairs)
            .into_iter()
            .find_map(|source| self.get(source, key))
            .map(|entry| Entry {
                merged: true,
                ..entry
            })
    }

    /// Every node reachable from `id` (through aliases and merge keys), `id` included.
    pub fn reachable(&self, id: NodeId) -> Vec<NodeId> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![id];
        let mut out = Vec::new();
        while let Some(next) = stack.pop() {
            if std::mem::replace(&mut seen[next], true) {
                continue;
            }
            out.push(next);
            match &self.nodes[next].kind {
                Kind::Alias(target) => stack.push(*target),
                Kind::Sequence(items) => stack.extend(items),
                Kind::Mapping(pairs) => {
                    stack.extend(pairs.iter().flat_map(|(key, value)| [*key, *value]));
                }
                Kind::Scalar { .. } => {}
            }
        }
        out
    }
}

/// Just past the closing quote of the quoted scalar that starts at `start` (at its anchor,
/// if any); `fallback` when there is none.
fn quoted_end(text: &str, start: usize, fallback: usize) -> usize {
    let Some(open) = text[start..fallback].find(['"', '\'']).map(|at| start + at) else {
        return fallback;
    };
    let quote = text.as_bytes()[open];
    let bytes = text.as_bytes();
    let mut at = open + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' if quote == b'"' => at += 2,
            b'\'' if quote == b'\'' && bytes.get(at + 1) == Some(&b'\'') => at += 2,
            byte if byte == quote => return at + 1,
            _ => at += 1,
        }
    }
    fallback
}

/// Converts the parser's character indices into byte offsets.
struct CharToByte(Option<Vec<usize>>);

impl CharToByte {
    fn new(text: &str) -> Self {
        if text.is_ascii() {
            return CharToByte(None);
        }
        let mut offsets: Vec<usize> = text.char_indices().map(|(at, _)| at).collect();
        offsets.push(text.len());
        CharToByte(Some(offsets))
    }

    fn of(&self, char_index: usize) -> usize {
        match &self.0 {
            None => char_index,
            Some(offsets) => offsets[char_index.min(offsets.len() - 1)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(doc: &Document, id: NodeId) -> &str {
        &doc.text()[doc.node(id).start..doc.node(id).end]
    }

    #[test]
    fn nodes_know_their_bytes_and_lines() {
        let text = "version: \"3.5\"  # quoted\nservices:\n  web:\n    ports: [\"80:80\", {target: 1}]\n    command: |\n      a\n      b\n\n    labels:\n      - a=b\n";
        let doc = Document::parse(text).unwrap();
        let root = doc.root();
        let version = doc.get(root, "version").unwrap();
        assert_eq!(slice(&doc, version.value), "\"3.5\"");
        assert_eq!(doc.scalar(version.value), Some("3.5"));
        let web = doc
            .get(doc.get(root, "services").unwrap().value, "web")
            .unwrap();
        assert_eq!(doc.line(web.key), 3);
        let ports = doc.get(web.value, "ports").unwrap().value;
        assert!(doc.node(ports).flow);
        assert_eq!(slice(&doc, ports), "[\"80:80\", {target: 1}]");
        let command = doc.get(web.value, "command").unwrap().value;
        // A block scalar starts at its content, not at its `|`.
        assert_eq!(slice(&doc, command), "a\n      b");
        let labels = doc.get(web.value, "labels").unwrap().value;
        assert!(!doc.node(labels).flow);
        assert_eq!(slice(&doc, labels), "- a=b");
        assert_eq!(doc.node(web.value).end, doc.node(labels).end);
    }

    #[test]
    fn aliases_and_merge_keys_resolve() {
        let text = "x: &base\n  a: 1\n  b: 2\ny: &more {c: 3}\nz:\n  <<: [*base, *more]\n  b: own\nw: *base\n";
        let doc = Document::parse(text).unwrap();
        let z = doc.get(doc.root(), "z").unwrap().value;
        let entries: Vec<(&str, &str, bool)> = doc
            .entries(z)
            .into_iter()
            .map(|e| {
                (
                    doc.scalar(e.key).unwrap(),
                    doc.scalar(e.value).unwrap(),
                    e.merged,
                )
            })
            .collect();
        assert_eq!(
            entries,
            [("b", "own", false), ("a", "1", true), ("c", "3", true)]
        );
        let w = doc.get(doc.root(), "w").unwrap().value;
        assert_eq!(doc.scalar(doc.get(w, "a").unwrap().value), Some("1"));
        assert!(
            doc.reachable(z)
                .contains(&doc.get(doc.root(), "x").unwrap().value)
        );
    }

    #[test]
    fn multibyte_text_keeps_byte_offsets() {
        let doc = Document::parse("a: \"é€\"\nb: ok # ü\n").unwrap();
        let b = doc.get(doc.root(), "b").unwrap().value;
        assert_eq!(slice(&doc, b), "ok");
        assert_eq!(doc.line(b), 2);
    }

    #[test]
    fn refuses_what_compose_refuses() {
        let duplicate = Document::parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(
            duplicate.to_string(),
            "line 3, column 1: duplicate key `a` (first at line 1)"
        );
        let two = Document::parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(two.line, 2);
        let broken = Document::parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(broken.line >= 2, "{broken}");
        assert_eq!(
            Document::parse("# only a comment\n").unwrap_err().message,
            "the file is empty"
        );
    }
}

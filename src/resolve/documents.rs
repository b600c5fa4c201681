//! The documents of a YAML text, for `-l/--selector`: the bytes each one
//! spans and its `metadata.labels`, read from saphyr-parser events.
//!
//! The documents partition the text: the first starts at byte 0 (leading
//! comments included), every later one at its own start (its `---` marker
//! when it has one), so the kept ones can be printed byte for byte.
//! Each document becomes a small node arena; aliases point at the anchored
//! node instead of copying it, so an alias bomb costs nothing.

use std::collections::HashMap;
use std::ops::Range;

use anyhow::Result;
use saphyr_parser::{Event, Parser, ScalarStyle};

use super::scan::{CharOffsets, yaml_error};
use super::selector::Labels;

/// One document of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Its bytes, from its start to the next document's start.
    pub range: Range<usize>,
    /// Whether it opens with a `---` marker.
    pub explicit_start: bool,
    /// Whether it holds nothing (no node, or an empty plain scalar).
    pub empty: bool,
    /// `metadata.labels` (key, value) in order, string and number scalars
    /// alike; empty when the path is not mappings all the way.
    pub labels: Labels,
}

enum Node {
    Scalar {
        value: String,
        plain: bool,
    },
    /// Key and value nodes, in order.
    Map(Vec<(usize, usize)>),
    /// A sequence (its items are not kept), or an alias to no known anchor:
    /// nothing that can hold labels.
    Other,
}

/// An open collection and, for a mapping, its key awaiting a value.
struct Open {
    node: usize,
    key: Option<usize>,
}

/// Every document of `text`, in order. Invalid YAML is an error naming its
/// line and column.
pub fn split(text: &str) -> Result<Vec<Document>> {
    let offsets = CharOffsets::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut documents: Vec<Document> = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut anchors: HashMap<usize, usize> = HashMap::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<usize> = None;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|err| yaml_error(&err))?;
        let done = match event {
            Event::DocumentStart(explicit) => {
                // Never before the previous document's start, whatever the
                // span says, so that the ranges stay a partition.
                let start = documents.last().map_or(0, |last| {
                    offsets.byte(span.start.index()).max(last.range.start)
                });
                if let Some(last) = documents.last_mut() {
                    last.range.end = start;
                }
                documents.push(Document {
                    range: start..text.len(),
                    explicit_start: explicit,
                    empty: true,
                    labels: Vec::new(),
                });
                nodes.clear();
                anchors.clear();
                root = None;
                None
            }
            Event::DocumentEnd => {
                if let Some(document) = documents.last_mut() {
                    document.empty = root.is_none_or(|root| {
                        matches!(nodes.get(root), Some(Node::Scalar { value, plain: true }) if value.is_empty())
                    });
                    document.labels = root.map(|root| labels(&nodes, root)).unwrap_or_default();
                }
                None
            }
            Event::Scalar(value, style, anchor, _) => {
                nodes.push(Node::Scalar {
                    value: value.into_owned(),
                    plain: style == ScalarStyle::Plain,
                });
                anchor_last(&mut anchors, anchor, &nodes);
                Some(nodes.len() - 1)
            }
            Event::Alias(anchor) => Some(anchors.get(&anchor).copied().unwrap_or_else(|| {
                nodes.push(Node::Other);
                nodes.len() - 1
            })),
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                let is_map = matches!(event, Event::MappingStart(..));
                nodes.push(if is_map {
                    Node::Map(Vec::new())
                } else {
                    Node::Other
                });
                anchor_last(&mut anchors, anchor, &nodes);
                stack.push(Open {
                    node: nodes.len() - 1,
                    key: None,
                });
                None
            }
            Event::MappingEnd | Event::SequenceEnd => stack.pop().map(|open| open.node),
            _ => None,
        };
        let Some(done) = done else { continue };
        match stack.last_mut() {
            None => root = Some(done),
            Some(open) => match open.key.take() {
                None => open.key = Some(done),
                Some(key) => {
                    if let Some(Node::Map(entries)) = nodes.get_mut(open.node) {
                        entries.push((key, done));
                    }
                }
            },
        }
        // A sequence's items are not kept: only mappings lead to labels.
        if let Some(open) = stack.last_mut()
            && matches!(nodes.get(open.node), Some(Node::Other))
        {
            open.key = None;
        }
    }
    Ok(documents)
}

fn anchor_last(anchors: &mut HashMap<usize, usize>, anchor: usize, nodes: &[Node]) {
    if anchor != 0 {
        anchors.insert(anchor, nodes.len() - 1);
    }
}

/// `metadata.labels` of the document rooted at `root`.
fn labels(nodes: &[Node], root: usize) -> Labels {
    let Some(labels) = get(nodes, root, "metadata").and_then(|m| get(nodes, m, "labels")) else {
        return Vec::new();
    };
    let Some(Node::Map(entries)) = nodes.get(labels) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|&(key, value)| Some((scalar(nodes, key)?, scalar(nodes, value)?)))
        .collect()
}

/// The value of `key` in the mapping `map` (the last one, if repeated).
fn get(nodes: &[Node], map: usize, key: &str) -> Option<usize> {
    let Some(Node::Map(entries)) = nodes.get(map) else {
        return None;
    };
    entries
        .iter()
        .rev()
        .find(|&&(k, _)| scalar(nodes, k).as_deref() == Some(key))
        .map(|&(_, value)| value)
}

fn scalar(nodes: &[Node], node: usize) -> Option<String> {
    match nodes.get(node) {
        Some(Node::Scalar { value, .. }) => Some(value.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::selector::labels as l;

    fn parts(text: &str) -> Vec<(&str, bool, bool, Labels)> {
        split(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .into_iter()
            .map(|d| (&text[d.range], d.explicit_start, d.empty, d.labels))
            .collect()
    }

    #[test]
    fn documents_partition_the_text_with_their_labels() {
        let text = "# head\nkind: A\nmetadata:\n  labels: {app: web, n: 1}\n---\n# b\nkind: B\nmetadata:\n  name: b\n...\n--- !!map\nmetadata: {labels: {'app': \"db\"}}\n---\n";
        assert_eq!(
            parts(text),
            [
                (
                    "# head\nkind: A\nmetadata:\n  labels: {app: web, n: 1}\n",
                    false,
                    false,
                    l(&[("app", "web"), ("n", "1")])
                ),
                (
                    "---\n# b\nkind: B\nmetadata:\n  name: b\n...\n",
                    true,
                    false,
                    l(&[])
                ),
                (
                    "--- !!map\nmetadata: {labels: {'app': \"db\"}}\n",
                    true,
                    false,
                    l(&[("app", "db")])
                ),
                ("---\n", true, true, l(&[])),
            ]
        );
    }

    #[test]
    fn aliases_and_odd_shapes() {
        let text = "x: &l {app: web}\nmetadata:\n  labels: *l\n---\n- metadata: {labels: {app: web}}\n---\nmetadata: [labels]\n---\n''\n";
        let got = parts(text);
        assert_eq!(got[0].3, l(&[("app", "web")]));
        assert_eq!(got[1].3, l(&[]));
        assert_eq!(got[2].3, l(&[]));
        assert!(!got[3].2, "a quoted empty string is not an empty document");
        assert!(parts("").is_empty());
        let json = parts("{\"metadata\": {\"labels\": {\"app\": \"web\"}}}");
        assert_eq!(json.len(), 1);
        assert_eq!(json[0].3, l(&[("app", "web")]));
    }

    #[test]
    fn invalid_yaml_is_an_error() {
        let err = split("a: b\n  c: d\n").unwrap_err().to_string();
        assert!(err.contains("invalid YAML at line 2"), "{err}");
    }
}

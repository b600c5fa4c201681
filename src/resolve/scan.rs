//! Finding string scalars in YAML text without re-emitting it: saphyr-parser
//! walks the events, and each scalar whose value starts with a prefix is
//! mapped back to the exact bytes that spell it, so that a caller can replace
//! those bytes and nothing else.
//!
//! saphyr's spans count characters, not bytes; a scalar's span starts at its
//! properties (`&anchor`, `!tag`) and, for quoted scalars, may run past the
//! closing quote. So the byte range is computed here: properties skipped,
//! quoted scalars measured by their own escaping rules.

use std::ops::Range;

use anyhow::{Result, anyhow, bail};
use saphyr_parser::{Event, Parser, ScalarStyle};

/// A string scalar whose value starts with the prefix asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The scalar's value (escapes decoded, lines folded).
    pub value: String,
    /// The bytes to replace: the whole plain scalar, or what lies between
    /// the quotes of a quoted one (so the quoting style is kept).
    pub range: Range<usize>,
    /// 1-based line of the scalar.
    pub line: usize,
    /// 1-based column of the scalar, in characters.
    pub column: usize,
}

/// Every scalar of `text` (all documents) whose value starts with `prefix`,
/// in text order. Invalid YAML is an error naming its line and column.
pub fn find(text: &str, prefix: &str) -> Result<Vec<Found>> {
    find_where(text, prefix, |_| true)
}

/// Like [`find`], but only the scalars whose byte offset `wanted` accepts
/// (those of the documents `-l` keeps): the others are neither returned nor
/// checked.
pub fn find_where(text: &str, prefix: &str, wanted: impl Fn(usize) -> bool) -> Result<Vec<Found>> {
    let offsets = CharOffsets::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut found = Vec::new();
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|err| yaml_error(&err))?;
        let Event::Scalar(value, style, _, _) = event else {
            continue;
        };
        if !value.starts_with(prefix) {
            continue;
        }
        let start = skip_properties(text, offsets.byte(span.start.index()));
        if !wanted(start) {
            continue;
        }
        let (line, column) = line_column(text, start);
        let at = |message: &str| anyhow!("line {line}, column {column}: {message}");
        let range = match style {
            ScalarStyle::Plain => {
                let range = start..offsets.byte(span.end.index());
                let raw = &text[range.clone()];
                // A single-line plain scalar is spelled exactly as its value.
                if !raw.contains('\n') && raw != value {
                    return Err(at(&format!(
                        "cannot locate the scalar `{value}` in the text (found `{raw}`)"
                    )));
                }
                range
            }
            ScalarStyle::SingleQuoted => quoted_content(text, start, '\'')
                .ok_or_else(|| at(&format!("cannot find the quotes of `{value}`")))?,
            ScalarStyle::DoubleQuoted => quoted_content(text, start, '"')
                .ok_or_else(|| at(&format!("cannot find the quotes of `{value}`")))?,
            ScalarStyle::Literal | ScalarStyle::Folded => bail!(
                "line {line}, column {column}: `{}` is a block scalar (`|` or `>`); write it as a plain or quoted scalar",
                value.trim_end()
            ),
        };
        found.push(Found {
            value: value.into_owned(),
            range,
            line,
            column,
        });
    }
    Ok(found)
}

/// A parse error naming its line and column.
pub(super) fn yaml_error(err: &saphyr_parser::ScanError) -> anyhow::Error {
    anyhow!(
        "invalid YAML at line {}, column {}: {}",
        err.marker().line(),
        err.marker().col() + 1,
        err.info()
    )
}

/// Character index → byte offset (the identity for ASCII text).
pub(super) struct CharOffsets {
    /// Byte offset of every character, plus the text length at the end;
    /// `None` when the text is ASCII.
    table: Option<Vec<usize>>,
    len: usize,
}

impl CharOffsets {
    pub(super) fn new(text: &str) -> CharOffsets {
        let table = (!text.is_ascii()).then(|| {
            text.char_indices()
                .map(|(offset, _)| offset)
                .chain([text.len()])
                .collect()
        });
        CharOffsets {
            table,
            len: text.len(),
        }
    }

    pub(super) fn byte(&self, index: usize) -> usize {
        match &self.table {
            Some(table) => table.get(index).copied().unwrap_or(self.len),
            None => index.min(self.len),
        }
    }
}

/// The offset of the scalar itself after its node properties: anchors,
/// tags, and the blanks, line breaks and comments that may separate them.
fn skip_properties(text: &str, mut at: usize) -> usize {
    let bytes = text.as_bytes();
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b' ' | b'\t' | b'\r' | b'\n' => at += 1,
            b'#' => at = text[at..].find('\n').map_or(text.len(), |n| at + n),
            b'&' | b'!' => {
                at = text[at..]
                    .find(|c: char| c.is_whitespace() || ",[]{}".contains(c))
                    .map_or(text.len(), |n| at + n)
            }
            _ => break,
        }
    }
    at
}

/// The bytes between the quotes of the quoted scalar opening at `start`:
/// `''` escapes a single quote, a backslash escapes the next character in
/// double quotes.
fn quoted_content(text: &str, start: usize, quote: char) -> Option<Range<usize>> {
    if !text[start..].starts_with(quote) {
        return None;
    }
    let body = start + quote.len_utf8();
    let mut chars = text[body..].char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        if quote == '"' && c == '\\' {
            chars.next();
        } else if c == quote {
            if quote == '\'' && chars.peek().is_some_and(|&(_, next)| next == '\'') {
                chars.next();
            } else {
                return Some(body..body + offset);
            }
        }
    }
    None
}

/// 1-based line and character column of a byte offset.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "krust://";

    /// (value, the replaced bytes, line, column) of each hit.
    fn hits(text: &str) -> Vec<(String, String, usize, usize)> {
        find(text, P)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .into_iter()
            .map(|f| (f.value, text[f.range].to_string(), f.line, f.column))
            .collect()
    }

    fn one(text: &str) -> (String, String) {
        let all = hits(text);
        assert_eq!(all.len(), 1, "{text:?}: {all:?}");
        (all[0].0.clone(), all[0].1.clone())
    }

    #[test]
    fn scalar_styles_give_the_bytes_to_replace() {
        let table: &[(&str, &str, &str)] = &[
            ("image: krust://./a\n", "krust://./a", "krust://./a"),
            ("image: krust://./a # c\n", "krust://./a", "krust://./a"),
            ("image: krust://./a   \n", "krust://./a", "krust://./a"),
            ("image: 'krust://./a' \n", "krust://./a", "krust://./a"),
            (
                "image: \"krust://./a\"  # x\n",
                "krust://./a",
                "krust://./a",
            ),
            ("image: 'krust://it''s'\n", "krust://it's", "krust://it''s"),
            (
                "image: \"krust://a\\\"b\\\\\" \n",
                "krust://a\"b\\",
                "krust://a\\\"b\\\\",
            ),
            ("image: \"krust://\\x61\"\n", "krust://a", "krust://\\x61"),
            ("image: &img krust://./a\n", "krust://./a", "krust://./a"),
            ("image: !!str 'krust://./a'\n", "krust://./a", "krust://./a"),
            (
                "image: &a # why\n  !!str\n  \"krust://./a\"\n",
                "krust://./a",
                "krust://./a",
            ),
            ("{x: \"krust://a\",y: 1}", "krust://a", "krust://a"),
            (
                "image: krust://./a\r\nx: 1\r\n",
                "krust://./a",
                "krust://./a",
            ),
            (
                "image: \"krust://./a\"\r\nx: 1\r\n",
                "krust://./a",
                "krust://./a",
            ),
            ("krust://key: value\n", "krust://key", "krust://key"),
            (
                "image: \"krust://multi\n  line\"\n",
                "krust://multi line",
                "krust://multi\n  line",
            ),
            (
                "image: krust://plain\n  more\n",
                "krust://plain more",
                "krust://plain\n  more",
            ),
            ("{\"image\": \"krust://./a\"}", "krust://./a", "krust://./a"),
        ];
        for (text, value, raw) in table {
            assert_eq!(one(text), (value.to_string(), raw.to_string()), "{text:?}");
        }
    }

    #[test]
    fn flow_sequence_items_each_found() {
        let text = "args: [krust://a, 'krust://b',\"krust://c\" ]\n";
        let raws: Vec<(String, usize)> = hits(text).into_iter().map(|h| (h.1, h.3)).collect();
        assert_eq!(
            raws,
            [
                ("krust://a".to_string(), 8),
                ("krust://b".to_string(), 19),
                ("krust://c".to_string(), 31)
            ]
        );
    }

    #[test]
    fn multibyte_text_maps_characters_to_bytes() {
        let text = "\u{feff}# é ü 日本\nname: \"ça\"\nimage: 'krust://./日本'\nx: [é, krust://b]\n";
        let all = hits(text);
        assert_eq!(
            all,
            [
                ("krust://./日本".into(), "krust://./日本".into(), 3, 8),
                ("krust://b".into(), "krust://b".into(), 4, 8),
            ]
        );
    }

    #[test]
    fn every_document_and_alias_target_once() {
        let text = "a: &x krust://one\nb: *x\n---\nc: krust://two\n...\n---\n- krust://one\n";
        let values: Vec<(String, usize)> = hits(text).into_iter().map(|h| (h.0, h.2)).collect();
        assert_eq!(
            values,
            [
                ("krust://one".to_string(), 1),
                ("krust://two".to_string(), 4),
                ("krust://one".to_string(), 7)
            ]
        );
    }

    #[test]
    fn other_scalars_are_ignored() {
        assert!(
            hits("a: b\nc: 'krust:/x'\nd: \"x krust://y\"\ne: KRUST://z\n# krust://c\n").is_empty()
        );
        assert!(hits("").is_empty());
    }

    #[test]
    fn invalid_yaml_names_line_and_column() {
        let err = find("a: b\n  c: d\n", P).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid YAML at line 2, column 4:"),
            "{err}"
        );
        let err = find("a: [b\n", P).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid YAML at line 2, column 1:"),
            "{err}"
        );
        let err = find("a: \"open\n", P).unwrap_err().to_string();
        assert!(err.contains("line 1, column 4"), "{err}");
    }

    /// Mutations of real manifests (bytes dropped, repeated, swapped for
    /// YAML's punctuation, lines shuffled) never panic the scanner, and
    /// every range it returns lies on character boundaries of the text.
    #[test]
    fn mutated_yaml_never_panics() {
        let seeds = [
            include_str!("../../tests/fixtures/resolve/golden/in/10-deployment.yaml"),
            include_str!("../../tests/fixtures/resolve/golden/in/20-crlf.yaml"),
            include_str!("../../tests/fixtures/resolve/golden/in/30-pod.json"),
            include_str!("../../tests/fixtures/resolve/golden/in/40-config.yml"),
            "a: &x 'krust://one'\nb: *x\n---\n- \"krust://t\\\"wo\"\n- !!str krust://3 # c\n",
            "\u{feff}é: [krust://日本, {k: 'krust://ü''x'}]\n",
        ];
        const PIECES: &[&str] = &[
            "'",
            "\"",
            "\\",
            "#",
            "&a ",
            "!t ",
            "*a",
            ":",
            " ",
            "\n",
            "\r\n",
            "\t",
            "-",
            "[",
            "]",
            "{",
            "}",
            ",",
            "?",
            "|",
            ">",
            "---",
            "...",
            "krust://",
            "é",
            "日",
            "\u{feff}",
            "%YAML 1.2\n",
        ];
        let mut rng = fastrand::Rng::with_seed(14);
        let mut cases = 0;
        for seed in seeds {
            for _ in 0..400 {
                let mut chars: Vec<String> = seed.chars().map(String::from).collect();
                for _ in 0..rng.usize(1..6) {
                    let at = rng.usize(0..=chars.len());
                    match rng.u8(0..4) {
                        0 if at < chars.len() => {
                            chars.remove(at);
                        }
                        1 => chars.insert(at, PIECES[rng.usize(0..PIECES.len())].to_string()),
                        2 if at < chars.len() => {
                            let copy = chars[at..chars.len().min(at + rng.usize(1..40))].concat();
                            chars.insert(at, copy);
                        }
                        _ => chars.truncate(at),
                    }
                }
                let text = chars.concat();
                cases += 1;
                if let Ok(found) = find(&text, P) {
                    for hit in found {
                        assert!(
                            text.get(hit.range.clone()).is_some(),
                            "{text:?}: range {:?} is not on character boundaries",
                            hit.range
                        );
                    }
                }
                // The documents `-l` keeps must partition the text.
                if let Ok(documents) = super::super::documents::split(&text) {
                    let mut at = 0;
                    for document in &documents {
                        assert_eq!(document.range.start, at, "{text:?}: {documents:?}");
                        assert!(
                            text.get(document.range.clone()).is_some(),
                            "{text:?}: {documents:?}"
                        );
                        at = document.range.end;
                    }
                    assert!(
                        documents.is_empty() || at == text.len(),
                        "{text:?}: {documents:?}"
                    );
                }
            }
        }
        assert_eq!(cases, seeds.len() * 400);
    }

    #[test]
    fn block_scalars_are_refused() {
        let err = find("x: 1\nimage: |\n  krust://./a\n", P)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3, column 3"), "{err}");
        assert!(err.contains("block scalar"), "{err}");
    }
}

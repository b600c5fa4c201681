//! Writing the resolved text: the input with only the given byte ranges
//! replaced, files joined in input order, each followed by a `---` line.

use std::ops::Range;

/// `text` with each range replaced by its new text. Ranges must be in text
/// order and must not overlap (as [`super::scan::find`] returns them).
pub fn splice(text: &str, replacements: &[(Range<usize>, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, new) in replacements {
        out.push_str(&text[at..range.start]);
        out.push_str(new);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Appends one file's text and the `---` line that follows it, ending the
/// last line first if the file does not. A file with CRLF line endings gets
/// CRLF ones here too.
pub fn push_file(out: &mut String, text: &str) {
    let newline = newline_of(text);
    out.push_str(text);
    if !text.is_empty() && !text.ends_with('\n') {
        out.push_str(newline);
    }
    out.push_str("---");
    out.push_str(newline);
}

/// The line ending of `text`: CRLF when it has any, else LF.
pub fn newline_of(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_only_the_ranges() {
        let text = "a: krust://x # c\nb: 'krust://y'\n";
        let out = splice(
            text,
            &[(3..12, "reg/x@sha256:1"), (21..30, "reg/y@sha256:2")],
        );
        assert_eq!(out, "a: reg/x@sha256:1 # c\nb: 'reg/y@sha256:2'\n");
        assert_eq!(splice(text, &[]), text);
    }

    #[test]
    fn files_end_with_a_separator_line() {
        let mut out = String::new();
        push_file(&mut out, "a: 1\n");
        push_file(&mut out, "b: 2");
        push_file(&mut out, "c: 3\r\nd: 4");
        push_file(&mut out, "");
        assert_eq!(out, "a: 1\n---\nb: 2\n---\nc: 3\r\nd: 4\r\n---\r\n---\n");
    }
}

//! The document store: the text of each open document in a rope, its version, and exact
//! conversions between positions in the three LSP encodings (utf-8, utf-16, utf-32) and char
//! offsets.
//!
//! Positions from outside are clamped, never trusted: a line past the end of the file means the
//! end of the file, a column past the end of a line means the end of that line (as the LSP
//! specification asks), and a utf-16 column inside a surrogate pair or a utf-8 column inside a
//! multi-byte character rounds down to the character's start.

use std::ops::Range;

use ropey::Rope;

/// How the client counts columns (`positionEncoding` in LSP terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PositionEncoding {
    /// Bytes of UTF-8.
    Utf8,
    /// UTF-16 code units: the LSP default.
    #[default]
    Utf16,
    /// Unicode scalar values.
    Utf32,
}

impl PositionEncoding {
    /// Parses the LSP name of an encoding (`"utf-8"`, `"utf-16"`, `"utf-32"`).
    pub fn from_lsp_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Self::Utf8),
            "utf-16" | "utf16" => Some(Self::Utf16),
            "utf-32" | "utf32" => Some(Self::Utf32),
            _ => None,
        }
    }

    /// The LSP name of the encoding.
    pub fn lsp_name(self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Utf16 => "utf-16",
            Self::Utf32 => "utf-32",
        }
    }
}

/// A zero-based line and a column counted in some [`PositionEncoding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct TextPos {
    /// Zero-based line.
    pub line: u32,
    /// Column in the negotiated encoding.
    pub col: u32,
}

impl TextPos {
    /// A position from a line and a column.
    pub fn new(line: u32, col: u32) -> Self {
        Self { line, col }
    }
}

/// Why a change could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocError {
    /// The change's start lies after its end.
    #[error("invalid range: start {start:?} is after end {end:?}")]
    InvertedRange {
        /// The start as sent.
        start: TextPos,
        /// The end as sent.
        end: TextPos,
    },
    /// The change names a line the document does not have.
    #[error("invalid range: line {line} is past the end of the document ({lines} lines)")]
    PastTheEnd {
        /// The line as sent.
        line: u32,
        /// Lines in the document.
        lines: usize,
    },
}

/// Where a change landed, in char offsets, so that anything anchored in the text can be moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeSpan {
    /// First char replaced.
    pub start: usize,
    /// One past the last char replaced (in the text before the change).
    pub old_end: usize,
    /// Chars inserted.
    pub new_len: usize,
}

impl ChangeSpan {
    /// How far text after the change moved (positive when it grew).
    pub fn delta(&self) -> isize {
        self.new_len as isize - (self.old_end - self.start) as isize
    }
}

/// One open document.
#[derive(Debug, Clone)]
pub struct Document {
    rope: Rope,
    version: i32,
    language_id: String,
}

impl Document {
    /// A document as the client opened it.
    pub fn new(text: &str, version: i32, language_id: &str) -> Self {
        Self {
            rope: Rope::from_str(text),
            version,
            language_id: language_id.to_owned(),
        }
    }

    /// The text (a cheap clone shares the rope's nodes).
    pub fn rope(&self) -> &Rope {
        &self.rope
    }

    /// The version the client last sent.
    pub fn version(&self) -> i32 {
        self.version
    }

    /// The client's language id (`rust`, `python`, ...).
    pub fn language_id(&self) -> &str {
        &self.language_id
    }

    /// Sets the version after a batch of changes.
    pub fn set_version(&mut self, version: i32) {
        self.version = version;
    }

    /// Applies one content change: a range replacement, or the whole text when `range` is
    /// `None`. Positions are clamped; a range whose start is after its end is rejected.
    pub fn apply_change(
        &mut self,
        range: Option<(TextPos, TextPos)>,
        text: &str,
        enc: PositionEncoding,
    ) -> Result<ChangeSpan, DocError> {
        let (start, end) = match range {
            None => (0, self.rope.len_chars()),
            Some((s, e)) => {
                // Columns past a line's end are clamped to it (as LSP says); a line past the
                // document's end means the client holds another text (one past the last
                // line, at column 0, is the end of the document).
                let lines = self.rope.len_lines();
                for p in [s, e] {
                    let line = p.line as usize;
                    if line > lines || (line == lines && p.col > 0) {
                        return Err(DocError::PastTheEnd {
                            line: p.line,
                            lines,
                        });
                    }
                }
                let start = to_char(&self.rope, s, enc);
                let end = to_char(&self.rope, e, enc);
                if start > end {
                    return Err(DocError::InvertedRange { start: s, end: e });
                }
                (start, end)
            }
        };
        self.rope.remove(start..end);
        self.rope.insert(start, text);
        Ok(ChangeSpan {
            start,
            old_end: end,
            new_len: text.chars().count(),
        })
    }
}

/// Number of chars in a line's terminator (`\n`, `\r\n`, `\r`) at the end of `line`.
fn eol_len(rope: &Rope, line: usize) -> usize {
    let slice = rope.line(line);
    let n = slice.len_chars();
    if n == 0 {
        return 0;
    }
    match slice.char(n - 1) {
        '\n' if n >= 2 && slice.char(n - 2) == '\r' => 2,
        '\n' | '\r' => 1,
        _ => 0,
    }
}

/// The line holding char `char_idx`; an offset past the end is on the last line (the one
/// clamped lookup, for offsets computed against an older text or read from a model).
pub fn line_of(rope: &Rope, char_idx: usize) -> usize {
    rope.char_to_line(char_idx.min(rope.len_chars()))
}

/// Char offset of the end of a line's content (before its terminator).
pub fn line_content_end(rope: &Rope, line: usize) -> usize {
    rope.line_to_char(line) + rope.line(line).len_chars() - eol_len(rope, line)
}

/// Converts a position to a char offset, clamping as the module documentation says.
pub fn to_char(rope: &Rope, pos: TextPos, enc: PositionEncoding) -> usize {
    let line = pos.line as usize;
    if line >= rope.len_lines() {
        return rope.len_chars();
    }
    let line_start = rope.line_to_char(line);
    let content_end = line_content_end(rope, line);
    let col = pos.col as usize;
    match enc {
        PositionEncoding::Utf32 => (line_start + col).min(content_end),
        PositionEncoding::Utf8 => {
            let start_byte = rope.char_to_byte(line_start);
            let end_byte = rope.char_to_byte(content_end);
            rope.byte_to_char((start_byte + col).min(end_byte))
        }
        PositionEncoding::Utf16 => {
            let start_cu = rope.char_to_utf16_cu(line_start);
            let end_cu = rope.char_to_utf16_cu(content_end);
            rope.utf16_cu_to_char((start_cu + col).min(end_cu))
        }
    }
}

/// Converts a char offset (clamped to the text) to a position in the given encoding.
pub fn from_char(rope: &Rope, char_idx: usize, enc: PositionEncoding) -> TextPos {
    let c = char_idx.min(rope.len_chars());
    let line = rope.char_to_line(c);
    let line_start = rope.line_to_char(line);
    let col = match enc {
        PositionEncoding::Utf32 => c - line_start,
        PositionEncoding::Utf8 => rope.char_to_byte(c) - rope.char_to_byte(line_start),
        PositionEncoding::Utf16 => rope.char_to_utf16_cu(c) - rope.char_to_utf16_cu(line_start),
    };
    TextPos::new(
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

/// The char range of whole lines `first..=last` (zero-based, clamped), including the last
/// line's terminator.
pub fn line_span(rope: &Rope, first: usize, last: usize) -> Range<usize> {
    let lines = rope.len_lines();
    let first = first.min(lines.saturating_sub(1));
    let last = last.clamp(first, lines.saturating_sub(1));
    let start = rope.line_to_char(first);
    let end = if last + 1 < lines {
        rope.line_to_char(last + 1)
    } else {
        rope.len_chars()
    };
    start..end
}

/// Widens a range given as two positions to whole lines and returns the zero-based first and
/// last line. A range that ends at column 0 of a later line does not include that line.
pub fn widen_to_lines(rope: &Rope, start: TextPos, end: TextPos) -> (usize, usize) {
    let last_line = rope.len_lines().saturating_sub(1);
    let (start, end) = if start <= end {
        (start, end)
    } else {
        (end, start)
    };
    let first = (start.line as usize).min(last_line);
    let mut last = (end.line as usize).min(last_line);
    if end.col == 0 && last > first && (end.line as usize) <= last_line {
        last -= 1;
    }
    // A selection that ends on the empty line after a trailing newline is about the line before.
    if last > first && rope.line(last).len_chars() == 0 {
        last -= 1;
    }
    (first, last)
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::text::text_strategy::text;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn positions_round_trip_in_every_encoding(t in text()) {
            let rope = Rope::from_str(&t);
            for enc in [PositionEncoding::Utf8, PositionEncoding::Utf16, PositionEncoding::Utf32] {
                for c in 0..=rope.len_chars() {
                    // The point between `\r` and `\n` is inside a line break: no position
                    // names it.
                    let inside_crlf = c > 0
                        && rope.get_char(c - 1) == Some('\r')
                        && rope.get_char(c) == Some('\n');
                    if inside_crlf {
                        continue;
                    }
                    let p = from_char(&rope, c, enc);
                    prop_assert_eq!(to_char(&rope, p, enc), c, "{:?} at {}", enc, c);
                    prop_assert_eq!(from_char(&rope, to_char(&rope, p, enc), enc), p);
                }
            }
        }

        #[test]
        fn any_change_either_applies_or_is_refused_and_never_panics(
            t in text(), new in text(), l0 in 0u32..12, c0 in 0u32..12, l1 in 0u32..12, c1 in 0u32..12,
        ) {
            let mut doc = Document::new(&t, 1, "rust");
            let r = doc.apply_change(
                Some((TextPos { line: l0, col: c0 }, TextPos { line: l1, col: c1 })),
                &new,
                PositionEncoding::Utf16,
            );
            if r.is_err() {
                prop_assert_eq!(doc.rope().to_string(), t, "a refused change changes nothing");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PositionEncoding::*;

    fn rope(s: &str) -> Rope {
        Rope::from_str(s)
    }

    #[test]
    fn emoji_is_two_utf16_units_four_utf8_bytes_one_char() {
        let r = rope("a😀b\n");
        // 'b' is char 2.
        assert_eq!(to_char(&r, TextPos::new(0, 3), Utf16), 2);
        assert_eq!(to_char(&r, TextPos::new(0, 5), Utf8), 2);
        assert_eq!(to_char(&r, TextPos::new(0, 2), Utf32), 2);
        assert_eq!(from_char(&r, 2, Utf16), TextPos::new(0, 3));
        assert_eq!(from_char(&r, 2, Utf8), TextPos::new(0, 5));
        assert_eq!(from_char(&r, 2, Utf32), TextPos::new(0, 2));
    }

    #[test]
    fn a_column_inside_a_surrogate_pair_rounds_down_to_the_emoji() {
        let r = rope("a😀b");
        assert_eq!(to_char(&r, TextPos::new(0, 2), Utf16), 1);
        assert_eq!(to_char(&r, TextPos::new(0, 3), Utf8), 1);
    }

    #[test]
    fn cjk_is_one_utf16_unit_three_utf8_bytes() {
        let r = rope("let 名前 = 1;\n");
        let eq = "let 名前 ".chars().count();
        assert_eq!(to_char(&r, TextPos::new(0, 7), Utf16), eq);
        assert_eq!(to_char(&r, TextPos::new(0, 11), Utf8), eq);
        assert_eq!(from_char(&r, eq, Utf8), TextPos::new(0, 11));
    }

    #[test]
    fn crlf_counts_as_one_line_break_and_is_not_part_of_the_line() {
        let r = rope("ab\r\ncd\r\n");
        assert_eq!(r.len_lines(), 3);
        assert_eq!(to_char(&r, TextPos::new(1, 0), Utf16), 4);
        // Past the end of line 0 clamps before the \r.
        assert_eq!(to_char(&r, TextPos::new(0, 99), Utf16), 2);
        assert_eq!(line_content_end(&r, 1), 6);
    }

    #[test]
    fn lone_cr_is_a_line_break_but_unicode_separators_are_not() {
        let r = rope("a\rb\u{2028}c\n");
        assert_eq!(r.len_lines(), 3);
        assert_eq!(from_char(&r, 2, Utf16), TextPos::new(1, 0));
    }

    #[test]
    fn last_line_without_newline() {
        let r = rope("one\ntwo");
        assert_eq!(to_char(&r, TextPos::new(1, 3), Utf16), 7);
        assert_eq!(to_char(&r, TextPos::new(1, 50), Utf16), 7);
        assert_eq!(line_span(&r, 1, 1), 4..7);
    }

    #[test]
    fn positions_past_the_end_of_file_clamp_to_the_end() {
        let r = rope("one\ntwo\n");
        assert_eq!(to_char(&r, TextPos::new(99, 0), Utf8), 8);
        assert_eq!(to_char(&r, TextPos::new(u32::MAX, u32::MAX), Utf16), 8);
        assert_eq!(from_char(&r, 1000, Utf16), TextPos::new(2, 0));
    }

    #[test]
    fn incremental_changes_apply_in_order() {
        let mut d = Document::new("fn main() {}\n", 1, "rust");
        d.apply_change(
            Some((TextPos::new(0, 11), TextPos::new(0, 11))),
            "\n    x();\n",
            Utf16,
        )
        .unwrap();
        d.apply_change(Some((TextPos::new(1, 4), TextPos::new(1, 5))), "y", Utf16)
            .unwrap();
        assert_eq!(d.rope().to_string(), "fn main() {\n    y();\n}\n");
        let span = d.apply_change(None, "replaced", Utf16).unwrap();
        assert_eq!(span.start, 0);
        assert_eq!(d.rope().to_string(), "replaced");
    }

    #[test]
    fn an_inverted_range_is_rejected_and_the_text_kept() {
        let mut d = Document::new("abc", 1, "text");
        let err = d
            .apply_change(Some((TextPos::new(0, 2), TextPos::new(0, 1))), "x", Utf16)
            .unwrap_err();
        assert!(matches!(err, DocError::InvertedRange { .. }));
        assert_eq!(d.rope().to_string(), "abc");
    }

    #[test]
    fn widening_to_lines_drops_a_trailing_column_zero_line() {
        let r = rope("a\nb\nc\n");
        assert_eq!(
            widen_to_lines(&r, TextPos::new(0, 1), TextPos::new(2, 0)),
            (0, 1)
        );
        assert_eq!(
            widen_to_lines(&r, TextPos::new(1, 0), TextPos::new(1, 0)),
            (1, 1)
        );
        assert_eq!(
            widen_to_lines(&r, TextPos::new(0, 0), TextPos::new(9, 0)),
            (0, 2)
        );
        assert_eq!(
            widen_to_lines(&r, TextPos::new(2, 1), TextPos::new(0, 0)),
            (0, 2)
        );
    }
}

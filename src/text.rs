//! Small text helpers shared across layers: the common prefix and suffix of two sequences, and
//! a short excerpt of outside text for an error message.

/// Lengths of the longest common prefix and, in what remains, the longest common suffix of
/// `a` and `b`.
pub fn common_affixes<T: PartialEq>(a: &[T], b: &[T]) -> (usize, usize) {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let max_suffix = a.len().min(b.len()).saturating_sub(prefix);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max_suffix)
        .take_while(|(x, y)| x == y)
        .count();
    (prefix, suffix)
}

/// Outside text (a model's reply, a server's body) for a message: on one line, control
/// characters escaped (a newline shows as `\n`, an escape sequence cannot reach a terminal),
/// at most `max` chars of it (with `…` when cut); `None` when it is blank.
pub fn excerpt(text: &str, max: usize) -> Option<String> {
    if text.trim().is_empty() {
        return None;
    }
    let mut out = String::new();
    for (shown, c) in text.trim().chars().enumerate() {
        if shown >= max {
            out.push('…');
            return Some(out);
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod text_strategy {
    use proptest::prelude::*;

    /// Texts built of the pieces that break position code: line breaks of every kind,
    /// multi-byte and astral chars, empty lines.
    pub(crate) fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("a"),
                Just("bc"),
                Just(" "),
                Just("\n"),
                Just("\r\n"),
                Just("\r"),
                Just("é"),
                Just("😀"),
                Just("合"),
                Just("\t"),
                Just("}"),
            ],
            0..40,
        )
        .prop_map(|v| v.concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affixes_never_overlap() {
        assert_eq!(common_affixes(b"abcab", b"ab"), (2, 0));
        assert_eq!(common_affixes(b"xay", b"xby"), (1, 1));
        assert_eq!(common_affixes(b"", b"a"), (0, 0));
    }

    #[test]
    fn excerpts_are_one_line_with_control_characters_escaped() {
        assert_eq!(
            excerpt("{\"findings\": [\n  {\u{1b}[31m", 80).as_deref(),
            Some("{\"findings\": [\\n  {\\u{1b}[31m")
        );
        let long = "é".repeat(500);
        assert_eq!(excerpt(&long, 80).unwrap().chars().count(), 81);
    }

    #[test]
    fn excerpts_are_cut_and_blank_is_none() {
        assert_eq!(excerpt("  ", 5), None);
        assert_eq!(excerpt("abcdef", 3).as_deref(), Some("abc…"));
        assert_eq!(excerpt("ab", 3).as_deref(), Some("ab"));
    }
}

/// `   12 | code` for each line, numbering from zero-based `first_line`.
pub fn number_lines(text: &str, first_line: usize) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let body = body.strip_suffix('\r').unwrap_or(body);
    body.split('\n')
        .enumerate()
        .map(|(i, l)| format!("{:>5} | {}", first_line + i + 1, l.trim_end_matches('\r')))
        .collect::<Vec<_>>()
        .join("\n")
}

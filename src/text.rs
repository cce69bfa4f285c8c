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

/// The first `max` chars of `text` (with `…` when cut), or `None` when it is blank.
pub fn excerpt(text: &str, max: usize) -> Option<String> {
    let t: String = text.chars().take(max).collect();
    if t.trim().is_empty() {
        None
    } else if t.len() < text.len() {
        Some(format!("{t}…"))
    } else {
        Some(t)
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
    fn excerpts_are_cut_and_blank_is_none() {
        assert_eq!(excerpt("  ", 5), None);
        assert_eq!(excerpt("abcdef", 3).as_deref(), Some("abc…"));
        assert_eq!(excerpt("ab", 3).as_deref(), Some("ab"));
    }
}

//! Turning a revised selection into minimal text edits: a line diff (`similar`) finds the
//! changed hunks, and each hunk is trimmed to the chars that really change. The user's
//! untouched lines are never rewritten, so their cursor, marks and folds survive.

use std::ops::Range;

use similar::DiffOp;

/// Replace the chars `range` (offsets in the document) with `new_text`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Edit {
    /// Char offsets in the document the revision was computed against.
    pub range: Range<usize>,
    /// The replacement.
    pub new_text: String,
}

/// Edits that turn `original` (which starts at char `base` of the document) into `revised`.
pub fn minimal_edits(original: &str, revised: &str, base: usize) -> Vec<Edit> {
    // Lines as the editor counts them (`\r\n`, `\n` and a lone `\r` each end one).
    let old_lines = split_lines(original);
    let new_lines = split_lines(revised);
    let ops = line_ops(&old_lines, &new_lines);
    // Char offset of each old line's start.
    let mut old_starts = Vec::with_capacity(old_lines.len() + 1);
    let mut acc = 0;
    for l in &old_lines {
        old_starts.push(acc);
        acc += l.chars().count();
    }
    old_starts.push(acc);

    // Merge adjacent changed ops into hunks of (old line range, new line range).
    let mut hunks: Vec<(Range<usize>, Range<usize>)> = Vec::new();
    for op in &ops {
        if let DiffOp::Equal { .. } = op {
            continue;
        }
        let (o, n) = (op.old_range(), op.new_range());
        match hunks.last_mut() {
            Some((lo, ln)) if lo.end == o.start && ln.end == n.start => {
                lo.end = o.end;
                ln.end = n.end;
            }
            _ => hunks.push((o, n)),
        }
    }

    hunks
        .into_iter()
        .map(|(o, n)| {
            let old: String = old_lines[o.clone()].concat();
            let new: String = new_lines[n].concat();
            let (skip, new_text) = trim_common(&old, &new);
            let start = base + old_starts[o.start] + skip.start;
            let end = base + old_starts[o.start] + skip.end;
            Edit {
                range: start..end,
                new_text,
            }
        })
        .collect()
}

/// The diff of two line lists, in order. (Myers without `similar`'s compaction pass: in
/// `similar` 2.7 that pass can emit ops whose new-side indexes run backwards, found by the
/// property test below; edits built from them overlapped and slicing panicked.)
pub(crate) fn line_ops(old: &[&str], new: &[&str]) -> Vec<DiffOp> {
    let mut capture = similar::algorithms::Replace::new(similar::algorithms::Capture::new());
    match similar::algorithms::myers::diff(&mut capture, old, 0..old.len(), new, 0..new.len()) {
        Ok(()) => capture.into_inner().into_ops(),
        // (The capture hook never fails; were it to, the whole text is one change.)
        Err(_) => vec![DiffOp::Replace {
            old_index: 0,
            old_len: old.len(),
            new_index: 0,
            new_len: new.len(),
        }],
    }
}

/// `text`'s lines, each with its line break (`\r\n`, `\n` or `\r`).
pub(crate) fn split_lines(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end = match bytes[i] {
            b'\n' => i + 1,
            b'\r' if bytes.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        out.push(&text[start..end]);
        start = end;
        i = end;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// The char range of `old` that differs from `new` once their common prefix and suffix are
/// dropped, and the replacement for it.
fn trim_common(old: &str, new: &str) -> (Range<usize>, String) {
    let o: Vec<char> = old.chars().collect();
    let n: Vec<char> = new.chars().collect();
    let (prefix, suffix) = crate::text::common_affixes(&o, &n);
    let replacement: String = n[prefix..n.len() - suffix].iter().collect();
    (prefix..o.len() - suffix, replacement)
}

/// Applies edits (sorted, non-overlapping) to a text whose char 0 is document char `base`.
pub fn apply(text: &str, edits: &[Edit], base: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for e in edits {
        let (s, t) = (e.range.start - base, e.range.end - base);
        out.extend(&chars[at..s]);
        out.push_str(&e.new_text);
        at = t;
    }
    out.extend(&chars[at..]);
    out
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::text::text_strategy::text;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn the_minimal_edits_give_the_revision(a in text(), b in text(), pre in text(), post in text()) {
            // Inside a document: offsets start after `pre`, `post` is left alone.
            let base = pre.chars().count();
            let doc = format!("{pre}{a}{post}");
            let edits = minimal_edits(&a, &b, base);
            prop_assert_eq!(apply(&doc, &edits, 0), format!("{pre}{b}{post}"));
            prop_assert_eq!(apply(&a, &minimal_edits(&a, &b, 0), 0), b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_char_change_is_a_one_char_edit() {
        let a = "fn f() {\n    for i in 0..=n {}\n}\n";
        let b = "fn f() {\n    for i in 0..n {}\n}\n";
        let e = minimal_edits(a, b, 100);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].new_text, "");
        assert_eq!(e[0].range, 100 + 25..100 + 26);
        assert_eq!(apply(a, &e, 100), b);
    }

    #[test]
    fn separate_hunks_stay_separate_and_untouched_lines_are_not_edited() {
        let a = "a\nb\nc\nd\ne\n";
        let b = "A\nb\nc\nd\nE\nf\n";
        let e = minimal_edits(a, b, 0);
        assert_eq!(e.len(), 2);
        assert_eq!(apply(a, &e, 0), b);
    }

    #[test]
    fn identical_text_needs_no_edit() {
        assert!(minimal_edits("x\n", "x\n", 0).is_empty());
    }

    #[test]
    fn multibyte_offsets_are_chars() {
        let a = "let s = \"😀\";\nlet n = 1;\n";
        let b = "let s = \"😀\";\nlet n = 2;\n";
        let e = minimal_edits(a, b, 0);
        assert_eq!(e[0].range, 21..22);
        assert_eq!(apply(a, &e, 0), b);
    }
}

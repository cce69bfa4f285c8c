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
    // Char offset of each old line's start.
    let mut old_starts = Vec::with_capacity(old_lines.len() + 1);
    let mut acc = 0;
    for l in &old_lines {
        old_starts.push(acc);
        acc += l.chars().count();
    }
    old_starts.push(acc);

    let hunks = line_hunks(&old_lines, &new_lines);
    hunks
        .into_iter()
        .map(|Hunk { old: o, new: n }| {
            let old: String = old_lines[o.clone()].concat();
            let new: String = new_lines[n].concat();
            let (skip, new_text) = trim_common(&old, &new);
            let at = base.saturating_add(old_starts[o.start]);
            let (start, end) = (at.saturating_add(skip.start), at.saturating_add(skip.end));
            Edit {
                range: start..end,
                new_text,
            }
        })
        .collect()
}

/// One changed stretch of the original: its lines (zero-based; empty for a pure insertion,
/// which sits before `old.start`) and the revised lines that replace them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// The original's lines.
    pub old: Range<usize>,
    /// The revision's lines that replace them.
    pub new: Range<usize>,
}

/// The hunks that turn `original` into `revised`, adjacent changes merged. The one line diff
/// of the crate: minimal edits, the explainer's hunks and the judge's changed lines all come
/// from [`line_ops`].
pub fn hunks(original: &str, revised: &str) -> Vec<Hunk> {
    line_hunks(&split_lines(original), &split_lines(revised))
}

fn line_hunks(old: &[&str], new: &[&str]) -> Vec<Hunk> {
    let mut out: Vec<Hunk> = Vec::new();
    for op in &line_ops(old, new) {
        if let DiffOp::Equal { .. } = op {
            continue;
        }
        let (old, new) = (op.old_range(), op.new_range());
        match out.last_mut() {
            Some(h) if h.old.end == old.start && h.new.end == new.start => {
                h.old.end = old.end;
                h.new.end = new.end;
            }
            _ => out.push(Hunk { old, new }),
        }
    }
    out
}

/// A unified diff of two texts with `context` lines around each change, the hunk headers
/// counted from line `first_line` (1-based) of the file, and the lines added and removed.
/// `header` names the two sides (`a/path`, `b/path`) when given.
pub fn unified_diff(
    old: &str,
    new: &str,
    context: usize,
    first_line: usize,
    header: Option<(&str, &str)>,
) -> (String, usize, usize) {
    let diff = similar::TextDiff::from_lines(old, new);
    let (mut added, mut removed) = (0, 0);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    let mut unified = diff.unified_diff();
    unified.context_radius(context);
    if let Some((a, b)) = header {
        unified.header(a, b);
    }
    let text = unified.to_string();
    let shift = first_line.saturating_sub(1);
    let text = if shift == 0 {
        text
    } else {
        let mut shifted: String = text
            .lines()
            .map(|l| shift_hunk_header(l, shift))
            .collect::<Vec<_>>()
            .join("\n");
        if text.ends_with('\n') {
            shifted.push('\n');
        }
        shifted
    };
    (text, added, removed)
}

/// `@@ -a,b +c,d @@` with `shift` added to `a` and `c`; any other line unchanged.
fn shift_hunk_header(line: &str, shift: usize) -> String {
    let Some(rest) = line.strip_prefix("@@ -") else {
        return line.to_owned();
    };
    let Some((ranges, tail)) = rest.split_once(" @@") else {
        return line.to_owned();
    };
    let Some((old, new)) = ranges.split_once(" +") else {
        return line.to_owned();
    };
    let bump = |r: &str| -> Option<String> {
        let (start, len) = match r.split_once(',') {
            Some((s, l)) => (s, Some(l)),
            None => (r, None),
        };
        let start: usize = start.parse().ok()?;
        let start = start.saturating_add(shift);
        Some(match len {
            Some(l) => format!("{start},{l}"),
            None => start.to_string(),
        })
    };
    match (bump(old), bump(new)) {
        (Some(o), Some(n)) => format!("@@ -{o} +{n} @@{tail}"),
        _ => line.to_owned(),
    }
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

/// Why a list of edits does not fit a text: edits read back from the review cache (a file
/// anyone with the workspace could have crafted) are checked with [`validate`] before use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEdit {
    /// An edit ends before it starts.
    #[error("edit {index} ends before it starts ({start}..{end})")]
    Reversed {
        /// Its position in the list.
        index: usize,
        /// Its start (document chars).
        start: usize,
        /// Its end (document chars).
        end: usize,
    },
    /// An edit reaches outside the text.
    #[error("edit {index} ({start}..{end}) is outside the text (chars {base}..{text_end})")]
    OutOfRange {
        /// Its position in the list.
        index: usize,
        /// Its start (document chars).
        start: usize,
        /// Its end (document chars).
        end: usize,
        /// The text's first char in the document.
        base: usize,
        /// The end of the text in the document.
        text_end: usize,
    },
    /// An edit starts before the one before it ends (the list is unsorted or overlaps).
    #[error("edit {index} starts before edit {} ends: edits must be sorted and not overlap", index - 1)]
    Overlapping {
        /// Its position in the list.
        index: usize,
    },
}

/// Checks that `edits` fit a text whose char 0 is document char `base`: each inside the text,
/// sorted and not overlapping (what [`apply`] needs).
pub fn validate(text: &str, edits: &[Edit], base: usize) -> Result<(), InvalidEdit> {
    let text_end = base.saturating_add(text.chars().count());
    let mut at = base;
    for (index, e) in edits.iter().enumerate() {
        let (start, end) = (e.range.start, e.range.end);
        if end < start {
            return Err(InvalidEdit::Reversed { index, start, end });
        }
        if start < base || end > text_end {
            return Err(InvalidEdit::OutOfRange {
                index,
                start,
                end,
                base,
                text_end,
            });
        }
        if start < at {
            return Err(InvalidEdit::Overlapping { index });
        }
        at = end;
    }
    Ok(())
}

/// Applies edits (sorted, non-overlapping) to a text whose char 0 is document char `base`.
/// Edits that do not fit the text (see [`validate`]) are not applied at all: the text comes
/// back unchanged, since half a list of edits is no revision.
pub fn apply(text: &str, edits: &[Edit], base: usize) -> String {
    if let Err(e) = validate(text, edits, base) {
        tracing::warn!("edits not applied: {e}");
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    let mut at = base;
    for e in edits {
        // Validated: `at <= start <= end <= base + chars`.
        out.extend(chars.by_ref().take(e.range.start.saturating_sub(at)));
        out.push_str(&e.new_text);
        chars
            .by_ref()
            .take(e.range.end.saturating_sub(e.range.start))
            .for_each(drop);
        at = e.range.end;
    }
    out.extend(chars);
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
            prop_assert!(validate(&doc, &edits, 0).is_ok());
        }

        #[test]
        fn apply_never_panics_on_arbitrary_edits(
            t in text(),
            base in prop_oneof![Just(0usize), 0usize..50, Just(usize::MAX - 3), Just(usize::MAX)],
            raw in proptest::collection::vec(
                (prop_oneof![0usize..60, Just(usize::MAX)], prop_oneof![0usize..60, Just(usize::MAX)], text()),
                0..5,
            ),
        ) {
            let edits: Vec<Edit> = raw
                .into_iter()
                .map(|(s, e, new_text)| Edit { range: s..e, new_text })
                .collect();
            let got = apply(&t, &edits, base);
            match validate(&t, &edits, base) {
                // Valid edits: each replaced its chars.
                Ok(()) => {
                    let removed: usize = edits.iter().map(|e| e.range.end - e.range.start).sum();
                    let added: usize = edits.iter().map(|e| e.new_text.chars().count()).sum();
                    prop_assert_eq!(got.chars().count(), t.chars().count() - removed + added);
                }
                // Anything else: the text, untouched.
                Err(_) => prop_assert_eq!(got, t),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunk_headers_move_to_file_lines() {
        assert_eq!(
            shift_hunk_header("@@ -1,3 +1,4 @@", 10),
            "@@ -11,3 +11,4 @@"
        );
        assert_eq!(shift_hunk_header("@@ -2 +2 @@", 4), "@@ -6 +6 @@");
        assert_eq!(shift_hunk_header(" context", 4), " context");
        let (text, added, removed) = unified_diff("a\nb\n", "a\nB\n", 1, 21, None);
        assert_eq!(text, "@@ -21,2 +21,2 @@\n a\n-b\n+B\n");
        assert_eq!((added, removed), (1, 1));
    }

    #[test]
    fn hunks_merge_adjacent_changes_and_keep_insertions() {
        let a = "a\nb\nc\nd\ne\n";
        assert_eq!(
            hunks(a, "a\nB\nC\nd\ne\n"),
            vec![Hunk {
                old: 1..3,
                new: 1..3
            }]
        );
        let h = hunks(a, "a\nb\nx\nc\nd\nE\n");
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].old, 2..2);
        assert_eq!(h[1].old, 4..5);
        assert!(hunks(a, a).is_empty());
    }

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
    fn edits_that_do_not_fit_are_refused_and_not_applied() {
        let e = |s: usize, t: usize| Edit {
            range: s..t,
            new_text: "X".to_owned(),
        };
        let text = "abcdef";
        assert!(matches!(
            validate(text, &[e(3, 2)], 0),
            Err(InvalidEdit::Reversed { index: 0, .. })
        ));
        assert!(matches!(
            validate(text, &[e(5, 7)], 0),
            Err(InvalidEdit::OutOfRange { .. })
        ));
        assert!(matches!(
            validate(text, &[e(1, 2)], 2),
            Err(InvalidEdit::OutOfRange { .. })
        ));
        assert!(matches!(
            validate(text, &[e(1, 3), e(2, 4)], 0),
            Err(InvalidEdit::Overlapping { index: 1 })
        ));
        assert!(matches!(
            validate(text, &[e(4, 5), e(1, 2)], 0),
            Err(InvalidEdit::Overlapping { index: 1 })
        ));
        for bad in [
            vec![e(3, 2)],
            vec![e(0, usize::MAX)],
            vec![e(4, 5), e(1, 2)],
        ] {
            assert_eq!(apply(text, &bad, 0), text);
        }
        // Touching edits and an insertion at the end fit.
        let ok = [e(0, 1), e(1, 1), e(1, 2), e(6, 6)];
        assert_eq!(validate(text, &ok, 0), Ok(()));
        assert_eq!(apply(text, &ok, 0), "XXXcdefX");
        assert_eq!(apply("é😀z", &[e(11, 12)], 10), "éXz");
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

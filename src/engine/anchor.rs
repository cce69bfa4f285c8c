//! Anchoring: where in the selection a finding's `quote` really is. Models get line numbers
//! wrong by a few and paraphrase whitespace, so the quote is looked for on the claimed lines,
//! then nearby, then anywhere in the selection; exactly first, then ignoring whitespace. A
//! finding that cannot be found is not shown: a squiggle in the wrong place is worse than none.

use std::ops::Range;

/// How far around the claimed lines "nearby" reaches.
const NEARBY_LINES: usize = 3;
/// A repaired quote keeps at least this share of the model's quote.
const REPAIR_SHARE: f64 = 0.6;
/// ... and at least this many non-blank chars (a lone `}` places nothing).
const REPAIR_MIN_CHARS: usize = 4;
/// Quotes and claimed lines longer than these are not repaired (the search is quadratic).
const REPAIR_MAX_QUOTE: usize = 400;
const REPAIR_MAX_WINDOW: usize = 8_000;

/// Why a finding has no place in the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorError {
    /// The quote is not in the selection (or is empty).
    NotFound,
    /// The finding is about lines outside the selection.
    OutsideSelection,
}

/// The selection as lines with their char offsets.
pub struct Selection<'a> {
    text: &'a str,
    /// Zero-based file line of the selection's first line.
    first_line: usize,
    /// Char offset of each line's start, plus the total length at the end.
    line_starts: Vec<usize>,
}

impl<'a> Selection<'a> {
    /// Indexes a selection that starts at zero-based file line `first_line`.
    pub fn new(text: &'a str, first_line: usize) -> Self {
        let mut line_starts = vec![0];
        let mut n = 0;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            n += 1;
            let brk = match c {
                '\n' => true,
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                        n += 1;
                    }
                    true
                }
                _ => false,
            };
            if brk {
                line_starts.push(n);
            }
        }
        if *line_starts.last().unwrap_or(&0) != n {
            line_starts.push(n);
        }
        Self {
            text,
            first_line,
            line_starts,
        }
    }

    /// Zero-based file line of the first line.
    pub fn first_line(&self) -> usize {
        self.first_line
    }

    /// Number of lines.
    pub fn line_count(&self) -> usize {
        self.line_starts.len() - 1
    }

    /// Char range of selection lines `a..=b` (selection-relative, clamped).
    fn lines_range(&self, a: usize, b: usize) -> Range<usize> {
        let last = self.line_count().saturating_sub(1);
        let (a, b) = (a.min(last), b.min(last));
        self.line_starts[a]..self.line_starts[b + 1]
    }

    /// Selection-relative line of a char offset.
    pub fn line_of(&self, c: usize) -> usize {
        match self.line_starts.binary_search(&c) {
            Ok(i) => i.min(self.line_count().saturating_sub(1)),
            Err(i) => i.saturating_sub(1),
        }
    }

    /// Selection-relative first and last line of a char range (an empty range: its line).
    pub fn lines_of(&self, r: &Range<usize>) -> (usize, usize) {
        (
            self.line_of(r.start),
            self.line_of(r.end.saturating_sub(1).max(r.start)),
        )
    }

    /// Locates `quote` for a finding that claims 1-based file lines `start..=end`; returns
    /// the quote's char range within the selection text.
    ///
    /// The quote is looked for on the claimed lines, then within [`NEARBY_LINES`] of them, then
    /// anywhere in the selection; exactly, then ignoring whitespace. A claim that lies wholly
    /// outside the selection is searched for only when it is next to it (within
    /// [`NEARBY_LINES`]); a claim far away is about other code, whatever its quote matches
    /// here. Last, a quote the model misremembered is repaired: the longest stretch of the
    /// claimed lines it shares with them, when that is at least [`REPAIR_SHARE`] of it.
    pub fn anchor(&self, start: u32, end: u32, quote: &str) -> Result<Range<usize>, AnchorError> {
        let quote = clean_quote(quote);
        if self.line_count() == 0 {
            return Err(AnchorError::NotFound);
        }
        let last = self.line_count() - 1;
        // Claimed lines relative to the selection, as signed numbers: they may lie outside.
        let rel = |l: u32| i64::from(l) - 1 - self.first_line as i64;
        let (a, b) = (rel(start.min(end)), rel(start.max(end)));
        let outside = b < 0 || a > last as i64;
        let gap = if b < 0 {
            -b
        } else if a > last as i64 {
            a - last as i64
        } else {
            0
        };
        if outside && gap > NEARBY_LINES as i64 {
            return Err(AnchorError::OutsideSelection);
        }
        let not_found = if outside {
            AnchorError::OutsideSelection
        } else {
            AnchorError::NotFound
        };
        if quote.is_empty() {
            return Err(not_found);
        }
        let clamp = |x: i64| x.clamp(0, last as i64) as usize;
        let claimed = (clamp(a), clamp(b));
        let near = (
            clamp(a - NEARBY_LINES as i64),
            clamp(b + NEARBY_LINES as i64),
        );
        for (wa, wb) in [claimed, near, (0, last)] {
            let range = self.lines_range(wa, wb);
            if let Some(found) = self.find_in(range, quote, claimed.0) {
                return Ok(found);
            }
        }
        if !outside && let Some(found) = self.repair(self.lines_range(claimed.0, claimed.1), quote)
        {
            return Ok(found);
        }
        Err(not_found)
    }

    /// The longest stretch of `window` that `quote` also contains, trimmed of whitespace, when
    /// it is at least [`REPAIR_SHARE`] of the quote (both counted without whitespace) and holds
    /// at least [`REPAIR_MIN_CHARS`] non-blank chars.
    fn repair(&self, window: Range<usize>, quote: &str) -> Option<Range<usize>> {
        let hay: Vec<char> = self
            .text
            .chars()
            .skip(window.start)
            .take(window.len())
            .collect();
        let q: Vec<char> = quote.chars().collect();
        if q.len() > REPAIR_MAX_QUOTE || hay.len() > REPAIR_MAX_WINDOW {
            return None;
        }
        let (at, len) = longest_common_substring(&hay, &q)?;
        let mut s = at;
        let mut e = at + len;
        while s < e && hay[s].is_whitespace() {
            s += 1;
        }
        while e > s && hay[e - 1].is_whitespace() {
            e -= 1;
        }
        let solid = |cs: &[char]| cs.iter().filter(|c| !c.is_whitespace()).count();
        let shared = solid(&hay[s..e]);
        let whole = solid(&q);
        if shared < REPAIR_MIN_CHARS || (shared as f64) < REPAIR_SHARE * whole as f64 {
            return None;
        }
        Some(window.start + s..window.start + e)
    }

    /// Finds `quote` in a char window, exactly or ignoring whitespace, nearest to `near_line`.
    fn find_in(&self, window: Range<usize>, quote: &str, near_line: usize) -> Option<Range<usize>> {
        let chars: Vec<char> = self
            .text
            .chars()
            .skip(window.start)
            .take(window.len())
            .collect();
        let q: Vec<char> = quote.chars().collect();
        let mut hits: Vec<Range<usize>> = Vec::new();
        if q.len() <= chars.len() {
            for i in 0..=chars.len() - q.len() {
                if chars[i..i + q.len()] == q[..] {
                    hits.push(window.start + i..window.start + i + q.len());
                }
            }
        }
        if hits.is_empty() {
            hits = find_ignoring_whitespace(&chars, &q)
                .into_iter()
                .map(|r| window.start + r.start..window.start + r.end)
                .collect();
        }
        hits.into_iter()
            .min_by_key(|r| self.line_of(r.start).abs_diff(near_line))
    }
}

/// Strips what models wrap quotes in: backticks, quotes, a leading line number.
fn clean_quote(q: &str) -> &str {
    let mut q = q.trim();
    for (open, close) in [("```", "```"), ("`", "`"), ("\"", "\"")] {
        if q.len() >= open.len() + close.len() && q.starts_with(open) && q.ends_with(close) {
            q = q[open.len()..q.len() - close.len()].trim();
        }
    }
    // `  12 | code` as shown in the prompt.
    if let Some((num, rest)) = q.split_once(" | ")
        && !num.trim().is_empty()
        && num.trim().chars().all(|c| c.is_ascii_digit())
    {
        q = rest;
    }
    q
}

/// The start in `a` and the length of the longest run of chars `a` and `b` share (the first
/// one in `a` on ties), or `None` when they share none.
fn longest_common_substring(a: &[char], b: &[char]) -> Option<(usize, usize)> {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    let mut best = (0, 0);
    for (i, ca) in a.iter().enumerate() {
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = if ca == cb { prev[j] + 1 } else { 0 };
            if cur[j + 1] > best.1 {
                best = (i + 1 - cur[j + 1], cur[j + 1]);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    (best.1 > 0).then_some(best)
}

/// Whether a quote only repeats the finding's message (small models copy the message into the
/// quote): such a quote places nothing.
pub fn is_the_message(quote: &str, message: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .trim_end_matches('.')
            .to_lowercase()
    };
    let q = norm(clean_quote(quote));
    !q.is_empty() && q == norm(message)
}

/// Matches `q` in `hay` treating any run of whitespace as equal to any other (and whitespace
/// around punctuation as optional is not attempted: that would over-match). Returns char ranges
/// in `hay` that start and end on non-whitespace.
fn find_ignoring_whitespace(hay: &[char], q: &[char]) -> Vec<Range<usize>> {
    let norm = |s: &[char]| -> (Vec<char>, Vec<usize>) {
        let mut out = Vec::new();
        let mut map = Vec::new();
        let mut in_ws = false;
        for (i, &c) in s.iter().enumerate() {
            if c.is_whitespace() {
                if !in_ws && !out.is_empty() {
                    out.push(' ');
                    map.push(i);
                }
                in_ws = true;
            } else {
                out.push(c);
                map.push(i);
                in_ws = false;
            }
        }
        if out.last() == Some(&' ') {
            out.pop();
            map.pop();
        }
        (out, map)
    };
    let (h, hmap) = norm(hay);
    let (qn, _) = norm(q);
    if qn.is_empty() || qn.len() > h.len() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for i in 0..=h.len() - qn.len() {
        if h[i..i + qn.len()] == qn[..] {
            out.push(hmap[i]..hmap[i + qn.len() - 1] + 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEL: &str = "fn f(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 1..xs.len() {\n        s += xs[i];\n    }\n    s\n}\n";

    fn text_of(sel: &str, r: Range<usize>) -> String {
        sel.chars().skip(r.start).take(r.len()).collect()
    }

    #[test]
    fn quote_on_the_claimed_line() {
        // The selection starts at file line 10 (zero-based 9).
        let s = Selection::new(SEL, 9);
        let r = s.anchor(12, 12, "1..xs.len()").unwrap();
        assert_eq!(text_of(SEL, r), "1..xs.len()");
    }

    #[test]
    fn line_numbers_off_by_a_few_still_anchor() {
        let s = Selection::new(SEL, 9);
        let r = s.anchor(14, 14, "1..xs.len()").unwrap();
        assert_eq!(text_of(SEL, r), "1..xs.len()");
    }

    #[test]
    fn nearest_occurrence_wins() {
        let sel = "a = x;\nb = 1;\nc = x;\n";
        let s = Selection::new(sel, 0);
        let r = s.anchor(3, 3, "x").unwrap();
        assert_eq!(r, 18..19);
    }

    #[test]
    fn whitespace_differences_and_backticks_are_tolerated() {
        let s = Selection::new(SEL, 9);
        let r = s
            .anchor(12, 13, "`for i in 1..xs.len() {  s += xs[i];`")
            .unwrap();
        assert_eq!(
            text_of(SEL, r),
            "for i in 1..xs.len() {\n        s += xs[i];"
        );
    }

    #[test]
    fn a_quote_that_does_not_exist_is_not_found() {
        let s = Selection::new(SEL, 9);
        assert_eq!(
            s.anchor(12, 12, "xs.iter().sum()"),
            Err(AnchorError::NotFound)
        );
        assert_eq!(s.anchor(12, 12, "  "), Err(AnchorError::NotFound));
    }

    #[test]
    fn lines_outside_the_selection_are_dropped() {
        let s = Selection::new(SEL, 9);
        assert_eq!(s.anchor(100, 101, "s"), Err(AnchorError::OutsideSelection));
        assert_eq!(
            s.anchor(1, 2, "unrelated"),
            Err(AnchorError::OutsideSelection)
        );
    }

    #[test]
    fn a_claim_far_outside_is_not_placed_on_lookalike_code_inside() {
        // Selection = file lines 10-16; `}` and `-> i32 {` exist in it.
        let s = Selection::new(SEL, 9);
        assert_eq!(s.anchor(100, 100, "}"), Err(AnchorError::OutsideSelection));
        assert_eq!(
            s.anchor(1, 1, "-> i32 {"),
            Err(AnchorError::OutsideSelection)
        );
        // Next to the selection, a model's off-by-a-few line number is still forgiven.
        let r = s.anchor(8, 8, "-> i32 {").unwrap();
        assert_eq!(text_of(SEL, r), "-> i32 {");
        let r = s.anchor(18, 18, "s += xs[i];").unwrap();
        assert_eq!(text_of(SEL, r), "s += xs[i];");
    }

    #[test]
    fn a_misremembered_quote_is_repaired_on_its_claimed_lines() {
        let s = Selection::new(SEL, 9);
        // The model wrote `for i in 1..xs.len() - 1 {`: most of it is on line 12.
        let r = s.anchor(12, 12, "for i in 1..xs.len() - 1 {").unwrap();
        assert_eq!(text_of(SEL, r), "for i in 1..xs.len()");
        // Too little in common: not placed.
        assert_eq!(
            s.anchor(12, 12, "while index < values.count() {"),
            Err(AnchorError::NotFound)
        );
        // Repair looks only at the claimed lines.
        assert_eq!(
            s.anchor(10, 10, "for i in 1..xs.len() - 1 {"),
            Err(AnchorError::NotFound)
        );
    }

    #[test]
    fn a_quote_that_repeats_the_message_is_recognised() {
        assert!(is_the_message(
            "The loop starts at 1.",
            "the loop starts  at 1"
        ));
        assert!(is_the_message(
            "`the loop starts at 1`",
            "The loop starts at 1."
        ));
        assert!(!is_the_message("1..xs.len()", "The loop starts at 1."));
        assert!(!is_the_message("", ""));
    }

    #[test]
    fn multibyte_text_is_counted_in_chars() {
        let sel = "let s = \"😀\"; let t = 名前;\n";
        let s = Selection::new(sel, 0);
        let r = s.anchor(1, 1, "名前").unwrap();
        assert_eq!(text_of(sel, r.clone()), "名前");
        assert_eq!(r.start, 21);
    }
}

//! Anchoring: where in the selection a finding's `quote` really is. Models get line numbers
//! wrong by a few and paraphrase whitespace, so the quote is looked for on the claimed lines,
//! then nearby, then anywhere in the selection; exactly first, then ignoring whitespace. A
//! finding that cannot be found is not shown: a squiggle in the wrong place is worse than none.

use std::ops::Range;

/// How far around the claimed lines "nearby" reaches.
const NEARBY_LINES: usize = 3;

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

    /// Locates `quote` for a finding that claims 1-based file lines `start..=end`; returns
    /// the quote's char range within the selection text.
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
        if quote.is_empty() {
            return Err(if outside {
                AnchorError::OutsideSelection
            } else {
                AnchorError::NotFound
            });
        }
        let clamp = |x: i64| x.clamp(0, last as i64) as usize;
        let claimed = (clamp(a), clamp(b));
        let near = (
            clamp(a - NEARBY_LINES as i64),
            clamp(b + NEARBY_LINES as i64),
        );
        let mut windows = vec![near];
        if !outside {
            windows.insert(0, claimed);
            windows.push((0, last));
        }
        for (wa, wb) in windows {
            let range = self.lines_range(wa, wb);
            if let Some(found) = self.find_in(range, quote, claimed.0) {
                return Ok(found);
            }
        }
        Err(if outside {
            AnchorError::OutsideSelection
        } else {
            AnchorError::NotFound
        })
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
    if let Some((num, rest)) = q.split_once(" | ") {
        if !num.trim().is_empty() && num.trim().chars().all(|c| c.is_ascii_digit()) {
            q = rest;
        }
    }
    q
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
    fn multibyte_text_is_counted_in_chars() {
        let sel = "let s = \"😀\"; let t = 名前;\n";
        let s = Selection::new(sel, 0);
        let r = s.anchor(1, 1, "名前").unwrap();
        assert_eq!(text_of(sel, r.clone()), "名前");
        assert_eq!(r.start, 21);
    }
}

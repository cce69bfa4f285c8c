//! A finding as reported: where it is (1-based lines and columns), what it says, its
//! fingerprint and its fix; the summary counts of a run; and the noise budget.

use ropey::Rope;

use crate::cli::shard::Shard;
pub use crate::dismissed::fingerprint;
use crate::document::{PositionEncoding, from_char};
use crate::engine::critique::Severity;
use crate::engine::{Finding, ReviewOutcome};

/// A replacement of a stretch of a file: 1-based lines, 1-based columns (chars), end exclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// Start line and column.
    pub start: (u32, u32),
    /// End line and column (exclusive).
    pub end: (u32, u32),
    /// The new text.
    pub text: String,
}

/// One reported finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    /// Start line and column, 1-based.
    pub start: (u32, u32),
    /// End line and column, 1-based.
    pub end: (u32, u32),
    /// Severity.
    pub severity: Severity,
    /// Principle id.
    pub principle: String,
    /// What is wrong.
    pub message: String,
    /// The code it quotes.
    pub quote: String,
    /// Stable identity (see the module docs of `report`).
    pub fingerprint: String,
    /// The verified revision's edits that touch this finding.
    pub fix: Vec<Replacement>,
}

impl Reported {
    /// A finding of `outcome` as reported, with the revision's edits that touch it as its fix.
    pub fn new(path: &str, rope: &Rope, outcome: &ReviewOutcome, f: &Finding) -> Self {
        let fix = outcome
            .revision
            .as_ref()
            .and_then(|r| r.per_finding.iter().find(|(id, _)| *id == f.id))
            .map(|(_, edits)| {
                edits
                    .iter()
                    .map(|e| Replacement {
                        start: line_col(rope, e.range.start),
                        end: line_col(rope, e.range.end),
                        text: e.new_text.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Reported {
            path: path.to_owned(),
            start: line_col(rope, f.range.start),
            end: line_col(rope, f.range.end),
            severity: f.raw.severity,
            principle: f.raw.principle.clone(),
            message: f.shown_message(),
            quote: f.raw.quote.clone(),
            fingerprint: fingerprint(path, &f.raw.principle, &f.raw.quote),
            fix,
        }
    }
}

/// One-based line and column (in chars) of a char offset.
pub fn line_col(rope: &Rope, c: usize) -> (u32, u32) {
    let p = from_char(rope, c, PositionEncoding::Utf32);
    (p.line + 1, p.col + 1)
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Files with changed lines reviewed.
    pub files: usize,
    /// Regions (items) reviewed.
    pub regions: usize,
    /// Model calls.
    pub llm_calls: u32,
    /// Tokens in and out.
    pub tokens: u64,
    /// Findings dropped because they touch no changed line.
    pub off_change: usize,
    /// Findings dropped because the baseline lists them.
    pub in_baseline: usize,
    /// Findings dropped because `.refine/dismissed.toml` dismisses them.
    pub dismissed: usize,
    /// Findings below `--min-severity` or over `--max-findings`.
    pub over_budget: usize,
    /// Regions whose review failed (`path:A-B: why`).
    pub errors: Vec<String>,
    /// The share of the change this run reviewed (`--shard`), when not all of it.
    pub shard: Option<Shard>,
}

/// Severity order for `--min-severity` and `--fail-on`: higher is more severe.
pub fn rank(s: Severity) -> u8 {
    match s {
        Severity::Error => 3,
        Severity::Warning => 2,
        Severity::Info => 1,
        Severity::Hint => 0,
    }
}

/// The noise budget: drops findings below `min`, puts the most severe first (the given order
/// within a severity) and keeps at most `max`. Returns how many were dropped.
pub fn budget(findings: &mut Vec<Reported>, min: Option<Severity>, max: Option<usize>) -> usize {
    let before = findings.len();
    let floor = min.map_or(0, rank);
    findings.retain(|f| rank(f.severity) >= floor);
    findings.sort_by_key(|f| std::cmp::Reverse(rank(f.severity)));
    if let Some(max) = max {
        findings.truncate(max);
    }
    before - findings.len()
}

/// Whether a finding is at least as severe as `level` (`--fail-on`).
pub fn any_at_least(findings: &[Reported], level: Severity) -> bool {
    findings.iter().any(|f| rank(f.severity) >= rank(level))
}

/// A finding for the tests of the report's modules.
#[cfg(test)]
pub(super) fn sample(severity: Severity, message: &str) -> Reported {
    Reported {
        path: "src/a,b.rs".into(),
        start: (3, 5),
        end: (3, 9),
        severity,
        principle: "correctness".into(),
        message: message.into(),
        quote: "1..n".into(),
        fingerprint: fingerprint("src/a,b.rs", "correctness", "1..n"),
        fix: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_the_most_severe_in_order_and_counts_what_it_drops() {
        let mut f = vec![
            sample(Severity::Hint, "h"),
            sample(Severity::Warning, "w1"),
            sample(Severity::Error, "e"),
            sample(Severity::Warning, "w2"),
            sample(Severity::Info, "i"),
        ];
        let dropped = budget(&mut f, Some(Severity::Info), Some(3));
        let kept: Vec<&str> = f.iter().map(|x| x.message.as_str()).collect();
        assert_eq!(kept, vec!["e", "w1", "w2"]);
        assert_eq!(dropped, 2);
        assert!(any_at_least(&f, Severity::Error));
        assert!(!any_at_least(&f[1..], Severity::Error));
    }
}

//! What both strategies share: a version of the selection and its critique ([`Candidate`]),
//! findings moved to document offsets, and the chosen version as the revision offered.

use std::ops::Range;

use ropey::Rope;

use super::critic::Critiqued;
use super::critique::RawFinding;
use super::edits::{self, Edit};
use super::outcome::{Finding, ReviewInput, Revision};

/// A version of the selection and its critique.
pub(crate) struct Candidate {
    pub(crate) text: String,
    /// The findings still to fix in this version (for the original: the critique).
    pub(crate) critique: Critiqued,
    pub(crate) round: u32,
    /// Findings of the original this version resolves, by the judge's evidence.
    pub(crate) resolved: usize,
    /// verify.command passes on this version (a version that passes beats one that resolves
    /// more findings by the judge's word).
    pub(crate) passes: bool,
}

impl Candidate {
    /// The original selection as round 0, with its critique.
    pub(crate) fn original(text: &str, critique: Critiqued, passes: bool) -> Self {
        Candidate {
            text: text.to_owned(),
            critique,
            round: 0,
            resolved: 0,
            passes,
        }
    }
}

/// Findings placed in the selection, numbered and moved to document offsets (the selection
/// starts at char `start`).
pub(crate) fn document_findings(
    shown: &[(RawFinding, Range<usize>)],
    start: usize,
) -> Vec<Finding> {
    shown
        .iter()
        .enumerate()
        .map(|(id, (raw, r))| Finding {
            id,
            raw: raw.clone(),
            range: start + r.start..start + r.end,
            evidence: None,
        })
        .collect()
}

/// The chosen version as an offered revision: minimal edits against the document, and the
/// edits that touch each finding's lines (to apply one finding's fix alone).
pub(crate) fn offered(
    input: &ReviewInput,
    original: &str,
    chosen: &str,
    findings: &[Finding],
    (fixes, remaining): (usize, usize),
    round: u32,
) -> Revision {
    let region = input.region();
    let edits = edits::minimal_edits(original, chosen, region.start);
    let per_finding: Vec<(usize, Vec<Edit>)> = findings
        .iter()
        .filter_map(|f| {
            let mine: Vec<Edit> = edits
                .iter()
                .filter(|e| touches_lines(&input.text, &f.range, &e.range))
                .cloned()
                .collect();
            (!mine.is_empty()).then_some((f.id, mine))
        })
        .collect();
    Revision {
        text: chosen.to_owned(),
        edits,
        fixes,
        remaining,
        round,
        per_finding,
    }
}

/// Whether two char ranges of `text` share a line.
fn touches_lines(text: &Rope, a: &Range<usize>, b: &Range<usize>) -> bool {
    let lines = |r: &Range<usize>| {
        let s = crate::document::line_of(text, r.start);
        let e = crate::document::line_of(text, r.end.max(r.start));
        (s, e)
    };
    let ((a0, a1), (b0, b1)) = (lines(a), lines(b));
    a0 <= b1 && b0 <= a1
}

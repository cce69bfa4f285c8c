//! Each review's fate lines folded into one verdict for its revision and one per finding.

use std::collections::HashMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::learning::{Fate, Record, ReviewRecord};

/// What became of a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevisionFate {
    /// Applied whole.
    Applied,
    /// Only some findings' edits applied.
    AppliedFindings,
    /// Looked at and not applied.
    Discarded,
    /// The user edited the lines while it was on offer.
    Superseded,
    /// Offered, never looked at.
    Ignored,
}

/// What became of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingFate {
    /// Dismissed (still dismissed at the end of the record).
    Dismissed,
    /// An applied revision changed its lines.
    Fixed,
    /// Neither.
    Ignored,
}

/// One review and what the user decided.
#[derive(Debug, Clone)]
pub struct Folded {
    /// The review as recorded.
    pub review: ReviewRecord,
    /// Per finding (in the review's order).
    pub findings: Vec<FindingFate>,
    /// The revision's fate, when one was offered.
    pub revision: Option<RevisionFate>,
    /// The findings whose edits alone were applied.
    pub applied_findings: Vec<usize>,
}

/// What the fate lines said of one review.
#[derive(Default)]
struct Seen {
    dismissed: Vec<usize>,
    applied: bool,
    applied_findings: Vec<usize>,
    previewed: bool,
    superseded: bool,
}

/// The record's fate lines gathered by review id.
fn seen_by_review(records: &[Record]) -> HashMap<&str, Seen> {
    let mut seen: HashMap<&str, Seen> = HashMap::new();
    for r in records {
        let Record::Fate(f) = r else { continue };
        let s = seen.entry(f.id.as_str()).or_default();
        match f.fate {
            Fate::Dismissed => {
                for id in &f.findings {
                    if !s.dismissed.contains(id) {
                        s.dismissed.push(*id);
                    }
                }
            }
            Fate::Undismissed => s.dismissed.retain(|id| !f.findings.contains(id)),
            Fate::Applied => s.applied = true,
            Fate::AppliedFindings => {
                for id in &f.findings {
                    if !s.applied_findings.contains(id) {
                        s.applied_findings.push(*id);
                    }
                }
            }
            Fate::Previewed => s.previewed = true,
            Fate::Superseded => s.superseded = true,
        }
    }
    seen
}

/// Folds the records (oldest first) into reviews finished at or after `since`.
pub fn fold(records: &[Record], since: Option<SystemTime>) -> Vec<Folded> {
    let seen = seen_by_review(records);
    let empty = Seen::default();
    records
        .iter()
        .filter_map(|r| match r {
            Record::Review(rev) => Some(rev.as_ref()),
            Record::Fate(_) => None,
        })
        .filter(|rev| {
            since.is_none_or(|t| humantime::parse_rfc3339_weak(&rev.at).is_ok_and(|at| at >= t))
        })
        .map(|rev| fold_review(rev, seen.get(rev.id.as_str()).unwrap_or(&empty)))
        .collect()
}

/// The revision's fate, by precedence.
fn revision_fate(s: &Seen) -> RevisionFate {
    if s.applied {
        RevisionFate::Applied
    } else if !s.applied_findings.is_empty() {
        RevisionFate::AppliedFindings
    } else if s.previewed {
        RevisionFate::Discarded
    } else if s.superseded {
        RevisionFate::Superseded
    } else {
        RevisionFate::Ignored
    }
}

/// One review with what its fate lines said.
fn fold_review(rev: &ReviewRecord, s: &Seen) -> Folded {
    let revision = rev.revision.as_ref().map(|_| revision_fate(s));
    let fixed_by_revision = |id: usize| match (&rev.revision, revision) {
        (Some(r), Some(RevisionFate::Applied)) => r.fixes.contains(&id),
        (Some(_), Some(RevisionFate::AppliedFindings)) => s.applied_findings.contains(&id),
        _ => false,
    };
    let findings = rev
        .findings
        .iter()
        .map(|f| {
            if !f.shown || s.dismissed.contains(&f.id) {
                FindingFate::Dismissed
            } else if fixed_by_revision(f.id) {
                FindingFate::Fixed
            } else {
                FindingFate::Ignored
            }
        })
        .collect();
    Folded {
        review: rev.clone(),
        findings,
        revision,
        applied_findings: if s.applied {
            Vec::new()
        } else {
            s.applied_findings.clone()
        },
    }
}

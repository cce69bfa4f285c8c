//! A finished review as a line of the learning record (`learning.record = true`): what was
//! reviewed, the findings and the revision, every string concealed (secrets as placeholders,
//! whether or not `privacy.redact_secrets` sent them so).

use crate::engine::{Finding, ReviewInput, ReviewOutcome, edits};
use crate::learning::{FindingFix, FindingRecord, ReviewRecord, RevisionRecord};
use crate::secrets::Vault;

/// The record of `outcome` (a review of `input`) by `critic` and `reviser`, under `id`.
pub fn review_record(
    id: String,
    path: String,
    input: &ReviewInput,
    outcome: &ReviewOutcome,
    (critic, reviser): (String, String),
) -> ReviewRecord {
    let region = input.region();
    let selection = input.text.slice(region.clone()).to_string();
    // The selection's secrets first, so that a quote or a revision holding one is concealed
    // even where the patterns alone would not see it. Placeholders without a random part: a
    // record is never restored, and records (training data) read alike.
    let mut vault = Vault::stable();
    let code = vault.redact(&selection);
    let rope = &input.text;
    let line = |c: usize| {
        let l = crate::document::line_of(rope, c);
        u32::try_from(l.saturating_add(1)).unwrap_or(u32::MAX)
    };
    let mut finding = |f: &Finding, shown: bool| FindingRecord {
        id: f.id,
        principle: f.raw.principle.clone(),
        severity: f.raw.severity.as_str().to_owned(),
        message: vault.conceal(&f.raw.message),
        quote: vault.conceal(&f.raw.quote),
        start_line: line(f.range.start),
        end_line: line(f.range.end.saturating_sub(1).max(f.range.start)),
        suggestion: f.raw.suggestion.as_deref().map(|s| vault.conceal(s)),
        confidence: f.raw.confidence,
        shown,
    };
    let all = outcome.findings.iter().map(|f| (f, true));
    let mut findings: Vec<FindingRecord> = all
        .chain(outcome.dismissed.iter().map(|f| (f, false)))
        .map(|(f, shown)| finding(f, shown))
        .collect();
    findings.sort_by_key(|f| f.id);
    let revision = outcome.revision.as_ref().map(|r| RevisionRecord {
        code: vault.conceal(&r.text),
        fixes: r.per_finding.iter().map(|(id, _)| *id).collect(),
        by_finding: r
            .per_finding
            .iter()
            .filter(|(_, e)| {
                e.iter()
                    .all(|e| region.start <= e.range.start && e.range.end <= region.end)
            })
            .map(|(id, e)| FindingFix {
                finding: *id,
                code: vault.conceal(&edits::apply(&selection, e, region.start)),
            })
            .collect(),
        round: r.round,
    });
    let unwanted = input.unwanted.iter().map(|u| vault.conceal(u)).collect();
    ReviewRecord {
        id,
        at: crate::learning::now(),
        path,
        language: input.language.clone(),
        first_line: input.first_line,
        last_line: input.last_line,
        critic,
        reviser,
        code,
        unwanted,
        findings,
        revision,
        redactions: vault.secrets().len(),
    }
}

//! The JSON reports: one object for `review FILE`, one for `review --diff`.

use std::io::Write;

use ropey::Rope;
use serde_json::{Value, json};

use super::finding::{Reported, Totals, line_col};
use super::revision::{TextRevision, unified_diff};
use crate::engine::ReviewOutcome;

/// The JSON report of `review FILE`: findings, the counts of those not shown, the revision
/// (`new`, the whole revised file) as a diff against `old`, usage and notes.
pub fn write_file_json(
    out: &mut impl Write,
    path: &str,
    rope: &Rope,
    outcome: &ReviewOutcome,
    old: &str,
    new: Option<&str>,
) -> std::io::Result<()> {
    let findings: Vec<Value> = outcome
        .findings
        .iter()
        .map(|f| {
            let (line, column) = line_col(rope, f.range.start);
            let (end_line, end_column) = line_col(rope, f.range.end);
            json!({
                "line": line, "column": column, "end_line": end_line, "end_column": end_column,
                "severity": f.raw.severity, "principle": f.raw.principle, "message": f.raw.message,
                "suggestion": f.raw.suggestion, "confidence": f.raw.confidence, "quote": f.raw.quote,
                "evidence": f.evidence, "evidence_text": f.evidence.as_ref().map(|e| e.sentence()),
            })
        })
        .collect();
    let revision = match (new, &outcome.revision) {
        (Some(new), Some(r)) => json!({
            "diff": unified_diff(path, old, new),
            "fixes": r.fixes,
            "remaining": r.remaining,
            "round": r.round,
        }),
        _ => Value::Null,
    };
    // The notes as the sentences they say: the JSON keeps strings.
    let notes: Vec<String> = outcome.notes.iter().map(ToString::to_string).collect();
    let doc = json!({
        "path": path,
        "findings": findings,
        "unanchored": outcome.withheld.unanchored,
        "out_of_selection": outcome.withheld.outside_selection,
        "low_confidence": outcome.low_confidence,
        "quote_is_message": outcome.withheld.quote_is_message,
        "repeated": outcome.withheld.repeated,
        "over_limit": outcome.withheld.over_limit,
        "not_agreed": outcome.withheld.not_agreed,
        "not_shown": outcome.not_shown(),
        "evidence": outcome.evidence,
        "iterations": outcome.iterations,
        "llm_calls": outcome.llm_calls,
        "usage": outcome.usage,
        "revision": revision,
        "notes": notes,
    });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

/// The JSON report of `review --diff`: findings with their fingerprints and fixes, revisions
/// and the run's summary counts.
pub fn change_json(found: &[Reported], revisions: &[TextRevision], totals: &Totals) -> Value {
    json!({
        "findings": found.iter().map(|f| json!({
            "path": f.path, "line": f.start.0, "column": f.start.1,
            "end_line": f.end.0, "end_column": f.end.1,
            "severity": f.severity, "principle": f.principle, "message": f.message,
            "quote": f.quote, "fingerprint": f.fingerprint,
            "fix": f.fix.iter().map(|x| json!({
                "start": [x.start.0, x.start.1], "end": [x.end.0, x.end.1], "text": x.text,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "revisions": revisions.iter().map(|r| json!({"path": r.path, "diff": r.diff})).collect::<Vec<_>>(),
        "summary": {
            "files": totals.files, "regions": totals.regions, "llm_calls": totals.llm_calls,
            "tokens": totals.tokens, "off_change": totals.off_change,
            "in_baseline": totals.in_baseline, "dismissed": totals.dismissed,
            "over_budget": totals.over_budget,
            "errors": totals.errors,
            "shard": totals.shard.map(|s| s.to_string()),
        },
    })
}

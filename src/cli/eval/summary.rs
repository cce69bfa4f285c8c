//! The summary of an eval run: each mode's rates and counts over its results, the gain of each
//! loop mode over `single`, and the text table.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value, json};

use super::results::TaskResult;
use crate::engine::Refusal;

/// The median of `xs`; `None` when there are none.
fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    Some(if xs.len().is_multiple_of(2) {
        (xs[m - 1] + xs[m]) / 2.0
    } else {
        xs[m]
    })
}

/// One mode's summary over its results.
fn summary(results: &[&TaskResult], mode: &str) -> Value {
    let ran: Vec<&&TaskResult> = results.iter().filter(|r| r.skipped.is_none()).collect();
    let n = ran.len().max(1) as f64;
    let count = |f: &dyn Fn(&TaskResult) -> bool| ran.iter().filter(|r| f(r)).count();
    let finds = mode != "single";
    let hits = count(&|r| r.buggy.hit);
    let passing = count(&|r| r.buggy.revision_passes == Some(true));
    let offered = count(&|r| r.buggy.revision);
    let flagged = count(&|r| r.correct.findings > 0);
    let drift_revisions = count(&|r| r.correct.revision);
    let drift_broken = count(&|r| r.correct.revision_passes == Some(false));
    let drift_findings: usize = ran.iter().map(|r| r.correct.findings).sum();
    let rejected: u32 = ran
        .iter()
        .map(|r| r.buggy.rejected + r.correct.rejected)
        .sum();
    let calls: u32 = ran
        .iter()
        .map(|r| r.buggy.llm_calls + r.correct.llm_calls)
        .sum();
    let tokens: u64 = ran.iter().map(|r| r.buggy.tokens + r.correct.tokens).sum();
    let errors = count(&|r| r.buggy.error.is_some() || r.correct.error.is_some());
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for run in ran.iter().flat_map(|r| [&r.buggy, &r.correct]) {
        for k in 0..run.rejections.len() {
            // A line written before the kinds were recorded has none: its refusals count as
            // "other".
            let kind = run
                .refusals
                .get(k)
                .map_or(Refusal::Other.label(), String::as_str);
            *reasons.entry(kind).or_default() += 1;
        }
    }
    let per_review: Vec<f64> = ran
        .iter()
        .flat_map(|r| {
            [
                r.buggy.wall_ms as f64 / 1000.0,
                r.correct.wall_ms as f64 / 1000.0,
            ]
        })
        .collect();
    let wall: f64 = per_review.iter().sum();
    json!({
        "tasks": ran.len(),
        "skipped": results.len() - ran.len(),
        "pass_at_1": passing as f64 / n,
        "bug_line_hit_rate": finds.then_some(hits as f64 / n),
        "false_positive_rate": finds.then_some(flagged as f64 / n),
        "revision_pass_rate": passing as f64 / n,
        "revisions_offered_on_buggy": offered,
        "offered_revisions_passing": passing,
        "drift_tasks_with_findings_on_correct_code": flagged,
        "drift_findings_on_correct_code": drift_findings,
        "drift_revisions_offered_on_correct_code": drift_revisions,
        "drift_revisions_breaking_tests": drift_broken,
        "bad_revisions_rejected": rejected,
        "rejection_reasons": reasons,
        "reviews_with_errors": errors,
        "model_calls_per_task": calls as f64 / n,
        "tokens_per_task": tokens as f64 / n,
        "median_review_secs": median(per_review),
        "wall_secs": wall,
    })
}

/// Every mode's summary, and each loop mode's gain in pass@1 over `single` (in points).
pub fn summaries(results: &[TaskResult], modes: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for mode in modes {
        let mine: Vec<&TaskResult> = results.iter().filter(|r| r.mode == *mode).collect();
        out.insert((*mode).to_owned(), summary(&mine, mode));
    }
    let single = out
        .get("single")
        .and_then(|s| s.get("pass_at_1"))
        .and_then(Value::as_f64);
    if let Some(single) = single {
        for mode in modes.iter().filter(|m| m.starts_with("loop/")) {
            if let Some(s) = out.get_mut(*mode).and_then(Value::as_object_mut) {
                let p = s.get("pass_at_1").and_then(Value::as_f64).unwrap_or(0.0);
                s.insert(
                    "gain_over_single_points".to_owned(),
                    json!(((p - single) * 1000.0).round() / 10.0),
                );
            }
        }
    }
    Value::Object(out)
}

/// The results as a table, one line per task and mode, then every mode's summary.
pub fn print_table(
    out: &mut impl Write,
    results: &[TaskResult],
    summaries: &Value,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<10} {:<20} {:<16} {:>5} {:>4} {:>9} {:>8} {:>6} {:>5} {:>7} {:>6}",
        "task",
        "mode",
        "bug",
        "found",
        "hit",
        "revision",
        "passes",
        "drift",
        "calls",
        "tokens",
        "secs"
    )?;
    for r in results {
        if let Some(why) = &r.skipped {
            writeln!(out, "{:<10} {:<20} skipped: {why}", r.task_id, r.mode)?;
            continue;
        }
        let yn = |b: bool| if b { "yes" } else { "no" };
        writeln!(
            out,
            "{:<10} {:<20} {:<16} {:>5} {:>4} {:>9} {:>8} {:>6} {:>5} {:>7} {:>6.0}",
            r.task_id,
            r.mode,
            r.bug_type,
            r.buggy.findings,
            yn(r.buggy.hit),
            yn(r.buggy.revision),
            r.buggy.revision_passes.map_or("-", yn),
            r.correct.findings,
            r.buggy.llm_calls + r.correct.llm_calls,
            r.buggy.tokens + r.correct.tokens,
            (r.buggy.wall_ms + r.correct.wall_ms) as f64 / 1000.0
        )?;
        for e in [&r.buggy.error, &r.correct.error].into_iter().flatten() {
            writeln!(out, "           error: {e}")?;
        }
    }
    for (mode, s) in summaries.as_object().into_iter().flatten() {
        writeln!(out)?;
        writeln!(out, "{mode}:")?;
        for (k, v) in s.as_object().into_iter().flatten() {
            writeln!(out, "  {k}: {v}")?;
        }
    }
    Ok(())
}

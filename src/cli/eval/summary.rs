//! The summary of an eval run: each mode's rates and counts over its results, the gain of each
//! loop mode over `single`, and the text table.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Map, Value, json};

use super::results::{Run, SeverityCounts, TaskResult};
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
    let drift_refusals = reasons.get(Refusal::Drift.label()).copied().unwrap_or(0);
    let mut out = json!({
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
    });
    if let Some(o) = out.as_object_mut() {
        o.extend(severity_measures(&ran, finds));
        o.extend(evidence_measures(&ran, drift_refusals));
    }
    out
}

/// Hits and false positives by severity: the bug's lines hit at any severity and at warning or
/// worse, correct solutions with any finding and with one of warning or worse, the findings
/// on correct code by severity, and the revisions offered on correct code that break its tests.
fn severity_measures(ran: &[&&TaskResult], finds: bool) -> Map<String, Value> {
    let n = ran.len().max(1) as f64;
    let count = |f: &dyn Fn(&TaskResult) -> bool| ran.iter().filter(|r| f(r)).count();
    let hits = count(&|r| r.buggy.hit);
    let hits_warning = count(&|r| r.buggy.hit_warning);
    let flagged = count(&|r| r.correct.findings > 0);
    let flagged_warning = count(&|r| r.correct.findings_by_severity.warning_or_worse() > 0);
    let mut on_correct = SeverityCounts::default();
    for r in ran {
        let c = r.correct.findings_by_severity;
        on_correct.error += c.error;
        on_correct.warning += c.warning;
        on_correct.info += c.info;
        on_correct.hint += c.hint;
    }
    let rate = |k: usize| finds.then_some(k as f64 / n);
    let mut m = Map::new();
    m.insert("bug_line_hits".into(), json!(hits));
    m.insert("bug_line_hits_warning".into(), json!(hits_warning));
    m.insert(
        "bug_line_hit_rate_warning".into(),
        json!(rate(hits_warning)),
    );
    m.insert("correct_with_finding".into(), json!(flagged));
    m.insert(
        "correct_with_warning_finding".into(),
        json!(flagged_warning),
    );
    m.insert(
        "false_positive_rate_warning".into(),
        json!(rate(flagged_warning)),
    );
    m.insert("findings_on_correct_by_severity".into(), json!(on_correct));
    m.insert(
        "revisions_on_correct_code".into(),
        json!(count(&|r| r.correct.revision)),
    );
    m.insert(
        "revisions_on_correct_code_breaking_tests".into(),
        json!(count(&|r| r.correct.revision_passes == Some(false))),
    );
    m
}

/// What the reviews' own evidence came to: probe calls run, counterexamples found, candidates
/// refused as drift (and the drift refusals among the notes), verified regression tests, and
/// reviews whose probes did not run.
fn evidence_measures(ran: &[&&TaskResult], drift_refusals: usize) -> Map<String, Value> {
    let runs: Vec<&Run> = ran.iter().flat_map(|r| [&r.buggy, &r.correct]).collect();
    let sum = |f: &dyn Fn(&Run) -> usize| runs.iter().map(|r| f(r)).sum::<usize>();
    let mut m = Map::new();
    m.insert("probes_run".into(), json!(sum(&|r| r.evidence.probe_calls)));
    m.insert(
        "probe_inputs".into(),
        json!(sum(&|r| r.evidence.probe_inputs)),
    );
    m.insert(
        "doc_examples_failing".into(),
        json!(sum(&|r| r.evidence.doc_examples_failing)),
    );
    m.insert(
        "counterexamples_found".into(),
        json!(sum(&|r| usize::from(r.evidence.counterexample.is_some()))),
    );
    m.insert(
        "counterexamples_on_buggy".into(),
        json!(
            ran.iter()
                .filter(|r| r.buggy.evidence.counterexample.is_some())
                .count()
        ),
    );
    m.insert(
        "regression_tests_verified".into(),
        json!(sum(&|r| usize::from(r.evidence.regression_test_verified))),
    );
    m.insert(
        "drift_refused".into(),
        json!(sum(&|r| r.evidence.drift_refused)),
    );
    m.insert("drift_refusals".into(), json!(drift_refusals));
    m.insert(
        "reviews_without_probes".into(),
        json!(sum(&|r| usize::from(r.evidence.no_probes.is_some()))),
    );
    m
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
        "{:<10} {:<20} {:<16} {:>5} {:>4} {:>9} {:>8} {:>6} {:>5} {:>7} {:>6} {:>5} {:>6}",
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
        "secs",
        "hitW",
        "probes"
    )?;
    for r in results {
        if let Some(why) = &r.skipped {
            writeln!(out, "{:<10} {:<20} skipped: {why}", r.task_id, r.mode)?;
            continue;
        }
        let yn = |b: bool| if b { "yes" } else { "no" };
        writeln!(
            out,
            "{:<10} {:<20} {:<16} {:>5} {:>4} {:>9} {:>8} {:>6} {:>5} {:>7} {:>6.0} {:>5} {:>6}",
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
            (r.buggy.wall_ms + r.correct.wall_ms) as f64 / 1000.0,
            yn(r.buggy.hit_warning),
            r.buggy.evidence.probe_calls + r.correct.evidence.probe_calls
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
        print_measures(out, s)?;
    }
    Ok(())
}

/// The measures of one mode's summary `s`, one named line each.
fn print_measures(out: &mut impl Write, s: &Value) -> std::io::Result<()> {
    let n = |k: &str| s.get(k).map_or_else(|| "-".to_owned(), Value::to_string);
    let tasks = n("tasks");
    writeln!(
        out,
        "  = bug's lines hit: {}/{tasks} at any severity, {}/{tasks} at warning or worse",
        n("bug_line_hits"),
        n("bug_line_hits_warning")
    )?;
    writeln!(
        out,
        "  = correct code flagged: {}/{tasks} with any finding, {}/{tasks} with a warning or worse",
        n("correct_with_finding"),
        n("correct_with_warning_finding")
    )?;
    writeln!(
        out,
        "  = revisions offered on correct code: {}, of which break its tests: {}",
        n("revisions_on_correct_code"),
        n("revisions_on_correct_code_breaking_tests")
    )?;
    writeln!(
        out,
        "  = probes run: {}; counterexamples found: {}; drift refused: {} ({} drift refusal(s))",
        n("probes_run"),
        n("counterexamples_found"),
        n("drift_refused"),
        n("drift_refusals")
    )?;
    writeln!(out, "  = median review: {} s", n("median_review_secs"))
}

#[cfg(test)]
mod tests {
    use super::super::args::{Docs, VerifyMode};
    use super::super::results::{Run, RunEvidence, SeverityCounts};
    use super::*;

    fn counts(error: usize, warning: usize, info: usize, hint: usize) -> SeverityCounts {
        SeverityCounts {
            error,
            warning,
            info,
            hint,
        }
    }

    fn result(id: &str, buggy: Run, correct: Run) -> TaskResult {
        TaskResult {
            task_id: id.to_owned(),
            bug_type: String::new(),
            mode: "loop/fix-first".to_owned(),
            verify: VerifyMode::Probes,
            docs: Docs::Fix,
            model: "m".to_owned(),
            buggy,
            correct,
            skipped: None,
        }
    }

    fn found(by: SeverityCounts, hit: bool, hit_warning: bool) -> Run {
        Run {
            findings: by.error + by.warning + by.info + by.hint,
            findings_by_severity: by,
            hit,
            hit_warning,
            ..Run::default()
        }
    }

    /// Four tasks: a warning on the bug; a hint on the bug and a warning elsewhere; nothing;
    /// a drift refusal. Correct code: a hint; an error and a revision breaking its tests; a
    /// revision passing them; nothing.
    fn four() -> Vec<TaskResult> {
        let counterexample = RunEvidence {
            probe_calls: 12,
            probe_inputs: 6,
            counterexample: Some("`f(2)` returns 0; ...".to_owned()),
            regression_test_verified: true,
            ..RunEvidence::default()
        };
        let drifted = Run {
            evidence: RunEvidence {
                probe_calls: 8,
                drift_refused: 2,
                ..RunEvidence::default()
            },
            rejections: vec!["fix 1 refused as drift".to_owned()],
            refusals: vec![Refusal::Drift.label().to_owned()],
            ..Run::default()
        };
        let breaking = Run {
            revision: true,
            revision_passes: Some(false),
            ..found(counts(1, 0, 0, 0), false, false)
        };
        let passing = Run {
            revision: true,
            revision_passes: Some(true),
            ..Run::default()
        };
        vec![
            result(
                "T/1",
                Run {
                    evidence: counterexample,
                    ..found(counts(0, 1, 0, 0), true, true)
                },
                found(counts(0, 0, 0, 1), false, false),
            ),
            result("T/2", found(counts(0, 1, 0, 1), true, false), breaking),
            result("T/3", Run::default(), passing),
            result("T/4", drifted, Run::default()),
        ]
    }

    #[test]
    fn hits_and_false_positives_are_counted_at_any_severity_and_at_warning_or_worse() {
        let s = summaries(&four(), &["loop/fix-first"]);
        let s = &s["loop/fix-first"];
        assert_eq!(s["tasks"], 4);
        assert_eq!(s["bug_line_hits"], 2);
        assert_eq!(s["bug_line_hit_rate"], 0.5);
        assert_eq!(
            s["bug_line_hits_warning"], 1,
            "a hint on the bug is not a warning hit"
        );
        assert_eq!(s["bug_line_hit_rate_warning"], 0.25);
        assert_eq!(s["correct_with_finding"], 2);
        assert_eq!(s["drift_tasks_with_findings_on_correct_code"], 2);
        assert_eq!(s["false_positive_rate"], 0.5);
        assert_eq!(s["correct_with_warning_finding"], 1, "the hint is not");
        assert_eq!(s["false_positive_rate_warning"], 0.25);
        assert_eq!(
            s["findings_on_correct_by_severity"],
            json!({"error": 1, "warning": 0, "info": 0, "hint": 1})
        );
    }

    #[test]
    fn revisions_on_correct_code_that_break_its_tests_and_the_evidence_are_named_measures() {
        let s = summaries(&four(), &["loop/fix-first"]);
        let s = &s["loop/fix-first"];
        assert_eq!(s["revisions_on_correct_code"], 2);
        assert_eq!(s["revisions_on_correct_code_breaking_tests"], 1);
        assert_eq!(s["drift_revisions_breaking_tests"], 1, "the old name stays");
        assert_eq!(s["probes_run"], 20);
        assert_eq!(s["probe_inputs"], 6);
        assert_eq!(s["counterexamples_found"], 1);
        assert_eq!(s["counterexamples_on_buggy"], 1);
        assert_eq!(s["regression_tests_verified"], 1);
        assert_eq!(s["drift_refused"], 2);
        assert_eq!(s["drift_refusals"], 1);
        assert_eq!(s["rejection_reasons"]["drift"], 1);
        let mut text = Vec::new();
        print_table(&mut text, &four(), &summaries(&four(), &["loop/fix-first"])).unwrap();
        let text = String::from_utf8(text).unwrap();
        for line in [
            "  = bug's lines hit: 2/4 at any severity, 1/4 at warning or worse",
            "  = correct code flagged: 2/4 with any finding, 1/4 with a warning or worse",
            "  = revisions offered on correct code: 2, of which break its tests: 1",
            "  = probes run: 20; counterexamples found: 1; drift refused: 2 (1 drift refusal(s))",
            "  bug_line_hit_rate: 0.5",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn the_median_review_is_per_mode() {
        let mut results = four();
        for (i, r) in results.iter_mut().enumerate() {
            r.buggy.wall_ms = 1000 * (i as u64 + 1);
            r.correct.wall_ms = 1000;
        }
        results[3].mode = "single".to_owned();
        let s = summaries(&results, &["loop/fix-first", "single"]);
        // fix-first: 1, 2, 3 and three 1s: median of [1, 1, 1, 1, 2, 3] is 1.
        assert_eq!(s["loop/fix-first"]["median_review_secs"], 1.0);
        assert_eq!(s["single"]["median_review_secs"], 2.5);
    }
}

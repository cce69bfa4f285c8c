//! The text reports: `path:line:col: severity: message [principle]` lines, what was not shown,
//! and the revision as a unified diff.

use std::io::Write;

use ropey::Rope;

use super::finding::{Reported, line_col};
use super::revision::{TextRevision, unified_diff};
use crate::engine::ReviewOutcome;

/// The text report of `review FILE`: its findings, why others were not shown, and the
/// revision (`new`, the whole revised file) as a diff against `old`.
pub fn write_file_text(
    out: &mut impl Write,
    path: &str,
    rope: &Rope,
    outcome: &ReviewOutcome,
    old: &str,
    new: Option<&str>,
) -> std::io::Result<()> {
    for f in &outcome.findings {
        let (line, col) = line_col(rope, f.range.start);
        writeln!(
            out,
            "{path}:{line}:{col}: {}: {} [{}]",
            f.raw.severity.as_str(),
            f.shown_message().replace('\n', " "),
            f.raw.principle
        )?;
    }
    let not_shown = outcome.not_shown();
    if outcome.findings.is_empty() {
        if not_shown.is_empty() {
            writeln!(out, "{path}: no issues")?;
        } else {
            // Not "no issues": the model did report something, it just could not be placed.
            writeln!(out, "{path}: no findings shown")?;
        }
    }
    for sentence in not_shown {
        writeln!(out, "({sentence})")?;
    }
    if let (Some(new), Some(r)) = (new, &outcome.revision) {
        writeln!(
            out,
            "\nrevision (fixes {} of {} findings):",
            r.fixes,
            outcome.findings.len()
        )?;
        write!(out, "{}", unified_diff(path, old, new))?;
    }
    write_evidence(out, path, outcome, old)
}

/// What the review's own evidence came to: probes run, the counterexample, and the regression
/// test that keeps it (checked to fail on the original and pass on the revision).
fn write_evidence(
    out: &mut impl Write,
    path: &str,
    outcome: &ReviewOutcome,
    old: &str,
) -> std::io::Result<()> {
    let e = &outcome.evidence;
    if e.probe_calls > 0 {
        writeln!(
            out,
            "\nprobes: {} input(s), {} call(s) run in {} version(s); {} doc example(s), {} failing",
            e.probe_inputs,
            e.probe_calls,
            e.candidates + 1,
            e.doc_examples,
            e.doc_examples_failing
        )?;
    }
    let Some(c) = &e.counterexample else {
        return Ok(());
    };
    writeln!(out, "counterexample: {}", c.sentence())?;
    let language = crate::probe::Language::of(crate::lang::language_for_path(path));
    let call = c.expected_call();
    if let (true, Some(test)) = (
        e.regression_test_verified,
        language.and_then(|l| crate::probe::regression::regression_test(l, old, &call)),
    ) {
        writeln!(
            out,
            "regression test (fails on the original, passes on the revision):\n{}",
            test.text.trim_matches('\n')
        )?;
    }
    Ok(())
}

/// The text report of `review --diff`: its findings, and each revision's diff.
pub fn change_text(found: &[Reported], revisions: &[TextRevision]) -> String {
    let mut out = String::new();
    for f in found {
        out.push_str(&format!(
            "{}:{}:{}: {}: {} [{}]\n",
            f.path,
            f.start.0,
            f.start.1,
            f.severity.as_str(),
            f.message.replace('\n', " "),
            f.principle
        ));
    }
    if found.is_empty() {
        out.push_str("no issues on the changed lines\n");
    }
    for r in revisions {
        out.push_str(&format!("\nrevision of {}:\n{}", r.path, r.diff));
    }
    out
}

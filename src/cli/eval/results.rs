//! What eval records: each review's [`Run`], each task's [`TaskResult`] in a mode (a line of
//! `--out`), reading them back for `--resume`, and the progress line of one.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::args::{Docs, VerifyMode};
use crate::engine::outcome::EvidenceSummary;
use crate::engine::{Finding, Severity};

/// What one review of one solution gave.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Run {
    /// Findings shown.
    pub findings: usize,
    /// Shown findings on the changed lines (buggy runs only).
    pub hit: bool,
    /// A revision was offered.
    pub revision: bool,
    /// The offered revision passes the tests.
    pub revision_passes: Option<bool>,
    /// Revisions verification refused.
    pub rejected: u32,
    /// Model calls.
    pub llm_calls: u32,
    /// Tokens in and out.
    pub tokens: u64,
    /// The review's error, if it failed.
    pub error: Option<String>,
    /// Why each refused or set-aside revision was.
    pub rejections: Vec<String>,
    /// The kind of each of `rejections`, in the same order: eval's label of its refusal ("does
    /// not parse", "changes a signature", ..., "other"). Lines written before the kinds were
    /// recorded have none.
    pub refusals: Vec<String>,
    /// Wall time of the review, in milliseconds.
    pub wall_ms: u64,
    /// The shown findings, counted by severity.
    pub findings_by_severity: SeverityCounts,
    /// A shown finding of warning or error severity on the changed lines (buggy runs only).
    pub hit_warning: bool,
    /// What the review's own evidence came to (probes, doc examples, sampled fixes).
    pub evidence: RunEvidence,
}

/// Findings counted by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeverityCounts {
    /// Errors.
    pub error: usize,
    /// Warnings.
    pub warning: usize,
    /// Infos.
    pub info: usize,
    /// Hints.
    pub hint: usize,
}

impl SeverityCounts {
    /// The counts of `findings`.
    pub fn of(findings: &[Finding]) -> Self {
        let mut c = SeverityCounts::default();
        for f in findings {
            match f.raw.severity {
                Severity::Error => c.error += 1,
                Severity::Warning => c.warning += 1,
                Severity::Info => c.info += 1,
                Severity::Hint => c.hint += 1,
            }
        }
        c
    }

    /// Findings of warning or error severity.
    pub fn warning_or_worse(&self) -> usize {
        self.error + self.warning
    }
}

/// The review's evidence summary as eval records it (the counterexample as its sentence).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunEvidence {
    /// Probe inputs run.
    pub probe_inputs: usize,
    /// Calls executed in all (inputs × versions).
    pub probe_calls: usize,
    /// Doc examples run on the original.
    pub doc_examples: usize,
    /// ... failing on the original.
    pub doc_examples_failing: usize,
    /// Candidate versions compared.
    pub candidates: usize,
    /// Candidates refused as drift.
    pub drift_refused: usize,
    /// The offered revision's counterexample, as its sentence.
    pub counterexample: Option<String>,
    /// A regression test of the counterexample was checked.
    pub regression_test_verified: bool,
    /// Why no probe ran, if none did.
    pub no_probes: Option<String>,
}

impl From<&EvidenceSummary> for RunEvidence {
    fn from(e: &EvidenceSummary) -> Self {
        RunEvidence {
            probe_inputs: e.probe_inputs,
            probe_calls: e.probe_calls,
            doc_examples: e.doc_examples,
            doc_examples_failing: e.doc_examples_failing,
            candidates: e.candidates,
            drift_refused: e.drift_refused,
            counterexample: e.counterexample.as_ref().map(|c| c.sentence()),
            regression_test_verified: e.regression_test_verified,
            no_probes: e.no_probes.clone(),
        }
    }
}

/// One task's result in one mode: a line of `--out`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskResult {
    /// `Rust/0`.
    pub task_id: String,
    /// Kind of bug.
    #[serde(default)]
    pub bug_type: String,
    /// `loop/critique-first`, `loop/fix-first`, `single` or `critique`.
    pub mode: String,
    /// What verified revisions inside the loop.
    pub verify: VerifyMode,
    /// Whether the task's docstring was in its file (`none` for lines written before `--docs`).
    #[serde(default)]
    pub docs: Docs,
    /// The model (as the provider describes it).
    pub model: String,
    /// The review of the buggy solution.
    #[serde(default)]
    pub buggy: Run,
    /// The review of the correct solution (drift).
    #[serde(default)]
    pub correct: Run,
    /// Why the task was skipped, if it was.
    #[serde(default)]
    pub skipped: Option<String>,
}

impl TaskResult {
    /// Whether this result was made with `verify`, `docs` and `model`: the results `--resume`
    /// keeps (and whose tasks it skips).
    pub fn made_with(&self, verify: VerifyMode, docs: Docs, model: &str) -> bool {
        self.verify == verify && self.docs == docs && self.model == model
    }
}

/// The results `--out` already holds (lines that cannot be read are skipped, and counted).
pub fn read_results(path: &Path) -> (Vec<TaskResult>, usize) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (Vec::new(), 0);
    };
    let mut bad = 0;
    let results = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let r = serde_json::from_str::<TaskResult>(l).ok();
            bad += usize::from(r.is_none());
            r
        })
        .collect();
    (results, bad)
}

/// One line of progress for a finished task run.
pub fn describe(r: &TaskResult) -> String {
    if let Some(why) = &r.skipped {
        return format!("{} {}: skipped ({why})", r.task_id, r.mode);
    }
    let revision = match r.buggy.revision_passes {
        Some(true) => "revision passes the tests",
        Some(false) => "revision fails the tests",
        None => "no revision",
    };
    format!(
        "{} {}: {} finding(s){}, {revision}; correct code: {} finding(s){} ({:.0} s)",
        r.task_id,
        r.mode,
        r.buggy.findings,
        if r.buggy.hit { " on the bug" } else { "" },
        r.correct.findings,
        if r.correct.revision {
            ", a revision"
        } else {
            ""
        },
        (r.buggy.wall_ms + r.correct.wall_ms) as f64 / 1000.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_twos_lines_read_back_without_docs_or_evidence_and_resume_only_without_docs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run2.jsonl");
        let run2 = include_str!("../../../tests/data/eval-runs/compile-1.5b-single.jsonl");
        std::fs::write(&path, run2).unwrap();
        let (results, bad) = read_results(&path);
        assert_eq!(bad, 0);
        assert_eq!(
            results.len(),
            run2.lines().filter(|l| !l.trim().is_empty()).count()
        );
        let r = &results[0];
        assert_eq!(r.docs, Docs::None, "a line without `docs` was made without");
        assert_eq!(r.buggy.findings_by_severity, SeverityCounts::default());
        assert!(!r.buggy.hit_warning);
        assert_eq!(r.buggy.evidence, RunEvidence::default());
        assert!(r.made_with(VerifyMode::Compile, Docs::None, &r.model));
        assert!(!r.made_with(VerifyMode::Compile, Docs::Fix, &r.model));
        assert!(!r.made_with(VerifyMode::Probes, Docs::None, &r.model));
        // Written again, the new fields are there, and it reads back the same.
        let line = serde_json::to_string(r).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["docs"], "none");
        assert_eq!(v["buggy"]["findings_by_severity"]["warning"], 0);
        assert_eq!(
            v["buggy"]["evidence"]["counterexample"],
            serde_json::Value::Null
        );
        let back: TaskResult = serde_json::from_str(&line).unwrap();
        assert_eq!(back.buggy.evidence, r.buggy.evidence);
    }
}

//! What eval records: each review's [`Run`], each task's [`TaskResult`] in a mode (a line of
//! `--out`), reading them back for `--resume`, and the progress line of one.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::args::VerifyMode;

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

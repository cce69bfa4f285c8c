//! A task of the dataset (HumanEvalPack's format): the file each of its solutions makes, the
//! lines under review, and the lines the bug is on.

use std::path::Path;

use serde::Deserialize;

/// One task as the dataset states it.
#[derive(Debug, Clone, Deserialize)]
pub struct Task {
    /// `Rust/0`.
    pub task_id: String,
    /// Imports and the signature.
    pub declaration: String,
    /// A correct body.
    pub canonical_solution: String,
    /// The body with one bug.
    pub buggy_solution: String,
    /// A `#[cfg(test)]` module.
    pub test: String,
    /// Kind of bug.
    #[serde(default)]
    pub bug_type: String,
}

/// Crates the sample's declarations import that a bare `rustc` does not have: the import,
/// the name a solution uses, and the path prefix a test uses.
const EXTERNAL_USES: &[(&str, &str, &str)] = &[
    ("use rand::Rng;", "rand", "rand::"),
    ("use regex::Regex;", "Regex", "regex::"),
    ("use md5;", "md5", "md5::"),
];

impl Task {
    /// The file for one solution: declaration, body, tests; external imports dropped when
    /// unused (`None` when the solution needs them).
    pub(super) fn file(&self, solution: &str) -> Option<String> {
        let mut decl = self.declaration.clone();
        for (line, name, path) in EXTERNAL_USES {
            // A test that needs the crate cannot be run, and the task cannot be judged.
            if self.canonical_solution.contains(name)
                || self.buggy_solution.contains(name)
                || self.test.contains(path)
            {
                return None;
            }
            decl = decl.replace(line, "");
        }
        Some(format!(
            "#![allow(unused, deprecated)]\n{}{}\n{}",
            decl, solution, self.test
        ))
    }

    /// Zero-based lines of the function under review: from the declaration's last `fn` line to
    /// the end of the body.
    pub(super) fn function_lines(&self, file: &str, solution: &str) -> (usize, usize) {
        let head = file.len() - solution.len() - 1 - self.test.len();
        let before: &str = &file[..head];
        let fn_line = before
            .lines()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with("fn ") || l.contains(" fn "))
            .map(|(i, _)| i)
            .last()
            .unwrap_or(0);
        let end = before.lines().count() + solution.trim_end().lines().count();
        (fn_line, end.saturating_sub(1).max(fn_line))
    }

    /// Zero-based file lines where the buggy body differs from the correct one.
    pub(super) fn bug_lines(&self, file: &str) -> Vec<usize> {
        let head = file.len() - self.buggy_solution.len() - 1 - self.test.len();
        let offset = file[..head].lines().count();
        let diff = similar::TextDiff::from_lines(&self.buggy_solution, &self.canonical_solution);
        let mut lines = Vec::new();
        for op in diff.ops() {
            let r = op.old_range();
            match op.tag() {
                similar::DiffTag::Equal => {}
                similar::DiffTag::Insert => lines.push(offset + r.start.saturating_sub(1)),
                _ => lines.extend(r.map(|l| offset + l)),
            }
        }
        lines
    }
}

/// The tasks of a JSONL dataset, at most `limit` of them.
pub fn read_tasks(path: &Path, limit: Option<usize>) -> Result<Vec<Task>, String> {
    // (`limit` None: all of them.)
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut tasks = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let task: Task = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: not a task ({e})", path.display(), i + 1))?;
        tasks.push(task);
    }
    tasks.truncate(limit.unwrap_or(usize::MAX));
    Ok(tasks)
}

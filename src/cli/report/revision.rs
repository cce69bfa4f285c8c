//! A revision as the reports show it: a unified diff of the file.

/// One revision of the text and JSON reports of `review --diff`: the file, and its diff.
pub struct TextRevision {
    /// Path relative to the repository root.
    pub path: String,
    /// Its unified diff.
    pub diff: String,
}

/// The unified diff from `old` to `new`, `a/path` and `b/path` as its header, 3 lines of
/// context.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    let (a, b) = (format!("a/{path}"), format!("b/{path}"));
    crate::engine::edits::unified_diff(old, new, 3, 1, Some((&a, &b))).0
}

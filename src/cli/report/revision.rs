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
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

//! `review --diff`: which lines of which files a change adds or changes (from `git diff` or a
//! unified diff on stdin), and the regions to review for them: each changed line widened to
//! its enclosing function or item (tree-sitter), the hunks of one item reviewed together.
//!
//! The diff is read with `--unified=0`, so every `+` line is an added or changed line and the
//! hunk headers alone say where they are; parsing that is a few lines, not a dependency.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tree_sitter::{Node, Parser};

use crate::lang::{grammar, interface_kinds};

/// What the change is measured against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// The merge base with the upstream branch, else `HEAD~1`.
    Default,
    /// A commit, branch or tag.
    Rev(String),
    /// A unified diff on stdin (`--diff -`).
    Stdin,
}

/// One file of the change: its path (relative to the repository root) and its added or changed
/// lines (zero-based, ascending, in the new version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    /// Added or changed lines of the new version, zero-based, ascending.
    pub lines: Vec<usize>,
}

/// Runs git in `root` and returns its stdout.
pub(super) fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "git {} failed: {}",
            args.join(" "),
            err.lines().next().unwrap_or("").trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("git {} printed non-UTF-8", args.join(" ")))
}

/// The repository's top folder, seen from `dir`.
pub fn repo_root(dir: &Path) -> Result<PathBuf, String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])
        .map_err(|e| format!("--diff needs a git repository: {e}"))?;
    Ok(PathBuf::from(top.trim()))
}

/// The commit `Base::Default` means: the merge base with the upstream branch, else `HEAD~1`.
pub(super) fn default_base(root: &Path) -> Result<String, String> {
    if let Ok(mb) = git(root, &["merge-base", "HEAD", "@{upstream}"]) {
        return Ok(mb.trim().to_owned());
    }
    git(root, &["rev-parse", "--verify", "--quiet", "HEAD~1"])
        .map(|s| s.trim().to_owned())
        .map_err(|_| {
            "--diff: no upstream branch and no HEAD~1 to compare with; name a base (`--diff main`)"
                .to_owned()
        })
}

/// The unified diff (`--unified=0`) of the change, limited to `paths` (git pathspecs).
/// `staged`: the index against `HEAD`; `rev`: `base` against that commit.
pub fn unified_diff(
    root: &Path,
    base: &Base,
    staged: bool,
    rev: Option<&str>,
    paths: &[String],
    stdin: &mut dyn std::io::Read,
) -> Result<String, String> {
    if *base == Base::Stdin {
        let mut text = String::new();
        stdin
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the diff on stdin: {e}"))?;
        return Ok(text);
    }
    let mut args: Vec<String> = [
        "diff",
        "--unified=0",
        "--no-color",
        "--no-ext-diff",
        "--no-renames",
        "--diff-filter=AM",
    ]
    .map(str::to_owned)
    .to_vec();
    if staged {
        args.push("--cached".to_owned());
    }
    // Revisions come from the command line (often a CI variable): past this marker git takes
    // nothing as an option, so `--diff=--output=FILE` cannot make it write a file.
    args.push("--end-of-options".to_owned());
    if staged {
        if let Base::Rev(b) = base {
            args.push(checked_rev(b)?.to_owned());
        }
    } else {
        let b = match base {
            Base::Rev(b) => checked_rev(b)?.to_owned(),
            _ => default_base(root)?,
        };
        args.push(b);
        if let Some(r) = rev {
            args.push(checked_rev(r)?.to_owned());
        }
    }
    args.push("--".to_owned());
    args.extend(paths.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    git(root, &refs)
}

/// `rev` when it can name a revision; an error for one that starts with `-`, which git would
/// read as an option (no branch, tag or commit name starts with one).
pub(super) fn checked_rev(rev: &str) -> Result<&str, String> {
    if rev.starts_with('-') {
        return Err(format!(
            "`{rev}` is not a revision (it starts with `-`, so git would take it for an option); name a branch, tag or commit"
        ));
    }
    Ok(rev)
}

/// Parses a unified diff: per new file, the lines it adds or changes. Deleted files, binary
/// files and malformed headers are left out; a diff with context lines is read correctly too.
/// Hunk lines are counted from the `@@ -a,b +c,d @@` header, so an added line that itself
/// starts with `++ ` is not taken for a file header.
pub fn parse(diff: &str) -> Vec<FileChange> {
    let mut files: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut next_new: usize = 0;
    // Lines of the current hunk still to come, old side and new side.
    let (mut old_left, mut new_left) = (0usize, 0usize);
    for line in diff.lines() {
        if old_left > 0 || new_left > 0 {
            match line.as_bytes().first() {
                Some(b'+') => {
                    if let Some(path) = &current {
                        files.entry(path.clone()).or_default().push(next_new);
                    }
                    next_new = next_new.saturating_add(1);
                    new_left = new_left.saturating_sub(1);
                }
                Some(b'-') => old_left = old_left.saturating_sub(1),
                Some(b' ') | None => {
                    next_new = next_new.saturating_add(1);
                    old_left = old_left.saturating_sub(1);
                    new_left = new_left.saturating_sub(1);
                }
                // `\ No newline at end of file`.
                Some(b'\\') => {}
                // Anything else ends a malformed hunk.
                _ => (old_left, new_left) = (0, 0),
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("+++ ") {
            let path = rest.split('\t').next().unwrap_or("").trim();
            current = (path != "/dev/null" && !path.is_empty())
                .then(|| path.strip_prefix("b/").unwrap_or(path).to_owned());
        } else if line.starts_with("diff ") {
            current = None;
        } else if let Some(header) = line.strip_prefix("@@ ") {
            let mut old = None;
            let mut new = None;
            for t in header.split_whitespace().take(2) {
                if let Some(r) = t.strip_prefix('-') {
                    old = range(r);
                } else if let Some(r) = t.strip_prefix('+') {
                    new = range(r);
                }
            }
            if let (Some((_, b)), Some((c, d))) = (old, new) {
                // A count of 0 names the line before the (empty) range.
                next_new = if d == 0 { c } else { c.saturating_sub(1) };
                (old_left, new_left) = (b, d);
            }
        }
    }
    files
        .into_iter()
        .map(|(path, mut lines)| {
            lines.sort_unstable();
            lines.dedup();
            FileChange { path, lines }
        })
        .collect()
}

/// `c,d` or `c` (count 1) of a hunk header.
fn range(r: &str) -> Option<(usize, usize)> {
    let (c, d) = r.split_once(',').unwrap_or((r, "1"));
    Some((c.parse().ok()?, d.parse().ok()?))
}

/// One region to review: zero-based inclusive lines, and the changed lines in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// First line (zero-based).
    pub first: usize,
    /// Last line (zero-based, inclusive).
    pub last: usize,
    /// Changed lines inside it.
    pub changed: Vec<usize>,
}

/// The regions to review in `text` for its changed `lines`: each line widened to the smallest
/// enclosing function or item the language's grammar knows (the line alone when there is
/// none), overlapping or adjacent regions merged, so that hunks of one item make one review.
pub fn regions(text: &str, language: &str, lines: &[usize]) -> Vec<Region> {
    let total = text.lines().count();
    let tree = grammar(language).and_then(|g| {
        let mut p = Parser::new();
        p.set_language(&g).ok()?;
        p.parse(text, None)
    });
    let kinds = interface_kinds(language);
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for &line in lines.iter().filter(|l| **l < total) {
        let span = tree
            .as_ref()
            .and_then(|t| enclosing_item(t.root_node(), line, kinds))
            .unwrap_or((line, line));
        spans.push(span);
    }
    spans.sort_unstable();
    let mut merged: Vec<Region> = Vec::new();
    for (first, last) in spans {
        match merged.last_mut() {
            Some(r) if first <= r.last.saturating_add(1) => r.last = r.last.max(last),
            _ => merged.push(Region {
                first,
                last,
                changed: Vec::new(),
            }),
        }
    }
    for r in &mut merged {
        r.changed = lines
            .iter()
            .copied()
            .filter(|l| (r.first..=r.last).contains(l))
            .collect();
    }
    merged
}

/// The smallest node of one of `kinds` whose lines hold `line`.
fn enclosing_item(root: Node<'_>, line: usize, kinds: &[(&str, bool)]) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    let mut cursor = root.walk();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        let (s, e) = (node.start_position().row, node.end_position().row);
        if line < s || line > e {
            continue;
        }
        if kinds.iter().any(|(k, _)| *k == node.kind()) {
            best = Some((s, e));
        }
        stack.extend(node.children(&mut cursor));
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_that_looks_like_an_option_is_refused() {
        assert_eq!(checked_rev("main"), Ok("main"));
        assert_eq!(checked_rev("HEAD~1"), Ok("HEAD~1"));
        for bad in ["--output=/tmp/x", "-p", "-"] {
            let e = checked_rev(bad).unwrap_err();
            assert!(e.contains("not a revision") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn added_and_changed_lines_come_from_the_hunk_headers() {
        let diff = "diff --git a/src/a.rs b/src/a.rs\n--- a/src/a.rs\n+++ b/src/a.rs\n@@ -3 +3 @@ fn a()\n-    old\n+    new\n@@ -10,0 +11,2 @@\n+x\n+y\ndiff --git a/gone.rs b/gone.rs\n--- a/gone.rs\n+++ /dev/null\n@@ -1 +0,0 @@\n-z\n";
        assert_eq!(
            parse(diff),
            vec![FileChange {
                path: "src/a.rs".into(),
                lines: vec![2, 10, 11]
            }]
        );
        // With context lines, and garbage.
        let ctx = "--- a/b.py\n+++ b/b.py\n@@ -1,3 +1,4 @@\n a\n+b\n c\n\\ No newline at end of file\n@@ x @@\n+ignored?\n";
        assert_eq!(parse(ctx)[0].lines, vec![1]);
        // An added line that looks like a file header is still an added line.
        let tricky = "--- a/c.rs\n+++ b/c.rs\n@@ -0,0 +1,2 @@\n+++ x\n+--- y\n";
        assert_eq!(parse(tricky)[0].lines, vec![0, 1]);
        assert!(parse("not a diff\n+++\n@@ -1 +q @@\n+a\n").is_empty());
    }

    #[cfg(feature = "lang-rust")]
    #[test]
    fn lines_widen_to_their_function_and_one_function_is_one_region() {
        let code =
            "fn a() {\n    1;\n    2;\n}\n\nfn b() {\n    3;\n}\n// loose\nconst C: i32 = 1;\n";
        let r = regions(code, "rust", &[1, 2, 8]);
        assert_eq!(
            r,
            vec![
                Region {
                    first: 0,
                    last: 3,
                    changed: vec![1, 2]
                },
                Region {
                    first: 8,
                    last: 8,
                    changed: vec![8]
                }
            ]
        );
        // Lines past the end are dropped.
        assert_eq!(regions(code, "rust", &[99]), vec![]);
    }
}

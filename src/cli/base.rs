//! `review --diff` is steered by the base of the change, never by the change itself: a pull
//! request could otherwise dismiss its own findings, add itself to the baseline, lower
//! `loop.max_unbacked_severity` or point the review at its own endpoint. The workspace's own
//! settings (`.refine.toml`, `.refine/principles.md`, `.refine/prompts/`,
//! `.refine/dismissed.toml`, `.refine/baseline.json`) are read from BASE's tree into a private
//! folder, and the review reads them there. A link in BASE is not followed; each file is
//! bounded.

use std::path::{Component, Path, PathBuf};

use super::diff;

/// The settings files `review --diff` takes from BASE.
const SETTINGS: &[&str] = &[".refine.toml", ".refine"];

/// The largest settings file taken from BASE.
const MAX_FILE: u64 = 1 << 20;

/// BASE's settings, written out where the review reads them.
#[derive(Debug)]
pub(super) struct BaseSettings {
    /// Holds `.refine.toml` and `.refine/` as BASE has them (removed when dropped).
    pub dir: tempfile::TempDir,
    /// The commit they were read from.
    pub rev: String,
    /// Files of BASE that were not taken (links, too large), one sentence each.
    pub warnings: Vec<String>,
}

/// Where the settings that steer a review of a change come from.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SettingsFrom {
    /// A diff on stdin: its base is not known, so no workspace settings are read at all.
    Nowhere,
    /// The staged change of a repository with no commit yet: the base is empty, and so are
    /// its settings (the change's own `.refine.toml` is not read either).
    EmptyBase,
    /// This commit's tree.
    Commit(String),
}

/// The commit whose settings steer a review of the change against `base`: BASE itself, the
/// default base, or `HEAD` for the staged change.
pub(super) fn settings_from(
    root: &Path,
    base: &diff::Base,
    staged: bool,
) -> Result<SettingsFrom, String> {
    let rev = match base {
        diff::Base::Stdin => return Ok(SettingsFrom::Nowhere),
        diff::Base::Rev(b) => b.clone(),
        diff::Base::Default if staged => {
            if unborn_head(root) {
                return Ok(SettingsFrom::EmptyBase);
            }
            "HEAD".to_owned()
        }
        diff::Base::Default => diff::default_base(root)?,
    };
    let commit = diff::git(
        root,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .map_err(|_| format!("--diff: `{rev}` is not a commit of this repository"))?;
    Ok(SettingsFrom::Commit(commit.trim().to_owned()))
}

/// Whether `HEAD` names a branch with no commit yet (a new repository's first commit).
fn unborn_head(root: &Path) -> bool {
    diff::git(root, &["symbolic-ref", "--quiet", "HEAD"]).is_ok()
        && diff::git(root, &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).is_err()
}

/// An empty settings folder: what a base with no commit holds.
pub(super) fn empty() -> Result<BaseSettings, String> {
    Ok(BaseSettings {
        dir: settings_folder()?,
        rev: "(no commit yet)".to_owned(),
        warnings: Vec::new(),
    })
}

/// A new private folder for a base's settings (removed when dropped).
fn settings_folder() -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix("refine-base-")
        .tempdir()
        .map_err(|e| format!("cannot make a folder for the base's settings: {e}"))
}

/// Writes BASE's settings files into a new private folder.
pub(super) fn materialize(root: &Path, rev: &str) -> Result<BaseSettings, String> {
    let dir = settings_folder()?;
    let mut args = vec![
        "ls-tree",
        "-r",
        "-z",
        "--long",
        "--end-of-options",
        rev,
        "--",
    ];
    args.extend(SETTINGS);
    let listing = diff::git(root, &args)?;
    let mut warnings = Vec::new();
    for entry in listing.split('\0').filter(|e| !e.is_empty()) {
        let Some((meta, path)) = entry.split_once('\t') else {
            continue;
        };
        let fields: Vec<&str> = meta.split_whitespace().collect();
        let [mode, kind, sha, size] = fields.as_slice() else {
            continue;
        };
        let Some(relative) = safe_relative(path) else {
            warnings.push(format!(
                "{path} in {rev}: not a plain path inside the repository; not read"
            ));
            continue;
        };
        if *mode == "120000" {
            warnings.push(format!("{path} is a link in {rev}: not followed, not read"));
            continue;
        }
        if *kind != "blob" || !matches!(*mode, "100644" | "100755") {
            continue;
        }
        let size: u64 = size.parse().unwrap_or(u64::MAX);
        if size > MAX_FILE {
            warnings.push(format!(
                "{path} in {rev} is larger than {} KiB: not read",
                MAX_FILE / 1024
            ));
            continue;
        }
        let text = diff::git(root, &["cat-file", "blob", sha])?;
        let dest = dir.path().join(&relative);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot write the base's {path}: {e}"))?;
        }
        std::fs::write(&dest, text).map_err(|e| format!("cannot write the base's {path}: {e}"))?;
    }
    Ok(BaseSettings {
        dir,
        rev: rev.to_owned(),
        warnings,
    })
}

/// `path` as a relative path of plain components (no `..`, no root), or `None`.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    p.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_written() {
        assert!(safe_relative(".refine/prompts/critique_user.md").is_some());
        assert!(safe_relative("../x").is_none());
        assert!(safe_relative("/etc/passwd").is_none());
        assert!(safe_relative(".refine/../../x").is_none());
    }
}

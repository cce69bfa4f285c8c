//! The baseline file (`.refine/baseline.json`): the fingerprints of findings `review --diff`
//! does not report again.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use super::finding::Reported;

/// Where the baseline lives in a repository.
pub fn baseline_path(root: &Path) -> std::path::PathBuf {
    root.join(".refine").join("baseline.json")
}

/// The most a baseline file may hold (some hundred thousand fingerprints).
const MAX_BASELINE_BYTES: u64 = 16 * 1024 * 1024;

/// The repository a baseline at [`baseline_path`] belongs to (`<root>/.refine/baseline.json`),
/// whose links out it must not follow.
fn repository_of(path: &Path) -> Option<&Path> {
    let dir = path.parent()?;
    (dir.file_name()? == ".refine").then(|| dir.parent())?
}

/// The fingerprints a baseline file lists (none when there is no file). One in a repository is
/// read without following a link out of it; either is bounded.
pub fn read_baseline(path: &Path) -> Result<BTreeSet<String>, String> {
    let text = match repository_of(path) {
        Some(root) => crate::fsx::read_in(root, path, MAX_BASELINE_BYTES),
        None => crate::fsx::read_bounded(path, MAX_BASELINE_BYTES),
    }
    .map_err(|e| e.to_string())?;
    let Some(text) = text else {
        return Ok(BTreeSet::new());
    };
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    let list = v
        .get("fingerprints")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{} has no \"fingerprints\" list", path.display()))?;
    Ok(list
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect())
}

/// Writes the baseline: every fingerprint of `findings`, sorted, one file, whole or not at all
/// and never through a link (nor, in a repository, into a folder that leads out of it).
pub fn write_baseline(path: &Path, findings: &[Reported]) -> Result<(), String> {
    let fps: BTreeSet<&str> = findings.iter().map(|f| f.fingerprint.as_str()).collect();
    let doc = json!({"version": 1, "tool": "refine-ls", "fingerprints": fps});
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())? + "\n";
    match repository_of(path) {
        Some(root) => crate::fsx::write_atomic_in(root, path, text.as_bytes()),
        None => crate::fsx::write_atomic(path, text.as_bytes()),
    }
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::finding::{fingerprint, sample};
    use super::*;
    use crate::engine::critique::Severity;

    #[test]
    fn the_baseline_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = baseline_path(dir.path());
        assert_eq!(repository_of(&path), Some(dir.path()));
        assert!(read_baseline(&path).unwrap().is_empty());
        write_baseline(&path, &[sample(Severity::Error, "e")]).unwrap();
        let fps = read_baseline(&path).unwrap();
        assert_eq!(fps.len(), 1);
        assert!(fps.contains(&fingerprint("src/a,b.rs", "correctness", "1..n")));
    }

    #[cfg(unix)]
    #[test]
    fn a_baseline_that_links_out_of_the_repository_is_neither_read_nor_written() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join(".refine")).unwrap();
        let outside = dir.path().join("outside.json");
        std::fs::write(&outside, r#"{"fingerprints": ["0123456789abcdef"]}"#).unwrap();
        let path = baseline_path(&root);
        std::os::unix::fs::symlink(&outside, &path).unwrap();
        let err = read_baseline(&path).unwrap_err();
        assert!(err.contains("outside the workspace"), "{err}");
        assert!(write_baseline(&path, &[]).unwrap_err().contains("link"));
        assert!(
            std::fs::read_to_string(&outside)
                .unwrap()
                .contains("0123456789abcdef")
        );
    }
}

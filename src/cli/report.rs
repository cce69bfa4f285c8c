//! What `review --diff` reports, and its formats for CI: text, JSON, SARIF 2.1.0, reviewdog's
//! rdjson, GitLab Code Quality and GitHub workflow-command annotations. A finding's fingerprint
//! hashes its path, principle and the code it quotes (whitespace-normalised), never its line, so
//! it stays the same when unrelated lines move it; the baseline file lists fingerprints not to
//! report again.

use std::collections::BTreeSet;
use std::path::Path;

use clap::ValueEnum;
use serde_json::{Value, json};

pub use crate::dismissed::fingerprint;
use crate::engine::critique::Severity;

/// Output format of `review`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// `path:line:col: severity: message [principle]` lines and a unified diff.
    Text,
    /// One JSON object.
    Json,
    /// SARIF 2.1.0 (code scanning, IDE viewers).
    Sarif,
    /// reviewdog's Diagnostic Format (rdjson), with suggestions.
    Rdjson,
    /// GitLab Code Quality report.
    Gitlab,
    /// GitHub Actions workflow-command annotations.
    Github,
}

/// A replacement of a stretch of a file: 1-based lines, 1-based columns (chars), end exclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// Start line and column.
    pub start: (u32, u32),
    /// End line and column (exclusive).
    pub end: (u32, u32),
    /// The new text.
    pub text: String,
}

/// One reported finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    /// Start line and column, 1-based.
    pub start: (u32, u32),
    /// End line and column, 1-based.
    pub end: (u32, u32),
    /// Severity.
    pub severity: Severity,
    /// Principle id.
    pub principle: String,
    /// What is wrong.
    pub message: String,
    /// The code it quotes.
    pub quote: String,
    /// Stable identity (see the module docs).
    pub fingerprint: String,
    /// The verified revision's edits that touch this finding.
    pub fix: Vec<Replacement>,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Files with changed lines reviewed.
    pub files: usize,
    /// Regions (items) reviewed.
    pub regions: usize,
    /// Model calls.
    pub llm_calls: u32,
    /// Tokens in and out.
    pub tokens: u64,
    /// Findings dropped because they touch no changed line.
    pub off_change: usize,
    /// Findings dropped because the baseline lists them.
    pub in_baseline: usize,
    /// Findings dropped because `.refine/dismissed.toml` dismisses them.
    pub dismissed: usize,
    /// Findings below `--min-severity` or over `--max-findings`.
    pub over_budget: usize,
    /// Regions whose review failed (`path:A-B: why`).
    pub errors: Vec<String>,
}

/// Severity order for `--min-severity` and `--fail-on`: higher is more severe.
pub fn rank(s: Severity) -> u8 {
    match s {
        Severity::Error => 3,
        Severity::Warning => 2,
        Severity::Info => 1,
        Severity::Hint => 0,
    }
}

/// The noise budget: drops findings below `min`, puts the most severe first (the given order
/// within a severity) and keeps at most `max`. Returns how many were dropped.
pub fn budget(findings: &mut Vec<Reported>, min: Option<Severity>, max: Option<usize>) -> usize {
    let before = findings.len();
    let floor = min.map_or(0, rank);
    findings.retain(|f| rank(f.severity) >= floor);
    findings.sort_by_key(|f| std::cmp::Reverse(rank(f.severity)));
    if let Some(max) = max {
        findings.truncate(max);
    }
    before - findings.len()
}

/// Whether a finding is at least as severe as `level` (`--fail-on`).
pub fn any_at_least(findings: &[Reported], level: Severity) -> bool {
    findings.iter().any(|f| rank(f.severity) >= rank(level))
}

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

/// The principles as SARIF rules, and each one's index.
fn rules(findings: &[Reported], known: &[String]) -> Vec<String> {
    let used: BTreeSet<&str> = findings.iter().map(|f| f.principle.as_str()).collect();
    let mut out: Vec<String> = known.to_vec();
    for u in used {
        if !out.iter().any(|k| k == u) {
            out.push(u.to_owned());
        }
    }
    out
}

/// SARIF 2.1.0: one run, a rule per principle, fixes from the verified revision.
pub fn sarif(findings: &[Reported], principles: &[String]) -> Value {
    let rules = rules(findings, principles);
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info | Severity::Hint => "note",
            };
            let mut r = json!({
                "ruleId": f.principle,
                "ruleIndex": rules.iter().position(|p| *p == f.principle).unwrap_or(0),
                "level": level,
                "message": {"text": f.message},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": f.path},
                    "region": region(f.start, f.end, Some(&f.quote)),
                }}],
                "partialFingerprints": {"refineLs/v1": f.fingerprint},
            });
            if !f.fix.is_empty() {
                r["fixes"] = json!([{
                    "description": {"text": "refine-ls: verified revision"},
                    "artifactChanges": [{
                        "artifactLocation": {"uri": f.path},
                        "replacements": f.fix.iter().map(|x| json!({
                            "deletedRegion": region(x.start, x.end, None),
                            "insertedContent": {"text": x.text},
                        })).collect::<Vec<_>>(),
                    }],
                }]);
            }
            r
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "refine-ls",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/refine-ls/refine-ls",
                "rules": rules.iter().map(|id| json!({
                    "id": id,
                    "name": id,
                    "shortDescription": {"text": format!("refine-ls principle `{id}`")},
                })).collect::<Vec<_>>(),
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

fn region(start: (u32, u32), end: (u32, u32), snippet: Option<&str>) -> Value {
    let mut r = json!({
        "startLine": start.0, "startColumn": start.1,
        "endLine": end.0, "endColumn": end.1,
    });
    if let Some(s) = snippet.filter(|s| !s.is_empty()) {
        r["snippet"] = json!({"text": s});
    }
    r
}

/// reviewdog's rdjson: a diagnostic per finding, the fix as suggestions.
pub fn rdjson(findings: &[Reported]) -> Value {
    let pos = |(line, column): (u32, u32)| json!({"line": line, "column": column});
    json!({
        "source": {"name": "refine-ls", "url": "https://github.com/refine-ls/refine-ls"},
        "diagnostics": findings.iter().map(|f| {
            let mut d = json!({
                "message": f.message,
                "location": {"path": f.path, "range": {"start": pos(f.start), "end": pos(f.end)}},
                "severity": match f.severity {
                    Severity::Error => "ERROR",
                    Severity::Warning => "WARNING",
                    Severity::Info | Severity::Hint => "INFO",
                },
                "code": {"value": f.principle},
                "original_output": f.fingerprint,
            });
            if !f.fix.is_empty() {
                d["suggestions"] = f.fix.iter().map(|x| json!({
                    "range": {"start": pos(x.start), "end": pos(x.end)},
                    "text": x.text,
                })).collect();
            }
            d
        }).collect::<Vec<_>>(),
    })
}

/// GitLab Code Quality: an array of issues.
pub fn gitlab(findings: &[Reported]) -> Value {
    Value::Array(
        findings
            .iter()
            .map(|f| {
                json!({
                    "description": f.message,
                    "check_name": f.principle,
                    "fingerprint": f.fingerprint,
                    "severity": match f.severity {
                        Severity::Error => "major",
                        Severity::Warning => "minor",
                        Severity::Info | Severity::Hint => "info",
                    },
                    "location": {"path": f.path, "lines": {"begin": f.start.0, "end": f.end.0}},
                })
            })
            .collect(),
    )
}

/// At most this many annotations of each level per step: what GitHub shows.
pub const GITHUB_CAP: usize = 10;

/// GitHub workflow commands (`::error file=…::message`), at most [`GITHUB_CAP`] per level, and
/// a notice that says how many more there are.
pub fn github(findings: &[Reported]) -> String {
    let mut out = String::new();
    let mut counts = [0usize; 3];
    let mut left_out = 0usize;
    for f in findings {
        let (cmd, slot) = match f.severity {
            Severity::Error => ("error", 0),
            Severity::Warning => ("warning", 1),
            Severity::Info | Severity::Hint => ("notice", 2),
        };
        if counts[slot] >= GITHUB_CAP {
            left_out += 1;
            continue;
        }
        counts[slot] += 1;
        out.push_str(&format!(
            "::{cmd} file={},line={},endLine={},col={},endColumn={},title={}::{}\n",
            property(&f.path),
            f.start.0,
            f.end.0,
            f.start.1,
            f.end.1,
            property(&format!("refine-ls ({})", f.principle)),
            data(&f.message)
        ));
    }
    if left_out > 0 {
        out.push_str(&format!(
            "::notice title=refine-ls::{left_out} more finding(s) not annotated (GitHub shows {GITHUB_CAP} per level); see the SARIF or text report\n"
        ));
    }
    out
}

/// A workflow command's message, escaped.
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value, escaped.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(severity: Severity, message: &str) -> Reported {
        Reported {
            path: "src/a,b.rs".into(),
            start: (3, 5),
            end: (3, 9),
            severity,
            principle: "correctness".into(),
            message: message.into(),
            quote: "1..n".into(),
            fingerprint: fingerprint("src/a,b.rs", "correctness", "1..n"),
            fix: vec![],
        }
    }

    #[test]
    fn the_budget_keeps_the_most_severe_in_order_and_counts_what_it_drops() {
        let mut f = vec![
            finding(Severity::Hint, "h"),
            finding(Severity::Warning, "w1"),
            finding(Severity::Error, "e"),
            finding(Severity::Warning, "w2"),
            finding(Severity::Info, "i"),
        ];
        let dropped = budget(&mut f, Some(Severity::Info), Some(3));
        let kept: Vec<&str> = f.iter().map(|x| x.message.as_str()).collect();
        assert_eq!(kept, vec!["e", "w1", "w2"]);
        assert_eq!(dropped, 2);
        assert!(any_at_least(&f, Severity::Error));
        assert!(!any_at_least(&f[1..], Severity::Error));
    }

    #[test]
    fn github_annotations_are_escaped_and_capped() {
        let many: Vec<Reported> = (0..12)
            .map(|i| finding(Severity::Error, &format!("bad {i}%\nsecond line")))
            .collect();
        let out = github(&many);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), GITHUB_CAP + 1, "{out}");
        assert!(
            lines[0].starts_with("::error file=src/a%2Cb.rs,line=3,endLine=3,col=5,endColumn=9,title=refine-ls (correctness)::bad 0%25%0Asecond line"),
            "{}",
            lines[0]
        );
        assert!(lines[GITHUB_CAP].contains("2 more finding(s)"), "{out}");
    }

    #[test]
    fn the_baseline_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = baseline_path(dir.path());
        assert_eq!(repository_of(&path), Some(dir.path()));
        assert!(read_baseline(&path).unwrap().is_empty());
        write_baseline(&path, &[finding(Severity::Error, "e")]).unwrap();
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

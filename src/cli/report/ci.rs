//! The formats for CI: SARIF 2.1.0, reviewdog's rdjson, GitLab Code Quality and GitHub
//! workflow-command annotations.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::finding::Reported;
use crate::cli::shard::Shard;
use crate::engine::critique::Severity;

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

/// SARIF 2.1.0: one run, a rule per principle, fixes from the verified revision; a shard's run
/// names its category (`automationDetails.id`), so code scanning keeps each shard's analysis.
pub fn sarif(findings: &[Reported], principles: &[String], shard: Option<Shard>) -> Value {
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
    let mut log = json!({
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
    });
    if let Some(shard) = shard {
        log["runs"][0]["automationDetails"] = json!({"id": shard.category()});
    }
    log
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
    use super::super::finding::sample;
    use super::*;

    #[test]
    fn github_annotations_are_escaped_and_capped() {
        let many: Vec<Reported> = (0..12)
            .map(|i| sample(Severity::Error, &format!("bad {i}%\nsecond line")))
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
}

//! The training sets of `learn export`: `dpo` pairs, `sft` completions, `jsonl` reviews, with
//! prompts rendered from the loop's own templates.

use serde::Serialize;
use serde_json::{Value, json};

use super::fold::{FindingFate, Folded, RevisionFate};
use crate::learning::{FindingRecord, ReviewRecord};
use crate::prompts::Prompts;

/// The formats of `learn export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Preference pairs for TRL's DPO trainer: `{"prompt", "chosen", "rejected"}`
    /// (conversational: lists of `{"role", "content"}` messages).
    Dpo,
    /// Accepted revisions for supervised fine-tuning: `{"prompt", "completion"}`.
    Sft,
    /// Each review with the fate of its findings and revision.
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dpo" => Ok(Self::Dpo),
            "sft" => Ok(Self::Sft),
            "jsonl" => Ok(Self::Jsonl),
            other => Err(format!("`{other}` is not a format: dpo, sft or jsonl")),
        }
    }
}

/// How many rows of each kind an export wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Reviews read (after `--since`).
    pub reviews: usize,
    /// Rows written.
    pub rows: usize,
    /// Reviser pairs: an applied revision chosen over the original.
    pub revision_accepted: usize,
    /// Reviser pairs: the original chosen over a discarded revision.
    pub revision_discarded: usize,
    /// Critic pairs: the kept findings chosen over all of them.
    pub critic: usize,
}

impl Counts {
    /// `12 rows from 30 reviews (7 accepted revisions, 2 discarded, 3 critic pairs)`.
    pub fn summary(&self, format: Format) -> String {
        let detail = match format {
            Format::Dpo => format!(
                " ({} accepted-revision pairs, {} discarded-revision pairs, {} critic pairs)",
                self.revision_accepted, self.revision_discarded, self.critic
            ),
            Format::Sft => format!(" ({} accepted revisions)", self.revision_accepted),
            Format::Jsonl => String::new(),
        };
        format!("{} rows from {} reviews{detail}", self.rows, self.reviews)
    }
}

/// The rows of `format` for the folded reviews, one JSON value per line.
pub fn rows(
    folded: &[Folded],
    format: Format,
    prompts: &Prompts,
) -> Result<(Vec<Value>, Counts), String> {
    let mut counts = Counts {
        reviews: folded.len(),
        ..Counts::default()
    };
    let mut out = Vec::new();
    for f in folded {
        match format {
            Format::Jsonl => out.push(jsonl_row(f)),
            Format::Dpo => {
                for (prompt, better, worse, kind) in reviser_pairs(f, prompts)? {
                    out.push(json!({
                        "prompt": prompt,
                        "chosen": [assistant(better)],
                        "rejected": [assistant(worse)],
                    }));
                    match kind {
                        PairKind::Accepted => counts.revision_accepted += 1,
                        PairKind::Discarded => counts.revision_discarded += 1,
                    }
                }
                if let Some((prompt, kept, all)) = critic_pair(f, prompts)? {
                    out.push(json!({
                        "prompt": prompt,
                        "chosen": [assistant(kept)],
                        "rejected": [assistant(all)],
                    }));
                    counts.critic += 1;
                }
            }
            Format::Sft => {
                for (prompt, better, _, kind) in reviser_pairs(f, prompts)? {
                    if kind == PairKind::Accepted {
                        out.push(json!({"prompt": prompt, "completion": [assistant(better)]}));
                        counts.revision_accepted += 1;
                    }
                }
            }
        }
    }
    counts.rows = out.len();
    Ok((out, counts))
}

fn assistant(content: String) -> Value {
    json!({"role": "assistant", "content": content})
}

fn jsonl_row(f: &Folded) -> Value {
    let r = &f.review;
    let findings: Vec<Value> = r
        .findings
        .iter()
        .zip(&f.findings)
        .map(|(finding, fate)| {
            let mut v = serde_json::to_value(finding).unwrap_or(Value::Null);
            v["fate"] = json!(fate);
            v
        })
        .collect();
    let revision = r.revision.as_ref().map(|rev| {
        json!({
            "code": rev.code,
            "fixes": rev.fixes,
            "round": rev.round,
            "fate": f.revision,
            "applied_findings": f.applied_findings,
        })
    });
    json!({
        "id": r.id,
        "at": r.at,
        "path": r.path,
        "language": r.language,
        "first_line": r.first_line,
        "last_line": r.last_line,
        "critic": r.critic,
        "reviser": r.reviser,
        "code": r.code,
        "unwanted": r.unwanted,
        "redactions": r.redactions,
        "findings": findings,
        "revision": revision,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairKind {
    Accepted,
    Discarded,
}

/// A fenced block, the form the reviser answers in.
fn fenced(language: &str, code: &str) -> String {
    format!(
        "```{language}\n{}\n```",
        code.trim_end_matches(['\n', '\r'])
    )
}

/// The reviser's prompt (system and user messages) for `findings` of a review.
fn revise_prompt(
    r: &ReviewRecord,
    findings: &[&FindingRecord],
    prompts: &Prompts,
) -> Result<Value, String> {
    let system = prompts
        .render(
            "revise_system.md",
            json!({"language": r.language, "edit_format": "full"}),
        )
        .map_err(|e| e.to_string())?;
    let lines = r.code.trim_end_matches(['\n', '\r']).split('\n').count();
    let user = prompts
        .render(
            "revise_user.md",
            json!({
                "path": r.path,
                "language": r.language,
                "selection": r.code.trim_end_matches(['\n', '\r']),
                "first_line": r.first_line + 1,
                "last_line": r.first_line + lines,
                "findings": findings,
                "feedback": Value::Null,
            }),
        )
        .map_err(|e| e.to_string())?;
    Ok(json!([
        {"role": "system", "content": system},
        {"role": "user", "content": user},
    ]))
}

/// Reviser pairs `(prompt, chosen, rejected)`: an applied revision over the original (one pair
/// per finding when only its edits were applied), the original over a discarded revision.
fn reviser_pairs(
    f: &Folded,
    prompts: &Prompts,
) -> Result<Vec<(Value, String, String, PairKind)>, String> {
    let r = &f.review;
    let Some(rev) = &r.revision else {
        return Ok(Vec::new());
    };
    let original = fenced(&r.language, &r.code);
    let fixed: Vec<&FindingRecord> = r
        .findings
        .iter()
        .filter(|x| rev.fixes.contains(&x.id))
        .collect();
    let mut out = Vec::new();
    match f.revision {
        Some(RevisionFate::Applied) => out.push((
            revise_prompt(r, &fixed, prompts)?,
            fenced(&r.language, &rev.code),
            original,
            PairKind::Accepted,
        )),
        Some(RevisionFate::AppliedFindings) => {
            for id in &f.applied_findings {
                let (Some(finding), Some(fix)) = (
                    r.findings.iter().find(|x| x.id == *id),
                    rev.by_finding.iter().find(|x| x.finding == *id),
                ) else {
                    continue;
                };
                out.push((
                    revise_prompt(r, &[finding], prompts)?,
                    fenced(&r.language, &fix.code),
                    original.clone(),
                    PairKind::Accepted,
                ));
            }
        }
        Some(RevisionFate::Discarded) => out.push((
            revise_prompt(r, &fixed, prompts)?,
            original,
            fenced(&r.language, &rev.code),
            PairKind::Discarded,
        )),
        _ => {}
    }
    Ok(out)
}

/// A finding in the critique's wire format (what the critic answers with).
fn critique_item(f: &FindingRecord) -> Value {
    let mut v = json!({
        "message": f.message,
        "quote": f.quote,
        "start_line": f.start_line,
        "end_line": f.end_line,
        "severity": f.severity,
        "principle": f.principle,
    });
    if let Some(s) = &f.suggestion {
        v["suggestion"] = json!(s);
    }
    v["confidence"] = json!(f.confidence);
    v
}

/// The critic pair of a review with a dismissed finding: the findings the user kept over all
/// that the critic gave.
fn critic_pair(f: &Folded, prompts: &Prompts) -> Result<Option<(Value, String, String)>, String> {
    if !f.findings.contains(&FindingFate::Dismissed) {
        return Ok(None);
    }
    let r = &f.review;
    let all: Vec<Value> = r.findings.iter().map(critique_item).collect();
    let kept: Vec<Value> = r
        .findings
        .iter()
        .zip(&f.findings)
        .filter(|(_, fate)| **fate != FindingFate::Dismissed)
        .map(|(x, _)| critique_item(x))
        .collect();
    let lines = r.code.trim_end_matches(['\n', '\r']).split('\n').count();
    let last_line = r.first_line + lines;
    let system = prompts
        .render(
            "critique_system.md",
            json!({
                "language": r.language,
                "principles": prompts.principles(),
                "principles_short": prompts.principles_short(&[]),
                "principle_ids": prompts.principle_ids().join(", "),
                "first_line": r.first_line + 1,
                "last_line": last_line,
            }),
        )
        .map_err(|e| e.to_string())?;
    let user = prompts
        .render(
            "critique_user.md",
            json!({
                "path": r.path,
                "language": r.language,
                "selection": crate::text::number_lines(&r.code, r.first_line),
                "first_line": r.first_line + 1,
                "last_line": last_line,
                "facts": [],
                "unwanted": r.unwanted,
            }),
        )
        .map_err(|e| e.to_string())?;
    let prompt = json!([
        {"role": "system", "content": system},
        {"role": "user", "content": user},
    ]);
    Ok(Some((
        prompt,
        json!({ "findings": kept }).to_string(),
        json!({ "findings": all }).to_string(),
    )))
}

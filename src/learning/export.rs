//! The record folded into what the user decided, and written as training sets (`learn export`)
//! or the user's own precision figures (`learn stats`).
//!
//! Each review's fates are folded into one verdict for its revision and one for each finding:
//! - revision: `applied` (whole) > `applied_findings` (some findings' edits) > `discarded`
//!   (previewed, never applied) > `superseded` (the user edited the lines instead) > `ignored`;
//! - finding: `dismissed` (a later undismiss cancels it; a finding a dismissal in force hid is
//!   dismissed too) > `fixed` (an applied revision's edits touch it) > `ignored`.
//!
//! The prompts of the pairs are the loop's own templates (`revise_*.md`, `critique_*.md`)
//! rendered with what was recorded, so a model trained on them sees what the loop sends it.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Value, json};

use super::{Fate, FindingRecord, Record, ReviewRecord};
use crate::prompts::Prompts;

/// What became of a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevisionFate {
    /// Applied whole.
    Applied,
    /// Only some findings' edits applied.
    AppliedFindings,
    /// Looked at and not applied.
    Discarded,
    /// The user edited the lines while it was on offer.
    Superseded,
    /// Offered, never looked at.
    Ignored,
}

/// What became of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingFate {
    /// Dismissed (still dismissed at the end of the record).
    Dismissed,
    /// An applied revision changed its lines.
    Fixed,
    /// Neither.
    Ignored,
}

/// One review and what the user decided.
#[derive(Debug, Clone)]
pub struct Folded {
    /// The review as recorded.
    pub review: ReviewRecord,
    /// Per finding (in the review's order).
    pub findings: Vec<FindingFate>,
    /// The revision's fate, when one was offered.
    pub revision: Option<RevisionFate>,
    /// The findings whose edits alone were applied.
    pub applied_findings: Vec<usize>,
}

/// Folds the records (oldest first) into reviews finished at or after `since`.
pub fn fold(records: &[Record], since: Option<SystemTime>) -> Vec<Folded> {
    #[derive(Default)]
    struct Seen {
        dismissed: Vec<usize>,
        applied: bool,
        applied_findings: Vec<usize>,
        previewed: bool,
        superseded: bool,
    }
    let mut seen: HashMap<&str, Seen> = HashMap::new();
    for r in records {
        let Record::Fate(f) = r else { continue };
        let s = seen.entry(f.id.as_str()).or_default();
        match f.fate {
            Fate::Dismissed => {
                for id in &f.findings {
                    if !s.dismissed.contains(id) {
                        s.dismissed.push(*id);
                    }
                }
            }
            Fate::Undismissed => s.dismissed.retain(|id| !f.findings.contains(id)),
            Fate::Applied => s.applied = true,
            Fate::AppliedFindings => {
                for id in &f.findings {
                    if !s.applied_findings.contains(id) {
                        s.applied_findings.push(*id);
                    }
                }
            }
            Fate::Previewed => s.previewed = true,
            Fate::Superseded => s.superseded = true,
        }
    }
    let empty = Seen::default();
    records
        .iter()
        .filter_map(|r| match r {
            Record::Review(rev) => Some(rev.as_ref()),
            Record::Fate(_) => None,
        })
        .filter(|rev| {
            since.is_none_or(|t| humantime::parse_rfc3339_weak(&rev.at).is_ok_and(|at| at >= t))
        })
        .map(|rev| {
            let s = seen.get(rev.id.as_str()).unwrap_or(&empty);
            let revision = rev.revision.as_ref().map(|_| {
                if s.applied {
                    RevisionFate::Applied
                } else if !s.applied_findings.is_empty() {
                    RevisionFate::AppliedFindings
                } else if s.previewed {
                    RevisionFate::Discarded
                } else if s.superseded {
                    RevisionFate::Superseded
                } else {
                    RevisionFate::Ignored
                }
            });
            let fixed_by_revision = |id: usize| match (&rev.revision, revision) {
                (Some(r), Some(RevisionFate::Applied)) => r.fixes.contains(&id),
                (Some(_), Some(RevisionFate::AppliedFindings)) => s.applied_findings.contains(&id),
                _ => false,
            };
            let findings = rev
                .findings
                .iter()
                .map(|f| {
                    if !f.shown || s.dismissed.contains(&f.id) {
                        FindingFate::Dismissed
                    } else if fixed_by_revision(f.id) {
                        FindingFate::Fixed
                    } else {
                        FindingFate::Ignored
                    }
                })
                .collect();
            Folded {
                review: rev.clone(),
                findings,
                revision,
                applied_findings: if s.applied {
                    Vec::new()
                } else {
                    s.applied_findings.clone()
                },
            }
        })
        .collect()
}

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

/// The figures of one principle or one model.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Tally {
    /// Findings given.
    pub findings: usize,
    /// Of which dismissed.
    pub dismissed: usize,
    /// Of which fixed by an applied revision.
    pub fixed: usize,
    /// Of which neither.
    pub ignored: usize,
    /// Revisions offered.
    pub revisions: usize,
    /// Applied whole or per finding.
    pub applied: usize,
    /// Previewed and not applied.
    pub discarded: usize,
    /// Edited over.
    pub superseded: usize,
    /// The share of findings not dismissed: the user's precision figure (`None`: no findings).
    pub precision: Option<f64>,
    /// The share of findings dismissed.
    pub dismissal_rate: Option<f64>,
    /// The share of findings an applied revision fixed.
    pub fix_rate: Option<f64>,
    /// The share of revisions applied (whole or per finding).
    pub acceptance_rate: Option<f64>,
}

impl Tally {
    fn rates(&mut self) {
        self.precision = ratio(self.findings.saturating_sub(self.dismissed), self.findings);
        self.dismissal_rate = ratio(self.dismissed, self.findings);
        self.fix_rate = ratio(self.fixed, self.findings);
        self.acceptance_rate = ratio(self.applied, self.revisions);
    }
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// `learn stats`: per principle and per model (the critic for findings, the reviser for
/// revisions).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Reviews counted.
    pub reviews: usize,
    /// Everything.
    pub total: Tally,
    /// By the principle a finding cites.
    pub by_principle: BTreeMap<String, Tally>,
    /// By model.
    pub by_model: BTreeMap<String, Tally>,
}

/// The figures of the folded reviews.
pub fn stats(folded: &[Folded]) -> Stats {
    let mut s = Stats {
        reviews: folded.len(),
        ..Stats::default()
    };
    for f in folded {
        let r = &f.review;
        for (finding, fate) in r.findings.iter().zip(&f.findings) {
            let principle = s.by_principle.entry(finding.principle.clone()).or_default();
            let model = s.by_model.entry(r.critic.clone()).or_default();
            for t in [&mut s.total, principle, model] {
                t.findings += 1;
                match fate {
                    FindingFate::Dismissed => t.dismissed += 1,
                    FindingFate::Fixed => t.fixed += 1,
                    FindingFate::Ignored => t.ignored += 1,
                }
            }
        }
        if let Some(fate) = f.revision {
            let model = s.by_model.entry(r.reviser.clone()).or_default();
            for t in [&mut s.total, model] {
                t.revisions += 1;
                match fate {
                    RevisionFate::Applied | RevisionFate::AppliedFindings => t.applied += 1,
                    RevisionFate::Discarded => t.discarded += 1,
                    RevisionFate::Superseded => t.superseded += 1,
                    RevisionFate::Ignored => {}
                }
            }
        }
    }
    s.total.rates();
    for t in s.by_principle.values_mut().chain(s.by_model.values_mut()) {
        t.rates();
    }
    s
}

/// `learn stats` as a table.
pub fn stats_table(s: &Stats) -> String {
    let pct = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0));
    let mut out = format!("{} reviews\n\n", s.reviews);
    out.push_str(&format!(
        "{:<24} {:>8} {:>9} {:>6} {:>7} {:>9}\n",
        "principle", "findings", "dismissed", "fixed", "ignored", "precision"
    ));
    for (name, t) in s.by_principle.iter().chain([(&"all".to_owned(), &s.total)]) {
        out.push_str(&format!(
            "{:<24} {:>8} {:>9} {:>6} {:>7} {:>9}\n",
            name,
            t.findings,
            t.dismissed,
            t.fixed,
            t.ignored,
            pct(t.precision)
        ));
    }
    out.push_str(&format!(
        "\n{:<40} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8}\n",
        "model", "findings", "precision", "revisions", "applied", "discarded", "accepted"
    ));
    for (name, t) in &s.by_model {
        out.push_str(&format!(
            "{:<40} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8}\n",
            name,
            t.findings,
            pct(t.precision),
            t.revisions,
            t.applied,
            t.discarded,
            pct(t.acceptance_rate)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{FateRecord, FindingFix, RevisionRecord};
    use super::*;

    fn finding(id: usize, principle: &str) -> FindingRecord {
        FindingRecord {
            id,
            principle: principle.to_owned(),
            severity: "warning".to_owned(),
            message: format!("problem {id}"),
            quote: format!("line{id}"),
            start_line: 1,
            end_line: 1,
            suggestion: None,
            confidence: 0.9,
            shown: true,
        }
    }

    fn review(id: &str, findings: Vec<FindingRecord>, revision: bool) -> Record {
        Record::Review(Box::new(ReviewRecord {
            id: id.to_owned(),
            at: "2026-12-02T10:00:00Z".to_owned(),
            path: "src/a.py".to_owned(),
            language: "python".to_owned(),
            first_line: 0,
            last_line: 1,
            critic: "critic-model".to_owned(),
            reviser: "reviser-model".to_owned(),
            code: "line0\nline1\n".to_owned(),
            unwanted: vec![],
            findings,
            revision: revision.then(|| RevisionRecord {
                code: "fixed0\nfixed1\n".to_owned(),
                fixes: vec![0, 1],
                by_finding: vec![
                    FindingFix {
                        finding: 0,
                        code: "fixed0\nline1\n".to_owned(),
                    },
                    FindingFix {
                        finding: 1,
                        code: "line0\nfixed1\n".to_owned(),
                    },
                ],
                round: 1,
            }),
            redactions: 0,
        }))
    }

    fn fate(id: &str, fate: Fate, findings: &[usize]) -> Record {
        Record::Fate(FateRecord {
            id: id.to_owned(),
            at: "2026-12-02T10:01:00Z".to_owned(),
            fate,
            findings: findings.to_vec(),
            scope: None,
        })
    }

    #[test]
    fn fates_fold_by_precedence() {
        let records = vec![
            review(
                "a",
                vec![finding(0, "correctness"), finding(1, "style")],
                true,
            ),
            review(
                "b",
                vec![finding(0, "correctness"), finding(1, "style")],
                true,
            ),
            review("c", vec![finding(0, "correctness")], true),
            review("d", vec![finding(0, "style")], true),
            fate("a", Fate::Previewed, &[]),
            fate("a", Fate::Applied, &[]),
            fate("a", Fate::Superseded, &[]),
            fate("b", Fate::Dismissed, &[1]),
            fate("b", Fate::AppliedFindings, &[0]),
            fate("c", Fate::Previewed, &[]),
            fate("d", Fate::Dismissed, &[0]),
            fate("d", Fate::Undismissed, &[0]),
        ];
        let f = fold(&records, None);
        assert_eq!(f[0].revision, Some(RevisionFate::Applied));
        assert_eq!(f[0].findings, [FindingFate::Fixed, FindingFate::Fixed]);
        assert_eq!(f[1].revision, Some(RevisionFate::AppliedFindings));
        assert_eq!(f[1].findings, [FindingFate::Fixed, FindingFate::Dismissed]);
        assert_eq!(f[2].revision, Some(RevisionFate::Discarded));
        assert_eq!(f[2].findings, [FindingFate::Ignored]);
        assert_eq!(f[3].revision, Some(RevisionFate::Ignored));
        assert_eq!(f[3].findings, [FindingFate::Ignored]);

        let prompts = Prompts::load_from(&[]);
        let (rows, counts) = rows(&f, Format::Dpo, &prompts).unwrap();
        assert_eq!(counts.revision_accepted, 2);
        assert_eq!(counts.revision_discarded, 1);
        assert_eq!(counts.critic, 1);
        assert_eq!(rows.len(), 4);
        // a: the whole revision over the original.
        assert_eq!(
            rows[0]["chosen"][0]["content"],
            "```python\nfixed0\nfixed1\n```"
        );
        assert_eq!(
            rows[0]["rejected"][0]["content"],
            "```python\nline0\nline1\n```"
        );
        // b: only finding 0's edits, prompted with finding 0 alone.
        assert_eq!(
            rows[1]["chosen"][0]["content"],
            "```python\nfixed0\nline1\n```"
        );
        let user = rows[1]["prompt"][1]["content"].as_str().unwrap();
        assert!(
            user.contains("problem 0") && !user.contains("problem 1"),
            "{user}"
        );
        // b: the critic pair keeps finding 0 only.
        let kept: Value =
            serde_json::from_str(rows[2]["chosen"][0]["content"].as_str().unwrap()).unwrap();
        assert_eq!(kept["findings"].as_array().unwrap().len(), 1);
        assert_eq!(kept["findings"][0]["message"], "problem 0");
        // c: the original over the discarded revision.
        assert_eq!(
            rows[3]["chosen"][0]["content"],
            "```python\nline0\nline1\n```"
        );

        let s = stats(&f);
        assert_eq!(s.total.findings, 6);
        assert_eq!(s.total.dismissed, 1);
        assert_eq!(s.by_principle["style"].dismissed, 1);
        assert_eq!(s.by_model["reviser-model"].revisions, 4);
        assert_eq!(s.by_model["reviser-model"].applied, 2);
        assert_eq!(s.by_model["reviser-model"].acceptance_rate, Some(0.5));
        assert_eq!(s.by_principle["style"].precision, Some(2.0 / 3.0));
    }

    #[test]
    fn since_keeps_later_reviews() {
        let records = vec![review("a", vec![], false)];
        let later = super::super::parse_since("2026-12-03").ok();
        assert!(fold(&records, later).is_empty());
        let earlier = super::super::parse_since("2026-12-01").ok();
        assert_eq!(fold(&records, earlier).len(), 1);
    }
}

//! The judge: does a verified revision resolve the findings it was asked to fix? One call, a
//! verdict per finding, each backed by a quote of the revised code that must lie on a line the
//! revision changed. The model's opinion of unchanged code never enters: a re-critique from
//! scratch invents problems and vetoes good fixes, so the loop does not ask for one.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use similar::{ChangeTag, DiffOp, TextDiff};

use super::anchor::Selection;
use super::candidate::Candidate;
use super::critic::number_lines;
use super::critique::{self, RawFinding};
use super::edits::{line_ops, split_lines};
use super::note::Unjudged;
use super::outcome::{EngineError, ReviewInput, ReviewOutcome};
use super::run::{Engine, Run};
use crate::llm::{ChatRequest, JsonSchema, Message, ProviderError};

/// What the judge decided about one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judgement {
    /// For each finding of the base version, in order: resolved, with evidence.
    pub(crate) resolved: Vec<bool>,
    /// Set when no verdict could be read and the fallback rule decided instead.
    pub(crate) fallback: Option<Unjudged>,
}

/// The zero-based lines a revision changed: in `base` the lines it replaces or deletes, in
/// `revised` the lines it writes (a pure deletion marks the line that now stands where it was,
/// and a pure insertion the line it went in before).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Changed {
    pub(crate) base: BTreeSet<usize>,
    pub(crate) revised: BTreeSet<usize>,
}

pub(crate) fn changed_lines(base: &str, revised: &str) -> Changed {
    let (old, new) = (split_lines(base), split_lines(revised));
    let (n_old, n_new) = (old.len(), new.len());
    let mut out = Changed {
        base: BTreeSet::new(),
        revised: BTreeSet::new(),
    };
    let mark = |set: &mut BTreeSet<usize>, r: std::ops::Range<usize>, n: usize| {
        if !r.is_empty() {
            set.extend(r);
        } else if n > 0 {
            set.insert(r.start.min(n - 1));
        }
    };
    for op in &line_ops(&old, &new) {
        if let DiffOp::Equal { .. } = op {
            continue;
        }
        mark(&mut out.base, op.old_range(), n_old);
        mark(&mut out.revised, op.new_range(), n_new);
    }
    out
}

/// The revision as a diff of numbered lines with two lines around each change: `-` original,
/// `+` revised, ` ` unchanged (numbered as in the revision). Far shorter than both versions
/// whole, and a judge only needs what changed.
pub(crate) fn changes_view(base: &str, revised: &str, first_line: usize) -> String {
    let diff = TextDiff::from_lines(base, revised);
    let mut out = String::new();
    for (g, group) in diff.grouped_ops(2).iter().enumerate() {
        if g > 0 {
            out.push_str("   …\n");
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let (sign, index) = match change.tag() {
                    ChangeTag::Delete => ('-', change.old_index()),
                    ChangeTag::Insert => ('+', change.new_index()),
                    ChangeTag::Equal => (' ', change.new_index()),
                };
                let n = index.map_or(0, |i| first_line + i + 1);
                let line = change.value().trim_end_matches(['\n', '\r']);
                out.push_str(&format!("{sign}{n:>4} | {line}\n"));
            }
        }
    }
    out
}

/// The judge's JSON schema for `n` findings; with `quotes`, each verdict may only quote one of
/// them (or nothing). The quote comes before the verdict: a model that has pointed at the fix
/// judges it better.
fn schema(n: usize, quotes: Option<&[String]>) -> Value {
    let quote = match quotes {
        Some(q) => {
            let mut allowed: Vec<&str> = q.iter().map(String::as_str).collect();
            allowed.push("");
            json!({"type": "string", "enum": allowed})
        }
        None => json!({"type": "string"}),
    };
    let numbers: Vec<usize> = (1..=n.max(1)).collect();
    json!({
        "type": "object",
        "properties": {"verdicts": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "finding": {"type": "integer", "enum": numbers},
                "quote": quote,
                "resolved": {"type": "boolean"}
            },
            "required": ["finding", "quote", "resolved"]
        }}},
        "required": ["verdicts"]
    })
}

/// `(finding number, resolved, quote)` for each verdict that can be read.
fn parse(reply: &str) -> Option<Vec<(usize, bool, String)>> {
    let v: Value = critique::find_json(reply)?;
    let items = v.get("verdicts")?.as_array()?;
    Some(
        items
            .iter()
            .filter_map(|it| {
                let n = it.get("finding")?.as_u64()?;
                let resolved = match it.get("resolved")? {
                    Value::Bool(b) => *b,
                    Value::String(s) => matches!(s.trim().to_lowercase().as_str(), "yes" | "true"),
                    _ => return None,
                };
                let quote = it.get("quote").and_then(Value::as_str).unwrap_or("");
                Some((usize::try_from(n).ok()?, resolved, quote.to_owned()))
            })
            .collect(),
    )
}

impl Engine<'_> {
    /// Asks whether `revised` resolves each of `base`'s findings. A "yes" counts only with a
    /// quote of the revision found on a changed line. When no verdict can be read (or the
    /// call fails other than by cancellation), a finding counts as resolved when the
    /// revision changes one of its lines, and the judgement says so.
    pub(crate) async fn judge(
        &self,
        input: &ReviewInput,
        base: &Candidate,
        revised: &str,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
    ) -> Result<Judgement, EngineError> {
        let changed = changed_lines(&base.text, revised);
        let req = self.judge_request(input, base, revised, &changed.revised, run)?;
        let resp = match Self::call(self.critic, &req, out, run.cancel, &mut |_| {}).await {
            Ok(r) => r,
            Err(ProviderError::Cancelled) => return Err(ProviderError::Cancelled.into()),
            Err(e) => {
                let why = Unjudged::CallFailed(e.to_string());
                return Ok(by_changed_lines(input, base, &changed.base, why));
            }
        };
        tracing::debug!(reply = %resp.content, "judge reply");
        let Some(verdicts) = parse(&resp.content) else {
            let why = Unjudged::Unreadable(crate::text::excerpt(&resp.content, 80));
            return Ok(by_changed_lines(input, base, &changed.base, why));
        };
        let sel = Selection::new(revised, input.first_line);
        let restored: Vec<(usize, bool, String)> = verdicts
            .into_iter()
            .map(|(n, yes, quote)| (n, yes, run.vault.restore(&quote)))
            .collect();
        Ok(Judgement {
            resolved: backed(&sel, &changed.revised, base.critique.shown.len(), &restored),
            fallback: None,
        })
    }

    /// The judge's request: the revision as a diff, the findings it was to fix (redacted
    /// when `privacy.redact_secrets`); with the compact prompts, quotes limited to the lines
    /// the revision changed.
    fn judge_request(
        &self,
        input: &ReviewInput,
        base: &Candidate,
        revised: &str,
        changed: &BTreeSet<usize>,
        run: &mut Run<'_>,
    ) -> Result<ChatRequest, EngineError> {
        let mut changes = changes_view(&base.text, revised, input.first_line);
        let mut numbered = number_lines(revised, input.first_line);
        let mut sent: Vec<RawFinding> =
            base.critique.shown.iter().map(|(f, _)| f.clone()).collect();
        if self.redact_secrets {
            changes = run.vault.redact(&changes);
            numbered = run.vault.redact(&numbered);
            for f in &mut sent {
                f.quote = run.vault.redact(&f.quote);
            }
        }
        let quotes = self
            .compact_prompts()
            .then(|| critique::quotable_lines(&numbered, |i| changed.contains(&i), usize::MAX))
            .flatten();
        let line_count = Selection::new(revised, input.first_line)
            .line_count()
            .max(1);
        let system = self
            .prompts
            .render("judge_system.md", json!({"language": input.language}))?;
        let user = self.prompts.render(
            "judge_user.md",
            json!({
                "path": input.path,
                "language": input.language,
                "changes": changes,
                "first_line": input.first_line + 1,
                "last_line": input.first_line + line_count,
                "findings": sent,
            }),
        )?;
        Ok(ChatRequest {
            messages: vec![Message::system(system), Message::user(user)],
            json_schema: Some(JsonSchema {
                name: "verdicts",
                schema: schema(sent.len(), quotes.as_deref()),
            }),
            temperature: None,
        })
    }
}

/// The fallback rule: a finding of `base` counts as resolved when the revision changes one
/// of its lines (`changed_in_base`).
fn by_changed_lines(
    input: &ReviewInput,
    base: &Candidate,
    changed_in_base: &BTreeSet<usize>,
    why: Unjudged,
) -> Judgement {
    let old = Selection::new(&base.text, input.first_line);
    Judgement {
        resolved: base
            .critique
            .shown
            .iter()
            .map(|(_, r)| {
                let (a, b) = old.lines_of(r);
                changed_in_base.range(a..=b).next().is_some()
            })
            .collect(),
        fallback: Some(why),
    }
}

/// For each of `n` findings: a verdict says it is resolved, with evidence: its quote (secrets
/// restored) is in the revision (looked for anywhere in it), on a line it changed.
fn backed(
    sel: &Selection<'_>,
    changed: &BTreeSet<usize>,
    n: usize,
    verdicts: &[(usize, bool, String)],
) -> Vec<bool> {
    let first = sel.first_line();
    let whole = (
        u32::try_from(first + 1).unwrap_or(u32::MAX),
        u32::try_from(first + sel.line_count().max(1)).unwrap_or(u32::MAX),
    );
    (1..=n)
        .map(|n| {
            verdicts.iter().any(|(i, yes, quote)| {
                *i == n
                    && *yes
                    && sel.anchor(whole.0, whole.1, quote).is_ok_and(|r| {
                        let (a, b) = sel.lines_of(&r);
                        changed.range(a..=b).next().is_some()
                    })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_lines_are_those_the_revision_rewrites() {
        let base = "a\nb\nc\nd\n";
        let revised = |t: &str| changed_lines(base, t).revised;
        assert_eq!(revised("a\nB\nc\nd\n"), BTreeSet::from([1]));
        assert_eq!(revised("a\nb\nx\ny\nc\nd\n"), BTreeSet::from([2, 3]));
        // A deletion marks the line that now stands where it was.
        assert_eq!(revised("a\nc\nd\n"), BTreeSet::from([1]));
        assert_eq!(changed_lines(base, "a\nc\nd\n").base, BTreeSet::from([1]));
        assert!(revised(base).is_empty());
    }

    #[test]
    fn the_judge_sees_what_changed_with_two_lines_around() {
        let base = "a\nb\nc\nd\ne\nf\ng\n";
        let revised = "a\nb\nc\nD\ne\nf\ng\n";
        assert_eq!(
            changes_view(base, revised, 9),
            "   11 | b\n   12 | c\n-  13 | d\n+  13 | D\n   14 | e\n   15 | f\n"
        );
    }

    #[test]
    fn verdicts_are_read_tolerantly() {
        let v = parse(r#"{"verdicts":[{"finding":1,"resolved":true,"quote":"x"},{"finding":2,"resolved":"no","quote":""},{"resolved":true}]}"#).unwrap();
        assert_eq!(v, vec![(1, true, "x".into()), (2, false, String::new())]);
        assert!(parse("no json here").is_none());
        assert!(parse(r#"{"findings":[]}"#).is_none());
    }
}

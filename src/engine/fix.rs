//! The fix-first strategy and the single-call baseline. Fix-first: the reviser fixes the
//! selection directly (with the facts outside tools report), verification runs, a refused fix
//! goes back to the reviser with its reason, and the verified fix is explained hunk by hunk,
//! each hunk becoming a finding on the original lines it replaces. The baseline (`single`)
//! is one fix call and the same verification, with no explanation and no second try.

use std::ops::Range;

use serde_json::{Value, json};
use similar::DiffOp;

use super::anchor::Selection;
use super::critic::Critiqued;
use super::critique::{self, RawFinding, Severity};
use super::refine::Candidate;
use super::{Engine, EngineError, Event, ReviewInput, ReviewOutcome, Run, Stage, verify};
use crate::llm::{ChatRequest, JsonSchema, Message, ProviderError};

/// One changed stretch of the original: its lines (zero-based, selection-relative; empty for
/// a pure insertion, which sits before `old.start`) and the revised lines that replace them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hunk {
    pub(crate) old: Range<usize>,
    pub(crate) new: Range<usize>,
}

/// The hunks that turn `original` into `revised`, adjacent changes merged.
pub(crate) fn hunks(original: &str, revised: &str) -> Vec<Hunk> {
    let (old, new) = (
        super::edits::split_lines(original),
        super::edits::split_lines(revised),
    );
    let mut out: Vec<Hunk> = Vec::new();
    for op in &super::edits::line_ops(&old, &new) {
        if let DiffOp::Equal { .. } = op {
            continue;
        }
        let (old, new) = (op.old_range(), op.new_range());
        match out.last_mut() {
            Some(h) if h.old.end == old.start && h.new.end == new.start => {
                h.old.end = old.end;
                h.new.end = new.end;
            }
            _ => out.push(Hunk { old, new }),
        }
    }
    out
}

/// A hunk as the explainer sees it: one line of context each side, `-` original lines and
/// `+` revised lines, numbered as in the file.
fn hunk_view(original: &[&str], revised: &[&str], h: &Hunk, first_line: usize) -> String {
    let mut out = String::new();
    let mut line = |sign: char, n: usize, text: &str| {
        let text = text.trim_end_matches(['\n', '\r']);
        out.push_str(&format!("{sign}{:>4} | {text}\n", first_line + n + 1));
    };
    if let Some(before) = h.old.start.checked_sub(1) {
        line(' ', before, original.get(before).copied().unwrap_or(""));
    }
    for i in h.old.clone() {
        line('-', i, original.get(i).copied().unwrap_or(""));
    }
    for i in h.new.clone() {
        line('+', i, revised.get(i).copied().unwrap_or(""));
    }
    if h.old.end < original.len() {
        line(' ', h.old.end, original[h.old.end]);
    }
    out
}

/// What the explainer said about each hunk: `(message, principle, severity)`, `None` where
/// it said nothing readable.
fn parse_explanations(reply: &str, n: usize) -> Option<Vec<Option<(String, String, Severity)>>> {
    let v: Value = critique::find_json(reply)?;
    let items = v.get("changes")?.as_array()?;
    let mut out = vec![None; n];
    for it in items {
        let Some(i) = it
            .get("change")
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| i.checked_sub(1))
        else {
            continue;
        };
        let message = it.get("message").and_then(Value::as_str).unwrap_or("");
        if i >= n || message.trim().is_empty() {
            continue;
        }
        let principle = it.get("principle").and_then(Value::as_str).unwrap_or("");
        let fixes = it
            .get("fixes_a_problem")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let severity = if fixes {
            it.get("severity")
                .and_then(Value::as_str)
                .map_or(Severity::Warning, Severity::parse)
        } else {
            Severity::Hint
        };
        if let Some(slot) = out.get_mut(i) {
            *slot = Some((message.trim().to_owned(), principle.to_owned(), severity));
        }
    }
    Some(out)
}

/// Whether two versions differ only in whitespace at the ends of lines (a model that "fixes"
/// nothing often re-indents or drops a trailing space).
fn same_code(a: &str, b: &str) -> bool {
    a.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .eq(b.lines().map(str::trim_end).filter(|l| !l.is_empty()))
}

/// How fix-first ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FixEnd {
    /// `out` holds what there is to show (a revision and its findings, "nothing to fix", an
    /// error, or a cancellation).
    Done,
    /// The fixer gave nothing the user can use (its call failed, or no fix passed
    /// verification): a critique of the original is to be shown instead, without revisions.
    Critique,
}

impl Engine<'_> {
    /// Fix-first (or, with `single`, the baseline): fills `out` with the explained findings and
    /// the verified revision, or says that a critique is to be shown instead.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fix_first(
        &self,
        input: &ReviewInput,
        original: &str,
        run: &mut Run<'_>,
        scratch: Option<&verify::Scratch>,
        out: &mut ReviewOutcome,
        progress: &mut (dyn FnMut(Event) + Send),
        single: bool,
    ) -> FixEnd {
        let rounds = if single {
            1
        } else {
            self.config.max_iterations.max(1)
        };
        let base = Candidate {
            text: original.to_owned(),
            critique: Critiqued::default(),
            round: 0,
            resolved: 0,
            passes: false,
        };
        let mut feedback: Option<String> = None;
        // A fix that verification let through while the failing command still fails on it:
        // kept in case no later round does better.
        let mut fallback: Option<(String, u32)> = None;
        let mut chosen: Option<(String, u32)> = None;
        // Greedy (the provider's), until an unchanged answer to a failing check asks again.
        let mut temperature: Option<f64> = None;
        for round in 1..=rounds {
            if run.cancel.is_cancelled() {
                out.cancelled = true;
                return FixEnd::Done;
            }
            progress(Event::Stage(Stage::Revise { round }));
            out.iterations = round;
            let fixed = match self
                .propose_fix(
                    input,
                    original,
                    run,
                    out,
                    (feedback.as_deref(), temperature),
                )
                .await
            {
                Ok(t) => t,
                Err(EngineError::Provider(e)) if !single && e.is_call_specific() => {
                    // A fix writes the whole selection, the longest answer of the loop; a
                    // critique is shorter and still shows the user what is wrong.
                    out.notes.push(format!(
                        "fix {round} failed ({e}); a critique is shown instead"
                    ));
                    return FixEnd::Critique;
                }
                Err(EngineError::Provider(e)) => {
                    super::outcome::fail(out, EngineError::Provider(e));
                    return FixEnd::Done;
                }
                Err(e) => {
                    out.notes.push(format!("fix {round} rejected: {e}"));
                    feedback = Some(e.to_string());
                    continue;
                }
            };
            if same_code(&fixed, original) {
                if run.command_failed && !single && round < rounds {
                    // The check fails on this code, so "nothing to fix" contradicts the
                    // evidence: ask once more, sampling, so the answer can differ.
                    out.notes.push(format!(
                        "fix {round}: the reviser gave the code back unchanged although verify.command fails on it; asked again"
                    ));
                    feedback = Some(
                        "You gave the code back unchanged, but the check reported above fails on it: the code has a bug. Find it and fix it."
                            .to_owned(),
                    );
                    temperature = Some(self.config.sample_temperature.clamp(0.0, 2.0));
                    continue;
                }
                if round == 1 {
                    out.notes
                        .push("the reviser found nothing to fix".to_owned());
                } else {
                    out.notes.push(format!(
                        "fix {round}: the reviser gave the code back unchanged"
                    ));
                }
                break;
            }
            match self
                .verify_revision(
                    input, original, &base, fixed, scratch, run, out, round, !single,
                )
                .await
            {
                Ok((fixed, Some(false))) => {
                    let why = "the failing verify.command still fails on it".to_owned();
                    out.notes.push(format!("fix {round}: {why}"));
                    feedback = run.last_failure.take().or(Some(why));
                    fallback.get_or_insert((fixed, round));
                }
                Ok((fixed, _)) => {
                    chosen = Some((fixed, round));
                    break;
                }
                Err(_) if run.cancel.is_cancelled() => {
                    out.cancelled = true;
                    return FixEnd::Done;
                }
                Err(why) => {
                    out.rejected += 1;
                    out.notes.push(format!("fix {round} rejected: {why}"));
                    feedback = Some(run.last_failure.take().unwrap_or(why));
                }
            }
        }
        if out.cancelled {
            return FixEnd::Done;
        }
        let Some((fixed, round)) = chosen.or(fallback) else {
            if out.iterations > 0
                && out.error.is_none()
                && !out.notes.iter().any(|n| n.contains("nothing to fix"))
            {
                if single {
                    out.notes
                        .push("no revision is offered: no fix passed verification".to_owned());
                } else {
                    out.notes.push(
                        "no revision is offered: no fix passed verification; a critique is shown instead"
                            .to_owned(),
                    );
                    return FixEnd::Critique;
                }
            }
            return FixEnd::Done;
        };
        let region = out.region.clone();
        let hunks = hunks(original, &fixed);
        let findings: Vec<(RawFinding, Range<usize>)> = if single {
            Vec::new()
        } else {
            progress(Event::Stage(Stage::Explain { round }));
            match self
                .explain(input, original, &fixed, &hunks, run, out)
                .await
            {
                Ok(f) => f,
                Err(EngineError::Provider(ProviderError::Cancelled)) => {
                    out.cancelled = true;
                    return FixEnd::Done;
                }
                Err(e) => {
                    out.notes
                        .push(format!("the fix could not be explained: {e}"));
                    return FixEnd::Done;
                }
            }
        };
        out.findings = super::refine::document_findings(&findings, region.start);
        for f in &out.findings {
            progress(Event::Finding(f.clone()));
        }
        let resolved = out.findings.len();
        out.revision = Some(super::refine::offered(
            input,
            original,
            &fixed,
            &out.findings,
            resolved,
            0,
            round,
        ));
        FixEnd::Done
    }

    /// One call: each hunk of the fix explained as a finding on the original lines it
    /// changes. Hunks the explainer says fix nothing are shown as such (at `hint`), so the
    /// user sees every change the revision makes.
    async fn explain(
        &self,
        input: &ReviewInput,
        original: &str,
        fixed: &str,
        hunks: &[Hunk],
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
    ) -> Result<Vec<(RawFinding, Range<usize>)>, EngineError> {
        let old_lines = super::edits::split_lines(original);
        let new_lines = super::edits::split_lines(fixed);
        let mut views: Vec<String> = hunks
            .iter()
            .map(|h| hunk_view(&old_lines, &new_lines, h, input.first_line))
            .collect();
        if self.redact_secrets {
            for v in &mut views {
                *v = run.vault.redact(v);
            }
        }
        let ids = self.prompts.principle_ids();
        let system = self.prompts.render(
            "explain_system.md",
            json!({"language": input.language, "principle_ids": ids.join(", ")}),
        )?;
        let user = self.prompts.render(
            "explain_user.md",
            json!({"path": input.path, "language": input.language, "changes": views}),
        )?;
        let numbers: Vec<usize> = (1..=hunks.len().max(1)).collect();
        let schema = json!({
            "type": "object",
            "properties": {"changes": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "change": {"type": "integer", "enum": numbers},
                    "message": {"type": "string"},
                    "principle": {"type": "string", "enum": ids},
                    "severity": {"type": "string", "enum": ["error", "warning", "info", "hint"]},
                    "fixes_a_problem": {"type": "boolean"}
                },
                "required": ["change", "message", "principle", "severity", "fixes_a_problem"]
            }}},
            "required": ["changes"]
        });
        let req = ChatRequest {
            messages: vec![Message::system(system), Message::user(user)],
            json_schema: Some(JsonSchema {
                name: "explanations",
                schema,
            }),
            temperature: None,
        };
        let said = match Self::call(self.critic, &req, out, run.cancel, &mut |_| {}).await {
            Ok(r) => {
                tracing::debug!(reply = %r.content, "explain reply");
                let parsed = parse_explanations(&r.content, hunks.len());
                if parsed.is_none() {
                    out.notes.push(format!(
                        "the explanation could not be read: {}",
                        crate::text::excerpt(&r.content, 80)
                            .map_or_else(|| "(empty)".to_owned(), |t| format!("{t:?}"))
                    ));
                }
                parsed.unwrap_or_else(|| vec![None; hunks.len()])
            }
            Err(ProviderError::Cancelled) => return Err(ProviderError::Cancelled.into()),
            Err(e) => {
                out.notes.push(format!("the explanation call failed ({e})"));
                vec![None; hunks.len()]
            }
        };
        let sel = Selection::new(original, input.first_line);
        let mut findings = Vec::new();
        for (h, said) in hunks.iter().zip(said) {
            // The finding quotes the first original line the hunk replaces (for an insertion,
            // the line it goes before, else the one after which it goes).
            let at = if h.old.is_empty() {
                h.old.start.min(old_lines.len().saturating_sub(1))
            } else {
                h.old.start
            };
            let quote = old_lines.get(at).map_or("", |l| l.trim()).to_owned();
            let line = u32::try_from(input.first_line + at + 1).unwrap_or(u32::MAX);
            let Ok(range) = sel.anchor(line, line, &quote) else {
                continue;
            };
            let (message, principle, severity) = said.unwrap_or_else(|| {
                (
                    "The revision changes this code (no explanation was given).".to_owned(),
                    "other".to_owned(),
                    Severity::Info,
                )
            });
            let principle = if ids.contains(&principle) {
                principle
            } else {
                "other".to_owned()
            };
            let mut f = RawFinding {
                start_line: line,
                end_line: u32::try_from(input.first_line + h.old.end.max(at + 1))
                    .unwrap_or(u32::MAX),
                quote,
                severity,
                principle,
                message,
                suggestion: None,
                confidence: 1.0,
            };
            self.cap_severity(&mut f, &sel, &range, (&run.fact_lines, run.command_failed));
            findings.push((f, range));
        }
        Ok(findings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hunks_merge_adjacent_changes_and_keep_insertions() {
        let a = "a\nb\nc\nd\ne\n";
        assert_eq!(
            hunks(a, "a\nB\nC\nd\ne\n"),
            vec![Hunk {
                old: 1..3,
                new: 1..3
            }]
        );
        let h = hunks(a, "a\nb\nx\nc\nd\nE\n");
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].old, 2..2);
        assert_eq!(h[1].old, 4..5);
        assert!(hunks(a, a).is_empty());
    }

    #[test]
    fn a_hunk_is_shown_with_a_line_around_it() {
        let a: Vec<&str> = "a\nb\nc\n".split_inclusive('\n').collect();
        let b: Vec<&str> = "a\nB\nc\n".split_inclusive('\n').collect();
        let h = Hunk {
            old: 1..2,
            new: 1..2,
        };
        assert_eq!(
            hunk_view(&a, &b, &h, 9),
            "   10 | a\n-  11 | b\n+  11 | B\n   12 | c\n"
        );
    }

    #[test]
    fn explanations_are_read_tolerantly() {
        let e = parse_explanations(
            r#"{"changes":[{"change":2,"message":"off by one","principle":"correctness","severity":"error"},{"change":9,"message":"x"},{"change":1,"message":" "}]}"#,
            2,
        )
        .unwrap();
        assert_eq!(e[0], None);
        assert_eq!(
            e[1],
            Some(("off by one".into(), "correctness".into(), Severity::Error))
        );
        assert!(parse_explanations("nothing", 2).is_none());
    }

    #[test]
    fn a_change_that_fixes_nothing_is_a_hint() {
        let e = parse_explanations(
            r#"{"changes":[{"change":1,"message":"renamed","principle":"clarity","severity":"error","fixes_a_problem":false}]}"#,
            1,
        )
        .unwrap();
        assert_eq!(e[0].as_ref().map(|x| x.2), Some(Severity::Hint));
    }

    #[test]
    fn whitespace_only_changes_are_no_fix() {
        assert!(same_code(
            "fn f() {\n    1\n}\n",
            "fn f() {  \n    1\n}\n\n"
        ));
        assert!(!same_code("fn f() {\n    1\n}\n", "fn f() {\n    2\n}\n"));
    }
}

//! The fix-first strategy and the single-call baseline. Fix-first: the reviser fixes the
//! selection directly (with the facts outside tools report), verification runs, a refused fix
//! goes back to the reviser with its reason, and the verified fix is explained hunk by hunk,
//! each hunk becoming a finding on the original lines it replaces. The baseline (`single`)
//! is one fix call and the same verification, with no explanation and no second try.

use std::ops::Range;

use serde_json::{Value, json};

use super::anchor::Selection;
use super::candidate::{Candidate, document_findings, offered};
use super::critic::Critiqued;
use super::critique::{self, RawFinding, Severity};
use super::edits::{Hunk, hunks, split_lines};
use super::evidence::{Probing, Weighable, Weighed};
use super::note::{Attempt, Note, Rejection, SetAside};
use super::outcome::{EngineError, Event, Evidence, ReviewInput, ReviewOutcome, Stage, Stop, fail};
use super::run::{Engine, Run, Subject};
use super::verify::Verified;
use crate::llm::{ChatRequest, JsonSchema, Message, ProviderError};

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
    /// `out` holds what there is to show (a revision and its findings, "nothing to fix", or
    /// an error).
    Done,
    /// The fixer gave nothing the user can use (its call failed, or no fix passed
    /// verification): a critique of the original is to be shown instead, without revisions.
    Critique,
}

/// What the fix rounds came to.
enum Fixes {
    /// A fix to offer, its round, and whether the failing check passes on it.
    Found(String, u32, bool),
    /// The fixer's first answer is the code as it is.
    NothingToFix,
    /// No fix passed verification.
    NoneVerified,
    /// A fix call failed: a critique is to be shown instead.
    CallFailed,
    /// The review failed (its error is in the outcome).
    Failed,
}

/// What one fix round came to.
enum FixRound {
    /// Verified, and the command passes on it (or there is none): the fix to offer.
    Chosen(String),
    /// Verified, but the failing verify.command still fails on it: kept in case no later
    /// round does better.
    StillFails(String),
    /// Refused, or asked again: on to the next round.
    Next,
    /// The code came back unchanged: no more rounds.
    Unchanged,
    /// The fix call failed: a critique is to be shown instead.
    CallFailed,
    /// The review failed (its error is in the outcome).
    Failed,
}

/// How the fixer is asked, round to round.
struct Asking<'x> {
    at: &'x Subject<'x>,
    /// The baseline: one round, no explanation, no second try.
    single: bool,
    rounds: u32,
    /// Why the last fix was refused (or what still fails on it).
    feedback: Option<String>,
    /// Greedy (the provider's), until an unchanged answer to a failing check asks again.
    temperature: Option<f64>,
}

/// What the fixer is told when it gave the code back unchanged although the check fails.
const ASK_AGAIN: &str = "You gave the code back unchanged, but the check reported above fails on it: the code has a bug. Find it and fix it.";

impl Engine<'_> {
    /// Fix-first (or, with `single`, the baseline): fills `out` with the explained findings and
    /// the verified revision, or says that a critique is to be shown instead. With `probing`,
    /// sampled fixes join the greedy one and the evidence stage picks what is offered.
    pub(crate) async fn fix_first(
        &self,
        at: &Subject<'_>,
        run: &mut Run<'_>,
        (out, progress): (&mut ReviewOutcome, &mut (dyn FnMut(Event) + Send)),
        single: bool,
        probing: Option<&mut Probing>,
    ) -> Result<FixEnd, Stop> {
        let mut asking = Asking {
            at,
            single,
            rounds: if single {
                1
            } else {
                self.config.max_iterations.max(1)
            },
            feedback: None,
            temperature: None,
        };
        let (fixed, round, passes) = match self.fix_rounds(&mut asking, run, out, progress).await? {
            Fixes::Found(fixed, round, passes) => (fixed, round, passes),
            Fixes::NothingToFix | Fixes::Failed => return Ok(FixEnd::Done),
            Fixes::CallFailed => return Ok(FixEnd::Critique),
            Fixes::NoneVerified => return Ok(no_fix(out, single)),
        };
        let greedy = Weighable {
            text: fixed,
            passes_failing_check: passes,
            attempt: Attempt::Fix(round),
        };
        let (fixed, evidence, probing) = match probing {
            Some(probing) if !single => {
                match self
                    .by_evidence(at, probing, greedy, run, (out, progress))
                    .await?
                {
                    Some((fixed, evidence)) => (fixed, evidence, Some(&*probing)),
                    None => return Ok(FixEnd::Done),
                }
            }
            _ => (greedy.text, None, None),
        };
        let findings = if single {
            Vec::new()
        } else {
            progress(Event::Stage(Stage::Explain { round }));
            self.show_pending(at, &fixed, evidence.as_ref(), run, out, progress);
            let told = evidence.as_ref().map(|e| run.vault.redact(&e.sentence()));
            match self
                .explain(at.input, (at.original, &fixed), told, run, out)
                .await
            {
                Ok(f) => f,
                Err(EngineError::Provider(ProviderError::Cancelled)) => return Err(Stop),
                Err(e) => {
                    out.notes.push(Note::NotExplained { why: e.to_string() });
                    return Ok(FixEnd::Done);
                }
            }
        };
        out.findings = document_findings(&findings, out.region.start);
        for f in &mut out.findings {
            // The evidence is the fix's (a counterexample only for the hunks of its function);
            // a hunk the explainer says fixes nothing keeps none.
            if let (Some(e), Some(p)) = (&evidence, probing)
                && (f.raw.severity != Severity::Hint || matches!(e, Evidence::Unchanged { .. }))
            {
                let line = crate::document::line_of(&at.input.text, f.range.start);
                f.evidence = p.evidence_at(at, line, e);
            }
            progress(Event::Finding(f.clone()));
        }
        if let Some(Evidence::Counterexample(_)) = &evidence {
            self.check_regression_test(at, &fixed, run, out).await?;
        }
        let resolved = out.findings.len();
        out.revision = Some(offered(
            at.input,
            at.original,
            &fixed,
            &out.findings,
            (resolved, 0),
            round,
        ));
        Ok(FixEnd::Done)
    }

    /// What is known before the explainer answers: where the verified fix changes the code, and
    /// its evidence, reported as hints (the explained findings, reported next with the same ids,
    /// replace them).
    fn show_pending(
        &self,
        at: &Subject<'_>,
        fixed: &str,
        evidence: Option<&Evidence>,
        run: &Run<'_>,
        out: &ReviewOutcome,
        progress: &mut (dyn FnMut(Event) + Send),
    ) {
        let hunks = hunks(at.original, fixed);
        let mut message =
            "A verified fix changes this code; its explanation is on the way.".to_owned();
        if let Some(e) = evidence {
            message.push_str(&format!(" Evidence: {}", e.sentence()));
        }
        let said = vec![Some((message, "other".to_owned(), Severity::Hint)); hunks.len()];
        let pending = self.explained(at.input, at.original, &hunks, said, run);
        for f in document_findings(&pending, out.region.start) {
            progress(Event::Finding(f));
        }
    }

    /// The fix rounds: ask, verify, and on a refusal ask again with its reason.
    async fn fix_rounds(
        &self,
        asking: &mut Asking<'_>,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        progress: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Fixes, Stop> {
        let base = Candidate::original(asking.at.original, Critiqued::default(), false);
        // A fix that verification let through while the failing command still fails on it:
        // kept in case no later round does better.
        let mut fallback: Option<(String, u32)> = None;
        let failing = run.command_failed;
        for round in 1..=asking.rounds {
            if run.cancel.is_cancelled() {
                return Err(Stop);
            }
            progress(Event::Stage(Stage::Revise { round }));
            out.iterations = round;
            match self.fix_round(asking, &base, run, out, round).await? {
                FixRound::Chosen(fixed) => return Ok(Fixes::Found(fixed, round, failing)),
                FixRound::StillFails(fixed) => {
                    fallback.get_or_insert((fixed, round));
                }
                FixRound::Next => {}
                FixRound::Unchanged if round == 1 => return Ok(Fixes::NothingToFix),
                FixRound::Unchanged => break,
                FixRound::CallFailed => return Ok(Fixes::CallFailed),
                FixRound::Failed => return Ok(Fixes::Failed),
            }
        }
        Ok(fallback.map_or(Fixes::NoneVerified, |(fixed, round)| {
            Fixes::Found(fixed, round, false)
        }))
    }

    /// One fix round: ask the fixer (with the last refusal's reason), then verify its fix.
    async fn fix_round(
        &self,
        asking: &mut Asking<'_>,
        base: &Candidate,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        round: u32,
    ) -> Result<FixRound, Stop> {
        let (at, single) = (asking.at, asking.single);
        let attempt = Attempt::Fix(round);
        let told = (asking.feedback.as_deref(), asking.temperature);
        let fixed = match self
            .propose_fix(at.input, at.original, run, out, told)
            .await
        {
            Ok(t) => t,
            Err(EngineError::Provider(e)) if !single && e.is_call_specific() => {
                // A fix writes the whole selection, the longest answer of the loop; a
                // critique is shorter and still shows the user what is wrong.
                let why = e.to_string();
                out.notes.push(Note::FixFailed { round, why });
                return Ok(FixRound::CallFailed);
            }
            Err(EngineError::Provider(e)) => {
                fail(out, EngineError::Provider(e))?;
                return Ok(FixRound::Failed);
            }
            Err(e) => {
                let why = Rejection::from(e);
                asking.feedback = Some(why.to_string());
                out.notes.push(Note::Rejected { attempt, why });
                return Ok(FixRound::Next);
            }
        };
        if same_code(&fixed, at.original) {
            return Ok(self.unchanged(asking, run, out, round));
        }
        match self
            .verify_revision(at, base, fixed, run, out, (round, !single))
            .await?
        {
            Ok(Verified {
                text,
                passes: Some(false),
            }) => {
                out.notes.push(Note::FixStillFails { round });
                asking.feedback = run
                    .last_failure
                    .take()
                    .or_else(|| Some(SetAside::StillFails.to_string()));
                Ok(FixRound::StillFails(text))
            }
            Ok(verified) => Ok(FixRound::Chosen(verified.text)),
            Err(why) => {
                out.rejected += 1;
                asking.feedback = Some(run.last_failure.take().unwrap_or_else(|| why.to_string()));
                out.notes.push(Note::Rejected { attempt, why });
                Ok(FixRound::Next)
            }
        }
    }

    /// The fixer gave the code back unchanged: when the check fails on this code, "nothing to
    /// fix" contradicts the evidence, so it is asked once more, sampling, so the answer can
    /// differ; otherwise the rounds end.
    fn unchanged(
        &self,
        asking: &mut Asking<'_>,
        run: &Run<'_>,
        out: &mut ReviewOutcome,
        round: u32,
    ) -> FixRound {
        if run.check_failed() && !asking.single && round < asking.rounds {
            out.notes.push(Note::UnchangedAskedAgain { round });
            asking.feedback = Some(ASK_AGAIN.to_owned());
            asking.temperature = Some(self.config.sample_temperature.clamp(0.0, 2.0));
            return FixRound::Next;
        }
        out.notes.push(if round == 1 {
            Note::NothingToFix
        } else {
            Note::FixUnchanged { round }
        });
        FixRound::Unchanged
    }

    /// One call: each hunk of the fix explained as a finding on the original lines it
    /// changes. Hunks the explainer says fix nothing are shown as such (at `hint`), so the
    /// user sees every change the revision makes.
    async fn explain(
        &self,
        input: &ReviewInput,
        (original, fixed): (&str, &str),
        evidence: Option<String>,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
    ) -> Result<Vec<(RawFinding, Range<usize>)>, EngineError> {
        let hunks = hunks(original, fixed);
        let req = self.explain_request(input, (original, fixed), evidence, &hunks, run)?;
        let said = match Self::call(self.critic, &req, out, run.cancel, &mut |_| {}).await {
            Ok(r) => {
                tracing::debug!(reply = %r.content, "explain reply");
                let parsed = parse_explanations(&r.content, hunks.len());
                if parsed.is_none() {
                    out.notes.push(Note::ExplanationUnreadable {
                        reply: crate::text::excerpt(&r.content, 80),
                    });
                }
                parsed.unwrap_or_else(|| vec![None; hunks.len()])
            }
            Err(ProviderError::Cancelled) => return Err(ProviderError::Cancelled.into()),
            Err(e) => {
                out.notes
                    .push(Note::ExplanationFailed { why: e.to_string() });
                vec![None; hunks.len()]
            }
        };
        Ok(self.explained(input, original, &hunks, said, run))
    }

    /// The explainer's request: each hunk with a line around it (redacted when
    /// `privacy.redact_secrets`), numbered for the reply.
    fn explain_request(
        &self,
        input: &ReviewInput,
        (original, fixed): (&str, &str),
        evidence: Option<String>,
        hunks: &[Hunk],
        run: &mut Run<'_>,
    ) -> Result<ChatRequest, EngineError> {
        let (old_lines, new_lines) = (split_lines(original), split_lines(fixed));
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
            json!({"path": input.path, "language": input.language, "changes": views, "evidence": evidence}),
        )?;
        Ok(ChatRequest {
            messages: vec![Message::system(system), Message::user(user)],
            json_schema: Some(JsonSchema {
                name: "explanations",
                schema: explain_schema(hunks.len(), ids),
            }),
            temperature: None,
        })
    }

    /// Each hunk as a finding that quotes the first original line it replaces, in the
    /// explainer's words (or saying there are none).
    fn explained(
        &self,
        input: &ReviewInput,
        original: &str,
        hunks: &[Hunk],
        said: Vec<Option<(String, String, Severity)>>,
        run: &Run<'_>,
    ) -> Vec<(RawFinding, Range<usize>)> {
        let old_lines = split_lines(original);
        let ids = self.prompts.principle_ids();
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
            self.cap_severity(&mut f, &sel, &range, (&run.fact_lines, run.check_failed()));
            findings.push((f, range));
        }
        findings
    }
}

/// No fix passed verification: fix-first shows a critique instead, the baseline nothing.
fn no_fix(out: &mut ReviewOutcome, single: bool) -> FixEnd {
    if out.iterations == 0 || out.error.is_some() {
        return FixEnd::Done;
    }
    out.notes.push(Note::NoFixPassed {
        critique_instead: !single,
    });
    if single {
        FixEnd::Done
    } else {
        FixEnd::Critique
    }
}

/// The explainer's JSON schema for `n` hunks.
fn explain_schema(n: usize, ids: &[String]) -> Value {
    let numbers: Vec<usize> = (1..=n.max(1)).collect();
    json!({
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
    })
}

impl Engine<'_> {
    /// The greedy fix and `loop.fix_samples` sampled ones, weighed by the evidence stage: the
    /// version to explain and offer, and what backs it (`None` in the second place: no probe
    /// ran); `None`: every version changes behaviour where nothing backs it, and nothing is
    /// offered (the notes say why).
    async fn by_evidence(
        &self,
        at: &Subject<'_>,
        probing: &mut Probing,
        greedy: Weighable,
        run: &mut Run<'_>,
        (out, progress): (&mut ReviewOutcome, &mut (dyn FnMut(Event) + Send)),
    ) -> Result<Option<(String, Option<Evidence>)>, Stop> {
        let mut candidates = vec![greedy];
        self.sample_fixes(at, &mut candidates, run, (out, progress))
            .await?;
        let weighed = self
            .weigh_candidates(at, probing, &candidates, run, (out, progress))
            .await?;
        Ok(match weighed {
            Weighed::Unprobed => Some((candidates.swap_remove(0).text, None)),
            Weighed::Chosen(i, evidence) if i < candidates.len() => {
                Some((candidates.swap_remove(i).text, Some(evidence)))
            }
            Weighed::Chosen(..) | Weighed::NoneSupported => None,
        })
    }

    /// `loop.fix_samples` fixes at `loop.sample_temperature`, each verified like the greedy
    /// one (without its second try); unchanged, repeated or refused ones are left out.
    async fn sample_fixes(
        &self,
        at: &Subject<'_>,
        candidates: &mut Vec<Weighable>,
        run: &mut Run<'_>,
        (out, progress): (&mut ReviewOutcome, &mut (dyn FnMut(Event) + Send)),
    ) -> Result<(), Stop> {
        let k = self
            .config
            .fix_samples(self.reviser.kind() == crate::llm::Kind::Local);
        let base = Candidate::original(at.original, Critiqued::default(), false);
        let temperature = Some(self.config.sample_temperature.clamp(0.0, 2.0));
        for n in 1..=k {
            if run.cancel.is_cancelled() {
                return Err(Stop);
            }
            progress(Event::Stage(Stage::Sample { n, of: k }));
            let text = match self
                .propose_fix(at.input, at.original, run, out, (None, temperature))
                .await
            {
                Ok(t) => t,
                Err(EngineError::Provider(ProviderError::Cancelled)) => return Err(Stop),
                Err(e) => {
                    tracing::debug!("sampled fix {n} failed: {e}");
                    continue;
                }
            };
            if same_code(&text, at.original) || candidates.iter().any(|c| c.text == text) {
                continue;
            }
            match self
                .verify_revision(at, &base, text, run, out, (n, false))
                .await?
            {
                Ok(v) if v.passes != Some(false) => candidates.push(Weighable {
                    passes_failing_check: run.command_failed && v.passes == Some(true),
                    text: v.text,
                    attempt: Attempt::Sample(n),
                }),
                Ok(_) => {}
                Err(why) => tracing::debug!("sampled fix {n} refused: {why}"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

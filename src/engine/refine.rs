//! The loop: critique the original, then revise the best version so far, verify each
//! revision from outside the model (syntax, signatures, `verify.command`), judge whether it
//! resolves the findings, and keep the best verified version. A refused revision's reason goes
//! to the next round's reviser. (`loop.strategy = "fix-first"` runs [`super::fix`] instead.)

use ropey::Rope;
use std::ops::Range;
use tokio_util::sync::CancellationToken;

use super::anchor::Selection;
use super::critic::Critiqued;
use super::critique::RawFinding;
use super::edits::{self, Edit};
use super::outcome::fail;
use super::{
    Engine, EngineError, Event, Finding, ReviewInput, ReviewOutcome, Revision, Run, Stage, judge,
    verify,
};
use crate::config::Strategy;
use crate::llm::ProviderError;
use crate::secrets::Vault;

/// A version of the selection and its critique.
pub(crate) struct Candidate {
    pub(crate) text: String,
    /// The findings still to fix in this version (for the original: the critique).
    pub(crate) critique: Critiqued,
    pub(crate) round: u32,
    /// Findings of the original this version resolves, by the judge's evidence.
    pub(crate) resolved: usize,
    /// verify.command passes on this version (a version that passes beats one that resolves
    /// more findings by the judge's word).
    pub(crate) passes: bool,
}

impl Engine<'_> {
    /// The loop itself, filling `out`.
    pub(crate) async fn refine(
        &self,
        input: &ReviewInput,
        original: &str,
        vault: &mut Vault,
        out: &mut ReviewOutcome,
        cancel: &CancellationToken,
        progress: &mut (dyn FnMut(Event) + Send),
    ) {
        let region = out.region.clone();
        let mut run = Run {
            vault,
            cancel,
            facts: input
                .facts
                .iter()
                .map(|f| format!("line {}: {}", f.line + 1, f.text))
                .collect(),
            fact_lines: input.facts.iter().map(|f| f.line).collect(),
            command_failed: false,
            last_failure: None,
            original_code: None,
            temperature: None,
        };
        let mut scratch = None;
        if let Some(check) = self.command {
            match self.baseline(check, input, cancel).await {
                Ok((s, result)) => {
                    out.command_passed_on_original = Some(result.passed);
                    run.original_code = result.code;
                    if !result.passed {
                        run.command_failed = true;
                        run.facts.push(format!(
                            "`{}` fails on the code as it is now:\n{}",
                            check.command,
                            verify::gist(&result.output)
                        ));
                    }
                    scratch = Some(s);
                }
                Err(e) if e == verify::CANCELLED => {
                    out.cancelled = true;
                    return;
                }
                Err(e) => out.notes.push(format!("verify.command was not run: {e}")),
            }
        }
        let strategy = self
            .config
            .strategy
            .resolve(self.critic.kind() == crate::llm::Kind::Local);
        // Fix-first that gave nothing usable shows the critique, without revising again.
        let mut revise = true;
        match strategy {
            Strategy::CritiqueFirst | Strategy::Auto => {}
            Strategy::FixFirst | Strategy::Single => {
                let single = strategy == Strategy::Single;
                let end = self
                    .fix_first(
                        input,
                        original,
                        &mut run,
                        scratch.as_ref(),
                        out,
                        progress,
                        single,
                    )
                    .await;
                if end == super::fix::FixEnd::Done {
                    return;
                }
                revise = false;
            }
        }

        progress(Event::Stage(Stage::Critique { round: 0 }));
        let first = match self
            .critique_voted(
                input,
                original,
                &mut run,
                out,
                progress,
                (!self.config.reflect).then_some(region.start),
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                fail(out, e);
                return;
            }
        };
        let mut first = first;
        if self.config.reflect && !first.shown.is_empty() {
            match self.reflect(input, original, &first, &mut run, out).await {
                Ok(keep) => {
                    let before = first.shown.len();
                    let mut i = 0;
                    first.shown.retain(|_| {
                        i += 1;
                        keep.get(i - 1).copied().unwrap_or(true)
                    });
                    out.reflected_out = before - first.shown.len();
                    if out.reflected_out > 0 {
                        out.notes.push(format!(
                            "the reflection pass dropped {} finding(s) it scored below {}",
                            out.reflected_out, self.config.reflect_min_score
                        ));
                    }
                }
                Err(EngineError::Provider(ProviderError::Cancelled)) => {
                    out.cancelled = true;
                    return;
                }
                Err(e) => out.notes.push(format!(
                    "the reflection pass failed ({e}); all findings kept"
                )),
            }
        }
        out.unanchored = first.unanchored;
        out.outside_selection = first.outside;
        out.low_confidence = first.low_confidence.clone();
        out.quote_is_message = first.quote_is_message;
        out.repeated = first.repeated;
        out.over_limit = first.over_limit;
        out.not_agreed = first.not_agreed;
        out.findings = document_findings(&first.shown, region.start);
        if first.shown.is_empty() || !revise {
            return;
        }

        let mut candidates = vec![Candidate {
            text: original.to_owned(),
            critique: first,
            round: 0,
            resolved: 0,
            passes: out.command_passed_on_original == Some(true),
        }];
        let mut best = 0;
        // Why the last revision was refused (or what still fails on it), for the next one.
        let mut feedback: Option<String> = None;
        for round in 1..=self.config.max_iterations {
            if cancel.is_cancelled() {
                out.cancelled = true;
                return;
            }
            progress(Event::Stage(Stage::Revise { round }));
            out.iterations = round;
            let base = &candidates[best];
            let revised = match self
                .revise(
                    input,
                    base,
                    run.vault,
                    out,
                    cancel,
                    feedback.take().as_deref(),
                )
                .await
            {
                Ok(r) => r,
                Err(EngineError::Provider(e)) => {
                    fail(out, EngineError::Provider(e));
                    break;
                }
                Err(e) => {
                    out.notes.push(format!("revision {round} rejected: {e}"));
                    feedback = Some(e.to_string());
                    continue;
                }
            };
            let (revised, tests_passed) = match self
                .verify_revision(
                    input,
                    original,
                    base,
                    revised,
                    scratch.as_ref(),
                    &mut run,
                    out,
                    round,
                    true,
                )
                .await
            {
                Ok(r) => r,
                Err(_) if cancel.is_cancelled() => {
                    out.cancelled = true;
                    return;
                }
                Err(why) => {
                    out.rejected += 1;
                    out.notes.push(format!("revision {round} rejected: {why}"));
                    feedback = Some(run.last_failure.take().unwrap_or(why));
                    continue;
                }
            };
            if tests_passed == Some(false) {
                // The command failed on the original too: no regression, but what still
                // fails goes to the next round.
                feedback = run.last_failure.take();
            }
            // Evidence, strongest first: tests that fail on the original and pass on the
            // revision decide alone; otherwise the judge, finding by finding.
            let tests_decide =
                tests_passed == Some(true) && out.command_passed_on_original == Some(false);
            let judgement = if tests_decide {
                out.notes.push(format!(
                    "revision {round}: verify.command fails on the original and passes on it; accepted on that alone"
                ));
                judge::Judgement {
                    resolved: vec![true; base.critique.shown.len()],
                    fallback: None,
                }
            } else if base.critique.shown.is_empty() {
                // Nothing left to judge: only the failing command was to be fixed, and it
                // still fails.
                out.notes.push(format!(
                    "revision {round} set aside: the failing verify.command still fails on it"
                ));
                continue;
            } else {
                progress(Event::Stage(Stage::Judge { round }));
                match self.judge(input, base, &revised, &mut run, out).await {
                    Ok(j) => j,
                    Err(EngineError::Provider(ProviderError::Cancelled)) => {
                        out.cancelled = true;
                        return;
                    }
                    Err(e) => {
                        out.notes.push(format!("revision {round} set aside: {e}"));
                        continue;
                    }
                }
            };
            if let Some(why) = &judgement.fallback {
                out.notes.push(format!(
                    "revision {round}: {why}; a finding counts as resolved when the revision changes its lines"
                ));
            }
            let fixed = judgement.resolved.iter().filter(|r| **r).count();
            if fixed == 0 && !tests_decide {
                out.notes.push(format!(
                    "revision {round} set aside: it resolves none of the {} finding(s) it was asked to fix",
                    base.critique.shown.len()
                ));
                continue;
            }
            let remaining = carry_over(input, base, &revised, &judgement.resolved);
            let resolved = base.resolved + fixed;
            // A failing command that still fails keeps the loop going, with its output as
            // the next round's feedback, even when the judge finds every finding resolved.
            let done = remaining.is_empty() && tests_passed != Some(false);
            let passes = tests_passed == Some(true);
            if (passes, resolved) > (candidates[best].passes, candidates[best].resolved) {
                best = candidates.len();
            }
            candidates.push(Candidate {
                text: revised,
                critique: Critiqued {
                    shown: remaining,
                    ..Critiqued::default()
                },
                round,
                resolved,
                passes,
            });
            if done {
                break;
            }
        }
        if out.cancelled {
            return;
        }

        if best == 0 {
            if out.iterations > 0 {
                out.notes.push(
                    "no revision is offered: none passed verification and resolved a finding"
                        .to_owned(),
                );
            }
            return;
        }
        let chosen = &candidates[best];
        out.revision = Some(offered(
            input,
            original,
            &chosen.text,
            &out.findings,
            chosen.resolved,
            chosen.critique.shown.len(),
            chosen.round,
        ));
    }

    /// Copies the workspace and runs `verify.command` on the original.
    async fn baseline(
        &self,
        check: &verify::CommandCheck,
        input: &ReviewInput,
        cancel: &CancellationToken,
    ) -> Result<(verify::Scratch, verify::CommandResult), String> {
        let owned = check.clone();
        let token = cancel.clone();
        let scratch = tokio::task::spawn_blocking(move || owned.scratch(&token))
            .await
            .map_err(|e| format!("the copy failed: {e}"))??;
        let result = check.run(&scratch, &input.text.to_string(), cancel).await?;
        Ok((scratch, result))
    }

    /// Verifies a revision: cheap checks, syntax and intent, then `verify.command` with (when
    /// `retry`) one more attempt from the reviser when the command fails where the original
    /// passed. A failure's gist is left in `run.last_failure`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn verify_revision(
        &self,
        input: &ReviewInput,
        original: &str,
        base: &Candidate,
        revised: String,
        scratch: Option<&verify::Scratch>,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        round: u32,
        retry: bool,
    ) -> Result<(String, Option<bool>), String> {
        let findings: Vec<&RawFinding> = base.critique.shown.iter().map(|(f, _)| f).collect();
        let region = input.region();
        let whole = |sel: &str| {
            let mut t = input.text.slice(..region.start).to_string();
            t.push_str(sel);
            t.push_str(&input.text.slice(region.end..).to_string());
            t
        };
        let original_file = input.text.to_string();
        let static_checks = |revised: &str| -> Result<(), String> {
            cheap_checks(original, &base.text, revised).map_err(str::to_owned)?;
            verify::check(
                &input.language,
                &original_file,
                &whole(revised),
                original,
                revised,
                &findings,
            )
        };
        static_checks(&revised)?;
        let (Some(check), Some(scratch)) = (self.command, scratch) else {
            return Ok((revised, None));
        };
        let result = check.run(scratch, &whole(&revised), run.cancel).await?;
        if !result.passed {
            run.last_failure = Some(verify::gist(&result.output));
        }
        let Some(why) = regression(
            check,
            out.command_passed_on_original,
            run.original_code,
            &result,
        ) else {
            return Ok((revised, Some(result.passed)));
        };
        if !retry {
            return Err(why);
        }
        // Self-debugging: the failure goes back to the reviser once.
        tracing::info!(
            round,
            "verify.command failed on the revision; one more attempt"
        );
        let retry = self
            .retry(input, base, run, out, &verify::gist(&result.output))
            .await
            .map_err(|e| {
                format!(
                    "`{}` failed on it, and the retry failed: {e}",
                    check.command
                )
            })?;
        static_checks(&retry)?;
        let again = check.run(scratch, &whole(&retry), run.cancel).await?;
        if !again.passed {
            run.last_failure = Some(verify::gist(&again.output));
        }
        match regression(
            check,
            out.command_passed_on_original,
            run.original_code,
            &again,
        ) {
            None => Ok((retry, Some(again.passed))),
            Some(why) => Err(format!("{why} (and on the retry)")),
        }
    }

    /// The reviser's second attempt at the same base, told why the first failed: a revision
    /// of the findings (critique-first), or a fresh fix (fix-first, whose base has none).
    async fn retry(
        &self,
        input: &ReviewInput,
        base: &Candidate,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        why: &str,
    ) -> Result<String, EngineError> {
        if base.critique.shown.is_empty() {
            self.propose_fix(input, &base.text, run, out, (Some(why), None))
                .await
        } else {
            self.revise(input, base, run.vault, out, run.cancel, Some(why))
                .await
        }
    }
}

/// Why a command result on a revision is a regression, if it is: the command passes on the
/// original and fails on it, or fails on both with different exit codes (the tests failed,
/// now the code does not compile).
fn regression(
    check: &verify::CommandCheck,
    passed_on_original: Option<bool>,
    original_code: Option<i32>,
    result: &verify::CommandResult,
) -> Option<String> {
    if result.passed {
        return None;
    }
    match passed_on_original {
        Some(true) => Some(format!(
            "`{}` passes on the original but fails on it: {}",
            check.command,
            verify::last_line(&result.output)
        )),
        Some(false) if result.code != original_code => Some(format!(
            "`{}` fails on it in a new way (exit {}, where the original's is {}): {}",
            check.command,
            result
                .code
                .map_or_else(|| "signal".to_owned(), |c| c.to_string()),
            original_code.map_or_else(|| "signal".to_owned(), |c| c.to_string()),
            verify::last_line(&result.output)
        )),
        _ => None,
    }
}

/// Findings placed in the selection, numbered and moved to document offsets (the selection
/// starts at char `start`).
pub(crate) fn document_findings(
    shown: &[(RawFinding, Range<usize>)],
    start: usize,
) -> Vec<Finding> {
    shown
        .iter()
        .enumerate()
        .map(|(id, (raw, r))| Finding {
            id,
            raw: raw.clone(),
            range: start + r.start..start + r.end,
        })
        .collect()
}

/// The chosen version as an offered revision: minimal edits against the document, and the
/// edits that touch each finding's lines (to apply one finding's fix alone).
pub(crate) fn offered(
    input: &ReviewInput,
    original: &str,
    chosen: &str,
    findings: &[Finding],
    fixes: usize,
    remaining: usize,
    round: u32,
) -> Revision {
    let region = input.region();
    let edits = edits::minimal_edits(original, chosen, region.start);
    let per_finding: Vec<(usize, Vec<Edit>)> = findings
        .iter()
        .filter_map(|f| {
            let mine: Vec<Edit> = edits
                .iter()
                .filter(|e| touches_lines(&input.text, &f.range, &e.range))
                .cloned()
                .collect();
            (!mine.is_empty()).then_some((f.id, mine))
        })
        .collect();
    Revision {
        text: chosen.to_owned(),
        edits,
        fixes,
        remaining,
        round,
        per_finding,
    }
}

/// The base's findings the judge did not find resolved, placed again in the revised text (by
/// their quote, else on their first line as it now stands), for the next round's reviser.
fn carry_over(
    input: &ReviewInput,
    base: &Candidate,
    revised: &str,
    resolved: &[bool],
) -> Vec<(RawFinding, Range<usize>)> {
    let sel = Selection::new(revised, input.first_line);
    let len = revised.chars().count();
    base.critique
        .shown
        .iter()
        .zip(resolved.iter().chain(std::iter::repeat(&false)))
        .filter(|(_, r)| !**r)
        .map(|((f, old), _)| {
            let at = old.start.min(len);
            let range = sel
                .anchor(f.start_line, f.end_line, &f.quote)
                .unwrap_or(at..at);
            (f.clone(), range)
        })
        .collect()
}

/// The cheap checks every revision passes first.
fn cheap_checks(original: &str, base: &str, revised: &str) -> Result<(), &'static str> {
    if revised.trim().is_empty() {
        return Err("the revision is empty");
    }
    if revised == original || revised == base {
        return Err("the revision changes nothing");
    }
    Ok(())
}

/// Whether two char ranges of `text` share a line.
fn touches_lines(text: &Rope, a: &Range<usize>, b: &Range<usize>) -> bool {
    let lines = |r: &Range<usize>| {
        let s = text.char_to_line(r.start.min(text.len_chars()));
        let e = text.char_to_line(r.end.max(r.start).min(text.len_chars()));
        (s, e)
    };
    let ((a0, a1), (b0, b1)) = (lines(a), lines(b));
    a0 <= b1 && b0 <= a1
}

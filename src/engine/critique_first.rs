//! The critique-first loop: critique the original, then revise the best version so far, verify
//! each revision from outside the model (syntax, signatures, `verify.command`), judge whether
//! it resolves the findings, and keep the best verified version. A refused revision's reason
//! goes to the next round's reviser. (`loop.strategy = "fix-first"` runs
//! [`super::fix_first`] first.)

use std::ops::Range;

use super::anchor::Selection;
use super::candidate::{Candidate, document_findings, offered};
use super::critic::Critiqued;
use super::critique::RawFinding;
use super::evidence::{Probing, Weighable, Weighed};
use super::judge::Judgement;
use super::note::{Attempt, Note, Rejection, SetAside};
use super::outcome::{EngineError, Event, Evidence, ReviewInput, ReviewOutcome, Stage, Stop, fail};
use super::run::{Engine, Run, Subject};
use super::verify::Verified;
use crate::llm::ProviderError;

/// What one round of the loop came to.
enum Round {
    /// A verified revision that resolves findings (`done`: nothing is left to fix).
    Kept { candidate: Candidate, done: bool },
    /// Refused or set aside (its note is in the outcome): on to the next round.
    Refused,
    /// The reviser could not be called: the loop ends (the error is in the outcome).
    Failed,
}

impl Engine<'_> {
    /// Critique-first, filling `out`: the critique of the original (scored again by the
    /// reflection pass when `loop.reflect`) and, when `revise`, the best verified revision.
    /// Fix-first that gave nothing usable shows the critique without revising again.
    pub(crate) async fn critique_first(
        &self,
        at: &Subject<'_>,
        run: &mut Run<'_>,
        (out, progress): (&mut ReviewOutcome, &mut (dyn FnMut(Event) + Send)),
        revise: bool,
        mut probing: Option<&mut Probing>,
    ) -> Result<(), Stop> {
        let Some(first) = self.first_critique(at, run, out, progress).await? else {
            return Ok(());
        };
        out.findings = document_findings(&first.shown, out.region.start);
        if first.shown.is_empty() || !revise {
            return Ok(());
        }
        let passes = out.command_passed_on_original == Some(true);
        let mut candidates = vec![Candidate::original(at.original, first, passes)];
        let best = self.rounds(at, run, out, progress, &mut candidates).await?;
        if best == 0 {
            if out.iterations > 0 {
                out.notes.push(Note::NoRevisionOffered);
            }
            return Ok(());
        }
        let chosen = &candidates[best];
        let evidence = match probing.as_deref_mut() {
            Some(probing) => {
                let weighable = [Weighable {
                    text: chosen.text.clone(),
                    passes_failing_check: chosen.passes
                        && out.command_passed_on_original == Some(false),
                    attempt: Attempt::Revision(chosen.round),
                }];
                match self
                    .weigh_candidates(at, probing, &weighable, run, (out, progress))
                    .await?
                {
                    Weighed::Unprobed => None,
                    Weighed::Chosen(_, evidence) => Some(evidence),
                    Weighed::NoneSupported => return Ok(()),
                }
            }
            None => None,
        };
        let revision = offered(
            at.input,
            at.original,
            &chosen.text,
            &out.findings,
            (chosen.resolved, chosen.critique.shown.len()),
            chosen.round,
        );
        // The revision's evidence backs the findings whose lines it changes.
        if let (Some(e), Some(p)) = (&evidence, probing.as_deref()) {
            for f in &mut out.findings {
                if revision.per_finding.iter().any(|(id, _)| *id == f.id) {
                    let line = crate::document::line_of(&at.input.text, f.range.start);
                    f.evidence = p.evidence_at(at, line, e);
                }
            }
        }
        if let Some(Evidence::Counterexample(_)) = &evidence {
            self.check_regression_test(at, &chosen.text, run, out)
                .await?;
        }
        out.revision = Some(revision);
        Ok(())
    }

    /// The critique of the original, its not-shown counts copied into `out`; `None` when it
    /// failed (the error is in `out`).
    async fn first_critique(
        &self,
        at: &Subject<'_>,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        progress: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Option<Critiqued>, Stop> {
        progress(Event::Stage(Stage::Critique { round: 0 }));
        // Findings are streamed as they come unless the reflection pass may drop them.
        let stream_base = (!self.config.reflect).then_some(out.region.start);
        let mut first = match self
            .critique_voted(at.input, at.original, run, out, progress, stream_base)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                fail(out, e)?;
                return Ok(None);
            }
        };
        self.reflect_on(at, &mut first, run, out).await?;
        out.withheld = first.withheld.clone();
        out.low_confidence = std::mem::take(&mut first.low_confidence);
        Ok(Some(first))
    }

    /// With `loop.reflect`, the reflection pass: the findings it scores low are dropped.
    async fn reflect_on(
        &self,
        at: &Subject<'_>,
        first: &mut Critiqued,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
    ) -> Result<(), Stop> {
        if !self.config.reflect || first.shown.is_empty() {
            return Ok(());
        }
        match self.reflect(at.input, at.original, first, run, out).await {
            Ok(keep) => {
                let before = first.shown.len();
                let mut i = 0;
                first.shown.retain(|_| {
                    i += 1;
                    keep.get(i - 1).copied().unwrap_or(true)
                });
                let dropped = before - first.shown.len();
                first.withheld.reflected_out = dropped;
                if dropped > 0 {
                    out.notes.push(Note::ReflectionDropped {
                        dropped,
                        min_score: self.config.reflect_min_score,
                    });
                }
            }
            Err(EngineError::Provider(ProviderError::Cancelled)) => return Err(Stop),
            Err(e) => out
                .notes
                .push(Note::ReflectionFailed { why: e.to_string() }),
        }
        Ok(())
    }

    /// The revision rounds: each revises the best candidate so far; a kept revision becomes a
    /// candidate. Returns the index of the best one (0: the original).
    async fn rounds(
        &self,
        at: &Subject<'_>,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        progress: &mut (dyn FnMut(Event) + Send),
        candidates: &mut Vec<Candidate>,
    ) -> Result<usize, Stop> {
        let mut best = 0;
        // Why the last revision was refused (or what still fails on it), for the next one.
        let mut feedback: Option<String> = None;
        for round in 1..=self.config.max_iterations {
            if run.cancel.is_cancelled() {
                return Err(Stop);
            }
            progress(Event::Stage(Stage::Revise { round }));
            out.iterations = round;
            let base = &candidates[best];
            let came = self
                .round(at, base, run, out, progress, (round, &mut feedback))
                .await?;
            match came {
                Round::Failed => break,
                Round::Refused => {}
                Round::Kept { candidate, done } => {
                    let now = (candidate.passes, candidate.resolved);
                    if now > (candidates[best].passes, candidates[best].resolved) {
                        best = candidates.len();
                    }
                    candidates.push(candidate);
                    if done {
                        break;
                    }
                }
            }
        }
        Ok(best)
    }

    /// One round: revise `base`, verify the revision, weigh the evidence.
    async fn round(
        &self,
        at: &Subject<'_>,
        base: &Candidate,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        progress: &mut (dyn FnMut(Event) + Send),
        (round, feedback): (u32, &mut Option<String>),
    ) -> Result<Round, Stop> {
        let attempt = Attempt::Revision(round);
        let told = feedback.take();
        let revised = match self
            .revise(at.input, base, run.vault, out, run.cancel, told.as_deref())
            .await
        {
            Ok(r) => r,
            Err(EngineError::Provider(e)) => {
                fail(out, EngineError::Provider(e))?;
                return Ok(Round::Failed);
            }
            Err(e) => {
                let why = Rejection::from(e);
                *feedback = Some(why.to_string());
                out.notes.push(Note::Rejected { attempt, why });
                return Ok(Round::Refused);
            }
        };
        let verified = match self
            .verify_revision(at, base, revised, run, out, (round, true))
            .await?
        {
            Ok(v) => v,
            Err(why) => {
                out.rejected += 1;
                *feedback = Some(run.last_failure.take().unwrap_or_else(|| why.to_string()));
                out.notes.push(Note::Rejected { attempt, why });
                return Ok(Round::Refused);
            }
        };
        if verified.passes == Some(false) {
            // The command failed on the original too: no regression, but what still fails
            // goes to the next round.
            *feedback = run.last_failure.take();
        }
        self.weigh(at.input, base, verified, run, out, progress, round)
            .await
    }

    /// The evidence on a verified revision, strongest first: tests that fail on the original
    /// and pass on the revision decide alone; otherwise the judge, finding by finding.
    #[allow(clippy::too_many_arguments)]
    async fn weigh(
        &self,
        input: &ReviewInput,
        base: &Candidate,
        verified: Verified,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        progress: &mut (dyn FnMut(Event) + Send),
        round: u32,
    ) -> Result<Round, Stop> {
        let asked = base.critique.shown.len();
        let tests_decide =
            verified.passes == Some(true) && out.command_passed_on_original == Some(false);
        let judgement = if tests_decide {
            out.notes.push(Note::TestsDecide { round });
            Judgement {
                resolved: vec![true; asked],
                fallback: None,
            }
        } else if asked == 0 {
            // Nothing left to judge: only the failing command was to be fixed, and it still
            // fails.
            let why = SetAside::StillFails;
            out.notes.push(Note::SetAside { round, why });
            return Ok(Round::Refused);
        } else {
            progress(Event::Stage(Stage::Judge { round }));
            match self.judge(input, base, &verified.text, run, out).await {
                Ok(j) => j,
                Err(EngineError::Provider(ProviderError::Cancelled)) => return Err(Stop),
                Err(e) => {
                    let why = SetAside::JudgeFailed(e.to_string());
                    out.notes.push(Note::SetAside { round, why });
                    return Ok(Round::Refused);
                }
            }
        };
        if let Some(why) = judgement.fallback {
            out.notes.push(Note::ChangedLinesDecide { round, why });
        }
        let fixed = judgement.resolved.iter().filter(|r| **r).count();
        if fixed == 0 && !tests_decide {
            let why = SetAside::ResolvesNone { asked };
            out.notes.push(Note::SetAside { round, why });
            return Ok(Round::Refused);
        }
        let remaining = carry_over(input, base, &verified.text, &judgement.resolved);
        // A failing command that still fails keeps the loop going, with its output as the
        // next round's feedback, even when the judge finds every finding resolved.
        let done = remaining.is_empty() && verified.passes != Some(false);
        let candidate = Candidate {
            text: verified.text,
            critique: Critiqued {
                shown: remaining,
                ..Critiqued::default()
            },
            round,
            resolved: base.resolved + fixed,
            passes: verified.passes == Some(true),
        };
        Ok(Round::Kept { candidate, done })
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

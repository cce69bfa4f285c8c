//! The refinement engine: critique → revise → verify → re-critique, keeping the best version.
//! It knows nothing of LSP: it takes a text, the lines to review and the providers, and returns
//! findings anchored to char offsets and a revision as minimal edits.
//!
//! ```text
//!   selection ──► critique ──► no findings? ──► done ("no issues")
//!                    │
//!                    ▼
//!     ┌──► revise the best version so far (fresh context: code + findings)
//!     │        │
//!     │        ▼
//!     │    verify (non-empty, changed) ── rejected ──┐
//!     │        │                                     │
//!     │        ▼                                     │
//!     │    re-critique (fresh context) ─► score ─► keep if better than the best
//!     │        │                                     │
//!     └── warnings left and rounds left ◄────────────┘
//!                    │
//!                    ▼
//!   best version ≠ original ? offer it as minimal edits : offer nothing, and say so
//! ```

pub mod anchor;
pub mod critique;
pub mod edits;
pub mod revision;
pub mod verify;

use std::ops::Range;

use ropey::Rope;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::LoopConfig;
use crate::document::line_span;
use crate::llm::{ChatRequest, JsonSchema, Message, Provider, ProviderError, Usage};
use crate::prompts::{PromptError, Prompts};
use crate::secrets::{Vault, has_placeholder};
use anchor::{AnchorError, Selection};
pub use critique::{RawFinding, Severity};
pub use edits::Edit;

/// What to review: a snapshot of the whole text and the (zero-based, inclusive) lines.
#[derive(Debug, Clone)]
pub struct ReviewInput {
    /// The whole document as it was when the review started.
    pub text: Rope,
    /// A path or URI shown to the model.
    pub path: String,
    /// Language name shown to the model (`rust`, `python`, ...).
    pub language: String,
    /// First line reviewed (zero-based).
    pub first_line: usize,
    /// Last line reviewed (zero-based, inclusive).
    pub last_line: usize,
    /// What the compiler, linters and tests already say about these lines (the editor's own
    /// diagnostics): given to the critic as facts, and what lets a finding be an error.
    pub facts: Vec<Fact>,
    /// Ignore the cache (and refresh it).
    pub force: bool,
}

/// A diagnostic from outside the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// Zero-based file line it is on.
    pub line: usize,
    /// `error: mismatched types (rustc)`.
    pub text: String,
}

impl ReviewInput {
    /// The char range of the reviewed lines, terminator of the last one included.
    pub fn region(&self) -> Range<usize> {
        line_span(&self.text, self.first_line, self.last_line)
    }
}

/// A finding placed on the exact text it quotes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Index within its review.
    pub id: usize,
    /// What the model said (principle normalised to a known id or `other`).
    pub raw: RawFinding,
    /// Char offsets in the reviewed document.
    pub range: Range<usize>,
}

/// The step a review is at, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Critiquing; round 0 is the original, round n the n-th revision.
    Critique {
        /// Which version.
        round: u32,
    },
    /// Asking for revision `round`.
    Revise {
        /// Which revision.
        round: u32,
    },
}

impl Stage {
    /// A short sentence for progress messages, e.g. `critique 1/3`.
    pub fn describe(self, max_iterations: u32) -> String {
        match self {
            Stage::Critique { round } => format!("critique {}/{}", round + 1, max_iterations + 1),
            Stage::Revise { round } => format!("revision {round}/{max_iterations}"),
        }
    }
}

/// What a review reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A new step began.
    Stage(Stage),
    /// A finding on the original, placed as soon as the critic's stream completed it (the
    /// final list, in [`ReviewOutcome::findings`], replaces these).
    Finding(Finding),
    /// The critic's stream advanced.
    Streaming {
        /// Findings read so far.
        findings: usize,
        /// Output tokens so far (estimated).
        tokens: u64,
    },
}

/// The best revision found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Revision {
    /// The revised selection.
    pub text: String,
    /// Minimal edits against the reviewed document.
    pub edits: Vec<Edit>,
    /// How many shown findings the edits touch.
    pub fixes: usize,
    /// How many findings the critic still shows on this version.
    pub remaining: usize,
    /// Which round produced it.
    pub round: u32,
    /// For each shown finding whose lines the edits touch: its id and just those edits.
    pub per_finding: Vec<(usize, Vec<Edit>)>,
}

/// Everything a review produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReviewOutcome {
    /// Char range reviewed.
    pub region: Range<usize>,
    /// Findings on the original, anchored and above the confidence threshold.
    pub findings: Vec<Finding>,
    /// Findings whose quote is not in the selection.
    pub unanchored: usize,
    /// Findings about lines outside the selection.
    pub outside_selection: usize,
    /// Findings below `loop.min_confidence` (not shown; listed so a user can ask for them).
    pub low_confidence: Vec<RawFinding>,
    /// Revisions asked for.
    pub iterations: u32,
    /// Model calls made.
    pub llm_calls: u32,
    /// Tokens used.
    pub usage: Usage,
    /// The best verified revision, when it is better than the original.
    pub revision: Option<Revision>,
    /// What happened along the way (rejected revisions, why nothing is offered).
    pub notes: Vec<String>,
    /// Why the review failed, as one sentence.
    pub error: Option<String>,
    /// The review was cancelled.
    pub cancelled: bool,
    /// Secrets replaced by placeholders before anything was sent (kinds, one per secret).
    pub redacted: Vec<String>,
    /// Revisions refused by verification (syntax, intent, `verify.command`).
    pub rejected: u32,
    /// Findings the reflection pass dropped.
    pub reflected_out: usize,
    /// `verify.command` passed on the original (`None`: not run).
    pub command_passed_on_original: Option<bool>,
}

/// Why one step failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model call failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The critique could not be read.
    #[error(transparent)]
    Critique(#[from] critique::CritiqueError),
    /// The revision could not be read.
    #[error(transparent)]
    Revision(#[from] revision::RevisionError),
    /// A prompt template failed.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// The revision would write a secret placeholder into the file.
    #[error(
        "the revision holds a secret placeholder that matches no redacted secret, so it would write the placeholder into the file"
    )]
    Placeholder,
}

/// What every step of one review shares.
struct Run<'a> {
    /// The review's secrets and their placeholders.
    vault: &'a mut Vault,
    cancel: &'a CancellationToken,
    /// Facts for the critic (the editor's diagnostics, a failing verify.command).
    facts: Vec<String>,
    /// File lines that outside tools flag.
    fact_lines: Vec<usize>,
    /// verify.command fails on the original: any error finding is backed.
    command_failed: bool,
}

/// One version's critique, anchored in that version's selection text.
struct Critiqued {
    /// Findings with their char range in the version's selection text.
    shown: Vec<(RawFinding, Range<usize>)>,
    unanchored: usize,
    outside: usize,
    low_confidence: Vec<RawFinding>,
}

impl Critiqued {
    /// Lower is better: weighted by severity, so fewer and milder findings win.
    fn score(&self) -> u32 {
        self.shown.iter().map(|(f, _)| f.severity.weight()).sum()
    }

    fn has_warning_or_worse(&self) -> bool {
        self.shown
            .iter()
            .any(|(f, _)| f.severity <= Severity::Warning)
    }
}

/// A version of the selection and its critique.
struct Candidate {
    text: String,
    critique: Critiqued,
    round: u32,
}

/// Runs reviews with a critic, a reviser and the prompts.
pub struct Engine<'a> {
    /// Critiques each version (fresh context every call).
    pub critic: &'a Provider,
    /// Revises the best version.
    pub reviser: &'a Provider,
    /// Templates.
    pub prompts: &'a Prompts,
    /// Loop settings.
    pub config: &'a LoopConfig,
    /// Replace secrets by placeholders in every prompt.
    pub redact_secrets: bool,
    /// `verify.command`, when the user configured one.
    pub command: Option<&'a verify::CommandCheck>,
    /// Finished reviews, to answer unchanged code without a model call.
    pub cache: Option<&'a crate::cache::Cache>,
}

impl Engine<'_> {
    /// Reviews `input`, reporting each step through `progress`. Never panics on what the model
    /// says; failures end up in [`ReviewOutcome::error`] or [`ReviewOutcome::notes`].
    pub async fn review(
        &self,
        input: &ReviewInput,
        cancel: &CancellationToken,
        progress: &mut (dyn FnMut(Event) + Send),
    ) -> ReviewOutcome {
        let region = input.region();
        let original = input.text.slice(region.clone()).to_string();
        let mut out = ReviewOutcome {
            region: region.clone(),
            ..ReviewOutcome::default()
        };
        let key = self.cache_key(input, &original);
        if let (Some(cache), false) = (self.cache, input.force) {
            if let Some(mut hit) = cache.get(&key) {
                relocate(&mut hit, region.start as isize);
                hit.region = region;
                hit.llm_calls = 0;
                hit.usage = Usage::default();
                hit.notes.push(
                    "from the review cache (no model call); review with force to refresh"
                        .to_owned(),
                );
                return hit;
            }
        }
        if verify::grammar(&input.language).is_some() {
            // Parse the file and the selection while the critic works: revisions are then
            // checked by incremental parses (a 5,000-line file takes ~23 ms to parse whole).
            let (lang, file, sel) = (
                input.language.clone(),
                input.text.to_string(),
                original.clone(),
            );
            tokio::task::spawn_blocking(move || {
                verify::warm(&lang, &file);
                verify::warm(&lang, &sel);
            });
        }
        let mut vault = Vault::default();
        self.refine(input, &original, &mut vault, &mut out, cancel, progress)
            .await;
        out.redacted = vault.secrets().iter().map(|s| s.kind.to_owned()).collect();
        if let (Some(cache), None, false) = (self.cache, &out.error, out.cancelled) {
            let mut stored = out.clone();
            relocate(&mut stored, -(region.start as isize));
            cache.put(&key, &stored);
        }
        if !out.redacted.is_empty() {
            out.notes.push(format!(
                "{} secret(s) in the code were replaced by placeholders before sending: {}",
                out.redacted.len(),
                out.redacted.join(", ")
            ));
        }
        out
    }

    /// Everything that shapes a review, hashed.
    fn cache_key(&self, input: &ReviewInput, original: &str) -> [u8; 32] {
        let (before, after) = self.context(
            input,
            original,
            Selection::new(original, input.first_line).line_count(),
        );
        let facts: Vec<String> = input
            .facts
            .iter()
            .map(|f| format!("{}:{}", f.line, f.text))
            .collect();
        crate::cache::key(&[
            "refine-ls review v1",
            env!("CARGO_PKG_VERSION"),
            &self.critic.describe(),
            &self.reviser.describe(),
            &self.prompts.fingerprint(),
            &serde_json::to_string(self.config).unwrap_or_default(),
            if self.redact_secrets {
                "redact"
            } else {
                "plain"
            },
            self.command.map_or("", |c| c.command.as_str()),
            &input.path,
            &input.language,
            &input.first_line.to_string(),
            &before,
            original,
            &after,
            &facts.join("\n"),
        ])
    }

    /// The loop itself, filling `out`.
    async fn refine(
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
        };
        let mut scratch = None;
        if let Some(check) = self.command {
            match self.baseline(check, input).await {
                Ok((s, result)) => {
                    out.command_passed_on_original = Some(result.passed);
                    if !result.passed {
                        run.command_failed = true;
                        run.facts.push(format!(
                            "`{}` fails on the code as it is now:\n{}",
                            check.command,
                            result.output.trim()
                        ));
                    }
                    scratch = Some(s);
                }
                Err(e) => out.notes.push(format!("verify.command was not run: {e}")),
            }
        }

        progress(Event::Stage(Stage::Critique { round: 0 }));
        let first = match self
            .critique(
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
        out.findings = first
            .shown
            .iter()
            .enumerate()
            .map(|(id, (raw, r))| Finding {
                id,
                raw: raw.clone(),
                range: region.start + r.start..region.start + r.end,
            })
            .collect();
        if first.shown.is_empty() {
            return;
        }

        let mut candidates = vec![Candidate {
            text: original.to_owned(),
            critique: first,
            round: 0,
        }];
        let mut best = 0;
        for round in 1..=self.config.max_iterations {
            if cancel.is_cancelled() {
                out.cancelled = true;
                return;
            }
            progress(Event::Stage(Stage::Revise { round }));
            out.iterations = round;
            let base = &candidates[best];
            let revised = match self.revise(input, base, run.vault, out, cancel, None).await {
                Ok(r) => r,
                Err(EngineError::Provider(e)) => {
                    fail(out, EngineError::Provider(e));
                    break;
                }
                Err(e) => {
                    out.notes.push(format!("revision {round} rejected: {e}"));
                    continue;
                }
            };
            let revised = match self
                .verify(
                    input,
                    original,
                    base,
                    revised,
                    scratch.as_ref(),
                    &mut run,
                    out,
                    round,
                )
                .await
            {
                Ok(r) => r,
                Err(why) => {
                    out.rejected += 1;
                    out.notes.push(format!("revision {round} rejected: {why}"));
                    continue;
                }
            };
            progress(Event::Stage(Stage::Critique { round }));
            let critique = match self
                .critique(input, &revised, &mut run, out, progress, None)
                .await
            {
                Ok(c) => c,
                Err(EngineError::Provider(e)) => {
                    fail(out, EngineError::Provider(e));
                    break;
                }
                Err(e) => {
                    out.notes.push(format!(
                        "revision {round} set aside: its critique failed: {e}"
                    ));
                    continue;
                }
            };
            let done = !critique.has_warning_or_worse();
            if critique.score() < candidates[best].critique.score() {
                best = candidates.len();
            }
            candidates.push(Candidate {
                text: revised,
                critique,
                round,
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
                    "no revision is offered: the critic rated no revision better than the original"
                        .to_owned(),
                );
            }
            return;
        }
        let chosen = &candidates[best];
        let edits = edits::minimal_edits(original, &chosen.text, region.start);
        let per_finding: Vec<(usize, Vec<Edit>)> = out
            .findings
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
        let fixes = per_finding.len();
        out.revision = Some(Revision {
            text: chosen.text.clone(),
            edits,
            fixes,
            remaining: chosen.critique.shown.len(),
            round: chosen.round,
            per_finding,
        });
    }

    /// Asks the critic about one version of the selection and anchors what it says. With
    /// `stream_base` (the selection's char offset in the document), each finding is reported
    /// as soon as the stream completes it.
    async fn critique(
        &self,
        input: &ReviewInput,
        selection: &str,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        progress: &mut (dyn FnMut(Event) + Send),
        stream_base: Option<usize>,
    ) -> Result<Critiqued, EngineError> {
        let run_fact_lines = run.fact_lines.clone();
        let command_failed = run.command_failed;
        let Run {
            vault,
            cancel,
            facts,
            ..
        } = run;
        let cancel: &CancellationToken = cancel;
        let facts: Vec<String> = if self.redact_secrets {
            facts.iter().map(|f| vault.redact(f)).collect()
        } else {
            facts.clone()
        };
        let sel_lines = Selection::new(selection, input.first_line);
        let last_line = input.first_line + sel_lines.line_count().max(1) - 1;
        let mut ctx = self.context(input, selection, sel_lines.line_count());
        let mut numbered = number_lines(selection, input.first_line);
        if self.redact_secrets {
            ctx = (vault.redact(&ctx.0), vault.redact(&ctx.1));
            numbered = vault.redact(&numbered);
        }
        let system = self.prompts.render(
            "critique_system.md",
            json!({
                "language": input.language,
                "principles": self.prompts.principles_without(&self.config.disabled_principles),
                "principle_ids": self.prompts.principle_ids().join(", "),
                "first_line": input.first_line + 1,
                "last_line": last_line + 1,
            }),
        )?;
        let user = self.prompts.render(
            "critique_user.md",
            json!({
                "path": input.path,
                "language": input.language,
                "context_before": ctx.0,
                "selection": numbered,
                "context_after": ctx.1,
                "first_line": input.first_line + 1,
                "last_line": last_line + 1,
                "facts": facts,
            }),
        )?;
        let req = ChatRequest {
            messages: vec![Message::system(system), Message::user(user)],
            json_schema: Some(JsonSchema {
                name: "critique",
                schema: critique::schema(),
            }),
        };
        out.llm_calls += 1;
        let mut scanner = critique::FindingScanner::default();
        let vault_view: &Vault = vault;
        let backing = (run_fact_lines.as_slice(), command_failed);
        let mut shown_early = 0;
        let mut streamed_chars = 0usize;
        let mut last_reported = (0usize, 0u64);
        let mut on_delta = |delta: &str| {
            streamed_chars += delta.len();
            for mut f in scanner.push(delta) {
                let Some(base) = stream_base else { continue };
                f.quote = vault_view.restore(&f.quote);
                if let Some((f, r)) = self.place(&sel_lines, f, backing) {
                    progress(Event::Finding(Finding {
                        id: shown_early,
                        raw: f,
                        range: base + r.start..base + r.end,
                    }));
                    shown_early += 1;
                }
            }
            let now = (scanner.count(), (streamed_chars as u64).div_ceil(4));
            if now.0 != last_reported.0 || now.1 >= last_reported.1 + 64 {
                last_reported = now;
                progress(Event::Streaming {
                    findings: now.0,
                    tokens: now.1,
                });
            }
        };
        let resp = self
            .critic
            .chat(&req, cancel, &mut on_delta)
            .await
            .inspect_err(|e| {
                if matches!(e, ProviderError::Cancelled) {
                    out.cancelled = true;
                }
            })?;
        out.usage += resp.usage;
        let (raw, malformed) = critique::parse(&resp.content)?;
        if malformed > 0 {
            tracing::info!(malformed, "critique items without message or line skipped");
        }
        let mut c = Critiqued {
            shown: Vec::new(),
            unanchored: 0,
            outside: 0,
            low_confidence: Vec::new(),
        };
        for mut f in raw {
            if !self.prompts.principle_ids().contains(&f.principle) {
                f.principle = "other".to_owned();
            }
            if self.config.disabled_principles.contains(&f.principle) {
                continue;
            }
            f.quote = vault.restore(&f.quote);
            match sel_lines.anchor(f.start_line, f.end_line, &f.quote) {
                Err(AnchorError::OutsideSelection) => c.outside += 1,
                Err(AnchorError::NotFound) => c.unanchored += 1,
                Ok(_) if f.confidence < self.config.min_confidence => c.low_confidence.push(f),
                Ok(r) => {
                    self.cap_severity(&mut f, &sel_lines, &r, backing);
                    c.shown.push((f, r));
                }
            }
        }
        Ok(c)
    }

    /// An error the model asserts stays an error only when something outside the model backs
    /// it (an editor diagnostic on its lines, or `verify.command` failing on the original);
    /// otherwise it is shown at `loop.max_unbacked_severity` at most.
    fn cap_severity(
        &self,
        f: &mut RawFinding,
        sel: &Selection<'_>,
        r: &Range<usize>,
        (fact_lines, command_failed): (&[usize], bool),
    ) {
        let cap = critique::Severity::parse(&self.config.max_unbacked_severity);
        if f.severity >= cap || command_failed {
            return;
        }
        let first = sel.first_line() + sel.line_of(r.start);
        let last = sel.first_line() + sel.line_of(r.end.saturating_sub(1).max(r.start));
        if !fact_lines.iter().any(|l| (first..=last).contains(l)) {
            f.severity = cap;
        }
    }

    /// A finding as it would be shown (principle normalised, anchored, confident enough), or
    /// `None` when it would not be.
    fn place(
        &self,
        sel: &Selection<'_>,
        mut f: RawFinding,
        backing: (&[usize], bool),
    ) -> Option<(RawFinding, Range<usize>)> {
        if !self.prompts.principle_ids().contains(&f.principle) {
            f.principle = "other".to_owned();
        }
        if f.confidence < self.config.min_confidence
            || self.config.disabled_principles.contains(&f.principle)
        {
            return None;
        }
        let r = sel.anchor(f.start_line, f.end_line, &f.quote).ok()?;
        self.cap_severity(&mut f, sel, &r, backing);
        Some((f, r))
    }

    /// Asks the reviser for a new version of `base`, addressing its findings.
    async fn revise(
        &self,
        input: &ReviewInput,
        base: &Candidate,
        vault: &mut Vault,
        out: &mut ReviewOutcome,
        cancel: &CancellationToken,
        feedback: Option<&str>,
    ) -> Result<String, EngineError> {
        let findings: Vec<&RawFinding> = base.critique.shown.iter().map(|(f, _)| f).collect();
        let line_count = Selection::new(&base.text, input.first_line)
            .line_count()
            .max(1);
        let sent_selection = if self.redact_secrets {
            vault.redact(&base.text)
        } else {
            base.text.clone()
        };
        let findings: Vec<RawFinding> = findings
            .into_iter()
            .map(|f| RawFinding {
                quote: if self.redact_secrets {
                    vault.redact(&f.quote)
                } else {
                    f.quote.clone()
                },
                ..f.clone()
            })
            .collect();
        let edit_format = if line_count >= self.config.search_replace_min_lines {
            "search_replace"
        } else {
            "full"
        };
        let feedback = feedback.map(|f| {
            if self.redact_secrets {
                vault.redact(f)
            } else {
                f.to_owned()
            }
        });
        let system = self.prompts.render(
            "revise_system.md",
            json!({"language": input.language, "edit_format": edit_format}),
        )?;
        let user = self.prompts.render(
            "revise_user.md",
            json!({
                "path": input.path,
                "language": input.language,
                "selection": sent_selection.trim_end_matches(['\n', '\r']),
                "first_line": input.first_line + 1,
                "last_line": input.first_line + line_count,
                "findings": findings,
                "feedback": feedback,
            }),
        )?;
        let req = ChatRequest {
            messages: vec![Message::system(system), Message::user(user)],
            json_schema: None,
        };
        out.llm_calls += 1;
        let resp = self
            .reviser
            .chat(&req, cancel, &mut |_| {})
            .await
            .inspect_err(|e| {
                if matches!(e, ProviderError::Cancelled) {
                    out.cancelled = true;
                }
            })?;
        out.usage += resp.usage;
        let revised = revision::apply_reply(&sent_selection, &resp.content)?;
        let restored = vault.restore(&revised);
        if has_placeholder(&restored) {
            return Err(EngineError::Placeholder);
        }
        Ok(restored)
    }

    /// Copies the workspace and runs `verify.command` on the original.
    async fn baseline(
        &self,
        check: &verify::CommandCheck,
        input: &ReviewInput,
    ) -> Result<(verify::Scratch, verify::CommandResult), String> {
        let owned = check.clone();
        let scratch = tokio::task::spawn_blocking(move || owned.scratch())
            .await
            .map_err(|e| format!("the copy failed: {e}"))??;
        let result = check.run(&scratch, &input.text.to_string()).await?;
        Ok((scratch, result))
    }

    /// Verifies a revision: cheap checks, syntax and intent, then `verify.command` with one
    /// more attempt from the reviser when the command fails where the original passed.
    #[allow(clippy::too_many_arguments)]
    async fn verify(
        &self,
        input: &ReviewInput,
        original: &str,
        base: &Candidate,
        revised: String,
        scratch: Option<&verify::Scratch>,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        round: u32,
    ) -> Result<String, String> {
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
            return Ok(revised);
        };
        let result = check.run(scratch, &whole(&revised)).await?;
        if result.passed || out.command_passed_on_original != Some(true) {
            return Ok(revised);
        }
        // Self-debugging: the failure goes back to the reviser once.
        tracing::info!(
            round,
            "verify.command failed on the revision; one more attempt"
        );
        let retry = self
            .revise(
                input,
                base,
                run.vault,
                out,
                run.cancel,
                Some(&result.output),
            )
            .await
            .map_err(|e| {
                format!(
                    "`{}` failed on it, and the retry failed: {e}",
                    check.command
                )
            })?;
        static_checks(&retry)?;
        let again = check.run(scratch, &whole(&retry)).await?;
        if again.passed {
            Ok(retry)
        } else {
            Err(format!(
                "`{}` passes on the original but fails on it (and on the retry): {}",
                check.command,
                again
                    .output
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
            ))
        }
    }

    /// The reflection pass: scores each finding; returns which to keep.
    async fn reflect(
        &self,
        input: &ReviewInput,
        selection: &str,
        first: &Critiqued,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
    ) -> Result<Vec<bool>, EngineError> {
        let mut numbered = number_lines(selection, input.first_line);
        let mut findings: Vec<RawFinding> = first.shown.iter().map(|(f, _)| f.clone()).collect();
        if self.redact_secrets {
            numbered = run.vault.redact(&numbered);
            for f in &mut findings {
                f.quote = run.vault.redact(&f.quote);
            }
        }
        let line_count = Selection::new(selection, input.first_line)
            .line_count()
            .max(1);
        let system = self
            .prompts
            .render("reflect_system.md", json!({"language": input.language}))?;
        let user = self.prompts.render(
            "reflect_user.md",
            json!({
                "path": input.path,
                "language": input.language,
                "selection": numbered,
                "first_line": input.first_line + 1,
                "last_line": input.first_line + line_count,
                "findings": findings,
            }),
        )?;
        let req = ChatRequest {
            messages: vec![Message::system(system), Message::user(user)],
            json_schema: Some(JsonSchema {
                name: "scores",
                schema: json!({"type": "object", "properties": {"scores": {"type": "array", "items": {"type": "object", "properties": {"index": {"type": "integer"}, "validity": {"type": "integer"}, "importance": {"type": "integer"}}, "required": ["index", "validity", "importance"]}}}, "required": ["scores"]}),
            }),
        };
        out.llm_calls += 1;
        let resp = self.critic.chat(&req, run.cancel, &mut |_| {}).await?;
        out.usage += resp.usage;
        let scores = critique::parse_scores(&resp.content)?;
        let min = self.config.reflect_min_score;
        Ok((0..findings.len())
            .map(|i| {
                scores
                    .iter()
                    .find(|(idx, _, _)| *idx == i)
                    .is_none_or(|(_, v, imp)| (*v).min(*imp) >= min)
            })
            .collect())
    }

    /// Numbered context lines before and after a version of the selection.
    fn context(&self, input: &ReviewInput, selection: &str, sel_lines: usize) -> (String, String) {
        let n = self.config.context_lines;
        let rope = &input.text;
        let total = rope.len_lines();
        let before_first = input.first_line.saturating_sub(n);
        let before = if input.first_line > 0 && n > 0 {
            let span = line_span(rope, before_first, input.first_line - 1);
            number_lines(&rope.slice(span).to_string(), before_first)
        } else {
            String::new()
        };
        let after_first = input.last_line + 1;
        let has_after = after_first < total && rope.line(after_first).len_chars() > 0;
        let after = if has_after && n > 0 && selection.ends_with(['\n', '\r']) {
            let span = line_span(rope, after_first, (after_first + n - 1).min(total - 1));
            // After a revision the following lines are numbered as they would then be.
            let shifted = input.first_line + sel_lines;
            number_lines(&rope.slice(span).to_string(), shifted)
        } else {
            String::new()
        };
        (before, after)
    }
}

/// Moves every offset of an outcome by `by` chars (to and from region-relative form).
fn relocate(o: &mut ReviewOutcome, by: isize) {
    let mv = |r: &mut Range<usize>| {
        r.start = r.start.saturating_add_signed(by);
        r.end = r.end.saturating_add_signed(by);
    };
    mv(&mut o.region);
    for f in &mut o.findings {
        mv(&mut f.range);
    }
    if let Some(rev) = &mut o.revision {
        for e in &mut rev.edits {
            mv(&mut e.range);
        }
        for (_, edits) in &mut rev.per_finding {
            for e in edits {
                mv(&mut e.range);
            }
        }
    }
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

fn fail(out: &mut ReviewOutcome, e: EngineError) {
    if matches!(e, EngineError::Provider(ProviderError::Cancelled)) {
        out.cancelled = true;
    } else {
        out.error = Some(e.to_string());
    }
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

/// `   12 | code` for each line, numbering from zero-based `first_line`.
pub fn number_lines(text: &str, first_line: usize) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let body = body.strip_suffix('\r').unwrap_or(body);
    body.split('\n')
        .enumerate()
        .map(|(i, l)| format!("{:>5} | {}", first_line + i + 1, l.trim_end_matches('\r')))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A language name for a file path, from its extension.
pub fn language_for_path(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "rs" => "rust",
        "py" | "pyi" => "python",
        "js" | "mjs" | "cjs" | "jsx" => "javascript",
        "ts" | "mts" | "cts" => "typescript",
        "tsx" => "typescriptreact",
        "go" => "go",
        "c" | "h" => "c",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" => "cpp",
        "java" => "java",
        "kt" | "kts" => "kotlin",
        "rb" => "ruby",
        "lua" => "lua",
        "sh" | "bash" => "shellscript",
        "cs" => "csharp",
        "swift" => "swift",
        "php" => "php",
        _ => "text",
    }
}

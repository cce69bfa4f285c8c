//! The refinement engine: critique → revise → verify → judge, keeping the best version.
//! It knows nothing of LSP: it takes a text, the lines to review and the providers, and returns
//! findings anchored to char offsets and a revision as minimal edits.
//!
//! Where things are: the engine's parts and one review's shared state in [`run`]; the types a
//! review takes and gives in [`outcome`], and what it wants the user to know in [`note`]; the
//! critic (prompt, streaming, placement, severity cap, reflection) in [`critic`], the reply's
//! schema and parser in [`critique`], where a finding is anchored in [`anchor`]; the reviser in
//! [`reviser`] and its reply format in [`revision`]; how a revision is verified in [`verify`];
//! whether it resolves the findings in [`judge`]; the two strategies, peers, in
//! [`critique_first`] and [`fix_first`], and what they share in [`candidate`]; revision →
//! minimal edits in [`edits`]. This file runs a review: the cache, the baseline check, and the
//! choice of strategy.

pub mod anchor;
pub mod candidate;
pub mod critic;
pub mod critique;
pub mod critique_first;
pub mod edits;
pub mod evidence;
pub mod fix_first;
pub mod judge;
pub mod note;
pub mod outcome;
pub mod reviser;
pub mod revision;
pub mod run;
pub mod verify;

use std::ops::Range;

use tokio_util::sync::CancellationToken;

use crate::config::Strategy;
use crate::llm::Usage;
use crate::secrets::Vault;
use anchor::Selection;
pub use critic::number_lines;
pub use critique::{RawFinding, Severity};
pub use edits::Edit;
use fix_first::FixEnd;
pub use note::{Note, Refusal};
pub use outcome::{
    EngineError, Event, Fact, Finding, ReviewInput, ReviewOutcome, Revision, Stage, Withheld,
};
use outcome::{Stop, relocate};
pub use run::{Engine, ProbePolicy};
use run::{Run, Subject};
use verify::{CommandCheck, CommandError, CommandResult, Scratch};

/// The review cache's record format: changed whenever the stored outcome's shape changes, so
/// older records are not read as this one.
const CACHE_FORMAT: &str = "refine-ls review v3";

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
        let key = self.cache_key(input, &original);
        if let Some(hit) = self.cached(input, &key, &original) {
            return hit;
        }
        if crate::lang::grammar(&input.language).is_some() {
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
        let mut out = ReviewOutcome {
            region: region.clone(),
            ..ReviewOutcome::default()
        };
        let mut vault = Vault::default();
        let mut run = Run::new(&mut vault, cancel, &input.facts);
        if let Err(Stop) = self
            .strategy(input, &original, &mut run, &mut out, progress)
            .await
        {
            out.cancelled = true;
        }
        out.redacted = vault.secrets().iter().map(|s| s.kind.to_owned()).collect();
        // A review of code that holds secrets is not stored: its revision has them restored,
        // and nothing secret is written to disk.
        if let (Some(cache), None, false, true) = (
            self.cache,
            &out.error,
            out.cancelled,
            vault.secrets().is_empty(),
        ) {
            let mut stored = out.clone();
            relocate(&mut stored, -(region.start as isize));
            cache.put(&key, &stored);
        }
        if !out.redacted.is_empty() {
            out.notes.push(Note::Redacted {
                kinds: out.redacted.clone(),
            });
        }
        out
    }

    /// The system prompt of the first call a review of `language` code makes with the configured
    /// strategy, and whether that call goes to the reviser (fix-first's fixer) rather than the
    /// critic: what warming the embedded model processes before the first review.
    pub fn first_system(
        &self,
        language: &str,
    ) -> Result<(String, bool), crate::prompts::PromptError> {
        match self.config.strategy.resolve(self.critic.is_small_model()) {
            Strategy::FixFirst | Strategy::Single => Ok((self.fixer_system(language)?, true)),
            Strategy::CritiqueFirst | Strategy::Auto => {
                Ok((self.critic_system(language, 1, 1)?, false))
            }
        }
    }

    /// The baseline check, then the strategy `loop.strategy` names: fix-first (or the single
    /// baseline), which may hand over to a critique of the original, or critique-first.
    async fn strategy(
        &self,
        input: &ReviewInput,
        original: &str,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        progress: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), Stop> {
        let scratch = self.baseline(input, run, out).await?;
        let at = Subject {
            input,
            original,
            scratch: scratch.as_ref(),
        };
        let strategy = self.config.strategy.resolve(self.critic.is_small_model());
        let mut probing = if strategy == Strategy::Single {
            None
        } else {
            self.prepare_probes(&at, run, out, progress).await?
        };
        match strategy {
            Strategy::CritiqueFirst | Strategy::Auto => {
                self.critique_first(&at, run, (out, progress), true, probing.as_mut())
                    .await?;
            }
            Strategy::FixFirst | Strategy::Single => {
                let single = strategy == Strategy::Single;
                let end = self
                    .fix_first(&at, run, (out, progress), single, probing.as_mut())
                    .await?;
                // Fix-first that gave nothing usable shows the critique, without revising
                // again.
                if end == FixEnd::Critique {
                    self.critique_first(&at, run, (out, progress), false, probing.as_mut())
                        .await?;
                }
            }
        }
        // Severity follows the evidence wherever probes ran; where none could, findings keep
        // `loop.max_unbacked_severity`'s cap.
        let probed = probing.is_some() && out.evidence.probe_calls > 0;
        let text = &input.text;
        let backed = |f: &Finding| {
            let (a, b) = (
                crate::document::line_of(text, f.range.start),
                crate::document::line_of(text, f.range.end.max(f.range.start)),
            );
            run.check_failed() || run.fact_lines.iter().any(|l| (a..=b).contains(l))
        };
        evidence::apply_severity(out, probed, &backed);
        Ok(())
    }

    /// With `verify.command`: copies the workspace and runs the command on the original. A
    /// failure there is a fact for the critic; a copy or run that fails is a note, and the
    /// review goes on without the command.
    async fn baseline(
        &self,
        input: &ReviewInput,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
    ) -> Result<Option<Scratch>, Stop> {
        let Some(check) = self.command else {
            return Ok(None);
        };
        match copy_and_run(check, input, run.cancel).await {
            Ok((scratch, result)) => {
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
                Ok(Some(scratch))
            }
            Err(CommandError::Cancelled) => Err(Stop),
            Err(e) => {
                out.notes.push(Note::CommandNotRun { why: e.to_string() });
                Ok(None)
            }
        }
    }

    /// The stored outcome of this very review, unless `input.force`. A cache is a file on disk
    /// anyone may have written (a CI cache restored from a pull request's run): an entry whose
    /// offsets do not fit the code is reviewed again, never applied.
    fn cached(&self, input: &ReviewInput, key: &[u8; 32], original: &str) -> Option<ReviewOutcome> {
        let cache = self.cache.filter(|_| !input.force)?;
        let mut hit = cache
            .get::<ReviewOutcome>(key)
            .filter(|h| fits(h, original))?;
        let region = input.region();
        relocate(&mut hit, region.start as isize);
        hit.region = region;
        hit.llm_calls = 0;
        hit.usage = Usage::default();
        hit.notes.push(Note::FromCache);
        Some(hit)
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
            CACHE_FORMAT,
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
            &input.unwanted.join("\n"),
        ])
    }
}

/// Copies the workspace and runs `verify.command` on the original.
async fn copy_and_run(
    check: &CommandCheck,
    input: &ReviewInput,
    cancel: &CancellationToken,
) -> Result<(Scratch, CommandResult), CommandError> {
    let owned = check.clone();
    let token = cancel.clone();
    let scratch = tokio::task::spawn_blocking(move || owned.scratch(&token))
        .await
        .map_err(|e| CommandError::Failed(format!("the copy failed: {e}")))??;
    let result = check.run(&scratch, &input.text.to_string(), cancel).await?;
    Ok((scratch, result))
}

/// Whether a cached outcome's edits and finding ranges (region-relative) fit `original`.
fn fits(hit: &ReviewOutcome, original: &str) -> bool {
    let chars = original.chars().count();
    let in_range = |r: &Range<usize>| r.start <= r.end && r.end <= chars;
    let edits_fit = hit.revision.as_ref().is_none_or(|rev| {
        edits::validate(original, &rev.edits, 0).is_ok()
            && rev
                .per_finding
                .iter()
                .all(|(_, e)| edits::validate(original, e, 0).is_ok())
    });
    let fits = edits_fit
        && hit.findings.iter().all(|f| in_range(&f.range))
        && hit.dismissed.iter().all(|f| in_range(&f.range));
    if !fits {
        tracing::warn!("a review cache entry does not fit the code; reviewing again");
    }
    fits
}

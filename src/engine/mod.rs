//! The refinement engine: critique → revise → verify → judge, keeping the best version.
//! It knows nothing of LSP: it takes a text, the lines to review and the providers, and returns
//! findings anchored to char offsets and a revision as minimal edits.
//!
//! Where things are: the types a review takes and gives in [`outcome`]; the critic (prompt,
//! streaming, placement, severity cap, reflection) in [`critic`], the reply's schema and parser
//! in [`critique`], where a finding is anchored in [`anchor`]; the reviser in [`reviser`] and its
//! reply format in [`revision`]; how a revision is verified in [`verify`]; whether it resolves
//! the findings in [`judge`]; the loop in [`refine`], and its fix-first strategy in [`fix`];
//! revision → minimal edits in [`edits`].

pub mod anchor;
pub mod critic;
pub mod critique;
pub mod edits;
pub mod fix;
pub mod judge;
pub mod outcome;
pub mod refine;
pub mod reviser;
pub mod revision;
pub mod verify;

use tokio_util::sync::CancellationToken;

use crate::config::LoopConfig;
use crate::llm::{ChatRequest, ChatResponse, Provider, ProviderError, Usage};
use crate::prompts::Prompts;
use crate::secrets::Vault;
use anchor::Selection;
pub use critic::number_lines;
pub use critique::{RawFinding, Severity};
pub use edits::Edit;
use outcome::relocate;
pub use outcome::{EngineError, Event, Fact, Finding, ReviewInput, ReviewOutcome, Revision, Stage};
use refine::Candidate;

/// What every step of one review shares.
pub(crate) struct Run<'a> {
    /// The review's secrets and their placeholders.
    pub(crate) vault: &'a mut Vault,
    pub(crate) cancel: &'a CancellationToken,
    /// Facts for the critic (the editor's diagnostics, a failing verify.command).
    pub(crate) facts: Vec<String>,
    /// File lines that outside tools flag.
    pub(crate) fact_lines: Vec<usize>,
    /// verify.command fails on the original: any error finding is backed.
    pub(crate) command_failed: bool,
    /// What matters of verify.command's output the last time it failed on a revision (the
    /// first error, the failing assertion), for the reviser's next attempt.
    pub(crate) last_failure: Option<String>,
    /// verify.command's exit code on the original.
    pub(crate) original_code: Option<i32>,
    /// The critic's temperature for this call (self-consistency samples), over the provider's.
    pub(crate) temperature: Option<f64>,
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
            // A cache is a file on disk anyone may have written (a CI cache restored from a
            // pull request's run): an entry whose offsets do not fit the code is reviewed
            // again, never applied.
            if let Some(mut hit) = cache.get(&key).filter(|h| fits(h, &original)) {
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
        let mut vault = Vault::default();
        self.refine(input, &original, &mut vault, &mut out, cancel, progress)
            .await;
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
            out.notes.push(format!(
                "{} secret(s) in the code were replaced by placeholders before sending: {}",
                out.redacted.len(),
                out.redacted.join(", ")
            ));
        }
        out
    }

    /// One model call, counted, its tokens added up and a cancellation noted in `out`.
    pub(crate) async fn call(
        provider: &Provider,
        req: &ChatRequest,
        out: &mut ReviewOutcome,
        cancel: &CancellationToken,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, ProviderError> {
        out.llm_calls += 1;
        let resp = provider.chat(req, cancel, on_delta).await;
        match &resp {
            Ok(r) => out.usage += r.usage,
            Err(ProviderError::Cancelled) => out.cancelled = true,
            Err(_) => {}
        }
        resp
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
            &input.unwanted.join("\n"),
        ])
    }
}

/// Whether a cached outcome's edits and finding ranges (region-relative) fit `original`.
fn fits(hit: &ReviewOutcome, original: &str) -> bool {
    let chars = original.chars().count();
    let in_range = |r: &std::ops::Range<usize>| r.start <= r.end && r.end <= chars;
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

//! Our extensions to LSP: the `refine/reviewFinished` notification, and the marker that stands
//! for LSP 3.18's `CodeAction.tags` (which the framework's types do not have yet). The wire
//! names here are a contract: `tests/lsp.rs` and the editors read them.

use serde::{Deserialize, Serialize};
use tower_lsp_server::ls_types::notification::Notification;

use crate::engine::ReviewOutcome;

/// The key in a code action's `data` that marks it as made by a model (`tags: [LLMGenerated]`
/// on the wire; see [`super::transport`]).
pub const LLM_MARKER: &str = "refineLlmGenerated";

/// `CodeActionTag.LLMGenerated` (LSP 3.18).
pub const LLM_GENERATED: u64 = 1;

/// `refine/reviewFinished`: sent once per review, after its diagnostics.
pub enum ReviewFinished {}

impl Notification for ReviewFinished {
    type Params = ReviewFinishedParams;
    const METHOD: &'static str = "refine/reviewFinished";
}

/// The summary of a review (counts, not findings: those are the diagnostics).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReviewFinishedParams {
    /// The id `refine.review` returned.
    pub review_id: String,
    /// The document.
    pub uri: String,
    /// Findings shown as diagnostics.
    pub findings: usize,
    /// Findings whose quote was not found in the selection.
    pub unanchored: usize,
    /// Findings about lines outside the selection (dropped).
    pub out_of_selection: usize,
    /// Findings below `loop.min_confidence` (not shown).
    pub low_confidence: usize,
    /// Revisions asked for.
    pub iterations: u32,
    /// Model calls made.
    pub llm_calls: u32,
    /// Whether a revision is offered.
    pub revision: bool,
    /// Prompt tokens used.
    pub input_tokens: u64,
    /// Completion tokens used.
    pub output_tokens: u64,
    /// Prompt tokens the model took from its cache instead of processing them again.
    #[serde(default)]
    pub reused_input_tokens: u64,
    /// Secrets replaced by placeholders before sending.
    pub redactions: usize,
    /// What happened along the way (rejected revisions, why nothing is offered).
    pub notes: Vec<String>,
    /// One sentence per reason findings were not shown ("2 findings not shown: their quotes
    /// are not in the code").
    #[serde(default)]
    pub not_shown: Vec<String>,
    /// Findings whose quote only repeated their message.
    #[serde(default)]
    pub quote_is_message: usize,
    /// Findings cut by the repetition guard.
    #[serde(default)]
    pub repeated: usize,
    /// Findings over `loop.max_findings`.
    #[serde(default)]
    pub over_limit: usize,
    /// Findings too few of the `loop.samples` critiques agreed on.
    #[serde(default)]
    pub not_agreed: usize,
    /// Why the review failed or stopped, as a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A review's outcome as `refine/reviewFinished` reports it. `stored`: the results were kept
/// (the review was neither cancelled nor replaced), so its findings and revision are shown.
/// The one place that reads `ReviewOutcome`'s counters and notes for the wire.
pub fn finished_params(
    outcome: &ReviewOutcome,
    review_id: String,
    uri: String,
    stored: bool,
    error: Option<String>,
) -> ReviewFinishedParams {
    ReviewFinishedParams {
        review_id,
        uri,
        findings: if stored { outcome.findings.len() } else { 0 },
        unanchored: outcome.withheld.unanchored,
        out_of_selection: outcome.withheld.outside_selection,
        low_confidence: outcome.low_confidence.len(),
        iterations: outcome.iterations,
        llm_calls: outcome.llm_calls,
        revision: stored && outcome.revision.is_some(),
        input_tokens: outcome.usage.input_tokens,
        output_tokens: outcome.usage.output_tokens,
        reused_input_tokens: outcome.usage.reused_input_tokens,
        redactions: outcome.redacted.len(),
        notes: outcome.notes.iter().map(ToString::to_string).collect(),
        not_shown: outcome.not_shown(),
        quote_is_message: outcome.withheld.quote_is_message,
        repeated: outcome.withheld.repeated,
        over_limit: outcome.withheld.over_limit,
        not_agreed: outcome.withheld.not_agreed,
        error,
    }
}

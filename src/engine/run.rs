//! The engine's parts (providers, prompts, settings), what every step of one review shares,
//! and the one function that calls a provider.

use tokio_util::sync::CancellationToken;

use super::outcome::{Fact, ReviewInput, ReviewOutcome};
use super::verify::command::{CommandCheck, Scratch};
use crate::config::LoopConfig;
use crate::llm::{ChatRequest, ChatResponse, Provider, ProviderError};
use crate::prompts::Prompts;
use crate::secrets::Vault;

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
    pub command: Option<&'a CommandCheck>,
    /// Finished reviews, to answer unchanged code without a model call.
    pub cache: Option<&'a crate::cache::Cache>,
    /// Whether the evidence stage may run the code (probes, doc examples).
    pub probes: ProbePolicy,
    /// The workspace root: a probe looks for the file's crate no higher.
    pub workspace: Option<&'a std::path::Path>,
}

/// Whether a review may run the selected code on inputs (`loop.probes`): code from the
/// workspace and the model runs only in the sandbox, or, where there is none, in a trusted
/// workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbePolicy {
    /// `loop.probes = false`.
    Off,
    /// Probes run (in the sandbox when there is one).
    Allowed,
    /// Asked for, but not allowed here, and why (no sandbox and an untrusted workspace).
    NotAllowed(String),
}

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
    /// A doc example fails on the original: as strong as a failing test.
    pub(crate) examples_failed: bool,
    /// What matters of verify.command's output the last time it failed on a revision (the
    /// first error, the failing assertion), for the reviser's next attempt.
    pub(crate) last_failure: Option<String>,
    /// verify.command's exit code on the original.
    pub(crate) original_code: Option<i32>,
    /// The critic's temperature for this call (self-consistency samples), over the provider's.
    pub(crate) temperature: Option<f64>,
}

impl Run<'_> {
    /// Executed evidence says the original is wrong: `verify.command` or a doc example fails
    /// on it.
    pub(crate) fn check_failed(&self) -> bool {
        self.command_failed || self.examples_failed
    }
}

impl<'a> Run<'a> {
    /// A review's run, before anything is known but the editor's diagnostics.
    pub(crate) fn new(vault: &'a mut Vault, cancel: &'a CancellationToken, facts: &[Fact]) -> Self {
        Run {
            vault,
            cancel,
            facts: facts
                .iter()
                .map(|f| format!("line {}: {}", f.line + 1, f.text))
                .collect(),
            fact_lines: facts.iter().map(|f| f.line).collect(),
            command_failed: false,
            examples_failed: false,
            last_failure: None,
            original_code: None,
            temperature: None,
        }
    }
}

/// What one review is about: its input, the selection as it was, and the scratch copy of the
/// workspace that `verify.command` runs in (when there is one).
#[derive(Clone, Copy)]
pub(crate) struct Subject<'x> {
    pub(crate) input: &'x ReviewInput,
    pub(crate) original: &'x str,
    pub(crate) scratch: Option<&'x Scratch>,
}

impl Engine<'_> {
    /// One model call, counted and its tokens added up in `out`.
    pub(crate) async fn call(
        provider: &Provider,
        req: &ChatRequest,
        out: &mut ReviewOutcome,
        cancel: &CancellationToken,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, ProviderError> {
        out.llm_calls += 1;
        let resp = provider.chat(req, cancel, on_delta).await;
        if let Ok(r) = &resp {
            out.usage += r.usage;
        }
        resp
    }
}

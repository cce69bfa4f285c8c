//! What a review takes and gives: its input, findings, progress events, the revision and the
//! outcome, and the errors of its steps. Offsets are char offsets into the reviewed text.

use std::ops::Range;

use ropey::Rope;
use serde::{Deserialize, Serialize};

use super::critique::{self, RawFinding};
use super::edits::Edit;
use super::note::{Note, Rejection};
use super::revision;
use crate::document::line_span;
use crate::llm::{ProviderError, Usage};
use crate::prompts::PromptError;

/// What to review: a snapshot of the whole text and the (zero-based, inclusive) lines.
#[derive(Debug, Clone)]
pub struct ReviewInput {
    /// The whole document as it was when the review started.
    pub text: Rope,
    /// A path or URI shown to the model.
    pub path: String,
    /// The reviewed file's absolute path on disk, when there is one (probes build it in its
    /// crate).
    pub file: Option<std::path::PathBuf>,
    /// Language name shown to the model (`rust`, `python`, ...).
    pub language: String,
    /// First line reviewed (zero-based).
    pub first_line: usize,
    /// Last line reviewed (zero-based, inclusive).
    pub last_line: usize,
    /// What the compiler, linters and tests already say about these lines (the editor's own
    /// diagnostics): given to the critic as facts, and what lets a finding be an error.
    pub facts: Vec<Fact>,
    /// Kinds of finding this codebase dismissed for this file, one compact line each
    /// (`correctness: \`1..n\``): the critic is asked not to report them again.
    pub unwanted: Vec<String>,
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
    /// What backs it beyond the model's word (its severity follows this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

impl Finding {
    /// The message as shown: the model's words, then the evidence's sentence.
    pub fn shown_message(&self) -> String {
        match &self.evidence {
            Some(e) => format!("{} ({})", self.raw.message.trim_end(), e.sentence()),
            None => self.raw.message.clone(),
        }
    }
}

/// What backs a finding beyond the model's word, strongest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// Executed: a failing test (`verify.command`) or doc example, or a compiler or linter
    /// diagnostic, that the revision makes pass. The one thing that lets a finding be an error.
    Executed {
        /// What ran (`the doc example \`sum_even(&[2]) == 2\``, `verify.command \`cargo test\``).
        what: String,
    },
    /// An input on which the revision's outcome differs from the original's, and the
    /// function's intent (its doc, name and signature) agrees with the revision: a warning.
    Counterexample(Counterexample),
    /// The revision does what the original does on every probe input: a hint.
    Unchanged {
        /// Inputs it ran on.
        inputs: usize,
    },
}

impl Evidence {
    /// One sentence: "`sum_even(&[2])` returns 0; its intent says 2; the revision returns 2".
    pub fn sentence(&self) -> String {
        match self {
            Evidence::Executed { what } => {
                format!("{what} fails on the original and passes on the revision")
            }
            Evidence::Counterexample(c) => c.sentence(),
            Evidence::Unchanged { inputs } => {
                format!("behaviour unchanged on {inputs} input(s)")
            }
        }
    }
}

/// An input where the original and the revision differ, and what the function should do there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterexample {
    /// The function called.
    pub function: String,
    /// Its arguments, in the language's syntax.
    pub args: String,
    /// What the original does (`0`, `panics (attempt to subtract with overflow)`).
    pub original: String,
    /// What it should return, as an expression of the language (`2`).
    pub expected: String,
    /// Who says so: `the doc example`, `its doc and name`.
    pub said_by: String,
    /// What the revision does.
    pub revised: String,
}

impl Counterexample {
    /// `sum_even(&[2])`.
    pub fn call(&self) -> String {
        format!("{}({})", self.function, self.args)
    }

    /// The call with what it should return: what a regression test asserts.
    pub fn expected_call(&self) -> crate::probe::Call {
        crate::probe::Call {
            function: self.function.clone(),
            args: self.args.clone(),
            expected: Some(self.expected.clone()),
        }
    }

    /// "`sum_even(&[2])` returns 0; its doc and name say 2; the revision returns 2".
    pub fn sentence(&self) -> String {
        format!(
            "`{}` {}; {} say {}; the revision {}",
            self.call(),
            returns(&self.original),
            self.said_by,
            self.expected,
            returns(&self.revised)
        )
    }
}

/// "returns 0", or "panics (...)" as it is.
fn returns(outcome: &str) -> String {
    let verb = ["panics", "does not end", "exits", "kills", "not run"];
    if verb.iter().any(|v| outcome.starts_with(v)) {
        outcome.to_owned()
    } else {
        format!("returns {outcome}")
    }
}

/// What the review's own evidence came to (probes, doc examples, sampled fixes), for the
/// editors' status, the CLI's summary and `eval`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvidenceSummary {
    /// Probe inputs run (per version: the same inputs on the original and each candidate).
    pub probe_inputs: usize,
    /// Calls executed in all (inputs × versions).
    pub probe_calls: usize,
    /// Doc examples run on the original, and how many of them fail there.
    pub doc_examples: usize,
    /// ... failing on the original.
    pub doc_examples_failing: usize,
    /// Candidate versions compared (the greedy fix and the sampled ones, distinct by behaviour).
    pub candidates: usize,
    /// Behaviours among the candidates (distinct outcome vectors).
    pub behaviours: usize,
    /// Candidates refused as drift.
    pub drift_refused: usize,
    /// The offered revision's counterexample, if it has one.
    pub counterexample: Option<Counterexample>,
    /// A regression test of the counterexample was checked: fails on the original and passes on
    /// the revision.
    pub regression_test_verified: bool,
    /// Why no probe ran (`None`: probes ran, or were not asked for).
    pub no_probes: Option<String>,
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
    /// Judging whether revision `round` resolves the findings.
    Judge {
        /// Which revision.
        round: u32,
    },
    /// Explaining the verified fix `round` (fix-first) hunk by hunk.
    Explain {
        /// Which fix.
        round: u32,
    },
    /// Asking for sampled fix `n` of `of` (their behaviour is compared by probes).
    Sample {
        /// Which sample.
        n: u32,
        /// How many.
        of: u32,
    },
    /// Running the code on inputs (probes and doc examples) in each version.
    Probe,
}

impl Stage {
    /// A short sentence for progress messages, e.g. `critique 1/3`.
    pub fn describe(self, max_iterations: u32) -> String {
        match self {
            Stage::Critique { round } => format!("critique {}/{}", round + 1, max_iterations + 1),
            Stage::Revise { round } => format!("revision {round}/{max_iterations}"),
            Stage::Judge { round } => format!("judging revision {round}/{max_iterations}"),
            Stage::Explain { round } => format!("explaining fix {round}/{max_iterations}"),
            Stage::Sample { n, of } => format!("sampled fix {n}/{of}"),
            Stage::Probe => "running the code on inputs".to_owned(),
        }
    }
}

/// What a review reports while it runs.
#[derive(Debug, Clone, PartialEq)]
// A handful of events per review; boxing the finding would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A new step began.
    Stage(Stage),
    /// A finding on the original, placed as soon as the critic's stream completed it, or, with
    /// fix-first, where a verified fix changes the code before its explanation is in; a later
    /// one with the same id replaces it, and the final list, in [`ReviewOutcome::findings`],
    /// replaces them all.
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
    /// Findings the model gave that are not shown, by reason (their counts; serialized as
    /// fields of the outcome).
    #[serde(flatten)]
    pub withheld: Withheld,
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
    pub notes: Vec<Note>,
    /// Findings taken out because the workspace dismissed them (`.refine/dismissed.toml`).
    #[serde(default)]
    pub dismissed: Vec<Finding>,
    /// Why the review failed, as one sentence.
    pub error: Option<String>,
    /// The review was cancelled.
    pub cancelled: bool,
    /// Secrets replaced by placeholders before anything was sent (kinds, one per secret).
    pub redacted: Vec<String>,
    /// Revisions refused by verification (syntax, intent, `verify.command`).
    pub rejected: u32,
    /// `verify.command` passed on the original (`None`: not run).
    pub command_passed_on_original: Option<bool>,
    /// What the review's own evidence (probes, doc examples, sampled fixes) came to.
    #[serde(default)]
    pub evidence: EvidenceSummary,
}

/// How many of the findings the model gave are not shown, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Withheld {
    /// Findings whose quote is not in the selection.
    pub unanchored: usize,
    /// Findings about lines outside the selection.
    pub outside_selection: usize,
    /// Findings whose quote only repeated their message (counted apart from `unanchored`).
    pub quote_is_message: usize,
    /// Findings cut by the repetition guard (the model said them again).
    pub repeated: usize,
    /// Findings over `loop.max_findings` (the least severe are not shown).
    pub over_limit: usize,
    /// Findings too few of the `loop.samples` critiques agreed on.
    pub not_agreed: usize,
    /// Findings the reflection pass dropped.
    pub reflected_out: usize,
}

impl ReviewOutcome {
    /// One sentence per reason findings were not shown, e.g. "2 findings not shown: their
    /// quotes are not in the code". Empty when every finding the model gave is shown.
    pub fn not_shown(&self) -> Vec<String> {
        let n = |k: usize| {
            if k == 1 {
                "1 finding not shown".to_owned()
            } else {
                format!("{k} findings not shown")
            }
        };
        let their = |k: usize, one: &str, many: &str| {
            if k == 1 {
                one.to_owned()
            } else {
                many.to_owned()
            }
        };
        let w = &self.withheld;
        let mut out = Vec::new();
        if w.unanchored > 0 {
            out.push(format!(
                "{}: {}",
                n(w.unanchored),
                their(
                    w.unanchored,
                    "its quote is not in the code",
                    "their quotes are not in the code"
                )
            ));
        }
        if w.quote_is_message > 0 {
            out.push(format!(
                "{}: {}",
                n(w.quote_is_message),
                their(
                    w.quote_is_message,
                    "its quote repeats its message instead of quoting the code",
                    "their quotes repeat their messages instead of quoting the code"
                )
            ));
        }
        if w.outside_selection > 0 {
            out.push(format!(
                "{}: {}",
                n(w.outside_selection),
                their(
                    w.outside_selection,
                    "it is about lines outside the selection",
                    "they are about lines outside the selection"
                )
            ));
        }
        if !self.low_confidence.is_empty() {
            out.push(format!(
                "{}: below loop.min_confidence",
                n(self.low_confidence.len())
            ));
        }
        if w.repeated > 0 {
            out.push(format!(
                "{}: the model repeated an earlier finding",
                n(w.repeated)
            ));
        }
        if w.over_limit > 0 {
            out.push(format!(
                "{}: over loop.max_findings (the least severe)",
                n(w.over_limit)
            ));
        }
        if w.not_agreed > 0 {
            out.push(format!(
                "{}: fewer than half of the loop.samples critiques agree on {}",
                n(w.not_agreed),
                their(w.not_agreed, "it", "them")
            ));
        }
        out
    }
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
    /// The reviser's revision is refused before any check (it would write a secret
    /// placeholder, or putting the secrets back would change lines the model kept).
    #[error(transparent)]
    Refused(Rejection),
}

impl From<EngineError> for Rejection {
    /// Why a reviser's or fixer's reply is refused, when it cannot be used.
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Revision(e) => Rejection::Unreadable(e),
            EngineError::Refused(why) => why,
            e => Rejection::Failed(e.to_string()),
        }
    }
}

/// The review was cancelled: returned by every step with `?` up to the review, which marks the
/// outcome [`ReviewOutcome::cancelled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop;

/// Moves every offset of an outcome by `by` chars (to and from region-relative form).
pub(crate) fn relocate(o: &mut ReviewOutcome, by: isize) {
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

/// A step's failure ends the review: its error goes into `out`, or, when the call was
/// cancelled, the review stops.
pub(crate) fn fail(out: &mut ReviewOutcome, e: EngineError) -> Result<(), Stop> {
    if matches!(e, EngineError::Provider(ProviderError::Cancelled)) {
        return Err(Stop);
    }
    out.error = Some(e.to_string());
    Ok(())
}

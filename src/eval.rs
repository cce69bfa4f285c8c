//! `refine-ls eval`: runs the loop over HumanEvalPack-style tasks (a declaration, a buggy and a
//! correct solution, tests) and measures what matters for an aligned loop: does a shown finding
//! land on the bug, does the offered revision pass the tests, does the loop leave correct code
//! alone (drift), how many bad revisions verification caught, and what it cost; each mode
//! (the loop with either strategy, the single-call baseline, the critique alone) on the same
//! tasks in one run. Each task's result is appended to `--out` as it finishes, so an
//! interrupted run resumes (`--resume`) and the summary is always computed from the file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use futures::StreamExt;
use ropey::Rope;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::Strategy;

use crate::engine::verify::CommandCheck;
use crate::engine::{Note, Refusal, ReviewInput, ReviewOutcome, edits};
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
    /// Run only these tasks (ids, comma-separated: `Rust/16,Rust/48`).
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub task: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// What verifies each revision inside the loop.
    #[arg(long, value_enum, default_value_t = VerifyMode::Tests)]
    pub verify: VerifyMode,
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
    /// Skip the tasks `--out` already holds for this model, verification and mode (without
    /// it, `--out` starts afresh).
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Which provider.
    #[command(flatten)]
    pub flags: crate::flags::ProviderFlags,
}

/// The loop's outside check during eval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Compile and run the task's tests (the strongest feedback the loop can get).
    Tests,
    /// Compile only; the tests are held out as the judge.
    Compile,
    /// Syntax and signature checks only.
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
struct ModeSetup {
    /// `loop/critique-first`, `loop/fix-first`, `single`, `critique`.
    name: String,
    strategy: Strategy,
    /// `None`: as configured.
    max_iterations: Option<u32>,
}

/// The modes `args` asks for, in order, without repeats.
fn mode_setups(args: &EvalArgs, configured: Strategy) -> Vec<ModeSetup> {
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
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
    /// Why each refused or set-aside revision was.
    pub rejections: Vec<String>,
    /// The kind of each of `rejections`, in order.
    pub refusals: Vec<Refusal>,
    /// Wall time of the review, in milliseconds.
    pub wall_ms: u64,
}

/// One task's result in one mode: a line of `--out`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskResult {
    /// `Rust/0`.
    pub task_id: String,
    /// Kind of bug.
    #[serde(default)]
    pub bug_type: String,
    /// `loop/critique-first`, `loop/fix-first`, `single` or `critique`.
    pub mode: String,
    /// What verified revisions inside the loop.
    pub verify: VerifyMode,
    /// The model (as the provider describes it).
    pub model: String,
    /// The review of the buggy solution.
    #[serde(default)]
    pub buggy: Run,
    /// The review of the correct solution (drift).
    #[serde(default)]
    pub correct: Run,
    /// Why the task was skipped, if it was.
    #[serde(default)]
    pub skipped: Option<String>,
}

/// Crates the sample's declarations import that a bare `rustc` does not have: the import,
/// the name a solution uses, and the path prefix a test uses.
const EXTERNAL_USES: &[(&str, &str, &str)] = &[
    ("use rand::Rng;", "rand", "rand::"),
    ("use regex::Regex;", "Regex", "regex::"),
    ("use md5;", "md5", "md5::"),
];

impl Task {
    /// The file for one solution: declaration, body, tests; external imports dropped when
    /// unused (`None` when the solution needs them).
    fn file(&self, solution: &str) -> Option<String> {
        let mut decl = self.declaration.clone();
        for (line, name, path) in EXTERNAL_USES {
            // A test that needs the crate cannot be run, and the task cannot be judged.
            if self.canonical_solution.contains(name)
                || self.buggy_solution.contains(name)
                || self.test.contains(path)
            {
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

fn read_tasks(path: &Path, limit: Option<usize>) -> Result<Vec<Task>, String> {
    // (`limit` None: all of them.)
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut tasks = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let task: Task = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: not a task ({e})", path.display(), i + 1))?;
        tasks.push(task);
    }
    tasks.truncate(limit.unwrap_or(usize::MAX));
    Ok(tasks)
}

/// The results `--out` already holds (lines that cannot be read are skipped, and counted).
fn read_results(path: &Path) -> (Vec<TaskResult>, usize) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (Vec::new(), 0);
    };
    let mut bad = 0;
    let results = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let r = serde_json::from_str::<TaskResult>(l).ok();
            bad += usize::from(r.is_none());
            r
        })
        .collect();
    (results, bad)
}

async fn run_eval(args: &EvalArgs) -> Result<(), String> {
    let mut tasks = read_tasks(&args.dataset, None)?;
    if !args.task.is_empty() {
        if let Some(missing) = args
            .task
            .iter()
            .find(|id| !tasks.iter().any(|t| &t.task_id == *id))
        {
            return Err(format!("{} has no task {missing}", args.dataset.display()));
        }
        tasks.retain(|t| args.task.contains(&t.task_id));
    }
    tasks.truncate(args.limit.unwrap_or(usize::MAX));
    let mut layers = crate::config::Layers::default();
    layers.load_files(None);
    layers.set(crate::config::Source::CommandLine, args.flags.layer());
    let mut resolved = layers.resolve();
    resolved.config.provider.use_every_core();
    // Every task is reviewed afresh: no cache; built-in prompts only.
    resolved.config.cache.enabled = false;
    let prompts = Arc::new(Prompts::load_from(&[]));
    let embedded = ReviewService::new(resolved.clone(), None, prompts.clone(), None)
        .providers()?
        .critic
        .kind()
        == crate::llm::Kind::Local;
    let setups = mode_setups(args, resolved.config.refine_loop.strategy.resolve(embedded));
    let mut services = Vec::new();
    for m in &setups {
        let mut r = resolved.clone();
        r.config.refine_loop.strategy = m.strategy;
        if let Some(n) = m.max_iterations {
            r.config.refine_loop.max_iterations = n;
        }
        let service = ReviewService::new(r, None, prompts.clone(), None);
        let model = service.providers()?.describe();
        services.push((m.name.clone(), service, model));
    }
    let model = services.first().map(|s| s.2.clone()).unwrap_or_default();

    // What is already done (with --resume), and the file the new results go to.
    let mut results: Vec<TaskResult> = Vec::new();
    let mut out_file = None;
    if let Some(path) = &args.out {
        if args.resume {
            let (old, bad) = read_results(path);
            if bad > 0 {
                eprintln!(
                    "refine-ls: {bad} line(s) of {} could not be read and are ignored",
                    path.display()
                );
            }
            results = old
                .into_iter()
                .filter(|r| r.verify == args.verify && r.model == model)
                .collect();
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(args.resume)
            .write(true)
            .truncate(!args.resume)
            .open(path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        out_file = Some(file);
    }
    let done = |task: &str, mode: &str| results.iter().any(|r| r.task_id == task && r.mode == mode);
    // Task by task, every mode of a task before the next task: an interrupted run leaves
    // whole tasks behind.
    let work: Vec<(&Task, usize)> = tasks
        .iter()
        .flat_map(|t| (0..services.len()).map(move |m| (t, m)))
        .filter(|(t, m)| !done(&t.task_id, &services[*m].0))
        .collect();
    if args.resume && work.len() < tasks.len() * services.len() {
        eprintln!(
            "refine-ls: resuming: {} of {} task runs already in the file",
            tasks.len() * services.len() - work.len(),
            tasks.len() * services.len()
        );
    }
    let total = work.len();
    let verify = args.verify;
    let mut stream = futures::stream::iter(work.into_iter().map(|(task, m)| {
        let (name, service, model) = &services[m];
        async move { run_task(task, name, model, verify, service).await }
    }))
    .buffer_unordered(usize::from(args.jobs));
    let mut n = 0;
    while let Some(result) = stream.next().await {
        n += 1;
        eprintln!("refine-ls: eval {n}/{total}: {}", describe(&result));
        if let Some(file) = out_file.as_mut() {
            let line = serde_json::to_string(&result).map_err(|e| e.to_string())?;
            writeln!(file, "{line}")
                .and_then(|()| file.flush())
                .map_err(|e| format!("cannot write the results: {e}"))?;
        }
        results.push(result);
    }
    drop(stream);

    // The summary covers this run's tasks and modes, from the file's lines and the new ones.
    let wanted: Vec<&str> = setups.iter().map(|m| m.name.as_str()).collect();
    results.retain(|r| {
        wanted.contains(&r.mode.as_str()) && tasks.iter().any(|t| t.task_id == r.task_id)
    });
    let order = |r: &TaskResult| {
        (
            tasks.iter().position(|t| t.task_id == r.task_id),
            wanted.iter().position(|m| *m == r.mode),
        )
    };
    results.sort_by_key(order);
    results.dedup_by(|a, b| a.task_id == b.task_id && a.mode == b.mode);
    let summaries = summaries(&results, &wanted);
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        Format::Json => serde_json::to_writer_pretty(
            &mut out,
            &json!({
                "verify": args.verify,
                "model": model,
                "modes": wanted,
                "tasks": results,
                // The first mode's summary (as before modes existed), then every mode's.
                "summary": wanted.first().and_then(|m| summaries.get(*m)),
                "summaries": summaries,
            }),
        )
        .map_err(std::io::Error::other)
        .and_then(|()| writeln!(out)),
        Format::Text => print_table(&mut out, &results, &summaries),
    };
    written.map_err(|e| format!("cannot write the output: {e}"))
}

/// One line of progress for a finished task run.
fn describe(r: &TaskResult) -> String {
    if let Some(why) = &r.skipped {
        return format!("{} {}: skipped ({why})", r.task_id, r.mode);
    }
    let revision = match r.buggy.revision_passes {
        Some(true) => "revision passes the tests",
        Some(false) => "revision fails the tests",
        None => "no revision",
    };
    format!(
        "{} {}: {} finding(s){}, {revision}; correct code: {} finding(s){} ({:.0} s)",
        r.task_id,
        r.mode,
        r.buggy.findings,
        if r.buggy.hit { " on the bug" } else { "" },
        r.correct.findings,
        if r.correct.revision {
            ", a revision"
        } else {
            ""
        },
        (r.buggy.wall_ms + r.correct.wall_ms) as f64 / 1000.0
    )
}

async fn run_task(
    task: &Task,
    mode: &str,
    model: &str,
    verify: VerifyMode,
    service: &ReviewService,
) -> TaskResult {
    let mut result = TaskResult {
        task_id: task.task_id.clone(),
        bug_type: task.bug_type.clone(),
        mode: mode.to_owned(),
        verify,
        model: model.to_owned(),
        buggy: Run::default(),
        correct: Run::default(),
        skipped: None,
    };
    let (Some(buggy_file), Some(correct_file)) = (
        task.file(&task.buggy_solution),
        task.file(&task.canonical_solution),
    ) else {
        result.skipped = Some("needs crates (rand, regex, md5) a bare rustc lacks".to_owned());
        return result;
    };
    let bug_lines = task.bug_lines(&buggy_file);
    result.buggy = review_one(
        task,
        &buggy_file,
        &task.buggy_solution,
        verify,
        service,
        &bug_lines,
    )
    .await;
    result.correct = review_one(
        task,
        &correct_file,
        &task.canonical_solution,
        verify,
        service,
        &[],
    )
    .await;
    result
}

async fn review_one(
    task: &Task,
    file: &str,
    solution: &str,
    mode: VerifyMode,
    service: &ReviewService,
    bug_lines: &[usize],
) -> Run {
    let started = Instant::now();
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
    // `tests`: the task's tests are the loop's check, on buggy code (where they fail, and
    // their failure is a fact the loop starts from) as on correct code. `compile`: the tests
    // are held out, and only judge the offered revision afterwards.
    const COMPILE: &str = "rustc --edition 2021 --crate-type lib -A warnings --emit=metadata --out-dir target src/lib.rs";
    const TESTS: &str = "mkdir -p target && rustc --edition 2021 --test -A warnings -o target/t src/lib.rs && ./target/t -q";
    let check = match mode {
        VerifyMode::None => None,
        VerifyMode::Compile => Some(command_check(dir.path(), COMPILE)),
        VerifyMode::Tests => Some(command_check(dir.path(), TESTS)),
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
        unwanted: Vec::new(),
    };
    let outcome: ReviewOutcome = service
        .review_with(
            &input,
            check.as_ref(),
            false,
            &crate::cli::interrupted().child_token(),
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
        rejections: outcome
            .notes
            .iter()
            .filter(|n| n.refusal().is_some())
            .map(ToString::to_string)
            .collect(),
        refusals: outcome.notes.iter().filter_map(Note::refusal).collect(),
        wall_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

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
    };
    run.run(&crate::cli::interrupted().child_token())
        .await
        .is_ok_and(|r| r.passed())
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    Some(if xs.len().is_multiple_of(2) {
        (xs[m - 1] + xs[m]) / 2.0
    } else {
        xs[m]
    })
}

/// One mode's summary over its results.
fn summary(results: &[&TaskResult], mode: &str) -> Value {
    let ran: Vec<&&TaskResult> = results.iter().filter(|r| r.skipped.is_none()).collect();
    let n = ran.len().max(1) as f64;
    let count = |f: &dyn Fn(&TaskResult) -> bool| ran.iter().filter(|r| f(r)).count();
    let finds = mode != "single";
    let hits = count(&|r| r.buggy.hit);
    let passing = count(&|r| r.buggy.revision_passes == Some(true));
    let offered = count(&|r| r.buggy.revision);
    let flagged = count(&|r| r.correct.findings > 0);
    let drift_revisions = count(&|r| r.correct.revision);
    let drift_broken = count(&|r| r.correct.revision_passes == Some(false));
    let drift_findings: usize = ran.iter().map(|r| r.correct.findings).sum();
    let rejected: u32 = ran
        .iter()
        .map(|r| r.buggy.rejected + r.correct.rejected)
        .sum();
    let calls: u32 = ran
        .iter()
        .map(|r| r.buggy.llm_calls + r.correct.llm_calls)
        .sum();
    let tokens: u64 = ran.iter().map(|r| r.buggy.tokens + r.correct.tokens).sum();
    let errors = count(&|r| r.buggy.error.is_some() || r.correct.error.is_some());
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &ran {
        for kind in r.buggy.refusals.iter().chain(&r.correct.refusals) {
            *reasons.entry(kind.label()).or_default() += 1;
        }
    }
    let per_review: Vec<f64> = ran
        .iter()
        .flat_map(|r| {
            [
                r.buggy.wall_ms as f64 / 1000.0,
                r.correct.wall_ms as f64 / 1000.0,
            ]
        })
        .collect();
    let wall: f64 = per_review.iter().sum();
    json!({
        "tasks": ran.len(),
        "skipped": results.len() - ran.len(),
        "pass_at_1": passing as f64 / n,
        "bug_line_hit_rate": finds.then_some(hits as f64 / n),
        "false_positive_rate": finds.then_some(flagged as f64 / n),
        "revision_pass_rate": passing as f64 / n,
        "revisions_offered_on_buggy": offered,
        "offered_revisions_passing": passing,
        "drift_tasks_with_findings_on_correct_code": flagged,
        "drift_findings_on_correct_code": drift_findings,
        "drift_revisions_offered_on_correct_code": drift_revisions,
        "drift_revisions_breaking_tests": drift_broken,
        "bad_revisions_rejected": rejected,
        "rejection_reasons": reasons,
        "reviews_with_errors": errors,
        "model_calls_per_task": calls as f64 / n,
        "tokens_per_task": tokens as f64 / n,
        "median_review_secs": median(per_review),
        "wall_secs": wall,
    })
}

/// Every mode's summary, and each loop mode's gain in pass@1 over `single` (in points).
fn summaries(results: &[TaskResult], modes: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for mode in modes {
        let mine: Vec<&TaskResult> = results.iter().filter(|r| r.mode == *mode).collect();
        out.insert((*mode).to_owned(), summary(&mine, mode));
    }
    let single = out
        .get("single")
        .and_then(|s| s.get("pass_at_1"))
        .and_then(Value::as_f64);
    if let Some(single) = single {
        for mode in modes.iter().filter(|m| m.starts_with("loop/")) {
            if let Some(s) = out.get_mut(*mode).and_then(Value::as_object_mut) {
                let p = s.get("pass_at_1").and_then(Value::as_f64).unwrap_or(0.0);
                s.insert(
                    "gain_over_single_points".to_owned(),
                    json!(((p - single) * 1000.0).round() / 10.0),
                );
            }
        }
    }
    Value::Object(out)
}

fn print_table(
    out: &mut impl Write,
    results: &[TaskResult],
    summaries: &Value,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<10} {:<20} {:<16} {:>5} {:>4} {:>9} {:>8} {:>6} {:>5} {:>7} {:>6}",
        "task",
        "mode",
        "bug",
        "found",
        "hit",
        "revision",
        "passes",
        "drift",
        "calls",
        "tokens",
        "secs"
    )?;
    for r in results {
        if let Some(why) = &r.skipped {
            writeln!(out, "{:<10} {:<20} skipped: {why}", r.task_id, r.mode)?;
            continue;
        }
        let yn = |b: bool| if b { "yes" } else { "no" };
        writeln!(
            out,
            "{:<10} {:<20} {:<16} {:>5} {:>4} {:>9} {:>8} {:>6} {:>5} {:>7} {:>6.0}",
            r.task_id,
            r.mode,
            r.bug_type,
            r.buggy.findings,
            yn(r.buggy.hit),
            yn(r.buggy.revision),
            r.buggy.revision_passes.map_or("-", yn),
            r.correct.findings,
            r.buggy.llm_calls + r.correct.llm_calls,
            r.buggy.tokens + r.correct.tokens,
            (r.buggy.wall_ms + r.correct.wall_ms) as f64 / 1000.0
        )?;
        for e in [&r.buggy.error, &r.correct.error].into_iter().flatten() {
            writeln!(out, "           error: {e}")?;
        }
    }
    for (mode, s) in summaries.as_object().into_iter().flatten() {
        writeln!(out)?;
        writeln!(out, "{mode}:")?;
        for (k, v) in s.as_object().into_iter().flatten() {
            writeln!(out, "  {k}: {v}")?;
        }
    }
    Ok(())
}

//! The run of `refine-ls eval`: the tasks and modes it asks for, what `--out` already holds,
//! the task runs `--jobs` at a time, each result appended to `--out` as it finishes, and the
//! report computed from all of them.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::json;

use super::super::flags::Format;
use super::args::{EvalArgs, mode_setups};
use super::results::{TaskResult, describe, read_results};
use super::review::{Setting, run_task};
use super::summary::{print_table, summaries};
use super::task::{Task, read_tasks};
use crate::prompts::Prompts;
use crate::service::ReviewService;

/// One mode as it runs: its name in the results, the service set for it, and the model (as the
/// provider describes it).
struct ModeService {
    name: String,
    service: ReviewService,
    model: String,
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
    let tasks = select_tasks(args)?;
    let services = mode_services(args)?;
    let model = services
        .first()
        .map(|s| s.model.clone())
        .unwrap_or_default();
    let (mut results, mut out_file) = open_results(args, &model)?;
    let work = pending(args, &tasks, &services, &results);
    run_work(args, work, &services, &mut out_file, &mut results).await?;
    // The summary covers this run's tasks and modes, from the file's lines and the new ones.
    let wanted: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    keep_this_run(&mut results, &tasks, &wanted);
    write_report(args, &model, &wanted, &results)
}

/// The dataset's tasks `args` asks for: `--task`'s (each must be there), at most `--limit`.
fn select_tasks(args: &EvalArgs) -> Result<Vec<Task>, String> {
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
    Ok(tasks)
}

/// A service for each mode `args` asks for, in order: the configuration files with the
/// provider flags on top, no cache (every task is reviewed afresh), built-in prompts only,
/// `loop.probes` as `--verify` sets it. Eval made the scratch crates it reviews, so they count
/// as trusted (trusted by the command line): probes and the check may run without a sandbox.
fn mode_services(args: &EvalArgs) -> Result<Vec<ModeService>, String> {
    let mut layers = crate::config::Layers::default();
    layers.load_files(None);
    layers.set(crate::config::Source::CommandLine, args.flags.layer());
    layers.grant_trust(crate::config::TrustedBy::CommandLine);
    let mut resolved = layers.resolve();
    if let Some(probes) = args.verify.probes() {
        resolved.config.refine_loop.probes = probes;
    }
    resolved.config.provider.use_every_core();
    // Every task is reviewed afresh: no cache; built-in prompts only.
    resolved.config.cache.enabled = false;
    let prompts = Arc::new(Prompts::load_from(&[]));
    let small = ReviewService::new(resolved.clone(), None, prompts.clone(), None)
        .providers()?
        .critic
        .is_small_model();
    let setups = mode_setups(args, resolved.config.refine_loop.strategy.resolve(small));
    let mut services = Vec::new();
    for m in setups {
        let mut r = resolved.clone();
        r.config.refine_loop.strategy = m.strategy;
        if let Some(n) = m.max_iterations {
            r.config.refine_loop.max_iterations = n;
        }
        let service = ReviewService::new(r, None, prompts.clone(), None);
        let model = service.providers()?.describe();
        services.push(ModeService {
            name: m.name,
            service,
            model,
        });
    }
    Ok(services)
}

/// What `--out` already holds for this model, verification and docs (with `--resume`), and the file
/// the new results go to (appended to with `--resume`, else started afresh).
fn open_results(args: &EvalArgs, model: &str) -> Result<(Vec<TaskResult>, Option<File>), String> {
    let Some(path) = &args.out else {
        return Ok((Vec::new(), None));
    };
    let mut results = Vec::new();
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
            .filter(|r| r.made_with(args.verify, args.docs, model))
            .collect();
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(args.resume)
        .write(true)
        .truncate(!args.resume)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((results, Some(file)))
}

/// The task runs (task, index of its mode's service) not in `results` yet. Task by task,
/// every mode of a task before the next task: an interrupted run leaves whole tasks behind.
fn pending<'t>(
    args: &EvalArgs,
    tasks: &'t [Task],
    services: &[ModeService],
    results: &[TaskResult],
) -> Vec<(&'t Task, usize)> {
    let done = |task: &str, mode: &str| results.iter().any(|r| r.task_id == task && r.mode == mode);
    let work: Vec<(&Task, usize)> = tasks
        .iter()
        .flat_map(|t| (0..services.len()).map(move |m| (t, m)))
        .filter(|(t, m)| !done(&t.task_id, &services[*m].name))
        .collect();
    if args.resume && work.len() < tasks.len() * services.len() {
        eprintln!(
            "refine-ls: resuming: {} of {} task runs already in the file",
            tasks.len() * services.len() - work.len(),
            tasks.len() * services.len()
        );
    }
    work
}

/// Runs `work`, `--jobs` task runs at a time; each result is said on stderr, appended to
/// `out_file` as it finishes, and added to `results`.
async fn run_work(
    args: &EvalArgs,
    work: Vec<(&Task, usize)>,
    services: &[ModeService],
    out_file: &mut Option<File>,
    results: &mut Vec<TaskResult>,
) -> Result<(), String> {
    let total = work.len();
    let setting = Setting {
        verify: args.verify,
        docs: args.docs,
    };
    let mut stream = futures::stream::iter(work.into_iter().map(|(task, m)| {
        let ModeService {
            name,
            service,
            model,
        } = &services[m];
        async move { run_task(task, name, model, setting, service).await }
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
    Ok(())
}

/// Keeps the results of this run's tasks and modes, one per task and mode, in the tasks'
/// order, then the modes'.
fn keep_this_run(results: &mut Vec<TaskResult>, tasks: &[Task], wanted: &[&str]) {
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
}

/// The report on stdout: every result and every mode's summary, as `--format` asks.
fn write_report(
    args: &EvalArgs,
    model: &str,
    wanted: &[&str],
    results: &[TaskResult],
) -> Result<(), String> {
    let summaries = summaries(results, wanted);
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        Format::Json => serde_json::to_writer_pretty(
            &mut out,
            &json!({
                "verify": args.verify,
                "docs": args.docs,
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
        Format::Text => print_table(&mut out, results, &summaries),
    };
    written.map_err(|e| format!("cannot write the output: {e}"))
}

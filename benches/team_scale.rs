//! `review --diff --jobs N` against llama.cpp's own server with `n_parallel` slots (continuous
//! batching, `xllamacpp` from PyPI): the throughput curve for N = 1, 2, 4 on a change of one edited
//! function in each of 12 files, with the 0.5B model (issue 29). refine-ls sends N requests at
//! once and the server batches them; nothing is serialised in front of it. The real binary, run
//! as CI runs it, with the review cache off (`--force`).
//!
//! ```sh
//! cargo bench --bench team_scale -- [--model FILE.gguf] [--threads 2] [--runs 2] [--files 12]
//! ```
//! `--model` defaults to `qwen2.5-coder-0.5b-instruct-q4_k_m.gguf` in the models folder
//! (`refine-ls model pull qwen2.5-coder-0.5b`); the server's Python comes from
//! `REFINE_TEST_LLAMA_PYTHON` (default `.tools/llama/bin/python`).

#[path = "../tests/support/mod.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::time::Instant;

use harness::llama_server::LlamaServer;

struct Opts {
    model: PathBuf,
    threads: usize,
    runs: usize,
    files: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        model: refine_ls::models::default_model_path()
            .and_then(|p| {
                p.parent()
                    .map(|d| d.join("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
            })
            .unwrap_or_default(),
        threads: 2,
        runs: 2,
        files: 12,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |d: usize| args.next().and_then(|n| n.parse().ok()).unwrap_or(d);
        match a.as_str() {
            "--model" => o.model = args.next().map(PathBuf::from).unwrap_or_default(),
            "--threads" => o.threads = num(2),
            "--runs" => o.runs = num(2),
            "--files" => o.files = num(12),
            _ => {}
        }
    }
    o
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One `review --diff main --jobs N` of `repo` against the server: wall seconds, regions
/// reviewed and model calls (from the JSON report), whether it exited cleanly.
fn review(repo: &Path, base_url: &str, jobs: usize) -> (f64, u64, u64, bool) {
    let out = repo.join("team.json");
    let started = Instant::now();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_refine-ls"))
        .args([
            "review",
            "--diff",
            "main",
            "--format",
            "json",
            "--force",
            "--provider",
            "openai",
            "--model",
            "qwen",
            "--jobs",
        ])
        .arg(jobs.to_string())
        .arg("--output")
        .arg(&out)
        .current_dir(repo)
        .env_remove("OPENAI_API_KEY")
        .env("OPENAI_BASE_URL", base_url)
        .env("REFINE_LS_CONFIG", harness::test_config())
        .env("REFINE_LS_CACHE_DIR", repo.join(".cache-bench"))
        .env("REFINE_LS_DATA_DIR", repo.join(".data-bench"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run refine-ls");
    let wall = started.elapsed().as_secs_f64();
    let report: serde_json::Value = std::fs::read_to_string(&out)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let summary = &report["summary"];
    let errors = summary["errors"].as_array().map_or(1, Vec::len);
    (
        wall,
        summary["regions"].as_u64().unwrap_or(0),
        summary["llm_calls"].as_u64().unwrap_or(0),
        status.code().is_some_and(|c| c <= 1) && errors == 0,
    )
}

fn main() {
    let o = opts();
    if !o.model.is_file() {
        eprintln!(
            "no model at {} (`refine-ls model pull qwen2.5-coder-0.5b` fetches it)",
            o.model.display()
        );
        return;
    }
    let repo = harness::repo::many_files(o.files);
    let server = LlamaServer::start_parallel(&o.model, 4 * 4096, o.threads, 4);
    println!(
        "model {} · llama.cpp server, 4 slots, {} threads · {} files, one region each · {} runs\n",
        o.model.display(),
        o.threads,
        o.files,
        o.runs
    );
    println!(
        "| --jobs | wall s (median) | regions | model calls | regions/min | vs --jobs 1 | clean |"
    );
    println!("|---|---|---|---|---|---|---|");
    // Once first, so the server's prompt cache holds the shared system prompt for all.
    let _ = review(repo.path(), &server.base_url(), 1);
    let mut first = None;
    for jobs in [1, 2, 4] {
        let mut walls = Vec::new();
        let (mut regions, mut calls, mut clean) = (0, 0, true);
        for _ in 0..o.runs {
            let (wall, r, c, ok) = review(repo.path(), &server.base_url(), jobs);
            walls.push(wall);
            (regions, calls) = (r, c);
            clean &= ok;
        }
        let wall = median(walls);
        let per_min = regions as f64 * 60.0 / wall;
        let base = *first.get_or_insert(per_min);
        println!(
            "| {jobs} | {wall:.1} | {regions} | {calls} | {per_min:.1} | {:.2}× | {} |",
            per_min / base,
            if clean { "yes" } else { "**no**" }
        );
    }
}

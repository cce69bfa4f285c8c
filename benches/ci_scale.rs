//! `review --diff` at team scale (issue 16): a synthetic change of one edited function in each
//! of 200 files, against the scripted model on 127.0.0.1 answering every review after 200 ms
//! ("no issues": one call per file). For `--jobs 1/4/16/64` (and `--jobs 16 --rpm 1200`, the
//! limiter holding 20 requests a second; and 1,000 files at `--jobs 64`, memory against the size of
//! the change): wall time, requests per second at the mock (mean over the run, and the busiest
//! second), and the process's peak RSS (`wait4`'s `ru_maxrss`). The real binary, run as CI runs it.
//!
//! ```sh
//! cargo bench --bench ci_scale                # about a minute
//! cargo bench --bench ci_scale -- --smoke     # seconds: checks it runs, not the numbers
//! ```

#[path = "../tests/support/mod.rs"]
mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

use harness::mock_llm::{MockLlm, Reply, Script};
use serde_json::json;

/// One measured configuration.
struct Row {
    files: usize,
    flags: Vec<String>,
    wall: f64,
    requests: usize,
    mean_rps: f64,
    busiest: usize,
    peak_rss_mb: f64,
    ok: bool,
}

/// The most requests at the mock within any one second.
fn busiest_second(at: &[Instant]) -> usize {
    at.iter()
        .map(|t0| {
            at.iter()
                .filter(|t| **t >= *t0 && t.duration_since(*t0) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Runs `refine-ls review --diff main` in `repo` with `flags`; its exit status, wall time and peak
/// RSS in MiB.
fn run(repo: &Path, base_url: &str, flags: &[String]) -> (bool, f64, f64) {
    let log = repo.join("bench.log");
    let out = repo.join("bench.json");
    let started = Instant::now();
    // Reaped by `wait4` below, which also gives its peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_refine-ls"))
        .args([
            "review", "--diff", "main", "--format", "json", "--force", "--output",
        ])
        .arg(&out)
        .args(flags)
        .current_dir(repo)
        .env_remove("OPENAI_API_KEY")
        .env("OPENAI_BASE_URL", base_url)
        .env(
            "REFINE_LS_CONFIG",
            "/nonexistent/refine-ls-bench-config.toml",
        )
        .env("REFINE_LS_CACHE_DIR", repo.join(".cache-bench"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn refine-ls");
    let pid = i32::try_from(child.id()).expect("a pid");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct, and `wait4` writes it
    // for the child just spawned, which is reaped here (its `Child` is never waited on).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(reaped, pid, "wait4");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        eprintln!(
            "ci_scale: refine-ls {flags:?} failed: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    // Linux reports kilobytes.
    #[allow(clippy::cast_precision_loss)]
    let rss = usage.ru_maxrss as f64 / 1024.0;
    (ok, wall, rss)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke")
        || std::env::var_os("REFINE_BENCH_SMOKE").is_some();
    let (files, big, latency) = if smoke {
        (20, 40, 20)
    } else {
        (200, 1000, 200)
    };
    let configs: Vec<(usize, Vec<&str>)> = vec![
        (files, vec!["--jobs", "1"]),
        (files, vec!["--jobs", "4"]),
        (files, vec!["--jobs", "16"]),
        (files, vec!["--jobs", "64"]),
        (files, vec!["--jobs", "16", "--rpm", "1200"]),
        (big, vec!["--jobs", "64"]),
    ];
    let mut repos = std::collections::BTreeMap::new();
    let mut rows = Vec::new();
    for (n, flags) in configs {
        let repo = repos
            .entry(n)
            .or_insert_with(|| harness::repo::many_files(n));
        let mock = MockLlm::start(Script {
            critique: vec![Reply::findings(json!([])).delayed(latency)].into(),
            ..Script::default()
        })
        .await;
        let flags: Vec<String> = flags.iter().map(|s| (*s).to_owned()).collect();
        let (ok, wall, peak_rss_mb) =
            tokio::task::block_in_place(|| run(repo.path(), &mock.base_url, &flags));
        let at: Vec<Instant> = mock.recorded().iter().map(|r| r.at).collect();
        let span = match (at.first(), at.last()) {
            (Some(a), Some(b)) => b.duration_since(*a).as_secs_f64(),
            _ => 0.0,
        };
        #[allow(clippy::cast_precision_loss)]
        let mean_rps = if span > 0.0 {
            at.len() as f64 / span
        } else {
            0.0
        };
        let row = Row {
            files: n,
            flags,
            wall,
            requests: at.len(),
            mean_rps,
            busiest: busiest_second(&at),
            peak_rss_mb,
            ok: ok && at.len() == n,
        };
        eprintln!(
            "ci_scale: {} files {}: {:.2} s",
            row.files,
            row.flags.join(" "),
            row.wall
        );
        rows.push(row);
    }
    let base = rows.first().map_or(1.0, |r| r.wall);
    println!(
        "\n| files | flags | wall (s) | speed-up | requests | mean req/s at the mock | busiest second | peak RSS (MiB) | every file reviewed once |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | `{}` | {:.2} | {:.1}x | {} | {:.1} | {} | {:.0} | {} |",
            r.files,
            r.flags.join(" "),
            r.wall,
            base / r.wall * (r.files as f64 / files as f64),
            r.requests,
            r.mean_rps,
            r.busiest,
            r.peak_rss_mb,
            if r.ok { "yes" } else { "NO" }
        );
    }
    println!(
        "\nmock latency {latency} ms; speed-up is files per second over `--jobs 1`'s; {} cores",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    if rows.iter().any(|r| !r.ok) {
        eprintln!("ci_scale: a run failed or did not review every file once");
        std::process::exit(1);
    }
}

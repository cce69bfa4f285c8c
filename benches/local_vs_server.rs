//! The embedded model against llama.cpp's own server, side by side in one run: the same GGUF,
//! the same prompt tokens, the same thread count. The server (`xllamacpp`, PyPI) reports its
//! own prompt and generation speeds (`timings`); ours come from the same llama.cpp linked
//! in-process. Then a whole review of `examples/buggy_sum.rs` over the real LSP transport with
//! the prefix cold and warm (time to the first diagnostic, whole review, peak RSS), and the
//! prompt tokens processed per call with and without prefix reuse.
//!
//! ```sh
//! cargo bench --bench local_vs_server -- --model FILE.gguf [--threads 1,2] [--runs 3] [--review]
//! (`--only-review`: the LSP review of `examples/buggy_sum.rs` alone; `--settle S`: the client
//! waits S seconds after opening the file before the first review)
//! ```
//! `--model` defaults to the default model in the models folder; the server comes from
//! `REFINE_TEST_LLAMA_PYTHON` (default `.tools/llama/bin/python`).

#[path = "../tests/support/mod.rs"]
mod harness;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use harness::llama_server::LlamaServer;
use harness::lsp_client::LspClient;
use refine_ls::llm::local::LocalModel;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Opts {
    model: PathBuf,
    threads: Vec<usize>,
    runs: usize,
    review: bool,
    answer: usize,
    /// Seconds the client waits after opening the file before the cold review (the user
    /// picking lines while the server warms up).
    settle: u64,
}

fn opts() -> Opts {
    let mut o = Opts {
        model: refine_ls::models::default_model_path().unwrap_or_default(),
        threads: vec![1, 2],
        runs: 3,
        review: false,
        answer: 64,
        settle: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--model" => o.model = args.next().map(PathBuf::from).unwrap_or_default(),
            "--threads" => {
                o.threads = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|t| t.parse().ok())
                    .collect();
            }
            "--runs" => o.runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(3),
            "--answer" => o.answer = args.next().and_then(|n| n.parse().ok()).unwrap_or(64),
            "--review" => o.review = true,
            "--settle" => o.settle = args.next().and_then(|n| n.parse().ok()).unwrap_or(0),
            "--only-review" => {
                o.review = true;
                o.threads.clear();
            }
            _ => {}
        }
    }
    o
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A review-sized prompt: the critic's system prompt and `examples/buggy_sum.rs` three times.
fn prompt_text() -> (String, String) {
    let code = std::fs::read_to_string(root().join("examples/buggy_sum.rs")).unwrap_or_default();
    let system = std::fs::read_to_string(root().join("prompts/critique_system.md"))
        .unwrap_or_default()
        + &std::fs::read_to_string(root().join("prompts/principles.md")).unwrap_or_default();
    (system, format!("Review:\n```rust\n{code}{code}{code}```"))
}

/// (prompt tok/s, generation tok/s) of one in-process answer, the prompt processed whole.
fn ours(model: &LocalModel, prompt: &str, answer: usize) -> (f64, f64, usize) {
    // A distinct first token each run, so nothing is reused from the previous run.
    let salted = format!("{} {prompt}", fastrand::u32(..));
    // Plain decoding, as the server decodes (prompt lookup is measured by `benches/drafting.rs`).
    let out = model
        .generate_with(
            &salted,
            None,
            answer,
            0.0,
            refine_ls::llm::local::Decoding::Plain,
            &CancellationToken::new(),
            &mut |_| {},
        )
        .expect("the embedded model answers");
    (
        out.prompt_processed as f64 / out.prompt_secs,
        out.completion_tokens as f64 / out.generate_secs,
        out.prompt_processed,
    )
}

/// (prompt tok/s, generation tok/s) from the server's own timings for the same prompt text.
async fn theirs(http: &reqwest::Client, port: u16, prompt: &str, answer: usize) -> (f64, f64, u64) {
    let salted = format!("{} {prompt}", fastrand::u32(..));
    let body = json!({"prompt": salted, "n_predict": answer, "temperature": 0.0,
        "cache_prompt": false, "ignore_eos": true});
    let v: Value = http
        .post(format!("http://127.0.0.1:{port}/completion"))
        .json(&body)
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("JSON");
    let t = &v["timings"];
    (
        t["prompt_per_second"].as_f64().unwrap_or(f64::NAN),
        t["predicted_per_second"].as_f64().unwrap_or(f64::NAN),
        t["prompt_n"].as_u64().unwrap_or(0),
    )
}

fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// One review of `examples/buggy_sum.rs` over stdio: (first diagnostic s, whole s, finished).
async fn review(client: &LspClient, uri: &str, code: &str, settle: u64) -> (f64, f64, Value) {
    client.open(uri, "rust", code).await;
    tokio::time::sleep(Duration::from_secs(settle)).await;
    let lines = code.lines().count() as u32;
    let started = Instant::now();
    let id = client
        .review_forced(
            uri,
            json!({"start": {"line": 0, "character": 0}, "end": {"line": lines, "character": 0}}),
        )
        .await;
    let mut first = None;
    loop {
        if first.is_none() && !client.diagnostics(uri).is_empty() {
            first = Some(started.elapsed().as_secs_f64());
        }
        let done = client
            .notifications("refine/reviewFinished")
            .into_iter()
            .find(|n| n["reviewId"] == id.as_str());
        if let Some(done) = done {
            let whole = started.elapsed().as_secs_f64();
            return (first.unwrap_or(f64::NAN), whole, done);
        }
        if started.elapsed() > Duration::from_secs(900) {
            return (f64::NAN, f64::NAN, Value::Null);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn review_bench(model: &std::path::Path, settle: u64) {
    let code = std::fs::read_to_string(root().join("examples/buggy_sum.rs")).unwrap_or_default();
    let client = LspClient::start(&[]);
    client
        .initialize(
            json!({"window": {"workDoneProgress": true}}),
            json!({"refine": {"provider": {"kind": "local", "model_path": model, "threads": 2, "timeout_secs": 900},
                              "cache": {"enabled": false}}}),
        )
        .await;
    // Cold: the first review right after initialize (the warm-up has just begun).
    let (cold_first, cold_whole, cold) =
        review(&client, "file:///bench/cold.rs", &code, settle).await;
    // Warm: the critic's head is in the KV cache now.
    let (warm_first, warm_whole, warm) = review(&client, "file:///bench/warm.rs", &code, 0).await;
    let rss = peak_rss_mb(client.pid().unwrap_or(0));
    println!("\nbuggy_sum.rs review, {} on 2 threads:", model.display());
    println!(
        "| | first diagnostic | whole review | llm calls | prompt tokens sent | reused from the cache | findings | revision |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, first, whole, done) in [
        ("cold", cold_first, cold_whole, &cold),
        ("warm", warm_first, warm_whole, &warm),
    ] {
        println!(
            "| {name} | {first:.1} s | {whole:.1} s | {} | {} | {} | {} | {} |",
            done["llmCalls"],
            done["inputTokens"],
            done["reusedInputTokens"],
            done["findings"],
            done["revision"]
        );
    }
    println!("peak RSS of the server: {rss:.0} MB");
    println!(
        "diagnostics: {}",
        json!(client.diagnostics("file:///bench/warm.rs"))
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = opts();
    // `cargo bench` passes --bench; under `cargo test` this measures nothing.
    if !std::env::args().any(|a| a == "--bench") {
        println!("local_vs_server: a benchmark; run it with cargo bench --bench local_vs_server");
        return;
    }
    if !o.model.is_file() {
        println!(
            "local_vs_server: no model at {}; skipped",
            o.model.display()
        );
        return;
    }
    if o.threads.is_empty() {
        review_bench(&o.model, o.settle).await;
        return;
    }
    let (system, user) = prompt_text();
    let http = reqwest::Client::new();
    println!(
        "embedded (in-process) vs llama.cpp server, {} , {} answer tokens, {} runs each, medians",
        o.model.display(),
        o.answer,
        o.runs
    );
    println!(
        "| threads | prompt tokens | prompt tok/s ours | server | ratio | gen tok/s ours | server | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &threads in &o.threads {
        let model = LocalModel::open(&o.model, threads, 0).expect("the model loads");
        let prompt = model.prompt(&[("system", &system), ("user", &user)]);
        let srv = LlamaServer::start(&o.model, 8192, threads);
        let (mut op, mut og, mut tp, mut tg) = (vec![], vec![], vec![], vec![]);
        let mut n_tokens = 0;
        // Warm both once (page cache, allocations), then alternate.
        let _ = ours(&model, &prompt, 4);
        let _ = theirs(&http, srv.port, &prompt, 4).await;
        for _ in 0..o.runs {
            let (p, g, n) = ours(&model, &prompt, o.answer);
            op.push(p);
            og.push(g);
            n_tokens = n;
            let (p, g, _) = theirs(&http, srv.port, &prompt, o.answer).await;
            tp.push(p);
            tg.push(g);
        }
        let (op, og, tp, tg) = (median(op), median(og), median(tp), median(tg));
        println!(
            "| {threads} | {n_tokens} | {op:.1} | {tp:.1} | {:.2}x | {og:.1} | {tg:.1} | {:.2}x |",
            op / tp,
            og / tg
        );
        drop(srv);
    }
    // Prefix reuse: the same head, another selection.
    let model = LocalModel::open(&o.model, 2, 0).expect("the model loads");
    let a = model.prompt(&[("system", &system), ("user", &user)]);
    let b = model.prompt(&[
        ("system", &system),
        ("user", "Review:\n```rust\nfn one() -> i32 { 1 }\n```"),
    ]);
    let first = model
        .generate(&a, None, 1, 0.0, &CancellationToken::new(), &mut |_| {})
        .expect("answers");
    let second = model
        .generate(&b, None, 1, 0.0, &CancellationToken::new(), &mut |_| {})
        .expect("answers");
    println!(
        "\nprefix reuse (2 threads): first call processed {} of {} prompt tokens in {:.1} s; the next call with the same head {} of {} in {:.1} s",
        first.prompt_processed,
        first.prompt_tokens,
        first.prompt_secs,
        second.prompt_processed,
        second.prompt_tokens,
        second.prompt_secs
    );
    if o.review {
        review_bench(&o.model, o.settle).await;
    }
}

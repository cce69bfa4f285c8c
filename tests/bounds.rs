//! What a server or a command line may send that refine-ls must bound (issue 26, "Bounds and
//! numbers"): absurd usage under a token limit, a redirect to another host, an endless line
//! or error body, and a `--diff` revision that is really a git option. Each runs the real
//! binary against real HTTP on 127.0.0.1 and asserts that it ends, with the right error.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use serde_json::json;
use support::mock_llm::{MockLlm, Reply, Script};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CODE: &str = "fn sum(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 1..xs.len() { s += xs[i]; }\n    s\n}\n";
const FIXED: &str = "fn sum(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 0..xs.len() { s += xs[i]; }\n    s\n}\n";

/// How long a run may take before the test calls it hung (the runs here take seconds).
const DEADLINE: Duration = Duration::from_secs(90);

/// How a run ended.
struct Ended {
    /// Exit code (`None`: killed at the deadline, or by a signal).
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// Whether it ended by itself before [`DEADLINE`].
    in_time: bool,
}

impl Ended {
    /// Both streams, for looking for a message wherever the format puts it.
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `refine-ls args` in `dir` with the user config `config` (TOML) and `env`, off the async
/// runtime (the servers keep serving), killing it at [`DEADLINE`]. Output goes to files, so a
/// chatty run never blocks on a full pipe.
async fn run(dir: &Path, args: &[&str], config: &str, env: &[(&str, &str)]) -> Ended {
    let config_path = dir.join("user-config.toml");
    std::fs::write(&config_path, config).unwrap();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let out_path = dir.join(".stdout");
        let err_path = dir.join(".stderr");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_refine-ls"))
            .args(&args)
            .current_dir(&dir)
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("ANTHROPIC_API_KEY")
            .envs(env)
            .env("REFINE_LS_CONFIG", &config_path)
            .env("REFINE_LS_CACHE_DIR", dir.join(".cache-test"))
            .env("REFINE_LS_DATA_DIR", dir.join(".data-test"))
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .expect("run refine-ls");
        let started = Instant::now();
        let (status, in_time) = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break (s, true);
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                break (child.wait().unwrap(), false);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Ended {
            code: status.code(),
            stdout: std::fs::read_to_string(out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(err_path).unwrap_or_default(),
            in_time,
        }
    })
    .await
    .expect("join")
}

/// A folder with `sum.rs` holding [`CODE`].
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sum.rs"), CODE).unwrap();
    dir
}

fn assert_no_panic(e: &Ended) {
    assert!(
        e.in_time,
        "the run did not end within {DEADLINE:?}: {}",
        e.all()
    );
    assert_ne!(e.code, Some(101), "panicked: {}", e.all());
    assert!(!e.stderr.contains("panicked"), "{}", e.stderr);
}

/// A whole (not streamed) OpenAI completion saying `content`, with usage of `u64::MAX` tokens.
fn absurd_usage(content: &str) -> Reply {
    Reply::raw(
        &json!({
            "id": "absurd", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX,
                      "total_tokens": u64::MAX,
                      "prompt_tokens_details": {"cached_tokens": u64::MAX}},
        })
        .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn absurd_usage_under_a_token_limit_neither_panics_nor_holds_the_review() {
    let finding = json!({"findings": [{"start_line": 3, "end_line": 3, "quote": "1..xs.len()",
        "severity": "error", "principle": "correctness", "message": "the loop skips xs[0]",
        "confidence": 0.9}]});
    let mock = MockLlm::start(Script {
        critique: vec![
            absurd_usage(&finding.to_string()),
            absurd_usage(&json!({"findings": []}).to_string()),
        ]
        .into(),
        revise: vec![absurd_usage(&format!("```rust\n{FIXED}```"))].into(),
        ..Script::default()
    })
    .await;
    let dir = workspace();
    // A limit high enough that honest estimates never wait; u64::MAX tokens of debt would hold
    // every later call for ages (or overflow the clock).
    let config = format!(
        "[provider]\nkind = \"openai\"\nbase_url = \"{}\"\ntpm = 6000000\nrpm = 100000\n",
        mock.base_url
    );
    let e = run(
        dir.path(),
        &["review", "sum.rs", "--format", "json"],
        &config,
        &[],
    )
    .await;
    assert_no_panic(&e);
    assert!(matches!(e.code, Some(0..=2)), "{:?}: {}", e.code, e.all());
    // More than one call went through the limit after the absurd report.
    assert!(mock.recorded().len() >= 2, "{}", e.all());
    // The report does not repeat the absurd count.
    assert!(!e.stdout.contains(&u64::MAX.to_string()), "{}", e.stdout);
}

/// A server that answers every request with a 307 to `to` (same path), counting them.
async fn redirector(to: String) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().fallback(move |uri: Uri| {
        let to = to.clone();
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, format!("{to}{}", uri.path()))],
            )
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{port}"), hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_to_another_host_is_not_followed_and_the_key_stays_home() {
    // The other host: a model that would answer, and records whatever reaches it.
    let other = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let (endpoint, hits) = redirector(other.root_url.clone()).await;
    let dir = workspace();
    let config = format!(
        "[provider]\nkind = \"anthropic\"\nbase_url = \"{endpoint}\"\nmax_retries = 0\n\n[provider.headers]\nX-Gateway-Secret = \"gateway-secret-123\"\n"
    );
    let e = run(
        dir.path(),
        &["review", "sum.rs", "--format", "json"],
        &config,
        &[("ANTHROPIC_API_KEY", "sk-ant-test-redirect-0123456789")],
    )
    .await;
    assert_no_panic(&e);
    assert!(
        other.recorded().is_empty(),
        "the other host got {:?}",
        other.recorded()
    );
    assert!(hits.load(Ordering::SeqCst) >= 1, "{}", e.all());
    let all = e.all();
    assert!(
        all.contains("redirected to another host") && all.contains("the key is not sent there"),
        "{all}"
    );
    assert!(all.contains(&other.root_url), "names where it led: {all}");
    assert!(!all.contains("sk-ant-test"), "{all}");
    assert_ne!(e.code, Some(0), "{all}");
}

/// What the raw server sends without end.
#[derive(Clone, Copy)]
enum Flood {
    /// `200`, then one SSE `data:` line that never ends.
    Line,
    /// `500`, then an error body that never ends.
    ErrorBody,
    /// A header line that never ends.
    Header,
}

/// A raw HTTP server on 127.0.0.1 that floods every connection (up to 64 MiB, then it holds
/// the connection open and silent until the client goes), and counts connections.
async fn flooder(flood: Flood) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                // The request (its size does not matter: the reply starts anyway).
                let mut buf = vec![0u8; 64 << 10];
                let _ = sock.read(&mut buf).await;
                let head = match flood {
                    Flood::Line => {
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\""
                    }
                    Flood::ErrorBody => {
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n"
                    }
                    Flood::Header => "HTTP/1.1 200 OK\r\nx-flood: ",
                };
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 << 10];
                for _ in 0..1024 {
                    if sock.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                // Silent but open: only the client's own bound ends this.
                let _ = sock.read(&mut buf).await;
            });
        }
    });
    (format!("http://127.0.0.1:{port}/v1"), conns)
}

async fn review_against_flood(flood: Flood) -> (Ended, usize) {
    let (url, conns) = flooder(flood).await;
    let dir = workspace();
    // Timeouts well past the deadline: the bound must end the call, not a timer.
    let config = format!(
        "[provider]\nkind = \"openai\"\nbase_url = \"{url}\"\nmax_retries = 0\ntimeout_secs = 600\nstall_timeout_secs = 600\nfirst_token_timeout_secs = 600\n"
    );
    let e = run(
        dir.path(),
        &["review", "sum.rs", "--format", "json"],
        &config,
        &[],
    )
    .await;
    (e, conns.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_line_ends_the_review_with_an_error() {
    let (e, conns) = review_against_flood(Flood::Line).await;
    assert_no_panic(&e);
    let all = e.all();
    assert!(all.contains("a line longer than 1 MiB"), "{all}");
    assert!(matches!(e.code, Some(1..=2)), "{:?}: {all}", e.code);
    // Not tried again: the same server would send the same.
    assert_eq!(conns, 1, "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_error_body_is_read_only_in_part() {
    let (e, _) = review_against_flood(Flood::ErrorBody).await;
    assert_no_panic(&e);
    let all = e.all();
    assert!(all.contains("HTTP 500"), "{all}");
    assert!(matches!(e.code, Some(1..=2)), "{:?}: {all}", e.code);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_header_line_ends_the_review_with_an_error() {
    let (e, conns) = review_against_flood(Flood::Header).await;
    assert_no_panic(&e);
    let all = e.all();
    assert!(all.contains("could not be reached"), "{all}");
    assert!(matches!(e.code, Some(1..=2)), "{:?}: {all}", e.code);
    assert_eq!(conns, 1, "{all}");
}

/// A repository with one commit of `sum.rs` and a change to it.
fn repo() -> tempfile::TempDir {
    use support::repo::git_ok as git;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    std::fs::write(d.join("sum.rs"), CODE).unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "base"]);
    std::fs::write(d.join("sum.rs"), FIXED).unwrap();
    git(d, &["commit", "-q", "-am", "fix"]);
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diff_revision_that_is_a_git_option_is_refused_and_writes_nothing() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let repo = repo();
    let config = format!(
        "[provider]\nkind = \"openai\"\nbase_url = \"{}\"\n",
        mock.base_url
    );
    let target: PathBuf = repo.path().join("written-by-git.txt");
    let option = format!("--output={}", target.display());
    for args in [
        vec!["review".to_owned(), format!("--diff={option}")],
        vec![
            "review".to_owned(),
            "--diff=main".to_owned(),
            format!("--rev={option}"),
        ],
        vec![
            "review".to_owned(),
            "--staged".to_owned(),
            format!("--diff={option}"),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = run(repo.path(), &args, &config, &[]).await;
        assert_no_panic(&e);
        assert!(
            !target.exists(),
            "{args:?} made git write {}",
            target.display()
        );
        assert_eq!(e.code, Some(2), "{args:?}: {}", e.all());
        assert!(
            e.stderr.contains("is not a revision") && e.stderr.contains("option"),
            "{args:?}: {}",
            e.stderr
        );
    }
    assert!(mock.recorded().is_empty());
}

//! `refine-ls review` as a user runs it, against the scripted model over real HTTP.

mod support;

use std::process::Output;

use serde_json::{Value, json};
use support::mock_llm::{MockLlm, Reply, Script};

const CODE: &str = "fn sum(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 1..xs.len() { s += xs[i]; }\n    s\n}\n";
const FIXED: &str = "fn sum(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 0..xs.len() { s += xs[i]; }\n    s\n}\n";

fn finding() -> Value {
    json!([{"start_line": 3, "end_line": 3, "quote": "1..xs.len()", "severity": "error",
            "principle": "correctness", "message": "the loop skips xs[0]", "confidence": 0.9}])
}

async fn fixing_mock() -> MockLlm {
    MockLlm::start(Script {
        critique: vec![Reply::findings(finding()), Reply::findings(json!([]))].into(),
        revise: vec![Reply::code(FIXED)].into(),
        ..Script::default()
    })
    .await
}

/// A cache folder of its own for each run, so no run answers from another's reviews.
fn fresh_dir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    std::env::temp_dir().join(format!("refine-cli-test-{}-{n}", std::process::id()))
}

/// Runs the binary off the async runtime (the mock keeps serving meanwhile).
async fn run(args: Vec<String>, base_url: &str) -> Output {
    let base_url = base_url.to_owned();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_refine-ls"))
            .args(&args)
            .env_remove("OPENAI_API_KEY")
            .env("OPENAI_BASE_URL", base_url)
            .env("REFINE_LS_CONFIG", support::test_config())
            .env("REFINE_LS_CACHE_DIR", fresh_dir())
            .output()
            .expect("run refine-ls")
    })
    .await
    .expect("join")
}

fn file_with(code: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sum.rs");
    std::fs::write(&path, code).unwrap();
    (dir, path.display().to_string())
}

/// `review --format json` of a file holding `code` in a workspace whose `.refine.toml` asks
/// for no revision (the critique alone).
async fn critique_as_json(mock: &MockLlm, code: &str) -> Output {
    let (dir, path) = file_with(code);
    std::fs::write(
        dir.path().join(".refine.toml"),
        "[loop]\nmax_iterations = 0\n",
    )
    .unwrap();
    run(
        vec!["review".into(), path, "--format".into(), "json".into()],
        &mock.base_url,
    )
    .await
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn text_output_lists_findings_and_the_revision_diff() {
    let mock = fixing_mock().await;
    let (_dir, path) = file_with(CODE);
    let out = run(vec!["review".into(), path.clone()], &mock.base_url).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "findings exit 1; stderr: {}",
        text(&out.stderr)
    );
    assert!(
        stdout.starts_with(&format!(
            "{path}:3:14: warning: the loop skips xs[0] [correctness]\n"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("revision (fixes 1 of 1 findings)"));
    assert!(
        stdout.contains(
            "-    for i in 1..xs.len() { s += xs[i]; }\n+    for i in 0..xs.len() { s += xs[i]; }"
        ),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("critique 1/3"),
        "progress on stderr"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        CODE,
        "no --apply, no change"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_output_is_one_object() {
    let mock = fixing_mock().await;
    let (_dir, path) = file_with(CODE);
    let out = run(
        vec!["review".into(), path, "--format".into(), "json".into()],
        &mock.base_url,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    assert_eq!(v["findings"][0]["line"], 3);
    assert_eq!(v["findings"][0]["column"], 14);
    assert_eq!(v["findings"][0]["end_column"], 25);
    assert_eq!(
        v["findings"][0]["severity"], "warning",
        "an unbacked error is capped"
    );
    assert_eq!(v["llm_calls"], 3);
    assert_eq!(v["usage"]["input_tokens"], 300);
    assert_eq!(v["revision"]["fixes"], 1);
    assert!(
        v["revision"]["diff"]
            .as_str()
            .unwrap()
            .contains("+    for i in 0..xs.len()")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_writes_the_revision() {
    let mock = fixing_mock().await;
    let (_dir, path) = file_with(CODE);
    let out = run(
        vec!["review".into(), path.clone(), "--apply".into()],
        &mock.base_url,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), FIXED);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_findings_exit_zero_and_lines_limit_the_review() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let (_dir, path) = file_with(CODE);
    let out = run(
        vec![
            "review".into(),
            path.clone(),
            "--lines".into(),
            "2:3".into(),
        ],
        &mock.base_url,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{path}: no issues\n"));
    let user = mock.requests()[0]["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        user.contains("lines 2-3") && user.contains("    3 |     for i in 1..xs.len()"),
        "{user}"
    );
    assert!(
        user.contains("    1 | fn sum"),
        "context before the selection: {user}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_exit_two_with_one_clear_sentence() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::status(
            500,
            r#"{"error":{"message":"model overloaded"}}"#,
        )]
        .into(),
        ..Script::default()
    })
    .await;
    let (_dir, path) = file_with(CODE);
    let out = run(vec!["review".into(), path.clone()], &mock.base_url).await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("HTTP 500: model overloaded"), "{err}");
    assert!(out.stdout.is_empty());

    for bad in [
        vec!["review".to_owned(), "/nonexistent/file.rs".to_owned()],
        vec![
            "review".into(),
            path.clone(),
            "--lines".into(),
            "9:2".into(),
        ],
    ] {
        let out = run(bad, &mock.base_url).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out.stderr).starts_with("refine-ls: "),
            "{}",
            text(&out.stderr)
        );
    }
    let out = run(
        vec!["review".into(), path, "--model".into(), "m".into()],
        "https://llm.example.invalid/v1",
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("OPENAI_API_KEY"));
}

#[tokio::test(flavor = "multi_thread")]
async fn flags_override_the_environment_and_version_prints() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let (_dir, path) = file_with(CODE);
    let out = run(
        vec![
            "review".into(),
            path,
            "--base-url".into(),
            mock.base_url.clone(),
            "--model".into(),
            "tiny-coder".into(),
        ],
        "http://127.0.0.1:9/v1",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(mock.requests()[0]["model"], "tiny-coder");

    let out = run(vec!["--version".into()], &mock.base_url).await;
    assert_eq!(
        text(&out.stdout).trim(),
        format!("refine-ls {}", env!("CARGO_PKG_VERSION"))
    );
}

async fn run_env(args: Vec<String>, envs: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_refine-ls"))
            .args(&args)
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("OLLAMA_HOST")
            .env("REFINE_LS_CONFIG", support::test_config())
            .env("REFINE_LS_CACHE_DIR", fresh_dir())
            .envs(envs)
            .current_dir(std::env::temp_dir())
            .output()
            .expect("run refine-ls")
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_on_each_kind_of_provider() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        reject_structured: vec!["json_schema".into()],
        ..Script::default()
    })
    .await;
    for (kind, url, env, mode) in [
        ("openai", mock.base_url.clone(), vec![], "json_object"),
        (
            "anthropic",
            mock.root_url.clone(),
            vec![(
                "ANTHROPIC_API_KEY".to_owned(),
                "sk-ant-test-000000000000000000000".to_owned(),
            )],
            "prompt only",
        ),
        ("ollama", mock.root_url.clone(), vec![], "json_object"),
    ] {
        let out = run_env(
            vec![
                "doctor".into(),
                "--provider".into(),
                kind.into(),
                "--base-url".into(),
                url.clone(),
                "--model".into(),
                "mock-model".into(),
            ],
            env,
        )
        .await;
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{kind}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains(&format!("provider.kind = \"{kind}\"  (command line)")),
            "{stdout}"
        );
        assert!(
            stdout.contains("loop.max_iterations = 2  (default)"),
            "{stdout}"
        );
        assert!(stdout.contains("reachable: yes"), "{stdout}");
        assert!(stdout.contains("model mock-model: served"), "{stdout}");
        assert!(
            stdout.contains(&format!("structured output: {mode}")),
            "{kind}: {stdout}"
        );
        assert!(stdout.contains("ok: refine-ls can review"), "{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_fails_with_a_reason() {
    let mock = MockLlm::start(Script::default()).await;
    let out = run_env(
        vec![
            "doctor".into(),
            "--base-url".into(),
            mock.base_url.clone(),
            "--model".into(),
            "gpt-9".into(),
            "--no-probe".into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("model gpt-9: NOT served (it serves: mock-model)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("set provider.model (or --model)"),
        "{stdout}"
    );

    let out = run_env(
        vec![
            "doctor".into(),
            "--base-url".into(),
            "http://127.0.0.1:9/v1".into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("reachable: no") && stdout.contains("could not be reached"),
        "{stdout}"
    );

    let out = run_env(
        vec!["doctor".into(), "--provider".into(), "anthropic".into()],
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("ANTHROPIC_API_KEY"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finding_whose_quote_is_its_message_is_not_shown_and_the_user_is_told() {
    let message = "The loop skips the first element of the slice.";
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([{"start_line": 3, "end_line": 3,
            "quote": message, "severity": "error", "principle": "correctness",
            "message": message, "confidence": 0.9}]))]
        .into(),
        ..Script::default()
    })
    .await;
    let (_dir, path) = file_with(CODE);
    let out = run(vec!["review".into(), path.clone()], &mock.base_url).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Not "no issues": the model did report something.
    assert_eq!(
        text(&out.stdout),
        format!(
            "{path}: no findings shown\n(1 finding not shown: its quote repeats its message instead of quoting the code)\n"
        )
    );
    let out = run(
        vec!["review".into(), path, "--format".into(), "json".into()],
        &mock.base_url,
    )
    .await;
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["quote_is_message"], 1, "{report}");
    assert_eq!(report["unanchored"], 0, "{report}");
    assert_eq!(
        report["not_shown"],
        json!(["1 finding not shown: its quote repeats its message instead of quoting the code"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn at_most_max_findings_are_shown_the_most_severe_first() {
    // 30 hints on line 2, then one error on line 3: the error comes first, 20 are shown.
    let mut items: Vec<Value> = (0..30)
        .map(|i| {
            json!({"start_line": 2, "end_line": 2, "quote": "let mut s", "severity": "hint",
                   "principle": "readability", "message": format!("hint number {i}"),
                   "confidence": 0.9})
        })
        .collect();
    items.push(
        json!({"start_line": 3, "end_line": 3, "quote": "1..xs.len()",
        "severity": "error", "principle": "correctness", "message": "the loop skips xs[0]",
        "confidence": 0.9}),
    );
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(Value::Array(items))].into(),
        ..Script::default()
    })
    .await;
    let out = critique_as_json(&mock, CODE).await;
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 20, "{report}");
    assert_eq!(findings[0]["message"], "the loop skips xs[0]");
    assert_eq!(
        findings[1]["message"], "hint number 0",
        "the model's order among equals"
    );
    assert_eq!(report["over_limit"], 11);
    assert_eq!(
        report["not_shown"],
        json!(["11 findings not shown: over loop.max_findings (the least severe)"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_finding_ends_the_critique() {
    let same = json!({"start_line": 3, "end_line": 3, "quote": "1..xs.len()",
        "severity": "error", "principle": "correctness", "message": "the loop skips xs[0]",
        "confidence": 0.9});
    let other = json!({"start_line": 2, "end_line": 2, "quote": "let mut s",
        "severity": "warning", "principle": "readability", "message": "after the repeat",
        "confidence": 0.9});
    let mock = MockLlm::start(Script {
        critique: vec![
            Reply::findings(json!([same.clone(), same.clone(), same, other])).streamed(8, 64, 5),
        ]
        .into(),
        ..Script::default()
    })
    .await;
    let out = critique_as_json(&mock, CODE).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["message"], "the loop skips xs[0]");
    assert!(report["repeated"].as_u64().unwrap_or(0) >= 1, "{report}");
    assert!(
        report["notes"].to_string().contains("repeating"),
        "the model was stopped at the repeat: {report}"
    );
    assert!(!report.to_string().contains("after the repeat"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finding_claiming_lines_far_outside_is_not_placed_on_lookalike_code() {
    // The file is 5 lines; `}` and `-> i32 {` are in it, but the claims are about line 100 and
    // a line 40 away: neither may land on the selection's brace or signature.
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([
            {"start_line": 100, "end_line": 100, "quote": "}", "severity": "warning",
             "principle": "correctness", "message": "unbalanced", "confidence": 0.9},
            {"start_line": 45, "end_line": 45, "quote": "-> i32 {", "severity": "warning",
             "principle": "correctness", "message": "wrong return type", "confidence": 0.9}
        ]))]
        .into(),
        ..Script::default()
    })
    .await;
    let out = critique_as_json(&mock, CODE).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["findings"], json!([]), "{report}");
    assert_eq!(report["out_of_selection"], 2, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_samples_a_finding_is_shown_only_when_most_samples_agree() {
    let at = |line: u64, quote: &str, message: &str| {
        json!({"start_line": line, "end_line": line, "quote": quote, "severity": "warning",
               "principle": "correctness", "message": message, "confidence": 0.9})
    };
    let skip = at(3, "1..xs.len()", "the loop skips xs[0]");
    let mock = MockLlm::start(Script {
        critique: vec![
            Reply::findings(json!([
                skip.clone(),
                at(2, "let mut s = 0;", "s may overflow")
            ])),
            Reply::findings(json!([at(3, "xs[i]", "starts at the second element")])),
            Reply::findings(json!([at(4, "s", "returns s")])),
        ]
        .into(),
        ..Script::default()
    })
    .await;
    let (dir, path) = file_with(CODE);
    std::fs::write(
        dir.path().join(".refine.toml"),
        "[loop]\nmax_iterations = 0\nsamples = 3\nsample_temperature = 0.8\n",
    )
    .unwrap();
    let out = run(
        vec!["review".into(), path, "--format".into(), "json".into()],
        &mock.base_url,
    )
    .await;
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["line"], 3);
    assert_eq!(findings[0]["message"], "the loop skips xs[0]");
    assert_eq!(report["not_agreed"], 2, "{report}");
    assert!(
        report["not_shown"].to_string().contains(
            "2 findings not shown: fewer than half of the loop.samples critiques agree on them"
        ),
        "{report}"
    );
    let critiques: Vec<Value> = mock
        .requests()
        .into_iter()
        .filter(|r| support::mock_llm::role_of(r) == "critique")
        .collect();
    assert_eq!(critiques.len(), 3);
    assert!(
        critiques.iter().all(|r| r["temperature"] == 0.8),
        "{critiques:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_reply_is_quoted_briefly_on_one_line() {
    let garbage = format!(
        "Sure!\n\nHere is my review \u{1b}[31mof the code:\n{}",
        "blah ".repeat(200)
    );
    let mock = MockLlm::start(Script {
        critique: vec![Reply::content(garbage)].into(),
        ..Script::default()
    })
    .await;
    let (_dir, path) = file_with(CODE);
    let out = run(vec!["review".into(), path], &mock.base_url).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("holds no JSON"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        !stderr.contains('\u{1b}'),
        "no control character reaches the terminal"
    );
    assert!(
        line.contains(r"Sure!\n\nHere is my review \u{1b}[31m"),
        "{line}"
    );
    let quoted = line.split('`').nth(1).unwrap_or("");
    assert!(
        quoted.chars().count() <= 81,
        "{} chars: {line}",
        quoted.chars().count()
    );
}

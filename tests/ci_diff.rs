//! `refine-ls review --diff` in a real git repository (made in a temp dir: commits, a branch,
//! a merge base), against the scripted model over real HTTP: only the items a change touches
//! are reviewed, findings off the changed lines are dropped, and the CI formats hold.

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use support::mock_llm::{MockLlm, Reply, Script};
use support::repo::git_ok as git;
use support::repo::set_on_branch;

const BASE: &str = "fn a(x: i32) -> i32 {\n    x + 1\n}\n\nfn b(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 0..xs.len() {\n        s += xs[i];\n    }\n    s\n}\n\nfn c() -> i32 {\n    3\n}\n";

/// `b` changed in two places (lines 7 and 10, one function), nothing else.
const HEAD: &str = "fn a(x: i32) -> i32 {\n    x + 1\n}\n\nfn b(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 1..xs.len() {\n        s += xs[i];\n    }\n    s * 1\n}\n\nfn c() -> i32 {\n    3\n}\n";

/// A repository with `BASE` on `main` and `HEAD` on branch `feature`, checked out.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(d.join("src")).unwrap();
    std::fs::write(d.join("src/lib.rs"), BASE).unwrap();
    std::fs::write(d.join("README"), "hello\n").unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "base"]);
    git(d, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(d.join("src/lib.rs"), HEAD).unwrap();
    std::fs::write(d.join("README"), "hello\nworld\n").unwrap();
    git(d, &["commit", "-q", "-am", "change b"]);
    dir
}

fn finding(line: u64, quote: &str, severity: &str, message: &str) -> Value {
    json!({"start_line": line, "end_line": line, "quote": quote, "severity": severity,
           "principle": "correctness", "message": message, "confidence": 0.9})
}

async fn run(dir: &Path, args: &[&str], base_url: &str) -> Output {
    run_with_stdin(dir, args, base_url, "").await
}

async fn run_with_stdin(dir: &Path, args: &[&str], base_url: &str, input: &str) -> Output {
    let input = input.to_owned();
    let (dir, args, base_url) = (
        dir.to_owned(),
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        base_url.to_owned(),
    );
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_refine-ls"))
            .arg("review")
            .args(&args)
            .current_dir(&dir)
            .env_remove("OPENAI_API_KEY")
            .env("OPENAI_BASE_URL", base_url)
            .env("REFINE_LS_CONFIG", support::test_config())
            .env("REFINE_LS_CACHE_DIR", dir.join(".cache-test"))
            .env("REFINE_LS_DATA_DIR", dir.join(".data-test"))
            .env("REFINE_LS_TRUST_FILE", dir.join(".trust-test"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(input.as_bytes())?;
                }
                child.wait_with_output()
            })
            .expect("run refine-ls")
    })
    .await
    .expect("join")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A critic that reports the loop-start bug on `line`, and a reviser that gives no code.
fn one_finding(line: u64, severity: &str) -> Script {
    Script {
        critique: vec![Reply::findings(json!([finding(
            line,
            "1..xs.len()",
            severity,
            "the loop skips xs[0]"
        )]))]
        .into(),
        revise: vec![Reply::content("no code"), Reply::content("no code")].into(),
        ..Script::default()
    }
}

/// A critic that reports one finding on a changed line of `b` (7) and one on an unchanged
/// line of it (6), with no revision.
async fn mock() -> MockLlm {
    MockLlm::start(Script {
        critique: vec![Reply::findings(json!([
            finding(7, "1..xs.len()", "warning", "the loop skips xs[0]"),
            finding(6, "let mut s = 0;", "warning", "s could be named better"),
        ]))]
        .into(),
        revise: vec![Reply::content("no code"), Reply::content("no code")].into(),
        ..Script::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_changed_item_is_reviewed_and_findings_off_the_change_are_dropped() {
    let repo = repo();
    let mock = mock().await;
    let out = run(
        repo.path(),
        &["--diff", "main", "--format", "json", "--max-findings", "5"],
        &mock.base_url,
    )
    .await;
    // A warning does not fail the run (--fail-on defaults to error).
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let critiques: Vec<Value> = mock
        .requests()
        .into_iter()
        .filter(|r| support::mock_llm::role_of(r) == "critique")
        .collect();
    assert_eq!(critiques.len(), 1, "two hunks of one function, one review");
    let sent = critiques[0]["messages"][1]["content"].as_str().unwrap();
    assert!(sent.contains("fn b(xs: &[i32])"), "{sent}");
    assert!(
        sent.contains("Selection to review (lines 5-11)"),
        "the function, no more (its neighbours only as context): {sent}"
    );
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["line"], 7);
    assert_eq!(findings[0]["path"], "src/lib.rs");
    assert_eq!(report["summary"]["off_change"], 1, "{report}");
    assert_eq!(
        report["summary"]["files"], 1,
        "README is not code: {report}"
    );
    let summary = stderr(&out);
    assert!(
        summary.contains("1 file(s), 1 region(s), ") && summary.contains("1 off the changed lines"),
        "{summary}"
    );

    // --fail-on warning makes the same finding fail the run.
    mock.set_script(one_finding(7, "warning"));
    let out = run(
        repo.path(),
        &["src/", "--diff", "main", "--fail-on", "warning", "--force"],
        &mock.base_url,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("src/lib.rs:7:14: warning: the loop skips xs[0] [correctness]"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diff_on_stdin_and_no_change_at_all_are_handled() {
    let repo = repo();
    let mock = mock().await;
    // Nothing changed against HEAD itself: no model call, exit 0.
    let out = run(repo.path(), &["--diff", "HEAD"], &mock.base_url).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no issues on the changed lines"));
    assert!(mock.requests().is_empty());
    // The change as a unified diff on stdin: line 7 of src/lib.rs.
    let diff = "diff --git a/src/lib.rs b/src/lib.rs\n--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -7 +7 @@\n-    for i in 0..xs.len() {\n+    for i in 1..xs.len() {\n";
    let out = run_with_stdin(
        repo.path(),
        &["--diff", "-", "--format", "json"],
        &mock.base_url,
        diff,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"][0]["line"], 7, "{report}");
    assert_eq!(report["summary"]["regions"], 1, "{report}");
    // Not a repository: one clear sentence, exit 2.
    let plain = tempfile::tempdir().unwrap();
    let out = run(plain.path(), &["--diff"], &mock.base_url).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--diff needs a git repository"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fingerprints_survive_lines_inserted_above_and_the_baseline_silences_them() {
    let repo = repo();
    let mock = mock().await;
    let sarif = repo.path().join("out.sarif");
    let out = run(
        repo.path(),
        &[
            "--diff",
            "main",
            "--format",
            "sarif",
            "--output",
            sarif.to_str().unwrap(),
        ],
        &mock.base_url,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first: Value = serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    let result = &first["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "correctness");
    assert_eq!(result["level"], "warning");
    assert_eq!(
        result["locations"][0]["physicalLocation"]["region"]["startLine"],
        7
    );
    let fp = result["partialFingerprints"]["refineLs/v1"].clone();
    assert!(fp.as_str().is_some_and(|f| f.len() == 16), "{result}");
    validate_sarif(&sarif);

    // Three unrelated lines above `b`: the finding moves down, its fingerprint does not.
    let moved = format!("// one\n// two\n// three\n{HEAD}");
    std::fs::write(repo.path().join("src/lib.rs"), &moved).unwrap();
    mock.set_script(one_finding(10, "warning"));
    let out = run(
        repo.path(),
        &["--diff", "main", "--format", "sarif", "--force"],
        &mock.base_url,
    )
    .await;
    let second: Value = serde_json::from_slice(&out.stdout).unwrap();
    let result = &second["runs"][0]["results"][0];
    assert_eq!(
        result["locations"][0]["physicalLocation"]["region"]["startLine"],
        10
    );
    assert_eq!(result["partialFingerprints"]["refineLs/v1"], fp);

    // Written to the baseline, it is not reported again.
    for args in [
        &["--diff", "main", "--write-baseline", "--force"][..],
        &[
            "--diff",
            "main",
            "--format",
            "json",
            "--force",
            "--fail-on",
            "hint",
        ][..],
    ] {
        mock.set_script(one_finding(10, "warning"));
        let out = run(repo.path(), args, &mock.base_url).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        if args.contains(&"--write-baseline") {
            // The team lands the baseline on the base branch, where a review reads it.
            let written =
                std::fs::read_to_string(repo.path().join(".refine/baseline.json")).unwrap();
            set_on_branch(repo.path(), "main", ".refine/baseline.json", Some(&written));
        }
        if args.contains(&"json") {
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(report["findings"], json!([]), "{report}");
            assert_eq!(report["summary"]["in_baseline"], 1, "{report}");
        }
    }
    let baseline: Value = serde_json::from_str(
        &std::fs::read_to_string(repo.path().join(".refine/baseline.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(baseline["fingerprints"], json!([fp]));
}

/// `b` with the loop-start bug fixed (line 7): the reviser's answer.
const FIXED_B: &str = "fn b(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 0..xs.len() {\n        s += xs[i];\n    }\n    s * 1\n}";

#[tokio::test(flavor = "multi_thread")]
async fn rdjson_gitlab_github_and_sarif_carry_the_finding_and_its_verified_fix() {
    let repo = repo();
    let mock = mock().await;
    let mut outputs = Vec::new();
    for format in ["rdjson", "gitlab", "github", "sarif"] {
        let mut script = one_finding(7, "error");
        script.revise = vec![Reply::code(FIXED_B)].into();
        mock.set_script(script);
        let out = run(
            repo.path(),
            &["--diff", "main", "--format", format, "--force"],
            &mock.base_url,
        )
        .await;
        // An unbacked "error" shows as a warning (loop.max_unbacked_severity).
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
        outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let rd: Value = serde_json::from_str(&outputs[0]).unwrap();
    let d = &rd["diagnostics"][0];
    assert_eq!(rd["source"]["name"], "refine-ls");
    assert_eq!(d["location"]["path"], "src/lib.rs");
    assert_eq!(d["location"]["range"]["start"]["line"], 7);
    assert_eq!(d["severity"], "WARNING");
    assert_eq!(d["code"]["value"], "correctness");
    // The verified revision's edit for this finding, as reviewdog's suggestion.
    let suggestion = &d["suggestions"][0];
    assert_eq!(suggestion["range"]["start"]["line"], 7, "{rd}");
    assert_eq!(suggestion["text"], "0", "{rd}");
    let rd_file = repo.path().join("out.rdjson");
    std::fs::write(&rd_file, &outputs[0]).unwrap();
    validate_rdjson(&rd_file);
    let gl: Value = serde_json::from_str(&outputs[1]).unwrap();
    let issue = &gl[0];
    for key in ["description", "check_name", "fingerprint", "severity"] {
        assert!(issue[key].is_string(), "{key}: {issue}");
    }
    assert_eq!(issue["location"]["path"], "src/lib.rs");
    assert_eq!(issue["location"]["lines"]["begin"], 7);
    assert!(
        outputs[2].starts_with("::warning file=src/lib.rs,line=7,endLine=7,col=14,"),
        "{}",
        outputs[2]
    );
    let sarif: Value = serde_json::from_str(&outputs[3]).unwrap();
    let change = &sarif["runs"][0]["results"][0]["fixes"][0]["artifactChanges"][0];
    assert_eq!(change["artifactLocation"]["uri"], "src/lib.rs", "{sarif}");
    assert_eq!(change["replacements"][0]["insertedContent"]["text"], "0");
    let sarif_file = repo.path().join("fix.sarif");
    std::fs::write(&sarif_file, &outputs[3]).unwrap();
    validate_sarif(&sarif_file);
}

/// rdjson checked against reviewdog's Diagnostic Format by `@umbrelladocs/rdformat-validator`
/// (npm; `RDFORMAT_VALIDATOR`, which scripts/test installs), strictly and with no extra fields.
/// Skipped, loudly, when it is not set: `cargo test` alone has no npm.
fn validate_rdjson(file: &Path) {
    let Ok(tool) = std::env::var("RDFORMAT_VALIDATOR") else {
        eprintln!("rdjson not validated: set RDFORMAT_VALIDATOR (scripts/test does)");
        return;
    };
    support::validate::must_pass(
        "rdformat-validator",
        std::process::Command::new(&tool)
            .args(["--strict", "--no-extra-fields"])
            .arg(file),
    );
}

/// SARIF checked by Microsoft's SARIF Multitool (`SARIF_MULTITOOL`, which scripts/test
/// installs from npm) and by the SARIF 2.1.0 JSON schema with a real validator
/// (`SARIF_SCHEMA_CHECK`: a command given the schema-checked file). Skipped, loudly, when
/// neither is set: `cargo test` alone has no npm.
fn validate_sarif(file: &Path) {
    let mut checked = false;
    if let Ok(tool) = std::env::var("SARIF_MULTITOOL") {
        let _ = std::fs::remove_file(file.with_extension("validation.sarif"));
        let out = std::process::Command::new(&tool)
            .arg("validate")
            .arg(file)
            .arg("--output")
            .arg(file.with_extension("validation.sarif"))
            .output()
            .expect("run the SARIF Multitool");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "multitool: {printed}");
        let log: Value = serde_json::from_str(
            &std::fs::read_to_string(file.with_extension("validation.sarif")).unwrap(),
        )
        .unwrap();
        let errors: Vec<&Value> = log["runs"][0]["results"]
            .as_array()
            .map(|r| r.iter().filter(|r| r["level"] == "error").collect())
            .unwrap_or_default();
        assert!(errors.is_empty(), "multitool errors: {errors:?}");
        checked = true;
    }
    if let Ok(cmd) = std::env::var("SARIF_SCHEMA_CHECK") {
        support::validate::must_pass(
            "the SARIF schema check",
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{cmd} \"$0\""))
                .arg(file),
        );
        checked = true;
    }
    if !checked {
        eprintln!(
            "SARIF not validated: set SARIF_MULTITOOL and SARIF_SCHEMA_CHECK (scripts/test does)"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_review_cache_can_live_in_a_folder_ci_restores() {
    let repo = repo();
    let mock = mock().await;
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("refine-cache");
    let args = [
        "--diff",
        "main",
        "--format",
        "json",
        "--cache-dir",
        dir.to_str().unwrap(),
    ];
    let first = run(repo.path(), &args, &mock.base_url).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(
        dir.join("reviews.redb").is_file(),
        "the cache is in --cache-dir"
    );
    let calls = mock.requests().len();
    assert!(calls >= 1);
    // The same change again, as a later CI job with the folder restored: no model call.
    let second = run(repo.path(), &args, &mock.base_url).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(
        mock.requests().len(),
        calls,
        "answered from the restored cache"
    );
    let (a, b): (Value, Value) = (
        serde_json::from_slice(&first.stdout).unwrap(),
        serde_json::from_slice(&second.stdout).unwrap(),
    );
    assert_eq!(a["findings"], b["findings"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_region_whose_review_fails_is_reported_and_the_run_exits_2() {
    // Two changed functions: the first review gets a provider error, the second a finding.
    let repo = repo();
    let two = HEAD.replace("    3\n", "    4\n");
    std::fs::write(repo.path().join("src/lib.rs"), &two).unwrap();
    let mock = MockLlm::start(Script {
        critique: vec![
            Reply::status(404, "{\"error\":{\"message\":\"no such model\"}}"),
            Reply::findings(json!([finding(14, "4", "warning", "a magic number")])),
        ]
        .into(),
        revise: vec![Reply::content("no code"), Reply::content("no code")].into(),
        ..Script::default()
    })
    .await;
    let out = run(
        repo.path(),
        &["--diff", "main", "--format", "json"],
        &mock.base_url,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("the report is still written");
    assert_eq!(report["summary"]["regions"], 2, "{report}");
    let errors = report["summary"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{report}");
    assert!(
        errors[0].as_str().unwrap().starts_with("src/lib.rs:5-11: "),
        "{report}"
    );
    assert_eq!(
        report["findings"][0]["line"], 14,
        "the other region's finding: {report}"
    );
    assert!(
        stderr(&out).contains("refine-ls: error: src/lib.rs:5-11"),
        "{}",
        stderr(&out)
    );
}

/// `review --diff main --format json` of `repo` with extra flags; its wall time and report.
async fn timed_json_run(repo: &Path, flags: &[&str], base_url: &str) -> (f64, Value) {
    let mut args = vec!["--diff", "main", "--format", "json", "--force"];
    args.extend_from_slice(flags);
    let started = std::time::Instant::now();
    let out = run(repo, &args, base_url).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    (
        secs,
        serde_json::from_slice(&out.stdout).expect("a JSON report"),
    )
}

/// A model that finds nothing after `latency_ms`, with a 429 every tenth request.
fn slow_throttling_model(latency_ms: u64, retry_after: Option<&str>) -> Script {
    Script {
        critique: vec![Reply::findings(json!([])).delayed(latency_ms)].into(),
        throttle_every: Some(10),
        throttle_retry_after: retry_after.map(str::to_owned),
        ..Script::default()
    }
}

/// How many of the mock's answered (not throttled) requests name each file's function.
fn reviews_per_file(mock: &MockLlm, files: usize) -> Vec<usize> {
    let recorded = mock.recorded();
    (0..files)
        .map(|i| {
            let name = support::repo::item_name(i);
            recorded
                .iter()
                .filter(|r| !r.throttled && r.body.to_string().contains(&name))
                .count()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_jobs_review_every_file_once_at_six_times_the_throughput_of_one() {
    const FILES: usize = 40;
    let repo = support::repo::many_files(FILES);
    let mock = MockLlm::start(slow_throttling_model(500, None)).await;
    let (one, report) = timed_json_run(repo.path(), &["--jobs", "1"], &mock.base_url).await;
    assert_eq!(report["summary"]["regions"], FILES, "{report}");
    assert_eq!(reviews_per_file(&mock, FILES), vec![1; FILES]);
    let throttled_one = mock.recorded().iter().filter(|r| r.throttled).count();
    assert!(throttled_one >= 3, "the mock throttled {throttled_one}");

    let mock = MockLlm::start(slow_throttling_model(500, None)).await;
    let (eight, report) = timed_json_run(repo.path(), &["--jobs", "8"], &mock.base_url).await;
    assert_eq!(report["summary"]["regions"], FILES, "{report}");
    assert_eq!(
        report["summary"]["errors"],
        json!([]),
        "429s are retried: {report}"
    );
    assert_eq!(
        reviews_per_file(&mock, FILES),
        vec![1; FILES],
        "every file reviewed once"
    );
    // Every review's prompt begins with the same system message (instructions and principles),
    // so a server's prefix cache serves it after the first.
    let systems: Vec<Value> = mock
        .requests()
        .iter()
        .map(|b| b["messages"][0].clone())
        .collect();
    assert_eq!(systems[0]["role"], "system");
    assert!(
        systems[0]["content"]
            .as_str()
            .is_some_and(|c| c.len() > 500),
        "{}",
        systems[0]
    );
    assert!(
        systems.iter().all(|s| *s == systems[0]),
        "one stable prefix"
    );
    let ratio = one / eight;
    eprintln!("--jobs 1: {one:.2} s, --jobs 8: {eight:.2} s, {ratio:.1}x");
    assert!(
        ratio >= 6.0,
        "--jobs 8 is {ratio:.1}x --jobs 1 ({one:.2} s vs {eight:.2} s)"
    );
}

/// The most requests that arrived at the mock within any one second.
fn busiest_second(mock: &MockLlm) -> usize {
    let at: Vec<_> = mock.recorded().iter().map(|r| r.at).collect();
    at.iter()
        .map(|t0| {
            at.iter()
                .filter(|t| **t >= *t0 && t.duration_since(*t0) < std::time::Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rpm_limit_holds_across_jobs_and_retry_after_holds_them_all() {
    const FILES: usize = 16;
    let repo = support::repo::many_files(FILES);
    // Unlimited, eight jobs at 500 ms send about 16 requests a second; 240 a minute is 4.
    let mock = MockLlm::start(slow_throttling_model(500, Some("1"))).await;
    let (_, report) = timed_json_run(
        repo.path(),
        &["--jobs", "8", "--rpm", "240"],
        &mock.base_url,
    )
    .await;
    assert_eq!(report["summary"]["regions"], FILES, "{report}");
    assert_eq!(reviews_per_file(&mock, FILES), vec![1; FILES]);
    // Requests start 250 ms apart; one more is allowed for the time a connection takes.
    let busiest = busiest_second(&mock);
    assert!(
        busiest <= 5,
        "{busiest} requests within one second at --rpm 240"
    );
    // A 429 with `Retry-After: 1` holds every job, not only the one that met it.
    let recorded = mock.recorded();
    let throttled: Vec<_> = recorded
        .iter()
        .filter(|r| r.throttled)
        .map(|r| r.at)
        .collect();
    assert!(!throttled.is_empty());
    for t in throttled {
        if let Some(next) = recorded.iter().map(|r| r.at).filter(|a| *a > t).min() {
            let gap = next.duration_since(t);
            assert!(
                gap >= std::time::Duration::from_millis(950),
                "a request {gap:?} after a 429 that asked for 1 s"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn findings_dismissed_in_the_workspace_file_are_not_reported_wherever_they_move() {
    let repo = repo();
    let mock = mock().await;
    // What "Refine: dismiss this finding" writes (fingerprint: path, principle, quote).
    let fp = refine_ls::dismissed::fingerprint("src/lib.rs", "correctness", "1..xs.len()");
    // Landed on the base branch: a review reads the team's dismissals there.
    set_on_branch(
        repo.path(),
        "main",
        ".refine/dismissed.toml",
        Some(&format!(
            "[[dismissed]]\npath = \"src/lib.rs\"\nscope = \"finding\"\nprinciple = \"correctness\"\nfingerprint = \"{fp}\"\nquote = \"1..xs.len()\"\n"
        )),
    );
    // Three lines above `b`: the finding moves to line 10, the dismissal still holds.
    std::fs::write(
        repo.path().join("src/lib.rs"),
        format!("// one\n// two\n// three\n{HEAD}"),
    )
    .unwrap();
    mock.set_script(one_finding(10, "warning"));
    let out = run(
        repo.path(),
        &["--diff", "main", "--format", "json", "--fail-on", "hint"],
        &mock.base_url,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"], json!([]), "{report}");
    assert_eq!(report["summary"]["dismissed"], 1, "{report}");
    assert!(stderr(&out).contains("1 dismissed"), "{}", stderr(&out));

    // The critic was told what the codebase dismissed here.
    let told = |body: &Value| body.to_string().contains("correctness: `1..xs.len()`");
    assert!(mock.requests().iter().any(told));

    // Without the file, the same finding is reported again: a new review (its critic is no
    // longer told), not the cached one made while it was.
    set_on_branch(repo.path(), "main", ".refine/dismissed.toml", None);
    let calls = mock.requests().len();
    let out = run(
        repo.path(),
        &["--diff", "main", "--format", "json", "--fail-on", "hint"],
        &mock.base_url,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"][0]["line"], 10, "{report}");
    let after = mock.requests();
    assert!(after.len() > calls, "reviewed again");
    assert!(!after[calls..].iter().any(told), "no longer told");
    let calls = after.len();

    // A file that is not a dismissal file is an error, not silently ignored.
    set_on_branch(
        repo.path(),
        "main",
        ".refine/dismissed.toml",
        Some("dismissed = 3\n"),
    );
    let out = run(
        repo.path(),
        &["--diff", "main", "--format", "json"],
        &mock.base_url,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(".refine/dismissed.toml: not a dismissal file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        mock.requests().len(),
        calls,
        "no model call before the error"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_fix_first_the_fixer_is_told_what_was_dismissed() {
    let repo = repo();
    set_on_branch(
        repo.path(),
        "main",
        ".refine.toml",
        Some("[loop]\nstrategy = \"fix-first\"\n"),
    );
    let fp = refine_ls::dismissed::fingerprint("src/lib.rs", "readability", "s * 1");
    set_on_branch(
        repo.path(),
        "main",
        ".refine/dismissed.toml",
        Some(&format!(
            "[[dismissed]]\npath = \"src/lib.rs\"\nscope = \"finding\"\nprinciple = \"readability\"\nfingerprint = \"{fp}\"\nquote = \"s * 1\"\n"
        )),
    );
    // The fixer finds nothing to fix: one call, and it is the one that must be told.
    let mock = MockLlm::start(Script {
        revise: vec![Reply::code(
            HEAD.lines()
                .skip(4)
                .take(7)
                .collect::<Vec<_>>()
                .join("\n")
                .as_str(),
        )]
        .into(),
        ..Script::default()
    })
    .await;
    let out = run(
        repo.path(),
        &["--diff", "main", "--format", "json"],
        &mock.base_url,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fixer = mock
        .requests()
        .into_iter()
        .find(|b| support::mock_llm::role_of(b) == "revise")
        .expect("a fixer call");
    let text = fixer.to_string();
    assert!(
        text.contains("do not change the code for them") && text.contains("readability: `s * 1`"),
        "{text}"
    );
}

/// A pull request cannot steer the review of itself: its own dismissal, baseline entry, lowered
/// severity cap and endpoint in `.refine.toml` are all read from the change, so none applies
/// (the base's settings do), and CI still fails on its finding.
#[tokio::test(flavor = "multi_thread")]
async fn a_pull_request_that_dismisses_its_own_finding_still_fails_ci() {
    let repo = repo();
    let mock = mock().await;
    let hostile = MockLlm::start(one_finding(7, "error")).await;
    mock.set_script(one_finding(7, "error"));
    let sarif = repo.path().join("first.sarif");
    let out = run(
        repo.path(),
        &[
            "--diff",
            "main",
            "--format",
            "sarif",
            "--output",
            sarif.to_str().unwrap(),
        ],
        &mock.base_url,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first: Value = serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    let fp = first["runs"][0]["results"][0]["partialFingerprints"]["refineLs/v1"]
        .as_str()
        .expect("a fingerprint")
        .to_owned();

    // The pull request adds settings that would silence its own finding.
    let d = repo.path();
    std::fs::create_dir_all(d.join(".refine")).unwrap();
    let dfp = refine_ls::dismissed::fingerprint("src/lib.rs", "correctness", "1..xs.len()");
    std::fs::write(
        d.join(".refine/dismissed.toml"),
        format!(
            "[[dismissed]]\npath = \"src/lib.rs\"\nscope = \"finding\"\nprinciple = \"correctness\"\nfingerprint = \"{dfp}\"\nquote = \"1..xs.len()\"\n[[dismissed]]\npath = \"src/lib.rs\"\nscope = \"file\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        d.join(".refine/baseline.json"),
        json!({"version": 1, "fingerprints": [fp]}).to_string(),
    )
    .unwrap();
    std::fs::write(
        d.join(".refine.toml"),
        format!(
            "[loop]\nmax_unbacked_severity = \"hint\"\ndisabled_principles = [\"correctness\"]\n[provider]\nkind = \"openai\"\nbase_url = \"{}\"\n",
            hostile.base_url
        ),
    )
    .unwrap();
    git(d, &["add", ".refine", ".refine.toml"]);
    git(d, &["commit", "-q", "-m", "silence the reviewer"]);
    mock.set_script(one_finding(7, "error"));
    let out = run(
        d,
        &[
            "--diff",
            "main",
            "--format",
            "json",
            "--force",
            "--fail-on",
            "warning",
            "--trust-base",
        ],
        &mock.base_url,
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "CI still fails: {}",
        stderr(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"][0]["line"], 7, "{report}");
    assert_eq!(
        report["findings"][0]["severity"], "warning",
        "the base's cap: {report}"
    );
    assert_eq!(report["summary"]["dismissed"], 0, "{report}");
    assert_eq!(report["summary"]["in_baseline"], 0, "{report}");
    assert!(
        hostile.recorded().is_empty(),
        "the change's endpoint got a request"
    );
}

/// A change that adds a link to a file outside the repository: what the link points at is
/// never read or sent.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_changed_file_that_links_out_of_the_repository_is_not_sent() {
    let repo = repo();
    let outside = tempfile::tempdir().unwrap();
    let canary = "fn leaked() -> &'static str { \"canary-0b5e3c1a9d\" }\n";
    std::fs::write(outside.path().join("secret.rs"), canary).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.rs"),
        repo.path().join("src/leak.rs"),
    )
    .unwrap();
    git(repo.path(), &["add", "src/leak.rs"]);
    git(repo.path(), &["commit", "-q", "-m", "add a link"]);
    let mock = mock().await;
    let out = run(
        repo.path(),
        &["--diff", "main", "--format", "json"],
        &mock.base_url,
    )
    .await;
    assert!(
        !mock
            .requests()
            .iter()
            .any(|b| b.to_string().contains("canary-0b5e3c1a9d")),
        "the linked file's text was sent"
    );
    assert!(
        stderr(&out).contains("src/leak.rs") && stderr(&out).contains("skipped"),
        "{}",
        stderr(&out)
    );
}

/// The first commit of a new repository (no `HEAD` yet) is reviewed staged, as a pre-commit
/// hook sees it: the base is empty, so the change's own `.refine.toml` steers nothing (its
/// dismissal of everything is not read). The previous code stopped with "`HEAD` is not a
/// commit of this repository" and reviewed nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_first_commit_is_reviewed_staged_without_its_own_settings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(d.join("src")).unwrap();
    std::fs::write(d.join("src/lib.rs"), HEAD).unwrap();
    std::fs::write(
        d.join(".refine.toml"),
        "[loop]\ndisabled_principles = [\"correctness\"]\nmax_unbacked_severity = \"hint\"\n",
    )
    .unwrap();
    git(d, &["add", "."]);
    let mock = MockLlm::start(one_finding(7, "warning")).await;
    let out = run(
        d,
        &[
            "--diff",
            "--staged",
            "--format",
            "json",
            "--fail-on",
            "warning",
        ],
        &mock.base_url,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"][0]["line"], 7, "{report}");
    assert_eq!(report["findings"][0]["severity"], "warning", "{report}");
    assert!(
        !mock.requests().is_empty(),
        "the staged change went to the user's model"
    );
}

/// A model that reports the changed line (`x + 2`, line 2) of whichever item it is shown.
fn finds_every_change() -> Script {
    Script {
        critique: vec![Reply::findings(json!([finding(
            2,
            "x + 2",
            "warning",
            "adds 2 where the other items add 1"
        )]))]
        .into(),
        revise: vec![Reply::content("no code")].into(),
        ..Script::default()
    }
}

/// The (path, line, fingerprint) of each finding of a JSON report.
fn finding_keys(report: &Value) -> Vec<(String, u64, String)> {
    report["findings"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    (
                        f["path"].as_str().unwrap_or_default().to_owned(),
                        f["line"].as_u64().unwrap_or_default(),
                        f["fingerprint"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_review_every_region_once_and_together_give_the_whole_report() {
    const FILES: usize = 10;
    let repo = support::repo::many_files(FILES);
    let whole_mock = MockLlm::start(finds_every_change()).await;
    let (_, whole) = timed_json_run(repo.path(), &[], &whole_mock.base_url).await;
    let mut expected = finding_keys(&whole);
    expected.sort();
    assert_eq!(expected.len(), FILES, "{whole}");
    assert_eq!(whole["summary"]["shard"], Value::Null);

    // Three jobs of a matrix, against one model: every region in exactly one shard.
    let mock = MockLlm::start(finds_every_change()).await;
    let mut union = Vec::new();
    let mut regions = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let (_, report) = timed_json_run(repo.path(), &["--shard", &shard], &mock.base_url).await;
        assert_eq!(report["summary"]["shard"], shard.as_str(), "{report}");
        regions.push(report["summary"]["regions"].as_u64().unwrap_or_default());
        union.extend(finding_keys(&report));
    }
    assert_eq!(regions, vec![4, 3, 3], "dealt out in turn");
    union.sort();
    assert_eq!(union, expected, "the shards' union is the unsharded report");
    assert_eq!(
        reviews_per_file(&mock, FILES),
        reviews_per_file(&whole_mock, FILES),
        "each region reviewed by one shard only"
    );

    // A re-run deals the regions alike.
    let mock = MockLlm::start(finds_every_change()).await;
    let (_, again) = timed_json_run(repo.path(), &["--shard", "2/3"], &mock.base_url).await;
    let (_, first) = timed_json_run(repo.path(), &["--shard", "2/3"], &mock.base_url).await;
    assert_eq!(finding_keys(&again), finding_keys(&first));

    // Each shard's SARIF names its category, so code scanning keeps all three.
    let sarif_file = repo.path().join("shard.sarif");
    let out = run(
        repo.path(),
        &[
            "--diff",
            "main",
            "--shard",
            "3/3",
            "--format",
            "sarif",
            "--output",
            sarif_file.to_str().unwrap(),
        ],
        &mock.base_url,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3 region(s) (shard 3/3)"),
        "{}",
        stderr(&out)
    );
    let sarif: Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif_file).unwrap()).unwrap();
    assert_eq!(
        sarif["runs"][0]["automationDetails"]["id"],
        "refine-ls/shard-3-of-3/"
    );
    assert_eq!(
        sarif["runs"][0]["results"].as_array().map(Vec::len),
        Some(3)
    );
    validate_sarif(&sarif_file);

    // Bad shards, and shards where they mean nothing, are clear errors before any review.
    let requests = mock.requests().len();
    for (args, why) in [
        (&["--diff", "main", "--shard", "4/3"][..], "between 1 and 3"),
        (
            &["--diff", "main", "--shard", "1/0"][..],
            "between 1 and 256",
        ),
        (&["--diff", "main", "--shard", "two"][..], "not a shard"),
        (&["src/item_0000.rs", "--shard", "1/2"][..], "--shard"),
        (
            &["--diff", "main", "--shard", "1/2", "--write-baseline"][..],
            "not with --shard",
        ),
    ] {
        let out = run(repo.path(), args, &mock.base_url).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(
        mock.requests().len(),
        requests,
        "no model call for a bad shard"
    );
}

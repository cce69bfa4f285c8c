//! `refine-ls review --diff` in a real git repository (made in a temp dir: commits, a branch,
//! a merge base), against the scripted model over real HTTP: only the items a change touches
//! are reviewed, findings off the changed lines are dropped, and the CI formats hold.

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::{Value, json};
use support::mock_llm::{MockLlm, Reply, Script};
use support::repo::git_ok as git;

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
            .env(
                "REFINE_LS_CONFIG",
                "/nonexistent/refine-ls-test-config.toml",
            )
            .env("REFINE_LS_CACHE_DIR", dir.join(".cache-test"))
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

#[tokio::test(flavor = "multi_thread")]
async fn rdjson_gitlab_and_github_formats_carry_the_finding() {
    let repo = repo();
    let mock = mock().await;
    let mut outputs = Vec::new();
    for format in ["rdjson", "gitlab", "github"] {
        mock.set_script(one_finding(7, "error"));
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
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{cmd} \"$0\""))
            .arg(file)
            .output()
            .expect("run the schema check");
        assert!(
            out.status.success(),
            "schema: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
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

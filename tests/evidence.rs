//! The evidence stage as a user meets it (issue 28), against the scripted model over real HTTP
//! and real `rustc`/`python3` under bubblewrap: the README example reviewed fix-first with
//! probes, the counterexample in the CLI's text, JSON and SARIF, a sampled fix that changes
//! behaviour nothing backs refused as drift, a refactor shown as a hint, and correct code whose
//! only "fix" is drift left without findings. (The mock proves the plumbing; what the real
//! model does with it is measured in EVAL.md.)

mod support;

use std::process::Output;

use serde_json::{Value, json};
use support::lsp_client::{LspClient, action_titled, apply_edits};
use support::mock_llm::{MockLlm, Reply, Script};

const EXAMPLE: &str = include_str!("../examples/buggy_sum.rs");

fn fixed_example() -> String {
    EXAMPLE.replace("for i in 1..xs.len()", "for i in 0..xs.len()").replace(
        "    let sum: f64 = xs.iter().sum();",
        "    if xs.is_empty() {\n        return None;\n    }\n    let sum: f64 = xs.iter().sum();",
    )
}

/// A "fix" that doubles every even number: changes `sum_even(&[2])` to 4, which nothing backs.
fn drifting_example() -> String {
    EXAMPLE
        .replace("for i in 1..xs.len()", "for i in 0..xs.len()")
        .replace("total += xs[i];", "total += xs[i] * 2;")
}

fn inputs() -> Reply {
    Reply::content(
        json!({"inputs": [
            {"function": "sum_even", "args": "&[2]"},
            {"function": "sum_even", "args": "&[]"},
            {"function": "sum_even", "args": "&[1, 2, 3, 4]"},
            {"function": "average", "args": "&[]"},
            {"function": "average", "args": "&[2.0, 4.0]"},
            {"function": "sum_even", "args": "&[1, 2, \"not a number\"]"}
        ]})
        .to_string(),
    )
}

fn explanations() -> Reply {
    Reply::content(
        json!({"changes": [
            {"change": 1, "message": "The loop starts at 1 and skips the first element.",
             "principle": "correctness", "severity": "error", "fixes_a_problem": true},
            {"change": 2, "message": "An empty slice divides by zero instead of giving None.",
             "principle": "correctness", "severity": "error", "fixes_a_problem": true}
        ]})
        .to_string(),
    )
}

/// A user configuration file: fix-first with one sampled fix, the mock's model.
fn user_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!("[loop]\nstrategy = \"fix-first\"\nfix_samples = 1\n{extra}"),
    )
    .unwrap();
    path
}

/// `refine-ls review FILE ARGS…` with the user configuration at `config`.
async fn review(
    file: &std::path::Path,
    args: &[&str],
    config: &std::path::Path,
    base_url: &str,
) -> Output {
    review_env(file, args, config, base_url, &[]).await
}

/// [`review`] with extra environment variables.
async fn review_env(
    file: &std::path::Path,
    args: &[&str],
    config: &std::path::Path,
    base_url: &str,
    envs: &[(&str, &str)],
) -> Output {
    let mut all = vec!["review".to_owned(), file.display().to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let (config, base_url) = (config.to_owned(), base_url.to_owned());
    let envs: Vec<(String, String)> = envs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let cache = tempfile::tempdir().unwrap();
    let cache_path = cache.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_refine-ls"))
            .args(&all)
            .env_remove("OPENAI_API_KEY")
            .env("OPENAI_BASE_URL", base_url)
            .env("REFINE_LS_CONFIG", config)
            .env("REFINE_LS_CACHE_DIR", &cache_path)
            .env("REFINE_LS_TRUST_FILE", cache_path.join("trusted"))
            .envs(envs)
            .output()
            .expect("run refine-ls")
    })
    .await
    .expect("join");
    drop(cache);
    out
}

fn have_tools() -> bool {
    let ok = |p: &str| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    ok("rustc") && ok("bwrap")
}

#[tokio::test]
async fn the_readme_example_shows_its_counterexample_and_refuses_a_drifting_sample() {
    if !have_tools() {
        eprintln!("skipped: needs rustc and bwrap");
        return;
    }
    let mock = MockLlm::start(readme_script()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("buggy_sum.rs");
    std::fs::write(&file, EXAMPLE).unwrap();
    let config = user_config(dir.path(), "");
    let out = review(&file, &["--format", "json"], &config, &mock.base_url).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    let findings = report["findings"].as_array().unwrap();
    let line4 = findings
        .iter()
        .find(|f| f["line"] == 4)
        .unwrap_or_else(|| panic!("no finding on line 4: {report:#}\n{stderr}"));
    // A counterexample the intent backs: a warning, not an error (no test ran).
    assert_eq!(line4["severity"], "warning", "{report:#}");
    assert_eq!(
        line4["evidence_text"],
        "`sum_even(&[2])` returns 0; its doc and name say 2; the revision returns 2",
        "{report:#}"
    );
    let evidence = &report["evidence"];
    // 8 from the parameter types, then the model's 6 less 3 repeats and the ill-typed one.
    assert_eq!(
        evidence["probe_inputs"], 10,
        "the ill-typed input is dropped: {evidence:#}"
    );
    assert_eq!(evidence["candidates"], 2, "{evidence:#}");
    assert_eq!(evidence["drift_refused"], 1, "{evidence:#}");
    assert_eq!(evidence["regression_test_verified"], true, "{evidence:#}");
    let notes: Vec<&str> = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        notes.iter().any(|n| n.contains(
            "sampled fix 1 refused as drift: it changes `sum_even(&[2])` from `0` to `4`"
        )),
        "{notes:#?}"
    );
    assert!(
        report["revision"]["diff"]
            .as_str()
            .unwrap()
            .contains("+    for i in 0..xs.len()")
    );
    // The intent was asked without the body: neither version's code is in its prompt.
    let intent = mock
        .requests()
        .into_iter()
        .find(|r| r.to_string().contains("# refine-ls intent"))
        .expect("an intent question");
    assert!(!intent.to_string().contains("total += xs[i]"), "{intent}");
    // The text report: the counterexample and the regression test.
    mock.set_script(readme_script());
    let text = review(&file, &[], &config, &mock.base_url).await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("counterexample: `sum_even(&[2])` returns 0"),
        "{text}"
    );
    assert!(text.contains("fn sum_even_counterexample()"), "{text}");
    assert!(text.contains("assert_eq!(sum_even(&[2]), 2);"), "{text}");
}

/// The script of the README example's review: a right fix, then a drifting sampled one.
fn readme_script() -> Script {
    Script {
        revise: vec![
            Reply::code(&fixed_example()),
            Reply::code(&drifting_example()),
        ]
        .into(),
        probe: vec![inputs()].into(),
        intent: vec![Reply::content(
            // Asked: the inputs most candidates change first, then in order (the parameter
            // types' edge cases come before the model's inputs): `sum_even(&[2])`,
            // `sum_even(&[1, 2, -1, 2])`, `sum_even(&[1, 2, 3, 4])`; the intent is right.
            json!({"answers": [{"call": 1, "returns": "2"}, {"call": 2, "returns": "4"},
                               {"call": 3, "returns": "6"}]})
            .to_string(),
        )]
        .into(),
        explain: vec![explanations()].into(),
        ..Script::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_lsp_the_counterexample_is_in_the_diagnostic_and_becomes_a_regression_test() {
    if !have_tools() {
        eprintln!("skipped: needs rustc and bwrap");
        return;
    }
    let mock = MockLlm::start(readme_script()).await;
    let client = LspClient::start(&[("OPENAI_BASE_URL", &mock.base_url)]);
    client
        .initialize(
            json!({"window": {"workDoneProgress": true}, "general": {"positionEncodings": ["utf-16"]}}),
            json!({"refine": {"loop": {"strategy": "fix-first", "fix_samples": 1, "probes": true}}}),
        )
        .await;
    let uri = "file:///work/buggy_sum.rs";
    client.open(uri, "rust", EXAMPLE).await;
    let id = client
        .review(
            uri,
            json!({"start": {"line": 0, "character": 0}, "end": {"line": 15, "character": 1}}),
        )
        .await;
    let done = client.finished(&id).await;
    assert!(done["error"].is_null(), "{done}");
    let diagnostics = client.diagnostics(uri);
    let line4 = diagnostics
        .iter()
        .find(|d| d["range"]["start"]["line"] == 3)
        .unwrap_or_else(|| panic!("no diagnostic on line 4: {diagnostics:#?}"));
    assert_eq!(line4["severity"], 2, "a warning: {line4}");
    assert!(
        line4["message"].as_str().unwrap().contains(
            "Evidence: `sum_even(&[2])` returns 0; its doc and name say 2; the revision returns 2"
        ),
        "{line4}"
    );
    let hover = client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": {"line": 3, "character": 10}}),
        )
        .await
        .expect("hover");
    assert!(hover.to_string().contains("*Evidence:*"), "{hover}");
    let actions = client
        .code_actions(
            uri,
            json!({"start": {"line": 3, "character": 0}, "end": {"line": 3, "character": 0}}),
        )
        .await;
    let add = action_titled(
        &actions,
        "Refine: add the counterexample as a regression test",
    );
    let change = &add["edit"]["documentChanges"][0];
    assert_eq!(
        change["textDocument"]["version"], 1,
        "the current version: {add}"
    );
    let edits = change["edits"].as_array().unwrap();
    let with_test = apply_edits(EXAMPLE, edits, "utf-16");
    assert!(
        with_test.starts_with(EXAMPLE),
        "the test is added, nothing else changes"
    );
    assert!(
        with_test.contains("#[cfg(test)]\nmod tests {\n    use super::*;")
            && with_test
                .contains("fn sum_even_counterexample() {\n        assert_eq!(sum_even(&[2]), 2);"),
        "{with_test}"
    );
}

#[tokio::test]
async fn a_fix_that_only_changes_behaviour_nothing_backs_is_refused_and_correct_code_stays_clean() {
    if !have_tools() {
        eprintln!("skipped: needs rustc and bwrap");
        return;
    }
    let correct = fixed_example();
    // The "fix" makes average of an empty slice 0 instead of None, and the intent says None.
    let drift = correct.replace("return None;", "return Some(0.0);");
    let mock = MockLlm::start(Script {
        revise: vec![Reply::code(&drift)].into(),
        probe: vec![inputs()].into(),
        intent: vec![Reply::content(
            json!({"answers": [{"call": 1, "returns": "None"}]}).to_string(),
        )]
        .into(),
        explain: vec![explanations()].into(),
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sum.rs");
    std::fs::write(&file, &correct).unwrap();
    let config = user_config(dir.path(), "");
    let out = review(&file, &["--format", "json"], &config, &mock.base_url).await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"], json!([]), "{report:#}");
    assert_eq!(report["revision"], Value::Null, "{report:#}");
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("fix 1 refused as drift: it changes `average(&[])` from `None` to `Some(0.0)`; nothing says the original is wrong"),
        "{notes}"
    );
    // No explanation was asked for a fix that is not offered.
    assert!(
        !mock
            .requests()
            .iter()
            .any(|r| r.to_string().contains("# refine-ls explainer"))
    );
}

#[tokio::test]
async fn a_refactor_is_a_hint_and_probes_can_be_turned_off() {
    if !have_tools() {
        eprintln!("skipped: needs rustc and bwrap");
        return;
    }
    let correct = fixed_example();
    let refactor = correct.replace(
        "    let mut total = 0;\n    for i in 0..xs.len() {\n        if xs[i] % 2 == 0 {\n            total += xs[i];\n        }\n    }\n    total",
        "    xs.iter().filter(|x| *x % 2 == 0).sum()",
    );
    assert_ne!(refactor, correct);
    let script = || Script {
        revise: vec![Reply::code(&refactor)].into(),
        probe: vec![inputs()].into(),
        explain: vec![explanations()].into(),
        ..Script::default()
    };
    let mock = MockLlm::start(script()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sum.rs");
    std::fs::write(&file, &correct).unwrap();
    let config = user_config(dir.path(), "");
    let out = review(&file, &["--format", "json"], &config, &mock.base_url).await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert!(!findings.is_empty(), "{report:#}");
    assert!(
        findings.iter().all(|f| f["severity"] == "hint"),
        "{report:#}"
    );
    assert!(
        report["notes"]
            .to_string()
            .contains("behaves as the original on"),
        "{report:#}"
    );
    assert!(
        !mock
            .requests()
            .iter()
            .any(|r| r.to_string().contains("# refine-ls intent")),
        "nothing changed, so nothing is asked"
    );
    // With loop.probes = false the same review asks for no inputs and keeps the old cap.
    let mock = MockLlm::start(script()).await;
    let config = user_config(dir.path(), "probes = false\n");
    let out = review(&file, &["--format", "json"], &config, &mock.base_url).await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !mock
            .requests()
            .iter()
            .any(|r| r.to_string().contains("# refine-ls prober"))
    );
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["severity"] == "warning"),
        "{report:#}"
    );
}

#[tokio::test]
async fn a_failing_doctest_is_executed_evidence_and_lets_a_finding_be_an_error() {
    let python = std::process::Command::new("python3")
        .arg("--version")
        .output();
    if !have_tools() || !python.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: needs python3 and bwrap");
        return;
    }
    let code = "def add_one(x: int) -> int:\n    \"\"\"Adds one to x.\n\n    >>> add_one(1)\n    2\n    \"\"\"\n    return x + 2\n";
    let fixed = code.replace("return x + 2", "return x + 1");
    let mock = MockLlm::start(Script {
        revise: vec![Reply::code(&fixed)].into(),
        explain: vec![Reply::content(
            json!({"changes": [{"change": 1, "message": "It adds two, not one.",
                                "principle": "correctness", "severity": "error",
                                "fixes_a_problem": true}]})
            .to_string(),
        )]
        .into(),
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("add.py");
    std::fs::write(&file, code).unwrap();
    let config = user_config(dir.path(), "");
    let out = review(&file, &["--format", "json"], &config, &mock.base_url).await;
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("1 of 1 doc example(s) fail on the code as it is"),
        "{notes}"
    );
    let finding = &report["findings"][0];
    assert_eq!(
        finding["severity"], "error",
        "executed evidence: {report:#}"
    );
    assert_eq!(
        finding["evidence_text"],
        "the doc example `add_one(1) == 2` fails on the original and passes on the revision",
        "{report:#}"
    );
    // The fixer was told what the doc example gives.
    let fixer = mock
        .requests()
        .into_iter()
        .find(|r| r.to_string().contains("# refine-ls fixer"))
        .expect("a fix request");
    assert!(
        fixer
            .to_string()
            .contains("the doc example `add_one(1)` should give `2` but the code gives `3`"),
        "{fixer}"
    );
}

#[tokio::test]
async fn auto_picks_fix_first_for_a_small_model_behind_an_endpoint() {
    let mock = MockLlm::start(Script {
        revise: vec![Reply::code(&fixed_example())].into(),
        explain: vec![explanations()].into(),
        models: vec!["qwen2.5-coder:1.5b".into()],
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("buggy_sum.rs");
    std::fs::write(&file, EXAMPLE).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[loop]\nprobes = false\n").unwrap();
    let out = review(
        &file,
        &["--format", "json", "--model", "qwen2.5-coder:1.5b"],
        &config,
        &mock.base_url,
    )
    .await;
    assert!(
        out.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let roles: Vec<&'static str> = mock
        .requests()
        .iter()
        .map(support::mock_llm::role_of)
        .collect();
    // Fix-first: the fixer first (the `revise` queue), then the explainer; no critique.
    assert_eq!(roles.first(), Some(&"revise"), "{roles:?}");
    assert!(
        roles.contains(&"explain") && !roles.contains(&"critique"),
        "{roles:?}"
    );
    let first = mock.requests()[0].to_string();
    assert!(first.contains("# refine-ls fixer"), "{first}");
}

#[tokio::test]
async fn without_a_sandbox_an_untrusted_workspaces_code_is_not_run() {
    let mock = MockLlm::start(readme_script()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("buggy_sum.rs");
    std::fs::write(&file, EXAMPLE).unwrap();
    let config = user_config(dir.path(), "");
    // An empty REFINE_LS_BWRAP turns the sandbox off; the workspace is not trusted.
    let out = review_env(
        &file,
        &["--format", "json"],
        &config,
        &mock.base_url,
        &[("REFINE_LS_BWRAP", "")],
    )
    .await;
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["evidence"]["probe_calls"], 0, "{report:#}");
    assert!(
        report["notes"]
            .to_string()
            .contains("no probes: there is no sandbox here"),
        "{report:#}"
    );
    assert!(
        !mock
            .requests()
            .iter()
            .any(|r| r.to_string().contains("# refine-ls prober")),
        "nothing is asked for inputs that will not run"
    );
}

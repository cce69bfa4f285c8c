//! `refine-ls eval` on the shipped HumanEvalPack sample against a scripted model that behaves
//! like real ones: line numbers off by a few, a quote that does not exist, a revision that does
//! not compile, one that changes a signature, a "fix" to correct code that breaks its tests.
//! Every bad revision must be rejected; only the verified fix may be offered.

mod support;

use serde_json::{Value, json};
use support::mock_llm::{MockLlm, Reply, Script};

fn tasks() -> Vec<Value> {
    include_str!("data/humanevalpack-rust-sample.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The reviewed selection for a solution: the signature line and the body.
fn function(task: &Value, solution: &str) -> String {
    let decl = task["declaration"].as_str().unwrap();
    let sig = decl.trim_end().lines().last().unwrap();
    format!("{sig}\n{}", solution.trim_end())
}

#[tokio::test(flavor = "multi_thread")]
async fn eval_catches_every_bad_revision_and_measures_the_loop() {
    let t = tasks();
    let (t0, t1) = (&t[0], &t[1]);
    let fix0 = function(t0, t0["canonical_solution"].as_str().unwrap());
    let sig1 = function(t1, "").trim_end().to_owned();
    let no_compile = format!("{sig1}\n    let x: i32 = \"not a number\";\n    (x, x)\n}}");
    let new_signature = function(t1, t1["canonical_solution"].as_str().unwrap()).replace(
        "numbers:Vec<i32>) -> (i32,i32)",
        "numbers:&[i64]) -> (i64,i64)",
    );
    let breaks_tests = function(t1, t1["canonical_solution"].as_str().unwrap())
        .replace("sum += val", "sum += val + 1");
    let finding = |line: u64, quote: &str, msg: &str| {
        json!({"start_line": line, "end_line": line, "quote": quote, "severity": "error",
               "principle": "correctness", "message": msg, "confidence": 0.9})
    };
    // Task 0's bug (`distance < threshold`) is on file line 17; the model says 15.
    let script = Script {
        critique: vec![
            Reply::findings(json!([finding(
                15,
                "distance < threshold",
                "compares a signed difference: use distance.abs()"
            )])),
            // (No re-critique of the fix: the judge's reply is unscripted, so the fix counts as
            // resolving the finding whose line it changes.)
            Reply::findings(json!([])),
            Reply::findings(json!([
                finding(14, "numbers.iter().product()", "a quote that is not there"),
                finding(
                    18,
                    ".fold(0, |mut prod",
                    "the product starts at 0, so it is always 0"
                ),
            ])),
            Reply::findings(json!([finding(
                14,
                ".fold(0, |mut sum",
                "the sum should start at 1"
            )])),
        ]
        .into(),
        revise: vec![
            Reply::code(&fix0),
            Reply::code(&no_compile),
            Reply::code(&no_compile),
            Reply::code(&new_signature),
            Reply::code(&breaks_tests),
        ]
        .into(),
        ..Script::default()
    };
    let mock = MockLlm::start(script).await;
    let base_url = mock.base_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_refine-ls"))
            .args([
                "eval",
                "tests/data/humanevalpack-rust-sample.jsonl",
                "--limit",
                "2",
                "--format",
                "json",
                // Run 2's files: the scripted line numbers and revisions are for them.
                "--docs",
                "none",
            ])
            .args(["--base-url", &base_url])
            .env_remove("OPENAI_API_KEY")
            .env("REFINE_LS_CONFIG", support::test_config())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&report["summary"]).unwrap()
    );
    let r0 = &report["tasks"][0];
    assert_eq!(r0["task_id"], "Rust/0");
    assert_eq!(
        r0["buggy"]["hit"], true,
        "anchored despite the line number being off by 2"
    );
    assert_eq!(r0["buggy"]["revision"], true);
    assert_eq!(
        r0["buggy"]["revision_passes"], true,
        "the offered fix passes the held-out tests"
    );
    assert_eq!(r0["correct"]["findings"], 0);
    let r1 = &report["tasks"][1];
    assert_eq!(
        r1["buggy"]["findings"], 1,
        "the invented quote is not shown"
    );
    assert_eq!(r1["buggy"]["hit"], true);
    assert_eq!(
        r1["buggy"]["revision"], false,
        "neither bad revision is offered"
    );
    assert_eq!(
        r1["buggy"]["rejected"], 2,
        "one that does not compile (after a retry), one that changes the signature"
    );
    assert_eq!(
        r1["correct"]["findings"], 1,
        "drift: a finding on correct code is counted"
    );
    assert_eq!(
        r1["correct"]["revision"], false,
        "its test-breaking 'fix' is rejected"
    );
    assert_eq!(r1["correct"]["rejected"], 2);
    let s = &report["summary"];
    assert_eq!(s["bug_line_hit_rate"], 1.0);
    assert_eq!(s["revision_pass_rate"], 0.5);
    assert_eq!(s["bad_revisions_rejected"], 4);
    assert_eq!(s["drift_revisions_offered_on_correct_code"], 0);
}

fn eval_command(base_url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_refine-ls"))
        .args(["eval", "tests/data/humanevalpack-rust-sample.jsonl"])
        .args(args)
        .args(["--base-url", base_url])
        .env_remove("OPENAI_API_KEY")
        .env("REFINE_LS_CONFIG", support::test_config())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn eval_measures_every_mode_on_the_same_tasks_and_resumes_from_its_file() {
    let t = tasks();
    let t0 = &t[0];
    let fixed = function(t0, t0["canonical_solution"].as_str().unwrap());
    let rule = |role: &str, contains: &str, reply: Reply| support::mock_llm::Rule {
        role: role.to_owned(),
        contains: contains.to_owned(),
        reply,
    };
    let finding = json!([{"start_line": 15, "end_line": 15, "quote": "distance < threshold",
        "severity": "error", "principle": "correctness",
        "message": "compares a signed difference", "confidence": 0.9}]);
    let script = Script {
        // The buggy code gets a finding and a fix; the correct code neither (the fixer gives
        // it back unchanged).
        rules: vec![
            rule("critique", "distance < threshold", Reply::findings(finding)),
            rule("revise", "distance < threshold", Reply::code(&fixed)),
        ],
        critique: vec![Reply::findings(json!([]))].into(),
        revise: vec![Reply::code(&fixed)].into(),
        explain: vec![Reply::content(
            json!({"changes": [{"change": 1, "message": "use distance.abs()",
                "principle": "correctness", "severity": "error", "fixes_a_problem": true}]})
            .to_string(),
        )]
        .into(),
        ..Script::default()
    };
    let mock = MockLlm::start(script).await;
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("results.jsonl");
    let out_arg = out_path.display().to_string();
    let base_url = mock.base_url.clone();
    let args = move |resume: bool| {
        let mut a: Vec<String> = [
            "--limit",
            "1",
            "--format",
            "json",
            "--mode",
            "loop,single,critique",
            "--strategy",
            "critique-first,fix-first",
            "--jobs",
            "2",
            "--docs",
            "none",
            "--out",
        ]
        .map(str::to_owned)
        .to_vec();
        a.push(out_arg.clone());
        if resume {
            a.push("--resume".to_owned());
        }
        a
    };
    let (u, a) = (base_url.clone(), args(false));
    let first = tokio::task::spawn_blocking(move || {
        eval_command(&u, &a.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let report: Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(
        report["modes"],
        json!([
            "loop/critique-first",
            "loop/fix-first",
            "single",
            "critique"
        ])
    );
    let s = &report["summaries"];
    for mode in ["loop/critique-first", "loop/fix-first", "single"] {
        assert_eq!(s[mode]["pass_at_1"], 1.0, "{mode}: {s}");
        assert_eq!(
            s[mode]["drift_revisions_offered_on_correct_code"], 0,
            "{mode}"
        );
    }
    assert_eq!(
        s["critique"]["pass_at_1"], 0.0,
        "the critique alone offers no revision"
    );
    assert_eq!(s["critique"]["bug_line_hit_rate"], 1.0);
    assert_eq!(
        s["loop/fix-first"]["bug_line_hit_rate"], 1.0,
        "the explained hunk is on the bug"
    );
    assert_eq!(
        s["single"]["bug_line_hit_rate"],
        Value::Null,
        "single shows no findings"
    );
    assert_eq!(s["loop/critique-first"]["gain_over_single_points"], 0.0);
    assert_eq!(
        report["summary"], s["loop/critique-first"],
        "`summary` is the first mode's"
    );
    for task in report["tasks"].as_array().unwrap() {
        for field in [
            "task_id", "bug_type", "mode", "verify", "model", "buggy", "correct",
        ] {
            assert!(task.get(field).is_some(), "{field} in {task}");
        }
        for field in [
            "findings",
            "hit",
            "revision",
            "revision_passes",
            "rejected",
            "llm_calls",
            "tokens",
            "wall_ms",
            "rejections",
        ] {
            assert!(task["buggy"].get(field).is_some(), "{field} in {task}");
        }
    }
    let lines = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(
        lines.lines().count(),
        4,
        "one line per task and mode: {lines}"
    );

    // Resumed, the file already holds everything: no model call, the same summary. A line
    // that cannot be read is skipped with a warning.
    std::fs::write(&out_path, format!("{lines}{{not json\n")).unwrap();
    let calls = mock.requests().len();
    let (u, a) = (base_url.clone(), args(true));
    let again = tokio::task::spawn_blocking(move || {
        eval_command(&u, &a.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("could not be read"), "{stderr}");
    assert_eq!(mock.requests().len(), calls, "nothing is reviewed twice");
    let resumed: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(resumed["summaries"], report["summaries"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_docs_the_model_sees_the_docstring_and_hits_are_counted_by_severity() {
    // Rust/0 with its two-line docstring above `fn`: the bug (`distance < threshold`) moves
    // from file line 17 to 19.
    let finding = json!([{"start_line": 19, "end_line": 19, "quote": "distance < threshold",
        "severity": "warning", "principle": "correctness",
        "message": "compares a signed difference", "confidence": 0.9}]);
    let mock = MockLlm::start(Script {
        rules: vec![support::mock_llm::Rule {
            role: "critique".to_owned(),
            contains: "distance < threshold".to_owned(),
            reply: Reply::findings(finding),
        }],
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let u = mock.base_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        eval_command(
            &u,
            &[
                "--task", "Rust/0", "--format", "json", "--mode", "critique", "--verify", "probes",
                "--docs", "fix",
            ],
        )
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["docs"], "fix");
    assert_eq!(report["verify"], "probes");
    let r = &report["tasks"][0];
    assert_eq!(r["docs"], "fix");
    assert_eq!(r["buggy"]["hit"], true, "{r}");
    assert_eq!(r["buggy"]["hit_warning"], true, "{r}");
    assert_eq!(r["buggy"]["findings_by_severity"]["warning"], 1, "{r}");
    assert!(r["buggy"]["evidence"].is_object(), "{r}");
    let s = &report["summary"];
    assert_eq!(s["bug_line_hit_rate_warning"], 1.0, "{s}");
    assert_eq!(s["correct_with_finding"], 0, "{s}");
    let doc =
        "/// Check if in given list of numbers, are any two numbers closer to each other than";
    let requests = mock.requests();
    assert!(
        requests.iter().any(|b| b.to_string().contains(doc)),
        "the critic sees the docstring as the doc comment: {requests:?}"
    );
}

/// `eval --task TASKS --mode critique --format json`, which must succeed: its report.
async fn critique_report(base_url: &str, tasks: &str) -> Value {
    let (u, tasks) = (base_url.to_owned(), tasks.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        eval_command(
            &u,
            &["--task", &tasks, "--format", "json", "--mode", "critique"],
        )
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn eval_runs_the_tasks_it_is_named_and_refuses_an_unknown_one() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        revise: vec![Reply::content("no change")].into(),
        ..Script::default()
    })
    .await;
    let report = critique_report(&mock.base_url, "Rust/48,Rust/16").await;
    let ids: Vec<&str> = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["Rust/16", "Rust/48"], "in the dataset's order");
    let u = mock.base_url.clone();
    let out = tokio::task::spawn_blocking(move || eval_command(&u, &["--task", "Rust/9999"]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no task Rust/9999"));
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_whose_tests_need_a_crate_rustc_lacks_are_skipped_not_failed() {
    // Rust/32's tests call `rand::thread_rng()` (its solutions do not): they cannot compile,
    // so neither solution can be judged. Rust/48's can.
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let report = critique_report(&mock.base_url, "Rust/32,Rust/48").await;
    let tasks = report["tasks"].as_array().unwrap();
    let skipped: Vec<&str> = tasks
        .iter()
        .filter(|t| !t["skipped"].is_null())
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, vec!["Rust/32"], "{report}");
    assert_eq!(report["summary"]["skipped"], 1, "{report}");
    assert_eq!(report["summary"]["tasks"], 1, "{report}");
}

//! The aligned loop through the real server: bad revisions are caught by outside checks,
//! severities are grounded, reflection filters, fixes come per finding, and unchanged code is
//! answered from the cache.

mod support;

use serde_json::{Value, json};
use support::lsp_client::{LspClient, apply_edits};
use support::mock_llm::{MockLlm, Reply, Script};

const CODE: &str = "pub fn sum(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 1..xs.len() { s += xs[i]; }\n    s\n}\n";
const FIXED: &str = "pub fn sum(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 0..xs.len() { s += xs[i]; }\n    s\n}\n";

fn off_by_one(severity: &str) -> Value {
    json!({"start_line": 3, "end_line": 3, "quote": "1..xs.len()", "severity": severity,
           "principle": "correctness", "message": "the loop skips xs[0]", "confidence": 0.9})
}

fn all() -> Value {
    json!({"start": {"line": 0, "character": 0}, "end": {"line": 5, "character": 0}})
}

fn script(critique: Vec<Reply>, revise: Vec<Reply>) -> Script {
    Script {
        critique: critique.into(),
        revise: revise.into(),
        ..Script::default()
    }
}

/// A server on a workspace folder holding `src/lib.rs` = `code`, with `refine` settings.
async fn workspace(
    mock: &MockLlm,
    code: &str,
    settings: Value,
) -> (tempfile::TempDir, LspClient, String) {
    workspace_with(mock, code, settings, json!({})).await
}

/// [`workspace`], the client announcing `capabilities`.
async fn workspace_with(
    mock: &MockLlm,
    code: &str,
    settings: Value,
    capabilities: Value,
) -> (tempfile::TempDir, LspClient, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let file = dir.path().join("src").join("lib.rs");
    std::fs::write(&file, code).unwrap();
    let client = LspClient::start(&[("OPENAI_BASE_URL", &mock.base_url)]);
    let root = format!("file://{}", dir.path().display());
    // A verify.command runs the workspace's code: only where the user trusted it (here, as
    // VS Code does, through the editor's own workspace trust).
    let trusted = settings.get("verify").is_some();
    client
        .request(
            "initialize",
            json!({"processId": null, "rootUri": root, "capabilities": capabilities,
                   "initializationOptions": {"refine": settings, "trustedWorkspace": trusted}}),
        )
        .await
        .unwrap();
    client.notify("initialized", json!({})).await;
    let uri = format!("file://{}", file.display());
    client.open(&uri, "rust", code).await;
    (dir, client, uri)
}

async fn review(client: &LspClient, uri: &str) -> Value {
    let id = client.review(uri, all()).await;
    client.finished(&id).await
}

#[tokio::test]
async fn a_revision_that_does_not_parse_is_rejected() {
    let broken = FIXED.replace("    s\n}", "    s\n");
    let mock = MockLlm::start(script(
        vec![Reply::findings(json!([off_by_one("warning")]))],
        vec![Reply::code(&broken)],
    ))
    .await;
    let (_d, client, uri) = workspace(&mock, CODE, json!({"loop": {"max_iterations": 1}})).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], false);
    assert!(
        done["notes"].to_string().contains("does not parse"),
        "{done}"
    );
    assert_eq!(
        mock.requests().len(),
        2,
        "a rejected revision is not even critiqued"
    );
}

#[tokio::test]
async fn a_revision_that_changes_a_signature_is_rejected_unless_asked() {
    let changed = FIXED.replace("xs: &[i32]) -> i32", "xs: &[i64]) -> i64");
    let mock = MockLlm::start(script(
        vec![
            Reply::findings(json!([off_by_one("warning")])),
            Reply::findings(json!([])),
        ],
        vec![Reply::code(&changed)],
    ))
    .await;
    let (_d, client, uri) = workspace(&mock, CODE, json!({"loop": {"max_iterations": 1}})).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], false);
    assert!(
        done["notes"]
            .to_string()
            .contains("changes the signature of `sum`"),
        "{done}"
    );

    let asks = json!({"start_line": 1, "end_line": 1, "quote": "-> i32", "severity": "warning", "principle": "correctness",
                      "message": "sum overflows i32: change its return type to i64", "confidence": 0.9});
    mock.set_script(script(
        vec![Reply::findings(json!([asks])), Reply::findings(json!([]))],
        vec![Reply::code(&changed)],
    ));
    let id = client
        .command(
            "refine.review",
            json!([{"uri": uri, "range": all(), "force": true}]),
        )
        .await
        .unwrap();
    let done = client.finished(id["reviewId"].as_str().unwrap()).await;
    assert_eq!(done["revision"], true, "a finding asked for it: {done}");
}

#[tokio::test]
async fn verify_command_failures_go_back_to_the_reviser_once() {
    // The command fails when the file holds `BROKEN`; the first revision does, the retry does not.
    let mock = MockLlm::start(script(
        vec![
            Reply::findings(json!([off_by_one("warning")])),
            Reply::findings(json!([])),
        ],
        vec![
            Reply::code(&FIXED.replace("    s\n}", "    s // BROKEN\n}")),
            Reply::code(FIXED),
        ],
    ))
    .await;
    let settings = json!({"verify": {"command": "if grep -q BROKEN src/lib.rs; then echo 'error: found BROKEN in src/lib.rs' >&2; exit 1; fi"}});
    let (dir, client, uri) = workspace(&mock, CODE, settings).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], true, "{done}");
    let revises: Vec<Value> = mock
        .requests()
        .into_iter()
        .filter(|r| {
            r["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("# refine-ls reviser")
        })
        .collect();
    assert_eq!(revises.len(), 2);
    let retry = revises[1]["messages"][1]["content"].as_str().unwrap();
    assert!(
        retry.contains("failed verification") && retry.contains("found BROKEN"),
        "{retry}"
    );
    // The command ran on a scratch copy: the user's file is untouched.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("src/lib.rs")).unwrap(),
        CODE
    );
    let actions = client.code_actions(&uri, all()).await;
    let apply = actions
        .iter()
        .find(|a| a["title"].as_str().unwrap().contains("apply revision"))
        .unwrap();
    let edits = apply["edit"]["documentChanges"][0]["edits"]
        .as_array()
        .unwrap();
    assert_eq!(apply_edits(CODE, edits, "utf-16"), FIXED);
}

#[tokio::test]
async fn a_revision_failing_the_command_twice_is_never_offered() {
    let bad = FIXED.replace("    s\n}", "    s // BROKEN\n}");
    let mock = MockLlm::start(script(
        vec![
            Reply::findings(json!([off_by_one("warning")])),
            Reply::findings(json!([])),
        ],
        vec![Reply::code(&bad)],
    ))
    .await;
    let settings = json!({"loop": {"max_iterations": 1}, "verify": {"command": "! grep -q BROKEN src/lib.rs"}});
    let (_d, client, uri) = workspace(&mock, CODE, settings).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], false);
    assert!(
        done["notes"]
            .to_string()
            .contains("passes on the original but fails on it"),
        "{done}"
    );
}

#[tokio::test]
async fn a_command_from_the_repository_runs_only_in_a_trusted_workspace() {
    let mock = MockLlm::start(script(vec![Reply::findings(json!([]))], vec![])).await;
    let (dir, client, uri) = workspace(&mock, CODE, json!({})).await;
    drop(client);
    let elsewhere = tempfile::tempdir().unwrap();
    let marker = elsewhere.path().join("ran");
    std::fs::write(
        dir.path().join(".refine.toml"),
        format!("[verify]\ncommand = \"touch {}\"\n", marker.display()),
    )
    .unwrap();
    let start = |trust: &std::path::Path| {
        LspClient::start(&[
            ("OPENAI_BASE_URL", &mock.base_url),
            ("REFINE_LS_TRUST_FILE", trust.to_str().unwrap()),
            // The marker is written outside the workspace, which the sandbox forbids.
            ("REFINE_LS_BWRAP", ""),
        ])
    };
    let trust_file = dir.path().join("trust-list");
    let root = format!("file://{}", dir.path().display());
    let client = start(&trust_file);
    client
        .request(
            "initialize",
            json!({"processId": null, "rootUri": root, "capabilities": {}}),
        )
        .await
        .unwrap();
    client.open(&uri, "rust", CODE).await;
    review(&client, &uri).await;
    assert!(
        !marker.exists(),
        "an untrusted repository's command never runs"
    );
    drop(client);

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_refine-ls"))
        .args(["trust", dir.path().to_str().unwrap()])
        .env("REFINE_LS_TRUST_FILE", &trust_file)
        .status()
        .unwrap();
    assert!(status.success());
    let client = start(&trust_file);
    client
        .request(
            "initialize",
            json!({"processId": null, "rootUri": root, "capabilities": {}}),
        )
        .await
        .unwrap();
    client.open(&uri, "rust", CODE).await;
    review(&client, &uri).await;
    assert!(marker.exists(), "trusted: the repository's command ran");
}

#[tokio::test]
async fn errors_need_backing_from_outside_the_model() {
    let two = json!([off_by_one("error"),
        {"start_line": 2, "end_line": 2, "quote": "let mut s = 0;", "severity": "error", "principle": "readability",
         "message": "name s poorly", "confidence": 0.9}]);
    let mock = MockLlm::start(script(
        vec![Reply::findings(two)],
        vec![Reply::content("none")],
    ))
    .await;
    let (_d, client, uri) = workspace(&mock, CODE, json!({"loop": {"max_iterations": 1}})).await;
    // The compiler's own diagnostic on line 3, as the editor passes it in the code action context.
    let rustc = json!({"range": {"start": {"line": 2, "character": 4}, "end": {"line": 2, "character": 9}},
                       "severity": 1, "source": "rustc", "message": "index out of bounds"});
    let actions = client
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": all(), "context": {"diagnostics": [rustc]}}),
        )
        .await
        .unwrap();
    let review_cmd = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"] == "Refine: review selection")
        .unwrap()["command"]
        .clone();
    let res = client
        .command("refine.review", review_cmd["arguments"].clone())
        .await
        .unwrap();
    let done = client.finished(res["reviewId"].as_str().unwrap()).await;
    assert_eq!(done["findings"], 2);
    let user = mock.requests()[0]["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        user.contains("Facts reported by the compiler")
            && user.contains("line 3: error: index out of bounds (rustc)"),
        "{user}"
    );
    let diags = client.diagnostics(&uri);
    let severity_on = |line: u64| {
        diags
            .iter()
            .find(|d| d["range"]["start"]["line"] == line)
            .unwrap()["severity"]
            .clone()
    };
    assert_eq!(severity_on(2), 1, "backed by rustc: stays an error");
    assert_eq!(severity_on(1), 2, "unbacked: capped at warning");
}

#[tokio::test]
async fn the_reflection_pass_drops_weak_findings_and_principles_can_be_switched_off() {
    let findings = json!([off_by_one("warning"),
        {"start_line": 4, "end_line": 4, "quote": "s", "severity": "info", "principle": "readability", "message": "rename s", "confidence": 0.9},
        {"start_line": 2, "end_line": 2, "quote": "let mut s = 0;", "severity": "warning", "principle": "performance", "message": "invented", "confidence": 0.9}]);
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(findings)].into(),
        reflect: vec![Reply::content(r#"{"scores":[{"index":0,"validity":9,"importance":8},{"index":1,"validity":2,"importance":6}]}"#)].into(),
        revise: vec![Reply::content("none")].into(),
        ..Script::default()
    })
    .await;
    let settings = json!({"loop": {"reflect": true, "max_iterations": 1, "disabled_principles": ["readability"]}});
    let (_d, client, uri) = workspace(&mock, CODE, settings).await;
    let done = review(&client, &uri).await;
    // readability is off (dropped before reflection); the invented one scored 2 and goes.
    assert_eq!(done["findings"], 1, "{done}");
    assert!(
        done["notes"]
            .to_string()
            .contains("reflection pass dropped 1"),
        "{done}"
    );
    let diags = client.diagnostics(&uri);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0]["message"], "the loop skips xs[0]");
    let system = mock.requests()[0]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !system.contains("## readability"),
        "a switched-off principle is not asked for"
    );
}

#[tokio::test]
async fn each_finding_gets_a_fix_with_only_its_own_edits() {
    let code = "pub fn f(xs: &[i32]) -> i32 {\n    let a = xs[0] + 1;\n    let b = 2;\n    let c = 3;\n    a * b * c\n}\n";
    let fixed = code
        .replace("xs[0] + 1", "xs.first().copied().unwrap_or(0) + 1")
        .replace("let c = 3;", "let c = 4;");
    let findings = json!([
        {"start_line": 2, "end_line": 2, "quote": "xs[0]", "severity": "warning", "principle": "robustness", "message": "panics on an empty slice", "confidence": 0.9},
        {"start_line": 4, "end_line": 4, "quote": "3", "severity": "warning", "principle": "correctness", "message": "c should be 4", "confidence": 0.9}]);
    let mock = MockLlm::start(script(
        vec![Reply::findings(findings), Reply::findings(json!([]))],
        vec![Reply::code(&fixed)],
    ))
    .await;
    let (_d, client, uri) = workspace(&mock, code, json!({})).await;
    let id = client
        .review(
            &uri,
            json!({"start": {"line": 0, "character": 0}, "end": {"line": 6, "character": 0}}),
        )
        .await;
    client.finished(&id).await;
    let on_line =
        |l: u32| json!({"start": {"line": l, "character": 0}, "end": {"line": l, "character": 30}});
    let actions = client.code_actions(&uri, on_line(1)).await;
    let fix = actions
        .iter()
        .find(|a| a["title"] == "Refine: fix: panics on an empty slice")
        .expect("per-finding fix");
    let edits = fix["edit"]["documentChanges"][0]["edits"]
        .as_array()
        .unwrap();
    assert_eq!(
        apply_edits(code, edits, "utf-16"),
        code.replace("xs[0] + 1", "xs.first().copied().unwrap_or(0) + 1")
    );
    assert!(
        actions
            .iter()
            .all(|a| a["title"] != "Refine: fix: c should be 4"),
        "only fixes under the cursor"
    );
    let actions = client.code_actions(&uri, on_line(3)).await;
    let fix = actions
        .iter()
        .find(|a| a["title"] == "Refine: fix: c should be 4")
        .unwrap();
    let edits = fix["edit"]["documentChanges"][0]["edits"]
        .as_array()
        .unwrap();
    assert_eq!(
        apply_edits(code, edits, "utf-16"),
        code.replace("let c = 3;", "let c = 4;")
    );
    assert!(
        actions
            .iter()
            .any(|a| a["title"] == "Refine: apply revision (fixes 2 of 2 findings)")
    );
}

#[tokio::test]
async fn unchanged_code_is_answered_from_the_cache_unless_forced() {
    let mock = MockLlm::start(script(
        vec![
            Reply::findings(json!([off_by_one("warning")])),
            Reply::findings(json!([])),
        ],
        vec![Reply::code(FIXED)],
    ))
    .await;
    let (_d, client, uri) = workspace(&mock, CODE, json!({})).await;
    let first = review(&client, &uri).await;
    assert_eq!(first["llmCalls"], 3);
    let calls = mock.requests().len();
    let second = review(&client, &uri).await;
    assert_eq!(second["llmCalls"], 0);
    assert_eq!(second["findings"], 1);
    assert_eq!(second["revision"], true);
    assert_eq!(mock.requests().len(), calls, "no model call");
    let diags = client.diagnostics(&uri);
    assert_eq!(
        diags[0]["range"]["start"],
        json!({"line": 2, "character": 13})
    );
    let res = client
        .command(
            "refine.review",
            json!([{"uri": uri, "range": all(), "force": true}]),
        )
        .await
        .unwrap();
    let forced = client.finished(res["reviewId"].as_str().unwrap()).await;
    assert!(forced["llmCalls"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn large_selections_are_revised_with_search_replace_blocks() {
    let blocks = "<<<<<<< SEARCH\n    for i in 1..xs.len() { s += xs[i]; }\n=======\n    for i in 0..xs.len() { s += xs[i]; }\n>>>>>>> REPLACE\n";
    let mock = MockLlm::start(script(
        vec![
            Reply::findings(json!([off_by_one("warning")])),
            Reply::findings(json!([])),
        ],
        vec![Reply::content(blocks)],
    ))
    .await;
    let (_d, client, uri) = workspace(
        &mock,
        CODE,
        json!({"loop": {"search_replace_min_lines": 3}}),
    )
    .await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], true, "{done}");
    let revise = mock
        .requests()
        .into_iter()
        .find(|r| {
            r["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("# refine-ls reviser")
        })
        .unwrap();
    assert!(
        revise["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("<<<<<<< SEARCH")
    );

    // A block that matches nowhere fails the revision with its reason, never a wrong edit.
    let wrong = "<<<<<<< SEARCH\n    for j in 1..n {}\n=======\n    x\n>>>>>>> REPLACE\n";
    mock.set_script(script(
        vec![Reply::findings(json!([off_by_one("warning")]))],
        vec![Reply::content(wrong)],
    ));
    let res = client
        .command(
            "refine.review",
            json!([{"uri": uri, "range": all(), "force": true}]),
        )
        .await
        .unwrap();
    let done = client.finished(res["reviewId"].as_str().unwrap()).await;
    assert_eq!(done["revision"], false);
    assert!(
        done["notes"].to_string().contains("matches nothing"),
        "{done}"
    );
}

// The judge: a revision is offered on evidence, never vetoed by the model's opinion of code
// the revision did not touch.

fn verdict(finding: u64, resolved: bool, quote: &str) -> Reply {
    Reply::content(
        json!({"verdicts": [{"finding": finding, "resolved": resolved, "quote": quote}]})
            .to_string(),
    )
}

fn calls_of(mock: &MockLlm, role: &str) -> usize {
    mock.requests()
        .iter()
        .filter(|r| support::mock_llm::role_of(r) == role)
        .count()
}

#[tokio::test]
async fn an_invented_problem_on_unchanged_lines_never_vetoes_a_judged_fix() {
    // Were the revision critiqued afresh, this critic would invent a problem on line 2, which
    // the revision leaves alone, and rate the fix no better than the original.
    let invented = json!({"start_line": 2, "end_line": 2, "quote": "let mut s = 0;",
        "severity": "error", "principle": "correctness", "message": "s may overflow",
        "confidence": 0.9});
    let mut s = script(
        vec![
            Reply::findings(json!([off_by_one("warning")])),
            Reply::findings(json!([invented.clone(), invented])),
        ],
        vec![Reply::code(FIXED)],
    );
    s.judge = vec![verdict(1, true, "for i in 0..xs.len() { s += xs[i]; }")].into();
    let mock = MockLlm::start(s).await;
    let (_d, client, uri) = workspace(&mock, CODE, json!({})).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], true, "{done}");
    assert_eq!(
        calls_of(&mock, "critique"),
        1,
        "no re-critique of the revision"
    );
    assert_eq!(calls_of(&mock, "judge"), 1);
    let judged = mock
        .requests()
        .into_iter()
        .find(|r| support::mock_llm::role_of(r) == "judge")
        .unwrap();
    let user = judged["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("Finding 1 (line 3): the loop skips xs[0]") && user.contains("0..xs.len()"),
        "the judge sees the finding and the revision: {user}"
    );
    let actions = client.code_actions(&uri, all()).await;
    let apply = actions
        .iter()
        .find(|a| a["title"].as_str().unwrap().contains("apply revision"))
        .expect("the fix is offered");
    assert!(
        apply["title"].as_str().unwrap().contains("fixes 1 of 1"),
        "{apply}"
    );
}

#[tokio::test]
async fn a_yes_without_evidence_on_a_changed_line_does_not_count() {
    for (verdict_reply, why) in [
        (
            verdict(1, true, "let mut s = 0;"),
            "quotes a line the revision did not change",
        ),
        (
            verdict(1, true, "xs.iter().sum()"),
            "quotes code that is not there",
        ),
        (
            verdict(1, false, "for i in 0..xs.len() { s += xs[i]; }"),
            "says no",
        ),
    ] {
        let mut s = script(
            vec![Reply::findings(json!([off_by_one("warning")]))],
            vec![Reply::code(FIXED)],
        );
        s.judge = vec![verdict_reply].into();
        let mock = MockLlm::start(s).await;
        let settings = json!({"loop": {"max_iterations": 1}});
        let (_d, client, uri) = workspace(&mock, CODE, settings).await;
        let done = review(&client, &uri).await;
        assert_eq!(done["revision"], false, "{why}: {done}");
        assert!(
            done["notes"]
                .to_string()
                .contains("resolves none of the 1 finding"),
            "{why}: {done}"
        );
    }
}

#[tokio::test]
async fn tests_that_fail_on_the_original_and_pass_on_the_revision_decide_alone() {
    // The command fails while the file holds `1..xs.len()`; the judge would say "no".
    let mut s = script(
        vec![Reply::findings(json!([off_by_one("warning")]))],
        vec![Reply::code(FIXED)],
    );
    s.judge = vec![verdict(1, false, "")].into();
    let mock = MockLlm::start(s).await;
    let settings = json!({"verify": {"command": "! grep -q '1\\.\\.xs' src/lib.rs"}});
    let (_d, client, uri) = workspace(&mock, CODE, settings).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], true, "{done}");
    assert_eq!(calls_of(&mock, "judge"), 0, "passing tests need no judge");
    assert!(
        done["notes"].to_string().contains("accepted on that alone"),
        "{done}"
    );
}

#[tokio::test]
async fn a_backed_regression_vetoes_what_the_judge_accepts() {
    // The judge accepts the fix, but the revision breaks the command that passed before.
    let bad = FIXED.replace("    s\n}", "    s // BROKEN\n}");
    let mut s = script(
        vec![Reply::findings(json!([off_by_one("warning")]))],
        vec![Reply::code(&bad)],
    );
    s.judge = vec![verdict(1, true, "for i in 0..xs.len() { s += xs[i]; }")].into();
    let mock = MockLlm::start(s).await;
    let settings = json!({"loop": {"max_iterations": 1}, "verify": {"command": "! grep -q BROKEN src/lib.rs"}});
    let (_d, client, uri) = workspace(&mock, CODE, settings).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], false, "{done}");
    assert_eq!(calls_of(&mock, "judge"), 0, "verification comes first");
}

#[tokio::test]
async fn an_unreadable_judge_falls_back_to_the_lines_the_revision_changes() {
    let mut s = script(
        vec![Reply::findings(json!([off_by_one("warning")]))],
        vec![Reply::code(FIXED)],
    );
    s.judge = vec![Reply::content("I think it is fine.")].into();
    let mock = MockLlm::start(s).await;
    let (_d, client, uri) = workspace(&mock, CODE, json!({})).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], true, "{done}");
    assert!(
        done["notes"].to_string().contains("could not be read"),
        "{done}"
    );
}

#[tokio::test]
async fn what_the_first_revision_leaves_unresolved_goes_to_the_second() {
    let second = json!({"start_line": 4, "end_line": 4, "quote": "s", "severity": "warning",
        "principle": "readability", "message": "name the total", "confidence": 0.9});
    let both = FIXED.replace("    s\n}", "    s // total\n}");
    let mut s = script(
        vec![Reply::findings(json!([off_by_one("warning"), second]))],
        vec![Reply::code(FIXED), Reply::code(&both)],
    );
    s.judge = vec![
        Reply::content(
            json!({"verdicts": [
                {"finding": 1, "resolved": true, "quote": "for i in 0..xs.len() { s += xs[i]; }"},
                {"finding": 2, "resolved": false, "quote": ""}]})
            .to_string(),
        ),
        verdict(1, true, "s // total"),
    ]
    .into();
    let mock = MockLlm::start(s).await;
    let (_d, client, uri) = workspace(&mock, CODE, json!({})).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], true, "{done}");
    assert_eq!(done["iterations"], 2, "{done}");
    let actions = client.code_actions(&uri, all()).await;
    let apply = actions
        .iter()
        .find(|a| a["title"].as_str().unwrap().contains("apply revision"))
        .expect("the second revision is offered");
    assert!(
        apply["title"].as_str().unwrap().contains("fixes 2 of 2"),
        "{apply}"
    );
    let edits = apply["edit"]["documentChanges"][0]["edits"]
        .as_array()
        .unwrap();
    assert_eq!(apply_edits(CODE, edits, "utf-16"), both);
    let revises: Vec<Value> = mock
        .requests()
        .into_iter()
        .filter(|r| support::mock_llm::role_of(r) == "revise")
        .collect();
    let second_ask = revises[1]["messages"][1]["content"].as_str().unwrap();
    assert!(
        second_ask.contains("name the total") && !second_ask.contains("skips xs[0]"),
        "round 2 is asked only about what is left: {second_ask}"
    );
}

#[tokio::test]
async fn the_reflection_pass_scores_findings_past_the_tenth() {
    // 13 findings; the reflector scores the 13th (index 12) as invented.
    let findings: Vec<Value> = (0..13)
        .map(|i| {
            json!({"start_line": 2, "end_line": 2, "quote": "let mut s = 0;", "severity": "warning",
                   "principle": "correctness", "message": format!("finding {i}"), "confidence": 0.9})
        })
        .collect();
    let scores: Vec<Value> = (0..13)
        .map(|i| json!({"index": i, "validity": if i == 12 { 1 } else { 9 }, "importance": 8}))
        .collect();
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(Value::Array(findings))].into(),
        reflect: vec![Reply::content(json!({ "scores": scores }).to_string())].into(),
        ..Script::default()
    })
    .await;
    let settings = json!({"loop": {"reflect": true, "max_iterations": 0}});
    let (_d, client, uri) = workspace(&mock, CODE, settings).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["findings"], 12, "{done}");
    let diags = client.diagnostics(&uri);
    assert!(
        diags.iter().all(|d| d["message"] != "finding 12"),
        "the 13th finding, scored 1, is dropped: {diags:?}"
    );
}

#[tokio::test]
async fn a_failing_judge_call_falls_back_and_the_review_still_ends() {
    let mut s = script(
        vec![Reply::findings(json!([off_by_one("warning")]))],
        vec![Reply::code(FIXED)],
    );
    s.judge = vec![Reply::status(
        400,
        r#"{"error":{"message":"the judge is unavailable"}}"#,
    )]
    .into();
    let mock = MockLlm::start(s).await;
    let (_d, client, uri) = workspace(&mock, CODE, json!({})).await;
    let done = review(&client, &uri).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(done["revision"], true, "{done}");
    let notes = done["notes"].to_string();
    assert!(
        notes.contains("the judge call failed") && notes.contains("the judge is unavailable"),
        "{notes}"
    );
}

fn requests_of(mock: &MockLlm, header: &str) -> Vec<String> {
    mock.requests()
        .into_iter()
        .filter(|r| {
            r["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains(header)
        })
        .map(|r| r["messages"][1]["content"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_refused_revision_s_reason_goes_to_the_next_round() {
    let broken = FIXED.replace("    s\n}", "    s )\n}");
    let mut s = script(
        vec![Reply::findings(json!([off_by_one("warning")]))],
        vec![Reply::code(&broken), Reply::code(FIXED)],
    );
    s.judge = vec![verdict(1, true, "for i in 0..xs.len() { s += xs[i]; }")].into();
    let mock = MockLlm::start(s).await;
    let (_d, client, uri) = workspace(&mock, CODE, json!({})).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], true, "{done}");
    let revises = requests_of(&mock, "# refine-ls reviser");
    assert_eq!(revises.len(), 2);
    assert!(
        !revises[0].contains("failed verification"),
        "{}",
        revises[0]
    );
    assert!(
        revises[1].contains("failed verification") && revises[1].contains("does not parse"),
        "the second round is told why the first was refused: {}",
        revises[1]
    );
}

fn explained(change: u64, message: &str, fixes: bool) -> Reply {
    Reply::content(
        json!({"changes": [{"change": change, "message": message, "principle": "correctness",
               "severity": "error", "fixes_a_problem": fixes}]})
        .to_string(),
    )
}

#[tokio::test]
async fn fix_first_offers_a_verified_fix_explained_on_the_original_lines() {
    let mut s = script(vec![], vec![Reply::code(FIXED)]);
    s.explain = vec![explained(1, "the loop starts at 1 and skips xs[0]", true)].into();
    let mock = MockLlm::start(s).await;
    let (_d, client, uri) =
        workspace(&mock, CODE, json!({"loop": {"strategy": "fix-first"}})).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], true, "{done}");
    assert_eq!(done["findings"], 1, "{done}");
    assert_eq!(calls_of(&mock, "critique"), 0, "no critique before the fix");
    assert_eq!(calls_of(&mock, "judge"), 0);
    let fixes = requests_of(&mock, "# refine-ls fixer");
    assert_eq!(fixes.len(), 1);
    assert!(fixes[0].contains("for i in 1..xs.len()"), "{}", fixes[0]);
    let explain = requests_of(&mock, "# refine-ls explainer");
    assert!(
        explain[0].contains("-   3 |     for i in 1..xs.len()")
            && explain[0].contains("+   3 |     for i in 0..xs.len()"),
        "the explainer sees the hunk: {}",
        explain[0]
    );
    // The finding sits on the original line the fix replaces, with the explainer's words.
    let diags = client.diagnostics(&uri);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0]["range"]["start"]["line"], 2);
    assert!(
        diags[0]["message"]
            .as_str()
            .unwrap()
            .contains("skips xs[0]"),
        "{diags:?}"
    );
    let actions = client.code_actions(&uri, all()).await;
    let apply = actions
        .iter()
        .find(|a| a["title"].as_str().unwrap().contains("apply revision"))
        .expect("the fix is offered");
    let edits = apply["edit"]["documentChanges"][0]["edits"]
        .as_array()
        .unwrap();
    assert_eq!(apply_edits(CODE, edits, "utf-16"), FIXED);
}

#[tokio::test]
async fn fix_first_leaves_code_it_finds_nothing_in_alone() {
    // The model gives the code back with a trailing space: no fix, no finding.
    let mock = MockLlm::start(script(
        vec![],
        vec![Reply::code(&CODE.replace("    s\n", "    s  \n"))],
    ))
    .await;
    let (_d, client, uri) =
        workspace(&mock, CODE, json!({"loop": {"strategy": "fix-first"}})).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], false, "{done}");
    assert_eq!(done["findings"], 0, "{done}");
    assert_eq!(calls_of(&mock, "explain"), 0);
    assert!(
        done["notes"].to_string().contains("nothing to fix"),
        "{done}"
    );
    assert!(client.diagnostics(&uri).is_empty());
}

#[tokio::test]
async fn fix_first_sends_the_failing_check_back_and_tests_back_the_finding() {
    // verify.command fails on the original (`1..xs`) and on the first fix (`BROKEN`).
    let bad = FIXED.replace("    s\n}", "    s // BROKEN\n}");
    let mut s = script(vec![], vec![Reply::code(&bad), Reply::code(FIXED)]);
    s.explain = vec![explained(1, "xs[0] is never added", true)].into();
    let mock = MockLlm::start(s).await;
    let settings = json!({"loop": {"strategy": "fix-first"}, "verify": {"command":
        "if grep -q '1\\.\\.xs' src/lib.rs; then echo 'assertion `left == right` failed: sum is 5' >&2; exit 1; fi; if grep -q BROKEN src/lib.rs; then echo 'error: found BROKEN' >&2; exit 1; fi"}});
    let (_d, client, uri) = workspace(&mock, CODE, settings).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], true, "{done}");
    let fixes = requests_of(&mock, "# refine-ls fixer");
    assert_eq!(fixes.len(), 2);
    assert!(
        fixes[0].contains("sum is 5"),
        "the fixer knows what fails now: {}",
        fixes[0]
    );
    assert!(
        fixes[1].contains("failed verification") && fixes[1].contains("found BROKEN"),
        "{}",
        fixes[1]
    );
    // The failing command backs the finding: its severity is not capped.
    let diags = client.diagnostics(&uri);
    assert_eq!(diags[0]["severity"], 1, "{diags:?}");
}

#[tokio::test]
async fn fix_first_asks_again_with_sampling_when_the_code_comes_back_unchanged_but_the_check_fails()
{
    let mut s = script(vec![], vec![Reply::code(CODE), Reply::code(FIXED)]);
    s.explain = vec![explained(1, "xs[0] is never added", true)].into();
    let mock = MockLlm::start(s).await;
    let settings = json!({"loop": {"strategy": "fix-first"}, "verify": {"command":
        "if grep -q '1\\.\\.xs' src/lib.rs; then echo 'assertion failed: sum is 5' >&2; exit 1; fi"}});
    let (_d, client, uri) = workspace(&mock, CODE, settings).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], true, "{done}");
    let fixes: Vec<Value> = mock
        .requests()
        .into_iter()
        .filter(|r| {
            r["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("# refine-ls fixer")
        })
        .collect();
    assert_eq!(fixes.len(), 2);
    assert!(
        fixes[0].get("temperature").is_none_or(|t| t == 0.0),
        "{}",
        fixes[0]
    );
    assert_eq!(fixes[1]["temperature"], 0.7, "the second ask samples");
    assert!(
        fixes[1]["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("gave the code back unchanged"),
        "{}",
        fixes[1]
    );
    assert!(done["notes"].to_string().contains("asked again"), "{done}");
}

#[tokio::test]
async fn fix_first_shows_a_critique_when_no_fix_passes_verification() {
    // Both fixes break the syntax: the user still sees what is wrong, without a revision.
    let broken = FIXED.replace("    s\n}", "    s )\n}");
    let mock = MockLlm::start(script(
        vec![Reply::findings(json!([off_by_one("warning")]))],
        vec![Reply::code(&broken), Reply::code(&broken)],
    ))
    .await;
    let (_d, client, uri) =
        workspace(&mock, CODE, json!({"loop": {"strategy": "fix-first"}})).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], false, "{done}");
    assert_eq!(done["findings"], 1, "{done}");
    assert_eq!(
        calls_of(&mock, "revise"),
        2,
        "two fixes, no revision after the critique"
    );
    assert_eq!(calls_of(&mock, "critique"), 1);
    assert_eq!(calls_of(&mock, "explain"), 0);
    assert!(
        done["notes"]
            .to_string()
            .contains("no fix passed verification; a critique is shown instead"),
        "{done}"
    );
    let diags = client.diagnostics(&uri);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0]["range"]["start"]["line"], 2, "{diags:?}");
}

#[tokio::test]
async fn fix_first_whose_fixer_times_out_shows_a_critique() {
    // The fixer's whole-selection answer takes longer than the call timeout; the shorter
    // critique that follows does not.
    let mock = MockLlm::start(script(
        vec![Reply::findings(json!([off_by_one("warning")]))],
        vec![Reply::code(FIXED).delayed(2_500)],
    ))
    .await;
    let settings = json!({"loop": {"strategy": "fix-first"},
        "provider": {"timeout_secs": 1}});
    let (_d, client, uri) = workspace(&mock, CODE, settings).await;
    let done = review(&client, &uri).await;
    assert!(done["error"].is_null(), "the review does not fail: {done}");
    assert_eq!(done["revision"], false, "{done}");
    assert_eq!(done["findings"], 1, "{done}");
    assert!(
        done["notes"]
            .to_string()
            .contains("a critique is shown instead"),
        "{done}"
    );
    assert_eq!(client.diagnostics(&uri).len(), 1);
}

#[tokio::test]
async fn the_single_call_baseline_is_one_verified_fix_with_no_findings() {
    let broken = FIXED.replace("    s\n}", "    s )\n}");
    let mock = MockLlm::start(script(
        vec![],
        vec![Reply::code(&broken), Reply::code(FIXED)],
    ))
    .await;
    let (_d, client, uri) = workspace(&mock, CODE, json!({"loop": {"strategy": "single"}})).await;
    let done = review(&client, &uri).await;
    assert_eq!(
        done["revision"], false,
        "a refused fix gets no second call: {done}"
    );
    assert_eq!(calls_of(&mock, "revise"), 1);
    assert_eq!(calls_of(&mock, "explain"), 0);
    assert_eq!(done["findings"], 0);
}

#[tokio::test]
async fn cancelling_the_progress_stops_verify_command_and_everything_it_started() {
    // The command (on the original, before any model call) would run for 97 s, in a child
    // of `sh` and in a grandchild in the background.
    let mock = MockLlm::start(script(vec![Reply::findings(json!([]))], vec![])).await;
    let (_dir, client, uri) = workspace_with(
        &mock,
        CODE,
        json!({"verify": {"command": "(sleep 97.31; true) & sleep 97.31; true"}}),
        json!({"window": {"workDoneProgress": true}}),
    )
    .await;
    let id = client.review(&uri, all()).await;
    let begin = client
        .wait_for("$/progress", |p| p["value"]["kind"] == "begin")
        .await;
    assert_eq!(begin["value"]["cancellable"], true, "{begin}");
    let running = || {
        std::process::Command::new("pgrep")
            .args(["-f", "sleep 97.31"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or(0)
    };
    let t0 = std::time::Instant::now();
    while running() < 2 && t0.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(running() >= 2, "the command is running");
    let asked = std::time::Instant::now();
    client
        .notify(
            "window/workDoneProgress/cancel",
            json!({"token": begin["token"]}),
        )
        .await;
    let done = client
        .finished_within(&id, std::time::Duration::from_secs(5))
        .await;
    let took = asked.elapsed();
    eprintln!("cancelled during verify.command in {took:?}");
    assert_eq!(done["error"], "the review was cancelled", "{done}");
    let end = client
        .wait_for("$/progress", |p| p["value"]["kind"] == "end")
        .await;
    assert_eq!(end["token"], begin["token"]);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(running(), 0, "the whole process group was killed");
    assert_eq!(calls_of(&mock, "critique"), 0);
}

#[tokio::test]
async fn a_judged_fix_the_failing_tests_still_fail_on_goes_back_with_their_output() {
    // The command fails while `1..xs` or `PARTIAL` is in the file. Revision 1 is judged to
    // fix the finding but the tests still fail; revision 2 passes them and is offered.
    let partial = FIXED.replace("    s\n}", "    s // PARTIAL\n}");
    let mut s = script(
        vec![Reply::findings(json!([off_by_one("warning")]))],
        vec![Reply::code(&partial), Reply::code(FIXED)],
    );
    s.judge = vec![verdict(1, true, "for i in 0..xs.len() { s += xs[i]; }")].into();
    let mock = MockLlm::start(s).await;
    let settings = json!({"verify": {"command":
        "if grep -q -e '1\\.\\.xs' -e PARTIAL src/lib.rs; then echo 'assertion failed: sum(&[1,2]) == 3' >&2; exit 1; fi"}});
    let (_d, client, uri) = workspace(&mock, CODE, settings).await;
    let done = review(&client, &uri).await;
    assert_eq!(done["revision"], true, "{done}");
    let revises = requests_of(&mock, "# refine-ls reviser");
    assert_eq!(
        revises.len(),
        2,
        "the loop went on although the judge was satisfied"
    );
    assert!(
        revises[1].contains("assertion failed: sum(&[1,2]) == 3"),
        "{}",
        revises[1]
    );
    let actions = client.code_actions(&uri, all()).await;
    let apply = actions
        .iter()
        .find(|a| a["title"].as_str().unwrap().contains("apply revision"))
        .expect("offered");
    let edits = apply["edit"]["documentChanges"][0]["edits"]
        .as_array()
        .unwrap();
    assert_eq!(
        apply_edits(CODE, edits, "utf-16"),
        FIXED,
        "the version the tests pass"
    );
}

#[tokio::test]
async fn a_revision_holding_a_doc_test_fence_is_read_whole() {
    let doc = "/// Sums.\n///\n/// ```\n/// assert_eq!(sum(&[1]), 1);\n/// ```\n";
    let (code, fixed) = (format!("{doc}{CODE}"), format!("{doc}{FIXED}"));
    let mut finding = off_by_one("warning");
    finding["start_line"] = json!(8);
    finding["end_line"] = json!(8);
    let mut s = script(
        vec![Reply::findings(json!([finding]))],
        vec![Reply::code(&fixed)],
    );
    s.judge = vec![verdict(1, true, "for i in 0..xs.len() { s += xs[i]; }")].into();
    let mock = MockLlm::start(s).await;
    let (_d, client, uri) = workspace(&mock, &code, json!({})).await;
    let id = client
        .review(
            &uri,
            json!({"start": {"line": 0, "character": 0}, "end": {"line": 10, "character": 0}}),
        )
        .await;
    let done = client.finished(&id).await;
    assert_eq!(done["revision"], true, "{done}");
    let actions = client
        .code_actions(
            &uri,
            json!({"start": {"line": 0, "character": 0}, "end": {"line": 10, "character": 0}}),
        )
        .await;
    let apply = actions
        .iter()
        .find(|a| a["title"].as_str().unwrap().contains("apply revision"))
        .expect("offered");
    let edits = apply["edit"]["documentChanges"][0]["edits"]
        .as_array()
        .unwrap();
    assert_eq!(apply_edits(&code, edits, "utf-16"), fixed);
}

#[tokio::test]
async fn cancelling_while_the_workspace_is_copied_for_verify_command_stops_at_once() {
    // A workspace of many files: the scratch copy takes a while; the command never runs.
    let mock = MockLlm::start(script(vec![Reply::findings(json!([]))], vec![])).await;
    let (dir, client, uri) = workspace_with(
        &mock,
        CODE,
        json!({"verify": {"command": "touch RAN"}}),
        json!({"window": {"workDoneProgress": true}}),
    )
    .await;
    for d in 0..60 {
        let sub = dir.path().join(format!("data/{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..500 {
            std::fs::write(sub.join(format!("{f}.txt")), "x").unwrap();
        }
    }
    let id = client.review(&uri, all()).await;
    client
        .wait_for("$/progress", |p| p["value"]["kind"] == "begin")
        .await;
    let asked = std::time::Instant::now();
    let res = client
        .command("refine.cancel", json!([{"reviewId": id}]))
        .await
        .unwrap();
    assert_eq!(res["cancelled"], true);
    let done = client
        .finished_within(&id, std::time::Duration::from_secs(5))
        .await;
    eprintln!("cancelled during the scratch copy in {:?}", asked.elapsed());
    assert_eq!(done["error"], "the review was cancelled", "{done}");
    assert_eq!(
        calls_of(&mock, "critique"),
        0,
        "no model call after the cancel"
    );
}

#[tokio::test]
async fn a_fix_only_for_a_dismissed_finding_is_not_offered() {
    // The fixer changes the loop anyway (a small model told not to may still), and the
    // explainer says that is what the change fixes: the finding was dismissed, so neither the
    // finding nor a revision made only for it is offered.
    let fixes_the_loop = || {
        let mut s = script(vec![], vec![Reply::code(FIXED)]);
        s.explain = vec![explained(1, "the loop starts at 1 and skips xs[0]", true)].into();
        s
    };
    let mock = MockLlm::start(fixes_the_loop()).await;
    let (dir, client, uri) =
        workspace(&mock, CODE, json!({"loop": {"strategy": "fix-first"}})).await;
    let first = review(&client, &uri).await;
    assert_eq!(first["revision"], true, "{first}");
    let diags = client.diagnostics(&uri);
    assert_eq!(diags.len(), 1, "{diags:?}");
    let res = client
        .command(
            "refine.dismissFinding",
            json!([{"uri": uri, "reviewId": diags[0]["data"]["reviewId"],
                    "findingId": diags[0]["data"]["findingId"]}]),
        )
        .await
        .unwrap();
    assert_eq!(res["hidden"], 1, "{res}");
    assert!(dir.path().join(".refine/dismissed.toml").is_file());

    mock.set_script(fixes_the_loop());
    let id = client
        .review_forced(
            &uri,
            json!({"start": {"line": 0, "character": 0}, "end": {"line": 6, "character": 0}}),
        )
        .await;
    let again = client.finished(&id).await;
    assert_eq!(again["findings"], 0, "{again}");
    assert_eq!(again["revision"], false, "{again}");
    let notes = again["notes"].to_string();
    assert!(
        notes.contains("only changes code for dismissed findings"),
        "{notes}"
    );
    // The fixer was told, all the same.
    let fixes = requests_of(&mock, "# refine-ls fixer");
    assert!(
        fixes
            .last()
            .is_some_and(|f| f.contains("do not change the code for them")),
        "{fixes:?}"
    );
}

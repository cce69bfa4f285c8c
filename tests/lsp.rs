//! The server over its real transport (the binary on stdio) against the scripted model over
//! real HTTP: the review flow end to end, and everything that can go wrong on the way.

mod support;

use serde_json::{Value, json};
use support::lsp_client::{LspClient, apply_edits};
use support::mock_llm::{MockLlm, Reply, Script};

const URI: &str = "file:///work/demo/src/sum.rs";

/// Line 3 has an emoji before the buggy range, so utf-16 columns differ from chars.
const CODE: &str = "fn sum(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    let _tag = \"😀\";\n    let _e = \"😀\"; for i in 1..xs.len() { s += xs[i]; }\n    s\n}\n";
const FIXED: &str = "fn sum(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    let _tag = \"😀\";\n    let _e = \"😀\"; for i in 0..xs.len() { s += xs[i]; }\n    s\n}\n";

fn off_by_one(line: u32) -> Value {
    json!([{
        "start_line": line, "end_line": line, "quote": "1..xs.len()", "severity": "error",
        "principle": "correctness", "message": "the loop skips xs[0]",
        "suggestion": "start the range at 0", "confidence": 0.9
    }])
}

fn script(critique: Vec<Reply>, revise: Vec<Reply>) -> Script {
    Script {
        critique: critique.into(),
        revise: revise.into(),
        ..Script::default()
    }
}

fn range(l0: u32, c0: u32, l1: u32, c1: u32) -> Value {
    json!({"start": {"line": l0, "character": c0}, "end": {"line": l1, "character": c1}})
}

/// The whole function.
fn all() -> Value {
    range(0, 0, 6, 0)
}

fn utf16_len(s: &str) -> u64 {
    s.encode_utf16().count() as u64
}

async fn start(mock: &MockLlm, options: Value) -> LspClient {
    let client = LspClient::start(&[("OPENAI_BASE_URL", &mock.base_url)]);
    client
        .initialize(
            json!({"window": {"workDoneProgress": true}, "general": {"positionEncodings": ["utf-16"]}}),
            options,
        )
        .await;
    client
}

/// A server initialized with `root` as its workspace folder (no client capabilities).
async fn start_in(root: &std::path::Path, mock: &MockLlm) -> LspClient {
    let client = LspClient::start(&[("OPENAI_BASE_URL", &mock.base_url)]);
    let root = format!("file://{}", root.display());
    client
        .request(
            "initialize",
            json!({"processId": null, "rootUri": root, "capabilities": {}}),
        )
        .await
        .expect("initialize");
    client.notify("initialized", json!({})).await;
    client
}

async fn fixed_flow() -> (MockLlm, LspClient) {
    let mock = MockLlm::start(script(
        vec![Reply::findings(off_by_one(4)), Reply::findings(json!([]))],
        vec![Reply::code(&FIXED.lines().collect::<Vec<_>>().join("\n"))],
    ))
    .await;
    let client = start(&mock, json!({})).await;
    client.open(URI, "rust", CODE).await;
    (mock, client)
}

#[tokio::test]
async fn initialize_negotiates_the_position_encoding() {
    let mock = MockLlm::start(Script::default()).await;
    for (caps, options, expected) in [
        (json!({}), json!({}), "utf-16"),
        (
            json!({"general": {"positionEncodings": ["utf-8", "utf-16"]}}),
            json!({}),
            "utf-8",
        ),
        (
            json!({"general": {"positionEncodings": ["utf-32"]}}),
            json!({}),
            "utf-32",
        ),
        // The option chooses among the encodings offered, never one that was not.
        (
            json!({"general": {"positionEncodings": ["utf-8"]}}),
            json!({"positionEncoding": "utf-32"}),
            "utf-8",
        ),
        (
            json!({"general": {"positionEncodings": ["utf-16"]}}),
            json!({"positionEncoding": "utf-32"}),
            "utf-16",
        ),
        (
            json!({"general": {"positionEncodings": ["utf-16", "utf-32"]}}),
            json!({"positionEncoding": "utf-32"}),
            "utf-32",
        ),
    ] {
        let client = LspClient::start(&[("OPENAI_BASE_URL", &mock.base_url)]);
        let init = client.initialize(caps, options).await;
        let c = &init["capabilities"];
        assert_eq!(c["positionEncoding"], expected);
        assert_eq!(c["textDocumentSync"]["change"], 2, "incremental sync");
        assert_eq!(c["textDocumentSync"]["openClose"], true);
        assert!(c["codeActionProvider"].is_object());
        let commands = c["executeCommandProvider"]["commands"]
            .as_array()
            .unwrap()
            .clone();
        // The core four are a contract; later commands extend the list.
        assert_eq!(
            commands[..4],
            [
                json!("refine.review"),
                json!("refine.refine"),
                json!("refine.cancel"),
                json!("refine.clear")
            ]
        );
        assert_eq!(init["serverInfo"]["name"], "refine-ls");
        assert!(client.shutdown().await.success());
    }
}

#[tokio::test]
async fn review_publishes_diagnostics_on_the_quoted_columns_and_offers_the_revision() {
    let (mock, client) = fixed_flow().await;

    // Both review actions are offered on a non-empty range, none on an empty one.
    let actions = client.code_actions(URI, all()).await;
    let titles: Vec<&str> = actions.iter().filter_map(|a| a["title"].as_str()).collect();
    assert_eq!(
        titles,
        ["Refine: review selection", "Refine: refine selection"]
    );
    assert_eq!(actions[0]["command"]["command"], "refine.review");
    assert_eq!(actions[0]["command"]["arguments"][0]["uri"], URI);
    assert!(client.code_actions(URI, range(1, 0, 1, 0)).await.is_empty());

    let id = client.review(URI, range(0, 3, 5, 1)).await;
    let done = client.finished(&id).await;
    assert_eq!(done["findings"], 1);
    assert_eq!(done["unanchored"], 0);
    assert_eq!(done["iterations"], 1);
    assert_eq!(done["llmCalls"], 3);
    assert_eq!(done["revision"], true);
    assert!(done.get("error").is_none(), "{done}");

    // The squiggle covers exactly `1..xs.len()`, counted in utf-16 after the emoji.
    let diags = client.diagnostics(URI);
    assert_eq!(diags.len(), 1);
    let d = &diags[0];
    let line3 = CODE.lines().nth(3).unwrap();
    let col = utf16_len(&line3[..line3.find("1..xs").unwrap()]);
    assert_eq!(d["range"], range(3, col as u32, 3, col as u32 + 11));
    assert_eq!(
        d["severity"], 2,
        "the model's unbacked `error` is shown as a warning"
    );
    assert_eq!(d["source"], "refine");
    assert_eq!(d["code"], "correctness");
    assert_eq!(d["data"], json!({"reviewId": id, "findingId": 0}));
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .starts_with("the loop skips xs[0]")
    );

    // Progress: a created token, then begin, reports, end.
    assert_eq!(
        client
            .server_requests("window/workDoneProgress/create")
            .len(),
        1
    );
    let kinds: Vec<String> = client
        .notifications("$/progress")
        .iter()
        .map(|p| p["value"]["kind"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("begin"));
    assert_eq!(kinds.last().map(String::as_str), Some("end"));
    assert!(
        kinds.iter().filter(|k| *k == "report").count() >= 3,
        "{kinds:?}"
    );

    // The apply action carries the reviewed version and minimal edits that give the fix.
    let actions = client.code_actions(URI, range(3, 0, 3, 5)).await;
    let apply = actions
        .iter()
        .find(|a| a["title"] == "Refine: apply revision (fixes 1 of 1 findings)")
        .expect("apply action");
    assert_eq!(apply["kind"], "quickfix");
    let change = &apply["edit"]["documentChanges"][0];
    assert_eq!(change["textDocument"], json!({"uri": URI, "version": 1}));
    let edits = change["edits"].as_array().unwrap();
    assert_eq!(edits.len(), 1, "one minimal edit: {edits:?}");
    assert_eq!(edits[0]["newText"], "0");
    assert_eq!(apply_edits(CODE, edits, "utf-16"), FIXED);

    // The model was asked the way the wire format says.
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    let critique = &reqs[0];
    assert_eq!(critique["response_format"]["type"], "json_schema");
    assert_eq!(
        critique["response_format"]["json_schema"]["name"],
        "critique"
    );
    assert_eq!(
        critique["messages"].as_array().unwrap().len(),
        2,
        "fresh context"
    );
    let user = critique["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("    4 |     let _e = \"😀\"; for i in 1..xs.len()"),
        "{user}"
    );
    let revise = &reqs[1];
    assert!(revise.get("response_format").is_none());
    assert!(
        revise["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("the loop skips xs[0]")
    );
    assert_eq!(
        reqs[2]["messages"].as_array().unwrap().len(),
        2,
        "the judge starts afresh"
    );
    assert!(
        reqs[2]["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("0..xs.len()")
    );
}

#[tokio::test]
async fn no_issues_is_a_normal_answer() {
    let mock = MockLlm::start(script(vec![Reply::findings(json!([]))], vec![])).await;
    let client = start(&mock, json!({})).await;
    client.open(URI, "rust", FIXED).await;
    let id = client.review(URI, all()).await;
    let done = client.finished(&id).await;
    assert_eq!(done["findings"], 0);
    assert_eq!(done["revision"], false);
    assert_eq!(done["llmCalls"], 1);
    assert!(done.get("error").is_none());
    assert!(client.diagnostics(URI).is_empty());
    let actions = client.code_actions(URI, all()).await;
    assert!(
        actions
            .iter()
            .all(|a| !a["title"].as_str().unwrap().contains("apply revision"))
    );
}

#[tokio::test]
async fn a_revision_the_judge_finds_unresolved_is_not_offered() {
    // The revision introduces `xs[i + 1]`; the judge, quoting the changed line, says the
    // finding is not resolved.
    let broken = FIXED.replace("xs[i]", "xs[i + 1]");
    let mut s = script(
        vec![Reply::findings(off_by_one(4))],
        vec![Reply::code(&broken)],
    );
    s.judge = vec![Reply::content(
        json!({"verdicts": [{"finding": 1, "quote": "for i in 0..xs.len() { s += xs[i + 1]; }", "resolved": false}]})
            .to_string(),
    )]
    .into();
    let mock = MockLlm::start(s).await;
    let client = start(&mock, json!({"refine": {"loop": {"max_iterations": 1}}})).await;
    client.open(URI, "rust", CODE).await;
    let id = client.review(URI, all()).await;
    let done = client.finished(&id).await;
    assert_eq!(done["findings"], 1, "the original's finding is still shown");
    assert_eq!(done["revision"], false);
    assert_eq!(done["iterations"], 1);
    let notes = done["notes"].to_string();
    assert!(notes.contains("no revision is offered"), "{notes}");
    let actions = client.code_actions(URI, all()).await;
    assert!(
        actions
            .iter()
            .all(|a| !a["title"].as_str().unwrap().contains("apply revision"))
    );
}

#[tokio::test]
async fn the_best_version_wins_not_the_last() {
    // Round 1 fixes the bug (one hint left); round 2 makes it worse again.
    let hint = json!([{"start_line": 5, "end_line": 5, "quote": "s", "severity": "hint", "principle": "readability", "message": "name", "confidence": 0.9}]);
    let worse = json!([{"start_line": 4, "end_line": 4, "quote": "xs[i + 1]", "severity": "error", "principle": "robustness", "message": "oob", "confidence": 0.9}]);
    let mock = MockLlm::start(script(
        vec![
            Reply::findings(off_by_one(4)),
            Reply::findings(hint),
            Reply::findings(worse),
        ],
        vec![
            Reply::code(FIXED),
            Reply::code(&FIXED.replace("xs[i]", "xs[i + 1]")),
        ],
    ))
    .await;
    let client = start(&mock, json!({})).await;
    client.open(URI, "rust", CODE).await;
    let id = client.review(URI, all()).await;
    let done = client.finished(&id).await;
    // A hint is below warning, so the loop stops after round 1 with the fix.
    assert_eq!(done["iterations"], 1);
    assert_eq!(done["revision"], true);
    let actions = client.code_actions(URI, all()).await;
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
async fn unanchored_and_out_of_selection_findings_are_counted_not_shown() {
    let findings = json!([
        {"start_line": 4, "end_line": 4, "quote": "1..xs.len()", "severity": "warning", "principle": "correctness", "message": "skips first", "confidence": 0.8},
        {"start_line": 4, "end_line": 4, "quote": "xs.iter().sum()", "severity": "warning", "principle": "readability", "message": "invented", "confidence": 0.8},
        {"start_line": 40, "end_line": 41, "quote": "s", "severity": "warning", "principle": "readability", "message": "elsewhere", "confidence": 0.8},
        {"start_line": 5, "end_line": 5, "quote": "s", "severity": "info", "principle": "made-up-principle", "message": "unsure", "confidence": 0.2}
    ]);
    let mock = MockLlm::start(script(
        vec![Reply::findings(findings)],
        vec![Reply::content("no code here")],
    ))
    .await;
    let client = start(&mock, json!({"refine": {"loop": {"max_iterations": 1}}})).await;
    client.open(URI, "rust", CODE).await;
    let id = client.review(URI, all()).await;
    let done = client.finished(&id).await;
    assert_eq!(done["findings"], 1);
    assert_eq!(done["unanchored"], 1);
    assert_eq!(done["outOfSelection"], 1);
    assert_eq!(done["lowConfidence"], 1);
    assert_eq!(done["revision"], false);
    assert!(
        done["notes"].to_string().contains("no code block"),
        "{done}"
    );
    let diags = client.diagnostics(URI);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0]["message"], "skips first");
}

#[tokio::test]
async fn an_edit_inside_a_running_review_cancels_it() {
    let mock = MockLlm::start(script(
        vec![Reply::findings(off_by_one(4)).delayed(1500)],
        vec![],
    ))
    .await;
    let client = start(&mock, json!({})).await;
    client.open(URI, "rust", CODE).await;
    let id = client.review(URI, all()).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": URI, "version": 2},
                   "contentChanges": [{"range": range(4, 4, 4, 5), "text": "total"}]}),
        )
        .await;
    let done = client.finished(&id).await;
    assert_eq!(done["error"], "the review was cancelled");
    assert_eq!(done["findings"], 0);
    assert!(client.diagnostics(URI).is_empty());
    assert!(
        client
            .code_actions(URI, all())
            .await
            .iter()
            .all(|a| !a["title"].as_str().unwrap().contains("apply"))
    );
}

#[tokio::test]
async fn an_edit_above_a_running_review_moves_its_results() {
    let mock = MockLlm::start(script(
        vec![
            Reply::findings(off_by_one(4)).delayed(800),
            Reply::findings(json!([])),
        ],
        vec![Reply::code(FIXED)],
    ))
    .await;
    let client = start(&mock, json!({})).await;
    let text = format!("// header\n{CODE}");
    client.open(URI, "rust", &text).await;
    let id = client.review(URI, range(1, 0, 7, 0)).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Two new lines above the reviewed function while the model thinks.
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": URI, "version": 2},
                   "contentChanges": [{"range": range(0, 0, 0, 0), "text": "use std::fmt;\n\n"}]}),
        )
        .await;
    let done = client.finished(&id).await;
    assert!(done.get("error").is_none(), "{done}");
    assert_eq!(done["revision"], true);
    let diags = client.diagnostics(URI);
    assert_eq!(
        diags[0]["range"]["start"]["line"], 6,
        "moved down by two lines"
    );
    let now = format!("use std::fmt;\n\n{text}");
    let actions = client.code_actions(URI, range(6, 0, 6, 1)).await;
    let apply = actions
        .iter()
        .find(|a| a["title"].as_str().unwrap().contains("apply revision"))
        .unwrap();
    let change = &apply["edit"]["documentChanges"][0];
    assert_eq!(
        change["textDocument"]["version"], 2,
        "edits carry the version they fit"
    );
    let edited = apply_edits(&now, change["edits"].as_array().unwrap(), "utf-16");
    assert_eq!(edited, format!("use std::fmt;\n\n// header\n{FIXED}"));
}

#[tokio::test]
async fn after_an_edit_of_the_reviewed_lines_no_stale_edit_is_offered() {
    let (_mock, client) = fixed_flow().await;
    let id = client.review(URI, all()).await;
    client.finished(&id).await;
    assert_eq!(client.diagnostics(URI).len(), 1);
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": URI, "version": 2},
                   "contentChanges": [{"range": range(3, 4, 3, 4), "text": "// "}]}),
        )
        .await;
    let actions = client.code_actions(URI, all()).await;
    assert!(
        actions
            .iter()
            .all(|a| !a["title"].as_str().unwrap().contains("apply revision")),
        "{actions:?}"
    );
    client
        .wait_for("textDocument/publishDiagnostics", |p| {
            p["version"] == 2 && p["diagnostics"] == json!([])
        })
        .await;
}

#[tokio::test]
async fn refine_applies_the_best_revision_through_apply_edit() {
    let (_mock, client) = fixed_flow().await;
    let res = client
        .command("refine.refine", json!([{"uri": URI, "range": all()}]))
        .await
        .unwrap();
    let id = res["reviewId"].as_str().unwrap().to_owned();
    client.finished(&id).await;
    let applied = client.server_requests("workspace/applyEdit");
    assert_eq!(applied.len(), 1);
    let change = &applied[0]["edit"]["documentChanges"][0];
    assert_eq!(change["textDocument"]["version"], 1);
    assert_eq!(
        apply_edits(CODE, change["edits"].as_array().unwrap(), "utf-16"),
        FIXED
    );
}

#[tokio::test]
async fn cancel_and_clear_commands() {
    let mock = MockLlm::start(script(
        vec![Reply::findings(off_by_one(4)).delayed(3000)],
        vec![],
    ))
    .await;
    let client = start(&mock, json!({})).await;
    client.open(URI, "rust", CODE).await;
    let id = client.review(URI, all()).await;
    let res = client
        .command("refine.cancel", json!([{"reviewId": id}]))
        .await
        .unwrap();
    assert_eq!(res["cancelled"], true);
    let done = client.finished(&id).await;
    assert_eq!(done["error"], "the review was cancelled");
    let res = client
        .command("refine.cancel", json!([{"reviewId": "review-999"}]))
        .await
        .unwrap();
    assert_eq!(res["cancelled"], false);

    mock.set_script(script(
        vec![Reply::findings(off_by_one(4))],
        vec![Reply::content("no")],
    ));
    let id = client.review(URI, all()).await;
    client.finished(&id).await;
    assert_eq!(client.diagnostics(URI).len(), 1);
    let res = client
        .command("refine.clear", json!([{"uri": URI}]))
        .await
        .unwrap();
    assert_eq!(res["cleared"], true);
    client
        .wait_for("textDocument/publishDiagnostics", |p| {
            p["uri"] == URI && p["diagnostics"] == json!([])
        })
        .await;
}

#[tokio::test]
async fn reviews_of_two_ranges_are_merged() {
    let text = format!("{CODE}\n{}", CODE.replace("fn sum", "fn sum2"));
    let second = json!([{"start_line": 11, "end_line": 11, "quote": "1..xs.len()", "severity": "warning", "principle": "correctness", "message": "second", "confidence": 0.9}]);
    let mock = MockLlm::start(script(
        vec![Reply::findings(off_by_one(4))],
        vec![Reply::content("no")],
    ))
    .await;
    let client = start(&mock, json!({"refine": {"loop": {"max_iterations": 1}}})).await;
    client.open(URI, "rust", &text).await;
    let a = client.review(URI, range(0, 0, 5, 1)).await;
    client.finished(&a).await;
    mock.set_script(script(
        vec![Reply::findings(second)],
        vec![Reply::content("no")],
    ));
    let b = client.review(URI, range(7, 0, 12, 1)).await;
    client.finished(&b).await;
    let diags = client.diagnostics(URI);
    let lines: Vec<u64> = diags
        .iter()
        .map(|d| d["range"]["start"]["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 10]);
}

#[tokio::test]
async fn garbage_and_http_errors_from_the_provider_are_clear_and_the_server_lives() {
    let mock = MockLlm::start(script(vec![Reply::raw("<html>gateway</html>")], vec![])).await;
    let mut client = start(&mock, json!({})).await;
    client.open(URI, "rust", CODE).await;
    let id = client.review(URI, all()).await;
    let done = client.finished(&id).await;
    let err = done["error"].as_str().unwrap();
    assert!(
        err.contains("cannot read") && err.contains("not JSON"),
        "{err}"
    );

    mock.set_script(script(
        vec![Reply::content("The code looks fine to me!")],
        vec![],
    ));
    let id = client.review(URI, all()).await;
    let err = client.finished(&id).await["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(err.contains("no JSON object with `findings`"), "{err}");

    mock.set_script(script(
        vec![Reply::status(
            500,
            r#"{"error":{"message":"model overloaded"}}"#,
        )],
        vec![],
    ));
    let id = client.review(URI, all()).await;
    let err = client.finished(&id).await["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        err.contains("HTTP 500") && err.contains("model overloaded"),
        "{err}"
    );
    let shown = client
        .wait_for("window/showMessage", |m| {
            m["message"].as_str().unwrap_or("").contains("HTTP 500")
        })
        .await;
    assert_eq!(shown["type"], 1);

    assert!(client.is_alive());
    assert!(client.diagnostics(URI).is_empty());
    assert!(client.shutdown().await.success());
}

#[tokio::test]
async fn an_unreachable_provider_is_a_clear_error() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let client = LspClient::start(&[("OPENAI_BASE_URL", &format!("http://127.0.0.1:{port}/v1"))]);
    client.initialize(json!({}), json!({})).await;
    client.open(URI, "rust", CODE).await;
    let id = client.review(URI, all()).await;
    let err = client.finished(&id).await["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        err.contains("could not be reached") && err.contains("provider.base_url"),
        "{err}"
    );
}

#[tokio::test]
async fn a_remote_provider_without_a_key_says_which_variable_to_set() {
    let client = LspClient::start(&[("OPENAI_BASE_URL", "https://llm.example.invalid/v1")]);
    client.initialize(json!({}), json!({})).await;
    client.open(URI, "rust", CODE).await;
    let id = client.review(URI, all()).await;
    let err = client.finished(&id).await["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(err.contains("OPENAI_API_KEY"), "{err}");
}

#[tokio::test]
async fn bad_requests_get_errors_and_malformed_input_is_survived() {
    let mock = MockLlm::start(script(vec![Reply::findings(json!([]))], vec![])).await;
    let mut client = start(
        &mock,
        json!({"refine": {"loop": {"max_iterations": "many"}, "providr": {}}}),
    )
    .await;
    // Bad configuration is a warning, not a dead server.
    client
        .wait_for("window/showMessage", |m| {
            m["message"].as_str().unwrap_or("").contains("providr")
        })
        .await;

    let err = client
        .command("refine.review", json!([{"uri": URI, "range": all()}]))
        .await
        .unwrap_err();
    assert!(
        err["message"].as_str().unwrap().contains("is not open"),
        "{err}"
    );
    let err = client
        .command("refine.review", json!(["nonsense"]))
        .await
        .unwrap_err();
    assert_eq!(err["code"], -32602);
    let err = client
        .command("refine.explode", json!([]))
        .await
        .unwrap_err();
    assert!(err["message"].as_str().unwrap().contains("unknown command"));

    // Garbage on the wire, then a valid request.
    client.send_raw(b"Content-Length: 9\r\n\r\n{garbage}").await;
    client
        .send_raw(b"Content-Length: 20\r\n\r\n{\"jsonrpc\": \"2.0\"}  ")
        .await;
    let parse_error = client
        .wait_for("$/nullIdResponse", |r| r["error"]["code"] == -32700)
        .await;
    assert!(
        parse_error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not JSON")
    );
    client
        .wait_for("$/nullIdResponse", |r| r["error"]["code"] == -32600)
        .await;
    client.open(URI, "rust", CODE).await;
    // An inverted change is rejected without harm: the document is out of sync (no reviews)
    // until the client sends it whole.
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": URI, "version": 2},
                   "contentChanges": [{"range": range(5, 0, 2, 0), "text": "x"}]}),
        )
        .await;
    let err = client
        .command("refine.review", json!([{"uri": URI, "range": all()}]))
        .await
        .unwrap_err();
    assert!(
        err["message"].as_str().unwrap().contains("out of sync"),
        "{err}"
    );
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": URI, "version": 3}, "contentChanges": [{"text": CODE}]}),
        )
        .await;
    // A review range far past the end is clamped to the file.
    let id = client.review(URI, range(2, 0, 9999, 9999)).await;
    let done = client.finished(&id).await;
    assert!(done.get("error").is_none(), "{done}");
    let user = mock.requests()[0]["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(user.contains("lines 3-6"), "{user}");
    assert!(client.is_alive());
}

#[tokio::test]
async fn closing_a_document_drops_its_findings() {
    let (_mock, client) = fixed_flow().await;
    let id = client.review(URI, all()).await;
    client.finished(&id).await;
    assert_eq!(client.diagnostics(URI).len(), 1);
    client
        .notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": URI}}),
        )
        .await;
    client
        .wait_for("textDocument/publishDiagnostics", |p| {
            p["uri"] == URI && p["diagnostics"] == json!([])
        })
        .await;
    let err = client
        .command("refine.review", json!([{"uri": URI, "range": all()}]))
        .await
        .unwrap_err();
    assert!(err["message"].as_str().unwrap().contains("is not open"));
}

#[tokio::test]
async fn configuration_comes_from_the_workspace_file_and_the_editor() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".refine.toml"),
        "[provider]\nmodel = \"from-toml\"\n",
    )
    .unwrap();
    let prompts = dir.path().join(".refine").join("prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    std::fs::write(
        prompts.join("critique_user.md"),
        "WORKSPACE PROMPT\n{{ selection }}",
    )
    .unwrap();
    let mock = MockLlm::start(script(vec![Reply::findings(json!([]))], vec![])).await;
    let client = start_in(dir.path(), &mock).await;
    client.open(URI, "rust", CODE).await;
    let id = client.review(URI, all()).await;
    client.finished(&id).await;
    let first = &mock.requests()[0];
    assert_eq!(first["model"], "from-toml");
    assert!(
        first["messages"][1]["content"]
            .as_str()
            .unwrap()
            .starts_with("WORKSPACE PROMPT")
    );

    client
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"refine": {"provider": {"model": "from-editor"}}}}),
        )
        .await;
    let id = client.review(URI, all()).await;
    client.finished(&id).await;
    assert_eq!(mock.requests()[1]["model"], "from-editor");
}

#[tokio::test]
async fn a_change_the_server_cannot_apply_puts_the_document_out_of_sync_until_resent() {
    let (_mock, client) = fixed_flow().await;
    let id = client.review(URI, all()).await;
    client.finished(&id).await;
    assert_eq!(client.diagnostics(URI).len(), 1);
    let change = |version: i64, change: Value| json!({"textDocument": {"uri": URI, "version": version}, "contentChanges": [change]});
    // Line 40 does not exist: the server cannot know what the client now holds.
    client
        .notify(
            "textDocument/didChange",
            change(2, json!({"range": range(40, 0, 40, 1), "text": "x"})),
        )
        .await;
    client
        .wait_for("textDocument/publishDiagnostics", |p| {
            p["uri"] == URI && p["diagnostics"] == json!([])
        })
        .await;
    let msg = client
        .wait_for("window/showMessage", |p| {
            p["message"]
                .as_str()
                .unwrap_or("")
                .contains("could not be applied")
        })
        .await;
    assert_eq!(msg["type"], 1, "{msg}");
    // No edits, no reviews; further edits are not applied to a text that may be wrong, and
    // the user is told once.
    let actions = client.code_actions(URI, all()).await;
    assert!(
        !actions
            .iter()
            .any(|a| a["title"].as_str().unwrap_or("").contains("apply revision")),
        "{actions:?}"
    );
    let err = client
        .command("refine.review", json!([{"uri": URI, "range": all()}]))
        .await
        .unwrap_err();
    assert!(
        err["message"].as_str().unwrap().contains("out of sync"),
        "{err}"
    );
    client
        .notify(
            "textDocument/didChange",
            change(3, json!({"range": range(0, 0, 0, 0), "text": "// hi\n"})),
        )
        .await;
    client
        .notify(
            "textDocument/didChange",
            change(4, json!({"range": range(9, 5, 2, 0), "text": ""})),
        )
        .await;
    // A full-text change resyncs it.
    client
        .notify("textDocument/didChange", change(5, json!({"text": CODE})))
        .await;
    let id = client.review(URI, all()).await;
    let done = client.finished(&id).await;
    assert!(done["error"].is_null(), "{done}");
    let told = client
        .notifications("window/showMessage")
        .iter()
        .filter(|p| {
            p["message"]
                .as_str()
                .unwrap_or("")
                .contains("could not be applied")
        })
        .count();
    assert_eq!(told, 1, "told once");
}

#[tokio::test]
async fn a_frame_whose_length_counts_characters_does_not_desynchronise_the_session() {
    let mock = MockLlm::start(script(vec![Reply::findings(json!([]))], vec![])).await;
    let client = start(&mock, json!({})).await;
    let uri = "file:///work/demo/src/accent.rs";
    let body = json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params":
        {"textDocument": {"uri": uri, "languageId": "rust", "version": 1,
                          "text": "// café\nfn f() -> i32 {\n    1\n}\n"}}})
    .to_string();
    let frame = format!("Content-Length: {}\r\n\r\n{body}", body.chars().count());
    client.send_raw(frame.as_bytes()).await;
    // The next requests are all answered, and the document was opened as sent.
    for _ in 0..3 {
        let actions = client.code_actions(uri, range(0, 0, 1, 0)).await;
        assert!(
            actions
                .iter()
                .any(|a| a["title"].as_str().unwrap_or("").contains("review")),
            "{actions:?}"
        );
    }
    let id = client.review(uri, range(0, 0, 4, 0)).await;
    let done = client.finished(&id).await;
    assert!(done["error"].is_null(), "{done}");
    let sent = mock.requests()[0]["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(sent.contains("// café"), "{sent}");
}

#[tokio::test]
async fn a_review_that_panics_still_ends_as_an_error_and_the_server_goes_on() {
    // (REFINE_LS_FAULT exists in debug builds only.)
    let mock = MockLlm::start(script(vec![Reply::findings(off_by_one(4))], vec![])).await;
    let mut client = LspClient::start(&[
        ("OPENAI_BASE_URL", &mock.base_url),
        ("REFINE_LS_FAULT", "panic-in-review"),
    ]);
    client
        .initialize(json!({"window": {"workDoneProgress": true}}), json!({}))
        .await;
    client.open(URI, "rust", CODE).await;
    for round in 0..2 {
        let id = client.review(URI, all()).await;
        let done = client.finished(&id).await;
        let err = done["error"].as_str().unwrap_or_default();
        assert!(
            err.contains("internal error") && err.contains("injected"),
            "round {round}: {done}"
        );
    }
    let progress = client.notifications("$/progress");
    let ends = progress
        .iter()
        .filter(|p| p["value"]["kind"] == "end")
        .count();
    assert_eq!(ends, 2, "every progress is closed: {progress:?}");
    let res = client
        .command("refine.cancel", json!([{"reviewId": "review-1"}]))
        .await
        .unwrap();
    assert_eq!(res["cancelled"], false, "nothing is left running");
    assert!(client.is_alive());
}

#[tokio::test]
async fn a_dismissed_finding_stays_hidden_when_the_code_moves_and_undismiss_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let uri = format!("file://{}/src/sum.rs", dir.path().display());
    let mock = MockLlm::start(script(
        vec![Reply::findings(off_by_one(4))],
        vec![Reply::content("no code")],
    ))
    .await;
    let client = start_in(dir.path(), &mock).await;
    client.open(&uri, "rust", CODE).await;
    let id = client.review(&uri, all()).await;
    client.finished(&id).await;
    let diags = client.diagnostics(&uri);
    assert_eq!(diags.len(), 1);

    // The diagnostic offers the three dismissals; the first one is taken.
    let actions = client.code_actions(&uri, diags[0]["range"].clone()).await;
    let titles: Vec<&str> = actions.iter().filter_map(|a| a["title"].as_str()).collect();
    for t in [
        "Refine: dismiss this finding",
        "Refine: dismiss this principle here (correctness)",
        "Refine: dismiss every finding for this file",
    ] {
        assert!(titles.contains(&t), "{titles:?}");
    }
    let dismiss = actions
        .iter()
        .find(|a| a["title"] == "Refine: dismiss this finding")
        .unwrap();
    assert_eq!(dismiss["command"]["command"], "refine.dismissFinding");
    let published = client
        .notifications("textDocument/publishDiagnostics")
        .len();
    let res = client
        .command(
            "refine.dismissFinding",
            dismiss["command"]["arguments"].clone(),
        )
        .await
        .unwrap();
    assert_eq!(res["hidden"], 1, "{res}");
    // Published again, now without it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while client
        .notifications("textDocument/publishDiagnostics")
        .len()
        == published
    {
        assert!(std::time::Instant::now() < deadline, "no new diagnostics");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(client.diagnostics(&uri).is_empty());
    let file = dir.path().join(".refine/dismissed.toml");
    let written = std::fs::read_to_string(&file).unwrap();
    let parsed: toml::Value = toml::from_str(&written).expect("valid TOML");
    let entry = &parsed["dismissed"][0];
    assert_eq!(entry["path"].as_str(), Some("src/sum.rs"), "{written}");
    assert_eq!(entry["scope"].as_str(), Some("finding"));
    assert_eq!(
        entry["fingerprint"].as_str(),
        Some(
            refine_ls::dismissed::fingerprint("src/sum.rs", "correctness", "1..xs.len()").as_str()
        )
    );

    // The code shifted by two lines inserted above, reviewed afresh: still not published.
    let moved = format!("// one\n// two\n{CODE}");
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2},
                   "contentChanges": [{"text": moved}]}),
        )
        .await;
    mock.set_script(script(
        vec![Reply::findings(off_by_one(6))],
        vec![Reply::content("no code")],
    ));
    let id = client.review_forced(&uri, range(2, 0, 8, 0)).await;
    let done = client.finished(&id).await;
    assert!(client.diagnostics(&uri).is_empty(), "{done}");
    // The critic was told, compactly, what this codebase does not want.
    let told = mock
        .requests()
        .iter()
        .rev()
        .find(|b| support::mock_llm::role_of(b) == "critique")
        .map(|b| b.to_string())
        .unwrap();
    assert!(
        told.contains("dismissed findings like these")
            && told.contains("correctness: `1..xs.len()`"),
        "{told}"
    );
    // A lens says it is there, and undoes it.
    let lenses = client
        .request(
            "textDocument/codeLens",
            json!({"textDocument": {"uri": uri}}),
        )
        .await
        .unwrap();
    let undo = lenses
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["command"]["command"] == "refine.undismiss")
        .unwrap_or_else(|| panic!("no undismiss lens: {lenses}"));
    assert_eq!(undo["command"]["title"], "1 dismissed here (undo)");
    let res = client
        .command("refine.undismiss", undo["command"]["arguments"].clone())
        .await
        .unwrap();
    assert_eq!(res["shown"], 1, "{res}");
    assert_eq!(res["removed"], 1, "{res}");
    let back = client
        .wait_for("textDocument/publishDiagnostics", |p| {
            p["uri"] == uri
                && p["diagnostics"].as_array().is_some_and(|d| d.len() == 1)
                && p["diagnostics"][0]["data"]["reviewId"] == id.as_str()
        })
        .await;
    // Zero-based line 5: the finding's line 4 with two lines above it.
    assert_eq!(
        back["diagnostics"][0]["range"]["start"]["line"], 5,
        "{back}"
    );
    let after: toml::Value = toml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        after
            .get("dismissed")
            .and_then(|d| d.as_array())
            .is_none_or(|d| d.is_empty()),
        "{after}"
    );
}

#[tokio::test]
async fn without_a_workspace_folder_a_dismissal_goes_to_the_users_own_store() {
    let mock = MockLlm::start(script(
        vec![Reply::findings(off_by_one(4))],
        vec![Reply::content("no code")],
    ))
    .await;
    let client = start(&mock, json!({})).await;
    client.open(URI, "rust", CODE).await;
    let id = client.review(URI, all()).await;
    client.finished(&id).await;
    let diags = client.diagnostics(URI);
    assert_eq!(diags.len(), 1);
    let res = client
        .command(
            "refine.dismissFinding",
            json!([{"uri": URI, "reviewId": id, "findingId": diags[0]["data"]["findingId"]}]),
        )
        .await
        .unwrap();
    assert_eq!(res["hidden"], 1, "{res}");
    let file = res["file"].as_str().unwrap();
    assert!(file.ends_with("data/dismissed.toml"), "{file}");
    let written: toml::Value = toml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(
        written["dismissed"][0]["path"].as_str(),
        Some("/work/demo/src/sum.rs"),
        "the user's store names files by absolute path: {written}"
    );
    // Reviewed afresh, it stays hidden; a bad store name is refused.
    let id = client.review_forced(URI, all()).await;
    let done = client.finished(&id).await;
    assert_eq!(done["findings"], 0, "{done}");
    let err = client
        .command(
            "refine.dismissFinding",
            json!([{"uri": URI, "reviewId": id, "findingId": 0, "store": "team"}]),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("store is `workspace` or `user`, not `team`"),
        "{err}"
    );
    // A finding the review does not show, or arguments that are not the command's, are
    // refused with a sentence; the server goes on.
    let err = client
        .command(
            "refine.dismissFinding",
            json!([{"uri": URI, "reviewId": id, "findingId": 99}]),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("shows no finding 99"), "{err}");
    let err = client
        .command("refine.dismissFinding", json!([{"uri": URI}]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("refine.dismissFinding takes"),
        "{err}"
    );
    let err = client
        .command("refine.undismiss", json!([{"uri": URI}]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refine.undismiss takes"), "{err}");
}

//! Inline critique hints and revision previews through standard LSP methods: inlay hints,
//! hover, code lenses, change annotations, `refine.showRevision`, pull diagnostics, and all of
//! it gone after an edit of the reviewed lines.

mod support;

use serde_json::{Value, json};
use support::lsp_client::{LspClient, apply_edits};
use support::mock_llm::{MockLlm, Reply, Script};

const URI: &str = "file:///work/demo/src/sum.rs";
/// Multi-byte text before the finding's line end, so utf-16 columns differ from chars.
const CODE: &str = "fn sum(xs: &[i32]) -> i32 {\n    let mut s = 0; // 合計 😀\n    for i in 1..xs.len() { s += xs[i]; } // 😀😀\n    s\n}\n";
const FIXED: &str = "fn sum(xs: &[i32]) -> i32 {\n    let mut s = 0; // 合計 😀\n    for i in 0..xs.len() { s += xs[i]; } // 😀😀\n    s\n}\n";

fn all() -> Value {
    json!({"start": {"line": 0, "character": 0}, "end": {"line": 5, "character": 0}})
}

fn full_caps() -> Value {
    json!({
        "workspace": {
            "inlayHint": {"refreshSupport": true},
            "codeLens": {"refreshSupport": true},
            "diagnostics": {"refreshSupport": true},
            "workspaceEdit": {"documentChanges": true, "changeAnnotationSupport": {"groupsOnLabel": true}}
        },
        "textDocument": {"diagnostic": {"dynamicRegistration": false}},
        "window": {"workDoneProgress": true}
    })
}

fn script() -> Script {
    Script {
        critique: vec![
            Reply::findings(json!([
                {"start_line": 3, "end_line": 3, "quote": "1..xs.len()", "severity": "warning", "principle": "correctness",
                 "message": "the loop skips xs[0], so the first element is never added to the sum", "suggestion": "start the range at 0", "confidence": 0.9},
                {"start_line": 2, "end_line": 2, "quote": "let mut s", "severity": "info", "principle": "readability", "message": "name s total", "confidence": 0.8}
            ])),
        ]
        .into(),
        revise: vec![Reply::code(FIXED)].into(),
        // The judge: the fix resolves the loop finding (quoting the changed line); the naming
        // hint stays.
        judge: vec![Reply::content(
            json!({"verdicts": [{"finding": 1, "quote": "for i in 0..xs.len()", "resolved": true},
                                {"finding": 2, "quote": "", "resolved": false}]})
            .to_string(),
        )]
        .into(),
        ..Script::default()
    }
}

async fn reviewed(caps: Value, settings: Value) -> (MockLlm, LspClient, String) {
    let mock = MockLlm::start(script()).await;
    let client = LspClient::start(&[("OPENAI_BASE_URL", &mock.base_url)]);
    let init = client.initialize(caps, json!({"refine": settings})).await;
    assert!(
        init["capabilities"]["inlayHintProvider"]
            .as_bool()
            .unwrap_or(false)
            || init["capabilities"]["inlayHintProvider"].is_object()
    );
    client.open(URI, "rust", CODE).await;
    let id = client.review(URI, all()).await;
    client.finished(&id).await;
    (mock, client, id)
}

fn utf16(s: &str) -> u64 {
    s.encode_utf16().count() as u64
}

#[tokio::test]
async fn inlay_hints_sit_at_the_end_of_finding_lines() {
    let (_m, client, _) = reviewed(full_caps(), json!({"hints": {"max_width": 40}})).await;
    let hints = client
        .request(
            "textDocument/inlayHint",
            json!({"textDocument": {"uri": URI}, "range": all()}),
        )
        .await
        .unwrap();
    let hints = hints.as_array().unwrap();
    // errors-and-warnings by default: the info finding has no hint.
    assert_eq!(hints.len(), 1, "{hints:?}");
    let line2 = CODE.lines().nth(2).unwrap();
    assert_eq!(
        hints[0]["position"],
        json!({"line": 2, "character": utf16(line2)})
    );
    let label = hints[0]["label"].as_str().unwrap();
    assert!(
        label.starts_with("⚠ correctness: the loop skips xs[0]"),
        "{label}"
    );
    assert_eq!(label.chars().count(), 40);
    assert!(label.ends_with('…'));
    let tooltip = hints[0]["tooltip"]["value"].as_str().unwrap();
    assert!(
        tooltip.contains("so the first element is never added")
            && tooltip.contains("start the range at 0")
    );
    assert!(
        !client
            .server_requests("workspace/inlayHint/refresh")
            .is_empty(),
        "refreshed when the review finished"
    );

    // `all` shows the info finding too; `off` shows none.
    client
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"refine": {"hints": {"inlay": "all"}}}}),
        )
        .await;
    let hints = client
        .request(
            "textDocument/inlayHint",
            json!({"textDocument": {"uri": URI}, "range": all()}),
        )
        .await
        .unwrap();
    assert_eq!(hints.as_array().unwrap().len(), 2);
    client
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"refine": {"hints": {"inlay": "off"}}}}),
        )
        .await;
    let hints = client
        .request(
            "textDocument/inlayHint",
            json!({"textDocument": {"uri": URI}, "range": all()}),
        )
        .await
        .unwrap();
    assert!(hints.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn hover_shows_the_critique_and_its_change_as_a_diff() {
    let (_m, client, _) = reviewed(full_caps(), json!({})).await;
    let line2 = CODE.lines().nth(2).unwrap();
    let col = utf16(&line2[..line2.find("1..xs").unwrap()]) + 2;
    let hover = client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": URI}, "position": {"line": 2, "character": col}}),
        )
        .await
        .unwrap();
    let md = hover["contents"]["value"].as_str().unwrap();
    assert_eq!(hover["contents"]["kind"], "markdown");
    assert!(
        md.contains("`correctness` · warning · confidence 0.90"),
        "{md}"
    );
    assert!(md.contains("*Suggestion:* start the range at 0"));
    assert!(
        md.contains("```diff\n@@ -2,3 +2,3 @@\n     let mut s = 0;"),
        "{md}"
    );
    assert!(md.contains("\n-    for i in 1..xs.len()"), "{md}");
    assert!(md.contains("+    for i in 0..xs.len()"));
    assert!(md.contains("The whole revision: +1 −1 lines"), "{md}");
    assert_eq!(
        hover["range"]["start"],
        json!({"line": 2, "character": col - 2})
    );
    let nothing = client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": URI}, "position": {"line": 4, "character": 0}}),
        )
        .await
        .unwrap();
    assert!(nothing.is_null());
}

#[tokio::test]
async fn code_lenses_offer_the_review_commands() {
    let (mock, client, id) = reviewed(full_caps(), json!({})).await;
    let lenses = client
        .request(
            "textDocument/codeLens",
            json!({"textDocument": {"uri": URI}}),
        )
        .await
        .unwrap();
    let titles: Vec<&str> = lenses
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["command"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "refine: 2 findings",
            "apply revision",
            "re-review",
            "dismiss"
        ]
    );
    let lens = |t: &str| {
        lenses
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["command"]["title"] == t)
            .unwrap()["command"]
            .clone()
    };
    assert_eq!(lens("apply revision")["command"], "refine.applyRevision");
    assert_eq!(
        lens("dismiss")["arguments"][0],
        json!({"uri": URI, "reviewId": id})
    );
    assert!(
        !client
            .server_requests("workspace/codeLens/refresh")
            .is_empty()
    );
    // Critique, revision, judge; then one more revision for the hint the judge left
    // unresolved (the scripted reviser repeats itself, so it is set aside as unchanged).
    assert_eq!(mock.requests().len(), 4);
}

#[tokio::test]
async fn lens_commands_apply_rereview_and_dismiss() {
    let (mock, client, id) = reviewed(full_caps(), json!({})).await;
    let args = json!([{"uri": URI, "reviewId": id}]);
    client
        .command("refine.applyRevision", args.clone())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while client.server_requests("workspace/applyEdit").is_empty()
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let edit = &client.server_requests("workspace/applyEdit")[0]["edit"];
    assert_eq!(
        edit["changeAnnotations"]["refine-revision"]["needsConfirmation"],
        true
    );
    let change = &edit["documentChanges"][0];
    assert_eq!(change["textDocument"]["version"], 1);
    assert!(
        change["edits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["annotationId"] == "refine-revision")
    );
    assert_eq!(
        apply_edits(CODE, change["edits"].as_array().unwrap(), "utf-16"),
        FIXED
    );

    let calls = mock.requests().len();
    mock.set_script(script());
    let res = client
        .command("refine.reReview", args.clone())
        .await
        .unwrap();
    client.finished(res["reviewId"].as_str().unwrap()).await;
    assert!(
        mock.requests().len() > calls,
        "re-review asks the model again"
    );

    let id2 = res["reviewId"].as_str().unwrap();
    let res = client
        .command("refine.dismiss", json!([{"uri": URI, "reviewId": id2}]))
        .await
        .unwrap();
    assert_eq!(res["dismissed"], true);
    client
        .wait_for("textDocument/publishDiagnostics", |p| {
            p["diagnostics"] == json!([])
        })
        .await;
    let lenses = client
        .request(
            "textDocument/codeLens",
            json!({"textDocument": {"uri": URI}}),
        )
        .await
        .unwrap();
    assert_eq!(lenses, json!([]));
}

#[tokio::test]
async fn a_running_review_shows_its_stage_in_a_lens() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([])).delayed(1500)].into(),
        ..Script::default()
    })
    .await;
    let client = LspClient::start(&[("OPENAI_BASE_URL", &mock.base_url)]);
    client.initialize(full_caps(), json!({})).await;
    client.open(URI, "rust", CODE).await;
    let id = client.review(URI, all()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let lenses = client
        .request(
            "textDocument/codeLens",
            json!({"textDocument": {"uri": URI}}),
        )
        .await
        .unwrap();
    assert_eq!(
        lenses[0]["command"]["title"],
        "refine: reviewing (critique 1/3)…"
    );
    assert_eq!(lenses[0]["command"]["command"], "refine.cancel");
    client.finished(&id).await;
}

#[tokio::test]
async fn change_annotations_only_when_the_client_supports_them() {
    let (_m, client, _) = reviewed(full_caps(), json!({})).await;
    let actions = client.code_actions(URI, all()).await;
    let apply = actions
        .iter()
        .find(|a| a["title"].as_str().unwrap().contains("apply revision"))
        .unwrap();
    assert_eq!(
        apply["edit"]["changeAnnotations"]["refine-revision"]["needsConfirmation"],
        true
    );

    let (_m, plain, _) = reviewed(json!({}), json!({})).await;
    let actions = plain.code_actions(URI, all()).await;
    let apply = actions
        .iter()
        .find(|a| a["title"].as_str().unwrap().contains("apply revision"))
        .unwrap();
    assert!(apply["edit"].get("changeAnnotations").is_none());
    assert!(
        apply["edit"]["documentChanges"][0]["edits"][0]
            .get("annotationId")
            .is_none()
    );
}

#[tokio::test]
async fn show_revision_returns_a_unified_diff() {
    let (_m, client, id) = reviewed(full_caps(), json!({})).await;
    let res = client
        .command("refine.showRevision", json!([{"uri": URI}]))
        .await
        .unwrap();
    assert_eq!(res["reviewId"], id);
    assert_eq!(res["fixes"], 1);
    assert_eq!(res["findings"], 2);
    let diff = res["diff"].as_str().unwrap();
    assert!(
        diff.starts_with(
            "--- a//work/demo/src/sum.rs\n+++ b//work/demo/src/sum.rs\n@@ -1,5 +1,5 @@"
        ),
        "{diff}"
    );
    assert!(
        diff.contains("-    for i in 1..xs.len()") && diff.contains("+    for i in 0..xs.len()")
    );
    // The whole revised document, for an editor's side-by-side diff.
    let revised = res["revised"].as_str().unwrap();
    assert_eq!(revised, CODE.replace("1..xs.len()", "0..xs.len()"));
    let none = client
        .command(
            "refine.showRevision",
            json!([{"uri": "file:///nothing.rs"}]),
        )
        .await
        .unwrap();
    assert!(none.is_null());
}

#[tokio::test]
async fn pull_and_push_give_the_same_findings() {
    let (_m, client, _) = reviewed(full_caps(), json!({})).await;
    let pulled = client
        .request(
            "textDocument/diagnostic",
            json!({"textDocument": {"uri": URI}}),
        )
        .await
        .unwrap();
    assert_eq!(pulled["kind"], "full");
    let pushed = client.diagnostics(URI);
    assert_eq!(pulled["items"], json!(pushed));
    assert_eq!(pushed.len(), 2);
    assert!(
        !client
            .server_requests("workspace/diagnostic/refresh")
            .is_empty()
    );
}

#[tokio::test]
async fn an_edit_of_the_reviewed_lines_clears_everything() {
    let (_m, client, _) = reviewed(full_caps(), json!({})).await;
    let before = client.server_requests("workspace/inlayHint/refresh").len();
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": URI, "version": 2},
                   "contentChanges": [{"range": {"start": {"line": 2, "character": 4}, "end": {"line": 2, "character": 4}}, "text": "// "}]}),
        )
        .await;
    client
        .wait_for("textDocument/publishDiagnostics", |p| {
            p["version"] == 2 && p["diagnostics"] == json!([])
        })
        .await;
    for (method, params) in [
        (
            "textDocument/inlayHint",
            json!({"textDocument": {"uri": URI}, "range": all()}),
        ),
        (
            "textDocument/codeLens",
            json!({"textDocument": {"uri": URI}}),
        ),
    ] {
        assert_eq!(
            client.request(method, params).await.unwrap(),
            json!([]),
            "{method}"
        );
    }
    let hover = client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": URI}, "position": {"line": 2, "character": 20}}),
        )
        .await
        .unwrap();
    assert!(hover.is_null());
    let pulled = client
        .request(
            "textDocument/diagnostic",
            json!({"textDocument": {"uri": URI}}),
        )
        .await
        .unwrap();
    assert_eq!(pulled["items"], json!([]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while client.server_requests("workspace/inlayHint/refresh").len() == before
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        client.server_requests("workspace/inlayHint/refresh").len() > before,
        "clients are told to refresh"
    );
}

#[tokio::test]
async fn settings_are_pulled_by_workspace_configuration_and_re_pulled_on_change() {
    let (_m, client, _) = reviewed(
        json!({"workspace": {"configuration": true}, "window": {"workDoneProgress": true}}),
        json!({}),
    )
    .await;
    async fn inlay(client: &LspClient) -> usize {
        client
            .request(
                "textDocument/inlayHint",
                json!({"textDocument": {"uri": URI}, "range": all()}),
            )
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    }
    // Asked once after `initialized`; the answer (null) leaves the defaults: one hint (warning).
    assert!(
        client
            .server_requests("workspace/configuration")
            .iter()
            .any(|r| r["items"][0]["section"] == "refine")
    );
    assert_eq!(inlay(&client).await, 1);

    // `settings: null` means "ask me": the server pulls the section again and applies it.
    *client.configuration.lock().unwrap() = json!({"hints": {"inlay": "all"}});
    client
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": null}),
        )
        .await;
    let mut seen = 0;
    for _ in 0..100 {
        seen = inlay(&client).await;
        if seen == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen, 2,
        "the pulled `hints.inlay = all` shows the info finding too"
    );
    assert_eq!(client.server_requests("workspace/configuration").len(), 2);
}

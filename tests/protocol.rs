//! The protocol surface, in-process (`tests/support/duplex.rs`): the real server over
//! Content-Length frames, each exchange compared with one JSON value. No model is involved:
//! these are the answers a server gives before any review.

mod support;

use serde_json::{Value, json};
use support::duplex::Duplex;

const URI: &str = "file:///tmp/refine-protocol/src/main.rs";

/// Four lines as ropey counts them (three line breaks).
const CODE: &str = "fn main() {\n    let x = 1;\n}\n";

/// Every command, in the order `initialize` announces them.
const COMMANDS: [&str; 11] = [
    "refine.review",
    "refine.refine",
    "refine.cancel",
    "refine.clear",
    "refine.showRevision",
    "refine.applyRevision",
    "refine.reReview",
    "refine.dismiss",
    "refine.dismissFinding",
    "refine.undismiss",
    "refine.applied",
];

fn range(l0: u32, c0: u32, l1: u32, c1: u32) -> Value {
    json!({"start": {"line": l0, "character": c0}, "end": {"line": l1, "character": c1}})
}

/// A server initialized for a client without capabilities, with [`CODE`] open at [`URI`].
async fn with_code() -> Duplex {
    let mut server = Duplex::start();
    server.initialize(json!({})).await;
    server.open(URI, "rust", CODE).await;
    server
}

#[tokio::test]
async fn initialize_announces_the_servers_capabilities() {
    let mut server = Duplex::start();
    let response = server.initialize(json!({})).await;
    assert_eq!(
        response,
        json!({
            "jsonrpc": "2.0",
            "id": 1,
            "result": {
                "capabilities": {
                    "positionEncoding": "utf-16",
                    "textDocumentSync": {"openClose": true, "change": 2},
                    "codeActionProvider": {
                        "codeActionKinds": ["quickfix", "refactor.refine.review", "refactor.rewrite.refine"],
                        "resolveProvider": false,
                    },
                    "inlayHintProvider": true,
                    "hoverProvider": true,
                    "codeLensProvider": {"resolveProvider": false},
                    "executeCommandProvider": {"commands": COMMANDS},
                },
                "serverInfo": {"name": "refine-ls", "version": env!("CARGO_PKG_VERSION")},
            },
        })
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_pulls_diagnostics_and_resolves_edits_is_offered_both() {
    let mut server = Duplex::start();
    let response = server
        .initialize(json!({
            "general": {"positionEncodings": ["utf-8", "utf-16"]},
            "textDocument": {
                "diagnostic": {},
                "codeAction": {"resolveSupport": {"properties": ["edit"]}},
            },
        }))
        .await;
    let capabilities = &response["result"]["capabilities"];
    assert_eq!(
        json!([
            capabilities["positionEncoding"],
            capabilities["codeActionProvider"]["resolveProvider"],
            capabilities["diagnosticProvider"],
        ]),
        json!([
            "utf-8",
            true,
            {"identifier": "refine", "interFileDependencies": false, "workspaceDiagnostics": false},
        ])
    );
}

#[tokio::test]
async fn an_unknown_refine_command_is_an_invalid_params_error() {
    let mut server = Duplex::start();
    server.initialize(json!({})).await;
    let response = server
        .request(
            "workspace/executeCommand",
            json!({"command": "refine.explode", "arguments": []}),
        )
        .await;
    assert_eq!(
        response,
        json!({
            "jsonrpc": "2.0",
            "id": 2,
            "error": {
                "code": -32602,
                "message": format!(
                    "unknown command `refine.explode`; refine-ls runs {}",
                    COMMANDS.join(", ")
                ),
            },
        })
    );
}

#[tokio::test]
async fn code_actions_on_a_document_without_reviews_offer_only_to_review_the_selection() {
    let mut server = with_code().await;
    let selection = range(0, 0, 2, 1);
    let response = server
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": URI}, "range": selection, "context": {"diagnostics": []}}),
        )
        .await;
    let arg = json!({"uri": URI, "range": selection, "diagnostics": []});
    let action = |title: &str, kind: &str, command: &str| {
        json!({
            "title": title,
            "kind": kind,
            "command": {"title": title, "command": command, "arguments": [arg]},
        })
    };
    assert_eq!(
        response,
        json!({
            "jsonrpc": "2.0",
            "id": 2,
            "result": [
                action("Refine: review selection", "refactor.refine.review", "refine.review"),
                action("Refine: refine selection", "refactor.rewrite.refine", "refine.refine"),
            ],
        })
    );
    // At a cursor (an empty range) there is nothing to offer.
    let response = server
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": URI}, "range": range(1, 4, 1, 4), "context": {"diagnostics": []}}),
        )
        .await;
    assert_eq!(response, json!({"jsonrpc": "2.0", "id": 3, "result": []}));
}

#[tokio::test]
async fn positions_past_the_end_of_a_document_give_empty_answers() {
    let mut server = with_code().await;
    let far = range(999, 0, 1000, 7);
    let response = server
        .request(
            "textDocument/inlayHint",
            json!({"textDocument": {"uri": URI}, "range": far}),
        )
        .await;
    assert_eq!(response, json!({"jsonrpc": "2.0", "id": 2, "result": []}));
    let response = server
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": URI}, "position": {"line": 999, "character": 42}}),
        )
        .await;
    assert_eq!(response, json!({"jsonrpc": "2.0", "id": 3, "result": null}));
    let response = server
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": URI}, "range": range(999, 3, 999, 3), "context": {"diagnostics": []}}),
        )
        .await;
    assert_eq!(response, json!({"jsonrpc": "2.0", "id": 4, "result": []}));
}

#[tokio::test]
async fn a_change_that_cannot_apply_is_told_and_the_document_refuses_reviews() {
    let mut server = with_code().await;
    server
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": URI, "version": 2},
                   "contentChanges": [{"range": range(40, 0, 40, 1), "text": "x"}]}),
        )
        .await;
    assert_eq!(
        server.notification("window/showMessage").await,
        json!({
            "jsonrpc": "2.0",
            "method": "window/showMessage",
            "params": {
                "type": 1,
                "message": format!(
                    "refine: an edit to {URI} could not be applied (invalid range: line 40 is past the end of the document (4 lines)); its reviews are cleared and none will run until the file is reopened or sent whole"
                ),
            },
        })
    );
    assert_eq!(
        server.notification("textDocument/publishDiagnostics").await,
        json!({
            "jsonrpc": "2.0",
            "method": "textDocument/publishDiagnostics",
            "params": {"uri": URI, "diagnostics": [], "version": 2},
        })
    );
    let response = server
        .request(
            "workspace/executeCommand",
            json!({"command": "refine.review", "arguments": [{"uri": URI, "range": range(0, 0, 3, 0)}]}),
        )
        .await;
    assert_eq!(
        response,
        json!({
            "jsonrpc": "2.0",
            "id": 2,
            "error": {
                "code": -32602,
                "message": format!(
                    "{URI} is out of sync (an edit could not be applied): reopen the file first"
                ),
            },
        })
    );
}

//! The three wire formats, streamed at awkward byte boundaries, and every scripted fault, each
//! through the real server against a real HTTP mock.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::lsp_client::{LspClient, apply_edits};
use support::mock_llm::{MockLlm, Reply, Script};

const URI: &str = "file:///work/demo/src/sum.rs";
/// Multi-byte text in the code and in the model's words, so chunk cuts fall inside characters.
const CODE: &str = "fn sum(xs: &[i32]) -> i32 {\n    // 合計 😀\n    let mut s = 0;\n    for i in 1..xs.len() { s += xs[i]; }\n    s\n}\n";
const FIXED: &str = "fn sum(xs: &[i32]) -> i32 {\n    // 合計 😀\n    let mut s = 0;\n    for i in 0..xs.len() { s += xs[i]; }\n    s\n}\n";

fn finding(msg: &str, quote: &str) -> Value {
    json!({"start_line": 4, "end_line": 4, "quote": quote, "severity": "warning",
           "principle": "correctness", "message": msg, "confidence": 0.9})
}

fn one_finding() -> Value {
    json!([finding(
        "the loop skips xs[0] — 最初の要素 😀",
        "1..xs.len()"
    )])
}

fn all() -> Value {
    json!({"start": {"line": 0, "character": 0}, "end": {"line": 6, "character": 0}})
}

/// A server whose `refine` settings are `settings`.
async fn server(settings: Value) -> LspClient {
    let client = LspClient::start(&[]);
    client
        .initialize(
            json!({"window": {"workDoneProgress": true}}),
            json!({"refine": settings}),
        )
        .await;
    client.open(URI, "rust", CODE).await;
    client
}

async fn review(client: &LspClient) -> Value {
    let id = client.review_forced(URI, all()).await;
    client.finished(&id).await
}

fn streamed_fix_script() -> Script {
    Script {
        critique: vec![
            Reply::findings(one_finding()).streamed(5, 3, 0),
            Reply::findings(json!([])).streamed(5, 3, 0),
        ]
        .into(),
        revise: vec![Reply::code(FIXED).streamed(4, 5, 0)].into(),
        ..Script::default()
    }
}

async fn assert_fixed(client: &LspClient, done: &Value) {
    assert!(done.get("error").is_none(), "{done}");
    assert_eq!(done["findings"], 1);
    assert_eq!(done["revision"], true);
    let diags = client.diagnostics(URI);
    assert_eq!(diags[0]["message"], "the loop skips xs[0] — 最初の要素 😀");
    let actions = client.code_actions(URI, all()).await;
    let apply = actions
        .iter()
        .find(|a| {
            a["title"]
                .as_str()
                .unwrap()
                .starts_with("Refine: apply revision")
        })
        .expect("apply action");
    let edits = apply["edit"]["documentChanges"][0]["edits"]
        .as_array()
        .unwrap();
    assert_eq!(apply_edits(CODE, edits, "utf-16"), FIXED);
}

#[tokio::test]
async fn openai_streams_sse_split_inside_characters() {
    let mock = MockLlm::start(streamed_fix_script()).await;
    let client =
        server(json!({"provider": {"kind": "openai", "base_url": mock.base_url, "model": "m1"}}))
            .await;
    let done = review(&client).await;
    assert_fixed(&client, &done).await;
    let reqs = mock.recorded();
    assert!(
        reqs.iter()
            .all(|r| r.path == "/v1/chat/completions" && r.body["stream"] == true)
    );
    assert_eq!(reqs[0].body["response_format"]["type"], "json_schema");
    // Usage from the stream's usage event: 100 prompt tokens per call.
    assert_eq!(done["inputTokens"], 300);
}

#[tokio::test]
async fn anthropic_streams_messages_events() {
    let mock = MockLlm::start(streamed_fix_script()).await;
    let client = LspClient::start(&[("ANTHROPIC_API_KEY", "sk-ant-test-0123456789abcdefghij")]);
    client
        .initialize(json!({}), json!({"refine": {"provider": {"kind": "anthropic", "base_url": mock.root_url, "model": "claude-test"}}}))
        .await;
    client.open(URI, "rust", CODE).await;
    let done = review(&client).await;
    assert_fixed(&client, &done).await;
    let reqs = mock.recorded();
    let first = &reqs[0];
    assert_eq!(first.path, "/v1/messages");
    assert!(
        first.body["system"]
            .as_str()
            .unwrap()
            .starts_with("# refine-ls critic")
    );
    assert_eq!(
        first.body["messages"].as_array().unwrap().len(),
        1,
        "system goes apart"
    );
    assert_eq!(first.body["max_tokens"], 4096);
    let header = |name: &str| {
        first
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("x-api-key").as_deref(),
        Some("sk-ant-test-0123456789abcdefghij")
    );
    assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
}

#[tokio::test]
async fn ollama_streams_ndjson_with_the_schema_as_format() {
    let mock = MockLlm::start(streamed_fix_script()).await;
    let client = LspClient::start(&[("OLLAMA_HOST", mock.root_url.trim_start_matches("http://"))]);
    client
        .initialize(
            json!({}),
            json!({"refine": {"provider": {"kind": "ollama", "model": "qwen2.5-coder:7b"}}}),
        )
        .await;
    client.open(URI, "rust", CODE).await;
    let done = review(&client).await;
    assert_fixed(&client, &done).await;
    let reqs = mock.recorded();
    assert_eq!(reqs[0].path, "/api/chat");
    assert_eq!(reqs[0].body["format"]["required"], json!(["findings"]));
    assert!(
        reqs[1].body.get("format").is_none(),
        "revisions ask for no format"
    );
    // Room for the prompt and the answer: Ollama's 2,048-token default would cut the front.
    let num_ctx = reqs[0].body["options"]["num_ctx"].as_u64().unwrap();
    assert!(num_ctx >= 4096 && num_ctx.is_power_of_two(), "{num_ctx}");
    assert_eq!(done["inputTokens"], 300);
}

#[tokio::test]
async fn the_first_diagnostic_arrives_long_before_the_stream_ends() {
    let five: Vec<Value> = (0..5)
        .map(|i| finding(&format!("finding {i}"), "1..xs.len()"))
        .collect();
    let content = json!({"findings": five}).to_string();
    // About 2 s in all: some 40 events of ~110 bytes, one chunk each, 50 ms apart.
    let piece = content.chars().count().div_ceil(40);
    let mock = MockLlm::start(Script {
        critique: vec![Reply::content(content).streamed(piece, 110, 50)].into(),
        revise: vec![Reply::content("no change")].into(),
        ..Script::default()
    })
    .await;
    let client =
        server(json!({"provider": {"base_url": mock.base_url}, "loop": {"max_iterations": 1}}))
            .await;
    let started = Instant::now();
    let id = client.review(URI, all()).await;
    client
        .wait_for("textDocument/publishDiagnostics", |p| {
            p["diagnostics"].as_array().is_some_and(|d| !d.is_empty())
        })
        .await;
    let first = started.elapsed();
    let done = client.finished(&id).await;
    let ended = mock.stream_ends()[0].duration_since(started);
    eprintln!("time to first diagnostic: {first:?}; critique stream ended after {ended:?}");
    assert_eq!(done["findings"], 5);
    assert!(
        first < ended,
        "first diagnostic {first:?} came before the stream ended {ended:?}"
    );
    assert!(ended >= Duration::from_millis(1800));
    assert!(first < ended / 2, "{first:?} vs {ended:?}");
    // Progress showed the stream advancing.
    let reports: Vec<String> = client
        .notifications("$/progress")
        .iter()
        .filter_map(|p| p["value"]["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        reports.iter().any(|m| m.contains("3 findings")),
        "{reports:?}"
    );
}

#[tokio::test]
async fn rate_limits_are_retried_after_retry_after() {
    let mock = MockLlm::start(Script {
        critique: vec![
            Reply::status(429, r#"{"error":{"message":"slow down"}}"#).retry_after("1"),
            Reply::findings(json!([])),
        ]
        .into(),
        ..Script::default()
    })
    .await;
    let client = server(json!({"provider": {"base_url": mock.base_url}})).await;
    let started = Instant::now();
    let done = review(&client).await;
    assert!(done.get("error").is_none(), "{done}");
    let reqs = mock.recorded();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at.duration_since(reqs[0].at);
    assert!(
        gap >= Duration::from_millis(950),
        "waited {gap:?} as Retry-After asked"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_hostile_retry_after_never_stops_a_review_from_ending() {
    // Huge values: the wait would exceed the time left, so the review ends with the 429.
    for huge in [
        "1e30",
        "18446744073709551616",
        "inf",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        let mock = MockLlm::start(Script {
            critique: vec![Reply::status(429, "{}").retry_after(huge)].into(),
            ..Script::default()
        })
        .await;
        let client =
            server(json!({"provider": {"base_url": mock.base_url, "timeout_secs": 5}})).await;
        let started = Instant::now();
        let done = review(&client).await;
        let error = done["error"].as_str().unwrap_or_default();
        assert!(error.contains("429"), "{huge}: {done}");
        assert!(started.elapsed() < Duration::from_secs(3), "{huge}");
    }
    // Nonsense: ignored, the usual backoff, then the answer.
    for bad in ["-5", "NaN", "soon"] {
        let mock = MockLlm::start(Script {
            critique: vec![
                Reply::status(429, "{}").retry_after(bad),
                Reply::findings(json!([])),
            ]
            .into(),
            ..Script::default()
        })
        .await;
        let client = server(json!({"provider": {"base_url": mock.base_url}})).await;
        let done = review(&client).await;
        assert!(done.get("error").is_none(), "{bad}: {done}");
        assert_eq!(mock.recorded().len(), 2, "{bad}");
    }
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let mock = MockLlm::start(Script {
        critique: vec![
            Reply::status(503, "busy"),
            Reply::status(500, "oops"),
            Reply::findings(json!([])),
        ]
        .into(),
        ..Script::default()
    })
    .await;
    let client = server(json!({"provider": {"base_url": mock.base_url}})).await;
    let done = review(&client).await;
    assert!(done.get("error").is_none(), "{done}");
    assert_eq!(mock.recorded().len(), 3);
}

#[tokio::test]
async fn client_errors_other_than_429_are_not_retried() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::status(
            404,
            r#"{"error":{"message":"model `nope` not found"}}"#,
        )]
        .into(),
        ..Script::default()
    })
    .await;
    let client = server(json!({"provider": {"base_url": mock.base_url, "model": "nope"}})).await;
    let done = review(&client).await;
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("HTTP 404: model `nope` not found"),
        "{done}"
    );
    assert_eq!(mock.recorded().len(), 1);
}

#[tokio::test]
async fn retries_are_bounded() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::status(429, "{}").retry_after("0")].into(),
        ..Script::default()
    })
    .await;
    let client = server(json!({"provider": {"base_url": mock.base_url, "max_retries": 2}})).await;
    let done = review(&client).await;
    let err = done["error"].as_str().unwrap();
    assert!(
        err.contains("rate-limiting") && err.contains("2 retries"),
        "{err}"
    );
    assert_eq!(mock.recorded().len(), 3);
}

#[tokio::test]
async fn a_connection_reset_mid_stream_is_a_clear_error() {
    let mock = MockLlm::start(Script {
        critique: vec![
            Reply::findings(one_finding())
                .streamed(5, 4, 0)
                .fault("reset"),
        ]
        .into(),
        ..Script::default()
    })
    .await;
    let client = server(json!({"provider": {"base_url": mock.base_url}})).await;
    let done = review(&client).await;
    let err = done["error"].as_str().unwrap();
    assert!(
        err.contains("cut the connection in the middle of its reply"),
        "{err}"
    );
    assert!(
        client.diagnostics(URI).is_empty(),
        "a broken critique leaves no findings"
    );
}

#[tokio::test]
async fn a_stalled_stream_is_aborted() {
    let mock = MockLlm::start(Script {
        critique: vec![
            Reply::findings(one_finding())
                .streamed(5, 8, 0)
                .fault("stall"),
        ]
        .into(),
        ..Script::default()
    })
    .await;
    let client =
        server(json!({"provider": {"base_url": mock.base_url, "stall_timeout_secs": 1}})).await;
    let started = Instant::now();
    let done = review(&client).await;
    let err = done["error"].as_str().unwrap();
    assert!(err.contains("stopped sending for 1 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn malformed_stream_events_are_a_clear_error() {
    let mock = MockLlm::start(Script {
        critique: vec![
            Reply::findings(one_finding())
                .streamed(5, 16, 0)
                .fault("malformed"),
        ]
        .into(),
        ..Script::default()
    })
    .await;
    let client = server(json!({"provider": {"base_url": mock.base_url}})).await;
    let done = review(&client).await;
    let err = done["error"].as_str().unwrap();
    assert!(
        err.contains("cannot read") && err.contains("not JSON"),
        "{err}"
    );
}

#[tokio::test]
async fn a_rejected_json_schema_falls_back_and_is_remembered() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        reject_structured: vec!["json_schema".into()],
        ..Script::default()
    })
    .await;
    let client = server(json!({"provider": {"base_url": mock.base_url}})).await;
    let done = review(&client).await;
    assert!(done.get("error").is_none(), "{done}");
    let done = review(&client).await;
    assert!(done.get("error").is_none(), "{done}");
    let kinds: Vec<Value> = mock
        .requests()
        .iter()
        .map(|r| r["response_format"]["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            json!("json_schema"),
            json!("json_object"),
            json!("json_object")
        ]
    );

    // A server that takes neither gets the schema in the prompt alone.
    let strict = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        reject_structured: vec!["json_schema".into(), "json_object".into()],
        ..Script::default()
    })
    .await;
    let client = server(json!({"provider": {"base_url": strict.base_url}})).await;
    assert!(review(&client).await.get("error").is_none());
    let last = strict.requests().pop().unwrap();
    assert!(last.get("response_format").is_none());
    assert!(
        last["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("matching this schema")
    );
}

#[tokio::test]
async fn cancelling_mid_stream_closes_the_connection() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(one_finding()).streamed(2, 4, 100)].into(),
        ..Script::default()
    })
    .await;
    let client = server(json!({"provider": {"base_url": mock.base_url}})).await;
    let id = client.review(URI, all()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mock.hangups(), 0);
    client
        .command("refine.cancel", json!([{"reviewId": id}]))
        .await
        .unwrap();
    let done = client.finished(&id).await;
    assert_eq!(done["error"], "the review was cancelled");
    let deadline = Instant::now() + Duration::from_secs(3);
    while mock.hangups() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mock.hangups(), 1, "the mock saw the client hang up");
    assert!(mock.stream_ends().is_empty(), "the stream never finished");
}

#[tokio::test]
async fn critic_and_reviser_can_be_different_endpoints() {
    let critic = MockLlm::start(Script {
        critique: vec![Reply::findings(one_finding()), Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let reviser = MockLlm::start(Script {
        revise: vec![Reply::code(FIXED).streamed(8, 11, 0)].into(),
        ..Script::default()
    })
    .await;
    let client = server(json!({
        "provider": {"base_url": critic.base_url, "model": "strong"},
        "reviser": {"kind": "ollama", "base_url": reviser.root_url, "model": "cheap", "temperature": 0.7}
    }))
    .await;
    let done = review(&client).await;
    assert_fixed(&client, &done).await;
    let c = critic.requests();
    assert_eq!(c.len(), 2);
    assert!(
        c.iter()
            .all(|r| r["model"] == "strong" && r.get("response_format").is_some())
    );
    let r = reviser.recorded();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].path, "/api/chat");
    assert_eq!(r[0].body["model"], "cheap");
    assert_eq!(r[0].body["options"]["temperature"], 0.7);
}

#[tokio::test]
async fn gateway_headers_and_extra_body_are_sent() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let client = server(json!({"provider": {
        "base_url": mock.base_url,
        "headers": {"X-Gateway-Team": "refine"},
        "extra_body": {"top_k": 5, "user": "ci"}
    }}))
    .await;
    assert!(review(&client).await.get("error").is_none());
    let r = &mock.recorded()[0];
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "x-gateway-team" && v == "refine")
    );
    assert_eq!(r.body["top_k"], 5);
    assert_eq!(r.body["user"], "ci");
}

#[tokio::test]
async fn a_slow_first_token_has_its_own_bound_and_its_own_advice() {
    // A server reading a long prompt sends nothing for 2.5 s: more than the stall timeout.
    let script = || Script {
        critique: vec![Reply::findings(one_finding()).delayed(2500)].into(),
        revise: vec![Reply::code(FIXED)].into(),
        ..Script::default()
    };
    let mock = MockLlm::start(script()).await;
    let client = server(
        json!({"provider": {"base_url": mock.base_url, "stall_timeout_secs": 1,
        "first_token_timeout_secs": 20}, "loop": {"max_iterations": 0}}),
    )
    .await;
    let done = review(&client).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(done["findings"], 1);
    let mock = MockLlm::start(script()).await;
    let client = server(
        json!({"provider": {"base_url": mock.base_url, "max_retries": 0,
        "first_token_timeout_secs": 1}, "loop": {"max_iterations": 0}}),
    )
    .await;
    let done = review(&client).await;
    let err = done["error"].as_str().unwrap();
    assert!(
        err.contains("sent no token within 1 s") && err.contains("first_token_timeout_secs"),
        "{err}"
    );
}

#[tokio::test]
async fn a_400_about_the_context_size_costs_one_request_and_no_fallback() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::status(
            400,
            r#"{"error": {"code": 400, "message": "the request exceeds the available context size, try increasing it", "type": "exceed_context_size_error"}}"#,
        )]
        .into(),
        ..Script::default()
    })
    .await;
    let client = server(json!({"provider": {"base_url": mock.base_url}})).await;
    let done = review(&client).await;
    let err = done["error"].as_str().unwrap();
    assert!(err.contains("exceeds the available context size"), "{err}");
    assert_eq!(mock.requests().len(), 1, "no structured-output fallback");
    // The next review still asks for the schema: nothing was remembered.
    mock.set_script(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    });
    let done = review(&client).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(
        mock.requests()[1]["response_format"]["type"],
        "json_schema",
        "{:?}",
        mock.requests()[1]
    );
}

#[tokio::test]
async fn provider_max_tokens_applies_to_every_kind() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let client = server(json!({"provider": {"base_url": mock.base_url, "max_tokens": 321}})).await;
    review(&client).await;
    assert_eq!(mock.requests()[0]["max_tokens"], 321);

    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let client = LspClient::start(&[("ANTHROPIC_API_KEY", "sk-ant-test-0123456789abcdefghij")]);
    client
        .initialize(
            json!({}),
            json!({"refine": {"provider": {"kind": "anthropic",
            "base_url": mock.root_url, "model": "claude-test", "max_tokens": 777}}}),
        )
        .await;
    client.open(URI, "rust", CODE).await;
    review(&client).await;
    assert_eq!(mock.recorded()[0].body["max_tokens"], 777);

    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let client = LspClient::start(&[("OLLAMA_HOST", mock.root_url.trim_start_matches("http://"))]);
    client
        .initialize(
            json!({}),
            json!({"refine": {"provider": {"kind": "ollama", "model": "m",
            "max_tokens": 555}}}),
        )
        .await;
    client.open(URI, "rust", CODE).await;
    review(&client).await;
    assert_eq!(mock.recorded()[0].body["options"]["num_predict"], 555);
}

#[tokio::test]
async fn a_critique_cut_off_at_the_token_limit_keeps_its_complete_findings_and_says_so() {
    // An OpenAI-compatible reply cut at max_tokens: one finding complete, the next cut.
    let content = format!(
        "{{\"findings\": [{}, {{\"message\": \"the second one is cu",
        finding("the loop skips xs[0]", "1..xs.len()")
    );
    let body = json!({
        "id": "x", "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "length"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 64},
    });
    let mock = MockLlm::start(Script {
        critique: vec![Reply::raw(&body.to_string())].into(),
        ..Script::default()
    })
    .await;
    let client = server(
        json!({"provider": {"base_url": mock.base_url, "max_tokens": 64},
        "loop": {"max_iterations": 0}}),
    )
    .await;
    let done = review(&client).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(done["findings"], 1, "{done}");
    let notes = done["notes"].to_string();
    assert!(
        notes.contains("cut off at the token limit (64 tokens)")
            && notes.contains("provider.max_tokens"),
        "{notes}"
    );
}

#[tokio::test]
async fn fix_first_shows_where_its_verified_fix_changes_the_code_before_the_explanation_ends() {
    let explanation = json!({"changes": [{"change": 1, "message": "the loop skips xs[0]",
        "principle": "correctness", "severity": "warning", "fixes_a_problem": true}]});
    let mock = MockLlm::start(Script {
        revise: vec![Reply::code(FIXED)].into(),
        explain: vec![Reply::content(explanation.to_string()).delayed(1500)].into(),
        ..Script::default()
    })
    .await;
    let client = server(json!({"provider": {"base_url": mock.base_url},
        "loop": {"strategy": "fix-first", "max_iterations": 1, "probes": false}}))
    .await;
    let started = Instant::now();
    let id = client.review(URI, all()).await;
    let pending = client
        .wait_for("textDocument/publishDiagnostics", |p| {
            p["diagnostics"].as_array().is_some_and(|d| !d.is_empty())
        })
        .await;
    let first = started.elapsed();
    // While the explainer is still answering: a hint on the line the verified fix changes.
    let hint = &pending["diagnostics"][0];
    assert_eq!(hint["severity"], 4, "a hint first: {hint}");
    assert_eq!(hint["range"]["start"]["line"], 3, "{hint}");
    assert!(
        hint["message"]
            .as_str()
            .is_some_and(|m| m.contains("A verified fix changes this code")),
        "{hint}"
    );
    let done = client.finished(&id).await;
    let ended = started.elapsed();
    assert!(done.get("error").is_none(), "{done}");
    assert!(
        ended.saturating_sub(first) >= Duration::from_millis(1400),
        "the hint came at {first:?}, the review ended at {ended:?}"
    );
    // The explained finding replaced it, raised to its own severity, and nothing else remains.
    let diags = client.diagnostics(URI);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("the loop skips xs[0]")),
        "{diags:?}"
    );
    assert!(
        diags[0]["severity"].as_u64().is_some_and(|s| s < 4),
        "{diags:?}"
    );
    // No diagnostic was ever published above a hint before the review ended.
    let before_end: Vec<Value> = client
        .notifications("textDocument/publishDiagnostics")
        .into_iter()
        .filter(|p| p["diagnostics"].as_array().is_some_and(|d| !d.is_empty()))
        .collect();
    assert!(before_end.len() >= 2, "{before_end:?}");
    let last = before_end.len() - 1;
    for p in &before_end[..last] {
        for d in p["diagnostics"].as_array().into_iter().flatten() {
            assert_eq!(d["severity"], 4, "shown before its evidence was in: {d}");
        }
    }
}

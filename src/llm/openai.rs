//! The OpenAI chat-completions wire format (OpenAI, vLLM, llama.cpp's server, LM Studio,
//! Ollama's `/v1`), streamed as server-sent events.

use serde_json::{Value, json};

use super::chat::{ChatRequest, JsonSchema, Sampling, StructuredMode};
use super::error::snippet;
use super::stream::{Accumulator, SseEvent};
use crate::config::ProviderConfig;

/// `provider.base_url`, else `OPENAI_BASE_URL`, else the public endpoint.
pub fn base_url(cfg: &ProviderConfig) -> String {
    cfg.base_url
        .clone()
        .or_else(|| {
            std::env::var("OPENAI_BASE_URL")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "https://api.openai.com/v1".to_owned())
}

/// The request body.
pub fn body(
    model: &str,
    req: &ChatRequest,
    schema: Option<(&JsonSchema, StructuredMode)>,
    sampling: Sampling,
) -> Value {
    let mut body = json!({
        "model": model,
        "messages": req.messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(t) = sampling.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(n) = sampling.max_tokens {
        body["max_tokens"] = json!(n);
    }
    match schema {
        Some((s, StructuredMode::JsonSchema)) => {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": s.name, "schema": s.schema},
            });
        }
        Some((_, StructuredMode::JsonObject)) => {
            body["response_format"] = json!({"type": "json_object"});
        }
        _ => {}
    }
    body
}

/// Reads one event (or, from a server that ignored `stream`, the whole completion).
pub fn on_event(ev: &SseEvent, acc: &mut Accumulator) -> Result<(), String> {
    let data = ev.data.trim();
    if data == "[DONE]" {
        acc.done = true;
        acc.saw_event = true;
        return Ok(());
    }
    let v: Value = serde_json::from_str(data)
        .map_err(|e| format!("a stream event is not JSON ({e}): {}", snippet(data)))?;
    if let Some(err) = v.get("error") {
        let msg = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        return Err(format!("the stream reported an error: {msg}"));
    }
    acc.saw_event = true;
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        acc.input_tokens = u
            .get("prompt_tokens")
            .and_then(Value::as_u64)
            .or(acc.input_tokens);
        acc.output_tokens = u
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .or(acc.output_tokens);
        acc.cached_tokens = u
            .pointer("/prompt_tokens_details/cached_tokens")
            .and_then(Value::as_u64)
            .or(acc.cached_tokens);
    }
    // llama.cpp's server: how much of the prompt came from its cache.
    if let Some(n) = v.pointer("/timings/cache_n").and_then(Value::as_u64) {
        acc.cached_tokens = Some(n);
    }
    if let Some(choice) = v.pointer("/choices/0") {
        if choice.get("finish_reason").and_then(Value::as_str) == Some("length") {
            acc.truncated = true;
        }
        if let Some(t) = choice.pointer("/delta/content").and_then(Value::as_str) {
            acc.text.push_str(t);
        }
        // A whole (non-streamed) completion.
        if let Some(t) = choice.pointer("/message/content").and_then(Value::as_str) {
            acc.text.push_str(t);
            acc.done = true;
        }
    } else if v.get("usage").is_none() {
        return Err(format!("an event has no choices: {}", snippet(data)));
    }
    Ok(())
}

//! The Anthropic Messages wire format, streamed as server-sent events. The critique schema is
//! asked for by instruction (the system prompt carries it).

use serde_json::{Value, json};

use super::chat::{ChatRequest, Role, Sampling};
use super::error::snippet;
use super::stream::{Accumulator, SseEvent};
use crate::config::ProviderConfig;

/// `provider.base_url`, else the public endpoint.
pub fn base_url(cfg: &ProviderConfig) -> String {
    cfg.base_url
        .clone()
        .unwrap_or_else(|| "https://api.anthropic.com".to_owned())
}

/// The request body: system messages go to `system`, the rest to `messages`.
pub fn body(model: &str, req: &ChatRequest, sampling: Sampling) -> Value {
    let system: Vec<&str> = req
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    let messages: Vec<Value> = req
        .messages
        .iter()
        .filter(|m| m.role != Role::System)
        .map(|m| json!({"role": m.role, "content": m.content}))
        .collect();
    let mut body = json!({
        "model": model,
        // The Messages API requires a limit.
        "max_tokens": sampling.max_tokens.unwrap_or(4096),
        "system": system.join("\n\n"),
        "messages": messages,
        "stream": true,
    });
    if let Some(t) = sampling.temperature {
        body["temperature"] = json!(t);
    }
    body
}

/// Reads one event (or a whole non-streamed message).
pub fn on_event(ev: &SseEvent, acc: &mut Accumulator) -> Result<(), String> {
    let data = ev.data.trim();
    if data.is_empty() {
        return Ok(());
    }
    let v: Value = serde_json::from_str(data)
        .map_err(|e| format!("a stream event is not JSON ({e}): {}", snippet(data)))?;
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .or(ev.event.as_deref())
        .unwrap_or("");
    match kind {
        "error" => {
            let msg = v
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            return Err(format!("the stream reported an error: {msg}"));
        }
        "message_start" => {
            acc.input_tokens = v
                .pointer("/message/usage/input_tokens")
                .and_then(Value::as_u64);
        }
        "content_block_delta" => {
            if let Some(t) = v.pointer("/delta/text").and_then(Value::as_str) {
                acc.text.push_str(t);
            }
        }
        "message_delta" => {
            if let Some(n) = v.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                acc.output_tokens = Some(n);
            }
            if v.pointer("/delta/stop_reason").and_then(Value::as_str) == Some("max_tokens") {
                acc.truncated = true;
            }
        }
        "message_stop" => acc.done = true,
        "message" => {
            for block in v
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(t) = block.get("text").and_then(Value::as_str) {
                    acc.text.push_str(t);
                }
            }
            acc.input_tokens = v.pointer("/usage/input_tokens").and_then(Value::as_u64);
            acc.output_tokens = v.pointer("/usage/output_tokens").and_then(Value::as_u64);
            acc.done = true;
        }
        _ => {}
    }
    acc.saw_event = true;
    Ok(())
}

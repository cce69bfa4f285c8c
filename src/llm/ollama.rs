//! Ollama's native `/api/chat`, streamed as newline-delimited JSON; `format` carries the
//! critique schema (or `"json"`).

use serde_json::{Value, json};

use super::chat::{ChatRequest, JsonSchema, Sampling, StructuredMode, estimate_tokens};
use super::error::snippet;
use super::stream::{Accumulator, SseEvent};
use crate::config::ProviderConfig;

/// `provider.base_url`, else `OLLAMA_HOST` (with or without a scheme), else the local default.
pub fn base_url(cfg: &ProviderConfig) -> String {
    if let Some(u) = &cfg.base_url {
        return u.clone();
    }
    match std::env::var("OLLAMA_HOST")
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        Some(h) if h.contains("://") => h,
        Some(h) => format!("http://{h}"),
        None => "http://127.0.0.1:11434".to_owned(),
    }
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
    });
    let mut options = serde_json::Map::new();
    if let Some(t) = sampling.temperature {
        options.insert("temperature".to_owned(), json!(t));
    }
    if let Some(n) = sampling.max_tokens {
        options.insert("num_predict".to_owned(), json!(n));
    }
    // Ollama's default context (2,048 tokens) silently drops the front of a longer prompt:
    // the system prompt and the schema first. Ask for room for the prompt and the answer, in
    // powers of two so that the model is not reloaded for every size.
    let prompt: u64 = req
        .messages
        .iter()
        .map(|m| estimate_tokens(&m.content))
        .sum::<u64>()
        + schema.map_or(0, |(s, _)| estimate_tokens(&s.schema.to_string()));
    let answer = u64::from(sampling.max_tokens.unwrap_or(1024));
    let needed = prompt.saturating_add(answer).saturating_add(256);
    options.insert(
        "num_ctx".to_owned(),
        json!(
            needed
                .max(4096)
                .checked_next_power_of_two()
                .unwrap_or(u64::MAX)
        ),
    );
    body["options"] = Value::Object(options);
    match schema {
        Some((s, StructuredMode::JsonSchema)) => body["format"] = s.schema.clone(),
        Some((_, StructuredMode::JsonObject)) => body["format"] = json!("json"),
        _ => {}
    }
    body
}

/// Reads one NDJSON line.
pub fn on_event(ev: &SseEvent, acc: &mut Accumulator) -> Result<(), String> {
    let line = ev.data.trim();
    let v: Value = serde_json::from_str(line)
        .map_err(|e| format!("a stream line is not JSON ({e}): {}", snippet(line)))?;
    if let Some(err) = v.get("error") {
        let msg = err
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| err.to_string());
        return Err(format!("the stream reported an error: {msg}"));
    }
    if let Some(t) = v.pointer("/message/content").and_then(Value::as_str) {
        acc.text.push_str(t);
    } else if v.get("done").is_none() {
        return Err(format!("a stream line has no message: {}", snippet(line)));
    }
    if v.get("done").and_then(Value::as_bool) == Some(true) {
        acc.done = true;
        acc.truncated = v.get("done_reason").and_then(Value::as_str) == Some("length");
        acc.input_tokens = v.get("prompt_eval_count").and_then(Value::as_u64);
        acc.output_tokens = v.get("eval_count").and_then(Value::as_u64);
    }
    acc.saw_event = true;
    Ok(())
}

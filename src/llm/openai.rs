//! The OpenAI chat-completions wire format, as spoken by OpenAI, vLLM, llama.cpp's server,
//! LM Studio and Ollama's `/v1`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{ChatRequest, ChatResponse, ProviderError, Usage, estimate_tokens, is_loopback};
use crate::config::ProviderConfig;

const NAME: &str = "openai";
const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
const DEFAULT_MODEL: &str = "gpt-4o-mini";
const DEFAULT_KEY_ENV: &str = "OPENAI_API_KEY";

/// An OpenAI-compatible endpoint.
pub struct OpenAiProvider {
    http: reqwest::Client,
    url: String,
    model: String,
    key: Option<SecretString>,
    key_env: String,
    timeout_secs: u64,
    temperature: Option<f64>,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl OpenAiProvider {
    /// Reads base URL, model and key (from the environment) for this endpoint.
    pub fn new(cfg: &ProviderConfig) -> Result<Self, ProviderError> {
        let base = cfg
            .base_url
            .clone()
            .or_else(|| {
                std::env::var("OPENAI_BASE_URL")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let parsed = url::Url::parse(&base).map_err(|e| ProviderError::Config {
            provider: NAME,
            message: format!("provider.base_url `{base}` is not a URL ({e})"),
        })?;
        let key_env = cfg
            .api_key_env
            .clone()
            .unwrap_or_else(|| DEFAULT_KEY_ENV.to_owned());
        let key = std::env::var(&key_env)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(SecretString::from);
        let url = format!("{}/chat/completions", base.trim_end_matches('/'));
        if key.is_none() && !is_loopback(&parsed) {
            return Err(ProviderError::MissingKey {
                provider: NAME,
                url: base,
                env: key_env,
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .build()
            .map_err(|e| ProviderError::Config {
                provider: NAME,
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Self {
            http,
            url,
            model: cfg
                .model
                .clone()
                .unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
            key,
            key_env,
            timeout_secs: cfg.timeout_secs.max(1),
            temperature: cfg.temperature,
        })
    }

    /// `openai model at url`.
    pub fn describe(&self) -> String {
        format!("{NAME} {} at {}", self.model, self.url)
    }

    /// The request body for a call.
    fn body(&self, req: &ChatRequest) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": req.messages,
        });
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(schema) = &req.json_schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": schema.name, "schema": schema.schema},
            });
        }
        body
    }

    /// One non-streaming call.
    pub async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = self.body(req);
        tracing::debug!(url = %self.url, "sending chat request");
        let mut builder = self.http.post(&self.url).json(&body);
        if let Some(key) = &self.key {
            builder = builder.bearer_auth(key.expose_secret());
        }
        let resp = builder.send().await.map_err(|e| self.net_error(&e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.net_error(&e))?;
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(ProviderError::Auth {
                provider: NAME,
                url: self.url.clone(),
                status: status.as_u16(),
                env: self.key_env.clone(),
            });
        }
        if !status.is_success() {
            return Err(ProviderError::Http {
                provider: NAME,
                url: self.url.clone(),
                status: status.as_u16(),
                detail: error_detail(&text),
            });
        }
        let bad = |detail: String| ProviderError::BadResponse {
            provider: NAME,
            url: self.url.clone(),
            detail,
        };
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not JSON ({e}): {}", snippet(&text))))?;
        let content = v
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                bad(format!(
                    "no choices[0].message.content in {}",
                    snippet(&text)
                ))
            })?
            .to_owned();
        let usage = match (
            v.pointer("/usage/prompt_tokens").and_then(Value::as_u64),
            v.pointer("/usage/completion_tokens")
                .and_then(Value::as_u64),
        ) {
            (Some(i), Some(o)) => Usage {
                input_tokens: i,
                output_tokens: o,
            },
            _ => Usage {
                input_tokens: req
                    .messages
                    .iter()
                    .map(|m| estimate_tokens(&m.content))
                    .sum(),
                output_tokens: estimate_tokens(&content),
            },
        };
        Ok(ChatResponse { content, usage })
    }

    fn net_error(&self, e: &reqwest::Error) -> ProviderError {
        if e.is_timeout() {
            ProviderError::Timeout {
                provider: NAME,
                url: self.url.clone(),
                secs: self.timeout_secs,
            }
        } else {
            let mut reason = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                reason = s.to_string();
                src = s.source();
            }
            ProviderError::Connect {
                provider: NAME,
                url: self.url.clone(),
                reason,
            }
        }
    }
}

/// The message of an error body (`{"error":{"message":…}}`), or its start.
fn error_detail(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("error"))
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| snippet(body))
}

fn snippet(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    if t.len() < text.len() {
        format!("{t}…")
    } else if t.trim().is_empty() {
        "(empty body)".to_owned()
    } else {
        t
    }
}

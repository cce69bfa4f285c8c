//! Providers behind HTTP: one request streamed with a stall timeout, retries with backoff
//! (`Retry-After` honoured), the structured-output fallback remembered per endpoint, and
//! cancellation (which drops the connection). The wire formats themselves are in `openai`,
//! `anthropic` and `ollama`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::error::error_detail;
use super::limit::Limiter;
use super::stream::{self, LineBuffer, MAX_REPLY};
use super::{
    ChatRequest, ChatResponse, Kind, ProviderError, Usage, anthropic, estimate_tokens, ollama,
    openai,
};
use crate::config::ProviderConfig;
use crate::net::root_cause;

/// How structured output is asked for, strongest first. Servers differ (llama-cpp-python, for
/// one, rejects `json_schema`), so a rejected mode falls back to the next and the endpoint's
/// answer is remembered for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredMode {
    /// The schema itself (`response_format: json_schema`, Ollama's `format: schema`).
    JsonSchema,
    /// JSON mode (`response_format: json_object`, Ollama's `format: "json"`), schema in the prompt.
    JsonObject,
    /// Only the prompt asks for JSON.
    PromptOnly,
}

impl StructuredMode {
    fn weaker(self) -> Option<Self> {
        match self {
            Self::JsonSchema => Some(Self::JsonObject),
            Self::JsonObject => Some(Self::PromptOnly),
            Self::PromptOnly => None,
        }
    }
}

/// What each endpoint accepted this session.
static STRUCTURED: LazyLock<Mutex<HashMap<String, StructuredMode>>> =
    LazyLock::new(Default::default);

/// One failed attempt, and whether trying again may help.
struct Failure {
    error: ProviderError,
    retry: bool,
    retry_after: Option<Duration>,
    /// The server rejected the structured-output request.
    structured_rejected: bool,
}

impl Failure {
    /// A failure that trying again cannot mend.
    fn fatal(error: ProviderError) -> Self {
        Self {
            error,
            retry: false,
            retry_after: None,
            structured_rejected: false,
        }
    }

    /// A failure of the network or the server that another attempt may not meet.
    fn retryable(error: ProviderError) -> Self {
        Self {
            retry: true,
            ..Self::fatal(error)
        }
    }
}

/// A model behind an HTTP endpoint, in one of the three wire formats.
pub struct HttpProvider {
    kind: Kind,
    http: reqwest::Client,
    base_url: String,
    model: String,
    key: Option<SecretString>,
    key_env: String,
    headers: Vec<(String, String)>,
    extra_body: serde_json::Map<String, Value>,
    temperature: Option<f64>,
    /// `provider.max_tokens`.
    max_tokens: Option<u32>,
    timeout: Duration,
    stall: Duration,
    /// The wait for the first token (the server reads the prompt meanwhile).
    first_token: Duration,
    max_retries: u32,
    /// Why `auto` chose this kind.
    chosen_because: Option<String>,
    /// `provider.rpm` / `provider.tpm`, shared with every provider of this endpoint.
    limit: Option<Arc<Limiter>>,
}

impl std::fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProvider")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl HttpProvider {
    /// Builds the endpoint of kind `kind` (not `Local`) that the configuration names, reading
    /// its key from the environment.
    pub fn from_config(
        cfg: &ProviderConfig,
        kind: Kind,
        chosen_because: Option<String>,
    ) -> Result<Self, ProviderError> {
        let base_url = match kind {
            Kind::Anthropic => anthropic::base_url(cfg),
            Kind::Ollama => ollama::base_url(cfg),
            Kind::OpenAi | Kind::Local => openai::base_url(cfg),
        };
        let parsed = url::Url::parse(&base_url).map_err(|e| ProviderError::Config {
            provider: kind.name(),
            message: format!("provider.base_url `{base_url}` is not a URL ({e})"),
        })?;
        let key_env = cfg
            .api_key_env
            .clone()
            .or_else(|| kind.default_key_env().map(str::to_owned))
            .unwrap_or_default();
        let key = (!key_env.is_empty())
            .then(|| std::env::var(&key_env).ok())
            .flatten()
            .filter(|k| !k.trim().is_empty())
            .map(SecretString::from);
        if key.is_none() && kind.default_key_env().is_some() && !is_loopback(&parsed) {
            return Err(ProviderError::MissingKey {
                provider: kind.name(),
                url: base_url,
                env: key_env,
            });
        }
        if key.is_some() && parsed.scheme() == "http" && !is_loopback(&parsed) {
            return Err(ProviderError::InsecureUrl {
                provider: kind.name(),
                url: base_url,
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| ProviderError::Config {
                provider: kind.name(),
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        let model = cfg.model.clone().unwrap_or_else(|| {
            match kind {
                Kind::OpenAi => "gpt-4o-mini",
                Kind::Anthropic => "claude-3-5-haiku-latest",
                Kind::Ollama | Kind::Local => "qwen2.5-coder:7b",
            }
            .to_owned()
        });
        Ok(Self {
            kind,
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            model,
            key,
            key_env,
            headers: cfg
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            extra_body: cfg.extra_body.clone(),
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens,
            timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
            stall: Duration::from_secs(cfg.stall_timeout_secs.max(1)),
            first_token: Duration::from_secs(cfg.first_token_timeout_secs.max(1)),
            max_retries: cfg.max_retries,
            chosen_because,
            limit: Limiter::shared(&base_url, cfg.rpm, cfg.tpm),
        })
    }

    /// Why `kind = "auto"` chose this provider (`None` when the kind was configured).
    pub fn chosen_because(&self) -> Option<&str> {
        self.chosen_because.as_deref()
    }

    /// The wire format.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The model name sent.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn endpoint(&self) -> String {
        match self.kind {
            Kind::OpenAi => format!("{}/chat/completions", self.base_url),
            Kind::Anthropic => format!("{}/v1/messages", self.base_url),
            Kind::Ollama | Kind::Local => format!("{}/api/chat", self.base_url),
        }
    }

    /// The structured-output mode this endpoint is known to take.
    pub fn structured_mode(&self) -> StructuredMode {
        if self.kind == Kind::Anthropic {
            return StructuredMode::PromptOnly;
        }
        STRUCTURED
            .lock()
            .map(|m| m.get(&self.endpoint()).copied())
            .ok()
            .flatten()
            .unwrap_or(StructuredMode::JsonSchema)
    }

    fn remember_mode(&self, mode: StructuredMode) {
        if let Ok(mut m) = STRUCTURED.lock() {
            let before = m.insert(self.endpoint(), mode);
            if mode != StructuredMode::JsonSchema && before != Some(mode) {
                tracing::warn!(
                    endpoint = %self.endpoint(),
                    "the endpoint rejected stronger structured output; using {mode:?} from now on"
                );
            }
        }
    }

    fn request_body(&self, req: &ChatRequest, mode: StructuredMode) -> Value {
        let schema = req.json_schema.as_ref().map(|s| (s, mode));
        let sampling = Sampling {
            temperature: req.temperature.or(self.temperature),
            max_tokens: self.max_tokens,
        };
        let mut body = match self.kind {
            Kind::OpenAi => openai::body(&self.model, req, schema, sampling),
            Kind::Anthropic => anthropic::body(&self.model, req, sampling),
            Kind::Ollama | Kind::Local => ollama::body(&self.model, req, schema, sampling),
        };
        if let Value::Object(map) = &mut body {
            for (k, v) in &self.extra_body {
                map.insert(k.clone(), v.clone());
            }
        }
        body
    }

    fn error(&self, make: impl FnOnce(&'static str, String) -> ProviderError) -> ProviderError {
        make(self.kind.name(), self.endpoint())
    }

    /// Sends one request, streaming the reply's text to `on_delta` as it arrives, with
    /// retries, the structured-output fallback and cancellation (which drops the connection).
    pub async fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancellationToken,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, ProviderError> {
        let started = Instant::now();
        // Time spent waiting for the rate limit's turn does not count against the call's timeout.
        let mut queued = Duration::ZERO;
        let mut mode = self.structured_mode();
        let mut retries = 0;
        loop {
            let body = self.request_body(req, mode);
            tracing::debug!(endpoint = %self.endpoint(), body = %body, "model request");
            let reserved = match &self.limit {
                Some(limit) => {
                    let tokens = estimate_tokens(&body.to_string());
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return Err(ProviderError::Cancelled),
                        waited = limit.admit(tokens) => queued += waited,
                    }
                    tokens
                }
                None => 0,
            };
            let mut delivered = false;
            let attempt = self.attempt(&body, &mut delivered, on_delta);
            let remaining = self
                .timeout
                .saturating_sub(started.elapsed().saturating_sub(queued));
            let result = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(ProviderError::Cancelled),
                r = tokio::time::timeout(remaining, attempt) => r,
            };
            if let Some(limit) = &self.limit {
                let used = match &result {
                    Ok(Ok(resp)) => resp
                        .usage
                        .input_tokens
                        .saturating_add(resp.usage.output_tokens),
                    // Refused before the model read it: the tokens go back.
                    Ok(Err(_)) if !delivered => 0,
                    _ => reserved,
                };
                limit.settle(reserved, used);
            }
            let failure = match result {
                Ok(Ok(resp)) => {
                    if req.json_schema.is_some() && self.kind != Kind::Anthropic {
                        self.remember_mode(mode);
                    }
                    return Ok(resp);
                }
                Ok(Err(f)) => f,
                Err(_) => {
                    return Err(self.error(|provider, url| ProviderError::Timeout {
                        provider,
                        url,
                        secs: self.timeout.as_secs(),
                    }));
                }
            };
            if failure.structured_rejected
                && req.json_schema.is_some()
                && !delivered
                && let Some(weaker) = mode.weaker()
            {
                tracing::info!("structured output {mode:?} rejected; trying {weaker:?}");
                mode = weaker;
                continue;
            }
            if let (Some(limit), Some(wait), ProviderError::Http { status: 429, .. }) =
                (&self.limit, failure.retry_after, &failure.error)
            {
                // The server says when it takes requests again: none of this endpoint's go sooner.
                limit.pause(wait.min(Duration::from_secs(60)));
            }
            let time_left = self
                .timeout
                .saturating_sub(started.elapsed().saturating_sub(queued));
            if !failure.retry || delivered || retries >= self.max_retries {
                return Err(match failure.error {
                    ProviderError::Http { status: 429, .. } => {
                        self.error(|provider, url| ProviderError::RateLimited {
                            provider,
                            url,
                            retries,
                        })
                    }
                    e => e,
                });
            }
            let backoff = Duration::from_millis(250 * 2u64.pow(retries.min(6)));
            let jittered = backoff.mul_f64(0.5 + fastrand::f64());
            let wait = failure
                .retry_after
                .unwrap_or(jittered)
                .min(Duration::from_secs(60));
            if wait >= time_left {
                return Err(failure.error);
            }
            retries += 1;
            tracing::info!(
                retry = retries,
                wait_ms = wait.as_millis() as u64,
                "retrying: {}",
                failure.error
            );
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(ProviderError::Cancelled),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One HTTP exchange, streamed.
    async fn attempt(
        &self,
        body: &Value,
        delivered: &mut bool,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, Failure> {
        let mut builder = self.http.post(self.endpoint()).json(body);
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        if let Some(key) = &self.key {
            builder = match self.kind {
                Kind::Anthropic => builder.header("x-api-key", key.expose_secret()),
                _ => builder.bearer_auth(key.expose_secret()),
            };
        }
        if self.kind == Kind::Anthropic {
            builder = builder.header("anthropic-version", "2023-06-01");
        }
        // Until the first token, the server may be reading a long prompt: that wait has a
        // bound of its own; then the stream may pause for at most the stall timeout.
        let no_first_token = || {
            Failure::retryable(self.error(|provider, url| ProviderError::NoFirstToken {
                provider,
                url,
                secs: self.first_token.as_secs(),
            }))
        };
        let send = tokio::time::timeout(self.first_token, builder.send());
        let resp = match send.await {
            Err(_) => return Err(no_first_token()),
            Ok(Err(e)) => {
                if let Some(to) = refused_redirect(&e) {
                    return Err(Failure::fatal(self.error(|provider, url| {
                        ProviderError::Redirected { provider, url, to }
                    })));
                }
                return Err(Failure::retryable(self.error(|provider, url| {
                    ProviderError::Connect {
                        provider,
                        url,
                        reason: root_cause(&e),
                    }
                })));
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(self.status_failure(resp, status).await);
        }

        let mut acc = stream::Accumulator::default();
        let mut lines = LineBuffer::default();
        let mut bytes = resp.bytes_stream();
        let sse = self.kind != Kind::Ollama;
        let mut sse_event = stream::SseEvent::default();
        // Until an event is understood, the raw body is kept: a server that ignored `stream`
        // sends one plain JSON reply, and garbage is quoted in the error.
        let mut raw = Vec::new();
        loop {
            let wait = if *delivered {
                self.stall
            } else {
                self.first_token
            };
            let chunk = match tokio::time::timeout(wait, bytes.next()).await {
                Err(_) if !*delivered => return Err(no_first_token()),
                Err(_) => {
                    return Err(Failure::retryable(self.error(|provider, url| {
                        ProviderError::Stalled {
                            provider,
                            url,
                            secs: self.stall.as_secs(),
                        }
                    })));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    let reason = root_cause(&e);
                    return Err(Failure::retryable(self.error(|provider, url| {
                        ProviderError::Interrupted {
                            provider,
                            url,
                            reason,
                        }
                    })));
                }
                Ok(Some(Ok(c))) => c,
            };
            if !acc.saw_event && raw.len() < (8 << 20) {
                raw.extend_from_slice(&chunk);
            }
            lines.push(&chunk);
            loop {
                let line = match lines.next_line() {
                    Ok(Some(line)) => line,
                    Ok(None) => break,
                    Err(e) => return Err(self.too_large(e.to_string())),
                };
                let line = String::from_utf8_lossy(&line).into_owned();
                let payload = if sse {
                    let ev = sse_event.feed(&line);
                    // `data:` lines with no blank line between: one event that never ends.
                    if sse_event.data.len() > MAX_REPLY {
                        return Err(
                            self.too_large(format!("an event longer than {} MiB", MAX_REPLY >> 20))
                        );
                    }
                    match ev {
                        Some(ev) => ev,
                        None => continue,
                    }
                } else {
                    if line.trim().is_empty() {
                        continue;
                    }
                    stream::SseEvent {
                        event: None,
                        data: line,
                    }
                };
                if sse && !acc.saw_event && !payload.data.trim_start().starts_with(['{', '[']) {
                    // Not an event of ours (some servers send other SSE first); the raw body
                    // decides at the end.
                    if payload.data.trim() != "[DONE]" {
                        continue;
                    }
                }
                self.on_payload(&payload, &mut acc, delivered, on_delta)?;
            }
            if acc.done {
                break;
            }
        }
        let tail = lines.rest();
        if !tail.is_empty() && !acc.done && acc.saw_event {
            // A last line the server did not terminate.
            let line = String::from_utf8_lossy(&tail).into_owned();
            let ev = if sse {
                sse_event.feed(&line);
                sse_event.feed("")
            } else {
                Some(stream::SseEvent {
                    event: None,
                    data: line,
                })
            };
            if let Some(ev) = ev {
                self.on_payload(&ev, &mut acc, delivered, on_delta)?;
            }
        }
        if !acc.saw_event {
            // A plain (non-streamed) reply, or garbage: judged whole.
            let whole = stream::SseEvent {
                event: None,
                data: String::from_utf8_lossy(&raw).trim().to_owned(),
            };
            if whole.data.is_empty() {
                return Err(Failure::fatal(self.error(|provider, url| {
                    ProviderError::BadResponse {
                        provider,
                        url,
                        detail: "the reply was empty".to_owned(),
                    }
                })));
            }
            self.on_payload(&whole, &mut acc, delivered, on_delta)?;
        }
        if !acc.done {
            return Err(Failure::retryable(self.error(|provider, url| {
                ProviderError::Interrupted {
                    provider,
                    url,
                    reason: "the stream ended before the reply was complete".to_owned(),
                }
            })));
        }
        let plausible = |n: &u64| *n <= MAX_CALL_TOKENS;
        let usage = Usage {
            input_tokens: acc
                .input_tokens
                .filter(plausible)
                .unwrap_or_else(|| estimate_tokens(&body.to_string())),
            output_tokens: acc
                .output_tokens
                .filter(plausible)
                .unwrap_or_else(|| estimate_tokens(&acc.text)),
            reused_input_tokens: acc.cached_tokens.filter(plausible).unwrap_or(0),
        };
        Ok(ChatResponse {
            content: acc.text,
            usage,
            truncated: acc.truncated,
        })
    }

    /// Reads one event into the accumulator and passes new text on.
    fn on_payload(
        &self,
        payload: &stream::SseEvent,
        acc: &mut stream::Accumulator,
        delivered: &mut bool,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), Failure> {
        let before = acc.text.len();
        let parsed = match self.kind {
            Kind::OpenAi => openai::on_event(payload, acc),
            Kind::Anthropic => anthropic::on_event(payload, acc),
            Kind::Ollama | Kind::Local => ollama::on_event(payload, acc),
        };
        if let Err(detail) = parsed {
            return Err(Failure::fatal(self.error(|provider, url| {
                ProviderError::BadResponse {
                    provider,
                    url,
                    detail,
                }
            })));
        }
        if acc.text.len() > MAX_REPLY {
            return Err(self.too_large(format!("a reply longer than {} MiB", MAX_REPLY >> 20)));
        }
        if acc.text.len() > before {
            *delivered = true;
            on_delta(&acc.text[before..]);
        }
        Ok(())
    }

    /// A reply (or a line of it) beyond what is read: the call ends, and is not tried again
    /// (the same server would send the same).
    fn too_large(&self, what: String) -> Failure {
        Failure::fatal(self.error(|provider, url| ProviderError::TooLarge {
            provider,
            url,
            what,
        }))
    }

    async fn status_failure(&self, resp: reqwest::Response, status: u16) -> Failure {
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // Only its start is quoted; an endless error body is not read to its end.
        let text = read_capped(resp, MAX_ERROR_BODY).await;
        let detail = error_detail(&text);
        let error = if matches!(status, 401 | 403) {
            self.error(|provider, url| ProviderError::Auth {
                provider,
                url,
                status,
                env: self.key_env.clone(),
            })
        } else {
            self.error(|provider, url| ProviderError::Http {
                provider,
                url,
                status,
                detail,
            })
        };
        let retry = status == 429 || status >= 500;
        Failure {
            error,
            retry,
            retry_after,
            structured_rejected: matches!(status, 400 | 422) && about_structured_output(&text),
        }
    }

    /// Lists the models the endpoint serves (for `doctor`).
    pub async fn list_models(&self) -> Result<Vec<String>, ProviderError> {
        let url = match self.kind {
            Kind::OpenAi => format!("{}/models", self.base_url),
            Kind::Anthropic => format!("{}/v1/models", self.base_url),
            Kind::Ollama | Kind::Local => format!("{}/api/tags", self.base_url),
        };
        let mut builder = self.http.get(&url).timeout(Duration::from_secs(10));
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        if let Some(key) = &self.key {
            builder = match self.kind {
                Kind::Anthropic => builder
                    .header("x-api-key", key.expose_secret())
                    .header("anthropic-version", "2023-06-01"),
                _ => builder.bearer_auth(key.expose_secret()),
            };
        }
        let name = self.kind.name();
        let resp = builder
            .send()
            .await
            .map_err(|e| match refused_redirect(&e) {
                Some(to) => ProviderError::Redirected {
                    provider: name,
                    url: url.clone(),
                    to,
                },
                None => ProviderError::Connect {
                    provider: name,
                    url: url.clone(),
                    reason: root_cause(&e),
                },
            })?;
        let status = resp.status().as_u16();
        let cap = if (200..300).contains(&status) {
            MAX_REPLY
        } else {
            MAX_ERROR_BODY
        };
        let text = read_capped(resp, cap).await;
        if !(200..300).contains(&status) {
            return Err(ProviderError::Http {
                provider: name,
                url,
                status,
                detail: error_detail(&text),
            });
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| ProviderError::BadResponse {
            provider: name,
            url: url.clone(),
            detail: format!("the model list is not JSON ({e})"),
        })?;
        let list = v
            .get("data")
            .or_else(|| v.get("models"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(list
            .iter()
            .filter_map(|m| {
                m.get("id")
                    .or_else(|| m.get("name"))
                    .or_else(|| m.get("model"))
            })
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect())
    }
}

/// Whether a 400/422 body is about structured output (so that a weaker mode may work), and
/// not about something else a weaker mode would fail on as well (a prompt longer than the
/// context, an unknown model). A body that says nothing is taken as about it.
fn about_structured_output(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    const FORMAT: &[&str] = &[
        "response_format",
        "json_schema",
        "json_object",
        "format",
        "schema",
        "grammar",
        "structured",
    ];
    const OTHER: &[&str] = &[
        "context", "token", "too long", "exceeds", "model", "messages", "key",
    ];
    FORMAT.iter().any(|w| b.contains(w)) || !OTHER.iter().any(|w| b.contains(w))
}

/// How a reply is sampled, as each wire format says it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sampling {
    /// Sampling temperature (unset: the server's).
    pub temperature: Option<f64>,
    /// Most tokens in the reply (unset: the kind's default).
    pub max_tokens: Option<u32>,
}

/// The longest `Retry-After` taken as it is; a server asking for more gets this (and the call
/// gives up when it exceeds the time left).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` as seconds or an HTTP date, bounded by [`MAX_RETRY_AFTER`]; `None` for a
/// value that is neither (negative, not a number).
fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        return Some(
            Duration::try_from_secs_f64(secs)
                .unwrap_or(MAX_RETRY_AFTER)
                .min(MAX_RETRY_AFTER),
        );
    }
    httpdate::parse_http_date(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
        .map(|d| d.min(MAX_RETRY_AFTER))
}

/// The most tokens one call is taken to use: no model reads or writes that many in one call,
/// so a provider reporting more (`u64::MAX`) is taken as not saying, and the count is
/// estimated (an absurd count would hold the rate limit and every total that adds it up).
const MAX_CALL_TOKENS: u64 = 100_000_000;

/// The most of an error body read (its start is quoted in the error).
const MAX_ERROR_BODY: usize = 64 << 10;

/// At most `cap` bytes of a body, as text (what arrived before a network error included).
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> String {
    let mut body = Vec::new();
    while body.len() < cap {
        match resp.chunk().await {
            Ok(Some(c)) => {
                let room = cap.saturating_sub(body.len());
                body.extend_from_slice(c.get(..room).unwrap_or(&c));
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// A redirect to another origin, refused so that the key and headers stay with the host the
/// user named (reqwest drops `Authorization` across hosts, but not `x-api-key` or
/// `provider.headers`).
#[derive(Debug, thiserror::Error)]
#[error("redirect to another origin ({0}) refused")]
struct CrossOriginRedirect(String);

/// How many redirects within the origin are followed (reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// Redirects within the endpoint's origin (scheme, host, port) are followed; one anywhere else
/// is an error.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .last()
            .is_some_and(|from| from.origin() == attempt.url().origin());
        if !same {
            let to = attempt.url().origin().ascii_serialization();
            attempt.error(CrossOriginRedirect(to))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// The origin a refused cross-origin redirect led to, when that is why `e` happened.
fn refused_redirect(e: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<CrossOriginRedirect>() {
            return Some(r.0.clone());
        }
        source = s.source();
    }
    None
}

/// True when a URL's host is this machine (no key is needed there).
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("soon"), None);
        // Hostile values are bounded, never a panic.
        for huge in ["1e30", "18446744073709551616", "inf", "1e308"] {
            assert_eq!(parse_retry_after(huge), Some(MAX_RETRY_AFTER), "{huge}");
        }
        for bad in ["-1", "NaN", "-inf", ""] {
            assert_eq!(parse_retry_after(bad), None, "{bad}");
        }
        assert!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT").is_some());
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(d <= Duration::from_secs(30) && d >= Duration::from_secs(28));
    }

    #[test]
    fn structured_modes_weaken_in_order() {
        assert_eq!(
            StructuredMode::JsonSchema.weaker(),
            Some(StructuredMode::JsonObject)
        );
        assert_eq!(
            StructuredMode::JsonObject.weaker(),
            Some(StructuredMode::PromptOnly)
        );
        assert_eq!(StructuredMode::PromptOnly.weaker(), None);
    }

    #[test]
    fn a_key_never_goes_over_plain_http_to_another_machine() {
        // SAFETY of the test: the variable is unique to it.
        unsafe { std::env::set_var("REFINE_TEST_PLAIN_HTTP_KEY", "sk-test-plain") };
        let build = |url: &str, key: bool, kind: Kind| {
            let cfg = ProviderConfig {
                api_key_env: key.then(|| "REFINE_TEST_PLAIN_HTTP_KEY".into()),
                base_url: Some(url.into()),
                ..ProviderConfig::default()
            };
            HttpProvider::from_config(&cfg, kind, None)
        };
        for url in [
            "http://example.com/v1",
            "http://10.0.0.5:8080/v1",
            "http://[2001:db8::1]/v1",
            "http://127.0.0.1.example.com/v1",
        ] {
            for kind in [Kind::OpenAi, Kind::Anthropic, Kind::Ollama] {
                let e = build(url, true, kind).unwrap_err();
                assert!(
                    matches!(e, ProviderError::InsecureUrl { .. }),
                    "{url} {kind:?}: {e}"
                );
                let msg = e.to_string();
                assert!(
                    msg.contains("https://") && msg.contains("loopback"),
                    "{msg}"
                );
                assert!(!msg.contains("sk-test"), "{msg}");
            }
        }
        for url in [
            "http://127.0.0.1:9/v1",
            "http://127.1.2.3:9/v1",
            "http://[::1]:9/v1",
            "http://localhost:9/v1",
            "https://example.com/v1",
        ] {
            assert!(build(url, true, Kind::OpenAi).is_ok(), "{url}");
        }
        // No key, nothing to leak: a server on the LAN over http is fine.
        assert!(build("http://10.0.0.5:11434", false, Kind::Ollama).is_ok());
    }

    #[test]
    fn errors_never_show_the_key() {
        // SAFETY of the test: the variable is unique to it.
        unsafe { std::env::set_var("REFINE_TEST_SECRET_KEY", "sk-test-abcdef0123456789") };
        let cfg = ProviderConfig {
            api_key_env: Some("REFINE_TEST_SECRET_KEY".into()),
            base_url: Some("http://127.0.0.1:9/v1".into()),
            ..ProviderConfig::default()
        };
        let p = HttpProvider::from_config(&cfg, Kind::OpenAi, None).unwrap();
        assert!(!format!("{p:?}").contains("sk-test"));
    }
}

//! Model providers. Each wire format has its own module (`openai`, `anthropic`, `ollama`)
//! that builds request bodies and reads stream events; this module owns what they share:
//! streaming over HTTP with a stall timeout, retries with backoff, the structured-output
//! fallback, cancellation, and errors that read as one sentence (which provider, what
//! happened, what to do). No error ever contains a key.

mod anthropic;
#[cfg(feature = "local")]
pub mod local;
mod ollama;
mod openai;
mod stream;

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::ProviderConfig;
use stream::LineBuffer;

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The request.
    User,
    /// The model.
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
}

/// A structured-output request: the schema the reply must follow.
#[derive(Debug, Clone)]
pub struct JsonSchema {
    /// Schema name (`critique`).
    pub name: &'static str,
    /// The JSON schema.
    pub schema: Value,
}

/// One call to a model.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The conversation (a fresh one per call: critic and reviser share nothing).
    pub messages: Vec<Message>,
    /// Ask for structured output following this schema.
    pub json_schema: Option<JsonSchema>,
}

/// Tokens used by one call or a whole review.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Self) {
        self.input_tokens += rhs.input_tokens;
        self.output_tokens += rhs.output_tokens;
    }
}

/// What a call returned.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    /// The reply text.
    pub content: String,
    /// Tokens, from the provider's usage fields or estimated from the text.
    pub usage: Usage,
}

/// Rough token count for text whose usage the provider did not report (about 4 chars a token).
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

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

/// Why a model call failed. Each reads as a sentence with what to do; none contains a key.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Configuration names a provider kind refine-ls does not know.
    #[error(
        "unknown provider kind `{0}`: set provider.kind to \"openai\", \"anthropic\" or \"ollama\""
    )]
    UnknownKind(String),
    /// Configuration is unusable (a bad URL, say).
    #[error("{provider}: {message}")]
    Config {
        /// Provider kind.
        provider: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// No key for a remote endpoint.
    #[error(
        "{provider} at {url} needs an API key: set the environment variable {env} (or provider.api_key_env)"
    )]
    MissingKey {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
        /// Variable that should hold the key.
        env: String,
    },
    /// Could not connect, or the connection broke before the reply began.
    #[error(
        "{provider} at {url} could not be reached ({reason}); check that the server is running and provider.base_url is right"
    )]
    Connect {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
        /// What the network said.
        reason: String,
    },
    /// The connection broke in the middle of a reply.
    #[error(
        "{provider} at {url} cut the connection in the middle of its reply ({reason}); try again"
    )]
    Interrupted {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
        /// What the network said.
        reason: String,
    },
    /// The call took longer than the timeout.
    #[error(
        "{provider} at {url} did not finish its reply within {secs} s; raise provider.timeout_secs or try again"
    )]
    Timeout {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
        /// The timeout.
        secs: u64,
    },
    /// The stream went silent.
    #[error(
        "{provider} at {url} stopped sending for {secs} s, so the call was aborted; raise provider.stall_timeout_secs if the model is slow"
    )]
    Stalled {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
        /// The stall timeout.
        secs: u64,
    },
    /// Rate limited and out of retries.
    #[error(
        "{provider} at {url} is rate-limiting requests (HTTP 429) and still was after {retries} retries; wait a little and try again"
    )]
    RateLimited {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
        /// Retries made.
        retries: u32,
    },
    /// The endpoint refused the key.
    #[error("{provider} at {url} rejected the API key (HTTP {status}); check the key in {env}")]
    Auth {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// Variable that holds the key.
        env: String,
    },
    /// Any other HTTP error status.
    #[error("{provider} at {url} answered HTTP {status}: {detail}")]
    Http {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the error body.
        detail: String,
    },
    /// A reply that is not the wire format.
    #[error("{provider} at {url} sent a reply refine-ls cannot read: {detail}")]
    BadResponse {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// The review was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// `local` without `provider.model_path` and no default model downloaded yet.
    #[error(
        "no local model yet: run `refine-ls model pull` (downloads {source_name}), or set provider.model_path (CLI: --model-path) to a GGUF file"
    )]
    NoLocalModel {
        /// The default model's description.
        source_name: String,
    },
}

/// `kind = "auto"` (the default): the first that applies of a configured endpoint
/// (`provider.base_url`), `OPENAI_API_KEY` or `OPENAI_BASE_URL`, `ANTHROPIC_API_KEY`, an Ollama
/// answering on `OLLAMA_HOST` or localhost:11434, else the embedded model. Returns the kind
/// and why it was chosen.
pub fn choose_kind(cfg: &ProviderConfig) -> (Kind, String) {
    let set = |v: &str| std::env::var(v).is_ok_and(|x| !x.trim().is_empty());
    if cfg.base_url.is_some() {
        return (Kind::OpenAi, "provider.base_url is set".into());
    }
    if set("OPENAI_API_KEY") {
        return (Kind::OpenAi, "OPENAI_API_KEY is set".into());
    }
    if set("OPENAI_BASE_URL") {
        return (Kind::OpenAi, "OPENAI_BASE_URL is set".into());
    }
    if set("ANTHROPIC_API_KEY") {
        return (Kind::Anthropic, "ANTHROPIC_API_KEY is set".into());
    }
    if set("OLLAMA_HOST") {
        return (Kind::Ollama, "OLLAMA_HOST is set".into());
    }
    let ollama = std::net::SocketAddr::from(([127, 0, 0, 1], 11434));
    if std::net::TcpStream::connect_timeout(&ollama, Duration::from_millis(150)).is_ok() {
        return (Kind::Ollama, "an Ollama answers on localhost:11434".into());
    }
    (
        Kind::Local,
        "no API key, endpoint or Ollama found: the embedded model".into(),
    )
}

/// `provider.model_path` for `kind = "local"`, checked.
fn local_path(cfg: &ProviderConfig) -> Result<String, ProviderError> {
    let Some(path) = cfg.model_path.as_deref().filter(|p| !p.trim().is_empty()) else {
        return match crate::models::default_model_path().filter(|p| p.is_file()) {
            Some(p) => Ok(p.display().to_string()),
            None => Err(ProviderError::NoLocalModel {
                source_name: crate::models::default_source().name,
            }),
        };
    };
    if !std::path::Path::new(path).is_file() {
        return Err(ProviderError::Config {
            provider: "local",
            message: format!("provider.model_path `{path}` is not a file"),
        });
    }
    Ok(path.to_owned())
}

/// The wire format of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// OpenAI chat completions (also vLLM, llama.cpp, LM Studio, Ollama's `/v1`).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Ollama's native `/api/chat`.
    Ollama,
    /// A GGUF model run in this process (`provider.model_path`).
    Local,
}

impl Kind {
    /// Parses `provider.kind`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "openai" => Some(Self::OpenAi),
            "anthropic" => Some(Self::Anthropic),
            "ollama" => Some(Self::Ollama),
            "local" => Some(Self::Local),
            _ => None,
        }
    }

    /// The name used in config and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Ollama => "ollama",
            Self::Local => "local",
        }
    }

    fn default_key_env(self) -> Option<&'static str> {
        match self {
            Self::OpenAi => Some("OPENAI_API_KEY"),
            Self::Anthropic => Some("ANTHROPIC_API_KEY"),
            Self::Ollama | Self::Local => None,
        }
    }
}

/// One failed attempt, and whether trying again may help.
struct Failure {
    error: ProviderError,
    retry: bool,
    retry_after: Option<Duration>,
    /// The server rejected the structured-output request.
    structured_rejected: bool,
}

impl Failure {
    fn fatal(error: ProviderError) -> Self {
        Self {
            error,
            retry: false,
            retry_after: None,
            structured_rejected: false,
        }
    }
}

/// A configured model endpoint.
pub struct Provider {
    kind: Kind,
    http: reqwest::Client,
    base_url: String,
    model: String,
    key: Option<SecretString>,
    key_env: String,
    headers: Vec<(String, String)>,
    extra_body: serde_json::Map<String, Value>,
    temperature: Option<f64>,
    timeout: Duration,
    stall: Duration,
    max_retries: u32,
    /// `local`: the most tokens per answer.
    max_tokens: usize,
    /// `local`: inference threads (0: all cores but one).
    threads: usize,
    /// Why `auto` chose this kind.
    chosen_because: Option<String>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Builds the provider the configuration names, reading its key from the environment.
    pub fn from_config(cfg: &ProviderConfig) -> Result<Self, ProviderError> {
        let (kind, chosen_because) = if cfg.kind == "auto" {
            let (k, why) = choose_kind(cfg);
            (k, Some(why))
        } else {
            (
                Kind::parse(&cfg.kind)
                    .ok_or_else(|| ProviderError::UnknownKind(cfg.kind.clone()))?,
                None,
            )
        };
        let base_url = match kind {
            Kind::OpenAi => openai::base_url(cfg),
            Kind::Anthropic => anthropic::base_url(cfg),
            Kind::Ollama => ollama::base_url(cfg),
            Kind::Local => local_path(cfg)?,
        };
        let parsed = if kind == Kind::Local {
            url::Url::parse("file:///").ok()
        } else {
            Some(
                url::Url::parse(&base_url).map_err(|e| ProviderError::Config {
                    provider: kind.name(),
                    message: format!("provider.base_url `{base_url}` is not a URL ({e})"),
                })?,
            )
        };
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
        if key.is_none()
            && kind.default_key_env().is_some()
            && !parsed.as_ref().is_some_and(is_loopback)
        {
            return Err(ProviderError::MissingKey {
                provider: kind.name(),
                url: base_url,
                env: key_env,
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ProviderError::Config {
                provider: kind.name(),
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        let model = cfg.model.clone().unwrap_or_else(|| {
            match kind {
                Kind::OpenAi => "gpt-4o-mini",
                Kind::Anthropic => "claude-3-5-haiku-latest",
                Kind::Ollama => "qwen2.5-coder:7b",
                Kind::Local => "",
            }
            .to_owned()
        });
        let model = if kind == Kind::Local {
            std::path::Path::new(&base_url)
                .file_name()
                .map_or(base_url.clone(), |n| n.to_string_lossy().into_owned())
        } else {
            model
        };
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
            timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
            stall: Duration::from_secs(cfg.stall_timeout_secs.max(1)),
            max_retries: cfg.max_retries,
            max_tokens: cfg.max_tokens.max(16) as usize,
            threads: cfg.threads,
            chosen_because,
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

    /// `kind model at url`, for logs and `doctor`.
    pub fn describe(&self) -> String {
        format!("{} {} at {}", self.kind.name(), self.model, self.base_url)
    }

    fn endpoint(&self) -> String {
        match self.kind {
            Kind::OpenAi => format!("{}/chat/completions", self.base_url),
            Kind::Anthropic => format!("{}/v1/messages", self.base_url),
            Kind::Ollama => format!("{}/api/chat", self.base_url),
            Kind::Local => self.base_url.clone(),
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
        let mut body = match self.kind {
            Kind::OpenAi => openai::body(&self.model, req, schema, self.temperature),
            Kind::Anthropic => anthropic::body(&self.model, req, self.temperature),
            Kind::Ollama | Kind::Local => ollama::body(&self.model, req, schema, self.temperature),
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
        if self.kind == Kind::Local {
            return self.local_chat(req, cancel, on_delta).await;
        }
        let started = Instant::now();
        let mut mode = self.structured_mode();
        let mut retries = 0;
        loop {
            let body = self.request_body(req, mode);
            tracing::debug!(endpoint = %self.endpoint(), body = %body, "model request");
            let mut delivered = false;
            let attempt = self.attempt(&body, &mut delivered, on_delta);
            let remaining = self.timeout.saturating_sub(started.elapsed());
            let result = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(ProviderError::Cancelled),
                r = tokio::time::timeout(remaining, attempt) => r,
            };
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
            if failure.structured_rejected && req.json_schema.is_some() && !delivered {
                if let Some(weaker) = mode.weaker() {
                    tracing::info!("structured output {mode:?} rejected; trying {weaker:?}");
                    mode = weaker;
                    continue;
                }
            }
            let time_left = self.timeout.saturating_sub(started.elapsed());
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
        let send = tokio::time::timeout(self.stall, builder.send());
        let resp = match send.await {
            Err(_) => {
                return Err(Failure {
                    error: self.error(|provider, url| ProviderError::Stalled {
                        provider,
                        url,
                        secs: self.stall.as_secs(),
                    }),
                    retry: true,
                    retry_after: None,
                    structured_rejected: false,
                });
            }
            Ok(Err(e)) => {
                return Err(Failure {
                    error: self.error(|provider, url| ProviderError::Connect {
                        provider,
                        url,
                        reason: root_cause(&e),
                    }),
                    retry: true,
                    retry_after: None,
                    structured_rejected: false,
                });
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
            let chunk = match tokio::time::timeout(self.stall, bytes.next()).await {
                Err(_) => {
                    return Err(Failure {
                        error: self.error(|provider, url| ProviderError::Stalled {
                            provider,
                            url,
                            secs: self.stall.as_secs(),
                        }),
                        retry: true,
                        retry_after: None,
                        structured_rejected: false,
                    });
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    let reason = root_cause(&e);
                    return Err(Failure {
                        error: self.error(|provider, url| ProviderError::Interrupted {
                            provider,
                            url,
                            reason,
                        }),
                        retry: true,
                        retry_after: None,
                        structured_rejected: false,
                    });
                }
                Ok(Some(Ok(c))) => c,
            };
            if !acc.saw_event && raw.len() < (8 << 20) {
                raw.extend_from_slice(&chunk);
            }
            lines.push(&chunk);
            while let Some(line) = lines.next_line() {
                let line = String::from_utf8_lossy(&line).into_owned();
                let payload = if sse {
                    match sse_event.feed(&line) {
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
            return Err(Failure {
                error: self.error(|provider, url| ProviderError::Interrupted {
                    provider,
                    url,
                    reason: "the stream ended before the reply was complete".to_owned(),
                }),
                retry: true,
                retry_after: None,
                structured_rejected: false,
            });
        }
        let usage = Usage {
            input_tokens: acc
                .input_tokens
                .unwrap_or_else(|| estimate_tokens(&body.to_string())),
            output_tokens: acc
                .output_tokens
                .unwrap_or_else(|| estimate_tokens(&acc.text)),
        };
        Ok(ChatResponse {
            content: acc.text,
            usage,
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
        if acc.text.len() > before {
            *delivered = true;
            on_delta(&acc.text[before..]);
        }
        Ok(())
    }

    async fn status_failure(&self, resp: reqwest::Response, status: u16) -> Failure {
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = resp.text().await.unwrap_or_default();
        let detail = error_detail(&text);
        let (error, retry) = match status {
            401 | 403 => (
                self.error(|provider, url| ProviderError::Auth {
                    provider,
                    url,
                    status,
                    env: self.key_env.clone(),
                }),
                false,
            ),
            429 => (
                self.error(|provider, url| ProviderError::Http {
                    provider,
                    url,
                    status,
                    detail: detail.clone(),
                }),
                true,
            ),
            s if s >= 500 => (
                self.error(|provider, url| ProviderError::Http {
                    provider,
                    url,
                    status,
                    detail: detail.clone(),
                }),
                true,
            ),
            _ => (
                self.error(|provider, url| ProviderError::Http {
                    provider,
                    url,
                    status,
                    detail: detail.clone(),
                }),
                false,
            ),
        };
        Failure {
            error,
            retry,
            retry_after,
            structured_rejected: status == 400 || status == 422,
        }
    }

    /// The local model answers in a blocking task; its tokens come back through a channel.
    #[cfg(feature = "local")]
    async fn local_chat(
        &self,
        req: &ChatRequest,
        cancel: &CancellationToken,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, ProviderError> {
        let path = std::path::PathBuf::from(&self.base_url);
        let threads = if self.threads == 0 {
            local::default_threads()
        } else {
            self.threads
        };
        let fail = |e: local::LocalError| match e {
            local::LocalError::Cancelled => ProviderError::Cancelled,
            e => ProviderError::Config {
                provider: "local",
                message: e.to_string(),
            },
        };
        let load_path = path.clone();
        let model = tokio::task::spawn_blocking(move || local::load(&load_path, threads))
            .await
            .map_err(|e| fail(local::LocalError::Inference(e.to_string())))?
            .map_err(fail)?;
        let messages: Vec<(String, String)> = req
            .messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                (role.to_owned(), m.content.clone())
            })
            .collect();
        let schema = req.json_schema.as_ref().map(|s| s.schema.clone());
        let prefill = schema.as_ref().map(local::json_prefill);
        let (max_tokens, temperature) = (self.max_tokens, self.temperature.unwrap_or(0.0));
        let child = cancel.child_token();
        let stop = child.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let job = tokio::task::spawn_blocking(move || {
            let mut m = model
                .lock()
                .map_err(|_| local::LocalError::Inference("the model is poisoned".into()))?;
            let borrowed: Vec<(&str, &str)> = messages
                .iter()
                .map(|(r, c)| (r.as_str(), c.as_str()))
                .collect();
            let prompt = m.prompt(&borrowed);
            m.generate(
                &prompt,
                prefill.as_deref().unwrap_or(""),
                schema.as_ref(),
                max_tokens,
                temperature,
                &child,
                &mut |d: &str| {
                    let _ = tx.send(d.to_owned());
                },
            )
        });
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                d = rx.recv() => match d {
                    Some(d) => on_delta(&d),
                    None => break,
                },
                _ = &mut deadline => {
                    stop.cancel();
                    return Err(ProviderError::Timeout {
                        provider: "local",
                        url: self.base_url.clone(),
                        secs: self.timeout.as_secs(),
                    });
                }
            }
        }
        let generated = job
            .await
            .map_err(|e| fail(local::LocalError::Inference(e.to_string())))?
            .map_err(fail)?;
        tracing::info!(
            prompt_tokens = generated.prompt_tokens,
            completion_tokens = generated.completion_tokens,
            prompt_tok_per_s = generated.prompt_tokens as f64 / generated.prompt_secs.max(1e-9),
            gen_tok_per_s = generated.completion_tokens as f64 / generated.generate_secs.max(1e-9),
            "local model answered"
        );
        Ok(ChatResponse {
            content: generated.text,
            usage: Usage {
                input_tokens: generated.prompt_tokens as u64,
                output_tokens: generated.completion_tokens as u64,
            },
        })
    }

    #[cfg(not(feature = "local"))]
    async fn local_chat(
        &self,
        _req: &ChatRequest,
        _cancel: &CancellationToken,
        _on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, ProviderError> {
        Err(ProviderError::Config {
            provider: "local",
            message: "this refine-ls was built without the `local` feature".into(),
        })
    }

    /// Lists the models the endpoint serves (for `doctor`).
    pub async fn list_models(&self) -> Result<Vec<String>, ProviderError> {
        if self.kind == Kind::Local {
            return Ok(vec![self.model.clone()]);
        }
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
        let resp = builder.send().await.map_err(|e| ProviderError::Connect {
            provider: name,
            url: url.clone(),
            reason: root_cause(&e),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
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

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    httpdate::parse_http_date(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
}

/// The innermost cause of a network error, which is the informative one.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut reason = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        reason = s.to_string();
        src = s.source();
    }
    reason
}

/// The message of an error body (`{"error":{"message":…}}` and kin), or its start.
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
    if t.trim().is_empty() {
        "(empty body)".to_owned()
    } else if t.len() < text.len() {
        format!("{t}…")
    } else {
        t
    }
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
    fn errors_never_show_the_key() {
        // SAFETY of the test: the variable is unique to it.
        unsafe { std::env::set_var("REFINE_TEST_SECRET_KEY", "sk-test-abcdef0123456789") };
        let cfg = ProviderConfig {
            api_key_env: Some("REFINE_TEST_SECRET_KEY".into()),
            base_url: Some("http://127.0.0.1:9/v1".into()),
            ..ProviderConfig::default()
        };
        let p = Provider::from_config(&cfg).unwrap();
        assert!(!format!("{p:?}").contains("sk-test"));
    }
}

//! Model providers: one module per wire format, behind one [`Provider`] type that the engine
//! calls. Errors are typed here and read as one sentence: which provider, what happened, what to
//! do.

mod openai;

use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::ProviderConfig;

pub use openai::OpenAiProvider;

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

/// Tokens used by one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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

/// Why a model call failed. Each reads as a sentence with what to do; none contains a key.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Configuration names a provider kind refine-ls does not know.
    #[error("unknown provider kind `{0}`: set provider.kind to \"openai\"")]
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
    /// Could not connect or the connection broke.
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
    /// The call took longer than the timeout.
    #[error(
        "{provider} at {url} did not answer within {secs} s; raise provider.timeout_secs or try again"
    )]
    Timeout {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
        /// The timeout.
        secs: u64,
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
}

/// A configured model endpoint.
#[derive(Debug)]
pub enum Provider {
    /// Any OpenAI-compatible chat-completions endpoint.
    OpenAi(OpenAiProvider),
}

impl Provider {
    /// Builds the provider the configuration names.
    pub fn from_config(cfg: &ProviderConfig) -> Result<Self, ProviderError> {
        match cfg.kind.as_str() {
            "openai" => Ok(Self::OpenAi(OpenAiProvider::new(cfg)?)),
            other => Err(ProviderError::UnknownKind(other.to_owned())),
        }
    }

    /// A short description for logs and `doctor`: kind, model and endpoint.
    pub fn describe(&self) -> String {
        match self {
            Self::OpenAi(p) => p.describe(),
        }
    }

    /// Sends one request and waits for the whole reply, or for `cancel`.
    pub async fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancellationToken,
    ) -> Result<ChatResponse, ProviderError> {
        let call = async {
            match self {
                Self::OpenAi(p) => p.chat(req).await,
            }
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(ProviderError::Cancelled),
            r = call => r,
        }
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

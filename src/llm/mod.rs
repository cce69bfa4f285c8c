//! Model providers. A [`Provider`] is one of two backends: an endpoint over HTTP
//! ([`http`], in one of the wire formats `openai`, `anthropic`, `ollama`) or the embedded model
//! ([`local`]). Which kind serves a configuration is decided in [`kind`]; every failure is a
//! [`ProviderError`] that reads as one sentence and never contains a key.

mod anthropic;
mod error;
pub mod http;
mod kind;
pub mod local;
mod ollama;
mod openai;
mod stream;

use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::ProviderConfig;
pub use error::ProviderError;
use error::snippet;
pub use http::{HttpProvider, StructuredMode, is_loopback};
pub use kind::{Kind, choose_kind};
pub use local::LocalProvider;

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
    /// Prompt tokens sent.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens the model did not process again because they were in its cache already
    /// (the same prompt prefix as an earlier call); `input_tokens - reused_input_tokens` were
    /// processed.
    #[serde(default)]
    pub reused_input_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Self) {
        self.input_tokens = self.input_tokens.saturating_add(rhs.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(rhs.output_tokens);
        self.reused_input_tokens = self
            .reused_input_tokens
            .saturating_add(rhs.reused_input_tokens);
    }
}

/// What a call returned.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    /// The reply text.
    pub content: String,
    /// Tokens, from the provider's usage fields or estimated from the text.
    pub usage: Usage,
    /// The reply was cut off at the token limit.
    pub truncated: bool,
}

/// Rough token count for text whose usage the provider did not report (about 4 chars a token).
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// A configured model: over HTTP or in this process.
#[derive(Debug)]
pub enum Provider {
    /// An endpoint in one of the wire formats.
    Http(HttpProvider),
    /// The embedded model.
    Local(LocalProvider),
}

impl Provider {
    /// Builds the provider the configuration names (`auto`: see [`choose_kind`]).
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
        Ok(match kind {
            Kind::Local => Self::Local(LocalProvider::from_config(cfg, chosen_because)?),
            kind => Self::Http(HttpProvider::from_config(cfg, kind, chosen_because)?),
        })
    }

    /// Why `kind = "auto"` chose this provider (`None` when the kind was configured).
    pub fn chosen_because(&self) -> Option<&str> {
        match self {
            Self::Http(p) => p.chosen_because(),
            Self::Local(p) => p.chosen_because(),
        }
    }

    /// The wire format.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Http(p) => p.kind(),
            Self::Local(_) => Kind::Local,
        }
    }

    /// The model name sent (the file name for the embedded model).
    pub fn model(&self) -> &str {
        match self {
            Self::Http(p) => p.model(),
            Self::Local(p) => p.model(),
        }
    }

    /// Where the model is: the base URL, or the model file.
    pub fn location(&self) -> String {
        match self {
            Self::Http(p) => p.base_url().to_owned(),
            Self::Local(p) => p.path().display().to_string(),
        }
    }

    /// `kind model at location`, for logs and `doctor`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} at {}",
            self.kind().name(),
            self.model(),
            self.location()
        )
    }

    /// The structured-output mode this provider is known to take (the embedded model always
    /// follows the schema).
    pub fn structured_mode(&self) -> StructuredMode {
        match self {
            Self::Http(p) => p.structured_mode(),
            Self::Local(_) => StructuredMode::JsonSchema,
        }
    }

    /// Sends one request, streaming the reply's text to `on_delta` as it arrives.
    pub async fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancellationToken,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, ProviderError> {
        match self {
            Self::Http(p) => p.chat(req, cancel, on_delta).await,
            Self::Local(p) => p.chat(req, cancel, on_delta).await,
        }
    }

    /// Prepares the model for prompts that start with `messages` (the embedded model processes
    /// them into its cache; an endpoint needs nothing).
    pub async fn warm(&self, messages: &[Message]) -> Result<(), ProviderError> {
        match self {
            Self::Http(_) => Ok(()),
            Self::Local(p) => p.warm(messages).await,
        }
    }

    /// Lists the models the endpoint serves (for `doctor`).
    pub async fn list_models(&self) -> Result<Vec<String>, ProviderError> {
        match self {
            Self::Http(p) => p.list_models().await,
            Self::Local(p) => Ok(vec![p.model().to_owned()]),
        }
    }
}

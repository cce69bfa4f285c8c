//! Model providers. A [`Provider`] is one of two backends: an endpoint over HTTP
//! ([`http`], in one of the wire formats `openai`, `anthropic`, `ollama`) or the embedded model
//! ([`local`]). Which kind serves a configuration is decided in [`kind`]; every failure is a
//! [`ProviderError`] that reads as one sentence and never contains a key.

mod anthropic;
mod error;
pub mod http;
mod kind;
pub mod limit;
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
    /// Sampling temperature for this call, over the provider's `temperature` (self-consistency
    /// samples ask for one above 0).
    pub temperature: Option<f64>,
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

    /// Whether the model is a small one (the embedded model, or a name that says 3B parameters
    /// or fewer, such as `qwen2.5-coder:1.5b` or `SmolLM2-135M`): such models are given the
    /// compact prompts.
    pub fn is_small_model(&self) -> bool {
        match self {
            Self::Local(_) => true,
            Self::Http(p) => parameters_in_billions(p.model()).is_some_and(|b| b <= 3.0),
        }
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

/// The parameter count a model's name gives, in billions: `1.5b` → 1.5, `135m` → 0.135; the
/// largest such number in the name, `None` when the name gives none (`mixtral-8x7b` does not).
fn parameters_in_billions(model: &str) -> Option<f64> {
    let lower = model.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut best: Option<f64> = None;
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'.') {
            j += 1;
        }
        let unit = bytes.get(j).copied();
        let ends = bytes.get(j + 1).is_none_or(|c| !c.is_ascii_alphanumeric());
        let scale = match unit {
            Some(b'b') if ends => Some(1.0),
            Some(b'm') if ends => Some(0.001),
            _ => None,
        };
        if let (Some(scale), Ok(n)) = (scale, lower[i..j].parse::<f64>()) {
            let b = n * scale;
            best = Some(best.map_or(b, |x: f64| x.max(b)));
        }
        i = j.max(i + 1);
    }
    best
}

#[cfg(test)]
mod size_tests {
    use super::parameters_in_billions as p;

    #[test]
    fn model_names_give_their_size() {
        assert_eq!(p("qwen2.5-coder:1.5b"), Some(1.5));
        assert_eq!(p("Qwen2.5-Coder-0.5B-Instruct"), Some(0.5));
        assert_eq!(p("SmolLM2-135M-Instruct"), Some(0.135));
        assert_eq!(p("llama3.1:70b-instruct"), Some(70.0));
        assert_eq!(p("mixtral-8x7b"), None);
        assert_eq!(p("gpt-4o-mini"), None);
        assert_eq!(p("claude-sonnet-4"), None);
        assert_eq!(p("qwen2.5-coder-32b-instruct-q4_k_m.gguf"), Some(32.0));
    }
}

//! What one call to a model is: the conversation, the schema its reply must follow, how it is
//! sampled, and what comes back. Plain types every provider and wire format share (a leaf:
//! it imports nothing else of `llm`).

use serde::Serialize;
use serde_json::Value;

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
    /// The next weaker mode, `None` after the weakest.
    pub(crate) fn weaker(self) -> Option<Self> {
        match self {
            Self::JsonSchema => Some(Self::JsonObject),
            Self::JsonObject => Some(Self::PromptOnly),
            Self::PromptOnly => None,
        }
    }
}

/// How a reply is sampled, as each wire format says it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sampling {
    /// Sampling temperature (unset: the server's).
    pub temperature: Option<f64>,
    /// Most tokens in the reply (unset: the kind's default).
    pub max_tokens: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

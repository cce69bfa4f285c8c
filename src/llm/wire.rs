//! The three wire formats an HTTP provider speaks, as one type: everything that differs between
//! them (where requests go, how the key is sent, the request body, how a reply's events read) is
//! answered here, each by one `match` that hands over to the format's own module (`openai`,
//! `anthropic`, `ollama`). The HTTP exchange itself (`http`) asks [`Wire`] and knows no format.

use serde_json::Value;

use super::chat::{ChatRequest, JsonSchema, Sampling, StructuredMode};
use super::kind::Kind;
use super::stream::{Accumulator, SseEvent};
use super::{anthropic, ollama, openai};
use crate::config::ProviderConfig;

/// The wire format of an endpoint: a [`Kind`] other than the embedded model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI chat completions (also vLLM, llama.cpp, LM Studio, Ollama's `/v1`).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Ollama's native `/api/chat`.
    Ollama,
}

impl Wire {
    /// The wire format of `kind`; `None` for [`Kind::Local`], which is not served over HTTP.
    pub fn of(kind: Kind) -> Option<Self> {
        match kind {
            Kind::OpenAi => Some(Self::OpenAi),
            Kind::Anthropic => Some(Self::Anthropic),
            Kind::Ollama => Some(Self::Ollama),
            Kind::Local => None,
        }
    }

    /// The provider kind this format is.
    pub fn kind(self) -> Kind {
        match self {
            Self::OpenAi => Kind::OpenAi,
            Self::Anthropic => Kind::Anthropic,
            Self::Ollama => Kind::Ollama,
        }
    }

    /// The name used in config and messages.
    pub fn name(self) -> &'static str {
        self.kind().name()
    }

    /// The base URL the configuration (or the environment) names, else the format's default.
    pub fn base_url(self, cfg: &ProviderConfig) -> String {
        match self {
            Self::OpenAi => openai::base_url(cfg),
            Self::Anthropic => anthropic::base_url(cfg),
            Self::Ollama => ollama::base_url(cfg),
        }
    }

    /// The model asked for when `provider.model` is unset.
    pub fn default_model(self) -> &'static str {
        match self {
            Self::OpenAi => "gpt-4o-mini",
            Self::Anthropic => "claude-3-5-haiku-latest",
            Self::Ollama => "qwen2.5-coder:7b",
        }
    }

    /// Where chat requests go, after the base URL.
    pub fn chat_path(self) -> &'static str {
        match self {
            Self::OpenAi => "/chat/completions",
            Self::Anthropic => "/v1/messages",
            Self::Ollama => "/api/chat",
        }
    }

    /// Where the list of served models is, after the base URL.
    pub fn models_path(self) -> &'static str {
        match self {
            Self::OpenAi => "/models",
            Self::Anthropic => "/v1/models",
            Self::Ollama => "/api/tags",
        }
    }

    /// The header that carries the key; `None`: `Authorization: Bearer`.
    pub fn key_header(self) -> Option<&'static str> {
        match self {
            Self::Anthropic => Some("x-api-key"),
            Self::OpenAi | Self::Ollama => None,
        }
    }

    /// The API version header the format requires, if any.
    pub fn version_header(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Anthropic => Some(("anthropic-version", "2023-06-01")),
            Self::OpenAi | Self::Ollama => None,
        }
    }

    /// Whether the reply streams as server-sent events (else one JSON object a line).
    pub fn server_sent_events(self) -> bool {
        match self {
            Self::OpenAi | Self::Anthropic => true,
            Self::Ollama => false,
        }
    }

    /// Whether the request can carry the schema (or JSON mode); Anthropic's is asked for by
    /// instruction only, always [`StructuredMode::PromptOnly`].
    pub fn structured_output(self) -> bool {
        match self {
            Self::OpenAi | Self::Ollama => true,
            Self::Anthropic => false,
        }
    }

    /// The request body (before `provider.extra_body`).
    pub fn body(
        self,
        model: &str,
        req: &ChatRequest,
        schema: Option<(&JsonSchema, StructuredMode)>,
        sampling: Sampling,
    ) -> Value {
        match self {
            Self::OpenAi => openai::body(model, req, schema, sampling),
            Self::Anthropic => anthropic::body(model, req, sampling),
            Self::Ollama => ollama::body(model, req, schema, sampling),
        }
    }

    /// Reads one event of the reply (or a whole reply from a server that ignored `stream`)
    /// into `acc`; `Err` says what was wrong with it.
    pub fn on_event(self, ev: &SseEvent, acc: &mut Accumulator) -> Result<(), String> {
        match self {
            Self::OpenAi => openai::on_event(ev, acc),
            Self::Anthropic => anthropic::on_event(ev, acc),
            Self::Ollama => ollama::on_event(ev, acc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_but_the_embedded_model_has_a_wire_format() {
        for kind in [Kind::OpenAi, Kind::Anthropic, Kind::Ollama] {
            assert_eq!(Wire::of(kind).map(Wire::kind), Some(kind));
        }
        assert_eq!(Wire::of(Kind::Local), None);
    }
}

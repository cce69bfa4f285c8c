//! Which provider kind serves a configuration: `provider.kind`, or for `auto` the first that
//! applies of a configured endpoint, a key in the environment, a local Ollama, the embedded model.

use std::time::Duration;

use crate::config::ProviderConfig;

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

    pub(crate) fn default_key_env(self) -> Option<&'static str> {
        match self {
            Self::OpenAi => Some("OPENAI_API_KEY"),
            Self::Anthropic => Some("ANTHROPIC_API_KEY"),
            Self::Ollama | Self::Local => None,
        }
    }
}

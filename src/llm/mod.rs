//! Model providers. A [`Provider`] is one of two backends: an endpoint over HTTP
//! ([`http`], in one of the wire formats `openai`, `anthropic`, `ollama`, dispatched by `wire`)
//! or the embedded model ([`local`]). Which kind serves a configuration is decided in [`kind`];
//! what a call is and returns is in `chat`; every failure is a [`ProviderError`] that reads as
//! one sentence and never contains a key.
//!
//! Imports point one way: this file uses its children; `http` uses `wire`, `chat`, `error`,
//! `limit`, `stream` and `kind`; `local` uses `chat` and `error`; `wire` uses the three
//! formats, which use `chat`, `stream` and `error`; `chat`, `error`, `kind`, `limit` and
//! `stream` use nothing of `llm`.

mod anthropic;
mod chat;
mod error;
pub mod http;
mod kind;
pub mod limit;
pub mod local;
mod ollama;
mod openai;
mod stream;
mod wire;

use tokio_util::sync::CancellationToken;

use crate::config::ProviderConfig;
pub use chat::{
    ChatRequest, ChatResponse, JsonSchema, Message, Role, Sampling, StructuredMode, Usage,
    estimate_tokens,
};
pub use error::ProviderError;
pub use http::{HttpProvider, is_loopback};
pub use kind::{Kind, choose_kind};
pub use local::LocalProvider;

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

//! The embedded provider (`provider.kind = "local"`): a GGUF chat model run in this process.
//! This module is the bridge between the provider interface and the model (`model`), which
//! only exists with the `local` feature.

#[cfg(feature = "local")]
mod model;

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::chat::{ChatRequest, ChatResponse, Message};
#[cfg(feature = "local")]
use super::chat::{Role, Usage};
use super::error::ProviderError;
use crate::config::ProviderConfig;
#[cfg(feature = "local")]
pub use model::{Decoding, Generated, LocalError, LocalModel, default_threads, load};

/// A GGUF model file and how to run it.
#[derive(Debug)]
pub struct LocalProvider {
    path: PathBuf,
    /// The file name, shown as the model's name.
    model: String,
    temperature: Option<f64>,
    timeout: Duration,
    /// The most tokens per answer.
    max_tokens: usize,
    /// Inference threads (0: all cores but one).
    threads: usize,
    /// Layers offloaded to a GPU.
    gpu_layers: u32,
    /// How answers are decoded.
    drafting: crate::config::Drafting,
    chosen_because: Option<String>,
}

impl LocalProvider {
    /// The model `provider.model_path` names, else the downloaded default model.
    pub fn from_config(
        cfg: &ProviderConfig,
        chosen_because: Option<String>,
    ) -> Result<Self, ProviderError> {
        let path = PathBuf::from(model_path(cfg)?);
        let model = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(Self {
            path,
            model,
            temperature: cfg.temperature,
            timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
            max_tokens: cfg.max_tokens.unwrap_or(512).max(16) as usize,
            threads: cfg.threads,
            gpu_layers: cfg.gpu_layers,
            drafting: cfg.drafting,
            chosen_because,
        })
    }

    /// The model file's name.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The model file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Why `kind = "auto"` chose the embedded model.
    pub fn chosen_because(&self) -> Option<&str> {
        self.chosen_because.as_deref()
    }

    /// Loads the model (once per process) off the async threads.
    #[cfg(feature = "local")]
    async fn loaded(&self) -> Result<std::sync::Arc<LocalModel>, ProviderError> {
        let (path, threads, gpu) = (self.path.clone(), self.threads(), self.gpu_layers);
        tokio::task::spawn_blocking(move || model::load(&path, threads, gpu))
            .await
            .map_err(|e| local_error(LocalError::Inference(e.to_string())))?
            .map_err(local_error)
    }

    #[cfg(feature = "local")]
    fn threads(&self) -> usize {
        if self.threads == 0 {
            model::default_threads()
        } else {
            self.threads
        }
    }

    /// Loads the model and processes `messages` (a prompt's constant head) into its KV cache in
    /// the background, so that the first review processes only what differs.
    #[cfg(feature = "local")]
    pub async fn warm(&self, messages: &[Message]) -> Result<(), ProviderError> {
        let model = self.loaded().await?;
        let prompt = model.prompt(&roles(messages));
        model.warm(&prompt);
        Ok(())
    }

    /// Answers one request: the model's worker answers in order and streams its tokens back
    /// through a channel; a cancellation stops it between prompt chunks and between tokens.
    #[cfg(feature = "local")]
    pub async fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancellationToken,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, ProviderError> {
        let model = self.loaded().await?;
        let prompt = model.prompt(&roles(&req.messages));
        let schema = req.json_schema.as_ref().map(|s| s.schema.clone());
        let (max_tokens, temperature) = (
            self.max_tokens,
            req.temperature.or(self.temperature).unwrap_or(0.0),
        );
        let decoding = match self.drafting {
            crate::config::Drafting::PromptLookup => Decoding::PromptLookup,
            crate::config::Drafting::Off => Decoding::Plain,
        };
        let child = cancel.child_token();
        let stop = child.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let job = tokio::task::spawn_blocking(move || {
            model.generate_with(
                &prompt,
                schema.as_ref(),
                max_tokens,
                temperature,
                decoding,
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
                        url: self.path.display().to_string(),
                        secs: self.timeout.as_secs(),
                    });
                }
            }
        }
        let generated = job
            .await
            .map_err(|e| local_error(LocalError::Inference(e.to_string())))?
            .map_err(local_error)?;
        tracing::info!(
            prompt_tokens = generated.prompt_tokens,
            prompt_processed = generated.prompt_processed,
            completion_tokens = generated.completion_tokens,
            prompt_tok_per_s = generated.prompt_processed as f64 / generated.prompt_secs.max(1e-9),
            gen_tok_per_s = generated.completion_tokens as f64 / generated.generate_secs.max(1e-9),
            truncated = generated.truncated,
            passes = generated.passes,
            drafted = generated.drafted,
            draft_accepted = generated.draft_accepted,
            "local model answered"
        );
        Ok(ChatResponse {
            content: generated.text,
            usage: Usage {
                input_tokens: generated.prompt_tokens as u64,
                output_tokens: generated.completion_tokens as u64,
                reused_input_tokens: (generated.prompt_tokens - generated.prompt_processed) as u64,
            },
            truncated: generated.truncated,
        })
    }

    /// Without the `local` feature there is nothing to warm.
    #[cfg(not(feature = "local"))]
    pub async fn warm(&self, _messages: &[Message]) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Without the `local` feature there is no embedded model.
    #[cfg(not(feature = "local"))]
    pub async fn chat(
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
}

/// `provider.model_path` for `kind = "local"`, checked.
fn model_path(cfg: &ProviderConfig) -> Result<String, ProviderError> {
    let Some(path) = cfg.model_path.as_deref().filter(|p| !p.trim().is_empty()) else {
        // A model of the catalogue (`provider.model`, else the default), once downloaded.
        let model = cfg.model.clone().filter(|m| !m.trim().is_empty());
        let source =
            crate::models::wanted(model.as_deref()).map_err(|message| ProviderError::Config {
                provider: "local",
                message,
            })?;
        return match crate::models::path_of(&source).filter(|p| p.is_file()) {
            Some(p) => Ok(p.display().to_string()),
            None => Err(ProviderError::NoLocalModel {
                source_name: source.name,
                model,
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

/// Messages as `(role, content)` pairs for the chat template.
#[cfg(feature = "local")]
fn roles(messages: &[Message]) -> Vec<(&'static str, &str)> {
    messages
        .iter()
        .map(|m| {
            let role = match m.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            (role, m.content.as_str())
        })
        .collect()
}

/// A model failure as a provider error.
#[cfg(feature = "local")]
fn local_error(e: LocalError) -> ProviderError {
    match e {
        LocalError::Cancelled => ProviderError::Cancelled,
        e => ProviderError::Config {
            provider: "local",
            message: e.to_string(),
        },
    }
}

//! Command-line flag types shared by the commands that review (`review`, `doctor`, `eval`), so
//! that none of them depends on another's module.

use clap::{Args, ValueEnum};
use serde_json::{Value, json};

/// Output format of `review`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `path:line:col: severity: message [principle]` lines and a unified diff.
    Text,
    /// One JSON object.
    Json,
}

/// The provider flags of `review`, `doctor` and `eval`: they override every config file.
#[derive(Debug, Clone, Default, Args)]
pub struct ProviderFlags {
    /// Provider kind (`auto`, `openai`, `anthropic`, `ollama`, `local`).
    #[arg(long, value_name = "KIND")]
    pub provider: Option<String>,
    /// Provider base URL.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Model name.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// `--provider local`: the GGUF model file.
    #[arg(long, value_name = "PATH")]
    pub model_path: Option<String>,
    /// `provider.rpm`: most requests a minute to the endpoint, shared by every call.
    #[arg(long, value_name = "N")]
    pub rpm: Option<u32>,
    /// `provider.tpm`: most tokens a minute to the endpoint, shared by every call.
    #[arg(long, value_name = "N")]
    pub tpm: Option<u32>,
}

impl ProviderFlags {
    /// The command-line configuration layer these flags make (`{"provider": {…}}`).
    pub fn layer(&self) -> Value {
        let mut cli = json!({"provider": {}});
        for (key, value) in [
            ("kind", &self.provider),
            ("base_url", &self.base_url),
            ("model", &self.model),
            ("model_path", &self.model_path),
        ] {
            if let Some(v) = value {
                cli["provider"][key] = Value::String(v.clone());
            }
        }
        for (key, value) in [("rpm", self.rpm), ("tpm", self.tpm)] {
            if let Some(v) = value {
                cli["provider"][key] = Value::from(v);
            }
        }
        cli
    }
}

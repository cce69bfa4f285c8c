//! Why a model call failed: typed errors that read as one sentence (which provider, what
//! happened, what to do). None ever contains a key.

use serde_json::Value;

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
    /// An API key would go over plain HTTP to another machine, where anyone on the way reads it.
    #[error(
        "{provider} at {url}: the API key would be sent over plain http to a host that is not this machine, where anyone on the way can read it; use an https:// provider.base_url, or a loopback address (127.0.0.1, ::1, localhost) for a local server"
    )]
    InsecureUrl {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
    },
    /// The endpoint redirected to another origin; the redirect was not followed.
    #[error(
        "{provider} at {url}: the endpoint redirected to another host ({to}): not followed, so the key is not sent there; if that host is the right one, set provider.base_url to it"
    )]
    Redirected {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
        /// The origin (scheme, host, port) it redirected to.
        to: String,
    },
    /// The reply (or one line of it) outgrew what refine-ls reads, so it was cut off.
    #[error("{provider} at {url} sent {what}, more than refine-ls reads, so the reply was cut off")]
    TooLarge {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
        /// What was too large (`a line longer than 1 MiB`).
        what: String,
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
    /// No token came before the first-token timeout.
    #[error(
        "{provider} at {url} sent no token within {secs} s (a server reads the whole prompt before answering, and a long prompt on a slow machine takes long); raise provider.first_token_timeout_secs, or review fewer lines"
    )]
    NoFirstToken {
        /// Provider kind.
        provider: &'static str,
        /// Endpoint.
        url: String,
        /// The first-token timeout.
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
    /// `local` without `provider.model_path` and the model not downloaded yet.
    #[error(
        "no local model yet: run `refine-ls model pull{}` (downloads {source_name}), or set provider.model_path (CLI: --model-path) to a GGUF file",
        .model.as_deref().map(|m| format!(" {m}")).unwrap_or_default()
    )]
    NoLocalModel {
        /// The model's description.
        source_name: String,
        /// Its catalogue name (`None`: the default).
        model: Option<String>,
    },
}

impl ProviderError {
    /// Whether this call failed for reasons of its own (too slow, cut off, unreadable), so a
    /// different, shorter call to the same provider may still succeed. Configuration, key,
    /// connection and rate-limit errors would fail the next call too.
    pub(crate) fn is_call_specific(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::Stalled { .. }
                | Self::NoFirstToken { .. }
                | Self::Interrupted { .. }
                | Self::BadResponse { .. }
                | Self::TooLarge { .. }
        )
    }
}

/// The message of an error body (`{"error":{"message":…}}` and kin), or its start.
pub(crate) fn error_detail(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("error"))
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .and_then(|m| crate::text::excerpt(&m, 200))
        .unwrap_or_else(|| snippet(body))
}

/// The start of some outside text, for a message.
pub(crate) fn snippet(text: &str) -> String {
    crate::text::excerpt(text, 80).unwrap_or_else(|| "(empty body)".to_owned())
}

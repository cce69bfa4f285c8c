//! [`HttpProvider`]: an endpoint as the configuration names it (URL, key, model, headers,
//! limits), what it is asked in a request body, the structured-output mode it is known to take,
//! and the list of models it serves.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::net::{
    MAX_ERROR_BODY, is_loopback, read_capped, refused_redirect, same_origin_redirects,
};
use crate::config::ProviderConfig;
use crate::llm::chat::{ChatRequest, Sampling, StructuredMode};
use crate::llm::error::{ProviderError, error_detail};
use crate::llm::kind::Kind;
use crate::llm::limit::Limiter;
use crate::llm::stream::MAX_REPLY;
use crate::llm::wire::Wire;
use crate::net::root_cause;

/// What each endpoint accepted this session.
static STRUCTURED: LazyLock<Mutex<HashMap<String, StructuredMode>>> =
    LazyLock::new(Default::default);

/// A model behind an HTTP endpoint, in one of the three wire formats.
pub struct HttpProvider {
    pub(super) wire: Wire,
    pub(super) http: reqwest::Client,
    base_url: String,
    model: String,
    key: Option<SecretString>,
    pub(super) key_env: String,
    headers: Vec<(String, String)>,
    extra_body: serde_json::Map<String, Value>,
    temperature: Option<f64>,
    /// `provider.max_tokens`.
    max_tokens: Option<u32>,
    pub(super) timeout: Duration,
    pub(super) stall: Duration,
    /// The wait for the first token (the server reads the prompt meanwhile).
    pub(super) first_token: Duration,
    pub(super) max_retries: u32,
    /// Why `auto` chose this kind.
    chosen_because: Option<String>,
    /// `provider.rpm` / `provider.tpm`, shared with every provider of this endpoint.
    pub(super) limit: Option<Arc<Limiter>>,
}

impl std::fmt::Debug for HttpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProvider")
            .field("kind", &self.wire.kind())
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl HttpProvider {
    /// Builds the endpoint of kind `kind` (not `Local`, which is no endpoint: an error) that
    /// the configuration names, reading its key from the environment.
    pub fn from_config(
        cfg: &ProviderConfig,
        kind: Kind,
        chosen_because: Option<String>,
    ) -> Result<Self, ProviderError> {
        let wire = Wire::of(kind).ok_or_else(|| ProviderError::Config {
            provider: kind.name(),
            message: "the embedded model is not served over HTTP".to_owned(),
        })?;
        let base_url = wire.base_url(cfg);
        let (key_env, key) = read_key(cfg, wire, &base_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| ProviderError::Config {
                provider: wire.name(),
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        let model = cfg
            .model
            .clone()
            .unwrap_or_else(|| wire.default_model().to_owned());
        Ok(Self {
            wire,
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            model,
            key,
            key_env,
            headers: cfg
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            extra_body: cfg.extra_body.clone(),
            temperature: cfg.temperature,
            max_tokens: cfg.max_tokens,
            timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
            stall: Duration::from_secs(cfg.stall_timeout_secs.max(1)),
            first_token: Duration::from_secs(cfg.first_token_timeout_secs.max(1)),
            max_retries: cfg.max_retries,
            chosen_because,
            limit: Limiter::shared(&base_url, cfg.rpm, cfg.tpm),
        })
    }

    /// Why `kind = "auto"` chose this provider (`None` when the kind was configured).
    pub fn chosen_because(&self) -> Option<&str> {
        self.chosen_because.as_deref()
    }

    /// The wire format.
    pub fn kind(&self) -> Kind {
        self.wire.kind()
    }

    /// The model name sent.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Where chat requests go.
    pub(super) fn endpoint(&self) -> String {
        format!("{}{}", self.base_url, self.wire.chat_path())
    }

    /// An error of this provider at its endpoint.
    pub(super) fn error(
        &self,
        make: impl FnOnce(&'static str, String) -> ProviderError,
    ) -> ProviderError {
        make(self.wire.name(), self.endpoint())
    }

    /// `provider.headers`, then the key (if any) in the header the wire format takes.
    pub(super) fn with_key(&self, mut builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        if let Some(key) = &self.key {
            builder = match self.wire.key_header() {
                Some(name) => builder.header(name, key.expose_secret()),
                None => builder.bearer_auth(key.expose_secret()),
            };
        }
        builder
    }

    /// The structured-output mode this endpoint is known to take.
    pub fn structured_mode(&self) -> StructuredMode {
        if !self.wire.structured_output() {
            return StructuredMode::PromptOnly;
        }
        STRUCTURED
            .lock()
            .map(|m| m.get(&self.endpoint()).copied())
            .ok()
            .flatten()
            .unwrap_or(StructuredMode::JsonSchema)
    }

    /// Remembers for the session that the endpoint took `mode`.
    pub(super) fn remember_mode(&self, mode: StructuredMode) {
        if let Ok(mut m) = STRUCTURED.lock() {
            let before = m.insert(self.endpoint(), mode);
            if mode != StructuredMode::JsonSchema && before != Some(mode) {
                tracing::warn!(
                    endpoint = %self.endpoint(),
                    "the endpoint rejected stronger structured output; using {mode:?} from now on"
                );
            }
        }
    }

    /// The body of `req` in the wire format, structured output asked for as `mode`, with
    /// `provider.extra_body` over it.
    pub(super) fn request_body(&self, req: &ChatRequest, mode: StructuredMode) -> Value {
        let schema = req.json_schema.as_ref().map(|s| (s, mode));
        let sampling = Sampling {
            temperature: req.temperature.or(self.temperature),
            max_tokens: self.max_tokens,
        };
        let mut body = self.wire.body(&self.model, req, schema, sampling);
        if let Value::Object(map) = &mut body {
            for (k, v) in &self.extra_body {
                map.insert(k.clone(), v.clone());
            }
        }
        body
    }

    /// Lists the models the endpoint serves (for `doctor`).
    pub async fn list_models(&self) -> Result<Vec<String>, ProviderError> {
        let url = format!("{}{}", self.base_url, self.wire.models_path());
        let mut builder = self.with_key(self.http.get(&url).timeout(Duration::from_secs(10)));
        if self.key.is_some()
            && let Some((name, value)) = self.wire.version_header()
        {
            builder = builder.header(name, value);
        }
        let name = self.wire.name();
        let resp = builder
            .send()
            .await
            .map_err(|e| match refused_redirect(&e) {
                Some(to) => ProviderError::Redirected {
                    provider: name,
                    url: url.clone(),
                    to,
                },
                None => ProviderError::Connect {
                    provider: name,
                    url: url.clone(),
                    reason: root_cause(&e),
                },
            })?;
        let status = resp.status().as_u16();
        let cap = if (200..300).contains(&status) {
            MAX_REPLY
        } else {
            MAX_ERROR_BODY
        };
        let text = read_capped(resp, cap).await;
        if !(200..300).contains(&status) {
            return Err(ProviderError::Http {
                provider: name,
                url,
                status,
                detail: error_detail(&text),
            });
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| ProviderError::BadResponse {
            provider: name,
            url: url.clone(),
            detail: format!("the model list is not JSON ({e})"),
        })?;
        Ok(model_names(&v))
    }
}

/// The key's variable (`provider.api_key_env`, else the format's) and the key it holds, if
/// any; an error when an endpoint on another machine needs a key and has none, or would get it
/// over plain http.
fn read_key(
    cfg: &ProviderConfig,
    wire: Wire,
    base_url: &str,
) -> Result<(String, Option<SecretString>), ProviderError> {
    let kind = wire.kind();
    let parsed = url::Url::parse(base_url).map_err(|e| ProviderError::Config {
        provider: kind.name(),
        message: format!("provider.base_url `{base_url}` is not a URL ({e})"),
    })?;
    let key_env = cfg
        .api_key_env
        .clone()
        .or_else(|| kind.default_key_env().map(str::to_owned))
        .unwrap_or_default();
    let key = (!key_env.is_empty())
        .then(|| std::env::var(&key_env).ok())
        .flatten()
        .filter(|k| !k.trim().is_empty())
        .map(SecretString::from);
    if key.is_none() && kind.default_key_env().is_some() && !is_loopback(&parsed) {
        return Err(ProviderError::MissingKey {
            provider: kind.name(),
            url: base_url.to_owned(),
            env: key_env,
        });
    }
    if key.is_some() && parsed.scheme() == "http" && !is_loopback(&parsed) {
        return Err(ProviderError::InsecureUrl {
            provider: kind.name(),
            url: base_url.to_owned(),
        });
    }
    Ok((key_env, key))
}

/// The model names of a model list: OpenAI's and Anthropic's `data`, Ollama's `models`.
fn model_names(list: &Value) -> Vec<String> {
    let models = list
        .get("data")
        .or_else(|| list.get("models"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    models
        .iter()
        .filter_map(|m| {
            m.get("id")
                .or_else(|| m.get("name"))
                .or_else(|| m.get("model"))
        })
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_never_goes_over_plain_http_to_another_machine() {
        // SAFETY of the test: the variable is unique to it.
        unsafe { std::env::set_var("REFINE_TEST_PLAIN_HTTP_KEY", "sk-test-plain") };
        let build = |url: &str, key: bool, kind: Kind| {
            let cfg = ProviderConfig {
                api_key_env: key.then(|| "REFINE_TEST_PLAIN_HTTP_KEY".into()),
                base_url: Some(url.into()),
                ..ProviderConfig::default()
            };
            HttpProvider::from_config(&cfg, kind, None)
        };
        for url in [
            "http://example.com/v1",
            "http://10.0.0.5:8080/v1",
            "http://[2001:db8::1]/v1",
            "http://127.0.0.1.example.com/v1",
        ] {
            for kind in [Kind::OpenAi, Kind::Anthropic, Kind::Ollama] {
                let e = build(url, true, kind).unwrap_err();
                assert!(
                    matches!(e, ProviderError::InsecureUrl { .. }),
                    "{url} {kind:?}: {e}"
                );
                let msg = e.to_string();
                assert!(
                    msg.contains("https://") && msg.contains("loopback"),
                    "{msg}"
                );
                assert!(!msg.contains("sk-test"), "{msg}");
            }
        }
        for url in [
            "http://127.0.0.1:9/v1",
            "http://127.1.2.3:9/v1",
            "http://[::1]:9/v1",
            "http://localhost:9/v1",
            "https://example.com/v1",
        ] {
            assert!(build(url, true, Kind::OpenAi).is_ok(), "{url}");
        }
        // No key, nothing to leak: a server on the LAN over http is fine.
        assert!(build("http://10.0.0.5:11434", false, Kind::Ollama).is_ok());
    }

    #[test]
    fn errors_never_show_the_key() {
        // SAFETY of the test: the variable is unique to it.
        unsafe { std::env::set_var("REFINE_TEST_SECRET_KEY", "sk-test-abcdef0123456789") };
        let cfg = ProviderConfig {
            api_key_env: Some("REFINE_TEST_SECRET_KEY".into()),
            base_url: Some("http://127.0.0.1:9/v1".into()),
            ..ProviderConfig::default()
        };
        let p = HttpProvider::from_config(&cfg, Kind::OpenAi, None).unwrap();
        assert!(!format!("{p:?}").contains("sk-test"));
    }

    #[test]
    fn the_embedded_model_is_no_endpoint() {
        let e =
            HttpProvider::from_config(&ProviderConfig::default(), Kind::Local, None).unwrap_err();
        assert!(matches!(e, ProviderError::Config { .. }), "{e}");
    }
}

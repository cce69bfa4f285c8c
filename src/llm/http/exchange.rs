//! One HTTP exchange, streamed: the request sent, a refusal read into a [`Failure`] (and
//! whether another attempt may help), the reply's events read into text and usage as they
//! arrive. Until the first token, the server may be reading a long prompt: that wait has a
//! bound of its own; then the stream may pause for at most the stall timeout.

use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::Value;

use super::net::{
    MAX_ERROR_BODY, about_structured_output, parse_retry_after, read_capped, refused_redirect,
};
use super::provider::HttpProvider;
use crate::llm::chat::{ChatResponse, Usage, estimate_tokens};
use crate::llm::error::{ProviderError, error_detail};
use crate::llm::stream::{Accumulator, MAX_REPLY, ReplyReader, SseEvent};
use crate::net::root_cause;

/// The most tokens one call is taken to use: no model reads or writes that many in one call,
/// so a provider reporting more (`u64::MAX`) is taken as not saying, and the count is
/// estimated (an absurd count would hold the rate limit and every total that adds it up).
const MAX_CALL_TOKENS: u64 = 100_000_000;

/// One failed attempt, and whether trying again may help.
pub(super) struct Failure {
    pub(super) error: ProviderError,
    pub(super) retry: bool,
    pub(super) retry_after: Option<Duration>,
    /// The server rejected the structured-output request.
    pub(super) structured_rejected: bool,
}

impl Failure {
    /// A failure that trying again cannot mend.
    fn fatal(error: ProviderError) -> Self {
        Self {
            error,
            retry: false,
            retry_after: None,
            structured_rejected: false,
        }
    }

    /// A failure of the network or the server that another attempt may not meet.
    fn retryable(error: ProviderError) -> Self {
        Self {
            retry: true,
            ..Self::fatal(error)
        }
    }
}

impl HttpProvider {
    /// One HTTP exchange, streamed: `delivered` turns true once text was passed to `on_delta`.
    pub(super) async fn attempt(
        &self,
        body: &Value,
        delivered: &mut bool,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, Failure> {
        let resp = self.send(body).await?;
        let mut reader = ReplyReader::new(self.wire.server_sent_events());
        let mut bytes = resp.bytes_stream();
        while let Some(chunk) = self.next_chunk(&mut bytes, *delivered).await? {
            reader.push(&chunk);
            while let Some(ev) = reader.next_event().map_err(|what| self.too_large(what))? {
                self.on_payload(&ev, &mut reader.acc, delivered, on_delta)?;
            }
            if reader.acc.done {
                break;
            }
        }
        if let Some(ev) = reader.tail() {
            self.on_payload(&ev, &mut reader.acc, delivered, on_delta)?;
        }
        if !reader.acc.saw_event {
            // A plain (non-streamed) reply, or garbage: judged whole.
            let Some(whole) = reader.whole() else {
                return Err(Failure::fatal(self.error(|provider, url| {
                    ProviderError::BadResponse {
                        provider,
                        url,
                        detail: "the reply was empty".to_owned(),
                    }
                })));
            };
            self.on_payload(&whole, &mut reader.acc, delivered, on_delta)?;
        }
        if !reader.acc.done {
            return Err(Failure::retryable(self.error(|provider, url| {
                ProviderError::Interrupted {
                    provider,
                    url,
                    reason: "the stream ended before the reply was complete".to_owned(),
                }
            })));
        }
        Ok(response(reader.acc, body))
    }

    /// Sends the request and reads its status: a reply to stream, or why there is none.
    async fn send(&self, body: &Value) -> Result<reqwest::Response, Failure> {
        let mut builder = self.with_key(self.http.post(self.endpoint()).json(body));
        if let Some((name, value)) = self.wire.version_header() {
            builder = builder.header(name, value);
        }
        let resp = match tokio::time::timeout(self.first_token, builder.send()).await {
            Err(_) => return Err(self.no_first_token()),
            Ok(Err(e)) => {
                if let Some(to) = refused_redirect(&e) {
                    return Err(Failure::fatal(self.error(|provider, url| {
                        ProviderError::Redirected { provider, url, to }
                    })));
                }
                return Err(Failure::retryable(self.error(|provider, url| {
                    ProviderError::Connect {
                        provider,
                        url,
                        reason: root_cause(&e),
                    }
                })));
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(self.status_failure(resp, status).await);
        }
        Ok(resp)
    }

    /// The next chunk of the reply (`None` at its end), waited for at most the first-token
    /// timeout until text was delivered, then the stall timeout.
    async fn next_chunk<B>(
        &self,
        bytes: &mut (impl Stream<Item = reqwest::Result<B>> + Unpin),
        delivered: bool,
    ) -> Result<Option<B>, Failure> {
        let wait = if delivered {
            self.stall
        } else {
            self.first_token
        };
        match tokio::time::timeout(wait, bytes.next()).await {
            Err(_) if !delivered => Err(self.no_first_token()),
            Err(_) => Err(Failure::retryable(self.error(|provider, url| {
                ProviderError::Stalled {
                    provider,
                    url,
                    secs: self.stall.as_secs(),
                }
            }))),
            Ok(None) => Ok(None),
            Ok(Some(Err(e))) => {
                let reason = root_cause(&e);
                Err(Failure::retryable(self.error(|provider, url| {
                    ProviderError::Interrupted {
                        provider,
                        url,
                        reason,
                    }
                })))
            }
            Ok(Some(Ok(c))) => Ok(Some(c)),
        }
    }

    /// No token came within the first-token timeout.
    fn no_first_token(&self) -> Failure {
        Failure::retryable(self.error(|provider, url| ProviderError::NoFirstToken {
            provider,
            url,
            secs: self.first_token.as_secs(),
        }))
    }

    /// Reads one event into the accumulator and passes new text on.
    fn on_payload(
        &self,
        payload: &SseEvent,
        acc: &mut Accumulator,
        delivered: &mut bool,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), Failure> {
        let before = acc.text.len();
        if let Err(detail) = self.wire.on_event(payload, acc) {
            return Err(Failure::fatal(self.error(|provider, url| {
                ProviderError::BadResponse {
                    provider,
                    url,
                    detail,
                }
            })));
        }
        if acc.text.len() > MAX_REPLY {
            return Err(self.too_large(format!("a reply longer than {} MiB", MAX_REPLY >> 20)));
        }
        if acc.text.len() > before {
            *delivered = true;
            on_delta(&acc.text[before..]);
        }
        Ok(())
    }

    /// A reply (or a line of it) beyond what is read: the call ends, and is not tried again
    /// (the same server would send the same).
    fn too_large(&self, what: String) -> Failure {
        Failure::fatal(self.error(|provider, url| ProviderError::TooLarge {
            provider,
            url,
            what,
        }))
    }

    /// A reply with status `status` outside 2xx: the error it means, whether to try again (and
    /// when the server says), whether it refused the structured-output request.
    async fn status_failure(&self, resp: reqwest::Response, status: u16) -> Failure {
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // Only its start is quoted; an endless error body is not read to its end.
        let text = read_capped(resp, MAX_ERROR_BODY).await;
        let detail = error_detail(&text);
        let error = if matches!(status, 401 | 403) {
            self.error(|provider, url| ProviderError::Auth {
                provider,
                url,
                status,
                env: self.key_env.clone(),
            })
        } else {
            self.error(|provider, url| ProviderError::Http {
                provider,
                url,
                status,
                detail,
            })
        };
        let retry = status == 429 || status >= 500;
        Failure {
            error,
            retry,
            retry_after,
            structured_rejected: matches!(status, 400 | 422) && about_structured_output(&text),
        }
    }
}

/// The reply and its usage: the provider's counts where plausible, else estimated from the
/// request body and the text.
fn response(acc: Accumulator, body: &Value) -> ChatResponse {
    let plausible = |n: &u64| *n <= MAX_CALL_TOKENS;
    let usage = Usage {
        input_tokens: acc
            .input_tokens
            .filter(plausible)
            .unwrap_or_else(|| estimate_tokens(&body.to_string())),
        output_tokens: acc
            .output_tokens
            .filter(plausible)
            .unwrap_or_else(|| estimate_tokens(&acc.text)),
        reused_input_tokens: acc.cached_tokens.filter(plausible).unwrap_or(0),
    };
    ChatResponse {
        content: acc.text,
        usage,
        truncated: acc.truncated,
    }
}

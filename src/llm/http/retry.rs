//! One call to an endpoint: attempts in turn with the rate limit's turn before each (not
//! counted against the call's timeout), retries with backoff and jitter (`Retry-After`
//! honoured), the structured-output fallback, and cancellation (which drops the connection).

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::time::error::Elapsed;
use tokio_util::sync::CancellationToken;

use super::exchange::Failure;
use super::provider::HttpProvider;
use crate::llm::chat::{ChatRequest, ChatResponse, estimate_tokens};
use crate::llm::error::ProviderError;

impl HttpProvider {
    /// Sends one request, streaming the reply's text to `on_delta` as it arrives, with
    /// retries, the structured-output fallback and cancellation (which drops the connection).
    pub async fn chat(
        &self,
        req: &ChatRequest,
        cancel: &CancellationToken,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, ProviderError> {
        let started = Instant::now();
        // Time spent waiting for the rate limit's turn does not count against the call's timeout.
        let mut queued = Duration::ZERO;
        let mut mode = self.structured_mode();
        let mut retries = 0;
        loop {
            let body = self.request_body(req, mode);
            tracing::debug!(endpoint = %self.endpoint(), body = %body, "model request");
            let reserved = self.take_turn(&body, cancel, &mut queued).await?;
            let mut delivered = false;
            let attempt = self.attempt(&body, &mut delivered, on_delta);
            let remaining = self.time_left(started, queued);
            let result = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(ProviderError::Cancelled),
                r = tokio::time::timeout(remaining, attempt) => r,
            };
            self.settle(reserved, delivered, &result);
            let failure = match result {
                Ok(Ok(resp)) => {
                    if req.json_schema.is_some() && self.wire.structured_output() {
                        self.remember_mode(mode);
                    }
                    return Ok(resp);
                }
                Ok(Err(f)) => f,
                Err(_) => {
                    return Err(self.error(|provider, url| ProviderError::Timeout {
                        provider,
                        url,
                        secs: self.timeout.as_secs(),
                    }));
                }
            };
            if failure.structured_rejected
                && req.json_schema.is_some()
                && !delivered
                && let Some(weaker) = mode.weaker()
            {
                tracing::info!("structured output {mode:?} rejected; trying {weaker:?}");
                mode = weaker;
                continue;
            }
            let time_left = self.time_left(started, queued);
            let wait = self.retry_wait(failure, delivered, retries, time_left)?;
            retries += 1;
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(ProviderError::Cancelled),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// What is left of the call's timeout, the time `queued` for the rate limit not counted.
    fn time_left(&self, started: Instant, queued: Duration) -> Duration {
        self.timeout
            .saturating_sub(started.elapsed().saturating_sub(queued))
    }

    /// Waits for the rate limit's turn (adding the wait to `queued`); returns the tokens
    /// reserved for `body` (0 without a limit).
    async fn take_turn(
        &self,
        body: &Value,
        cancel: &CancellationToken,
        queued: &mut Duration,
    ) -> Result<u64, ProviderError> {
        let Some(limit) = &self.limit else {
            return Ok(0);
        };
        let tokens = estimate_tokens(&body.to_string());
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ProviderError::Cancelled),
            waited = limit.admit(tokens) => *queued += waited,
        }
        Ok(tokens)
    }

    /// Tells the rate limit what an attempt used of the `reserved` tokens.
    fn settle(
        &self,
        reserved: u64,
        delivered: bool,
        result: &Result<Result<ChatResponse, Failure>, Elapsed>,
    ) {
        let Some(limit) = &self.limit else {
            return;
        };
        let used = match result {
            Ok(Ok(resp)) => resp
                .usage
                .input_tokens
                .saturating_add(resp.usage.output_tokens),
            // Refused before the model read it: the tokens go back.
            Ok(Err(_)) if !delivered => 0,
            _ => reserved,
        };
        limit.settle(reserved, used);
    }

    /// How long to wait before attempt `retries + 2` after `failure`; the error to return
    /// instead when another attempt cannot help, is not wanted (text was delivered already, or
    /// the retries are spent) or would end after the call's `time_left`.
    fn retry_wait(
        &self,
        failure: Failure,
        delivered: bool,
        retries: u32,
        time_left: Duration,
    ) -> Result<Duration, ProviderError> {
        if let (Some(limit), Some(wait), ProviderError::Http { status: 429, .. }) =
            (&self.limit, failure.retry_after, &failure.error)
        {
            // The server says when it takes requests again: none of this endpoint's go sooner.
            limit.pause(wait.min(Duration::from_secs(60)));
        }
        if !failure.retry || delivered || retries >= self.max_retries {
            return Err(match failure.error {
                ProviderError::Http { status: 429, .. } => {
                    self.error(|provider, url| ProviderError::RateLimited {
                        provider,
                        url,
                        retries,
                    })
                }
                e => e,
            });
        }
        let backoff = Duration::from_millis(250 * 2u64.pow(retries.min(6)));
        let jittered = backoff.mul_f64(0.5 + fastrand::f64());
        let wait = failure
            .retry_after
            .unwrap_or(jittered)
            .min(Duration::from_secs(60));
        if wait >= time_left {
            return Err(failure.error);
        }
        tracing::info!(
            retry = retries.saturating_add(1),
            wait_ms = wait.as_millis() as u64,
            "retrying: {}",
            failure.error
        );
        Ok(wait)
    }
}

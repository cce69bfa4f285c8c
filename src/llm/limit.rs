//! The client-side limit on requests and tokens per minute to one endpoint (`provider.rpm`,
//! `provider.tpm`), shared by every call this process makes to it: the regions of
//! `review --diff --jobs N`, the critic and the reviser. A team pointing many CI jobs at one
//! gateway sets it below the gateway's quota, so the jobs queue here instead of meeting 429s.
//!
//! Requests are spaced `60/rpm` seconds apart (no burst: a gateway counting per second sees at
//! most `rpm/60`); tokens come from a bucket that refills at `tpm/60` a second, holds at most a
//! minute's worth, and may run into debt when an answer is longer than its prompt's estimate,
//! which the next requests wait off. A server's `Retry-After` on a 429 holds every request to the
//! endpoint, not only the one that met it. Waiters are served in arrival order.
//!
//! Hand-written rather than `governor`: the two things this needs, counting an answer's tokens
//! after it ends (debt) and a shared pause on `Retry-After`, are outside that crate's model.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

// tokio's clock, so that the tests can run a minute of limits in no time.
use tokio::time::Instant;

/// One endpoint's limit.
#[derive(Debug)]
pub struct Limiter {
    /// The gap between two requests (`60/rpm`), when requests are limited.
    spacing: Option<Duration>,
    /// Tokens a second and the bucket's size (a minute's worth), when tokens are limited.
    tokens: Option<(f64, f64)>,
    /// Held while a request waits for its turn, so waiters go in arrival order (tokio's mutex is
    /// fair) and a later one never overtakes the first in line.
    turn: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the next request may start.
    next_request: Instant,
    /// Tokens in the bucket (below zero: debt).
    balance: f64,
    /// When `balance` was last refilled.
    refilled: Instant,
    /// No request before this (a server's `Retry-After`).
    paused_until: Instant,
}

/// The most debt the bucket runs into, in minutes' worth of tokens: an answer may be longer
/// than its prompt's estimate, but a provider reporting absurd usage (`u64::MAX` tokens) holds
/// the endpoint for minutes, not for ever.
const MAX_DEBT_MINUTES: f64 = 10.0;

/// The longest any wait here lasts (a server's `Retry-After`, a debt): beyond it a number is
/// taken as absurd rather than as a reason to wait for years.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// An endpoint and its limits: (base URL, rpm, tpm), 0 for none.
type Key = (String, u32, u32);

/// Every endpoint's limiter in this process.
static LIMITERS: LazyLock<Mutex<HashMap<Key, Arc<Limiter>>>> = LazyLock::new(Default::default);

impl Limiter {
    /// A limiter of `rpm` requests and `tpm` tokens a minute (`None` or 0: that one unlimited);
    /// `None` when neither is limited.
    pub fn new(rpm: Option<u32>, tpm: Option<u32>) -> Option<Self> {
        let rpm = rpm.filter(|r| *r > 0);
        let tpm = tpm.filter(|t| *t > 0);
        if rpm.is_none() && tpm.is_none() {
            return None;
        }
        let now = Instant::now();
        let per_minute = tpm.map(f64::from);
        Some(Self {
            spacing: rpm.map(|r| Duration::from_secs(60) / r),
            tokens: per_minute.map(|t| (t / 60.0, t)),
            turn: tokio::sync::Mutex::new(()),
            state: Mutex::new(State {
                next_request: now,
                balance: per_minute.unwrap_or(0.0),
                refilled: now,
                paused_until: now,
            }),
        })
    }

    /// The limiter every provider of this process with the same endpoint and limits shares.
    pub fn shared(base_url: &str, rpm: Option<u32>, tpm: Option<u32>) -> Option<Arc<Self>> {
        let key = (
            base_url.trim_end_matches('/').to_owned(),
            rpm.unwrap_or(0),
            tpm.unwrap_or(0),
        );
        let mut all = LIMITERS.lock().ok()?;
        if let Some(l) = all.get(&key) {
            return Some(l.clone());
        }
        let l = Arc::new(Self::new(rpm, tpm)?);
        all.insert(key, l.clone());
        Some(l)
    }

    /// Waits until a request with a prompt of about `tokens` tokens may start, takes its slot
    /// and its tokens, and says how long it waited. Dropping the future gives the turn up.
    pub async fn admit(&self, tokens: u64) -> Duration {
        let started = Instant::now();
        let _turn = self.turn.lock().await;
        loop {
            let wait = match self.state.lock() {
                Ok(mut s) => self.try_take(&mut s, tokens, Instant::now()),
                // A panicked holder: no limit rather than no requests.
                Err(_) => None,
            };
            match wait {
                None => return started.elapsed(),
                // Looked at again after the wait: a `Retry-After` may have come meanwhile.
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// Counts a finished request's real usage against the `reserved` tokens its admission took
    /// (0 used gives them back: a request refused before the model read it).
    pub fn settle(&self, reserved: u64, used: u64) {
        let Some((rate, size)) = self.tokens else {
            return;
        };
        if let Ok(mut s) = self.state.lock() {
            refill(&mut s, rate, size, Instant::now());
            // The difference first: equal huge counts cancel exactly.
            s.balance = (s.balance + (tokens_f64(reserved) - tokens_f64(used)))
                .clamp(-size * MAX_DEBT_MINUTES, size);
        }
    }

    /// Holds every request to the endpoint for `d` (a 429's `Retry-After`), at most an hour.
    pub fn pause(&self, d: Duration) {
        if let Ok(mut s) = self.state.lock() {
            let until = after(Instant::now(), d);
            if until > s.paused_until {
                s.paused_until = until;
            }
        }
    }

    /// Takes a slot and `tokens` when both are there at `now` (`None`), or says how long to
    /// wait for them.
    fn try_take(&self, s: &mut State, tokens: u64, now: Instant) -> Option<Duration> {
        let mut ready = s.paused_until;
        if self.spacing.is_some() && s.next_request > ready {
            ready = s.next_request;
        }
        // A prompt larger than the whole bucket waits for a full bucket, not forever.
        let mut need = 0.0;
        if let Some((rate, size)) = self.tokens {
            refill(s, rate, size, now);
            need = tokens_f64(tokens).min(size);
            if s.balance < need {
                let short =
                    Duration::try_from_secs_f64((need - s.balance) / rate).unwrap_or(MAX_WAIT);
                ready = ready.max(after(now, short));
            }
        }
        if ready > now {
            return Some(ready.saturating_duration_since(now));
        }
        if let Some(gap) = self.spacing {
            s.next_request = after(now, gap);
        }
        if self.tokens.is_some() {
            s.balance -= need;
        }
        None
    }
}

/// `t + d` with `d` at most [`MAX_WAIT`] (no overflow of the clock, whatever `d` is).
fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d.min(MAX_WAIT)).unwrap_or(t)
}

fn refill(s: &mut State, rate: f64, size: f64, now: Instant) {
    let elapsed = now.saturating_duration_since(s.refilled).as_secs_f64();
    s.balance = (s.balance + elapsed * rate).min(size);
    s.refilled = now;
}

#[allow(clippy::cast_precision_loss)]
fn tokens_f64(t: u64) -> f64 {
    t as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_sixty_over_rpm_apart() {
        let l = Limiter::new(Some(240), None).unwrap();
        let t0 = tokio::time::Instant::now();
        let mut starts = Vec::new();
        for _ in 0..6 {
            l.admit(0).await;
            starts.push(t0.elapsed());
        }
        for pair in starts.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_millis(250),
                "{starts:?}"
            );
        }
        assert!(starts[5] < Duration::from_millis(1300), "{starts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_wait_for_the_bucket_and_a_long_answer_is_paid_off_later() {
        // 600 a minute: 10 a second, a bucket of 600.
        let l = Limiter::new(None, Some(600)).unwrap();
        let t0 = tokio::time::Instant::now();
        l.admit(500).await;
        assert!(t0.elapsed() < Duration::from_millis(10));
        // 100 left, and the answer used 900 more than its reservation: -800.
        l.settle(500, 1400);
        l.admit(100).await;
        // From -800 to +100 at 10 a second: 90 s.
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(89) && waited <= Duration::from_secs(91),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_request_gives_its_tokens_back() {
        let l = Limiter::new(None, Some(600)).unwrap();
        let t0 = tokio::time::Instant::now();
        l.admit(600).await;
        l.settle(600, 0);
        l.admit(600).await;
        assert!(
            t0.elapsed() < Duration::from_millis(10),
            "{:?}",
            t0.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_every_request() {
        let l = Limiter::new(Some(6000), None).unwrap();
        let t0 = tokio::time::Instant::now();
        l.pause(Duration::from_secs(2));
        l.admit(0).await;
        assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_usage_and_limits_never_panic_and_the_debt_is_bounded() {
        for tpm in [1, 1000, u32::MAX] {
            let l = Limiter::new(Some(u32::MAX), Some(tpm)).unwrap();
            let t0 = tokio::time::Instant::now();
            l.admit(u64::MAX).await;
            // A provider reporting u64::MAX tokens: a debt of at most ten minutes' worth.
            l.settle(u64::MAX, u64::MAX);
            l.settle(0, u64::MAX);
            l.admit(u64::MAX).await;
            let waited = t0.elapsed();
            // Ten minutes of debt, then a full bucket (one minute): not years.
            assert!(
                waited <= Duration::from_secs(11 * 60 + 1),
                "{tpm}: {waited:?}"
            );
            assert!(waited >= Duration::from_secs(10 * 60), "{tpm}: {waited:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_absurd_retry_after_is_bounded() {
        let l = Limiter::new(Some(1), Some(1)).unwrap();
        let t0 = tokio::time::Instant::now();
        l.pause(Duration::from_secs(99_999_999_999));
        l.pause(Duration::MAX);
        l.admit(0).await;
        assert!(t0.elapsed() <= MAX_WAIT, "{:?}", t0.elapsed());
        assert!(
            t0.elapsed() >= Duration::from_secs(3599),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn no_limit_is_no_limiter_and_equal_endpoints_share_one() {
        assert!(Limiter::new(None, None).is_none());
        assert!(Limiter::new(Some(0), Some(0)).is_none());
        let a = Limiter::shared("http://127.0.0.1:1/v1/", Some(60), None).unwrap();
        let b = Limiter::shared("http://127.0.0.1:1/v1", Some(60), None).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = Limiter::shared("http://127.0.0.1:1/v1", Some(61), None).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }
}

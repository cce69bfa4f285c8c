//! What the HTTP exchange needs of the network that knows no provider: bounded reads of a body,
//! `Retry-After`, redirects kept to the endpoint's origin, loopback hosts, and whether a
//! rejection was about structured output.

use std::time::Duration;

/// The most of an error body read (its start is quoted in the error).
pub(super) const MAX_ERROR_BODY: usize = 64 << 10;

/// At most `cap` bytes of a body, as text (what arrived before a network error included).
pub(super) async fn read_capped(mut resp: reqwest::Response, cap: usize) -> String {
    let mut body = Vec::new();
    while body.len() < cap {
        match resp.chunk().await {
            Ok(Some(c)) => {
                let room = cap.saturating_sub(body.len());
                body.extend_from_slice(c.get(..room).unwrap_or(&c));
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// Whether a 400/422 body is about structured output (so that a weaker mode may work), and
/// not about something else a weaker mode would fail on as well (a prompt longer than the
/// context, an unknown model). A body that says nothing is taken as about it.
pub(super) fn about_structured_output(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    const FORMAT: &[&str] = &[
        "response_format",
        "json_schema",
        "json_object",
        "format",
        "schema",
        "grammar",
        "structured",
    ];
    const OTHER: &[&str] = &[
        "context", "token", "too long", "exceeds", "model", "messages", "key",
    ];
    FORMAT.iter().any(|w| b.contains(w)) || !OTHER.iter().any(|w| b.contains(w))
}

/// The longest `Retry-After` taken as it is; a server asking for more gets this (and the call
/// gives up when it exceeds the time left).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` as seconds or an HTTP date, bounded by [`MAX_RETRY_AFTER`]; `None` for a
/// value that is neither (negative, not a number).
pub(super) fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        return Some(
            Duration::try_from_secs_f64(secs)
                .unwrap_or(MAX_RETRY_AFTER)
                .min(MAX_RETRY_AFTER),
        );
    }
    httpdate::parse_http_date(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
        .map(|d| d.min(MAX_RETRY_AFTER))
}

/// A redirect to another origin, refused so that the key and headers stay with the host the
/// user named (reqwest drops `Authorization` across hosts, but not `x-api-key` or
/// `provider.headers`).
#[derive(Debug, thiserror::Error)]
#[error("redirect to another origin ({0}) refused")]
struct CrossOriginRedirect(String);

/// How many redirects within the origin are followed (reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// Redirects within the endpoint's origin (scheme, host, port) are followed; one anywhere else
/// is an error.
pub(super) fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .last()
            .is_some_and(|from| from.origin() == attempt.url().origin());
        if !same {
            let to = attempt.url().origin().ascii_serialization();
            attempt.error(CrossOriginRedirect(to))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// The origin a refused cross-origin redirect led to, when that is why `e` happened.
pub(super) fn refused_redirect(e: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<CrossOriginRedirect>() {
            return Some(r.0.clone());
        }
        source = s.source();
    }
    None
}

/// True when a URL's host is this machine (no key is needed there).
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("soon"), None);
        // Hostile values are bounded, never a panic.
        for huge in ["1e30", "18446744073709551616", "inf", "1e308"] {
            assert_eq!(parse_retry_after(huge), Some(MAX_RETRY_AFTER), "{huge}");
        }
        for bad in ["-1", "NaN", "-inf", ""] {
            assert_eq!(parse_retry_after(bad), None, "{bad}");
        }
        assert!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT").is_some());
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(d <= Duration::from_secs(30) && d >= Duration::from_secs(28));
    }
}

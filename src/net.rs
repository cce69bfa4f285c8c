//! Network helpers shared by the providers and the model downloads.

/// The innermost cause of a network error, which is the informative one.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut reason = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        reason = s.to_string();
        src = s.source();
    }
    reason
}

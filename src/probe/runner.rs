//! The one entry point: a probe run in the harness of its language. (Kept apart from
//! `mod.rs`, which holds the types every harness imports, so that no import runs in a circle.)

use tokio_util::sync::CancellationToken;

use super::{Language, ProbeError, Report, Request, python, rust};

/// Runs every call on every version (see [`Request`]); the harness per language.
pub async fn run(req: &Request<'_>, cancel: &CancellationToken) -> Result<Report, ProbeError> {
    match req.language {
        Language::Rust => rust::run(req, cancel).await,
        Language::Python => python::run(req, cancel).await,
    }
}

//! The Rust harness: the file as it is, each candidate version in a module of its own
//! (`mod __refine_v1 { use super::*; … }`), and a test per version that calls every input in a
//! thread of its own (a panic caught, a call that does not end left behind), built by
//! `rustc --test` in a private scratch folder and run in the sandbox one version at a time.

use tokio_util::sync::CancellationToken;

use super::{ProbeError, Report, Request};

/// Runs the request's calls on its versions.
pub async fn run(req: &Request<'_>, cancel: &CancellationToken) -> Result<Report, ProbeError> {
    let _ = (req, cancel);
    Err(ProbeError::NoHarness(
        "the Rust harness is not built yet".to_owned(),
    ))
}

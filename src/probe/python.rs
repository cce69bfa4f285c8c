//! The Python harness: each version of the file as a module of its own in a private scratch
//! folder, a script that imports one and calls every input in a thread (an exception caught,
//! a call that does not end left behind), run by `python3` in the sandbox one version at a time.

use tokio_util::sync::CancellationToken;

use super::{ProbeError, Report, Request};

/// Runs the request's calls on its versions.
pub async fn run(req: &Request<'_>, cancel: &CancellationToken) -> Result<Report, ProbeError> {
    let _ = (req, cancel);
    Err(ProbeError::NoHarness(
        "the Python harness is not built yet".to_owned(),
    ))
}

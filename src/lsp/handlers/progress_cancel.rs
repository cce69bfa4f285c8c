//! `window/workDoneProgress/cancel`: the user pressed cancel on a review's progress.
//! (tower-lsp-server has no handler for this notification of LSP 3.15.)

use tower_lsp_server::ls_types::WorkDoneProgressCancelParams;

use crate::lsp::convert;
use crate::lsp::server::Backend;

/// The method's name.
pub const METHOD: &str = "window/workDoneProgress/cancel";

/// Handles `window/workDoneProgress/cancel`.
pub async fn run(server: &Backend, params: WorkDoneProgressCancelParams) {
    let key = convert::progress_key(&params.token);
    let uri = server.lock().cancel_by_progress(&key);
    match uri {
        Some(uri) => server.republish(&uri),
        None => tracing::debug!("no running review has progress token {key}"),
    }
}

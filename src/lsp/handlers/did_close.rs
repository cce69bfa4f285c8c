//! `textDocument/didClose`: the document and its reviews go; its diagnostics are cleared.

use tower_lsp_server::ls_types::DidCloseTextDocumentParams;

use crate::lsp::server::Backend;

/// Handles `textDocument/didClose`.
pub async fn run(server: &Backend, params: DidCloseTextDocumentParams) {
    let key = params.text_document.uri.as_str().to_owned();
    server.lock().close(&key);
    server.republish(&key);
}

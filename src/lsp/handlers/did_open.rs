//! `textDocument/didOpen`: the document (again), without reviews.

use tower_lsp_server::ls_types::DidOpenTextDocumentParams;

use crate::document::Document;
use crate::lsp::server::Backend;

/// Handles `textDocument/didOpen`.
pub async fn run(server: &Backend, params: DidOpenTextDocumentParams) {
    let td = params.text_document;
    let doc = Document::new(&td.text, td.version, &td.language_id);
    server.lock().open(td.uri.as_str().to_owned(), doc);
}

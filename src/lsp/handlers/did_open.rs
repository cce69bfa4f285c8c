//! `textDocument/didOpen`: the document (again), without reviews; the first document of a
//! language warms the embedded model with the prompt head a review of it starts with.

use tower_lsp_server::ls_types::DidOpenTextDocumentParams;

use crate::document::Document;
use crate::lsp::server::Backend;
use crate::lsp::state::review_language;

/// Handles `textDocument/didOpen`.
pub async fn run(server: &Backend, params: DidOpenTextDocumentParams) {
    let td = params.text_document;
    let doc = Document::new(&td.text, td.version, &td.language_id);
    let language = review_language(td.uri.as_str(), &td.language_id);
    let service = {
        let mut st = server.lock();
        st.open(td.uri.as_str().to_owned(), doc);
        st.service()
    };
    if let Some(service) = service {
        tokio::spawn(async move { service.warm_for(&language).await });
    }
}

//! `textDocument/didChange`: the changes go into the document, moving or dropping its reviews
//! (see [`crate::lsp::doc_state`]); a change that cannot be applied is told to the user.

use tower_lsp_server::ls_types::{DidChangeTextDocumentParams, MessageType};

use crate::learning::Fate;
use crate::lsp::convert;
use crate::lsp::server::Backend;

/// Handles `textDocument/didChange`.
pub async fn run(server: &Backend, params: DidChangeTextDocumentParams) {
    let key = params.text_document.uri.as_str().to_owned();
    let changes = params
        .content_changes
        .into_iter()
        .map(convert::text_change)
        .collect();
    let (effects, service) = {
        let mut st = server.lock();
        let effects = st.apply_changes(&key, changes, params.text_document.version);
        (effects, st.service())
    };
    if let Some(service) = service {
        for id in &effects.superseded {
            service.record_fate(id, Fate::Superseded, Vec::new(), None);
        }
    }
    if effects.republish {
        server.republish(&key);
    }
    if let Some(why) = effects.lost {
        server
            .client
            .show_message(
                MessageType::ERROR,
                format!(
                    "refine: an edit to {key} could not be applied ({why}); its reviews are cleared and none will run until the file is reopened or sent whole"
                ),
            )
            .await;
    }
}

//! `textDocument/hover`: a finding's critique and the change the revision makes for it.

use tower_lsp_server::jsonrpc::Result as RpcResult;
use tower_lsp_server::ls_types::{Hover, HoverParams};

use crate::document::to_char;
use crate::lsp::convert;
use crate::lsp::server::Backend;
use crate::lsp::views;

/// Handles `textDocument/hover`.
pub async fn run(server: &Backend, params: HoverParams) -> RpcResult<Option<Hover>> {
    let st = server.lock();
    let doc = &params.text_document_position_params;
    let Some(ds) = st.document(doc.text_document.uri.as_str()) else {
        return Ok(None);
    };
    if !st.config().hints.hover {
        return Ok(None);
    }
    let at = to_char(
        ds.doc().rope(),
        convert::text_pos(doc.position),
        st.encoding(),
    );
    Ok(views::hover(ds, at, st.encoding()))
}

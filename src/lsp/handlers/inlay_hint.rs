//! `textDocument/inlayHint`: findings at the end of their lines.

use tower_lsp_server::jsonrpc::Result as RpcResult;
use tower_lsp_server::ls_types::{InlayHint, InlayHintParams};

use crate::lsp::convert;
use crate::lsp::server::Backend;
use crate::lsp::views;

/// Handles `textDocument/inlayHint`.
pub async fn run(server: &Backend, params: InlayHintParams) -> RpcResult<Option<Vec<InlayHint>>> {
    let st = server.lock();
    let Some(ds) = st.document(params.text_document.uri.as_str()) else {
        return Ok(None);
    };
    let range = convert::char_range(ds.doc().rope(), params.range, st.encoding());
    Ok(Some(views::inlay_hints(
        ds,
        range,
        &st.config().hints,
        st.encoding(),
    )))
}

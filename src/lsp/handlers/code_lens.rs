//! `textDocument/codeLens`: a lens above each reviewed range.

use tower_lsp_server::jsonrpc::Result as RpcResult;
use tower_lsp_server::ls_types::{CodeLens, CodeLensParams};

use crate::lsp::server::Backend;
use crate::lsp::views;

/// Handles `textDocument/codeLens`.
pub async fn run(server: &Backend, params: CodeLensParams) -> RpcResult<Option<Vec<CodeLens>>> {
    let st = server.lock();
    let Some(ds) = st.document(params.text_document.uri.as_str()) else {
        return Ok(None);
    };
    if !st.config().hints.code_lens {
        return Ok(Some(Vec::new()));
    }
    Ok(Some(views::code_lenses(
        ds,
        &params.text_document.uri,
        st.encoding(),
    )))
}

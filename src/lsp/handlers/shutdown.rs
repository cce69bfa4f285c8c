//! `shutdown`: every running review is cancelled.

use tower_lsp_server::jsonrpc::Result as RpcResult;

use crate::lsp::server::Backend;

/// Handles `shutdown`.
pub async fn run(server: &Backend) -> RpcResult<()> {
    server.lock().clear_all();
    Ok(())
}

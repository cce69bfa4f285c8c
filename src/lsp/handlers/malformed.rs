//! The stand-in request for a frame the transport could not read (see
//! [`crate::lsp::transport`]): answered with the error the client should get.

use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error as RpcError, Result as RpcResult};

use crate::lsp::server::Backend;

/// Handles [`crate::lsp::transport::MALFORMED_METHOD`].
pub async fn run(_: &Backend, params: Value) -> RpcResult<Value> {
    let code = params.get("code").and_then(Value::as_i64).unwrap_or(-32700);
    let reason = params
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("malformed message")
        .to_owned();
    tracing::warn!("malformed message from the client: {reason}");
    Err(RpcError {
        code: code.into(),
        message: reason.into(),
        data: None,
    })
}

//! `refine.cancel`, `refine.clear` and `refine.dismiss`: stopping and dropping reviews.

use serde_json::{Value, json};
use tower_lsp_server::jsonrpc::Result as RpcResult;

use super::target::ReviewTarget;
use crate::lsp::convert::invalid_params;
use crate::lsp::server::Backend;

/// `refine.cancel` `[{"reviewId"}]`.
pub fn cancel(server: &Backend, arg: &Value) -> RpcResult<Value> {
    let id = arg
        .as_str()
        .or_else(|| arg.get("reviewId").and_then(Value::as_str))
        .ok_or_else(|| invalid_params("refine.cancel takes [{\"reviewId\"}]".to_owned()))?;
    let uri = server.lock().cancel(id);
    Ok(json!({ "cancelled": uri.is_some() }))
}

/// `refine.clear` `[{"uri"}]`.
pub fn clear(server: &Backend, arg: &Value) -> RpcResult<Value> {
    let uri = arg
        .as_str()
        .or_else(|| arg.get("uri").and_then(Value::as_str))
        .ok_or_else(|| invalid_params("refine.clear takes [{\"uri\"}]".to_owned()))?
        .to_owned();
    let cleared = server.lock().clear(&uri);
    server.republish(&uri);
    Ok(json!({ "cleared": cleared }))
}

/// `refine.dismiss` `[{"uri", "reviewId"}]`: hides a review now.
pub fn dismiss(server: &Backend, arg: &Value) -> RpcResult<Value> {
    let target = ReviewTarget::from(arg)?;
    let id = target.review_id.ok_or_else(|| {
        invalid_params("refine.dismiss takes [{\"uri\", \"reviewId\"}]".to_owned())
    })?;
    let uri = server.lock().dismiss(&id);
    if let Some(uri) = &uri {
        server.republish(uri);
    }
    Ok(json!({ "dismissed": uri.is_some() }))
}

//! The argument most review commands share.

use serde_json::Value;
use tower_lsp_server::jsonrpc::Result as RpcResult;

use crate::lsp::convert::invalid_params;

/// `[{"uri", "reviewId"?, "position"?}]` of the review commands: with `position`, the review
/// whose lines hold it (what "under the cursor" means).
pub struct ReviewTarget {
    /// The document.
    pub uri: String,
    /// The review, when named.
    pub review_id: Option<String>,
    /// Zero-based line of the position.
    pub line: Option<usize>,
}

impl ReviewTarget {
    /// Reads the argument.
    pub fn from(arg: &Value) -> RpcResult<Self> {
        let uri = arg.get("uri").and_then(Value::as_str).ok_or_else(|| {
            invalid_params("this command takes [{\"uri\", \"reviewId\"?}]".to_owned())
        })?;
        Ok(Self {
            uri: uri.to_owned(),
            review_id: arg
                .get("reviewId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            line: arg
                .pointer("/position/line")
                .and_then(Value::as_u64)
                .and_then(|l| usize::try_from(l).ok()),
        })
    }
}

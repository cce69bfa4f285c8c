//! `codeAction/resolve`: a revision action's edit, for the version it was offered for. An
//! action that is not ours comes back as it was; a stale one is refused with a sentence.

use tower_lsp_server::jsonrpc::{Error as RpcError, Result as RpcResult};
use tower_lsp_server::ls_types::CodeAction;

use crate::lsp::convert;
use crate::lsp::ext::LLM_MARKER;
use crate::lsp::server::Backend;
use crate::lsp::state::State;

/// What a lazily built revision action carries in `data`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lazy {
    refine: String,
    uri: String,
    review_id: String,
    #[serde(default)]
    finding_id: Option<usize>,
    version: i32,
}

/// Handles `codeAction/resolve`.
pub async fn run(server: &Backend, action: CodeAction) -> RpcResult<CodeAction> {
    resolve(&server.lock(), action).map_err(RpcError::invalid_params)
}

/// The action with its edit, or why it has none.
fn resolve(st: &State, mut action: CodeAction) -> Result<CodeAction, String> {
    let Some(data) = action.data.clone() else {
        return Ok(action);
    };
    let Ok(lazy) = serde_json::from_value::<Lazy>(data) else {
        return Ok(action);
    };
    if lazy.refine != "revision" {
        return Ok(action);
    }
    let stale = || {
        format!(
            "the document changed since review {} (version {}): ask for code actions again",
            lazy.review_id, lazy.version
        )
    };
    let ds = st.document(&lazy.uri).ok_or_else(stale)?;
    if ds.doc().version() != lazy.version || ds.is_out_of_sync() {
        return Err(stale());
    }
    let done = ds
        .done(&lazy.review_id)
        .filter(|d| d.version == lazy.version)
        .ok_or_else(stale)?;
    let edits = match lazy.finding_id {
        None => done.revision.as_deref(),
        Some(id) => done
            .per_finding
            .iter()
            .find(|(f, _)| *f == id)
            .map(|(_, e)| e.as_slice()),
    }
    .ok_or_else(stale)?;
    let uri = std::str::FromStr::from_str(&lazy.uri).map_err(|e| format!("bad uri: {e}"))?;
    if let Some(d) = action
        .data
        .as_mut()
        .and_then(serde_json::Value::as_object_mut)
    {
        d.insert(LLM_MARKER.to_owned(), serde_json::Value::Bool(true));
    }
    action.edit = Some(convert::workspace_edit(
        &uri,
        &st.revision_edit(ds.doc().rope(), done, edits),
    ));
    Ok(action)
}

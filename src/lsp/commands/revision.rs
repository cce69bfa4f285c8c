//! `refine.showRevision`, `refine.applyRevision` and `refine.applied`: a finished review's
//! revision, shown, applied, and its application recorded (the learning record's fates).

use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Value, json};
use tower_lsp_server::jsonrpc::Result as RpcResult;
use tower_lsp_server::ls_types::{self as lsp, Uri};

use super::target::ReviewTarget;
use crate::learning::Fate;
use crate::lsp::convert::{self, invalid_params};
use crate::lsp::server::Backend;
use crate::lsp::views;

/// A finished review's revision as the document is now.
struct Shown {
    id: String,
    version: i32,
    fixes: usize,
    findings: usize,
    diff: Option<String>,
    /// The workspace edit, when the revision still fits the document.
    edit: Option<lsp::WorkspaceEdit>,
    /// The whole revised document, when the revision still fits.
    revised: Option<String>,
}

/// The latest review of `target` (or the one it names) that offers a revision.
fn find_revision(server: &Backend, target: &ReviewTarget) -> Option<Shown> {
    let st = server.lock();
    let ds = st.document(&target.uri)?;
    let (entry, done) = ds.latest_revision(target.review_id.as_deref(), target.line)?;
    let uri = Uri::from_str(&target.uri).ok()?;
    let rope = ds.doc().rope();
    let fits = done.version == ds.doc().version();
    let edits = done.revision.as_deref().unwrap_or_default();
    Some(Shown {
        id: entry.id.clone(),
        version: done.version,
        fixes: done.fixes,
        findings: done.findings.len(),
        diff: views::revision_diff(rope, entry, done, &convert::display_path(&uri)),
        edit: fits.then(|| convert::workspace_edit(&uri, &st.revision_edit(rope, done, edits))),
        revised: fits.then(|| crate::engine::edits::apply(&rope.to_string(), edits, 0)),
    })
}

/// `refine.showRevision` `[{"uri", "reviewId"?}]`: the diff and the revised document.
pub fn show_revision(server: &Backend, arg: &Value) -> RpcResult<Value> {
    let target = ReviewTarget::from(arg)?;
    let Some(s) = find_revision(server, &target) else {
        return Ok(Value::Null);
    };
    let service = {
        let mut st = server.lock();
        st.mark_previewed(&target.uri, &s.id);
        st.service()
    };
    if let Some(service) = service {
        service.record_fate(&s.id, Fate::Previewed, Vec::new(), None);
    }
    Ok(json!({
        "reviewId": s.id, "version": s.version, "fixes": s.fixes, "findings": s.findings,
        "diff": s.diff, "revised": s.revised,
    }))
}

/// `refine.applyRevision` `[{"uri", "reviewId"?}]`: asks the client to apply the revision.
pub fn apply_revision(server: &Backend, arg: &Value) -> RpcResult<Value> {
    let Some(s) = find_revision(server, &ReviewTarget::from(arg)?) else {
        return Ok(Value::Null);
    };
    let Some(edit) = s.edit else {
        return Err(invalid_params(
            "the document changed since the review: review again".to_owned(),
        ));
    };
    // Sent from a task: a handler must not wait on the client.
    let client = server.client.clone();
    let service = server.lock().service();
    let id = s.id.clone();
    tokio::spawn(async move {
        match client.apply_edit(edit).await {
            Ok(r) if r.applied => {
                if let Some(service) = service {
                    service.record_fate(&id, Fate::Applied, Vec::new(), None);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("workspace/applyEdit failed: {e}"),
        }
    });
    Ok(json!({"reviewId": s.id, "applied": "requested"}))
}

/// `refine.applied` `[{"uri", "reviewId", "findingIds"?}]`: a revision quick fix's edit went
/// in (the editor runs it after applying the edit): the whole revision, or only the edits of
/// `findingIds`. Only the learning record uses it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppliedArgs {
    review_id: String,
    #[serde(default)]
    finding_ids: Option<Vec<usize>>,
}

/// `refine.applied` (see [`AppliedArgs`]).
pub fn applied(server: &Backend, arg: Value) -> RpcResult<Value> {
    let args: AppliedArgs = serde_json::from_value(arg).map_err(|e| {
        invalid_params(format!(
            "refine.applied takes [{{\"uri\", \"reviewId\", \"findingIds\"?}}]: {e}"
        ))
    })?;
    let service = server.lock().service();
    let recorded = service.is_some_and(|s| {
        let recording = s.recording();
        match args.finding_ids {
            Some(ids) => s.record_fate(&args.review_id, Fate::AppliedFindings, ids, None),
            None => s.record_fate(&args.review_id, Fate::Applied, Vec::new(), None),
        }
        recording
    });
    Ok(json!({ "recorded": recorded }))
}

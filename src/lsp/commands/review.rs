//! `refine.review`, `refine.refine` and `refine.reReview`: starting a review job.

use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc::Result as RpcResult;
use tower_lsp_server::ls_types::{self as lsp, Uri};

use super::target::ReviewTarget;
use crate::engine::ReviewInput;
use crate::lsp::command::Command;
use crate::lsp::convert::{self, invalid_params};
use crate::lsp::job::Job;
use crate::lsp::server::Backend;
use crate::lsp::state::Snapshot;

/// Arguments of `refine.review` and `refine.refine`.
#[derive(Debug, Deserialize)]
struct ReviewArgs {
    uri: Uri,
    range: lsp::Range,
    /// The editor's own diagnostics for the range (from `CodeActionContext`): facts.
    #[serde(default)]
    diagnostics: Vec<lsp::Diagnostic>,
    /// Bypass the cache.
    #[serde(default)]
    force: bool,
}

/// `refine.review` / `refine.refine` `[{"uri", "range", "diagnostics"?, "force"?}]`.
pub fn review(
    server: &Backend,
    command: Command,
    arg: Value,
    token: Option<lsp::ProgressToken>,
) -> RpcResult<Value> {
    let args: ReviewArgs = serde_json::from_value(arg).map_err(|e| {
        invalid_params(format!(
            "{} takes [{{\"uri\", \"range\"}}]: {e}",
            command.name()
        ))
    })?;
    let id = start_review(server, args, command == Command::Refine, token)?;
    Ok(json!({ "reviewId": id }))
}

/// `refine.reReview` `[{"uri", "reviewId"?}]`: the same lines again, bypassing the cache.
pub fn re_review(server: &Backend, arg: &Value) -> RpcResult<Value> {
    let target = ReviewTarget::from(arg)?;
    let region = {
        let st = server.lock();
        st.document(&target.uri).and_then(|ds| {
            let e = ds.review(target.review_id.as_deref())?;
            Some(convert::range(ds.doc().rope(), &e.region, st.encoding()))
        })
    };
    let Some(range) = region else {
        return Err(invalid_params("no such review to run again".to_owned()));
    };
    let uri = Uri::from_str(&target.uri).map_err(|e| invalid_params(format!("bad uri: {e}")))?;
    let args = ReviewArgs {
        uri,
        range,
        diagnostics: Vec::new(),
        force: true,
    };
    let id = start_review(server, args, false, None)?;
    Ok(json!({ "reviewId": id }))
}

/// Starts a review job and returns its id. A review of lines another review covers replaces
/// it (see [`crate::lsp::doc_state::DocState::begin_review`]).
fn start_review(
    server: &Backend,
    args: ReviewArgs,
    apply: bool,
    token: Option<lsp::ProgressToken>,
) -> RpcResult<String> {
    let key = args.uri.as_str().to_owned();
    let mut st = server.lock();
    let start = convert::text_pos(args.range.start);
    let end = convert::text_pos(args.range.end);
    let snapshot = st.snapshot(&key, start, end).map_err(invalid_params)?;
    let region = snapshot.region.clone();
    let input = review_input(snapshot, &args);
    let id = st.new_review_id();
    let Some(service) = st.service() else {
        return Err(invalid_params(
            "the server is not initialized yet".to_owned(),
        ));
    };
    service.check_sendable(&key).map_err(invalid_params)?;
    if let Some(why) = service.command_refused() {
        tracing::warn!("{why}");
    }
    let cancel = CancellationToken::new();
    let replaced = st.begin_review(&key, id.clone(), region, cancel.clone());
    let can_create_progress = st.caps().progress;
    drop(st);
    if replaced {
        server.republish(&key);
    }
    let job = Job {
        server: server.clone(),
        file: convert::file_path(&args.uri),
        uri: args.uri,
        id: id.clone(),
        input,
        service,
        cancel,
        apply,
        progress_token: token,
        can_create_progress,
    };
    tokio::spawn(job.run());
    Ok(id)
}

/// What the engine reviews: the snapshot's lines, with the editor's own diagnostics on them
/// (not ours) as facts.
fn review_input(snapshot: Snapshot, args: &ReviewArgs) -> ReviewInput {
    let (first, last) = (snapshot.first, snapshot.last);
    ReviewInput {
        text: snapshot.text,
        path: convert::display_path(&args.uri),
        file: convert::file_path(&args.uri),
        language: snapshot.language,
        first_line: first,
        last_line: last,
        facts: args
            .diagnostics
            .iter()
            .filter(|d| d.source.as_deref() != Some("refine"))
            .filter(|d| (first..=last).contains(&(d.range.start.line as usize)))
            .map(convert::fact)
            .collect(),
        force: args.force,
        unwanted: Vec::new(),
    }
}

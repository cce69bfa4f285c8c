//! The `refine.*` commands (`workspace/executeCommand`), one function each. None awaits the
//! model: a review is started as a job and its id returned at once.

use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc::{Error as RpcError, Result as RpcResult};
use tower_lsp_server::ls_types::{self as lsp, ExecuteCommandParams, Uri};

use super::job::Job;
use super::state::{ReviewEntry, ReviewStatus, lock};
use super::{Backend, convert, views};
use crate::dismissed::{Dismissal, Scope, fingerprint};
use crate::document::{line_span, widen_to_lines};
use crate::engine::ReviewInput;
use crate::lang::language_for_path;
use crate::learning::Fate;

/// Commands the server executes.
pub const COMMANDS: &[&str] = &[
    "refine.review",
    "refine.refine",
    "refine.cancel",
    "refine.clear",
    "refine.showRevision",
    "refine.applyRevision",
    "refine.reReview",
    "refine.dismiss",
    "refine.dismissFinding",
    "refine.undismiss",
    "refine.applied",
];

/// Runs one command.
pub async fn execute(server: &Backend, params: ExecuteCommandParams) -> RpcResult<Option<Value>> {
    let arg = params.arguments.into_iter().next().unwrap_or(Value::Null);
    let token = params.work_done_progress_params.work_done_token;
    let answer = match params.command.as_str() {
        cmd @ ("refine.review" | "refine.refine") => review(server, cmd, arg, token)?,
        "refine.cancel" => cancel(server, &arg)?,
        "refine.clear" => clear(server, &arg)?,
        "refine.showRevision" => show_revision(server, &arg)?,
        "refine.applyRevision" => apply_revision(server, &arg)?,
        "refine.reReview" => re_review(server, &arg)?,
        "refine.dismiss" => dismiss(server, &arg)?,
        "refine.dismissFinding" => dismiss_finding(server, arg)?,
        "refine.undismiss" => undismiss(server, &arg)?,
        "refine.applied" => applied(server, arg)?,
        other => {
            return Err(invalid_params(format!(
                "unknown command `{other}`; refine-ls runs {}",
                COMMANDS.join(", ")
            )));
        }
    };
    Ok(Some(answer))
}

/// `refine.review` / `refine.refine` `[{"uri", "range", "diagnostics"?, "force"?}]`.
fn review(
    server: &Backend,
    cmd: &str,
    arg: Value,
    token: Option<lsp::ProgressToken>,
) -> RpcResult<Value> {
    let args: ReviewArgs = serde_json::from_value(arg)
        .map_err(|e| invalid_params(format!("{cmd} takes [{{\"uri\", \"range\"}}]: {e}")))?;
    let id = start_review(server, args, cmd == "refine.refine", token)?;
    Ok(json!({ "reviewId": id }))
}

/// `refine.cancel` `[{"reviewId"}]`.
fn cancel(server: &Backend, arg: &Value) -> RpcResult<Value> {
    let id = arg
        .as_str()
        .or_else(|| arg.get("reviewId").and_then(Value::as_str))
        .ok_or_else(|| invalid_params("refine.cancel takes [{\"reviewId\"}]".to_owned()))?;
    let uri = lock(&server.state).cancel(id);
    Ok(json!({ "cancelled": uri.is_some() }))
}

/// `refine.clear` `[{"uri"}]`.
fn clear(server: &Backend, arg: &Value) -> RpcResult<Value> {
    let uri = arg
        .as_str()
        .or_else(|| arg.get("uri").and_then(Value::as_str))
        .ok_or_else(|| invalid_params("refine.clear takes [{\"uri\"}]".to_owned()))?
        .to_owned();
    let cleared = lock(&server.state).clear(&uri);
    server.republish(&uri);
    Ok(json!({ "cleared": cleared }))
}

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
    let st = lock(&server.state);
    let ds = st.docs.get(&target.uri)?;
    let rope = ds.doc.rope();
    let holds = |e: &super::state::ReviewEntry, line: usize| {
        let first = rope.char_to_line(e.region.start.min(rope.len_chars()));
        let last = rope.char_to_line(
            e.region
                .end
                .saturating_sub(1)
                .max(e.region.start)
                .min(rope.len_chars()),
        );
        (first..=last).contains(&line)
    };
    let entry = ds.reviews.iter().rev().find(|e| {
        target.review_id.as_ref().is_none_or(|id| *id == e.id)
            && target.line.is_none_or(|l| holds(e, l))
            && matches!(&e.status, ReviewStatus::Done(d) if d.revision.is_some())
    })?;
    let ReviewStatus::Done(done) = &entry.status else {
        return None;
    };
    let uri = Uri::from_str(&target.uri).ok()?;
    let fits = done.version == ds.doc.version();
    let edits = done.revision.as_deref().unwrap_or_default();
    Some(Shown {
        id: entry.id.clone(),
        version: done.version,
        fixes: done.fixes,
        findings: done.findings.len(),
        diff: views::revision_diff(ds.doc.rope(), entry, done, &display_path(&uri)),
        edit: fits.then(|| st.revision_edit(ds.doc.rope(), &uri, done, edits)),
        revised: fits.then(|| crate::engine::edits::apply(&ds.doc.rope().to_string(), edits, 0)),
    })
}

/// `refine.showRevision` `[{"uri", "reviewId"?}]`: the diff and the revised document.
fn show_revision(server: &Backend, arg: &Value) -> RpcResult<Value> {
    let target = ReviewTarget::from(arg)?;
    let Some(s) = find_revision(server, &target) else {
        return Ok(Value::Null);
    };
    let service = {
        let mut st = lock(&server.state);
        st.mark_previewed(&target.uri, &s.id);
        st.service.clone()
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
fn apply_revision(server: &Backend, arg: &Value) -> RpcResult<Value> {
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
    let service = lock(&server.state).service.clone();
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

/// `refine.reReview` `[{"uri", "reviewId"?}]`: the same lines again, bypassing the cache.
fn re_review(server: &Backend, arg: &Value) -> RpcResult<Value> {
    let target = ReviewTarget::from(arg)?;
    let region = {
        let st = lock(&server.state);
        st.docs.get(&target.uri).and_then(|ds| {
            let e = ds
                .reviews
                .iter()
                .find(|e| target.review_id.as_ref().is_none_or(|id| *id == e.id))?;
            Some(convert::range(ds.doc.rope(), &e.region, st.encoding))
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

/// `refine.dismiss` `[{"uri", "reviewId"}]`: hides a review now.
fn dismiss(server: &Backend, arg: &Value) -> RpcResult<Value> {
    let target = ReviewTarget::from(arg)?;
    let id = target.review_id.ok_or_else(|| {
        invalid_params("refine.dismiss takes [{\"uri\", \"reviewId\"}]".to_owned())
    })?;
    let uri = lock(&server.state).dismiss(&id);
    if let Some(uri) = &uri {
        server.republish(uri);
    }
    Ok(json!({ "dismissed": uri.is_some() }))
}

/// `refine.dismissFinding` `[{"uri", "reviewId", "findingId", "scope"?}]`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DismissArgs {
    uri: Uri,
    review_id: String,
    finding_id: usize,
    /// `finding` (the default): this finding wherever it moves; `principle`: this principle
    /// in this file; `file`: every finding in this file.
    #[serde(default)]
    scope: Option<Scope>,
    /// `workspace` (the default when there is a workspace folder: `.refine/dismissed.toml`,
    /// shared) or `user` (the user's own store, every workspace).
    #[serde(default)]
    store: Option<String>,
}

/// `refine.dismissFinding`: writes the dismissal to `.refine/dismissed.toml` and hides the
/// findings of the document it covers now.
fn dismiss_finding(server: &Backend, arg: Value) -> RpcResult<Value> {
    let args: DismissArgs = serde_json::from_value(arg).map_err(|e| {
        invalid_params(format!(
            "refine.dismissFinding takes [{{\"uri\", \"reviewId\", \"findingId\", \"scope\"?}}]: {e}"
        ))
    })?;
    let user = match args.store.as_deref() {
        None | Some("workspace") => false,
        Some("user") => true,
        Some(other) => {
            return Err(invalid_params(format!(
                "refine.dismissFinding: store is `workspace` or `user`, not `{other}`"
            )));
        }
    };
    let key = args.uri.as_str().to_owned();
    let (finding, service) = {
        let st = lock(&server.state);
        let finding = st
            .docs
            .get(&key)
            .and_then(|ds| ds.reviews.iter().find(|e| e.id == args.review_id))
            .and_then(|e| match &e.status {
                ReviewStatus::Done(done) => done
                    .findings
                    .iter()
                    .find(|f| f.id == args.finding_id)
                    .cloned(),
                ReviewStatus::Running { .. } => None,
            });
        (finding, st.service.clone())
    };
    let finding = finding.ok_or_else(|| {
        invalid_params(format!(
            "review {} of {key} shows no finding {}",
            args.review_id, args.finding_id
        ))
    })?;
    let service =
        service.ok_or_else(|| invalid_params("the server is not initialized yet".to_owned()))?;
    let file = args.uri.to_file_path().map(|p| p.into_owned());
    let (store, path) = service
        .dismissal_target(&display_path(&args.uri), file.as_deref(), user)
        .map_err(internal)?;
    let scope = args.scope.unwrap_or(Scope::Finding);
    let one = scope == Scope::Finding;
    let raw = &finding.raw;
    let dismissal = Dismissal {
        path: path.clone(),
        scope,
        principle: (scope != Scope::File).then(|| raw.principle.clone()),
        fingerprint: one.then(|| fingerprint(&path, &raw.principle, &raw.quote)),
        quote: one.then(|| raw.quote.clone()),
        message: one.then(|| raw.message.clone()),
    };
    let written = service
        .dismiss(&store, dismissal.clone())
        .map_err(internal)?;
    let moved = lock(&server.state).hide_dismissed(&key, |f| {
        dismissal.covers(&path, &f.raw.principle, &f.raw.quote)
    });
    let hidden: usize = moved.iter().map(|(_, ids)| ids.len()).sum();
    let scope_name = match scope {
        Scope::Finding => "finding",
        Scope::Principle => "principle",
        Scope::File => "file",
    };
    for (review, ids) in moved {
        service.record_fate(&review, Fate::Dismissed, ids, Some(scope_name));
    }
    server.republish(&key);
    Ok(json!({ "hidden": hidden, "written": written, "file": store.display().to_string() }))
}

/// `refine.undismiss` `[{"uri", "reviewId"}]`: removes the dismissals that hide findings of
/// that review from `.refine/dismissed.toml`, and shows the findings again.
fn undismiss(server: &Backend, arg: &Value) -> RpcResult<Value> {
    let target = ReviewTarget::from(arg)?;
    let id = target.review_id.ok_or_else(|| {
        invalid_params("refine.undismiss takes [{\"uri\", \"reviewId\"}]".to_owned())
    })?;
    let (findings, service) = {
        let mut st = lock(&server.state);
        (st.take_dismissed(&target.uri, &id), st.service.clone())
    };
    let Some(service) = service else {
        return Err(invalid_params(
            "the server is not initialized yet".to_owned(),
        ));
    };
    let uri = Uri::from_str(&target.uri).ok();
    let file = uri
        .as_ref()
        .and_then(|u| u.to_file_path())
        .map(|p| p.into_owned());
    let paths = service.dismissal_paths(
        &uri.as_ref().map(display_path).unwrap_or_default(),
        file.as_deref(),
    );
    let covered: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| (f.raw.principle.as_str(), f.raw.quote.as_str()))
        .collect();
    let removed = service.undismiss(&paths, &covered);
    let shown = findings.len();
    if shown > 0 {
        service.record_fate(
            &id,
            Fate::Undismissed,
            findings.iter().map(|f| f.id).collect(),
            None,
        );
    }
    lock(&server.state).show_again(&target.uri, &id, findings);
    server.republish(&target.uri);
    Ok(json!({ "shown": shown, "removed": removed.map_err(internal)? }))
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

fn applied(server: &Backend, arg: Value) -> RpcResult<Value> {
    let args: AppliedArgs = serde_json::from_value(arg).map_err(|e| {
        invalid_params(format!(
            "refine.applied takes [{{\"uri\", \"reviewId\", \"findingIds\"?}}]: {e}"
        ))
    })?;
    let service = lock(&server.state).service.clone();
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

/// Starts a review job and returns its id.
fn start_review(
    server: &Backend,
    args: ReviewArgs,
    apply: bool,
    token: Option<lsp::ProgressToken>,
) -> RpcResult<String> {
    let key = args.uri.as_str().to_owned();
    let mut st = lock(&server.state);
    let Some(ds) = st.docs.get(&key) else {
        return Err(invalid_params(format!(
            "{key} is not open: send textDocument/didOpen first"
        )));
    };
    if ds.out_of_sync {
        return Err(invalid_params(format!(
            "{key} is out of sync (an edit could not be applied): reopen the file first"
        )));
    }
    let rope = ds.doc.rope().clone();
    let (first, last) = widen_to_lines(
        &rope,
        convert::text_pos(args.range.start),
        convert::text_pos(args.range.end),
    );
    let region = line_span(&rope, first, last);
    if rope.slice(region.clone()).chars().all(char::is_whitespace) {
        return Err(invalid_params(
            "the selected lines are empty: nothing to review".to_owned(),
        ));
    }
    let language = match ds.doc.language_id() {
        "" | "plaintext" => language_for_path(&key).to_owned(),
        id => id.to_owned(),
    };
    let input = ReviewInput {
        text: rope,
        path: display_path(&args.uri),
        language,
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
    };
    let id = st.new_review_id();
    let cancel = CancellationToken::new();
    let Some(service) = st.service.clone() else {
        return Err(invalid_params(
            "the server is not initialized yet".to_owned(),
        ));
    };
    service.check_sendable(&key).map_err(invalid_params)?;
    if let Some(why) = service.command_refused() {
        tracing::warn!("{why}");
    }
    let file = args.uri.to_file_path().map(|p| p.into_owned());
    let can_create_progress = st.supports_progress;
    let mut replaced = false;
    if let Some(ds) = st.docs.get_mut(&key) {
        // A new review of the same lines replaces the old one.
        ds.reviews.retain(|e| {
            let same = e.region.start < region.end && region.start < e.region.end;
            if same {
                if let ReviewStatus::Running { cancel, .. } = &e.status {
                    cancel.cancel();
                }
                replaced = true;
            }
            !same
        });
        ds.reviews.push(ReviewEntry {
            id: id.clone(),
            region,
            status: ReviewStatus::Running {
                cancel: cancel.clone(),
                delta: 0,
                partial: Vec::new(),
                stage: "critique 1".to_owned(),
            },
        });
    }
    drop(st);
    if replaced {
        server.republish(&key);
    }
    let job = Job {
        client: server.client.clone(),
        state: server.state.clone(),
        publish: server.publish.clone(),
        uri: args.uri,
        id: id.clone(),
        input,
        service,
        file,
        cancel,
        apply,
        progress_token: token,
        can_create_progress,
    };
    tokio::spawn(job.run());
    Ok(id)
}

/// `[{"uri", "reviewId"?, "position"?}]` of the review commands: with `position`, the review
/// whose lines hold it (what "under the cursor" means).
struct ReviewTarget {
    uri: String,
    review_id: Option<String>,
    /// Zero-based line of the position.
    line: Option<usize>,
}

impl ReviewTarget {
    fn from(arg: &Value) -> RpcResult<Self> {
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

fn internal(message: String) -> RpcError {
    RpcError {
        code: tower_lsp_server::jsonrpc::ErrorCode::InternalError,
        message: message.into(),
        data: None,
    }
}

fn invalid_params(message: String) -> RpcError {
    RpcError::invalid_params(message)
}

/// A file path for the model to see, or the URI when it is not a file.
fn display_path(uri: &Uri) -> String {
    uri.to_file_path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| uri.as_str().to_owned())
}

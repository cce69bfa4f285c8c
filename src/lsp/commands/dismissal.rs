//! `refine.dismissFinding` and `refine.undismiss`: dismissals written through the service
//! (`.refine/dismissed.toml` or the user's own store), then the state hides or shows the
//! findings they cover.

use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Value, json};
use tower_lsp_server::jsonrpc::Result as RpcResult;
use tower_lsp_server::ls_types::Uri;

use super::target::ReviewTarget;
use crate::dismissed::{Dismissal, Scope, fingerprint};
use crate::engine::Finding;
use crate::learning::Fate;
use crate::lsp::convert::{display_path, file_path, internal, invalid_params};
use crate::lsp::server::Backend;

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
pub fn dismiss_finding(server: &Backend, arg: Value) -> RpcResult<Value> {
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
        let st = server.lock();
        (
            st.finding(&key, &args.review_id, args.finding_id),
            st.service(),
        )
    };
    let finding = finding.ok_or_else(|| {
        invalid_params(format!(
            "review {} of {key} shows no finding {}",
            args.review_id, args.finding_id
        ))
    })?;
    let service =
        service.ok_or_else(|| invalid_params("the server is not initialized yet".to_owned()))?;
    let file = file_path(&args.uri);
    let (store, path) = service
        .dismissal_target(&display_path(&args.uri), file.as_deref(), user)
        .map_err(internal)?;
    let scope = args.scope.unwrap_or(Scope::Finding);
    let dismissal = dismissal(path.clone(), scope, &finding);
    let written = service
        .dismiss(&store, dismissal.clone())
        .map_err(internal)?;
    let moved = server.lock().hide_dismissed(&key, |f| {
        dismissal.covers(&path, &f.raw.principle, &f.raw.quote)
    });
    let hidden: usize = moved.iter().map(|(_, ids)| ids.len()).sum();
    for (review, ids) in moved {
        service.record_fate(&review, Fate::Dismissed, ids, Some(scope_name(scope)));
    }
    server.republish(&key);
    Ok(json!({ "hidden": hidden, "written": written, "file": store.display().to_string() }))
}

/// The dismissal of `finding` at `path` with `scope`: a finding's carries its fingerprint,
/// quote and message; a principle's its principle; a file's only the path.
fn dismissal(path: String, scope: Scope, finding: &Finding) -> Dismissal {
    let one = scope == Scope::Finding;
    let raw = &finding.raw;
    Dismissal {
        fingerprint: one.then(|| fingerprint(&path, &raw.principle, &raw.quote)),
        path,
        scope,
        principle: (scope != Scope::File).then(|| raw.principle.clone()),
        quote: one.then(|| raw.quote.clone()),
        message: one.then(|| raw.message.clone()),
    }
}

/// A scope as the learning record names it.
fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Finding => "finding",
        Scope::Principle => "principle",
        Scope::File => "file",
    }
}

/// `refine.undismiss` `[{"uri", "reviewId"}]`: removes the dismissals that hide findings of
/// that review from `.refine/dismissed.toml`, and shows the findings again.
pub fn undismiss(server: &Backend, arg: &Value) -> RpcResult<Value> {
    let target = ReviewTarget::from(arg)?;
    let id = target.review_id.ok_or_else(|| {
        invalid_params("refine.undismiss takes [{\"uri\", \"reviewId\"}]".to_owned())
    })?;
    let (findings, service) = {
        let mut st = server.lock();
        (st.take_dismissed(&target.uri, &id), st.service())
    };
    let Some(service) = service else {
        return Err(invalid_params(
            "the server is not initialized yet".to_owned(),
        ));
    };
    let uri = Uri::from_str(&target.uri).ok();
    let file = uri.as_ref().and_then(file_path);
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
    server.lock().show_again(&target.uri, &id, findings);
    server.republish(&target.uri);
    Ok(json!({ "shown": shown, "removed": removed.map_err(internal)? }))
}

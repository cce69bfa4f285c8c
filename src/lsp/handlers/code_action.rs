//! `textDocument/codeAction`: apply a review's revision (whole, or per finding under the
//! cursor), dismiss a finding (three scopes), and review or refine a selection. Revision
//! actions are offered only for the document version their edits were computed against, and
//! their edits carry that version (or, with `codeAction/resolve`, are computed when picked: see
//! [`super::code_action_resolve`]).

use std::ops::Range;

use serde_json::json;
use tower_lsp_server::jsonrpc::Result as RpcResult;
use tower_lsp_server::ls_types::{
    self as lsp, CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams,
    CodeActionResponse, Uri,
};

use crate::engine::{Edit, Finding};
use crate::lsp::capabilities::{KIND_DISMISS, KIND_REFINE, KIND_REVIEW};
use crate::lsp::command::Command;
use crate::lsp::convert;
use crate::lsp::doc_state::{DocState, DoneReview, ReviewEntry, ReviewStatus};
use crate::lsp::ext::LLM_MARKER;
use crate::lsp::server::Backend;
use crate::lsp::state::State;

/// Handles `textDocument/codeAction`.
pub async fn run(
    server: &Backend,
    params: CodeActionParams,
) -> RpcResult<Option<CodeActionResponse>> {
    Ok(code_actions(&server.lock(), &params))
}

/// The actions for a range of a document.
fn code_actions(st: &State, params: &CodeActionParams) -> Option<CodeActionResponse> {
    let only = params.context.only.as_ref();
    let wants = |kind: &str| {
        only.is_none_or(|o| {
            o.iter()
                .any(|k| kind == k.as_str() || kind.starts_with(&format!("{}.", k.as_str())))
        })
    };
    let uri = &params.text_document.uri;
    let ds = st.document(uri.as_str())?;
    let req = convert::char_range(ds.doc().rope(), params.range, st.encoding());
    let mut actions = Vec::new();
    if wants("quickfix") {
        revision_actions(&Fixer { st, ds, uri }, req.clone(), &mut actions);
        regression_actions(st, ds, uri, &req, &mut actions);
    }
    if wants(KIND_DISMISS) {
        dismiss_actions(st, ds, uri, req, &mut actions);
    }
    if params.range.start != params.range.end {
        selection_actions(params, wants, &mut actions);
    }
    Some(actions)
}

/// "Refine: apply revision" for each current review whose lines the range touches, and
/// "Refine: fix: …" for each finding under the range whose lines the revision touches (when
/// the revision fixes two or more).
fn revision_actions(fix: &Fixer<'_>, req: Range<usize>, actions: &mut Vec<CodeActionOrCommand>) {
    let current: Vec<(&ReviewEntry, &DoneReview)> = fix.ds.current().collect();
    for (entry, done) in &current {
        let touches = req.start <= entry.region.end && entry.region.start <= req.end;
        if let (true, Some(edits)) = (touches, &done.revision) {
            let title = format!(
                "Refine: apply revision (fixes {} of {} findings)",
                done.fixes,
                done.findings.len()
            );
            let all: Vec<_> = done.findings.iter().collect();
            actions.push(fix.action(title, &entry.id, done, &all, edits, None));
        }
    }
    // One quick fix per finding under the cursor whose lines the revision touches.
    for (entry, done) in current.iter().filter(|(_, d)| d.per_finding.len() >= 2) {
        for (id, edits) in &done.per_finding {
            let Some(f) = done.findings.iter().find(|f| f.id == *id) else {
                continue;
            };
            if !(req.start <= f.range.end && f.range.start <= req.end) {
                continue;
            }
            let short: String = f.raw.message.chars().take(60).collect();
            let short = if short.len() < f.raw.message.len() {
                format!("{short}…")
            } else {
                short
            };
            let title = format!("Refine: fix: {short}");
            actions.push(fix.action(title, &entry.id, done, &[f], edits, Some(f.id)));
        }
    }
}

/// "Refine: add the counterexample as a regression test" for each current review that found
/// one (and checked the test fails on the original and passes on the revision): the test in the
/// file's own style, placed in the current text, with the current version.
fn regression_actions(
    st: &State,
    ds: &DocState,
    uri: &Uri,
    req: &Range<usize>,
    actions: &mut Vec<CodeActionOrCommand>,
) {
    let doc = ds.doc();
    let Some(language) = crate::probe::Language::of(doc.language_id()) else {
        return;
    };
    let text = doc.rope().to_string();
    for (entry, done) in ds.current() {
        let touches = req.start <= entry.region.end && entry.region.start <= req.end;
        let Some(call) = done.regression.as_ref().filter(|_| touches) else {
            continue;
        };
        let Some(test) = crate::probe::regression::regression_test(language, &text, call) else {
            continue;
        };
        let Ok(at) = doc.rope().try_byte_to_char(test.at) else {
            continue;
        };
        let edits = [Edit {
            range: at..at,
            new_text: test.text,
        }];
        let edit = convert::versioned_edit(
            doc.rope(),
            uri,
            doc.version(),
            &edits,
            st.encoding(),
            false,
            false,
        );
        actions.push(CodeActionOrCommand::CodeAction(CodeAction {
            title: "Refine: add the counterexample as a regression test".to_owned(),
            kind: Some(CodeActionKind::QUICKFIX),
            edit: Some(edit),
            ..CodeAction::default()
        }));
    }
}

/// "Refine: review selection" and "Refine: refine selection": the commands with the range and
/// the editor's own diagnostics on it.
fn selection_actions(
    params: &CodeActionParams,
    wants: impl Fn(&str) -> bool,
    actions: &mut Vec<CodeActionOrCommand>,
) {
    let facts: Vec<&lsp::Diagnostic> = params
        .context
        .diagnostics
        .iter()
        .filter(|d| d.source.as_deref() != Some("refine"))
        .collect();
    let uri = &params.text_document.uri;
    let arg = json!({ "uri": uri, "range": params.range, "diagnostics": facts });
    for (title, command, kind) in [
        ("Refine: review selection", Command::Review, KIND_REVIEW),
        ("Refine: refine selection", Command::Refine, KIND_REFINE),
    ] {
        if !wants(kind) {
            continue;
        }
        actions.push(CodeActionOrCommand::CodeAction(CodeAction {
            title: title.to_owned(),
            kind: Some(CodeActionKind::new(kind)),
            command: Some(lsp::Command {
                title: title.to_owned(),
                command: command.name().to_owned(),
                arguments: Some(vec![arg.clone()]),
            }),
            ..CodeAction::default()
        }));
    }
}

/// "Refine: dismiss this finding" (and for the file, and the principle here) for each shown
/// finding on the lines asked about: the command `refine.dismissFinding` with the finding's ids.
fn dismiss_actions(
    st: &State,
    ds: &DocState,
    uri: &Uri,
    req: Range<usize>,
    actions: &mut Vec<CodeActionOrCommand>,
) {
    let rope = ds.doc().rope();
    // By lines: an editor asks at the cursor, which need not be on the finding's columns.
    let line = |c: usize| crate::document::line_of(rope, c);
    let (first, last) = (line(req.start), line(req.end));
    for entry in ds.reviews() {
        let ReviewStatus::Done(done) = &entry.status else {
            continue;
        };
        for f in &done.findings {
            if !(first <= line(f.range.end) && line(f.range.start) <= last) {
                continue;
            }
            let principle = &f.raw.principle;
            for (title, scope) in [
                ("Refine: dismiss this finding".to_owned(), "finding"),
                (
                    format!("Refine: dismiss this principle here ({principle})"),
                    "principle",
                ),
                (
                    "Refine: dismiss every finding for this file".to_owned(),
                    "file",
                ),
            ] {
                let arg =
                    json!({"uri": uri, "reviewId": entry.id, "findingId": f.id, "scope": scope});
                actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                    title: title.clone(),
                    kind: Some(CodeActionKind::new(KIND_DISMISS)),
                    diagnostics: Some(vec![convert::diagnostic(rope, f, &entry.id, st.encoding())]),
                    command: Some(lsp::Command {
                        title,
                        command: Command::DismissFinding.name().to_owned(),
                        arguments: Some(vec![arg]),
                    }),
                    ..CodeAction::default()
                }));
            }
        }
    }
}

/// Builds revision quick fixes for one document.
struct Fixer<'a> {
    st: &'a State,
    ds: &'a DocState,
    uri: &'a Uri,
}

impl Fixer<'_> {
    /// A quick fix applying `edits` (computed against `done.version`) for `findings`: the
    /// whole revision, or (`only`) one finding's edits. Its command `refine.applied` tells the
    /// server the edit went in (the learning record's fate).
    fn action(
        &self,
        title: String,
        review_id: &str,
        done: &DoneReview,
        findings: &[&Finding],
        edits: &[Edit],
        only: Option<usize>,
    ) -> CodeActionOrCommand {
        let preferred = only.is_none();
        let applied = json!({
            "uri": self.uri,
            "reviewId": review_id,
            "findingIds": only.map(|id| vec![id]),
        });
        let rope = self.ds.doc().rope();
        let diagnostics = findings
            .iter()
            .map(|f| convert::diagnostic(rope, f, review_id, self.st.encoding()))
            .collect();
        // With `codeAction/resolve`, the edit is computed when the user picks the action.
        let lazy = self.st.caps().resolve_edit;
        let edit = (!lazy)
            .then(|| convert::workspace_edit(self.uri, &self.st.revision_edit(rope, done, edits)));
        CodeActionOrCommand::CodeAction(CodeAction {
            title,
            kind: Some(CodeActionKind::QUICKFIX),
            diagnostics: Some(diagnostics),
            edit,
            // Made by a model: `tags: [LLMGenerated]` on the wire (see `transport`).
            data: Some(if lazy {
                json!({
                    "refine": "revision", "uri": self.uri, "reviewId": review_id,
                    "findingId": only, "version": done.version, LLM_MARKER: true,
                })
            } else {
                json!({ LLM_MARKER: true })
            }),
            command: Some(lsp::Command {
                title: "Refine: revision applied".to_owned(),
                command: Command::Applied.name().to_owned(),
                arguments: Some(vec![applied]),
            }),
            is_preferred: preferred.then_some(true),
            ..CodeAction::default()
        })
    }
}

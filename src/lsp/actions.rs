//! Code actions: apply a review's revision (whole, or per finding under the cursor), and review
//! or refine a selection. Revision actions are offered only for the document version their
//! edits were computed against, and their edits carry that version.

use serde_json::json;
use tower_lsp_server::ls_types::{
    self as lsp, CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams,
    CodeActionResponse, Command, Uri,
};

use super::convert;
use super::state::{DocState, DoneReview, ReviewStatus, State};
use crate::engine::Edit;

/// Code action kind of "Refine: review selection".
pub const KIND_REVIEW: &str = "refactor.refine.review";
/// Code action kind of "Refine: refine selection".
pub const KIND_REFINE: &str = "refactor.rewrite.refine";
/// Code action kind of "Refine: dismiss this finding" and its wider forms.
pub const KIND_DISMISS: &str = "quickfix.refine.dismiss";

/// The actions for a range of a document.
pub fn code_actions(st: &State, params: &CodeActionParams) -> Option<CodeActionResponse> {
    let only = params.context.only.as_ref();
    let wants = |kind: &str| {
        only.is_none_or(|o| {
            o.iter()
                .any(|k| kind == k.as_str() || kind.starts_with(&format!("{}.", k.as_str())))
        })
    };
    let uri = &params.text_document.uri;
    let ds = st.docs.get(uri.as_str())?;
    let req = convert::char_range(ds.doc.rope(), params.range, st.encoding);
    let mut actions = Vec::new();
    let current = ds.reviews.iter().filter_map(|e| match &e.status {
        ReviewStatus::Done(done) if done.version == ds.doc.version() => Some((e, done)),
        _ => None,
    });
    if wants("quickfix") {
        let fix = Fixer { st, ds, uri };
        let current: Vec<_> = current.collect();
        for (entry, done) in &current {
            let touches = req.start <= entry.region.end && entry.region.start <= req.end;
            if let (true, Some(edits)) = (touches, &done.revision) {
                let title = format!(
                    "Refine: apply revision (fixes {} of {} findings)",
                    done.fixes,
                    done.findings.len()
                );
                let all: Vec<_> = done.findings.iter().collect();
                actions.push(fix.action(title, &entry.id, done, &all, edits, true));
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
                actions.push(fix.action(title, &entry.id, done, &[f], edits, false));
            }
        }
    }
    if wants(KIND_DISMISS) {
        dismiss_actions(st, ds, uri, req, &mut actions);
    }
    if params.range.start != params.range.end {
        let facts: Vec<&lsp::Diagnostic> = params
            .context
            .diagnostics
            .iter()
            .filter(|d| d.source.as_deref() != Some("refine"))
            .collect();
        let arg = json!({ "uri": uri, "range": params.range, "diagnostics": facts });
        for (title, command, kind) in [
            ("Refine: review selection", "refine.review", KIND_REVIEW),
            ("Refine: refine selection", "refine.refine", KIND_REFINE),
        ] {
            if !wants(kind) {
                continue;
            }
            actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                title: title.to_owned(),
                kind: Some(CodeActionKind::new(kind)),
                command: Some(Command {
                    title: title.to_owned(),
                    command: command.to_owned(),
                    arguments: Some(vec![arg.clone()]),
                }),
                ..CodeAction::default()
            }));
        }
    }
    Some(actions)
}

/// "Refine: dismiss this finding" (and for the file, and the principle here) for each shown
/// finding on the lines asked about: the command `refine.dismissFinding` with the finding's ids.
fn dismiss_actions(
    st: &State,
    ds: &DocState,
    uri: &Uri,
    req: std::ops::Range<usize>,
    actions: &mut Vec<CodeActionOrCommand>,
) {
    let rope = ds.doc.rope();
    // By lines: an editor asks at the cursor, which need not be on the finding's columns.
    let line = |c: usize| rope.char_to_line(c.min(rope.len_chars()));
    let (first, last) = (line(req.start), line(req.end));
    for entry in &ds.reviews {
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
                    diagnostics: Some(vec![convert::diagnostic(rope, f, &entry.id, st.encoding)]),
                    command: Some(Command {
                        title,
                        command: "refine.dismissFinding".to_owned(),
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
    /// A quick fix applying `edits` (computed against `done.version`) for `findings`.
    fn action(
        &self,
        title: String,
        review_id: &str,
        done: &DoneReview,
        findings: &[&crate::engine::Finding],
        edits: &[Edit],
        preferred: bool,
    ) -> CodeActionOrCommand {
        let rope = self.ds.doc.rope();
        let diagnostics = findings
            .iter()
            .map(|f| convert::diagnostic(rope, f, review_id, self.st.encoding))
            .collect();
        CodeActionOrCommand::CodeAction(CodeAction {
            title,
            kind: Some(CodeActionKind::QUICKFIX),
            diagnostics: Some(diagnostics),
            edit: Some(convert::versioned_edit(
                rope,
                self.uri,
                done.version,
                edits,
                self.st.encoding,
                self.st.caps.change_annotations,
            )),
            is_preferred: preferred.then_some(true),
            ..CodeAction::default()
        })
    }
}

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
use super::transport::LLM_MARKER;
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

/// `codeAction/resolve`: a revision action's edit, for the version it was offered for. An
/// action that is not ours comes back as it was; a stale one is refused with a sentence.
pub fn resolve(st: &State, mut action: CodeAction) -> Result<CodeAction, String> {
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
    let ds = st.docs.get(&lazy.uri).ok_or_else(stale)?;
    if ds.doc.version() != lazy.version || ds.out_of_sync {
        return Err(stale());
    }
    let done = ds
        .reviews
        .iter()
        .find(|e| e.id == lazy.review_id)
        .and_then(|e| match &e.status {
            ReviewStatus::Done(d) if d.version == lazy.version => Some(d),
            _ => None,
        })
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
    action.edit = Some(st.revision_edit(ds.doc.rope(), &uri, done, edits));
    Ok(action)
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
        findings: &[&crate::engine::Finding],
        edits: &[Edit],
        only: Option<usize>,
    ) -> CodeActionOrCommand {
        let preferred = only.is_none();
        let applied = json!({
            "uri": self.uri,
            "reviewId": review_id,
            "findingIds": only.map(|id| vec![id]),
        });
        let rope = self.ds.doc.rope();
        let diagnostics = findings
            .iter()
            .map(|f| convert::diagnostic(rope, f, review_id, self.st.encoding))
            .collect();
        // With `codeAction/resolve`, the edit is computed when the user picks the action.
        let lazy = self.st.caps.resolve_edit;
        CodeActionOrCommand::CodeAction(CodeAction {
            title,
            kind: Some(CodeActionKind::QUICKFIX),
            diagnostics: Some(diagnostics),
            edit: (!lazy).then(|| self.st.revision_edit(rope, self.uri, done, edits)),
            // Made by a model: `tags: [LLMGenerated]` on the wire (see `transport`).
            data: Some(if lazy {
                json!({
                    "refine": "revision", "uri": self.uri, "reviewId": review_id,
                    "findingId": only, "version": done.version, LLM_MARKER: true,
                })
            } else {
                json!({ LLM_MARKER: true })
            }),
            command: Some(Command {
                title: "Refine: revision applied".to_owned(),
                command: "refine.applied".to_owned(),
                arguments: Some(vec![applied]),
            }),
            is_preferred: preferred.then_some(true),
            ..CodeAction::default()
        })
    }
}

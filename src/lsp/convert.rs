//! Every conversion between LSP types and refine-ls's own (positions, ranges, findings,
//! edits). Nothing outside `lsp/` touches a protocol type, so a framework upgrade changes this
//! module and the handlers only.

use std::ops::Range;
use std::path::PathBuf;

use ropey::Rope;
use serde_json::json;
use tower_lsp_server::jsonrpc::{Error as RpcError, ErrorCode};
use tower_lsp_server::ls_types::{
    self as lsp, Diagnostic, DiagnosticSeverity, NumberOrString, OneOf,
    OptionalVersionedTextDocumentIdentifier, Position, PositionEncodingKind, ProgressToken,
    TextDocumentContentChangeEvent, TextDocumentEdit, TextEdit, Uri, WorkspaceEdit,
};

use super::doc_state::{RevisionEdit, TextChange};
use crate::document::{PositionEncoding, TextPos, from_char, to_char};
use crate::engine::{Edit, Finding, Severity};

/// An LSP position as the document store's.
pub fn text_pos(p: Position) -> TextPos {
    TextPos::new(p.line, p.character)
}

/// A content change of `didChange` as ours.
pub fn text_change(c: TextDocumentContentChangeEvent) -> TextChange {
    TextChange {
        range: c.range.map(|r| (text_pos(r.start), text_pos(r.end))),
        text: c.text,
    }
}

/// A char offset as an LSP position.
pub fn position(rope: &Rope, c: usize, enc: PositionEncoding) -> Position {
    let p = from_char(rope, c, enc);
    Position::new(p.line, p.col)
}

/// A char range as an LSP range.
pub fn range(rope: &Rope, r: &Range<usize>, enc: PositionEncoding) -> lsp::Range {
    lsp::Range::new(position(rope, r.start, enc), position(rope, r.end, enc))
}

/// An LSP range as char offsets (clamped; an inverted range is put in order).
pub fn char_range(rope: &Rope, r: lsp::Range, enc: PositionEncoding) -> Range<usize> {
    let a = to_char(rope, text_pos(r.start), enc);
    let b = to_char(rope, text_pos(r.end), enc);
    a.min(b)..a.max(b)
}

/// The LSP name of an encoding.
pub fn encoding_kind(enc: PositionEncoding) -> PositionEncodingKind {
    match enc {
        PositionEncoding::Utf8 => PositionEncodingKind::UTF8,
        PositionEncoding::Utf16 => PositionEncodingKind::UTF16,
        PositionEncoding::Utf32 => PositionEncodingKind::UTF32,
    }
}

/// Picks the encoding: a forced one, else the first the client lists that we know, else utf-16.
pub fn negotiate_encoding(
    forced: Option<&str>,
    offered: Option<&[PositionEncodingKind]>,
) -> PositionEncoding {
    let offered: Vec<PositionEncoding> = offered
        .unwrap_or_default()
        .iter()
        .filter_map(|k| PositionEncoding::from_lsp_name(k.as_str()))
        .collect();
    // `initializationOptions.positionEncoding` picks among what the client offered (LSP 3.17:
    // utf-16 is always supported); an encoding the client did not offer is never chosen.
    if let Some(enc) = forced.and_then(PositionEncoding::from_lsp_name) {
        if enc == PositionEncoding::Utf16 || offered.contains(&enc) {
            return enc;
        }
        tracing::warn!(
            "initializationOptions.positionEncoding {enc:?} was not offered by the client; ignored"
        );
    }
    offered.first().copied().unwrap_or_default()
}

/// A finding's severity as an LSP severity.
pub fn severity(s: Severity) -> DiagnosticSeverity {
    match s {
        Severity::Error => DiagnosticSeverity::ERROR,
        Severity::Warning => DiagnosticSeverity::WARNING,
        Severity::Info => DiagnosticSeverity::INFORMATION,
        Severity::Hint => DiagnosticSeverity::HINT,
    }
}

/// A finding as a diagnostic: `source: "refine"`, `code` the principle, `data` its ids.
pub fn diagnostic(rope: &Rope, f: &Finding, review_id: &str, enc: PositionEncoding) -> Diagnostic {
    let mut message = f.raw.message.clone();
    if let Some(e) = &f.evidence {
        message.push_str("\nEvidence: ");
        message.push_str(&e.sentence());
    }
    if let Some(s) = &f.raw.suggestion {
        message.push_str("\nSuggestion: ");
        message.push_str(s);
    }
    Diagnostic {
        range: range(rope, &f.range, enc),
        severity: Some(severity(f.raw.severity)),
        code: Some(NumberOrString::String(f.raw.principle.clone())),
        source: Some("refine".to_owned()),
        message,
        data: Some(json!({"reviewId": review_id, "findingId": f.id})),
        ..Diagnostic::default()
    }
}

/// An editor diagnostic as a fact for the critic.
pub fn fact(d: &Diagnostic) -> crate::engine::Fact {
    let severity = match d.severity {
        Some(DiagnosticSeverity::ERROR) => "error",
        Some(DiagnosticSeverity::WARNING) => "warning",
        Some(DiagnosticSeverity::INFORMATION) => "info",
        _ => "hint",
    };
    let source = d
        .source
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    crate::engine::Fact {
        line: d.range.start.line as usize,
        text: format!("{severity}: {}{source}", d.message.replace('\n', " ")),
    }
}

/// A revision's edits as the workspace edit for `uri` (see [`versioned_edit`]).
pub fn workspace_edit(uri: &Uri, e: &RevisionEdit<'_>) -> WorkspaceEdit {
    versioned_edit(
        e.rope, uri, e.version, e.edits, e.encoding, e.annotate, e.confirm,
    )
}

/// Edits as a workspace edit that carries the document version they were computed against.
pub fn versioned_edit(
    rope: &Rope,
    uri: &Uri,
    version: i32,
    edits: &[Edit],
    enc: PositionEncoding,
    annotate: bool,
    confirm: bool,
) -> WorkspaceEdit {
    const ANNOTATION: &str = "refine-revision";
    let edits = edits
        .iter()
        .map(|e| {
            let edit = TextEdit::new(range(rope, &e.range, enc), e.new_text.clone());
            if annotate {
                OneOf::Right(lsp::AnnotatedTextEdit {
                    text_edit: edit,
                    annotation_id: ANNOTATION.to_owned(),
                })
            } else {
                OneOf::Left(edit)
            }
        })
        .collect();
    // With annotation support VS Code shows its refactor preview, each edit to accept or not.
    let change_annotations = annotate.then(|| {
        std::collections::HashMap::from([(
            ANNOTATION.to_owned(),
            lsp::ChangeAnnotation {
                label: "Refine revision".to_owned(),
                needs_confirmation: Some(confirm),
                description: Some(
                    "A revision proposed by refine-ls: review each change".to_owned(),
                ),
            },
        )])
    });
    WorkspaceEdit {
        change_annotations,
        document_changes: Some(lsp::DocumentChanges::Edits(vec![TextDocumentEdit {
            text_document: OptionalVersionedTextDocumentIdentifier {
                uri: uri.clone(),
                version: Some(version),
            },
            edits,
        }])),
        ..WorkspaceEdit::default()
    }
}

/// A progress token as the key of the running reviews by token (as JSON text).
pub fn progress_key(token: &ProgressToken) -> String {
    serde_json::to_string(token).unwrap_or_default()
}

/// The file a URI names, when it names one.
pub fn file_path(uri: &Uri) -> Option<PathBuf> {
    uri.to_file_path().map(|p| p.into_owned())
}

/// A file path for the model to see, or the URI when it is not a file.
pub fn display_path(uri: &Uri) -> String {
    uri.to_file_path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| uri.as_str().to_owned())
}

/// A sentence as the error of a request whose params cannot be served (`-32602`).
pub fn invalid_params(message: impl std::fmt::Display) -> RpcError {
    RpcError::invalid_params(message.to_string())
}

/// A sentence as the error of a request that failed on our side (`-32603`).
pub fn internal(message: impl std::fmt::Display) -> RpcError {
    RpcError {
        code: ErrorCode::InternalError,
        message: message.to_string().into(),
        data: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_forced_then_client_order_then_utf16() {
        let offered = [PositionEncodingKind::UTF8, PositionEncodingKind::UTF16];
        // Forced, but only among what the client offered (utf-16 always is).
        assert_eq!(
            negotiate_encoding(Some("utf-32"), Some(&offered)),
            PositionEncoding::Utf8
        );
        assert_eq!(
            negotiate_encoding(Some("utf-16"), Some(&offered)),
            PositionEncoding::Utf16
        );
        assert_eq!(
            negotiate_encoding(None, Some(&offered)),
            PositionEncoding::Utf8
        );
        assert_eq!(
            negotiate_encoding(Some("latin-1"), None),
            PositionEncoding::Utf16
        );
        let odd = [
            PositionEncodingKind::new("utf-7"),
            PositionEncodingKind::UTF32,
        ];
        assert_eq!(
            negotiate_encoding(None, Some(&odd)),
            PositionEncoding::Utf32
        );
    }
}

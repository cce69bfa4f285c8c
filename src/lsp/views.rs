//! What a review looks like in an editor, built from the state through standard LSP methods
//! only (so Helix, Zed and Emacs get it too): diagnostics (push and pull), inlay hints at the
//! end of lines, hover with the proposed change as a diff, code lenses above reviewed ranges,
//! and the revision as a unified diff. Pure functions of a document's state.

use std::ops::Range;

use ropey::Rope;
use serde_json::json;
use tower_lsp_server::ls_types::{
    self as lsp, CodeLens, Diagnostic, Hover, HoverContents, InlayHint, InlayHintLabel,
    InlayHintTooltip, MarkupContent, MarkupKind, Uri,
};

use super::command::Command;
use super::convert;
use super::doc_state::{DocState, DoneReview, ReviewEntry, ReviewStatus};
use crate::config::HintsConfig;
use crate::document::{PositionEncoding, line_content_end};
use crate::engine::{Edit, Finding, Severity, edits};

/// Every shown finding of a document: finished reviews' findings and running reviews'
/// streamed-in ones, with the review id they belong to.
pub fn findings(ds: &DocState) -> impl Iterator<Item = (&ReviewEntry, &Finding)> {
    ds.reviews().iter().flat_map(|e| {
        let list = match &e.status {
            ReviewStatus::Done(d) => &d.findings,
            ReviewStatus::Running { partial, .. } => partial,
        };
        list.iter().map(move |f| (e, f))
    })
}

/// The diagnostics of a document, the same for push and pull.
pub fn diagnostics(ds: &DocState, enc: PositionEncoding) -> Vec<Diagnostic> {
    let rope = ds.doc().rope();
    findings(ds)
        .map(|(e, f)| convert::diagnostic(rope, f, &e.id, enc))
        .collect()
}

fn icon(s: Severity) -> &'static str {
    match s {
        Severity::Error => "✖",
        Severity::Warning => "⚠",
        Severity::Info => "ℹ",
        Severity::Hint => "·",
    }
}

fn truncate(s: &str, width: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= width {
        return one_line;
    }
    let mut t: String = one_line.chars().take(width.saturating_sub(1)).collect();
    t.push('…');
    t
}

fn markdown(value: String) -> MarkupContent {
    MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    }
}

/// The full critique of a finding, as Markdown.
fn describe(f: &Finding) -> String {
    let mut s = format!(
        "**refine** · `{}` · {} · confidence {:.2}\n\n{}",
        f.raw.principle,
        f.raw.severity.as_str(),
        f.raw.confidence,
        f.raw.message
    );
    if let Some(e) = &f.evidence {
        s.push_str(&format!("\n\n*Evidence:* {}", e.sentence()));
    }
    if let Some(sug) = &f.raw.suggestion {
        s.push_str(&format!("\n\n*Suggestion:* {sug}"));
    }
    s
}

/// Inlay hints at the end of each line in `range` that carries a shown finding.
pub fn inlay_hints(
    ds: &DocState,
    range: Range<usize>,
    cfg: &HintsConfig,
    enc: PositionEncoding,
) -> Vec<InlayHint> {
    let min = match cfg.inlay.as_str() {
        "off" => return Vec::new(),
        "all" => Severity::Hint,
        _ => Severity::Warning,
    };
    let rope = ds.doc().rope();
    let mut by_line: std::collections::BTreeMap<usize, Vec<&Finding>> = Default::default();
    for (_, f) in findings(ds) {
        if f.raw.severity > min || f.range.start > range.end || f.range.end < range.start {
            continue;
        }
        by_line
            .entry(crate::document::line_of(rope, f.range.start))
            .or_default()
            .push(f);
    }
    by_line
        .into_iter()
        .map(|(line, fs)| {
            let label = fs
                .iter()
                .map(|f| {
                    format!(
                        "{} {}: {}",
                        icon(f.raw.severity),
                        f.raw.principle,
                        f.raw.message
                    )
                })
                .collect::<Vec<_>>()
                .join(" · ");
            let tooltip = fs
                .iter()
                .map(|f| describe(f))
                .collect::<Vec<_>>()
                .join("\n\n---\n\n");
            InlayHint {
                position: convert::position(rope, line_content_end(rope, line), enc),
                label: InlayHintLabel::String(truncate(&label, cfg.max_width)),
                kind: None,
                text_edits: None,
                tooltip: Some(InlayHintTooltip::MarkupContent(markdown(tooltip))),
                padding_left: Some(true),
                padding_right: None,
                data: None,
            }
        })
        .collect()
}

/// A unified diff of a region with some edits applied.
fn region_diff(
    rope: &Rope,
    region: &Range<usize>,
    edits: &[Edit],
    context: usize,
) -> (String, usize, usize) {
    let old = rope.slice(region.clone()).to_string();
    let new = edits::apply(&old, edits, region.start);
    let first_line = crate::document::line_of(rope, region.start) + 1;
    let (text, added, removed) = edits::unified_diff(&old, &new, context, first_line, None);
    let text = text.lines().collect::<Vec<_>>().join("\n");
    (text, added, removed)
}

/// Hover over a finding: the critique and the change the revision makes for it.
pub fn hover(ds: &DocState, at: usize, enc: PositionEncoding) -> Option<Hover> {
    let rope = ds.doc().rope();
    let (entry, f) = findings(ds).find(|(_, f)| f.range.start <= at && at <= f.range.end)?;
    let mut value = describe(f);
    if let ReviewStatus::Done(done) = &entry.status {
        match (
            done.per_finding.iter().find(|(id, _)| *id == f.id),
            &done.revision,
        ) {
            (Some((_, mine)), Some(all)) if done.version == ds.doc().version() => {
                let (diff, _, _) = region_diff(rope, &entry.region, mine, 1);
                let (_, added, removed) = region_diff(rope, &entry.region, all, 0);
                value.push_str(&format!(
                    "\n\n**Proposed change for this finding:**\n\n```diff\n{diff}\n```\n\nThe whole revision: +{added} −{removed} lines, fixing {} of {} findings.",
                    done.fixes,
                    done.findings.len()
                ));
            }
            (None, Some(_)) => {
                value.push_str("\n\nNo change in the revision touches this finding.")
            }
            _ => value.push_str("\n\nNo revision is offered."),
        }
    }
    Some(Hover {
        contents: HoverContents::Markup(markdown(value)),
        range: Some(convert::range(rope, &f.range, enc)),
    })
}

/// Code lenses above each reviewed range.
pub fn code_lenses(ds: &DocState, uri: &Uri, enc: PositionEncoding) -> Vec<CodeLens> {
    let rope = ds.doc().rope();
    let mut out = Vec::new();
    for e in ds.reviews() {
        let line_start = crate::document::line_of(rope, e.region.start);
        let at = convert::range(
            rope,
            &(rope.line_to_char(line_start)..rope.line_to_char(line_start)),
            enc,
        );
        let arg = json!([{"uri": uri, "reviewId": e.id}]);
        let lens = |title: String, command: Command| CodeLens {
            range: at,
            command: Some(lsp::Command {
                title,
                command: command.name().to_owned(),
                arguments: arg.as_array().cloned(),
            }),
            data: None,
        };
        match &e.status {
            ReviewStatus::Running { stage, .. } => {
                out.push(lens(
                    format!("refine: reviewing ({stage})…"),
                    Command::Cancel,
                ));
            }
            ReviewStatus::Done(done) => {
                let n = done.findings.len();
                let label = match n {
                    0 => "refine: no issues".to_owned(),
                    1 => "refine: 1 finding".to_owned(),
                    n => format!("refine: {n} findings"),
                };
                out.push(lens(label, Command::ShowRevision));
                if done.revision.is_some() && done.version == ds.doc().version() {
                    out.push(lens("apply revision".to_owned(), Command::ApplyRevision));
                }
                out.push(lens("re-review".to_owned(), Command::ReReview));
                out.push(lens("dismiss".to_owned(), Command::Dismiss));
                if !done.dismissed.is_empty() {
                    out.push(lens(
                        format!("{} dismissed here (undo)", done.dismissed.len()),
                        Command::Undismiss,
                    ));
                }
            }
        }
    }
    out
}

/// The revision of a finished review as a unified diff with file line numbers.
pub fn revision_diff(
    rope: &Rope,
    entry: &ReviewEntry,
    done: &DoneReview,
    path: &str,
) -> Option<String> {
    let edits = done.revision.as_ref()?;
    let (diff, _, _) = region_diff(rope, &entry.region, edits, 3);
    Some(format!("--- a/{path}\n+++ b/{path}\n{diff}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_truncated_to_the_width() {
        assert_eq!(truncate("a  b\nc", 10), "a b c");
        assert_eq!(truncate("abcdefghijk", 5), "abcd…");
    }
}

//! The server's state behind one mutex: open documents, the reviews on each (running or
//! done), the configuration and the provider built from it. Every method is synchronous, so a
//! handler locks, mutates and unlocks without ever awaiting.
//!
//! Reviews are anchored by char offsets. An edit inside a review's lines drops it (cancelling
//! it if it runs); an edit before it moves it; so findings and revisions always describe the
//! text that is there now, and a revision's edits are only offered for the version they fit.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use ropey::Rope;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Layers, Source};
use crate::document::{ChangeSpan, Document, PositionEncoding};
use crate::engine::{Edit, Finding, ReviewOutcome};
use crate::prompts::Prompts;
use crate::service::ReviewService;

/// Client capabilities the server acts on.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientCaps {
    /// `workspace/inlayHint/refresh`.
    pub inlay_refresh: bool,
    /// `workspace/codeLens/refresh`.
    pub lens_refresh: bool,
    /// `workspace/diagnostic/refresh`.
    pub diagnostic_refresh: bool,
    /// Change annotations in workspace edits.
    pub change_annotations: bool,
    /// The client resolves a code action's `edit` (`codeAction/resolve`): revision edits are
    /// computed then, not with the list.
    pub resolve_edit: bool,
    /// Push diagnostics (`textDocument/publishDiagnostics`).
    pub push: bool,
    /// Serve pull diagnostics (`textDocument/diagnostic`).
    pub pull: bool,
    /// The client answers `workspace/configuration` (section `refine`).
    pub configuration: bool,
}

/// A finished review's results, in char offsets of the document's current version.
#[derive(Debug, Clone)]
pub struct DoneReview {
    /// Shown findings.
    pub findings: Vec<Finding>,
    /// Findings the workspace dismissed (`.refine/dismissed.toml`): not shown, kept so that
    /// "undismiss" brings them back at once.
    pub dismissed: Vec<Finding>,
    /// The best revision's edits, if one is offered.
    pub revision: Option<Vec<Edit>>,
    /// How many findings the revision touches.
    pub fixes: usize,
    /// Each touched finding's id and only the edits on its lines.
    pub per_finding: Vec<(usize, Vec<Edit>)>,
    /// The document version the offsets fit.
    pub version: i32,
    /// The user looked at the revision (`refine.showRevision`): its edits no longer need
    /// confirming change by change.
    pub previewed: bool,
}

/// Where a review is.
#[derive(Debug)]
pub enum ReviewStatus {
    /// The job is running; `delta` is how far its region moved since its snapshot.
    Running {
        /// Cancels the job.
        cancel: CancellationToken,
        /// Accumulated shift of the region since the snapshot.
        delta: isize,
        /// Findings streamed in so far (current offsets), shown until the final list.
        partial: Vec<Finding>,
        /// The step it is at (`critique 1/3`).
        stage: String,
    },
    /// Results are in.
    Done(DoneReview),
}

/// One review of a range of lines.
#[derive(Debug)]
pub struct ReviewEntry {
    /// `review-N`.
    pub id: String,
    /// The reviewed lines as chars, in the current text.
    pub region: Range<usize>,
    /// Running or done.
    pub status: ReviewStatus,
}

/// An open document and its reviews.
#[derive(Debug)]
pub struct DocState {
    /// The text.
    pub doc: Document,
    /// Reviews, oldest first.
    pub reviews: Vec<ReviewEntry>,
    /// A change could not be applied: the text may differ from the client's. Until a
    /// `didOpen` or a full-text change resyncs it, the document gets no reviews, diagnostics
    /// or edits.
    pub out_of_sync: bool,
}

/// Everything the handlers share.
pub struct State {
    /// Negotiated at `initialize`.
    pub encoding: PositionEncoding,
    /// Open documents by URI.
    pub docs: HashMap<String, DocState>,
    /// Configuration sources.
    pub layers: Layers,
    /// The review service built from them (from `initialize` on).
    pub service: Option<Arc<ReviewService>>,
    /// Prompt templates (read from the workspace at `initialize`).
    pub prompts: Arc<Prompts>,
    /// Workspace root.
    pub root: Option<PathBuf>,
    /// The client accepts `window/workDoneProgress/create`.
    pub supports_progress: bool,
    /// What the client can do.
    pub caps: ClientCaps,
    /// Running reviews by their `$/progress` token (as JSON text), for
    /// `window/workDoneProgress/cancel`.
    pub progress_reviews: HashMap<String, String>,
    next_review: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            encoding: PositionEncoding::Utf16,
            docs: HashMap::new(),
            layers: Layers::default(),
            service: None,
            prompts: Arc::new(Prompts::load_from(&[])),
            root: None,
            supports_progress: false,
            caps: ClientCaps::default(),
            progress_reviews: HashMap::new(),
            next_review: 0,
        }
    }
}

/// Locks the state. A panic while it was held cannot have left it half-changed (every
/// mutation is a single step), so a poisoned lock is taken over rather than spread.
pub fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What an edit did to the reviews (so the handler knows whom to tell).
#[derive(Debug, Default)]
pub struct ChangeEffects {
    /// Reviews whose results were dropped or whose job was cancelled.
    pub dropped: Vec<String>,
    /// Some review's results moved or disappeared: diagnostics must be published again.
    pub republish: bool,
    /// Finished reviews dropped while they offered a revision (the user edited the lines
    /// instead of applying it).
    pub superseded: Vec<String>,
}

impl State {
    /// The workspace edit applying `edits` (a review's revision, or one finding's part of it,
    /// computed against `done.version`) to `uri`, in this client's encoding: annotated when it
    /// supports change annotations, needing confirmation until the revision was previewed.
    pub fn revision_edit(
        &self,
        rope: &Rope,
        uri: &tower_lsp_server::ls_types::Uri,
        done: &DoneReview,
        edits: &[Edit],
    ) -> tower_lsp_server::ls_types::WorkspaceEdit {
        super::convert::versioned_edit(
            rope,
            uri,
            done.version,
            edits,
            self.encoding,
            self.caps.change_annotations,
            !done.previewed,
        )
    }

    /// Merges the editor's layer (when given) and rebuilds the review service from the layers.
    pub fn reload_config(&mut self, editor: Option<serde_json::Value>) {
        if let Some(v) = editor {
            self.layers.set(Source::Editor, v);
        }
        let previous_cache = self.service.as_ref().and_then(|s| s.cache().cloned());
        self.service = Some(Arc::new(ReviewService::new(
            self.layers.resolve(),
            self.root.clone(),
            self.prompts.clone(),
            previous_cache,
        )));
    }

    /// The configuration in force (the defaults before `initialize`).
    pub fn config(&self) -> &Config {
        static DEFAULT: LazyLock<Config> = LazyLock::new(Config::default);
        self.service.as_ref().map_or(&DEFAULT, |s| s.config())
    }

    /// Warnings about the configuration in force.
    pub fn config_warnings(&self) -> Vec<String> {
        self.service
            .as_ref()
            .map(|s| s.resolved().warnings.clone())
            .unwrap_or_default()
    }

    /// A review of a document, by id.
    fn entry_mut(&mut self, uri: &str, id: &str) -> Option<&mut ReviewEntry> {
        self.docs
            .get_mut(uri)?
            .reviews
            .iter_mut()
            .find(|e| e.id == id)
    }

    /// Records a finding streamed in for a running review; returns whether it was kept.
    pub fn add_partial(&mut self, uri: &str, id: &str, mut finding: Finding) -> bool {
        let Some(entry) = self.entry_mut(uri, id) else {
            return false;
        };
        let ReviewStatus::Running { delta, partial, .. } = &mut entry.status else {
            return false;
        };
        shift(&mut finding.range, *delta);
        partial.push(finding);
        true
    }

    /// A fresh review id.
    pub fn new_review_id(&mut self) -> String {
        self.next_review += 1;
        format!("review-{}", self.next_review)
    }

    /// Applies one content change to a document and moves or drops its reviews.
    pub fn on_change(&mut self, uri: &str, span: ChangeSpan, effects: &mut ChangeEffects) {
        let Some(ds) = self.docs.get_mut(uri) else {
            return;
        };
        let after = ds.doc.rope().clone();
        ds.reviews.retain_mut(|entry| {
            if overlaps(&span, &entry.region, &after) {
                match &entry.status {
                    ReviewStatus::Running { cancel, .. } => cancel.cancel(),
                    ReviewStatus::Done(done) if done.revision.is_some() => {
                        effects.superseded.push(entry.id.clone());
                    }
                    ReviewStatus::Done(_) => {}
                }
                effects.dropped.push(entry.id.clone());
                effects.republish = true;
                return false;
            }
            if span.old_end <= entry.region.start {
                let d = span.delta();
                shift(&mut entry.region, d);
                match &mut entry.status {
                    ReviewStatus::Running { delta, partial, .. } => {
                        *delta += d;
                        for f in partial {
                            shift(&mut f.range, d);
                        }
                    }
                    ReviewStatus::Done(done) => {
                        for f in done.findings.iter_mut().chain(&mut done.dismissed) {
                            shift(&mut f.range, d);
                        }
                        for e in done.revision.iter_mut().flatten() {
                            shift(&mut e.range, d);
                        }
                        for (_, edits) in &mut done.per_finding {
                            for e in edits {
                                shift(&mut e.range, d);
                            }
                        }
                        effects.republish = true;
                    }
                }
            }
            true
        });
    }

    /// Stamps finished reviews with the document's new version once a batch of changes is in:
    /// their offsets were moved to fit it.
    pub fn stamp_version(&mut self, uri: &str) {
        if let Some(ds) = self.docs.get_mut(uri) {
            let v = ds.doc.version();
            for e in &mut ds.reviews {
                if let ReviewStatus::Done(done) = &mut e.status {
                    done.version = v;
                }
            }
        }
    }

    /// Stores a job's outcome if its review still exists; returns whether it did.
    pub fn finish_review(&mut self, uri: &str, id: &str, outcome: &ReviewOutcome) -> bool {
        let Some(ds) = self.docs.get_mut(uri) else {
            return false;
        };
        let version = ds.doc.version();
        let Some(entry) = ds.reviews.iter_mut().find(|e| e.id == id) else {
            return false;
        };
        let ReviewStatus::Running { delta, .. } = entry.status else {
            return false;
        };
        if outcome.cancelled {
            ds.reviews.retain(|e| e.id != id);
            return false;
        }
        let mut findings = outcome.findings.clone();
        let mut dismissed = outcome.dismissed.clone();
        for f in findings.iter_mut().chain(&mut dismissed) {
            shift(&mut f.range, delta);
        }
        let revision = outcome.revision.as_ref().map(|r| {
            let mut edits = r.edits.clone();
            for e in &mut edits {
                shift(&mut e.range, delta);
            }
            edits
        });
        let per_finding = outcome
            .revision
            .as_ref()
            .map(|r| {
                r.per_finding
                    .iter()
                    .map(|(id, edits)| {
                        let mut edits = edits.clone();
                        for e in &mut edits {
                            shift(&mut e.range, delta);
                        }
                        (*id, edits)
                    })
                    .collect()
            })
            .unwrap_or_default();
        entry.status = ReviewStatus::Done(DoneReview {
            findings,
            dismissed,
            revision,
            fixes: outcome.revision.as_ref().map_or(0, |r| r.fixes),
            per_finding,
            version,
            previewed: false,
        });
        true
    }

    /// Records the step a running review is at; returns whether it changed.
    pub fn set_stage(&mut self, uri: &str, id: &str, new: &str) -> bool {
        let Some(entry) = self.entry_mut(uri, id) else {
            return false;
        };
        match &mut entry.status {
            ReviewStatus::Running { stage, .. } if stage != new => {
                *stage = new.to_owned();
                true
            }
            _ => false,
        }
    }

    /// Moves the shown findings of `uri`'s finished reviews that `covered` says a new
    /// dismissal covers to their reviews' dismissed list; which (review id, finding ids).
    pub fn hide_dismissed(
        &mut self,
        uri: &str,
        covered: impl Fn(&Finding) -> bool,
    ) -> Vec<(String, Vec<usize>)> {
        let Some(ds) = self.docs.get_mut(uri) else {
            return Vec::new();
        };
        let mut moved = Vec::new();
        for e in &mut ds.reviews {
            if let ReviewStatus::Done(done) = &mut e.status {
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut done.findings)
                    .into_iter()
                    .partition(&covered);
                if !gone.is_empty() {
                    moved.push((e.id.clone(), gone.iter().map(|f| f.id).collect()));
                }
                done.findings = kept;
                done.dismissed.extend(gone);
            }
        }
        moved
    }

    /// Marks a finished review's revision as looked at.
    pub fn mark_previewed(&mut self, uri: &str, id: &str) {
        if let Some(ReviewStatus::Done(done)) = self.entry_mut(uri, id).map(|e| &mut e.status) {
            done.previewed = true;
        }
    }

    /// Takes one review's dismissed findings out (to be shown again); none when it has none.
    pub fn take_dismissed(&mut self, uri: &str, id: &str) -> Vec<Finding> {
        match self.entry_mut(uri, id).map(|e| &mut e.status) {
            Some(ReviewStatus::Done(done)) => std::mem::take(&mut done.dismissed),
            _ => Vec::new(),
        }
    }

    /// Shows findings of a review again, in document order.
    pub fn show_again(&mut self, uri: &str, id: &str, findings: Vec<Finding>) {
        if let Some(ReviewStatus::Done(done)) = self.entry_mut(uri, id).map(|e| &mut e.status) {
            done.findings.extend(findings);
            done.findings.sort_by_key(|f| f.range.start);
        }
    }

    /// Removes one review (running or done); returns its document.
    pub fn dismiss(&mut self, id: &str) -> Option<String> {
        for (uri, ds) in &mut self.docs {
            if let Some(pos) = ds.reviews.iter().position(|e| e.id == id) {
                let e = ds.reviews.remove(pos);
                if let ReviewStatus::Running { cancel, .. } = e.status {
                    cancel.cancel();
                }
                return Some(uri.clone());
            }
        }
        None
    }

    /// Cancels a running review by id; returns whether one was found.
    pub fn cancel(&mut self, id: &str) -> Option<String> {
        for (uri, ds) in &mut self.docs {
            if let Some(pos) = ds.reviews.iter().position(|e| e.id == id) {
                if let ReviewStatus::Running { cancel, .. } = &ds.reviews[pos].status {
                    cancel.cancel();
                    ds.reviews.remove(pos);
                    return Some(uri.clone());
                }
                return None;
            }
        }
        None
    }

    /// Removes every review of a document, cancelling running ones.
    pub fn clear(&mut self, uri: &str) -> bool {
        let Some(ds) = self.docs.get_mut(uri) else {
            return false;
        };
        for e in ds.reviews.drain(..) {
            if let ReviewStatus::Running { cancel, .. } = e.status {
                cancel.cancel();
            }
        }
        true
    }

    /// Drops a document and cancels its reviews.
    pub fn close(&mut self, uri: &str) {
        self.clear(uri);
        self.docs.remove(uri);
    }
}

/// Whether a change edits a region of whole lines, judged on the text after the change: the
/// region survives only if the change lies wholly before or after it and it still starts and
/// ends on line boundaries (typing at its first char, or joining its first line with the one
/// above, edits it; deleting whole lines above it does not).
fn overlaps(span: &ChangeSpan, region: &Range<usize>, after: &Rope) -> bool {
    let is_break = |c: usize| matches!(after.get_char(c), Some('\n' | '\r'));
    if span.start >= region.end {
        // After the region: it must still end with its line break.
        return !(region.end > region.start && is_break(region.end - 1));
    }
    if span.old_end <= region.start {
        let new_start = region.start.saturating_add_signed(span.delta());
        return !(new_start == 0 || is_break(new_start - 1));
    }
    true
}

fn shift(r: &mut Range<usize>, d: isize) {
    r.start = r.start.saturating_add_signed(d);
    r.end = r.end.saturating_add_signed(d);
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// The move/drop rule against the simplest reference: a review that is kept still
        /// covers exactly the text it reviewed, whole lines of it; an edit that lands inside
        /// it always drops it.
        #[test]
        fn a_kept_review_covers_exactly_the_lines_it_reviewed(
            first in 0usize..6, count in 1usize..4,
            edits in proptest::collection::vec((0usize..60, 0usize..6, prop_oneof![
                Just(""), Just("x"), Just("\n"), Just("ab\n"), Just("😀"), Just("\r\n")]), 1..8),
        ) {
            let lines: Vec<String> = (0..10).map(|i| format!("line {i} é\n")).collect();
            let text: String = lines.concat();
            let mut rope = Rope::from_str(&text);
            let start = rope.line_to_char(first);
            let end = rope.line_to_char(first + count);
            let reviewed = rope.slice(start..end).to_string();
            let mut region = Some(start..end);
            for (at, len, new) in edits {
                let total = rope.len_chars();
                let a = at.min(total);
                let b = (a + len).min(total);
                rope.remove(a..b);
                rope.insert(a, new);
                let span = ChangeSpan { start: a, old_end: b, new_len: new.chars().count() };
                let Some(r) = region.clone() else { break };
                let inside = a < r.end && b > r.start;
                if overlaps(&span, &r, &rope) {
                    region = None;
                } else {
                    prop_assert!(!inside, "an edit inside {:?} ({}..{}) kept it", r, a, b);
                    let mut moved = r.clone();
                    if span.old_end <= r.start {
                        shift(&mut moved, span.delta());
                    }
                    region = Some(moved);
                }
                if let Some(r) = &region {
                    prop_assert_eq!(rope.slice(r.clone()).to_string(), reviewed.clone());
                    prop_assert!(r.start == 0 || rope.char(r.start - 1) == '\n', "starts a line");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies `new` over chars `a..b` of `text`, then asks whether the region (given in the
    /// text before the change) was edited.
    fn edited(text: &str, region: Range<usize>, a: usize, b: usize, new: &str) -> bool {
        let mut rope = Rope::from_str(text);
        rope.remove(a..b);
        rope.insert(a, new);
        let span = ChangeSpan {
            start: a,
            old_end: b,
            new_len: new.chars().count(),
        };
        overlaps(&span, &region, &rope)
    }

    const TEXT: &str = "zero\none\ntwo\nthree\n";
    // Lines one and two: chars 5..13.

    #[test]
    fn edits_inside_or_at_the_edges_of_a_region_edit_it() {
        assert!(edited(TEXT, 5..13, 6, 7, "N"));
        assert!(edited(TEXT, 5..13, 5, 5, "x"), "typing at the first char");
        assert!(edited(TEXT, 5..13, 4, 5, ""), "joining with the line above");
        assert!(
            edited(TEXT, 5..13, 12, 13, ""),
            "deleting its last line break"
        );
        assert!(
            edited(TEXT, 0..4, 4, 4, "x"),
            "a region at the end of a line without break"
        );
    }

    #[test]
    fn edits_before_or_after_a_region_leave_it() {
        assert!(
            !edited(TEXT, 5..13, 0, 5, ""),
            "deleting the whole line above"
        );
        assert!(!edited(TEXT, 5..13, 5, 5, "new line\n"), "a new line above");
        assert!(
            !edited(TEXT, 5..13, 13, 13, "x"),
            "typing on the line below"
        );
        assert!(!edited(TEXT, 5..13, 0, 1, "Z"));
    }
}

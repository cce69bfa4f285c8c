//! One open document and the reviews on it (running or done), with the rules that keep them
//! true to the text: reviews are anchored by char offsets; an edit inside a review's lines
//! drops it (cancelling it if it runs); an edit before it moves it; so findings and revisions
//! always describe the text that is there now, and a revision's edits are only offered for the
//! version they fit. No protocol types: [`super::convert`] turns what is here into LSP.

use std::ops::Range;

use ropey::Rope;
use tokio_util::sync::CancellationToken;

use crate::document::{ChangeSpan, Document, PositionEncoding, TextPos};
use crate::engine::{Edit, Finding, ReviewOutcome, Severity};

/// One content change as the client sent it: a range replacement, or the whole text.
#[derive(Debug, Clone)]
pub struct TextChange {
    /// The replaced range (`None`: the whole text).
    pub range: Option<(TextPos, TextPos)>,
    /// The new text.
    pub text: String,
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
    /// The revision's counterexample as a call with its expected value, when a regression test
    /// of it was checked to fail on the original and pass on the revision (the code action
    /// "add the counterexample as a regression test").
    pub regression: Option<crate::probe::Call>,
}

impl DoneReview {
    /// A job's outcome, moved by `delta` (how far its region moved since its snapshot), for
    /// the document at `version`.
    fn from_outcome(outcome: &ReviewOutcome, delta: isize, version: i32) -> Self {
        let moved = |edits: &[Edit]| {
            let mut edits = edits.to_vec();
            for e in &mut edits {
                shift(&mut e.range, delta);
            }
            edits
        };
        let mut findings = outcome.findings.clone();
        let mut dismissed = outcome.dismissed.clone();
        for f in findings.iter_mut().chain(&mut dismissed) {
            shift(&mut f.range, delta);
        }
        let revision = outcome.revision.as_ref();
        Self {
            findings,
            dismissed,
            revision: revision.map(|r| moved(&r.edits)),
            fixes: revision.map_or(0, |r| r.fixes),
            per_finding: revision
                .map(|r| {
                    r.per_finding
                        .iter()
                        .map(|(id, edits)| (*id, moved(edits)))
                        .collect()
                })
                .unwrap_or_default(),
            version,
            previewed: false,
            regression: outcome
                .evidence
                .counterexample
                .as_ref()
                .filter(|_| outcome.evidence.regression_test_verified)
                .map(crate::engine::outcome::Counterexample::expected_call),
        }
    }

    /// Moves every offset by `d`.
    fn shift_by(&mut self, d: isize) {
        for f in self.findings.iter_mut().chain(&mut self.dismissed) {
            shift(&mut f.range, d);
        }
        for e in self.revision.iter_mut().flatten() {
            shift(&mut e.range, d);
        }
        for (_, edits) in &mut self.per_finding {
            for e in edits {
                shift(&mut e.range, d);
            }
        }
    }
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

impl ReviewEntry {
    /// Cancels the job if the review is running.
    fn stop(&self) {
        if let ReviewStatus::Running { cancel, .. } = &self.status {
            cancel.cancel();
        }
    }

    /// Moves the review by `d` chars (an edit before it); returns whether shown results moved.
    fn shift_by(&mut self, d: isize) -> bool {
        shift(&mut self.region, d);
        match &mut self.status {
            ReviewStatus::Running { delta, partial, .. } => {
                *delta += d;
                for f in partial {
                    shift(&mut f.range, d);
                }
                false
            }
            ReviewStatus::Done(done) => {
                done.shift_by(d);
                true
            }
        }
    }
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
    /// Why a change could not be applied, when one could not (the document is now out of
    /// sync and its reviews are cleared).
    pub lost: Option<String>,
}

/// A revision's edits (or one finding's part of them) as the client should get them: computed
/// against `version`, positions in `encoding`. [`super::convert::workspace_edit`] makes the
/// LSP edit of it.
#[derive(Debug, Clone, Copy)]
pub struct RevisionEdit<'a> {
    /// The document's text now.
    pub rope: &'a Rope,
    /// The document version the edits fit.
    pub version: i32,
    /// The edits, in char offsets.
    pub edits: &'a [Edit],
    /// The negotiated position encoding.
    pub encoding: PositionEncoding,
    /// The client supports change annotations: annotate the edits.
    pub annotate: bool,
    /// The revision was not previewed: each change needs confirming.
    pub confirm: bool,
}

/// An open document and its reviews.
#[derive(Debug)]
pub struct DocState {
    /// The text.
    doc: Document,
    /// Reviews, oldest first.
    reviews: Vec<ReviewEntry>,
    /// A change could not be applied: the text may differ from the client's. Until a
    /// `didOpen` or a full-text change resyncs it, the document gets no reviews, diagnostics
    /// or edits.
    out_of_sync: bool,
}

impl DocState {
    /// A freshly opened document, without reviews.
    pub fn new(doc: Document) -> Self {
        Self {
            doc,
            reviews: Vec::new(),
            out_of_sync: false,
        }
    }

    /// The text.
    pub fn doc(&self) -> &Document {
        &self.doc
    }

    /// Reviews, oldest first.
    pub fn reviews(&self) -> &[ReviewEntry] {
        &self.reviews
    }

    /// Whether a change could not be applied (see the field).
    pub fn is_out_of_sync(&self) -> bool {
        self.out_of_sync
    }

    /// A review by id, or the first one when `id` is `None`.
    pub fn review(&self, id: Option<&str>) -> Option<&ReviewEntry> {
        self.reviews.iter().find(|e| id.is_none_or(|id| id == e.id))
    }

    /// A finished review's results by id.
    pub fn done(&self, id: &str) -> Option<&DoneReview> {
        match &self.reviews.iter().find(|e| e.id == id)?.status {
            ReviewStatus::Done(done) => Some(done),
            ReviewStatus::Running { .. } => None,
        }
    }

    /// Finished reviews whose offsets fit the document's current version.
    pub fn current(&self) -> impl Iterator<Item = (&ReviewEntry, &DoneReview)> {
        let version = self.doc.version();
        self.reviews.iter().filter_map(move |e| match &e.status {
            ReviewStatus::Done(done) if done.version == version => Some((e, done)),
            _ => None,
        })
    }

    /// The latest finished review that offers a revision: the one named, or (with `line`) the
    /// one whose lines hold that zero-based line (what "under the cursor" means).
    pub fn latest_revision(
        &self,
        id: Option<&str>,
        line: Option<usize>,
    ) -> Option<(&ReviewEntry, &DoneReview)> {
        let rope = self.doc.rope();
        let holds = |e: &ReviewEntry, line: usize| {
            let first = crate::document::line_of(rope, e.region.start);
            let last =
                crate::document::line_of(rope, e.region.end.saturating_sub(1).max(e.region.start));
            (first..=last).contains(&line)
        };
        self.reviews.iter().rev().find_map(|e| match &e.status {
            ReviewStatus::Done(done)
                if done.revision.is_some()
                    && id.is_none_or(|id| id == e.id)
                    && line.is_none_or(|l| holds(e, l)) =>
            {
                Some((e, done))
            }
            _ => None,
        })
    }

    /// A shown finding of a finished review.
    pub fn finding(&self, review_id: &str, finding_id: usize) -> Option<&Finding> {
        self.done(review_id)?
            .findings
            .iter()
            .find(|f| f.id == finding_id)
    }

    /// Applies one content change and moves or drops the reviews. A change that cannot be
    /// applied puts the document out of sync and clears its reviews; while it is out of sync,
    /// range changes are skipped (applied to a text that may not be the client's, they would
    /// only be wrong) and a full-text change brings it back.
    pub fn apply_change(
        &mut self,
        uri: &str,
        change: TextChange,
        enc: PositionEncoding,
        effects: &mut ChangeEffects,
    ) {
        if self.out_of_sync && change.range.is_some() {
            return;
        }
        let was_out = self.out_of_sync;
        match self.doc.apply_change(change.range, &change.text, enc) {
            Ok(span) => {
                if was_out {
                    // A full-text change: the client's text again.
                    self.out_of_sync = false;
                    tracing::info!(uri = %uri, "document in sync again");
                }
                self.on_change(span, effects);
            }
            Err(e) => {
                tracing::error!(uri = %uri, "change rejected: {e}; the document is out of sync");
                self.out_of_sync = true;
                effects.lost = Some(e.to_string());
                self.clear();
                effects.republish = true;
            }
        }
    }

    /// Moves or drops the reviews after an applied change.
    fn on_change(&mut self, span: ChangeSpan, effects: &mut ChangeEffects) {
        let after = self.doc.rope();
        self.reviews.retain_mut(|entry| {
            if overlaps(&span, &entry.region, after) {
                entry.stop();
                if let ReviewStatus::Done(done) = &entry.status
                    && done.revision.is_some()
                {
                    effects.superseded.push(entry.id.clone());
                }
                effects.dropped.push(entry.id.clone());
                effects.republish = true;
                return false;
            }
            if span.old_end <= entry.region.start && entry.shift_by(span.delta()) {
                effects.republish = true;
            }
            true
        });
    }

    /// Sets the version the client gave with a batch of changes, and stamps finished reviews
    /// with it: their offsets were moved to fit it.
    pub fn set_version(&mut self, version: i32) {
        self.doc.set_version(version);
        for e in &mut self.reviews {
            if let ReviewStatus::Done(done) = &mut e.status {
                done.version = version;
            }
        }
    }

    /// Starts tracking a running review of `region`. A new review of the same lines replaces
    /// the old one (cancelling it if it runs); returns whether one was replaced.
    pub fn begin_review(
        &mut self,
        id: String,
        region: Range<usize>,
        cancel: CancellationToken,
    ) -> bool {
        let mut replaced = false;
        self.reviews.retain(|e| {
            let same = e.region.start < region.end && region.start < e.region.end;
            if same {
                e.stop();
                replaced = true;
            }
            !same
        });
        self.reviews.push(ReviewEntry {
            id,
            region,
            status: ReviewStatus::Running {
                cancel,
                delta: 0,
                partial: Vec::new(),
                stage: "critique 1".to_owned(),
            },
        });
        replaced
    }

    /// A review of this document, by id.
    fn entry_mut(&mut self, id: &str) -> Option<&mut ReviewEntry> {
        self.reviews.iter_mut().find(|e| e.id == id)
    }

    /// Records a finding streamed in for a running review, replacing the one with its id;
    /// returns whether it was kept. Until the review ends it is shown as a hint: its evidence is
    /// not in yet, so the end can only raise it (or withdraw it), never lower it.
    pub fn add_partial(&mut self, id: &str, mut finding: Finding) -> bool {
        let Some(entry) = self.entry_mut(id) else {
            return false;
        };
        let ReviewStatus::Running { delta, partial, .. } = &mut entry.status else {
            return false;
        };
        shift(&mut finding.range, *delta);
        finding.raw.severity = Severity::Hint;
        match partial.iter_mut().find(|f| f.id == finding.id) {
            Some(same) => *same = finding,
            None => partial.push(finding),
        }
        true
    }

    /// Records the step a running review is at; returns whether it changed.
    pub fn set_stage(&mut self, id: &str, new: &str) -> bool {
        let Some(entry) = self.entry_mut(id) else {
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

    /// Stores a job's outcome if its review still runs; returns whether it did. A cancelled
    /// outcome removes the review.
    pub fn finish_review(&mut self, id: &str, outcome: &ReviewOutcome) -> bool {
        let version = self.doc.version();
        let Some(entry) = self.entry_mut(id) else {
            return false;
        };
        let ReviewStatus::Running { delta, .. } = entry.status else {
            return false;
        };
        if outcome.cancelled {
            self.reviews.retain(|e| e.id != id);
            return false;
        }
        entry.status = ReviewStatus::Done(DoneReview::from_outcome(outcome, delta, version));
        true
    }

    /// Moves the shown findings of finished reviews that `covered` says a new dismissal
    /// covers to their reviews' dismissed list; which (review id, finding ids).
    pub fn hide_dismissed(
        &mut self,
        covered: impl Fn(&Finding) -> bool,
    ) -> Vec<(String, Vec<usize>)> {
        let mut moved = Vec::new();
        for e in &mut self.reviews {
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

    /// A finished review's results, to change.
    fn done_mut(&mut self, id: &str) -> Option<&mut DoneReview> {
        match &mut self.entry_mut(id)?.status {
            ReviewStatus::Done(done) => Some(done),
            ReviewStatus::Running { .. } => None,
        }
    }

    /// Marks a finished review's revision as looked at.
    pub fn mark_previewed(&mut self, id: &str) {
        if let Some(done) = self.done_mut(id) {
            done.previewed = true;
        }
    }

    /// Takes one review's dismissed findings out (to be shown again); none when it has none.
    pub fn take_dismissed(&mut self, id: &str) -> Vec<Finding> {
        self.done_mut(id)
            .map(|done| std::mem::take(&mut done.dismissed))
            .unwrap_or_default()
    }

    /// Shows findings of a review again, in document order.
    pub fn show_again(&mut self, id: &str, findings: Vec<Finding>) {
        if let Some(done) = self.done_mut(id) {
            done.findings.extend(findings);
            done.findings.sort_by_key(|f| f.range.start);
        }
    }

    /// Removes one review (running or done), cancelling it; returns whether it was here.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(pos) = self.reviews.iter().position(|e| e.id == id) else {
            return false;
        };
        self.reviews.remove(pos).stop();
        true
    }

    /// Cancels and removes a running review: `None` when no review has this id, `Some(false)`
    /// when it is done (and stays).
    pub fn cancel(&mut self, id: &str) -> Option<bool> {
        let pos = self.reviews.iter().position(|e| e.id == id)?;
        if !matches!(self.reviews[pos].status, ReviewStatus::Running { .. }) {
            return Some(false);
        }
        self.reviews.remove(pos).stop();
        Some(true)
    }

    /// Removes every review, cancelling running ones.
    pub fn clear(&mut self) {
        for e in self.reviews.drain(..) {
            e.stop();
        }
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

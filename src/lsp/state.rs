//! The server's state behind one mutex: open documents and the reviews on each (see
//! [`super::doc_state`]), the configuration and the review service built from it, what the
//! client can do. Fields are private: every rule (a change moves or drops reviews, a new review
//! replaces an overlapping one, a configuration change rebuilds the service) is a method here
//! or on [`DocState`]. Every method is synchronous, so a handler locks, calls one method and
//! unlocks without ever awaiting. No protocol types: [`super::convert`] makes LSP of what
//! comes out.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use ropey::Rope;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::capabilities::ClientCaps;
use super::doc_state::{ChangeEffects, DocState, DoneReview, RevisionEdit, TextChange};
use crate::config::{Config, Layers, Source, TrustedBy};
use crate::document::{Document, PositionEncoding, TextPos, line_span, widen_to_lines};
use crate::engine::{Edit, Finding, ReviewOutcome};
use crate::lang::language_for_path;
use crate::prompts::Prompts;
use crate::service::ReviewService;

/// Everything the handlers share.
pub struct State {
    /// Negotiated at `initialize`.
    encoding: PositionEncoding,
    /// Open documents by URI.
    docs: HashMap<String, DocState>,
    /// Configuration sources.
    layers: Layers,
    /// The review service built from them (from `initialize` on).
    service: Option<Arc<ReviewService>>,
    /// Prompt templates (read from the workspace at `initialize`).
    prompts: Arc<Prompts>,
    /// Workspace root.
    root: Option<PathBuf>,
    /// What the client can do.
    caps: ClientCaps,
    /// Running reviews by their `$/progress` token (as JSON text), for
    /// `window/workDoneProgress/cancel`.
    progress_reviews: HashMap<String, String>,
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

/// What `initialize` brings.
#[derive(Debug)]
pub struct Setup {
    /// What the client can do.
    pub caps: ClientCaps,
    /// The negotiated position encoding.
    pub encoding: PositionEncoding,
    /// The workspace root, when there is one.
    pub root: Option<PathBuf>,
    /// The editor says the user trusted this workspace.
    pub trusted_by_editor: bool,
    /// The editor's `refine` settings from the initialization options.
    pub editor: Option<Value>,
}

/// How the editor's settings arrive at a configuration change.
#[derive(Debug)]
pub enum EditorSettings {
    /// `workspace/configuration`'s answer: the whole section, replacing the editor's layer.
    Whole(Option<Value>),
    /// `workspace/didChangeConfiguration`: what changed, merged into the editor's layer (a
    /// client may send only the changed section).
    Changed(Option<Value>),
}

/// The lines a new review covers, checked, and the text it reviews.
#[derive(Debug)]
pub struct Snapshot {
    /// The document's text now.
    pub text: Rope,
    /// First reviewed line (zero-based).
    pub first: usize,
    /// Last reviewed line (zero-based).
    pub last: usize,
    /// The reviewed lines as chars.
    pub region: Range<usize>,
    /// The document's language (its path's when the client says `plaintext` or nothing).
    pub language: String,
}

impl State {
    /// Takes in what `initialize` brings: capabilities, encoding, the workspace and its
    /// configuration files and prompts, the editor's settings; builds the review service.
    pub fn initialize(&mut self, setup: Setup) {
        self.caps = setup.caps;
        self.encoding = setup.encoding;
        if setup.trusted_by_editor {
            self.layers.grant_trust(TrustedBy::Editor);
        }
        let root = setup.root;
        self.layers.load_files(root.as_deref());
        self.prompts = Arc::new(Prompts::load(root.as_deref()));
        self.root = root;
        if let Some(v) = setup.editor {
            self.layers.set(Source::Editor, v);
        }
        self.rebuild_service();
    }

    /// A configuration change, pushed or pulled: the files are read again, the editor's layer
    /// takes `editor` in, and the service is rebuilt. Returns the warnings about the
    /// configuration now in force.
    pub fn reconfigure(&mut self, editor: EditorSettings) -> Vec<String> {
        self.layers.reload_files();
        match editor {
            EditorSettings::Whole(Some(v)) => self.layers.set(Source::Editor, v),
            EditorSettings::Changed(Some(v)) => self.layers.merge(Source::Editor, v),
            EditorSettings::Whole(None) | EditorSettings::Changed(None) => {}
        }
        self.rebuild_service();
        self.config_warnings()
    }

    /// Rebuilds the review service from the layers (keeping the open cache).
    fn rebuild_service(&mut self) {
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

    /// Warnings to show once the client is ready: the configuration's, then the prompts'.
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut w = self.config_warnings();
        w.extend(self.prompts.warnings.iter().cloned());
        w
    }

    /// The review service of the configuration in force (from `initialize` on).
    pub fn service(&self) -> Option<Arc<ReviewService>> {
        self.service.clone()
    }

    /// What the client can do.
    pub fn caps(&self) -> ClientCaps {
        self.caps
    }

    /// The negotiated position encoding.
    pub fn encoding(&self) -> PositionEncoding {
        self.encoding
    }

    /// An open document.
    pub fn document(&self, uri: &str) -> Option<&DocState> {
        self.docs.get(uri)
    }

    /// Opens a document (again: its old reviews are cancelled and dropped).
    pub fn open(&mut self, uri: String, doc: Document) {
        self.close(&uri);
        self.docs.insert(uri, DocState::new(doc));
    }

    /// Drops a document and cancels its reviews.
    pub fn close(&mut self, uri: &str) {
        self.clear(uri);
        self.docs.remove(uri);
    }

    /// Removes every review of a document, cancelling running ones; whether it is open.
    pub fn clear(&mut self, uri: &str) -> bool {
        let Some(ds) = self.docs.get_mut(uri) else {
            return false;
        };
        ds.clear();
        true
    }

    /// Removes every review of every document (at shutdown).
    pub fn clear_all(&mut self) {
        for ds in self.docs.values_mut() {
            ds.clear();
        }
    }

    /// Applies a `didChange` batch (see [`DocState::apply_change`]), then takes the version
    /// the client gave it. Nothing happens to a document that is not open.
    pub fn apply_changes(
        &mut self,
        uri: &str,
        changes: Vec<TextChange>,
        version: i32,
    ) -> ChangeEffects {
        let mut effects = ChangeEffects::default();
        let enc = self.encoding;
        let Some(ds) = self.docs.get_mut(uri) else {
            if !changes.is_empty() {
                tracing::warn!(uri = %uri, "didChange for a document that is not open");
            }
            return effects;
        };
        for change in changes {
            ds.apply_change(uri, change, enc, &mut effects);
        }
        ds.set_version(version);
        effects
    }

    /// The whole lines from `start` to `end` of an open, in-sync document, when they are not
    /// blank; else why not, as a sentence.
    pub fn snapshot(&self, uri: &str, start: TextPos, end: TextPos) -> Result<Snapshot, String> {
        let Some(ds) = self.docs.get(uri) else {
            return Err(format!(
                "{uri} is not open: send textDocument/didOpen first"
            ));
        };
        if ds.is_out_of_sync() {
            return Err(format!(
                "{uri} is out of sync (an edit could not be applied): reopen the file first"
            ));
        }
        let text = ds.doc().rope().clone();
        let (first, last) = widen_to_lines(&text, start, end);
        let region = line_span(&text, first, last);
        if text.slice(region.clone()).chars().all(char::is_whitespace) {
            return Err("the selected lines are empty: nothing to review".to_owned());
        }
        let language = review_language(uri, ds.doc().language_id());
        Ok(Snapshot {
            text,
            first,
            last,
            region,
            language,
        })
    }

    /// A fresh review id.
    pub fn new_review_id(&mut self) -> String {
        self.next_review += 1;
        format!("review-{}", self.next_review)
    }

    /// Starts tracking a running review of `region` of `uri`; a new review of the same lines
    /// replaces the old one. Returns whether one was replaced.
    pub fn begin_review(
        &mut self,
        uri: &str,
        id: String,
        region: Range<usize>,
        cancel: CancellationToken,
    ) -> bool {
        self.docs
            .get_mut(uri)
            .is_some_and(|ds| ds.begin_review(id, region, cancel))
    }

    /// Records a finding streamed in for a running review; returns whether it was kept.
    pub fn add_partial(&mut self, uri: &str, id: &str, finding: Finding) -> bool {
        self.docs
            .get_mut(uri)
            .is_some_and(|ds| ds.add_partial(id, finding))
    }

    /// Records the step a running review is at; returns whether it changed.
    pub fn set_stage(&mut self, uri: &str, id: &str, stage: &str) -> bool {
        self.docs
            .get_mut(uri)
            .is_some_and(|ds| ds.set_stage(id, stage))
    }

    /// Stores a job's outcome if its review still exists; returns whether it did.
    pub fn finish_review(&mut self, uri: &str, id: &str, outcome: &ReviewOutcome) -> bool {
        self.docs
            .get_mut(uri)
            .is_some_and(|ds| ds.finish_review(id, outcome))
    }

    /// Notes which review a `$/progress` token reports on.
    pub fn track_progress(&mut self, key: String, id: String) {
        self.progress_reviews.insert(key, id);
    }

    /// Forgets a `$/progress` token (its review ended).
    pub fn untrack_progress(&mut self, key: &str) {
        self.progress_reviews.remove(key);
    }

    /// Cancels the running review a `$/progress` token reports on; returns its document.
    pub fn cancel_by_progress(&mut self, key: &str) -> Option<String> {
        let id = self.progress_reviews.get(key).cloned()?;
        self.cancel(&id)
    }

    /// The edit applying `edits` (a review's revision, or one finding's part of it, computed
    /// against `done.version`) in this client's encoding: annotated when it supports change
    /// annotations, needing confirmation until the revision was previewed.
    pub fn revision_edit<'a>(
        &self,
        rope: &'a Rope,
        done: &DoneReview,
        edits: &'a [Edit],
    ) -> RevisionEdit<'a> {
        RevisionEdit {
            rope,
            version: done.version,
            edits,
            encoding: self.encoding,
            annotate: self.caps.change_annotations,
            confirm: !done.previewed,
        }
    }

    /// A shown finding of a finished review of `uri`.
    pub fn finding(&self, uri: &str, review_id: &str, finding_id: usize) -> Option<Finding> {
        self.docs.get(uri)?.finding(review_id, finding_id).cloned()
    }

    /// Moves the shown findings of `uri`'s finished reviews that `covered` says a new
    /// dismissal covers to their reviews' dismissed list; which (review id, finding ids).
    pub fn hide_dismissed(
        &mut self,
        uri: &str,
        covered: impl Fn(&Finding) -> bool,
    ) -> Vec<(String, Vec<usize>)> {
        self.docs
            .get_mut(uri)
            .map(|ds| ds.hide_dismissed(covered))
            .unwrap_or_default()
    }

    /// Marks a finished review's revision as looked at.
    pub fn mark_previewed(&mut self, uri: &str, id: &str) {
        if let Some(ds) = self.docs.get_mut(uri) {
            ds.mark_previewed(id);
        }
    }

    /// Takes one review's dismissed findings out (to be shown again); none when it has none.
    pub fn take_dismissed(&mut self, uri: &str, id: &str) -> Vec<Finding> {
        self.docs
            .get_mut(uri)
            .map(|ds| ds.take_dismissed(id))
            .unwrap_or_default()
    }

    /// Shows findings of a review again, in document order.
    pub fn show_again(&mut self, uri: &str, id: &str, findings: Vec<Finding>) {
        if let Some(ds) = self.docs.get_mut(uri) {
            ds.show_again(id, findings);
        }
    }

    /// Removes one review (running or done); returns its document.
    pub fn dismiss(&mut self, id: &str) -> Option<String> {
        self.docs
            .iter_mut()
            .find_map(|(uri, ds)| ds.remove(id).then(|| uri.clone()))
    }

    /// Cancels a running review by id; returns its document (none when the review is done).
    pub fn cancel(&mut self, id: &str) -> Option<String> {
        self.docs
            .iter_mut()
            .find_map(|(uri, ds)| ds.cancel(id).map(|cancelled| (uri, cancelled)))
            .and_then(|(uri, cancelled)| cancelled.then(|| uri.clone()))
    }
}

/// The language a review of `uri` names to the model: the client's language id, or the path's
/// when the client says `plaintext` or nothing.
pub fn review_language(uri: &str, language_id: &str) -> String {
    match language_id {
        "" | "plaintext" => language_for_path(uri).to_owned(),
        id => id.to_owned(),
    }
}

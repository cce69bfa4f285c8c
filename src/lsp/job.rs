//! A review as a spawned job: it runs the engine with a cancellation token, reports
//! `$/progress`, stores its results in the state, has the diagnostics published, applies the
//! revision when asked to (`refine.refine`), and ends with `refine/reviewFinished`.

use std::sync::{Arc, Mutex};

use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::notification::{Notification, Progress};
use tower_lsp_server::ls_types::{
    ApplyWorkspaceEditParams, MessageType, NumberOrString, ProgressParams, ProgressParamsValue,
    ProgressToken, Uri, WorkDoneProgress, WorkDoneProgressBegin, WorkDoneProgressEnd,
    WorkDoneProgressReport,
};

use super::state::{ReviewStatus, State, lock};
use crate::engine::{Event, ReviewInput, ReviewOutcome};
use crate::service::ReviewService;

/// `refine/reviewFinished`: sent once per review, after its diagnostics.
pub enum ReviewFinished {}

impl Notification for ReviewFinished {
    type Params = ReviewFinishedParams;
    const METHOD: &'static str = "refine/reviewFinished";
}

/// The summary of a review (counts, not findings: those are the diagnostics).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReviewFinishedParams {
    /// The id `refine.review` returned.
    pub review_id: String,
    /// The document.
    pub uri: String,
    /// Findings shown as diagnostics.
    pub findings: usize,
    /// Findings whose quote was not found in the selection.
    pub unanchored: usize,
    /// Findings about lines outside the selection (dropped).
    pub out_of_selection: usize,
    /// Findings below `loop.min_confidence` (not shown).
    pub low_confidence: usize,
    /// Revisions asked for.
    pub iterations: u32,
    /// Model calls made.
    pub llm_calls: u32,
    /// Whether a revision is offered.
    pub revision: bool,
    /// Prompt tokens used.
    pub input_tokens: u64,
    /// Completion tokens used.
    pub output_tokens: u64,
    /// Prompt tokens the model took from its cache instead of processing them again.
    #[serde(default)]
    pub reused_input_tokens: u64,
    /// Secrets replaced by placeholders before sending.
    pub redactions: usize,
    /// What happened along the way (rejected revisions, why nothing is offered).
    pub notes: Vec<String>,
    /// One sentence per reason findings were not shown ("2 findings not shown: their quotes
    /// are not in the code").
    #[serde(default)]
    pub not_shown: Vec<String>,
    /// Findings whose quote only repeated their message.
    #[serde(default)]
    pub quote_is_message: usize,
    /// Findings cut by the repetition guard.
    #[serde(default)]
    pub repeated: usize,
    /// Findings over `loop.max_findings`.
    #[serde(default)]
    pub over_limit: usize,
    /// Findings too few of the `loop.samples` critiques agreed on.
    #[serde(default)]
    pub not_agreed: usize,
    /// Why the review failed or stopped, as a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A progress token as the key of [`super::state::State::progress_reviews`].
pub fn progress_key(token: &ProgressToken) -> String {
    serde_json::to_string(token).unwrap_or_default()
}

/// A request to publish a document's diagnostics, acknowledged once sent.
pub type PublishRequest = (String, Option<oneshot::Sender<()>>);

/// Everything a job needs; it owns all of it.
pub struct Job {
    /// To talk to the editor.
    pub client: Client,
    /// Shared state.
    pub state: Arc<Mutex<State>>,
    /// The diagnostics publisher.
    pub publish: mpsc::UnboundedSender<PublishRequest>,
    /// The document.
    pub uri: Uri,
    /// `review-N`.
    pub id: String,
    /// The snapshot and lines.
    pub input: ReviewInput,
    /// The review service of the configuration in force when the review started.
    pub service: Arc<ReviewService>,
    /// The document's file, when it is one (for `verify.command`).
    pub file: Option<std::path::PathBuf>,
    /// Cancels the job.
    pub cancel: CancellationToken,
    /// Apply the revision when done (`refine.refine`).
    pub apply: bool,
    /// A token the client gave with the request, else one is created if the client can.
    pub progress_token: Option<ProgressToken>,
    /// The client accepts `window/workDoneProgress/create`.
    pub can_create_progress: bool,
}

impl Job {
    /// Runs the review to its end.
    pub async fn run(self) {
        let token = self.progress_token().await;
        let token_key = token.as_ref().map(progress_key);
        if let Some(k) = &token_key {
            lock(&self.state)
                .progress_reviews
                .insert(k.clone(), self.id.clone());
        }
        let max = self.service.config().refine_loop.max_iterations;
        self.report(
            &token,
            WorkDoneProgress::Begin(WorkDoneProgressBegin {
                title: "Refine".to_owned(),
                // `window/workDoneProgress/cancel` cancels the review.
                cancellable: Some(true),
                message: Some("critique 1".to_owned()),
                percentage: None,
            }),
        )
        .await;

        // The engine reports synchronously; a forwarder sends the progress reports in order,
        // and streamed findings go straight into the state and out through the publisher.
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let forward = {
            let client = self.client.clone();
            let token = token.clone();
            tokio::spawn(async move {
                while let Some(message) = rx.recv().await {
                    if let Some(t) = &token {
                        send_progress(&client, t, report(message)).await;
                    }
                }
            })
        };
        let uri_key = self.uri.as_str().to_owned();
        // The embedded model may have to be downloaded first (with progress).
        let providers = if self.service.needs_model() {
            self.fetch_default_model(&token).await
        } else {
            self.service.providers()
        };
        let outcome = match providers {
            Ok(_) => {
                let mut stage = String::new();
                let mut on_event = |event: Event| match event {
                    Event::Stage(s) => {
                        stage = s.describe(max);
                        let _ = tx.send(stage.clone());
                        let mut st = lock(&self.state);
                        if st.set_stage(&uri_key, &self.id, &stage) {
                            super::refresh_views(&self.client, st.caps, false);
                        }
                    }
                    Event::Streaming { findings, tokens } => {
                        let _ = tx.send(format!("{stage}: {findings} findings, {tokens} tokens"));
                    }
                    Event::Finding(f) => {
                        if lock(&self.state).add_partial(&uri_key, &self.id, f) {
                            let _ = self.publish.send((uri_key.clone(), None));
                        }
                    }
                };
                // Supervised: a panic anywhere in the review still ends it, as an error.
                let review = self.service.review(
                    &self.input,
                    self.file.as_deref(),
                    &self.cancel,
                    &mut on_event,
                );
                match std::panic::AssertUnwindSafe(review).catch_unwind().await {
                    Ok(outcome) => outcome,
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        tracing::error!("a review panicked: {what}");
                        ReviewOutcome {
                            error: Some(format!(
                                "the review stopped on an internal error (a bug in refine-ls; please report it): {what}"
                            )),
                            ..ReviewOutcome::default()
                        }
                    }
                }
            }
            Err(why) => ReviewOutcome {
                error: Some(why),
                ..ReviewOutcome::default()
            },
        };
        drop(tx);
        let _ = forward.await;

        let stored = {
            let mut st = lock(&self.state);
            if let Some(k) = &token_key {
                st.progress_reviews.remove(k);
            }
            st.finish_review(&uri_key, &self.id, &outcome)
        };
        if stored {
            self.service
                .record_review(&self.id, &self.input, self.file.as_deref(), &outcome);
        }
        let cancelled = outcome.cancelled || (!stored && outcome.error.is_none());
        let (done_tx, done_rx) = oneshot::channel();
        if self.publish.send((uri_key.clone(), Some(done_tx))).is_ok() {
            let _ = done_rx.await;
        }
        let caps = lock(&self.state).caps;
        super::refresh(&self.client, caps, true).await;
        if self.apply && stored {
            self.apply_revision(&uri_key).await;
        }

        let error = if cancelled {
            Some("the review was cancelled".to_owned())
        } else {
            outcome.error.clone()
        };
        let summary = summary(&outcome, stored, error.as_deref());
        self.report(
            &token,
            WorkDoneProgress::End(WorkDoneProgressEnd {
                message: Some(summary),
            }),
        )
        .await;
        if let (Some(e), false) = (&outcome.error, cancelled) {
            self.client
                .show_message(MessageType::ERROR, format!("refine: {e}"))
                .await;
        }
        let shown = if stored { outcome.findings.len() } else { 0 };
        self.client
            .send_notification::<ReviewFinished>(ReviewFinishedParams {
                review_id: self.id.clone(),
                uri: uri_key,
                findings: shown,
                unanchored: outcome.withheld.unanchored,
                out_of_selection: outcome.withheld.outside_selection,
                low_confidence: outcome.low_confidence.len(),
                iterations: outcome.iterations,
                llm_calls: outcome.llm_calls,
                revision: stored && outcome.revision.is_some(),
                input_tokens: outcome.usage.input_tokens,
                output_tokens: outcome.usage.output_tokens,
                reused_input_tokens: outcome.usage.reused_input_tokens,
                redactions: outcome.redacted.len(),
                notes: outcome.notes.iter().map(ToString::to_string).collect(),
                not_shown: outcome.not_shown(),
                quote_is_message: outcome.withheld.quote_is_message,
                repeated: outcome.withheld.repeated,
                over_limit: outcome.withheld.over_limit,
                not_agreed: outcome.withheld.not_agreed,
                error,
            })
            .await;
    }

    /// `workspace/applyEdit` with the stored revision, if it still fits the document.
    async fn apply_revision(&self, uri_key: &str) {
        let edit = {
            let st = lock(&self.state);
            let Some(ds) = st.docs.get(uri_key) else {
                return;
            };
            let Some(entry) = ds.reviews.iter().find(|e| e.id == self.id) else {
                return;
            };
            match &entry.status {
                ReviewStatus::Done(done) if done.version == ds.doc.version() => done
                    .revision
                    .as_ref()
                    .map(|edits| st.revision_edit(ds.doc.rope(), &self.uri, done, edits)),
                _ => None,
            }
        };
        let Some(edit) = edit else { return };
        let params = ApplyWorkspaceEditParams {
            label: Some("Refine: apply revision".to_owned()),
            edit,
        };
        match self.client.apply_edit(params.edit).await {
            Ok(r) if r.applied => {
                self.service.record_fate(
                    &self.id,
                    crate::learning::Fate::Applied,
                    Vec::new(),
                    None,
                );
            }
            Ok(r) => {
                tracing::info!(reason = ?r.failure_reason, "client did not apply the revision")
            }
            Err(e) => tracing::warn!("workspace/applyEdit failed: {e}"),
        }
    }

    async fn progress_token(&self) -> Option<ProgressToken> {
        if let Some(t) = &self.progress_token {
            return Some(t.clone());
        }
        if !self.can_create_progress {
            return None;
        }
        let token = NumberOrString::String(format!("refine/{}", self.id));
        match self.client.create_work_done_progress(token.clone()).await {
            Ok(()) => Some(token),
            Err(e) => {
                tracing::debug!("client refused a progress token: {e}");
                None
            }
        }
    }

    /// Has the service download the default local model, reporting the download as progress.
    async fn fetch_default_model(
        &self,
        token: &Option<ProgressToken>,
    ) -> Result<std::sync::Arc<crate::service::Providers>, String> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Option<u64>)>();
        let forward = {
            let client = self.client.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let mut last = u32::MAX;
                while let Some((done, total)) = rx.recv().await {
                    let pct = total
                        .filter(|t| *t > 0)
                        .map(|t| (done.saturating_mul(100) / t).min(100) as u32);
                    if pct == Some(last) {
                        continue;
                    }
                    last = pct.unwrap_or(u32::MAX);
                    if let Some(t) = &token {
                        let value = WorkDoneProgress::Report(WorkDoneProgressReport {
                            message: Some(format!(
                                "downloading the local model: {:.1} MB",
                                done as f64 / 1e6
                            )),
                            cancellable: Some(false),
                            percentage: pct,
                        });
                        send_progress(&client, t, value).await;
                    }
                }
            })
        };
        let result = self
            .service
            .ensure_providers(&mut |done, total| {
                let _ = tx.send((done, total));
            })
            .await;
        drop(tx);
        let _ = forward.await;
        result
    }

    async fn report(&self, token: &Option<ProgressToken>, value: WorkDoneProgress) {
        if let Some(t) = token {
            send_progress(&self.client, t, value).await;
        }
    }
}

fn report(message: String) -> WorkDoneProgress {
    WorkDoneProgress::Report(WorkDoneProgressReport {
        message: Some(message),
        cancellable: Some(false),
        percentage: None,
    })
}

async fn send_progress(client: &Client, token: &ProgressToken, value: WorkDoneProgress) {
    client
        .send_notification::<Progress>(ProgressParams {
            token: token.clone(),
            value: ProgressParamsValue::WorkDone(value),
        })
        .await;
}

/// One line for the end of the progress: what the review found and offers.
fn summary(outcome: &ReviewOutcome, stored: bool, error: Option<&str>) -> String {
    if let Some(e) = error {
        return format!("failed: {e}");
    }
    if !stored {
        return "the review was cancelled".to_owned();
    }
    let n = outcome.findings.len();
    if n == 0 {
        return "no issues".to_owned();
    }
    let findings = if n == 1 {
        "1 finding".to_owned()
    } else {
        format!("{n} findings")
    };
    match &outcome.revision {
        Some(r) => format!("{findings}; a revision fixes {} of {n}", r.fixes),
        None => format!("{findings}; no revision offered"),
    }
}

//! A review as a spawned job: it runs the engine with a cancellation token, reports
//! `$/progress`, stores its results in the state, has the diagnostics published, applies the
//! revision when asked to (`refine.refine`), and ends with `refine/reviewFinished`.

use std::any::Any;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::notification::Progress;
use tower_lsp_server::ls_types::{
    MessageType, NumberOrString, ProgressParams, ProgressParamsValue, ProgressToken, Uri,
    WorkDoneProgress, WorkDoneProgressBegin, WorkDoneProgressEnd, WorkDoneProgressReport,
};

use super::convert;
use super::ext::{ReviewFinished, finished_params};
use super::publish::{refresh, refresh_views};
use super::server::Backend;
use crate::engine::{Event, ReviewInput, ReviewOutcome};
use crate::service::{Providers, ReviewService, ServiceError};

/// Everything a job needs; it owns all of it.
pub struct Job {
    /// The server (client, state, publisher).
    pub server: Backend,
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
        let token = self.begin_progress().await;
        let outcome = self.review(&token).await;
        let stored = self.store(&token, &outcome);
        self.server
            .publish
            .publish_and_wait(self.uri.as_str())
            .await;
        let caps = self.server.lock().caps();
        refresh(&self.server.client, caps, true).await;
        if self.apply && stored {
            self.apply_revision().await;
        }
        self.end(&token, &outcome, stored).await;
    }

    /// Gets a progress token (the client's or a created one), ties it to the review for
    /// `window/workDoneProgress/cancel`, and begins the progress.
    async fn begin_progress(&self) -> Option<ProgressToken> {
        let token = self.progress_token().await;
        if let Some(t) = &token {
            self.server
                .lock()
                .track_progress(convert::progress_key(t), self.id.clone());
        }
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
        token
    }

    /// Runs the review (downloading the embedded model first when it must), forwarding its
    /// stages as progress reports in order.
    async fn review(&self, token: &Option<ProgressToken>) -> ReviewOutcome {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let forward = {
            let client = self.server.client.clone();
            let token = token.clone();
            tokio::spawn(async move {
                while let Some(message) = rx.recv().await {
                    if let Some(t) = &token {
                        send_progress(&client, t, report(message)).await;
                    }
                }
            })
        };
        // The embedded model may have to be downloaded first (with progress).
        let providers = if self.service.needs_model() {
            self.fetch_default_model(token).await
        } else {
            self.service.providers()
        };
        let outcome = match providers {
            Ok(_) => self.run_engine(&tx).await,
            Err(why) => ReviewOutcome {
                error: Some(why.to_string()),
                ..ReviewOutcome::default()
            },
        };
        drop(tx);
        let _ = forward.await;
        outcome
    }

    /// The engine's review, supervised: a panic anywhere in it still ends it, as an error.
    /// The engine reports synchronously: stages go to `progress` (the forwarder) and the
    /// state, streamed findings straight into the state and out through the publisher.
    async fn run_engine(&self, progress: &mpsc::UnboundedSender<String>) -> ReviewOutcome {
        let max = self.service.config().refine_loop.max_iterations;
        let uri = self.uri.as_str();
        let mut stage = String::new();
        let mut on_event = |event: Event| match event {
            Event::Stage(s) => {
                stage = s.describe(max);
                let _ = progress.send(stage.clone());
                let mut st = self.server.lock();
                if st.set_stage(uri, &self.id, &stage) {
                    refresh_views(&self.server.client, st.caps(), false);
                }
            }
            Event::Streaming { findings, tokens } => {
                let _ = progress.send(format!("{stage}: {findings} findings, {tokens} tokens"));
            }
            Event::Finding(f) => {
                if self.server.lock().add_partial(uri, &self.id, f) {
                    self.server.publish.publish(uri);
                }
            }
        };
        let review = self.service.review(
            &self.input,
            self.file.as_deref(),
            &self.cancel,
            &mut on_event,
        );
        match std::panic::AssertUnwindSafe(review).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(panic) => panicked(panic),
        }
    }

    /// Stores the outcome in the state (and the learning record) if the review still exists;
    /// returns whether it did.
    fn store(&self, token: &Option<ProgressToken>, outcome: &ReviewOutcome) -> bool {
        let stored = {
            let mut st = self.server.lock();
            if let Some(t) = token {
                st.untrack_progress(&convert::progress_key(t));
            }
            st.finish_review(self.uri.as_str(), &self.id, outcome)
        };
        if stored {
            self.service
                .record_review(&self.id, &self.input, self.file.as_deref(), outcome);
        }
        stored
    }

    /// Ends the progress with a summary, shows a failure, and sends `refine/reviewFinished`.
    async fn end(&self, token: &Option<ProgressToken>, outcome: &ReviewOutcome, stored: bool) {
        let cancelled = outcome.cancelled || (!stored && outcome.error.is_none());
        let error = if cancelled {
            Some("the review was cancelled".to_owned())
        } else {
            outcome.error.clone()
        };
        let summary = summary(outcome, stored, error.as_deref());
        self.report(
            token,
            WorkDoneProgress::End(WorkDoneProgressEnd {
                message: Some(summary),
            }),
        )
        .await;
        if let (Some(e), false) = (&outcome.error, cancelled) {
            self.server
                .client
                .show_message(MessageType::ERROR, format!("refine: {e}"))
                .await;
        }
        let params = finished_params(
            outcome,
            self.id.clone(),
            self.uri.as_str().to_owned(),
            stored,
            error,
        );
        self.server
            .client
            .send_notification::<ReviewFinished>(params)
            .await;
    }

    /// `workspace/applyEdit` with the stored revision, if it still fits the document.
    async fn apply_revision(&self) {
        let edit = {
            let st = self.server.lock();
            st.document(self.uri.as_str()).and_then(|ds| {
                let done = ds.done(&self.id)?;
                if done.version != ds.doc().version() {
                    return None;
                }
                let edits = done.revision.as_deref()?;
                let edit = st.revision_edit(ds.doc().rope(), done, edits);
                Some(convert::workspace_edit(&self.uri, &edit))
            })
        };
        let Some(edit) = edit else { return };
        match self.server.client.apply_edit(edit).await {
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
        match self
            .server
            .client
            .create_work_done_progress(token.clone())
            .await
        {
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
    ) -> Result<Arc<Providers>, ServiceError> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Option<u64>)>();
        let forward = {
            let client = self.server.client.clone();
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
                        send_progress(&client, t, download_report(done, pct)).await;
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
            send_progress(&self.server.client, t, value).await;
        }
    }
}

/// The outcome of a review that panicked: an error naming the panic.
fn panicked(panic: Box<dyn Any + Send>) -> ReviewOutcome {
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

fn report(message: String) -> WorkDoneProgress {
    WorkDoneProgress::Report(WorkDoneProgressReport {
        message: Some(message),
        cancellable: Some(false),
        percentage: None,
    })
}

/// A progress report of the model download: `done` bytes, `pct` of the whole when known.
fn download_report(done: u64, pct: Option<u32>) -> WorkDoneProgress {
    WorkDoneProgress::Report(WorkDoneProgressReport {
        message: Some(format!(
            "downloading the local model: {:.1} MB",
            done as f64 / 1e6
        )),
        cancellable: Some(false),
        percentage: pct,
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

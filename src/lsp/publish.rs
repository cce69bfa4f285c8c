//! Getting what changed to the editor: the diagnostics publisher (one task, one document at a
//! time, always from the state as it is when sent) and the refresh requests that make a client
//! pull hints, lenses and diagnostics again.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::Uri;

use super::capabilities::ClientCaps;
use super::state::{State, lock};
use super::views;

/// A request to publish a document's diagnostics, acknowledged once sent.
type PublishRequest = (String, Option<oneshot::Sender<()>>);

/// The handle to the diagnostics publisher.
#[derive(Clone)]
pub struct Publisher(mpsc::UnboundedSender<PublishRequest>);

impl Publisher {
    /// Starts the publisher for `client` on the state.
    pub fn start(client: Client, state: Arc<Mutex<State>>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(publisher(client, state, rx));
        Self(tx)
    }

    /// Has `uri`'s diagnostics published, without waiting.
    pub fn publish(&self, uri: &str) {
        let _ = self.0.send((uri.to_owned(), None));
    }

    /// Has `uri`'s diagnostics published and waits until they are sent.
    pub async fn publish_and_wait(&self, uri: &str) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.0.send((uri.to_owned(), Some(done_tx))).is_ok() {
            let _ = done_rx.await;
        }
    }
}

/// Publishes diagnostics, one document at a time, always from the state as it is when sent.
async fn publisher(
    client: Client,
    state: Arc<Mutex<State>>,
    mut rx: mpsc::UnboundedReceiver<PublishRequest>,
) {
    while let Some(first) = rx.recv().await {
        let mut acks = Vec::new();
        let mut uris = BTreeSet::new();
        let mut take = |(uri, ack): PublishRequest| {
            uris.insert(uri);
            acks.extend(ack);
        };
        take(first);
        while let Ok(next) = rx.try_recv() {
            take(next);
        }
        for key in uris {
            let Ok(uri) = Uri::from_str(&key) else {
                continue;
            };
            let (diags, version, push) = {
                let st = lock(&state);
                match st.document(&key) {
                    None => (Vec::new(), None, st.caps().push),
                    Some(ds) => (
                        views::diagnostics(ds, st.encoding()),
                        Some(ds.doc().version()),
                        st.caps().push,
                    ),
                }
            };
            if !push {
                continue;
            }
            client.publish_diagnostics(uri, diags, version).await;
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// Asks the client to pull hints, lenses (and diagnostics) again, without waiting for it.
pub fn refresh_views(client: &Client, caps: ClientCaps, all: bool) {
    let client = client.clone();
    tokio::spawn(async move { refresh(&client, caps, all).await });
}

/// Asks the client to pull hints, lenses (and diagnostics) again; each request waits at most
/// two seconds for its answer.
pub async fn refresh(client: &Client, caps: ClientCaps, all: bool) {
    let wait = std::time::Duration::from_secs(2);
    if caps.lens_refresh {
        let _ = tokio::time::timeout(wait, client.code_lens_refresh()).await;
    }
    if !all {
        return;
    }
    if caps.inlay_refresh {
        let _ = tokio::time::timeout(wait, client.inlay_hint_refresh()).await;
    }
    if caps.diagnostic_refresh && caps.pull {
        let _ = tokio::time::timeout(wait, client.workspace_diagnostic_refresh()).await;
    }
}

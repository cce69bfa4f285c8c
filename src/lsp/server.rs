//! The language server's handle: the client, the shared state and the diagnostics publisher.
//! Handlers and review jobs get it; `lsp/mod.rs` implements `LanguageServer` on it by
//! delegating to [`super::handlers`].

use std::sync::{Arc, Mutex, MutexGuard};

use tower_lsp_server::Client;

use super::publish::{Publisher, refresh_views};
use super::state::{self, State};

/// The language server.
#[derive(Clone)]
pub struct Backend {
    /// To talk to the editor.
    pub(super) client: Client,
    /// Shared state.
    pub(super) state: Arc<Mutex<State>>,
    /// The diagnostics publisher.
    pub(super) publish: Publisher,
}

impl Backend {
    /// A server talking to `client`; starts the diagnostics publisher.
    pub fn new(client: Client) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let publish = Publisher::start(client.clone(), state.clone());
        Self {
            client,
            state,
            publish,
        }
    }

    /// Locks the state (see [`state::lock`]).
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        state::lock(&self.state)
    }

    /// Has `uri`'s diagnostics published again and the client pull its views again.
    pub(crate) fn republish(&self, uri: &str) {
        self.publish.publish(uri);
        refresh_views(&self.client, self.lock().caps(), true);
    }
}

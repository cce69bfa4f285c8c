//! `initialized`: pulls the editor's configuration, warms the embedded model, shows the
//! configuration's warnings and logs which provider reviews go to.

use tower_lsp_server::ls_types::{InitializedParams, MessageType};

use crate::lsp::configuration;
use crate::lsp::server::Backend;

/// Handles `initialized`.
pub async fn run(server: &Backend, _: InitializedParams) {
    configuration::pull(server);
    let (service, warnings) = {
        let st = server.lock();
        (st.service(), st.startup_warnings())
    };
    // The embedded model loads and reads its prompt head while the user picks lines.
    if let Some(service) = service.clone() {
        tokio::spawn(async move { service.warm().await });
    }
    let provider = service
        .as_ref()
        .ok_or_else(|| "the server is not initialized".to_owned())
        .and_then(|s| s.providers().map_err(String::from))
        .map(|p| p.describe());
    configuration::show_warnings(&server.client, warnings).await;
    let (kind, line) = match provider {
        Ok(p) => (MessageType::INFO, format!("refine-ls: using {p}")),
        Err(e) => (MessageType::WARNING, format!("refine-ls: {e}")),
    };
    server.client.log_message(kind, line).await;
}

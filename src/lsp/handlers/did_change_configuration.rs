//! `workspace/didChangeConfiguration`: the editor's changed settings merge into its layer;
//! `settings: null` (or `{}`) means "ask me", and the values come by `workspace/configuration`.

use serde_json::Value;
use tower_lsp_server::ls_types::DidChangeConfigurationParams;

use crate::lsp::configuration::{self, editor_settings};
use crate::lsp::server::Backend;
use crate::lsp::state::EditorSettings;

/// Handles `workspace/didChangeConfiguration`.
pub async fn run(server: &Backend, params: DidChangeConfigurationParams) {
    let empty = match &params.settings {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        _ => false,
    };
    if empty && server.lock().caps().configuration {
        configuration::pull(server);
        return;
    }
    let changed = editor_settings(Some(params.settings));
    let warnings = server.lock().reconfigure(EditorSettings::Changed(changed));
    configuration::show_warnings(&server.client, warnings).await;
}

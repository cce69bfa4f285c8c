//! The editor's side of the configuration: the `refine` settings inside what an editor sends
//! (initialization options, `didChangeConfiguration`, the answer to `workspace/configuration`),
//! the workspace trust it passes on, and the configuration pull.

use serde_json::Value;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::{ConfigurationItem, MessageType};

use super::server::Backend;
use super::state::{EditorSettings, lock};

/// The initialization option by which an editor passes on its own workspace trust.
const TRUSTED_WORKSPACE: &str = "trustedWorkspace";

/// Whether the editor says the user trusted this workspace (`initializationOptions.
/// trustedWorkspace: true`; the VS Code extension sends it from VS Code's own workspace trust).
/// The editor is the user's side: it started this server.
pub fn editor_trusts_workspace(options: Option<&Value>) -> bool {
    options
        .and_then(|o| o.get(TRUSTED_WORKSPACE))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The `refine` settings inside what an editor sends (or the whole object if it is flat).
pub fn editor_settings(v: Option<Value>) -> Option<Value> {
    let Value::Object(mut map) = v? else {
        return None;
    };
    map.remove(TRUSTED_WORKSPACE);
    if let Some(inner) = map.remove("refine") {
        return Some(inner);
    }
    map.remove("positionEncoding");
    (!map.is_empty()).then_some(Value::Object(map))
}

/// Asks the client for the `refine` section (`workspace/configuration`) in a task, and makes
/// the answer the editor layer. A `null` answer (nothing configured there) changes nothing.
pub fn pull(server: &Backend) {
    if !server.lock().caps().configuration {
        return;
    }
    let server = server.clone();
    tokio::spawn(async move {
        let item = ConfigurationItem {
            scope_uri: None,
            section: Some("refine".to_owned()),
        };
        let answer = match server.client.configuration(vec![item]).await {
            Ok(mut values) if !values.is_empty() => values.swap_remove(0),
            Ok(_) => return,
            Err(e) => {
                tracing::warn!("workspace/configuration failed: {e}");
                return;
            }
        };
        if !answer.is_object() {
            return;
        }
        let warnings =
            lock(&server.state).reconfigure(EditorSettings::Whole(editor_settings(Some(answer))));
        show_warnings(&server.client, warnings).await;
    });
}

/// Shows configuration warnings, one message each.
pub async fn show_warnings(client: &Client, warnings: Vec<String>) {
    for w in warnings {
        client
            .show_message(MessageType::WARNING, format!("refine: {w}"))
            .await;
    }
}

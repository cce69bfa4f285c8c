//! `initialize`: client capabilities and the position encoding, the workspace and its
//! configuration; answers with the server's capabilities.

use std::path::PathBuf;

use tower_lsp_server::jsonrpc::Result as RpcResult;
use tower_lsp_server::ls_types::{InitializeParams, InitializeResult};

use crate::lsp::capabilities::{self, ClientCaps};
use crate::lsp::configuration::{editor_settings, editor_trusts_workspace};
use crate::lsp::convert;
use crate::lsp::server::Backend;
use crate::lsp::state::Setup;

/// Handles `initialize`.
pub async fn run(server: &Backend, params: InitializeParams) -> RpcResult<InitializeResult> {
    let encoding = convert::negotiate_encoding(
        capabilities::forced_encoding(&params),
        capabilities::offered_encodings(&params),
    );
    let caps = ClientCaps::read(&params);
    let setup = Setup {
        caps,
        encoding,
        root: workspace_root(&params),
        trusted_by_editor: editor_trusts_workspace(params.initialization_options.as_ref()),
        editor: editor_settings(params.initialization_options),
    };
    server.lock().initialize(setup);
    Ok(InitializeResult {
        capabilities: capabilities::server(caps, convert::encoding_kind(encoding)),
        server_info: Some(capabilities::server_info()),
        offset_encoding: None,
    })
}

/// The first workspace folder, else the (deprecated) root URI, as a path.
fn workspace_root(params: &InitializeParams) -> Option<PathBuf> {
    params
        .workspace_folders
        .as_ref()
        .and_then(|f| f.first())
        .and_then(|f| convert::file_path(&f.uri))
        .or_else(|| {
            #[allow(deprecated)]
            params.root_uri.as_ref().and_then(convert::file_path)
        })
}

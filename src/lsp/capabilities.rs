//! Capabilities: what the client can do, read once from `initialize`, and what the server
//! offers, built once from it.

use serde_json::Value;
use tower_lsp_server::ls_types::{
    self as lsp, CodeActionKind, CodeActionProviderCapability, ExecuteCommandOptions,
    InitializeParams, OneOf, PositionEncodingKind, ServerCapabilities, ServerInfo,
    TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions,
};

use super::command::Command;

/// Code action kind of "Refine: review selection".
pub const KIND_REVIEW: &str = "refactor.refine.review";
/// Code action kind of "Refine: refine selection".
pub const KIND_REFINE: &str = "refactor.rewrite.refine";
/// Code action kind of "Refine: dismiss this finding" and its wider forms.
pub const KIND_DISMISS: &str = "quickfix.refine.dismiss";

/// Client capabilities the server acts on.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientCaps {
    /// `workspace/inlayHint/refresh`.
    pub inlay_refresh: bool,
    /// `workspace/codeLens/refresh`.
    pub lens_refresh: bool,
    /// `workspace/diagnostic/refresh`.
    pub diagnostic_refresh: bool,
    /// Change annotations in workspace edits.
    pub change_annotations: bool,
    /// The client resolves a code action's `edit` (`codeAction/resolve`): revision edits are
    /// computed then, not with the list.
    pub resolve_edit: bool,
    /// Push diagnostics (`textDocument/publishDiagnostics`).
    pub push: bool,
    /// Serve pull diagnostics (`textDocument/diagnostic`).
    pub pull: bool,
    /// The client answers `workspace/configuration` (section `refine`).
    pub configuration: bool,
    /// The client accepts `window/workDoneProgress/create`.
    pub progress: bool,
}

impl ClientCaps {
    /// What the client announced in `initialize`, with `initializationOptions.diagnostics`
    /// (`push`, `pull` or `both`, the default) choosing how diagnostics go out.
    pub fn read(params: &InitializeParams) -> Self {
        let caps = &params.capabilities;
        let diagnostics_mode = params
            .initialization_options
            .as_ref()
            .and_then(|o| o.get("diagnostics"))
            .and_then(Value::as_str)
            .unwrap_or("both");
        let client_pulls = caps
            .text_document
            .as_ref()
            .is_some_and(|t| t.diagnostic.is_some());
        let workspace = caps.workspace.as_ref();
        Self {
            inlay_refresh: workspace
                .and_then(|w| w.inlay_hint.as_ref())
                .and_then(|c| c.refresh_support)
                .unwrap_or(false),
            lens_refresh: workspace
                .and_then(|w| w.code_lens.as_ref())
                .and_then(|c| c.refresh_support)
                .unwrap_or(false),
            diagnostic_refresh: workspace
                .and_then(|w| w.diagnostics.as_ref())
                .and_then(|c| c.refresh_support)
                .unwrap_or(false),
            change_annotations: workspace
                .and_then(|w| w.workspace_edit.as_ref())
                .and_then(|e| e.change_annotation_support.as_ref())
                .is_some(),
            configuration: workspace.and_then(|w| w.configuration).unwrap_or(false),
            resolve_edit: caps
                .text_document
                .as_ref()
                .and_then(|t| t.code_action.as_ref())
                .and_then(|c| c.resolve_support.as_ref())
                .is_some_and(|r| r.properties.iter().any(|p| p == "edit")),
            push: diagnostics_mode != "pull" || !client_pulls,
            pull: client_pulls && diagnostics_mode != "push",
            progress: caps
                .window
                .as_ref()
                .and_then(|w| w.work_done_progress)
                .unwrap_or(false),
        }
    }
}

/// The encoding `initializationOptions.positionEncoding` asks for, if any.
pub fn forced_encoding(params: &InitializeParams) -> Option<&str> {
    params
        .initialization_options
        .as_ref()
        .and_then(|o| o.get("positionEncoding"))
        .and_then(Value::as_str)
}

/// The encodings the client offers (`general.positionEncodings`), in its order.
pub fn offered_encodings(params: &InitializeParams) -> Option<&[PositionEncodingKind]> {
    params
        .capabilities
        .general
        .as_ref()
        .and_then(|g| g.position_encodings.as_deref())
}

/// What the server offers a client with `caps`, positions in `encoding`.
pub fn server(caps: ClientCaps, encoding: PositionEncodingKind) -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(encoding),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                ..TextDocumentSyncOptions::default()
            },
        )),
        code_action_provider: Some(CodeActionProviderCapability::Options(
            lsp::CodeActionOptions {
                code_action_kinds: Some(vec![
                    CodeActionKind::QUICKFIX,
                    CodeActionKind::new(KIND_REVIEW),
                    CodeActionKind::new(KIND_REFINE),
                ]),
                resolve_provider: Some(caps.resolve_edit),
                ..lsp::CodeActionOptions::default()
            },
        )),
        inlay_hint_provider: Some(OneOf::Left(true)),
        hover_provider: Some(lsp::HoverProviderCapability::Simple(true)),
        code_lens_provider: Some(lsp::CodeLensOptions {
            resolve_provider: Some(false),
        }),
        diagnostic_provider: caps.pull.then(|| {
            lsp::DiagnosticServerCapabilities::Options(lsp::DiagnosticOptions {
                identifier: Some("refine".to_owned()),
                inter_file_dependencies: false,
                workspace_diagnostics: false,
                ..lsp::DiagnosticOptions::default()
            })
        }),
        execute_command_provider: Some(ExecuteCommandOptions {
            commands: Command::names(),
            ..ExecuteCommandOptions::default()
        }),
        ..ServerCapabilities::default()
    }
}

/// The server's name and version.
pub fn server_info() -> ServerInfo {
    ServerInfo {
        name: "refine-ls".to_owned(),
        version: Some(env!("CARGO_PKG_VERSION").to_owned()),
    }
}

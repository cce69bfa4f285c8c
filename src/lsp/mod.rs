//! The protocol layer: capabilities, the LSP handlers, and the diagnostics publisher.
//! Handlers are thin and never await the model: they validate, mutate the state under its
//! lock, hand long work to a [`job::Job`], and return.

pub mod actions;
pub mod commands;
pub mod convert;
pub mod job;
pub mod state;
pub mod transport;
pub mod views;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::mpsc;
use tower_lsp_server::jsonrpc::{Error as RpcError, Result as RpcResult};
use tower_lsp_server::ls_types::OneOf;
use tower_lsp_server::ls_types::{
    self as lsp, CodeActionKind, CodeActionParams, CodeActionProviderCapability,
    CodeActionResponse, DidChangeConfigurationParams, DidChangeTextDocumentParams,
    DidCloseTextDocumentParams, DidOpenTextDocumentParams, ExecuteCommandOptions,
    ExecuteCommandParams, InitializeParams, InitializeResult, InitializedParams, MessageType,
    ServerCapabilities, ServerInfo, TextDocumentSyncCapability, TextDocumentSyncKind,
    TextDocumentSyncOptions, Uri,
};
use tower_lsp_server::{Client, LanguageServer, LspService, Server as LspTransport};

use crate::config::{Source, TrustedBy};
use crate::document::Document;
use crate::prompts::Prompts;
use job::PublishRequest;
use state::{ChangeEffects, DocState, State, lock};

/// Runs the server on stdin/stdout until the client exits.
pub async fn serve_stdio() {
    let (service, socket) = LspService::build(Backend::new)
        .custom_method(transport::MALFORMED_METHOD, Backend::malformed)
        // (tower-lsp-server has no handler for this notification of LSP 3.15.)
        .custom_method("window/workDoneProgress/cancel", Backend::progress_cancel)
        .finish();
    let tags = transport::Tags::default();
    let stdin = transport::guard_noting(tokio::io::stdin(), tags.clone());
    let (stdout, written) = transport::tagger(tokio::io::stdout(), tags);
    LspTransport::new(stdin, stdout, socket)
        .concurrency_level(64)
        .serve(service)
        .await;
    // The framework's writer is gone: the last frames are on their way out.
    let _ = written.await;
}

/// The language server.
pub struct Backend {
    client: Client,
    state: Arc<Mutex<State>>,
    publish: mpsc::UnboundedSender<PublishRequest>,
}

impl Backend {
    /// A server talking to `client`; starts the diagnostics publisher.
    pub fn new(client: Client) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(publisher(client.clone(), state.clone(), rx));
        Self {
            client,
            state,
            publish: tx,
        }
    }

    /// Answers a malformed frame (see [`transport`]) with the error the client should get.
    /// `window/workDoneProgress/cancel`: the user pressed cancel on a review's progress.
    async fn progress_cancel(&self, params: lsp::WorkDoneProgressCancelParams) {
        let key = job::progress_key(&params.token);
        let uri = {
            let mut st = lock(&self.state);
            let id = st.progress_reviews.get(&key).cloned();
            id.and_then(|id| st.cancel(&id))
        };
        match uri {
            Some(uri) => self.republish(&uri),
            None => tracing::debug!("no running review has progress token {key}"),
        }
    }

    async fn malformed(&self, params: Value) -> RpcResult<Value> {
        let code = params.get("code").and_then(Value::as_i64).unwrap_or(-32700);
        let reason = params
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("malformed message")
            .to_owned();
        tracing::warn!("malformed message from the client: {reason}");
        Err(RpcError {
            code: code.into(),
            message: reason.into(),
            data: None,
        })
    }

    /// Asks the client for the `refine` section (`workspace/configuration`) in a task, and makes
    /// the answer the editor layer. A `null` answer (nothing configured there) changes nothing.
    fn pull_configuration(&self) {
        if !lock(&self.state).caps.configuration {
            return;
        }
        let client = self.client.clone();
        let state = Arc::clone(&self.state);
        tokio::spawn(async move {
            let item = lsp::ConfigurationItem {
                scope_uri: None,
                section: Some("refine".to_owned()),
            };
            let answer = match client.configuration(vec![item]).await {
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
            let warnings = {
                let mut st = lock(&state);
                st.layers.reload_files();
                st.reload_config(editor_settings(Some(answer)));
                st.config_warnings()
            };
            for w in warnings {
                client
                    .show_message(MessageType::WARNING, format!("refine: {w}"))
                    .await;
            }
        });
    }

    pub(crate) fn republish(&self, uri: &str) {
        let _ = self.publish.send((uri.to_owned(), None));
        refresh_views(&self.client, lock(&self.state).caps, true);
    }
}

/// Asks the client to pull hints, lenses (and diagnostics) again, without waiting for it.
pub fn refresh_views(client: &Client, caps: state::ClientCaps, all: bool) {
    let client = client.clone();
    tokio::spawn(async move { refresh(&client, caps, all).await });
}

/// Asks the client to pull hints, lenses (and diagnostics) again; each request waits at most
/// two seconds for its answer.
pub async fn refresh(client: &Client, caps: state::ClientCaps, all: bool) {
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

/// The `refine` settings inside what an editor sends (or the whole object if it is flat).
/// Whether the editor says the user trusted this workspace (`initializationOptions.
/// trustedWorkspace: true`; the VS Code extension sends it from VS Code's own workspace trust).
/// The editor is the user's side: it started this server.
fn editor_trusts_workspace(options: Option<&Value>) -> bool {
    options
        .and_then(|o| o.get(TRUSTED_WORKSPACE))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The initialization option by which an editor passes on its own workspace trust.
const TRUSTED_WORKSPACE: &str = "trustedWorkspace";

fn editor_settings(v: Option<Value>) -> Option<Value> {
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
                match st.docs.get(&key) {
                    None => (Vec::new(), None, st.caps.push),
                    Some(ds) => (
                        views::diagnostics(ds, st.encoding),
                        Some(ds.doc.version()),
                        st.caps.push,
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

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> RpcResult<InitializeResult> {
        let forced = params
            .initialization_options
            .as_ref()
            .and_then(|o| o.get("positionEncoding"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let offered = params
            .capabilities
            .general
            .as_ref()
            .and_then(|g| g.position_encodings.clone());
        let encoding = convert::negotiate_encoding(forced.as_deref(), offered.as_deref());
        let root: Option<PathBuf> = params
            .workspace_folders
            .as_ref()
            .and_then(|f| f.first())
            .and_then(|f| f.uri.to_file_path().map(|p| p.into_owned()))
            .or_else(|| {
                #[allow(deprecated)]
                params
                    .root_uri
                    .as_ref()
                    .and_then(|u| u.to_file_path().map(|p| p.into_owned()))
            });
        let caps = &params.capabilities;
        let diagnostics_mode = params
            .initialization_options
            .as_ref()
            .and_then(|o| o.get("diagnostics"))
            .and_then(Value::as_str)
            .unwrap_or("both")
            .to_owned();
        let client_pulls = caps
            .text_document
            .as_ref()
            .is_some_and(|t| t.diagnostic.is_some());
        let workspace = caps.workspace.as_ref();
        let client_caps = state::ClientCaps {
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
        };
        {
            let mut st = lock(&self.state);
            st.caps = client_caps;
            st.encoding = encoding;
            st.supports_progress = params
                .capabilities
                .window
                .as_ref()
                .and_then(|w| w.work_done_progress)
                .unwrap_or(false);
            if editor_trusts_workspace(params.initialization_options.as_ref()) {
                st.layers.grant_trust(TrustedBy::Editor);
            }
            st.layers.load_files(root.as_deref());
            st.prompts = Arc::new(Prompts::load(root.as_deref()));
            st.root = root;
            if let Some(v) = editor_settings(params.initialization_options) {
                st.layers.set(Source::Editor, v);
            }
            st.reload_config(None);
        }
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                position_encoding: Some(convert::encoding_kind(encoding)),
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
                            CodeActionKind::new(actions::KIND_REVIEW),
                            CodeActionKind::new(actions::KIND_REFINE),
                        ]),
                        resolve_provider: Some(client_caps.resolve_edit),
                        ..lsp::CodeActionOptions::default()
                    },
                )),
                inlay_hint_provider: Some(OneOf::Left(true)),
                hover_provider: Some(lsp::HoverProviderCapability::Simple(true)),
                code_lens_provider: Some(lsp::CodeLensOptions {
                    resolve_provider: Some(false),
                }),
                diagnostic_provider: client_caps.pull.then(|| {
                    lsp::DiagnosticServerCapabilities::Options(lsp::DiagnosticOptions {
                        identifier: Some("refine".to_owned()),
                        inter_file_dependencies: false,
                        workspace_diagnostics: false,
                        ..lsp::DiagnosticOptions::default()
                    })
                }),
                execute_command_provider: Some(ExecuteCommandOptions {
                    commands: commands::COMMANDS.iter().map(|c| (*c).to_owned()).collect(),
                    ..ExecuteCommandOptions::default()
                }),
                ..ServerCapabilities::default()
            },
            server_info: Some(ServerInfo {
                name: "refine-ls".to_owned(),
                version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        self.pull_configuration();
        // The embedded model loads and reads its prompt head while the user picks lines.
        if let Some(service) = lock(&self.state).service.clone() {
            tokio::spawn(async move { service.warm().await });
        }
        let (warnings, provider) = {
            let st = lock(&self.state);
            let mut w = st.config_warnings();
            w.extend(st.prompts.warnings.iter().cloned());
            let described = st
                .service
                .as_ref()
                .ok_or_else(|| "the server is not initialized".to_owned())
                .and_then(|s| s.providers())
                .map(|p| p.describe());
            (w, described)
        };
        for w in &warnings {
            self.client
                .show_message(MessageType::WARNING, format!("refine: {w}"))
                .await;
        }
        match provider {
            Ok(p) => {
                self.client
                    .log_message(MessageType::INFO, format!("refine-ls: using {p}"))
                    .await
            }
            Err(e) => {
                self.client
                    .log_message(MessageType::WARNING, format!("refine-ls: {e}"))
                    .await
            }
        }
    }

    async fn shutdown(&self) -> RpcResult<()> {
        let mut st = lock(&self.state);
        let uris: Vec<String> = st.docs.keys().cloned().collect();
        for uri in uris {
            st.clear(&uri);
        }
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let td = params.text_document;
        let key = td.uri.as_str().to_owned();
        let mut st = lock(&self.state);
        st.close(&key);
        st.docs.insert(
            key,
            DocState {
                doc: Document::new(&td.text, td.version, &td.language_id),
                reviews: Vec::new(),
                out_of_sync: false,
            },
        );
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let key = params.text_document.uri.as_str().to_owned();
        let mut effects = ChangeEffects::default();
        let mut lost: Option<String> = None;
        {
            let mut st = lock(&self.state);
            let enc = st.encoding;
            for change in params.content_changes {
                let range = change
                    .range
                    .map(|r| (convert::text_pos(r.start), convert::text_pos(r.end)));
                let Some(ds) = st.docs.get_mut(&key) else {
                    tracing::warn!(uri = %key, "didChange for a document that is not open");
                    return;
                };
                if ds.out_of_sync && range.is_some() {
                    // Applied to a text that may not be the client's, it would only be wrong.
                    continue;
                }
                let was_out = ds.out_of_sync;
                match ds.doc.apply_change(range, &change.text, enc) {
                    Ok(span) => {
                        if was_out {
                            // A full-text change: the client's text again.
                            ds.out_of_sync = false;
                            tracing::info!(uri = %key, "document in sync again");
                        }
                        st.on_change(&key, span, &mut effects);
                    }
                    Err(e) => {
                        tracing::error!(uri = %key, "change rejected: {e}; the document is out of sync");
                        ds.out_of_sync = true;
                        lost = Some(e.to_string());
                        st.clear(&key);
                        effects.republish = true;
                    }
                }
            }
            if let Some(ds) = st.docs.get_mut(&key) {
                ds.doc.set_version(params.text_document.version);
            }
            st.stamp_version(&key);
            if let Some(service) = &st.service {
                for id in &effects.superseded {
                    service.record_fate(id, crate::learning::Fate::Superseded, Vec::new(), None);
                }
            }
        }
        if effects.republish {
            self.republish(&key);
        }
        if let Some(why) = lost {
            self.client
                .show_message(
                    MessageType::ERROR,
                    format!(
                        "refine: an edit to {key} could not be applied ({why}); its reviews are cleared and none will run until the file is reopened or sent whole"
                    ),
                )
                .await;
        }
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let key = params.text_document.uri.as_str().to_owned();
        lock(&self.state).close(&key);
        self.republish(&key);
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        // `settings: null` (or `{}`) means "ask me": the values come by `workspace/configuration`.
        let empty = match &params.settings {
            Value::Null => true,
            Value::Object(m) => m.is_empty(),
            _ => false,
        };
        if empty && lock(&self.state).caps.configuration {
            self.pull_configuration();
            return;
        }
        let warnings = {
            let mut st = lock(&self.state);
            // The files are read again; the editor's layer keeps what it had, and what changed
            // merges in (a client may send only the changed section).
            st.layers.reload_files();
            if let Some(changed) = editor_settings(Some(params.settings)) {
                st.layers.merge(Source::Editor, changed);
            }
            st.reload_config(None);
            st.config_warnings()
        };
        for w in warnings {
            self.client
                .show_message(MessageType::WARNING, format!("refine: {w}"))
                .await;
        }
    }

    async fn code_action(&self, params: CodeActionParams) -> RpcResult<Option<CodeActionResponse>> {
        Ok(actions::code_actions(&lock(&self.state), &params))
    }

    async fn code_action_resolve(&self, action: lsp::CodeAction) -> RpcResult<lsp::CodeAction> {
        actions::resolve(&lock(&self.state), action)
            .map_err(tower_lsp_server::jsonrpc::Error::invalid_params)
    }

    async fn inlay_hint(
        &self,
        params: lsp::InlayHintParams,
    ) -> RpcResult<Option<Vec<lsp::InlayHint>>> {
        let st = lock(&self.state);
        let Some(ds) = st.docs.get(params.text_document.uri.as_str()) else {
            return Ok(None);
        };
        let range = convert::char_range(ds.doc.rope(), params.range, st.encoding);
        Ok(Some(views::inlay_hints(
            ds,
            range,
            &st.config().hints,
            st.encoding,
        )))
    }

    async fn hover(&self, params: lsp::HoverParams) -> RpcResult<Option<lsp::Hover>> {
        let st = lock(&self.state);
        let doc = &params.text_document_position_params;
        let Some(ds) = st.docs.get(doc.text_document.uri.as_str()) else {
            return Ok(None);
        };
        if !st.config().hints.hover {
            return Ok(None);
        }
        let at =
            crate::document::to_char(ds.doc.rope(), convert::text_pos(doc.position), st.encoding);
        Ok(views::hover(ds, at, st.encoding))
    }

    async fn code_lens(
        &self,
        params: lsp::CodeLensParams,
    ) -> RpcResult<Option<Vec<lsp::CodeLens>>> {
        let st = lock(&self.state);
        let Some(ds) = st.docs.get(params.text_document.uri.as_str()) else {
            return Ok(None);
        };
        if !st.config().hints.code_lens {
            return Ok(Some(Vec::new()));
        }
        Ok(Some(views::code_lenses(
            ds,
            &params.text_document.uri,
            st.encoding,
        )))
    }

    async fn diagnostic(
        &self,
        params: lsp::DocumentDiagnosticParams,
    ) -> RpcResult<lsp::DocumentDiagnosticReportResult> {
        let st = lock(&self.state);
        let items = st
            .docs
            .get(params.text_document.uri.as_str())
            .map(|ds| views::diagnostics(ds, st.encoding))
            .unwrap_or_default();
        Ok(lsp::DocumentDiagnosticReportResult::Report(
            lsp::DocumentDiagnosticReport::Full(lsp::RelatedFullDocumentDiagnosticReport {
                related_documents: None,
                full_document_diagnostic_report: lsp::FullDocumentDiagnosticReport {
                    result_id: None,
                    items,
                },
            }),
        ))
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> RpcResult<Option<Value>> {
        commands::execute(self, params).await
    }
}

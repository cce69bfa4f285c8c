//! The protocol layer: capabilities, the LSP handlers, and the diagnostics publisher.
//! Handlers are thin and never await the model: they validate, mutate the state under its
//! lock, hand long work to a [`job::Job`], and return.

pub mod convert;
pub mod job;
pub mod state;
pub mod transport;
pub mod views;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc::{Error as RpcError, Result as RpcResult};
use tower_lsp_server::ls_types::OneOf;
use tower_lsp_server::ls_types::{
    self as lsp, CodeAction, CodeActionKind, CodeActionOrCommand, CodeActionParams,
    CodeActionProviderCapability, CodeActionResponse, Command, DidChangeConfigurationParams,
    DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams,
    ExecuteCommandOptions, ExecuteCommandParams, InitializeParams, InitializeResult,
    InitializedParams, MessageType, ServerCapabilities, ServerInfo, TextDocumentSyncCapability,
    TextDocumentSyncKind, TextDocumentSyncOptions, Uri,
};
use tower_lsp_server::{Client, LanguageServer, LspService, Server as LspTransport};

use crate::config::Source;
use crate::document::{Document, line_span, widen_to_lines};
use crate::engine::{ReviewInput, language_for_path};
use crate::prompts::Prompts;
use job::{Job, PublishRequest};
use state::{ChangeEffects, DocState, ReviewEntry, ReviewStatus, State, lock};

/// Commands the server executes.
pub const COMMANDS: &[&str] = &[
    "refine.review",
    "refine.refine",
    "refine.cancel",
    "refine.clear",
    "refine.showRevision",
    "refine.applyRevision",
    "refine.reReview",
    "refine.dismiss",
];

/// Code action kind of "Refine: review selection".
const KIND_REVIEW: &str = "refactor.refine.review";
/// Code action kind of "Refine: refine selection".
const KIND_REFINE: &str = "refactor.rewrite.refine";

/// Runs the server on stdin/stdout until the client exits.
pub async fn serve_stdio() {
    let (service, socket) = LspService::build(Backend::new)
        .custom_method(transport::MALFORMED_METHOD, Backend::malformed)
        .finish();
    let stdin = transport::guard(tokio::io::stdin());
    LspTransport::new(stdin, tokio::io::stdout(), socket)
        .concurrency_level(64)
        .serve(service)
        .await;
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
                let root = st.root.clone();
                st.layers = Default::default();
                st.layers.load_files(root.as_deref());
                st.reload_config(editor_settings(Some(answer)));
                st.resolved.warnings.clone()
            };
            for w in warnings {
                client
                    .show_message(MessageType::WARNING, format!("refine: {w}"))
                    .await;
            }
        });
    }

    fn republish(&self, uri: &str) {
        let _ = self.publish.send((uri.to_owned(), None));
        refresh_views(&self.client, lock(&self.state).caps, true);
    }

    /// Starts a review job and returns its id.
    fn start_review(
        &self,
        args: ReviewArgs,
        apply: bool,
        token: Option<lsp::ProgressToken>,
    ) -> RpcResult<String> {
        let key = args.uri.as_str().to_owned();
        let mut st = lock(&self.state);
        let encoding = st.encoding;
        let Some(ds) = st.docs.get(&key) else {
            return Err(invalid_params(format!(
                "{key} is not open: send textDocument/didOpen first"
            )));
        };
        let rope = ds.doc.rope().clone();
        let (first, last) = widen_to_lines(
            &rope,
            convert::text_pos(args.range.start),
            convert::text_pos(args.range.end),
        );
        let region = line_span(&rope, first, last);
        if rope.slice(region.clone()).chars().all(char::is_whitespace) {
            return Err(invalid_params(
                "the selected lines are empty: nothing to review".to_owned(),
            ));
        }
        let language = match ds.doc.language_id() {
            "" | "plaintext" => language_for_path(&key).to_owned(),
            id => id.to_owned(),
        };
        let _ = encoding;
        let input = ReviewInput {
            text: rope,
            path: display_path(&args.uri),
            language,
            first_line: first,
            last_line: last,
            facts: args
                .diagnostics
                .iter()
                .filter(|d| d.source.as_deref() != Some("refine"))
                .filter(|d| (first..=last).contains(&(d.range.start.line as usize)))
                .map(convert::fact)
                .collect(),
            force: args.force,
        };
        let id = st.new_review_id();
        let cancel = CancellationToken::new();
        let providers = st.providers.clone();
        // The embedded model is not downloaded yet: the job fetches it first (with progress).
        let fetch_model = st.needs_model.then(|| st.resolved.config.clone());
        let prompts = st.prompts.clone();
        let loop_config = st.resolved.config.refine_loop.clone();
        let st_cache = st.cache.clone();
        let privacy = st.resolved.config.privacy.clone();
        let redact_secrets = privacy.redact_secrets;
        let (command, refused) = crate::trust::verify_command(&st.resolved, st.root.as_deref());
        if let Some(why) = refused {
            tracing::warn!("{why}");
        }
        let command = command.and_then(|command| {
            let root = st.root.clone()?;
            let file = args
                .uri
                .to_file_path()?
                .strip_prefix(&root)
                .ok()?
                .to_path_buf();
            Some(crate::engine::verify::CommandCheck {
                command,
                root,
                file,
                timeout: std::time::Duration::from_secs(st.resolved.config.verify.timeout_secs),
            })
        });
        if !privacy.review_sensitive_files && crate::secrets::is_sensitive_path(&key) {
            return Err(invalid_params(format!(
                "{key} is a secrets file (.env*, *.pem, *.key, id_rsa*): it is never sent to a model unless privacy.review_sensitive_files is true"
            )));
        }
        let can_create_progress = st.supports_progress;
        let mut replaced = false;
        if let Some(ds) = st.docs.get_mut(&key) {
            // A new review of the same lines replaces the old one.
            ds.reviews.retain(|e| {
                let same = e.region.start < region.end && region.start < e.region.end;
                if same {
                    if let ReviewStatus::Running { cancel, .. } = &e.status {
                        cancel.cancel();
                    }
                    replaced = true;
                }
                !same
            });
            ds.reviews.push(ReviewEntry {
                id: id.clone(),
                region,
                status: ReviewStatus::Running {
                    cancel: cancel.clone(),
                    delta: 0,
                    partial: Vec::new(),
                    stage: "critique 1".to_owned(),
                },
            });
        }
        drop(st);
        if replaced {
            self.republish(&key);
        }
        let job = Job {
            client: self.client.clone(),
            state: self.state.clone(),
            publish: self.publish.clone(),
            uri: args.uri,
            id: id.clone(),
            input,
            providers,
            prompts,
            loop_config,
            redact_secrets,
            command,
            cache: st_cache,
            cancel,
            apply,
            progress_token: token,
            can_create_progress,
            fetch_model,
        };
        tokio::spawn(job.run());
        Ok(id)
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

/// `[{"uri", "reviewId"?}]` of the review commands.
struct ReviewTarget {
    uri: String,
    review_id: Option<String>,
}

impl ReviewTarget {
    fn from(arg: &Value) -> RpcResult<Self> {
        let uri = arg.get("uri").and_then(Value::as_str).ok_or_else(|| {
            invalid_params("this command takes [{\"uri\", \"reviewId\"?}]".to_owned())
        })?;
        Ok(Self {
            uri: uri.to_owned(),
            review_id: arg
                .get("reviewId")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// Arguments of `refine.review` and `refine.refine`.
#[derive(Debug, Deserialize)]
struct ReviewArgs {
    uri: Uri,
    range: lsp::Range,
    /// The editor's own diagnostics for the range (from `CodeActionContext`): facts.
    #[serde(default)]
    diagnostics: Vec<lsp::Diagnostic>,
    /// Bypass the cache.
    #[serde(default)]
    force: bool,
}

fn invalid_params(message: String) -> RpcError {
    RpcError::invalid_params(message)
}

/// A file path for the model to see, or the URI when it is not a file.
fn display_path(uri: &Uri) -> String {
    uri.to_file_path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| uri.as_str().to_owned())
}

/// The `refine` settings inside what an editor sends (or the whole object if it is flat).
fn editor_settings(v: Option<Value>) -> Option<Value> {
    let Value::Object(mut map) = v? else {
        return None;
    };
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
                            CodeActionKind::new(KIND_REVIEW),
                            CodeActionKind::new(KIND_REFINE),
                        ]),
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
                    commands: COMMANDS.iter().map(|c| (*c).to_owned()).collect(),
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
        let (warnings, provider) = {
            let st = lock(&self.state);
            let mut w = st.resolved.warnings.clone();
            w.extend(st.prompts.warnings.iter().cloned());
            let described = st.providers.as_ref().map(|p| {
                let (c, r) = (p.critic.describe(), p.reviser.describe());
                if c == r {
                    c
                } else {
                    format!("{c} (critic) and {r} (reviser)")
                }
            });
            (w, described.map_err(Clone::clone))
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
            },
        );
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let key = params.text_document.uri.as_str().to_owned();
        let mut effects = ChangeEffects::default();
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
                match ds.doc.apply_change(range, &change.text, enc) {
                    Ok(span) => st.on_change(&key, span, &mut effects),
                    Err(e) => tracing::error!(uri = %key, "change rejected: {e}"),
                }
            }
            if let Some(ds) = st.docs.get_mut(&key) {
                ds.doc.set_version(params.text_document.version);
            }
            st.stamp_version(&key);
        }
        if effects.republish {
            self.republish(&key);
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
            let root = st.root.clone();
            st.layers = Default::default();
            st.layers.load_files(root.as_deref());
            st.reload_config(editor_settings(Some(params.settings)));
            st.resolved.warnings.clone()
        };
        for w in warnings {
            self.client
                .show_message(MessageType::WARNING, format!("refine: {w}"))
                .await;
        }
    }

    async fn code_action(&self, params: CodeActionParams) -> RpcResult<Option<CodeActionResponse>> {
        let key = params.text_document.uri.as_str().to_owned();
        let only = params.context.only.clone();
        let wants = |kind: &str| {
            only.as_ref().is_none_or(|o| {
                o.iter()
                    .any(|k| kind == k.as_str() || kind.starts_with(&format!("{}.", k.as_str())))
            })
        };
        let st = lock(&self.state);
        let Some(ds) = st.docs.get(&key) else {
            return Ok(None);
        };
        let rope = ds.doc.rope();
        let mut actions = Vec::new();
        let req = convert::char_range(rope, params.range, st.encoding);
        for entry in &ds.reviews {
            let ReviewStatus::Done(done) = &entry.status else {
                continue;
            };
            let Some(edits) = &done.revision else {
                continue;
            };
            let touches = req.start <= entry.region.end && entry.region.start <= req.end;
            if !touches || done.version != ds.doc.version() || !wants("quickfix") {
                continue;
            }
            let diagnostics = done
                .findings
                .iter()
                .map(|f| convert::diagnostic(rope, f, &entry.id, st.encoding))
                .collect();
            actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                title: format!(
                    "Refine: apply revision (fixes {} of {} findings)",
                    done.fixes,
                    done.findings.len()
                ),
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(diagnostics),
                edit: Some(convert::versioned_edit(
                    rope,
                    &params.text_document.uri,
                    done.version,
                    edits,
                    st.encoding,
                    st.caps.change_annotations,
                )),
                is_preferred: Some(true),
                ..CodeAction::default()
            }));
        }
        // One quick fix per finding under the cursor whose lines the revision touches.
        for entry in &ds.reviews {
            let ReviewStatus::Done(done) = &entry.status else {
                continue;
            };
            if done.version != ds.doc.version() || !wants("quickfix") || done.per_finding.len() < 2
            {
                continue;
            }
            for (id, edits) in &done.per_finding {
                let Some(f) = done.findings.iter().find(|f| f.id == *id) else {
                    continue;
                };
                if !(req.start <= f.range.end && f.range.start <= req.end) {
                    continue;
                }
                let short: String = f.raw.message.chars().take(60).collect();
                let short = if short.len() < f.raw.message.len() {
                    format!("{short}…")
                } else {
                    short
                };
                actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                    title: format!("Refine: fix: {short}"),
                    kind: Some(CodeActionKind::QUICKFIX),
                    diagnostics: Some(vec![convert::diagnostic(rope, f, &entry.id, st.encoding)]),
                    edit: Some(convert::versioned_edit(
                        rope,
                        &params.text_document.uri,
                        done.version,
                        edits,
                        st.encoding,
                        st.caps.change_annotations,
                    )),
                    ..CodeAction::default()
                }));
            }
        }
        if params.range.start != params.range.end {
            let facts: Vec<&lsp::Diagnostic> = params
                .context
                .diagnostics
                .iter()
                .filter(|d| d.source.as_deref() != Some("refine"))
                .collect();
            let arg = json!([{ "uri": params.text_document.uri, "range": params.range, "diagnostics": facts }]);
            for (title, command, kind) in [
                ("Refine: review selection", "refine.review", KIND_REVIEW),
                ("Refine: refine selection", "refine.refine", KIND_REFINE),
            ] {
                if !wants(kind) {
                    continue;
                }
                actions.push(CodeActionOrCommand::CodeAction(CodeAction {
                    title: title.to_owned(),
                    kind: Some(CodeActionKind::new(kind)),
                    command: Some(Command {
                        title: title.to_owned(),
                        command: command.to_owned(),
                        arguments: arg.as_array().cloned(),
                    }),
                    ..CodeAction::default()
                }));
            }
        }
        Ok(Some(actions))
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
            &st.resolved.config.hints,
            st.encoding,
        )))
    }

    async fn hover(&self, params: lsp::HoverParams) -> RpcResult<Option<lsp::Hover>> {
        let st = lock(&self.state);
        let doc = &params.text_document_position_params;
        let Some(ds) = st.docs.get(doc.text_document.uri.as_str()) else {
            return Ok(None);
        };
        if !st.resolved.config.hints.hover {
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
        if !st.resolved.config.hints.code_lens {
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
        let arg = params.arguments.into_iter().next().unwrap_or(Value::Null);
        match params.command.as_str() {
            cmd @ ("refine.review" | "refine.refine") => {
                let args: ReviewArgs = serde_json::from_value(arg).map_err(|e| {
                    invalid_params(format!("{cmd} takes [{{\"uri\", \"range\"}}]: {e}"))
                })?;
                let token = params.work_done_progress_params.work_done_token;
                let id = self.start_review(args, cmd == "refine.refine", token)?;
                Ok(Some(json!({ "reviewId": id })))
            }
            "refine.cancel" => {
                let id = arg
                    .as_str()
                    .or_else(|| arg.get("reviewId").and_then(Value::as_str))
                    .ok_or_else(|| {
                        invalid_params("refine.cancel takes [{\"reviewId\"}]".to_owned())
                    })?
                    .to_owned();
                let uri = lock(&self.state).cancel(&id);
                Ok(Some(json!({ "cancelled": uri.is_some() })))
            }
            "refine.clear" => {
                let uri = arg
                    .as_str()
                    .or_else(|| arg.get("uri").and_then(Value::as_str))
                    .ok_or_else(|| invalid_params("refine.clear takes [{\"uri\"}]".to_owned()))?
                    .to_owned();
                let cleared = lock(&self.state).clear(&uri);
                self.republish(&uri);
                Ok(Some(json!({ "cleared": cleared })))
            }
            "refine.showRevision" | "refine.applyRevision" => {
                let target = ReviewTarget::from(&arg)?;
                let found = {
                    let st = lock(&self.state);
                    st.docs.get(&target.uri).and_then(|ds| {
                        let entry = ds.reviews.iter().rev().find(|e| {
                            target.review_id.as_ref().is_none_or(|id| *id == e.id)
                                && matches!(&e.status, ReviewStatus::Done(d) if d.revision.is_some())
                        })?;
                        let ReviewStatus::Done(done) = &entry.status else { return None };
                        let uri = Uri::from_str(&target.uri).ok()?;
                        let fits = done.version == ds.doc.version();
                        let diff = views::revision_diff(ds.doc.rope(), entry, done, &display_path(&uri));
                        let edit = fits.then(|| {
                            convert::versioned_edit(
                                ds.doc.rope(),
                                &uri,
                                done.version,
                                done.revision.as_deref().unwrap_or_default(),
                                st.encoding,
                                st.caps.change_annotations,
                            )
                        });
                        let revised = fits.then(|| {
                            crate::engine::edits::apply(
                                &ds.doc.rope().to_string(),
                                done.revision.as_deref().unwrap_or_default(),
                                0,
                            )
                        });
                        Some((entry.id.clone(), done.version, done.fixes, done.findings.len(), diff, edit, revised))
                    })
                };
                let Some((id, version, fixes, findings, diff, edit, revised)) = found else {
                    return Ok(Some(Value::Null));
                };
                if params.command == "refine.showRevision" {
                    return Ok(Some(
                        json!({"reviewId": id, "version": version, "fixes": fixes, "findings": findings, "diff": diff, "revised": revised}),
                    ));
                }
                let Some(edit) = edit else {
                    return Err(invalid_params(
                        "the document changed since the review: review again".to_owned(),
                    ));
                };
                // Sent from a task: a handler must not wait on the client.
                let client = self.client.clone();
                tokio::spawn(async move {
                    if let Err(e) = client.apply_edit(edit).await {
                        tracing::warn!("workspace/applyEdit failed: {e}");
                    }
                });
                Ok(Some(json!({"reviewId": id, "applied": "requested"})))
            }
            "refine.reReview" => {
                let target = ReviewTarget::from(&arg)?;
                let region = {
                    let st = lock(&self.state);
                    st.docs.get(&target.uri).and_then(|ds| {
                        let e = ds
                            .reviews
                            .iter()
                            .find(|e| target.review_id.as_ref().is_none_or(|id| *id == e.id))?;
                        Some(convert::range(ds.doc.rope(), &e.region, st.encoding))
                    })
                };
                let Some(range) = region else {
                    return Err(invalid_params("no such review to run again".to_owned()));
                };
                let uri = Uri::from_str(&target.uri)
                    .map_err(|e| invalid_params(format!("bad uri: {e}")))?;
                let id = self.start_review(
                    ReviewArgs {
                        uri,
                        range,
                        diagnostics: Vec::new(),
                        force: true,
                    },
                    false,
                    None,
                )?;
                Ok(Some(json!({ "reviewId": id })))
            }
            "refine.dismiss" => {
                let target = ReviewTarget::from(&arg)?;
                let id = target.review_id.ok_or_else(|| {
                    invalid_params("refine.dismiss takes [{\"uri\", \"reviewId\"}]".to_owned())
                })?;
                let uri = lock(&self.state).dismiss(&id);
                if let Some(uri) = &uri {
                    self.republish(uri);
                }
                Ok(Some(json!({ "dismissed": uri.is_some() })))
            }
            other => Err(invalid_params(format!(
                "unknown command `{other}`; refine-ls runs {}",
                COMMANDS.join(", ")
            ))),
        }
    }
}

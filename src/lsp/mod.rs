//! The protocol layer. [`serve`] runs the server over any byte streams (stdio in production, an
//! in-process duplex in tests); the `LanguageServer` impl here only delegates, one handler file
//! per method under [`handlers`].
//!
//! Where things are: capabilities ([`capabilities`]), the handle handlers share
//! ([`server::Backend`]), the state and its rules ([`state`], [`doc_state`]), the `refine.*`
//! commands ([`command`], [`commands`]), review jobs ([`job`]), diagnostics publishing and
//! refresh ([`publish`]), what a review looks like in an editor ([`views`]), every protocol
//! conversion ([`convert`]), our extensions to LSP ([`ext`]), the editor's settings
//! ([`configuration`]) and the guard on the wire ([`transport`]).

pub mod capabilities;
pub mod command;
pub mod commands;
pub mod configuration;
pub mod convert;
pub mod doc_state;
pub mod ext;
pub mod handlers;
pub mod job;
pub mod publish;
pub mod server;
pub mod state;
pub mod transport;
pub mod views;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tower_lsp_server::jsonrpc::Result as RpcResult;
use tower_lsp_server::ls_types::{
    self as lsp, CodeActionParams, CodeActionResponse, DidChangeConfigurationParams,
    DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams,
    ExecuteCommandParams, InitializeParams, InitializeResult, InitializedParams,
};
use tower_lsp_server::{LanguageServer, LspService, Server as LspTransport};

pub use server::Backend;

/// Runs the server on stdin/stdout until the client exits.
pub async fn serve_stdio() {
    serve(tokio::io::stdin(), tokio::io::stdout()).await;
}

/// Runs the server on `input` and `output` (LSP's Content-Length framing) until the client
/// exits or `input` ends.
pub async fn serve<I, O>(input: I, output: O)
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin + Send + 'static,
{
    let (service, socket) = LspService::build(Backend::new)
        .custom_method(transport::MALFORMED_METHOD, handlers::malformed::run)
        .custom_method(
            handlers::progress_cancel::METHOD,
            handlers::progress_cancel::run,
        )
        .finish();
    let tags = transport::Tags::default();
    let input = transport::guard_noting(input, tags.clone());
    let (output, written) = transport::tagger(output, tags);
    LspTransport::new(input, output, socket)
        .concurrency_level(64)
        .serve(service)
        .await;
    // The framework's writer is gone: the last frames are on their way out.
    let _ = written.await;
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> RpcResult<InitializeResult> {
        handlers::initialize::run(self, params).await
    }

    async fn initialized(&self, params: InitializedParams) {
        handlers::initialized::run(self, params).await;
    }

    async fn shutdown(&self) -> RpcResult<()> {
        handlers::shutdown::run(self).await
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        handlers::did_open::run(self, params).await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        handlers::did_change::run(self, params).await;
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        handlers::did_close::run(self, params).await;
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        handlers::did_change_configuration::run(self, params).await;
    }

    async fn code_action(&self, params: CodeActionParams) -> RpcResult<Option<CodeActionResponse>> {
        handlers::code_action::run(self, params).await
    }

    async fn code_action_resolve(&self, action: lsp::CodeAction) -> RpcResult<lsp::CodeAction> {
        handlers::code_action_resolve::run(self, action).await
    }

    async fn inlay_hint(
        &self,
        params: lsp::InlayHintParams,
    ) -> RpcResult<Option<Vec<lsp::InlayHint>>> {
        handlers::inlay_hint::run(self, params).await
    }

    async fn hover(&self, params: lsp::HoverParams) -> RpcResult<Option<lsp::Hover>> {
        handlers::hover::run(self, params).await
    }

    async fn code_lens(
        &self,
        params: lsp::CodeLensParams,
    ) -> RpcResult<Option<Vec<lsp::CodeLens>>> {
        handlers::code_lens::run(self, params).await
    }

    async fn diagnostic(
        &self,
        params: lsp::DocumentDiagnosticParams,
    ) -> RpcResult<lsp::DocumentDiagnosticReportResult> {
        handlers::diagnostic::run(self, params).await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> RpcResult<Option<Value>> {
        handlers::execute_command::run(self, params).await
    }
}

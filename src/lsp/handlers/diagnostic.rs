//! `textDocument/diagnostic`: pull diagnostics, the same as the pushed ones.

use tower_lsp_server::jsonrpc::Result as RpcResult;
use tower_lsp_server::ls_types::{
    DocumentDiagnosticParams, DocumentDiagnosticReport, DocumentDiagnosticReportResult,
    FullDocumentDiagnosticReport, RelatedFullDocumentDiagnosticReport,
};

use crate::lsp::server::Backend;
use crate::lsp::views;

/// Handles `textDocument/diagnostic`.
pub async fn run(
    server: &Backend,
    params: DocumentDiagnosticParams,
) -> RpcResult<DocumentDiagnosticReportResult> {
    let items = {
        let st = server.lock();
        st.document(params.text_document.uri.as_str())
            .map(|ds| views::diagnostics(ds, st.encoding()))
            .unwrap_or_default()
    };
    Ok(DocumentDiagnosticReportResult::Report(
        DocumentDiagnosticReport::Full(RelatedFullDocumentDiagnosticReport {
            related_documents: None,
            full_document_diagnostic_report: FullDocumentDiagnosticReport {
                result_id: None,
                items,
            },
        }),
    ))
}

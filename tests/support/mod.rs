pub mod lsp_client;
pub mod mock_llm;

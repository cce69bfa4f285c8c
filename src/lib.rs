//! refine-ls: a language server that runs an aligned LLM self-refinement loop on selected code.
//!
//! Layers, arrows pointing one way: protocol and command line → service → engine → providers →
//! foundations. No module imports one above it.

// Protocol and command line.
/// The command line: `refine-ls review`, `doctor`, `dismiss`, `learn`, `model`, and `eval` (the
/// loop measured on HumanEvalPack-style tasks), with the flag types they share.
pub mod cli;
/// The LSP server: handlers, commands, code actions, views, review jobs, state, transport.
pub mod lsp;

// Service.
/// The review service: the engine assembled once from the configuration and a workspace.
pub mod service;

// Engine.
/// The critique → revise → verify → judge loop; knows nothing of LSP.
pub mod engine;

// Providers.
/// Model providers: HTTP wire formats and the embedded model.
pub mod llm;

// Foundations.
/// The persistent review cache (redb).
pub mod cache;
/// The configuration schema and its layered sources.
pub mod config;
/// Dismissed findings (`.refine/dismissed.toml`) and the fingerprint that names a finding.
pub mod dismissed;
/// Open documents on ropey and position encodings.
pub mod document;
/// Workspace files read and written without following links out, bounded, atomically.
pub mod fsx;
/// Language ids, grammars and interface items.
pub mod lang;
/// The opt-in learning record (reviews and their fates) and its exports.
pub mod learning;
/// Model files: the catalogue, downloads, the models folder.
pub mod models;
/// Network helpers shared by providers and downloads.
pub mod net;
/// Where refine-ls keeps its own files: the user's config file, data and cache folders.
pub mod paths;
/// Probes: the selected function run on inputs in its original and candidate versions.
pub mod probe;
/// Prompt templates, built in and overridable.
pub mod prompts;
/// Running a command from the workspace: private scratch copies, a clean environment, bubblewrap.
pub mod sandbox;
/// Redaction of credentials before anything is sent.
pub mod secrets;
/// Small text helpers (common affixes, excerpts).
pub mod text;
/// Trusted workspaces, where a repository's `verify.command` may run.
pub mod trust;

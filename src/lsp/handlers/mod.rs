//! One file per LSP method the server handles; `lsp/mod.rs` delegates to them. Handlers are
//! thin and never await the model: they validate, call one state method under its lock, hand
//! long work to a [`super::job::Job`], and return.

pub mod code_action;
pub mod code_action_resolve;
pub mod code_lens;
pub mod diagnostic;
pub mod did_change;
pub mod did_change_configuration;
pub mod did_close;
pub mod did_open;
pub mod execute_command;
pub mod hover;
pub mod initialize;
pub mod initialized;
pub mod inlay_hint;
pub mod malformed;
pub mod progress_cancel;
pub mod shutdown;

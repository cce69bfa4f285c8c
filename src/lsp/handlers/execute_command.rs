//! `workspace/executeCommand`: the `refine.*` commands, dispatched on [`Command`] to
//! [`crate::lsp::commands`].

use serde_json::Value;
use tower_lsp_server::jsonrpc::Result as RpcResult;
use tower_lsp_server::ls_types::ExecuteCommandParams;

use crate::lsp::command::Command;
use crate::lsp::commands::{dismissal, manage, review, revision};
use crate::lsp::convert::invalid_params;
use crate::lsp::server::Backend;

/// Handles `workspace/executeCommand`.
pub async fn run(server: &Backend, params: ExecuteCommandParams) -> RpcResult<Option<Value>> {
    let arg = params.arguments.into_iter().next().unwrap_or(Value::Null);
    let token = params.work_done_progress_params.work_done_token;
    let Some(command) = Command::parse(&params.command) else {
        let all: Vec<&str> = Command::ALL.iter().map(|c| c.name()).collect();
        return Err(invalid_params(format!(
            "unknown command `{}`; refine-ls runs {}",
            params.command,
            all.join(", ")
        )));
    };
    let answer = match command {
        Command::Review | Command::Refine => review::review(server, command, arg, token)?,
        Command::Cancel => manage::cancel(server, &arg)?,
        Command::Clear => manage::clear(server, &arg)?,
        Command::ShowRevision => revision::show_revision(server, &arg)?,
        Command::ApplyRevision => revision::apply_revision(server, &arg)?,
        Command::ReReview => review::re_review(server, &arg)?,
        Command::Dismiss => manage::dismiss(server, &arg)?,
        Command::DismissFinding => dismissal::dismiss_finding(server, arg)?,
        Command::Undismiss => dismissal::undismiss(server, &arg)?,
        Command::Applied => revision::applied(server, arg)?,
    };
    Ok(Some(answer))
}

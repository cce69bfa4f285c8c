//! The command line: `refine-ls review` runs the same engine as the server on a file or on a
//! change; `doctor`, `dismiss`, `learn`, `model` and `eval` beside it. Reports go to stdout;
//! progress and errors to stderr. Exit status of `review`: 0 no findings, 1 findings, 2 error.
//!
//! This file only declares the commands' modules and dispatches; the modules import one
//! another, never this file.

mod args;
mod base;
mod change;
mod diff;
mod doctor;
pub mod eval;
mod file;
pub mod flags;
mod learn;
mod model;
mod report;
mod setup;
mod shard;

pub use args::{DoctorArgs, ReviewArgs, SeverityArg};
pub use doctor::doctor;
pub use learn::{DismissArgs, LearnAction, dismiss, learn};
pub use model::{ModelAction, model};
pub use report::ReportFormat;
pub use setup::interrupted;

/// Runs `review` (`review FILE`, or `review --diff` on a change) and returns the exit status.
pub async fn review(args: ReviewArgs) -> u8 {
    let run = if args.diff.is_some() || args.staged {
        change::run(&args).await
    } else {
        file::run(&args).await
    };
    match run {
        Ok(code) => code,
        Err(message) => {
            eprintln!("refine-ls: {message}");
            setup::EXIT_ERROR
        }
    }
}

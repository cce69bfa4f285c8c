//! `refine-ls eval`: runs the loop over HumanEvalPack-style tasks (a declaration, a buggy and a
//! correct solution, tests) and measures what matters for an aligned loop: does a shown finding
//! land on the bug, does the offered revision pass the tests, does the loop leave correct code
//! alone (drift), how many bad revisions verification caught, and what it cost; each mode
//! (the loop with either strategy, the single-call baseline, the critique alone) on the same
//! tasks in one run. Each task's result is appended to `--out` as it finishes, so an
//! interrupted run resumes (`--resume`) and the summary is always computed from the file.
//!
//! This file only declares the parts; they import one another, never this file.

mod args;
mod results;
mod review;
mod run;
mod summary;
mod task;

pub use args::{Docs, EvalArgs, LoopStrategy, Mode, VerifyMode};
pub use results::{Run, TaskResult};
pub use run::eval;
pub use task::Task;

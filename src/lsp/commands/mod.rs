//! The `refine.*` commands (`workspace/executeCommand`), one function each, grouped by what
//! they act on; [`super::handlers::execute_command`] dispatches on [`super::command::Command`].
//! None awaits the model: a review is started as a job and its id returned at once.

pub mod dismissal;
pub mod manage;
pub mod review;
pub mod revision;
pub mod target;

//! The record folded into what the user decided, and written as training sets (`learn export`)
//! or the user's own precision figures (`learn stats`).
//!
//! Each review's fates are folded into one verdict for its revision and one for each finding:
//! - revision: `applied` (whole) > `applied_findings` (some findings' edits) > `discarded`
//!   (previewed, never applied) > `superseded` (the user edited the lines instead) > `ignored`;
//! - finding: `dismissed` (a later undismiss cancels it; a finding a dismissal in force hid is
//!   dismissed too) > `fixed` (an applied revision's edits touch it) > `ignored`.
//!
//! The prompts of the pairs are the loop's own templates (`revise_*.md`, `critique_*.md`)
//! rendered with what was recorded, so a model trained on them sees what the loop sends it.//!
//! `fold.rs` folds the fates, `rows.rs` writes the training sets, `stats.rs` counts.

mod fold;
mod rows;
mod stats;
#[cfg(test)]
mod tests;

pub use fold::{FindingFate, Folded, RevisionFate, fold};
pub use rows::{Counts, Format, rows};
pub use stats::{Stats, Tally, stats, stats_table};

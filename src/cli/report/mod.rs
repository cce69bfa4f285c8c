//! What `review` reports, and its formats: text, JSON, and for CI SARIF 2.1.0, reviewdog's
//! rdjson, GitLab Code Quality and GitHub workflow-command annotations. A finding's fingerprint
//! hashes its path, principle and the code it quotes (whitespace-normalised), never its line, so
//! it stays the same when unrelated lines move it; the baseline file lists fingerprints not to
//! report again.
//!
//! The children import one another, never this file; this file assembles them.

mod baseline;
mod ci;
mod finding;
mod json;
mod revision;
mod text;

use std::io::Write;
use std::path::Path;

use clap::ValueEnum;

pub use baseline::{baseline_path, read_baseline, write_baseline};
pub use finding::{Reported, Totals, any_at_least, budget, line_col};
pub use json::write_file_json;
pub use revision::{TextRevision, unified_diff};
pub use text::write_file_text;

/// Output format of `review`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// `path:line:col: severity: message [principle]` lines and a unified diff.
    Text,
    /// One JSON object.
    Json,
    /// SARIF 2.1.0 (code scanning, IDE viewers).
    Sarif,
    /// reviewdog's Diagnostic Format (rdjson), with suggestions.
    Rdjson,
    /// GitLab Code Quality report.
    Gitlab,
    /// GitHub Actions workflow-command annotations.
    Github,
}

/// The report of `review --diff` (and the CI formats of `review FILE`) in `format`;
/// `principles` are the known principle ids (SARIF's rules).
pub fn render(
    format: ReportFormat,
    found: &[Reported],
    revisions: &[TextRevision],
    totals: &Totals,
    principles: &[String],
) -> String {
    let pretty = |v: serde_json::Value| {
        serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".to_owned()) + "\n"
    };
    match format {
        ReportFormat::Text => text::change_text(found, revisions),
        ReportFormat::Json => pretty(json::change_json(found, revisions, totals)),
        ReportFormat::Sarif => pretty(ci::sarif(found, principles, totals.shard)),
        ReportFormat::Rdjson => pretty(ci::rdjson(found)),
        ReportFormat::Gitlab => pretty(ci::gitlab(found)),
        ReportFormat::Github => ci::github(found),
    }
}

/// Writes a report to `--output`'s file, or to stdout.
pub fn deliver(output: Option<&Path>, report: &[u8]) -> Result<(), String> {
    match output {
        Some(file) => std::fs::write(file, report)
            .map_err(|e| format!("cannot write {}: {e}", file.display())),
        None => std::io::stdout()
            .lock()
            .write_all(report)
            .map_err(|e| format!("cannot write the output: {e}")),
    }
}

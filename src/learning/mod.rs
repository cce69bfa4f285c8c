//! The learning record (`learning.record = true`; off by default, local only): each review as
//! it was sent (secrets as placeholders), the findings shown and the revision offered, then what
//! the user did with them (fates), as JSON lines in the user's data folder. `export/` folds
//! the lines into training sets and the user's own precision figures. It knows no engine or
//! LSP type: the service turns a review into a [`ReviewRecord`], the editor reports [`Fate`]s.
//!
//! The record is bounded: two files (`record.jsonl`, and `record.1.jsonl` before it) of half
//! `learning.max_mb` each; when the newer is full it replaces the older.

pub mod export;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The format version of every line.
pub const VERSION: u32 = 1;

/// A finding as it was shown (or hidden by a dismissal already in force).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingRecord {
    /// The finding's id within its review.
    pub id: usize,
    /// The principle it cites.
    pub principle: String,
    /// `error`, `warning`, `info`, `hint`.
    pub severity: String,
    /// What is wrong.
    pub message: String,
    /// The code it quotes.
    pub quote: String,
    /// First file line (1-based).
    pub start_line: u32,
    /// Last file line (1-based).
    pub end_line: u32,
    /// How to fix it, if the critic said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// The critic's confidence (0–1).
    #[serde(default)]
    pub confidence: f64,
    /// `false`: a dismissal in force hid it (the critic produced it again).
    #[serde(default = "shown")]
    pub shown: bool,
}

fn shown() -> bool {
    true
}

/// The selection with only one finding's edits applied (what "Refine: fix: …" applies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingFix {
    /// The finding's id.
    pub finding: usize,
    /// The reviewed lines with only its edits.
    pub code: String,
}

/// The revision offered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevisionRecord {
    /// The reviewed lines as revised.
    pub code: String,
    /// The findings it fixes (those whose lines its edits touch).
    pub fixes: Vec<usize>,
    /// Per finding, the lines with only its edits.
    #[serde(default)]
    pub by_finding: Vec<FindingFix>,
    /// The round that produced it.
    pub round: u32,
}

/// One review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewRecord {
    /// Unique across sessions: `<session>/<review id>`.
    pub id: String,
    /// When it finished (RFC 3339, UTC).
    pub at: String,
    /// The file, relative to the workspace root when it is inside one.
    pub path: String,
    /// The language id.
    pub language: String,
    /// First reviewed line (0-based).
    pub first_line: usize,
    /// Last reviewed line (0-based, inclusive).
    pub last_line: usize,
    /// The critic (`kind model at endpoint`).
    pub critic: String,
    /// The reviser.
    pub reviser: String,
    /// The reviewed lines, secrets replaced by placeholders.
    pub code: String,
    /// What the critic was told this codebase does not want.
    #[serde(default)]
    pub unwanted: Vec<String>,
    /// The findings.
    pub findings: Vec<FindingRecord>,
    /// The revision offered, if one was.
    #[serde(default)]
    pub revision: Option<RevisionRecord>,
    /// How many secrets were replaced.
    #[serde(default)]
    pub redactions: usize,
}

/// What the user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Findings dismissed (`findings` says which).
    Dismissed,
    /// Dismissed findings shown again.
    Undismissed,
    /// The whole revision applied.
    Applied,
    /// Only the edits of some findings applied (`findings`).
    AppliedFindings,
    /// The revision looked at (its diff shown).
    Previewed,
    /// The user edited the reviewed lines while the revision was on offer.
    Superseded,
}

/// A fate of a review's findings or revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FateRecord {
    /// The review's id (as in its [`ReviewRecord`]).
    pub id: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// What happened.
    pub fate: Fate,
    /// The findings concerned (dismissals, per-finding applies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<usize>,
    /// A dismissal's scope (`finding`, `principle`, `file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// One line of the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A finished review.
    Review(Box<ReviewRecord>),
    /// Something the user did with one.
    Fate(FateRecord),
}

#[derive(Serialize)]
struct LineOut<'a> {
    v: u32,
    #[serde(flatten)]
    record: &'a Record,
}

#[derive(Deserialize)]
struct LineIn {
    v: u32,
    #[serde(flatten)]
    record: Record,
}

/// This process's session: review ids (`review-N`) restart with each server, so a record's id
/// is prefixed with it.
static SESSION: LazyLock<String> = LazyLock::new(|| format!("{:016x}", fastrand::u64(..)));

/// A review's id in the record.
pub fn record_id(review_id: &str) -> String {
    format!("{}/{review_id}", *SESSION)
}

/// Now, as RFC 3339 in UTC (seconds).
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Parses a `--since` value: `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time.
pub fn parse_since(s: &str) -> Result<SystemTime, String> {
    let s = s.trim();
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    humantime::parse_rfc3339_weak(&full)
        .map_err(|e| format!("`{s}` is not a date (YYYY-MM-DD) or an RFC 3339 time: {e}"))
}

/// Where the record is: `<user data folder>/learning`.
pub fn default_dir() -> Option<PathBuf> {
    crate::paths::user_data_dir().map(|d| d.join("learning"))
}

const CURRENT: &str = "record.jsonl";
const OLDER: &str = "record.1.jsonl";

/// Appends records to the files in one folder, within a size bound. One writer per process
/// (lines from two threads never interleave).
#[derive(Debug)]
pub struct Recorder {
    dir: PathBuf,
    max_bytes: u64,
}

static WRITE: Mutex<()> = Mutex::new(());

impl Recorder {
    /// A recorder writing under `dir`, keeping at most `max_bytes` (at least 64 KiB).
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        Self {
            dir,
            max_bytes: max_bytes.max(64 * 1024),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record. A failure is logged, never raised: recording must not stop a review.
    pub fn append(&self, record: &Record) {
        if let Err(e) = self.try_append(record) {
            tracing::warn!("the learning record could not be written: {e}");
        }
    }

    fn try_append(&self, record: &Record) -> Result<(), String> {
        let mut line = serde_json::to_string(&LineOut { v: VERSION, record })
            .map_err(|e| format!("cannot encode a record: {e}"))?;
        line.push('\n');
        let _one = WRITE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        crate::secrets::private(&self.dir, true);
        let current = self.dir.join(CURRENT);
        let half = self.max_bytes / 2;
        let size = std::fs::metadata(&current).map_or(0, |m| m.len());
        let len = u64::try_from(line.len()).unwrap_or(u64::MAX);
        if size > 0 && size.saturating_add(len) > half {
            std::fs::rename(&current, self.dir.join(OLDER))
                .map_err(|e| format!("cannot rotate {}: {e}", current.display()))?;
        }
        crate::secrets::create_private(&current);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&current)
            .map_err(|e| format!("cannot open {}: {e}", current.display()))?;
        f.write_all(line.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", current.display()))
    }
}

/// What reading a record folder gave.
#[derive(Debug, Default)]
pub struct Read {
    /// The records, oldest first.
    pub records: Vec<Record>,
    /// Lines that could not be read (a cut-off last line, a newer format).
    pub skipped: usize,
}

/// Reads the records under `dir`, oldest first (nothing when there is no record).
pub fn read(dir: &Path) -> Result<Read, String> {
    let mut out = Read::default();
    for name in [OLDER, CURRENT] {
        let path = dir.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<LineIn>(line) {
                Ok(l) if l.v == VERSION => out.records.push(l.record),
                _ => out.skipped += 1,
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fate(id: &str) -> Record {
        Record::Fate(FateRecord {
            id: id.to_owned(),
            at: now(),
            fate: Fate::Previewed,
            findings: vec![],
            scope: None,
        })
    }

    #[test]
    fn records_round_trip_and_a_cut_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::new(dir.path().to_path_buf(), 1 << 20);
        r.append(&fate("a"));
        r.append(&fate("b"));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(CURRENT))
            .unwrap();
        f.write_all(b"{\"v\":1,\"kind\":\"fa").unwrap();
        let read = read(dir.path()).unwrap();
        assert_eq!(read.records.len(), 2);
        assert_eq!(read.skipped, 1);
        assert_eq!(read.records[1], fate_with_at(&read.records[1], "b"));
    }

    fn fate_with_at(r: &Record, id: &str) -> Record {
        let Record::Fate(f) = r else {
            panic!("not a fate")
        };
        Record::Fate(FateRecord {
            id: id.to_owned(),
            ..f.clone()
        })
    }

    #[test]
    fn the_record_stays_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::new(dir.path().to_path_buf(), 64 * 1024);
        for i in 0..5000 {
            r.append(&fate(&format!("review-{i}")));
        }
        let size = |n: &str| std::fs::metadata(dir.path().join(n)).map_or(0, |m| m.len());
        assert!(size(CURRENT) + size(OLDER) <= 64 * 1024);
        let read = read(dir.path()).unwrap();
        // The newest are kept, in order.
        let Some(Record::Fate(last)) = read.records.last() else {
            panic!("no records")
        };
        assert_eq!(last.id, "review-4999");
        assert!(read.records.len() > 100, "{}", read.records.len());
    }

    #[test]
    fn since_takes_a_date_or_a_time() {
        assert!(parse_since("2026-12-01").is_ok());
        assert!(parse_since("2026-12-01T10:00:00Z").is_ok());
        assert!(parse_since("yesterday").unwrap_err().contains("not a date"));
    }
}

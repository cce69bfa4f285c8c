//! What the Rust and Python harnesses share: the private scratch folder, running a command
//! there in the sandbox (the home folder reduced to the toolchains), and the result lines a
//! harness writes (`{call}\t{kind}\t{text}[\t{match}]`) read back into outcomes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::sandbox;

use super::{Limits, MAX_VALUE_CHARS, Outcome, ProbeError};

/// A result file is read up to this many bytes.
const MAX_RESULT_BYTES: u64 = 1 << 20;

/// A probe's scratch folder in the private folder, deleted when dropped: the harness in
/// `work/`, the commands' `TMPDIR` in `tmp/`.
pub(super) struct Scratch {
    dir: tempfile::TempDir,
    /// The working folder.
    pub work: PathBuf,
}

impl Scratch {
    /// A new scratch folder.
    pub fn new() -> Result<Self, ProbeError> {
        let private = sandbox::private_dir().ok_or_else(|| {
            ProbeError::Io("cannot make a private scratch folder for the probe".to_owned())
        })?;
        let dir = tempfile::Builder::new()
            .prefix("probe-")
            .tempdir_in(&private)
            .map_err(|e| ProbeError::Io(format!("cannot make a scratch folder: {e}")))?;
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work)
            .map_err(|e| ProbeError::Io(format!("cannot make a scratch folder: {e}")))?;
        Ok(Scratch { dir, work })
    }

    /// Writes `name` in the working folder.
    pub fn write(&self, name: &str, text: &str) -> Result<(), ProbeError> {
        std::fs::write(self.work.join(name), text)
            .map_err(|e| ProbeError::Io(format!("cannot write the probe's {name}: {e}")))
    }

    /// Runs `command` in the working folder, sandboxed (no network, the home folder reduced
    /// to the toolchains), for at most `timeout`.
    pub async fn run(
        &self,
        command: String,
        timeout: Duration,
        max_output: usize,
        cancel: &CancellationToken,
    ) -> Result<sandbox::RunResult, ProbeError> {
        let folders = Folders {
            work: &self.work,
            tmp: &self.dir.path().join("tmp"),
            writable: &[],
        };
        sandboxed(&folders, command, (timeout, max_output), cancel).await
    }

    /// The lines of result file `name`, at most [`MAX_RESULT_BYTES`] of it.
    pub fn results(&self, name: &str) -> BTreeMap<usize, Line> {
        results(&self.work, name)
    }
}

/// Where a sandboxed command runs: its working folder, its `TMPDIR` and other folders it may
/// write.
pub(super) struct Folders<'a> {
    /// The working folder.
    pub work: &'a Path,
    /// The command's `TMPDIR`.
    pub tmp: &'a Path,
    /// Other folders bound read-write (a build folder kept between runs).
    pub writable: &'a [PathBuf],
}

/// Runs `command` in `folders.work`, sandboxed (no network, the home folder reduced to the
/// toolchains), for at most `bounds.0`, keeping `bounds.1` bytes of output.
pub(super) async fn sandboxed(
    folders: &Folders<'_>,
    command: String,
    bounds: (Duration, usize),
    cancel: &CancellationToken,
) -> Result<sandbox::RunResult, ProbeError> {
    let run = sandbox::Run {
        command,
        dir: folders.work.to_path_buf(),
        tmp: folders.tmp.to_path_buf(),
        network: false,
        timeout: bounds.0,
        max_output: bounds.1,
        home: sandbox::Home::Toolchains,
        writable: folders.writable.to_vec(),
    };
    run.run(cancel).await.map_err(|e| match e {
        sandbox::RunError::Cancelled => ProbeError::Cancelled,
        e => ProbeError::Io(format!("cannot run the probe: {e}")),
    })
}

/// The lines of result file `name` in `work`, at most [`MAX_RESULT_BYTES`] of it.
pub(super) fn results(work: &Path, name: &str) -> BTreeMap<usize, Line> {
    use std::io::Read as _;
    let mut text = Vec::new();
    if let Ok(f) = std::fs::File::open(work.join(name)) {
        let _ = f.take(MAX_RESULT_BYTES).read_to_end(&mut text);
    }
    parse_results(&String::from_utf8_lossy(&text))
}

/// Whether `program` is on `PATH`.
pub(super) fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(program).is_file())
}

/// The shell prefix that bounds the address space of what follows.
pub(super) fn ulimit(limits: &Limits) -> String {
    format!(
        "ulimit -v {} 2>/dev/null; MALLOC_ARENA_MAX=2; export MALLOC_ARENA_MAX; ",
        limits.memory_bytes / 1024
    )
}

/// One result line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    /// `value`, `panic`, `timeout`, `notrun`, `drop` (the arguments or expected value do not
    /// evaluate) or `import` (the module does not import).
    pub kind: String,
    /// The value or message, unescaped.
    pub text: String,
    /// Whether the value equals the expected one, when there is one.
    pub matched: Option<bool>,
}

/// `\\`, tab, newline and carriage return escaped (as the harnesses write them).
#[cfg(test)]
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`escape`].
pub(super) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(o) => out.push(o),
            None => out.push('\\'),
        }
    }
    out
}

/// `s` cut to [`MAX_VALUE_CHARS`] chars (an ellipsis marks the cut).
pub(super) fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_VALUE_CHARS) {
        Some((at, _)) => format!("{}…", s.get(..at).unwrap_or_default()),
        None => s.to_owned(),
    }
}

/// The result lines by call index (the first line of a call wins; `import` lines under
/// `usize::MAX`); malformed lines are skipped.
pub(super) fn parse_results(text: &str) -> BTreeMap<usize, Line> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.split('\t');
        let (Some(index), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let index = if kind == "import" {
            usize::MAX
        } else {
            match index.parse() {
                Ok(i) => i,
                Err(_) => continue,
            }
        };
        let text = cut(&unescape(parts.next().unwrap_or_default()));
        let matched = match parts.next() {
            Some("1") => Some(true),
            Some("0") => Some(false),
            _ => None,
        };
        out.entry(index).or_insert(Line {
            kind: kind.to_owned(),
            text,
            matched,
        });
    }
    out
}

/// How a version's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ending {
    /// It ran out of time.
    pub timed_out: bool,
    /// Its exit code (`None`: a signal).
    pub code: Option<i32>,
}

impl Ending {
    /// The ending of a sandboxed run (a shell reports a signal as 128 + its number).
    pub fn of(result: &sandbox::RunResult) -> Self {
        Ending {
            timed_out: result.timed_out,
            code: result.code.filter(|c| !(129..=192).contains(c)),
        }
    }
}

/// The outcomes (and matches) of `calls`, run in this order, from the result lines: the first
/// call without a line is where the process ended (or ran out of time), the rest did not run.
pub(super) fn outcomes(
    calls: &[usize],
    lines: &BTreeMap<usize, Line>,
    ending: Ending,
) -> BTreeMap<usize, (Outcome, Option<bool>)> {
    let mut out = BTreeMap::new();
    let mut ended = false;
    for &c in calls {
        let outcome = match lines.get(&c) {
            Some(line) if !ended => match line.kind.as_str() {
                "value" => Outcome::Value(line.text.clone()),
                "panic" => Outcome::Panic(line.text.clone()),
                "timeout" => Outcome::Timeout,
                _ => Outcome::NotRun(line.text.clone()),
            },
            _ if ended => Outcome::NotRun("the process ended earlier".to_owned()),
            _ => {
                ended = true;
                if ending.timed_out {
                    Outcome::Timeout
                } else {
                    Outcome::Exited(ending.code)
                }
            }
        };
        let matched = match (&outcome, lines.get(&c)) {
            (Outcome::Value(_), Some(line)) => line.matched,
            _ => None,
        };
        out.insert(c, (outcome, matched));
    }
    out
}

/// The first line of `output` that looks like an error, else its last line; bounded.
pub(super) fn gist(output: &str) -> String {
    let line = output
        .lines()
        .find(|l| l.contains("error") || l.contains("Error"))
        .or_else(|| output.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("no output");
    cut(line.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_round_trip_and_are_bounded() {
        let text = format!(
            "0\tvalue\t{}\t1\n1\tpanic\tattempt to subtract with overflow\n2\ttimeout\t\nbad\n-\timport\tNameError: x\n3\tvalue\t{}\n",
            escape("a\tb\\n\nc"),
            "x".repeat(1000)
        );
        let lines = parse_results(&text);
        assert_eq!(lines[&0].text, "a\tb\\n\nc");
        assert_eq!(lines[&0].matched, Some(true));
        assert_eq!(lines[&1].kind, "panic");
        assert_eq!(lines[&2].kind, "timeout");
        assert_eq!(lines[&usize::MAX].text, "NameError: x");
        assert_eq!(lines[&3].text.chars().count(), MAX_VALUE_CHARS + 1);
    }

    #[test]
    fn a_process_that_ended_early_is_blamed_on_the_first_call_without_a_line() {
        let lines = parse_results("0\tvalue\t2\t0\n");
        let ending = Ending {
            timed_out: false,
            code: Some(3),
        };
        let o = outcomes(&[0, 2, 5], &lines, ending);
        assert_eq!(o[&0], (Outcome::Value("2".into()), Some(false)));
        assert_eq!(o[&2].0, Outcome::Exited(Some(3)));
        assert_eq!(o[&5].0, Outcome::NotRun("the process ended earlier".into()));
        let o = outcomes(
            &[0, 1],
            &lines,
            Ending {
                timed_out: true,
                code: None,
            },
        );
        assert_eq!(o[&1].0, Outcome::Timeout);
    }
}

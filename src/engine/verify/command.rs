//! `verify.command`, run on a scratch copy of the workspace: the copy (build output, VCS data
//! and secrets files left behind), the sandboxed run, and what of its output goes back to the
//! reviser and the critic.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::sandbox;

/// `verify.command`, run in a scratch copy of the workspace.
#[derive(Debug, Clone)]
pub struct CommandCheck {
    /// A shell command (`cargo check`, `pytest -q tests/test_x.py`).
    pub command: String,
    /// The workspace root, copied once per review.
    pub root: PathBuf,
    /// The reviewed file, relative to the root.
    pub file: PathBuf,
    /// How long one run may take.
    pub timeout: Duration,
    /// Whether the command may use the network (`verify.network`; off by default: a
    /// repository's tests should not reach out, and under bubblewrap they cannot).
    pub network: bool,
}

/// A scratch copy of the workspace in the private scratch folder ([`sandbox::private_dir`]),
/// deleted when dropped: the copy in `work/`, the command's `TMPDIR` in `tmp/`.
pub struct Scratch {
    dir: tempfile::TempDir,
    root: PathBuf,
    file: PathBuf,
}

/// What a command run said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// Exit status 0.
    pub passed: bool,
    /// The exit code (`None`: killed by a signal, or timed out). When the command fails on
    /// the original too, a revision on which it fails with another code fails in a new way
    /// (the tests failed; now the code does not compile).
    pub code: Option<i32>,
    /// The end of stdout and stderr (at most 4,000 chars), for the reviser and the critic.
    pub output: String,
    /// The command ran in the bubblewrap sandbox (no network, read-only filesystem).
    pub sandboxed: bool,
}

/// What matters of a failing command's output, for the reviser: the first compiler error with
/// its context, else the first failing assertion (a panic and the lines after it, a Python
/// assertion), else the last lines. At most [`GIST_LINES`] lines and [`GIST_CHARS`] chars.
pub fn gist(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let starts = |l: &str| {
        let t = l.trim_start();
        t.starts_with("error[") || t.starts_with("error:")
    };
    let failing = |l: &str| {
        l.contains("panicked at")
            || l.contains("AssertionError")
            || l.contains("assertion")
            || l.trim_start().starts_with("FAILED")
            || l.trim_start().starts_with("E ")
    };
    let picked: Vec<&str> = if let Some(i) = lines.iter().position(|l| starts(l)) {
        lines[i..]
            .iter()
            .take_while(|l| !l.trim().is_empty())
            .take(GIST_LINES)
            .copied()
            .collect()
    } else if let Some(i) = lines.iter().position(|l| failing(l)) {
        lines[i..]
            .iter()
            .filter(|l| !l.trim().is_empty())
            .take(GIST_LINES.min(6))
            .copied()
            .collect()
    } else {
        let kept: Vec<&str> = lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .copied()
            .collect();
        kept[kept.len().saturating_sub(GIST_LINES)..].to_vec()
    };
    let text = picked.join("\n");
    match text.char_indices().nth(GIST_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// At most this many lines of a failure go back to the reviser.
const GIST_LINES: usize = 12;
/// ... and at most this many chars.
const GIST_CHARS: usize = 1_500;

/// The last non-blank line of a command's output, trimmed.
pub fn last_line(output: &str) -> &str {
    output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

impl CommandCheck {
    /// Copies the workspace (without build output and VCS data) to a scratch folder in the
    /// private scratch folder, never the shared `/tmp` (where tools read configuration from
    /// parent folders: `/tmp/.cargo/config.toml`, `/tmp/conftest.py`); stops between files once
    /// `cancel` fires.
    pub fn scratch(&self, cancel: &CancellationToken) -> Result<Scratch, CommandError> {
        let private = sandbox::private_dir().ok_or_else(|| {
            CommandError::Failed(
                "cannot make a private scratch folder (set REFINE_LS_SCRATCH_DIR to a folder of yours)"
                    .to_owned(),
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix("verify-")
            .tempdir_in(&private)
            .map_err(|e| {
                CommandError::Failed(format!(
                    "cannot make a scratch folder in {}: {e}",
                    private.display()
                ))
            })?;
        let root = dir.path().join("work");
        std::fs::create_dir(&root)
            .map_err(|e| CommandError::Failed(format!("cannot make a scratch folder: {e}")))?;
        let mut budget = sandbox::MAX_COPY_BYTES;
        sandbox::copy_tree(&self.root, &root, sandbox::SKIP, &mut budget, cancel).map_err(|e| {
            CommandError::Failed(format!(
                "cannot copy the workspace {} for verify.command: {e}",
                self.root.display()
            ))
        })?;
        if cancel.is_cancelled() {
            return Err(CommandError::Cancelled);
        }
        Ok(Scratch {
            file: root.join(&self.file),
            root,
            dir,
        })
    }

    /// Writes `text` as the reviewed file in the scratch copy and runs the command there
    /// ([`sandbox::Run`]: sandboxed where bubblewrap works, a clean environment, its own
    /// process group killed on timeout, `cancel` or drop, bounded output).
    pub async fn run(
        &self,
        scratch: &Scratch,
        text: &str,
        cancel: &CancellationToken,
    ) -> Result<CommandResult, CommandError> {
        tokio::fs::write(&scratch.file, text).await.map_err(|e| {
            CommandError::Failed(format!("cannot write {}: {e}", scratch.file.display()))
        })?;
        let run = sandbox::Run {
            command: self.command.clone(),
            dir: scratch.root.clone(),
            tmp: scratch.dir.path().join("tmp"),
            network: self.network,
            timeout: self.timeout,
            max_output: MAX_OUTPUT_BYTES,
            home: sandbox::Home::Whole,
            writable: Vec::new(),
        };
        let result = run.run(cancel).await.map_err(|e| match e {
            sandbox::RunError::Cancelled => CommandError::Cancelled,
            e => CommandError::Failed(format!("cannot run verify.command `{}`: {e}", self.command)),
        })?;
        let mut text = result.output.clone();
        if result.timed_out {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "verify.command timed out after {} s",
                self.timeout.as_secs()
            ));
        }
        let tail: String = {
            let chars: Vec<char> = text.chars().collect();
            chars[chars.len().saturating_sub(OUTPUT_CHARS)..]
                .iter()
                .collect()
        };
        // The scratch path means nothing to the model or the user.
        let tail = tail
            .replace(&scratch.root.display().to_string(), ".")
            .replace(&scratch.dir.path().display().to_string(), ".");
        Ok(CommandResult {
            passed: result.passed() && !result.timed_out,
            code: result.code,
            output: tail,
            sandboxed: result.sandboxed,
        })
    }
}

/// Why `verify.command` gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The review was cancelled while the workspace was copied or the command ran.
    #[error("cancelled")]
    Cancelled,
    /// The copy, or the run, failed, as one sentence.
    #[error("{0}")]
    Failed(String),
}

/// Output kept from a run (its end) before the last [`OUTPUT_CHARS`] are taken.
const MAX_OUTPUT_BYTES: usize = 64 << 10;
/// The characters of a command's output kept for the reviser and the critic.
const OUTPUT_CHARS: usize = 4_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gist_of_a_failure_is_its_first_error_or_failing_assertion() {
        let rustc = "warning: unused\n\nerror[E0308]: mismatched types\n --> src/lib.rs:3:5\n  |\n3 |     x\n  |     ^ expected `i32`\n\nerror: aborting due to 1 previous error\n";
        assert_eq!(
            gist(rustc),
            "error[E0308]: mismatched types\n --> src/lib.rs:3:5\n  |\n3 |     x\n  |     ^ expected `i32`"
        );
        let test = "running 1 test\ntest tests::t ... FAILED\n\nfailures:\n\n---- tests::t stdout ----\nthread 'tests::t' panicked at src/lib.rs:9:5:\nassertion `left == right` failed\n  left: 5\n right: 6\n\nfailures:\n    tests::t\n";
        assert!(gist(test).starts_with("thread 'tests::t' panicked at src/lib.rs:9:5:\nassertion"));
        assert!(gist(test).contains("right: 6"));
        let long = "x\n".repeat(100);
        assert_eq!(gist(&long).lines().count(), GIST_LINES);
        assert_eq!(gist("").len(), 0);
        assert!(gist(&"é".repeat(5000)).chars().count() <= GIST_CHARS + 1);
    }
}

//! Running a command in its scratch copy: sandboxed where bubblewrap works, in a process group
//! of its own that is killed on timeout, cancellation or drop, its output's end kept.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::bwrap::{Sandbox, base_args, detect, hidden_paths};
use super::env::clean_env;
use super::home::{Home, toolchain_dirs};
use super::scratch::private_dir;

/// A command to run in a scratch copy.
#[derive(Debug, Clone)]
pub struct Run {
    /// A shell command, run by `sh -c`.
    pub command: String,
    /// The scratch copy: the working folder, writable.
    pub dir: PathBuf,
    /// The command's `TMPDIR`, writable (created if missing); outside `dir` so that temporary
    /// files do not show up in the copy.
    pub tmp: PathBuf,
    /// Whether the command may use the network (only when sandboxed is it kept off).
    pub network: bool,
    /// How long the command may take.
    pub timeout: Duration,
    /// At most this many bytes of output are kept: the end, which holds the error.
    pub max_output: usize,
    /// How much of the home folder the command sees under bubblewrap.
    pub home: Home,
    /// Extra folders bound read-write under bubblewrap (a probe's build folder kept between
    /// runs); they must exist.
    pub writable: Vec<PathBuf>,
}

/// What a finished (or timed out) command said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    /// The exit code (`None`: killed by a signal, or timed out).
    pub code: Option<i32>,
    /// The command ran out of time and was killed.
    pub timed_out: bool,
    /// The end of stdout and stderr, interleaved as written, at most `max_output` bytes.
    pub output: String,
    /// Output was dropped from the start.
    pub truncated: bool,
    /// The command ran in the bubblewrap sandbox.
    pub sandboxed: bool,
}

impl RunResult {
    /// Exit status 0.
    pub fn passed(&self) -> bool {
        self.code == Some(0)
    }
}

/// Why a command could not be run to its end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Cancelled; everything it started was killed.
    #[error("cancelled")]
    Cancelled,
    /// The tmp folder could not be made.
    #[error("cannot make {}: {source}", path.display())]
    Tmp {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The command (or bwrap) could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// What was started.
        program: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Waiting for the command failed.
    #[error("cannot wait for the command: {0}")]
    Wait(std::io::Error),
}

impl Run {
    /// The environment: [`clean_env`], `TMPDIR` in the scratch copy and, without network,
    /// cargo offline (else resolving a new lock file tries the registry and fails). Under
    /// bubblewrap the home folder is read-only, so caches that tools write there (Go's build
    /// cache) go to the scratch's tmp folder: a shared writable cache would let the command
    /// plant build output that the user's own builds then use.
    fn env(&self, sandboxed: bool) -> Vec<(OsString, OsString)> {
        let mut env = clean_env();
        let mut set = |name: &str, value: OsString| {
            env.retain(|(n, _)| n != name);
            env.push((name.into(), value));
        };
        set("TMPDIR", self.tmp.clone().into_os_string());
        if !self.network {
            set("CARGO_NET_OFFLINE", "true".into());
        }
        if sandboxed {
            let cache = self.tmp.join("cache");
            set("GOCACHE", cache.join("go-build").into_os_string());
            set("XDG_CACHE_HOME", cache.into_os_string());
        }
        env
    }

    /// bwrap's arguments up to the command. Cargo works with a read-only `CARGO_HOME`: with no
    /// writable package cache it skips the lock and reads the registry as it is (crates not
    /// yet downloaded and unpacked there cannot be fetched without network anyway), and the
    /// target folder is the scratch copy's own (`CARGO_TARGET_DIR` is not passed on).
    fn bwrap_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = base_args(self.network)
            .into_iter()
            .map(OsString::from)
            .collect();
        if self.home == Home::Toolchains
            && let Some(home) = dirs::home_dir().filter(|h| h.is_dir())
        {
            // Order matters: the empty home first, then the toolchains bound back over it,
            // then the credential stores hidden again inside them (`~/.cargo/credentials`).
            args.extend(["--tmpfs".into(), home.clone().into_os_string()]);
            for dir in toolchain_dirs(&home) {
                let dir = dir.into_os_string();
                args.extend(["--ro-bind".into(), dir.clone(), dir]);
            }
        }
        for path in hidden_paths() {
            if path.is_dir() {
                args.push("--tmpfs".into());
            } else {
                // A device bind: a plain `--ro-bind` of /dev/null is mounted `nodev` and reads
                // fail with EACCES; this reads empty, and writes go nowhere.
                args.extend(["--dev-bind".into(), "/dev/null".into()]);
            }
            args.push(path.into_os_string());
        }
        // Other scratch copies (other reviews, other workspaces) are hidden; this one is
        // mounted back, writable.
        if let Some(private) = private_dir() {
            args.extend(["--tmpfs".into(), private.into_os_string()]);
        }
        for dir in [&self.dir, &self.tmp].into_iter().chain(&self.writable) {
            args.extend([
                "--bind".into(),
                dir.clone().into_os_string(),
                dir.clone().into_os_string(),
            ]);
        }
        args.extend(["--chdir".into(), self.dir.clone().into_os_string()]);
        args
    }

    /// Runs the command to its end, its timeout or `cancel`. The command runs in a process
    /// group of its own (and, sandboxed, a PID namespace that dies with bwrap): the whole group
    /// is killed when the command ends (what it left behind), on timeout, on cancel and when
    /// this future is dropped. Output is read as it comes, keeping only its end, so a command
    /// that writes without end neither blocks nor fills memory.
    pub async fn run(&self, cancel: &CancellationToken) -> Result<RunResult, RunError> {
        tokio::fs::create_dir_all(&self.tmp)
            .await
            .map_err(|source| RunError::Tmp {
                path: self.tmp.clone(),
                source,
            })?;
        let sandbox = detect();
        let sandboxed = matches!(sandbox, Sandbox::Bwrap(_));
        let (program, mut cmd) = match &sandbox {
            Sandbox::Bwrap(bwrap) => {
                let mut c = tokio::process::Command::new(bwrap);
                c.args(self.bwrap_args()).args(["--", "sh"]);
                (bwrap.display().to_string(), c)
            }
            Sandbox::None(why) => {
                tracing::debug!("running `{}` without a sandbox: {why}", self.command);
                ("sh".to_owned(), tokio::process::Command::new("sh"))
            }
        };
        cmd.arg("-c")
            .arg(&self.command)
            .current_dir(&self.dir)
            .env_clear()
            .envs(self.env(sandboxed))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|source| RunError::Spawn { program, source })?;
        let group = Group(child.id());
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let tail = Mutex::new(Tail::new(self.max_output));
        let finished = async {
            let wait = async {
                let status = child.wait().await;
                // What the command left running would hold the pipes open.
                group.kill();
                status
            };
            let (status, (), ()) = tokio::join!(wait, drain(stdout, &tail), drain(stderr, &tail));
            status
        };
        let status = tokio::select! {
            s = finished => Some(s.map_err(RunError::Wait)?),
            () = cancel.cancelled() => return Err(RunError::Cancelled),
            () = tokio::time::sleep(self.timeout) => None,
        };
        group.kill();
        let (output, truncated) = tail
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
            .finish();
        Ok(RunResult {
            code: status.and_then(|s| s.code()),
            timed_out: status.is_none(),
            output,
            truncated,
            sandboxed,
        })
    }
}

/// Reads `pipe` to its end into `tail`.
async fn drain(pipe: Option<impl AsyncRead + Unpin>, tail: &Mutex<Tail>) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut chunk = vec![0u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => tail
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(chunk.get(..n).unwrap_or_default()),
        }
    }
}

/// The end of a stream: at most `max` bytes once finished, at most twice that meanwhile (so
/// that trimming is amortised).
struct Tail {
    buf: Vec<u8>,
    max: usize,
    truncated: bool,
}

impl Tail {
    fn new(max: usize) -> Self {
        Tail {
            buf: Vec::new(),
            max,
            truncated: false,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > self.max.saturating_mul(2).max(8192) {
            self.trim();
        }
    }

    fn trim(&mut self) {
        let cut = self.buf.len().saturating_sub(self.max);
        if cut > 0 {
            self.buf.drain(..cut);
            self.truncated = true;
        }
    }

    /// The text kept (a character cut in two at the start is dropped), and whether any was
    /// dropped.
    fn finish(mut self) -> (String, bool) {
        self.trim();
        let mut bytes = self.buf.as_slice();
        if self.truncated {
            // UTF-8 continuation bytes are 0b10xxxxxx.
            while let Some((first, rest)) = bytes.split_first() {
                if first & 0xC0 != 0x80 {
                    break;
                }
                bytes = rest;
            }
        }
        (String::from_utf8_lossy(bytes).into_owned(), self.truncated)
    }
}

/// The command's process group, killed when this is dropped (a review dropped or aborted takes
/// everything it started with it).
struct Group(Option<u32>);

impl Group {
    fn kill(&self) {
        kill_group(self.0);
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills the process group `pid` leads (the command's shell, or bwrap, and all it started).
#[cfg(unix)]
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return;
    };
    if pid <= 1 {
        return;
    }
    // SAFETY: killpg only sends a signal; the group is the one spawned by `Run::run` (its
    // leader is our child, not yet reaped while the run is under way; after it ended the group
    // id can only name processes the command left behind).
    unsafe {
        libc::killpg(pid, libc::SIGKILL);
    }
}

#[cfg(not(unix))]
fn kill_group(_pid: Option<u32>) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_environment_has_its_own_tmpdir_and_no_network_settings() {
        let run = Run {
            command: "true".into(),
            dir: "/s/work".into(),
            tmp: "/s/tmp".into(),
            network: false,
            timeout: Duration::from_secs(1),
            max_output: 10,
            home: Home::Whole,
            writable: Vec::new(),
        };
        let env = run.env(true);
        let get = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        assert_eq!(get("TMPDIR"), Some("/s/tmp".into()));
        assert_eq!(get("CARGO_NET_OFFLINE"), Some("true".into()));
        assert_eq!(get("GOCACHE"), Some("/s/tmp/cache/go-build".into()));
        assert_eq!(env.iter().filter(|(n, _)| n == "TMPDIR").count(), 1);
        let online = Run {
            network: true,
            ..run
        };
        assert!(
            !online
                .env(false)
                .iter()
                .any(|(n, _)| n == "CARGO_NET_OFFLINE" || n == "GOCACHE")
        );
    }

    #[test]
    fn the_tail_keeps_the_end_and_whole_characters() {
        let mut t = Tail::new(4);
        t.push(b"hello ");
        t.push("wörld".as_bytes());
        let (text, truncated) = t.finish();
        // "wörld" is 6 bytes: the last 4 start inside "ö", which is dropped.
        assert_eq!(text, "rld");
        assert!(truncated);
        let mut t = Tail::new(100);
        t.push(b"short");
        assert_eq!(t.finish(), ("short".into(), false));
        let mut t = Tail::new(10);
        for _ in 0..10_000 {
            t.push(b"y\n");
            assert!(t.buf.len() <= 8192 + 2);
        }
        assert_eq!(t.finish().0, "y\n".repeat(5));
    }
}

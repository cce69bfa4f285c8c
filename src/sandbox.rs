//! Running a command that comes from a workspace (`verify.command`): a cloned repository is
//! untrusted input. The command runs in a scratch copy kept in a private folder (never the
//! shared `/tmp`, where tools look for configuration in parent folders), with an allowlisted
//! environment that holds no credentials, in a process group of its own that is killed on
//! timeout, cancellation or drop, with bounded output and, where bubblewrap works, without
//! network, on a read-only filesystem with the credential stores hidden.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

/// The private folder for scratch copies: `$REFINE_LS_SCRATCH_DIR`, else
/// `<cache dir>/refine-ls/scratch`; created if missing and, on unix, owned by the user and
/// made `0700` (re-chmodded when it exists with wider permissions). `None` (and a warning in
/// the log) when there is no such folder or it cannot be made private.
pub fn private_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("REFINE_LS_SCRATCH_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => dirs::cache_dir()?.join("refine-ls").join("scratch"),
    };
    match make_private(&dir) {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::warn!(
                "no private folder for scratch copies at {}: {e}",
                dir.display()
            );
            None
        }
    }
}

fn make_private(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // symlink_metadata: a symlink planted in place of the folder is refused, not followed.
        let meta = std::fs::symlink_metadata(dir)?;
        if !meta.is_dir() {
            return Err(std::io::Error::other("it is not a folder"));
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(std::io::Error::other("it belongs to another user"));
        }
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Variables a command from the workspace may see: what finds tools and toolchains, the locale
/// and the terminal. Everything else (API keys, agent sockets, cloud settings) is left out.
const ALLOWED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TERM",
    "TZ",
    "SHELL",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_HOME",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "NODE_PATH",
    "JAVA_HOME",
    "GOPATH",
    "GOROOT",
    "GOCACHE",
    "GOFLAGS",
    "GOMODCACHE",
    "DOTNET_ROOT",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
];
/// ... and every variable starting with one of these.
const ALLOWED_PREFIXES: &[&str] = &["LC_"];
/// A name holding one of these (any case) is dropped even when allowed.
const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "KEY",
    "AUTH",
    "CREDENTIAL",
    "COOKIE",
    "SESSION",
];

/// The environment a command from the workspace gets: this process's variables, allowlisted,
/// without any whose name looks like a credential. [`Run`] adds `TMPDIR` (the scratch copy's
/// tmp folder) and a few tool settings.
pub fn clean_env() -> Vec<(OsString, OsString)> {
    filter_env(std::env::vars_os())
}

fn filter_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .filter(|(name, _)| {
            let Some(name) = name.to_str() else {
                return false;
            };
            let allowed =
                ALLOWED.contains(&name) || ALLOWED_PREFIXES.iter().any(|p| name.starts_with(p));
            let upper = name.to_ascii_uppercase();
            allowed && !SECRET_WORDS.iter().any(|w| upper.contains(w))
        })
        .collect()
}

/// How commands from the workspace are confined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// bubblewrap at this path works here.
    Bwrap(PathBuf),
    /// No sandbox, and why: the command runs with a clean environment in its scratch copy only.
    None(String),
}

/// The sandbox available on this machine, probed once: `bwrap` on `PATH` (or
/// `$REFINE_LS_BWRAP`; empty turns the sandbox off) that can actually make one (kernels may
/// forbid user namespaces).
pub fn detect() -> Sandbox {
    static DETECTED: OnceLock<Sandbox> = OnceLock::new();
    DETECTED.get_or_init(probe).clone()
}

#[cfg(target_os = "linux")]
fn probe() -> Sandbox {
    let path = match std::env::var_os("REFINE_LS_BWRAP") {
        Some(p) if p.is_empty() => return Sandbox::None("REFINE_LS_BWRAP is empty".into()),
        Some(p) => PathBuf::from(p),
        None => match find_on_path("bwrap") {
            Some(p) => p,
            None => {
                return Sandbox::None(
                    "bubblewrap (bwrap) is not installed; install it to confine verify.command"
                        .into(),
                );
            }
        },
    };
    // The flags a real run uses, so that a kernel refusing any of them is found here.
    let probed = std::process::Command::new(&path)
        .args(base_args(false))
        .args(["--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probed {
        Ok(o) if o.status.success() => Sandbox::Bwrap(path),
        Ok(o) => Sandbox::None(format!(
            "{} cannot make a sandbox here (are user namespaces disabled?): {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Sandbox::None(format!("cannot run {}: {e}", path.display())),
    }
}

#[cfg(not(target_os = "linux"))]
fn probe() -> Sandbox {
    Sandbox::None("no sandbox on this platform".into())
}

#[cfg(target_os = "linux")]
fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// One sentence on the sandbox, for `doctor`.
pub fn describe() -> String {
    match detect() {
        Sandbox::Bwrap(path) => format!(
            "bubblewrap ({}): no network, read-only filesystem, credential stores hidden",
            path.display()
        ),
        Sandbox::None(why) => format!("off: {why}"),
    }
}

/// bubblewrap's flags common to the probe and every run: a read-only view of the whole
/// filesystem, a private `/dev`, `/proc` and `/tmp`, new PID and IPC namespaces, a new session
/// (no typing into the editor's terminal with TIOCSTI), death with refine-ls, and no network
/// unless asked.
fn base_args(network: bool) -> Vec<&'static str> {
    let mut args = vec![
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--unshare-pid",
        "--unshare-ipc",
        "--new-session",
        "--die-with-parent",
    ];
    if !network {
        args.push("--unshare-net");
    }
    // bwrap run by root keeps root's capabilities inside, and with CAP_SYS_ADMIN the command
    // could simply remount `/` read-write. Unprivileged bwrap drops them by itself.
    #[cfg(unix)]
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        args.extend(["--cap-drop", "ALL"]);
    }
    args
}

/// Credential stores under the home folder, hidden from the command (folders behind an empty
/// tmpfs, files behind `/dev/null`).
const HOME_SECRETS: &[&str] = &[
    ".ssh",
    ".aws",
    ".azure",
    ".gnupg",
    ".kube",
    ".password-store",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".config/git/credentials",
    ".local/share/keyrings",
    ".docker/config.json",
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".pgpass",
    ".cargo/credentials",
    ".cargo/credentials.toml",
];
/// Sockets that would hand out more than the command should have (the container daemons run
/// anything as root). The user's runtime folder (agents, keyrings) is hidden too.
const SOCKETS: &[&str] = &[
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
];

/// Everything hidden from a sandboxed command that exists on this machine.
fn hidden_paths() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    if let Some(home) = dirs::home_dir() {
        paths.extend(HOME_SECRETS.iter().map(|p| home.join(p)));
    }
    if let Some(cargo) = std::env::var_os("CARGO_HOME") {
        let cargo = PathBuf::from(cargo);
        paths.push(cargo.join("credentials"));
        paths.push(cargo.join("credentials.toml"));
    }
    // refine-ls's own configuration (with the trust list), data and cache (reviews of other
    // workspaces, other scratch copies).
    for base in [dirs::config_dir(), dirs::data_dir(), dirs::cache_dir()]
        .into_iter()
        .flatten()
    {
        paths.push(base.join("refine-ls"));
    }
    if let Some(trust) = crate::trust::trust_file() {
        paths.push(trust);
    }
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR") {
        paths.push(PathBuf::from(run));
    }
    paths.extend(SOCKETS.iter().map(PathBuf::from));
    paths.retain(|p| p.exists());
    paths
}

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
        for dir in [&self.dir, &self.tmp] {
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

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(n, v)| (OsString::from(n), OsString::from(v)))
            .collect()
    }

    #[test]
    fn the_environment_is_allowlisted_and_credentials_are_dropped() {
        let kept = filter_env(vars(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("LC_ALL", "C.UTF-8"),
            ("CARGO_HOME", "/home/u/.cargo"),
            ("VIRTUAL_ENV", "/w/.venv"),
            ("OPENAI_API_KEY", "sk-1"),
            ("GITHUB_TOKEN", "ghp_1"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("SSH_AUTH_SOCK", "/run/user/1000/ssh"),
            ("CARGO_TARGET_DIR", "/home/u/target"),
            ("REFINE_LS_TRUST_FILE", "/x"),
            ("LD_PRELOAD", "/evil.so"),
            // Allowed by prefix, dropped by name.
            ("LC_SESSION_ID", "1"),
            ("lc_auth", "1"),
        ]));
        let names: Vec<&str> = kept.iter().filter_map(|(n, _)| n.to_str()).collect();
        assert_eq!(
            names,
            ["PATH", "HOME", "LC_ALL", "CARGO_HOME", "VIRTUAL_ENV"]
        );
        assert_eq!(kept[0].1, "/usr/bin");
    }

    #[test]
    fn the_run_environment_has_its_own_tmpdir_and_no_network_settings() {
        let run = Run {
            command: "true".into(),
            dir: "/s/work".into(),
            tmp: "/s/tmp".into(),
            network: false,
            timeout: Duration::from_secs(1),
            max_output: 10,
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

    #[test]
    fn a_private_dir_is_made_private() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a").join("scratch");
        make_private(&dir).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            make_private(&dir).unwrap();
            assert_eq!(mode(&dir), 0o700);
            let link = base.path().join("link");
            std::os::unix::fs::symlink(&dir, &link).unwrap();
            assert!(make_private(&link).is_err());
        }
    }
}

//! The Rust harness in the file's own crate: a file that says `use crate::other::Thing;`,
//! `mod x;` or uses the crate's dependencies does not build on its own. The crate is copied
//! (by `verify.command`'s rules: no build output, VCS data, secrets files or links) into a
//! folder of its own in the private folder, the harness is appended to the file in the copy,
//! and `cargo test --offline --lib` builds it with a build folder kept per crate, so that a
//! second probe of the same crate is incremental (its dependencies are built once).
//!
//! Per crate, `<private>/probe-target-<hash of its root>/` holds `target/` (the build folder),
//! `work/` (the copy, at the same path every run: rustc's incremental cache keys on it; deleted
//! after the run) and `tmp/`. A run holds the folder's `lock`; a second run on the same crate
//! meanwhile copies into a scratch folder of its own and shares the build folder (cargo locks
//! it).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::exec::{self, Folders, Line};
use super::{Crate, ProbeError};
use crate::sandbox::{self, RunResult};

/// What is left behind of a crate's copy (its own build output, VCS data, packages).
const SKIP: &[&str] = &[".git", "target", "node_modules"];
/// At most this many per-crate folders are kept; the least recently used go first.
const MAX_KEPT: usize = 8;
/// How far up from the file a `Cargo.toml` is looked for when there is no workspace root.
const MAX_LEVELS: usize = 5;

/// The library crate `file` (absolute) belongs to: the nearest folder above it with a
/// `Cargo.toml`, not above `workspace` when the file is in it (else at most [`MAX_LEVELS`]
/// folders up). Only a library's module counts: the manifest has `[lib]` or the crate has
/// `src/lib.rs`, and the file is under `src/` (not `src/main.rs` nor `src/bin/`). `None`: the
/// file is built on its own.
pub fn find_crate(file: &Path, workspace: Option<&Path>) -> Option<Crate> {
    let within = workspace.filter(|w| file.starts_with(w));
    let levels = if within.is_some() {
        usize::MAX
    } else {
        MAX_LEVELS
    };
    let root = file
        .ancestors()
        .skip(1)
        .take(levels)
        .take_while(|dir| within.is_none_or(|w| dir.starts_with(w)))
        .find(|dir| dir.join("Cargo.toml").is_file())?;
    let rel = file.strip_prefix(root).ok()?;
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    let library =
        manifest.lines().any(|l| l.trim() == "[lib]") || root.join("src/lib.rs").is_file();
    (library && module_path(rel).is_some()).then(|| Crate {
        root: root.to_path_buf(),
        file: rel.to_path_buf(),
    })
}

/// The build folder kept for the crate at `root` (`<private>/probe-target-<hash>/target`),
/// whether it exists yet or not; `None` without a private folder.
pub fn build_folder(root: &Path) -> Option<PathBuf> {
    Some(base_folder(&sandbox::private_dir()?, root).join("target"))
}

/// The per-crate folder in `private` for the crate at `root`.
fn base_folder(private: &Path, root: &Path) -> PathBuf {
    private.join(format!("probe-target-{}", folder_hash(root)))
}

/// The module path of a library file, as a test name's prefix: `src/lib.rs` → ``,
/// `src/a/mod.rs` and `src/a.rs` → `a::`, `src/a/b.rs` → `a::b::`. `None` outside `src/`, for
/// `src/main.rs`, `src/bin/` and names that are not plain identifiers.
fn module_path(rel: &Path) -> Option<String> {
    let rest = rel.strip_prefix("src").ok()?;
    let mut parts: Vec<String> = Vec::new();
    for c in rest.components() {
        let Component::Normal(name) = c else {
            return None;
        };
        parts.push(name.to_str()?.to_owned());
    }
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if parts.is_empty() && (stem == "main" || stem == "lib") {
        return (stem == "lib").then(String::new);
    }
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem.to_owned());
    }
    let ident = |p: &String| {
        p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && p.chars().next().is_some_and(|c| !c.is_ascii_digit())
    };
    if parts.is_empty() || !parts.iter().all(ident) {
        return None;
    }
    Some(parts.iter().map(|p| format!("{p}::")).collect())
}

/// A crate's copy with the harness in it, and where it is built.
pub(super) struct Copy {
    /// The lock on the per-crate folder, while its `work/` is this run's.
    lock: Option<std::fs::File>,
    /// The scratch folder of a run that found the per-crate folder busy.
    _scratch: Option<tempfile::TempDir>,
    work: PathBuf,
    tmp: PathBuf,
    target: PathBuf,
    /// The reviewed file in the copy.
    file: PathBuf,
    /// The file as the compiler names it (`src/util.rs`).
    shown: String,
    /// The file's module path (`util::`).
    module: String,
    /// The test binary, once built.
    exe: Option<PathBuf>,
}

impl Copy {
    /// Copies `krate` into its per-crate folder (see the module's doc).
    pub async fn new(krate: &Crate, cancel: &CancellationToken) -> Result<Self, ProbeError> {
        let io = |what: &str, e: std::io::Error| ProbeError::Io(format!("{what}: {e}"));
        let module = module_path(&krate.file).ok_or_else(|| {
            ProbeError::Io(format!("{} is not a library module", krate.file.display()))
        })?;
        let private = sandbox::private_dir().ok_or_else(|| {
            ProbeError::Io("cannot make a private scratch folder for the probe".to_owned())
        })?;
        let base = base_folder(&private, &krate.root);
        let target = base.join("target");
        std::fs::create_dir_all(&target).map_err(|e| io("cannot make a build folder", e))?;
        let _ = std::fs::write(base.join("used"), "");
        evict(&private, &base);
        let (lock, scratch, dir) = match try_lock(&base.join("lock")) {
            Some(lock) => (Some(lock), None, base.clone()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("probe-")
                    .tempdir_in(&private)
                    .map_err(|e| io("cannot make a scratch folder", e))?;
                let dir = t.path().to_path_buf();
                (None, Some(t), dir)
            }
        };
        let work = dir.join("work");
        if work.exists() {
            std::fs::remove_dir_all(&work).map_err(|e| io("cannot clear the crate's copy", e))?;
        }
        std::fs::create_dir_all(&work).map_err(|e| io("cannot make the crate's copy", e))?;
        let (from, to, stop) = (krate.root.clone(), work.clone(), cancel.clone());
        tokio::task::spawn_blocking(move || {
            let mut budget = sandbox::MAX_COPY_BYTES;
            sandbox::copy_tree(&from, &to, SKIP, &mut budget, &stop)
        })
        .await
        .map_err(|e| ProbeError::Io(format!("the crate's copy failed: {e}")))?
        .map_err(|e| io("cannot copy the crate", e))?;
        if cancel.is_cancelled() {
            return Err(ProbeError::Cancelled);
        }
        Ok(Copy {
            lock,
            _scratch: scratch,
            file: work.join(&krate.file),
            work,
            tmp: dir.join("tmp"),
            target,
            shown: krate.file.to_string_lossy().replace('\\', "/"),
            module,
            exe: None,
        })
    }

    /// The file as the compiler names it in its errors.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Writes `text` as the file in the copy and builds the crate's library tests, for at
    /// most `timeout`; remembers the test binary when the build passes.
    pub async fn build(
        &mut self,
        text: &str,
        timeout: Duration,
        max_output: usize,
        cancel: &CancellationToken,
    ) -> Result<RunResult, ProbeError> {
        std::fs::write(&self.file, text)
            .map_err(|e| ProbeError::Io(format!("cannot write the probe's harness: {e}")))?;
        let command = format!(
            "CARGO_TARGET_DIR={} exec cargo test --offline --lib --no-run --message-format=short",
            quote(&self.target)
        );
        let built = self
            .sandboxed(command, (timeout, max_output), cancel)
            .await?;
        self.exe = built.passed().then(|| executable(&built.output)).flatten();
        if built.passed() && self.exe.is_none() {
            return Err(ProbeError::Build(
                "cargo built the tests but did not say where the test binary is".to_owned(),
            ));
        }
        Ok(built)
    }

    /// Runs version `v`'s test (the binary's args after the filter) in the copy.
    pub async fn run_test(
        &self,
        prefix: &str,
        v: usize,
        bounds: (Duration, usize),
        cancel: &CancellationToken,
    ) -> Result<RunResult, ProbeError> {
        let exe = self
            .exe
            .as_ref()
            .ok_or_else(|| ProbeError::Build("the harness was not built".to_owned()))?;
        let command = format!(
            "{prefix}exec {} --exact {}__refine_probe::v{v} --nocapture --test-threads 1",
            quote(exe),
            self.module
        );
        let ran = self.sandboxed(command, bounds, cancel).await?;
        if ran.output.contains("running 0 tests") {
            return Err(ProbeError::Build(format!(
                "{} is not a module of its crate's library (the probe's test is not in it)",
                self.shown
            )));
        }
        Ok(ran)
    }

    /// Writes `text` as the file in the copy and runs its test `name` (its path in the file,
    /// `tests::sum_even_counterexample`) with `cargo test`, building what it needs.
    pub async fn test(
        &self,
        text: &str,
        name: &str,
        bounds: (Duration, usize),
        cancel: &CancellationToken,
    ) -> Result<RunResult, ProbeError> {
        std::fs::write(&self.file, text)
            .map_err(|e| ProbeError::Io(format!("cannot write the regression test: {e}")))?;
        let command = format!(
            "CARGO_TARGET_DIR={} exec cargo test --offline --lib --quiet -- --exact {}{name} --test-threads 1",
            quote(&self.target),
            self.module
        );
        self.sandboxed(command, bounds, cancel).await
    }

    /// The lines of result file `name`.
    pub fn results(&self, name: &str) -> std::collections::BTreeMap<usize, Line> {
        exec::results(&self.work, name)
    }

    async fn sandboxed(
        &self,
        command: String,
        bounds: (Duration, usize),
        cancel: &CancellationToken,
    ) -> Result<RunResult, ProbeError> {
        let writable = [self.target.clone()];
        let folders = Folders {
            work: &self.work,
            tmp: &self.tmp,
            writable: &writable,
        };
        exec::sandboxed(&folders, command, bounds, cancel).await
    }
}

impl Drop for Copy {
    /// The copy of the user's code does not stay behind (the build folder does).
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = std::fs::remove_dir_all(&self.work);
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// The test binary cargo names in `Executable unittests src/lib.rs (<path>)`.
fn executable(output: &str) -> Option<PathBuf> {
    output
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Executable "))
        .find_map(|rest| {
            let open = rest.rfind(" (")?;
            let path = rest.get(open.checked_add(2)?..)?.strip_suffix(')')?;
            Some(PathBuf::from(path))
        })
}

/// 16 hex digits naming the crate at `root`.
fn folder_hash(root: &Path) -> String {
    let hash = blake3::hash(root.as_os_str().as_encoded_bytes());
    hash.to_hex().chars().take(16).collect()
}

/// `path` quoted for `sh`.
fn quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// The lock file at `path`, locked by this process; `None` when another run holds it (or
/// there are no locks here).
#[cfg(unix)]
fn try_lock(path: &Path) -> Option<std::fs::File> {
    use std::os::fd::AsRawFd as _;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    // SAFETY: flock on a descriptor this function owns; the lock goes with the file.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    locked.then_some(file)
}

#[cfg(not(unix))]
fn try_lock(_path: &Path) -> Option<std::fs::File> {
    None
}

/// Removes the least recently used per-crate folders beyond [`MAX_KEPT`] (not `keep`, not one
/// in use).
fn evict(private: &Path, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(private) else {
        return;
    };
    let mut folders: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("probe-target-"))
        .map(|e| {
            let used = std::fs::metadata(e.path().join("used"))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (used, e.path())
        })
        .collect();
    folders.sort_by_key(|f| std::cmp::Reverse(f.0));
    for (_, dir) in folders.iter().skip(MAX_KEPT) {
        if dir != keep && try_lock(&dir.join("lock")).is_some() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests;

//! Workspace files: a cloned repository is untrusted input (issue 26). A file refine-ls reads
//! from a workspace (`.refine/…`) may be a link to `~/.ssh/id_rsa` or `/proc/self/environ`, a
//! FIFO that blocks forever, or a gigabyte; a file it writes there may be a link that points the
//! write at `~/.bashrc`. [`read_in`] and [`write_atomic_in`] refuse all of that; [`read_bounded`]
//! and [`write_atomic`] are their counterparts for the user's own files (links allowed for
//! reading, still bounded and regular), and [`lock`] serialises load-modify-save of one store
//! across processes.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Why a file was not read or written. Each says in one sentence what was refused.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path, or a folder on the way to it, is a link that leads out of the workspace.
    #[error("{} leads outside the workspace (to {}): refused", path.display(), target.display())]
    OutsideWorkspace {
        /// The path as asked for.
        path: PathBuf,
        /// Where it really leads.
        target: PathBuf,
    },
    /// A FIFO, a device, a folder, or a file of `/proc` or `/sys`.
    #[error("{} is not a regular file: refused", path.display())]
    NotRegular {
        /// The path as asked for.
        path: PathBuf,
    },
    /// Larger than the caller allows.
    #[error("{} is larger than {max} bytes: refused", path.display())]
    TooLarge {
        /// The path as asked for.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// Not UTF-8 text.
    #[error("{} is not UTF-8 text: refused", path.display())]
    NotUtf8 {
        /// The path as asked for.
        path: PathBuf,
    },
    /// The file to write is a link (dangling or not): writing would land wherever it points.
    #[error("{} is a link: refusing to write through it", path.display())]
    Link {
        /// The path as asked for.
        path: PathBuf,
    },
    /// The operating system said no.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`, `lock`, …).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FsError {
    let path = path.to_path_buf();
    move |source| FsError::Io {
        action,
        path,
        source,
    }
}

/// Reads a file of the workspace at `root` (`path` absolute, or relative to `root`): `None` when
/// there is none. Refuses a path that leads outside the workspace (the file or a folder on the
/// way being a link out; a link within the workspace is fine), anything but a regular file, a
/// file over `max_bytes` and text that is not UTF-8.
pub fn read_in(root: &Path, path: &Path, max_bytes: u64) -> Result<Option<String>, FsError> {
    let path = root.join(path);
    let root = std::fs::canonicalize(root).map_err(io("read", root))?;
    let real = match std::fs::canonicalize(&path) {
        Ok(p) => p,
        // Missing, or a dangling link: nothing to read either way.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", &path)(e)),
    };
    if !real.starts_with(&root) {
        return Err(FsError::OutsideWorkspace { path, target: real });
    }
    read_regular(&path, &real, max_bytes).map(Some)
}

/// Reads one of the user's own files (links allowed): `None` when there is none. Still refuses
/// anything but a regular file, a file over `max_bytes` and text that is not UTF-8.
pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<Option<String>, FsError> {
    let real = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", path)(e)),
    };
    read_regular(path, &real, max_bytes).map(Some)
}

/// Kernel views that look like regular files but are not files (`/proc/self/environ` has size
/// 0 and yields the environment).
fn pseudo(real: &Path) -> bool {
    cfg!(target_os = "linux") && (real.starts_with("/proc") || real.starts_with("/sys"))
}

/// Reads `real` (canonical, so no link in it), named `shown` in errors.
fn read_regular(shown: &Path, real: &Path, max: u64) -> Result<String, FsError> {
    let not_regular = || FsError::NotRegular {
        path: shown.to_path_buf(),
    };
    let too_large = || FsError::TooLarge {
        path: shown.to_path_buf(),
        max,
    };
    if pseudo(real) {
        return Err(not_regular());
    }
    // Checked before opening: opening a FIFO for reading waits for a writer.
    let meta = std::fs::metadata(real).map_err(io("read", shown))?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    if meta.len() > max {
        return Err(too_large());
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // Should the file be swapped for a link or a FIFO after the checks: no following, no
        // waiting; what was opened is checked again below.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(real).map_err(io("read", shown))?;
    if !file.metadata().map_err(io("read", shown))?.is_file() {
        return Err(not_regular());
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io("read", shown))?;
    if !u64::try_from(bytes.len()).is_ok_and(|n| n <= max) {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| FsError::NotUtf8 {
        path: shown.to_path_buf(),
    })
}

/// Writes a file of the workspace at `root` (`path` absolute under `root`, or relative to it)
/// whole or not at all: a temporary file in the same folder renamed over it, keeping an existing
/// file's permissions. Never writes through a link: refuses when the file is a link (dangling
/// included) or a folder on the way leads outside the workspace; creates missing folders.
pub fn write_atomic_in(root: &Path, path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let path = root.join(path);
    let real_root = std::fs::canonicalize(root).map_err(io("write", root))?;
    let outside = |target: PathBuf| FsError::OutsideWorkspace {
        path: path.clone(),
        target,
    };
    let Ok(relative) = path.strip_prefix(root) else {
        return Err(outside(path.clone()));
    };
    let mut parts: Vec<Component<'_>> = relative.components().collect();
    if parts.pop().is_none() || !parts.iter().all(|c| matches!(c, Component::Normal(_))) {
        return Err(outside(path.clone()));
    }
    // Each folder on the way, made if missing, must still be inside once its links are
    // resolved, so that the next one is made (or the file written) inside too.
    let mut dir = root.to_path_buf();
    for part in parts {
        dir.push(part);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("create", &dir)(e)),
        }
        let real = std::fs::canonicalize(&dir).map_err(io("write", &dir))?;
        if !real.starts_with(&real_root) {
            return Err(outside(real));
        }
        if !real.is_dir() {
            return Err(io("create", &dir)(std::io::ErrorKind::NotADirectory.into()));
        }
    }
    replace(&path, &dir, bytes)
}

/// Writes one of the user's own files whole or not at all (see [`write_atomic_in`]), creating
/// its folder; refuses when the file itself is a link.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    replace(path, &dir, bytes)
}

/// Renames a temporary file in `dir` over `path`, which must not be a link or a non-file.
fn replace(path: &Path, dir: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let keep = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(FsError::Link {
                path: path.to_path_buf(),
            });
        }
        Ok(m) if !m.is_file() => {
            return Err(FsError::NotRegular {
                path: path.to_path_buf(),
            });
        }
        Ok(m) => Some(m.permissions()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("write", path)(e)),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".refine-ls-").suffix(".tmp");
    #[cfg(unix)]
    {
        // A new file gets what `std::fs::write` would give it (0666 less the umask), not the
        // temporary file's 0600.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(io("write", path))?;
    tmp.write_all(bytes).map_err(io("write", path))?;
    if let Some(p) = keep {
        tmp.as_file()
            .set_permissions(p)
            .map_err(io("write", path))?;
    }
    tmp.as_file().sync_all().map_err(io("write", path))?;
    tmp.persist(path).map_err(|e| io("write", path)(e.error))?;
    Ok(())
}

/// An exclusive lock on a store, held until dropped.
#[derive(Debug)]
pub struct LockGuard {
    // Closing the file releases the lock.
    _file: File,
}

/// Takes the exclusive, cross-process lock of the store at `path` (waiting for it). The lock
/// file is kept out of the workspace, where a repository cannot plant a link in its place: in
/// the user's data folder (`locks/<blake3 of the store's canonical path>.lock`), else the
/// temporary folder.
pub fn lock(path: &Path) -> Result<LockGuard, FsError> {
    let name = blake3::hash(canonical_name(path).as_os_str().as_encoded_bytes()).to_hex();
    let dir = crate::paths::user_data_dir()
        .unwrap_or_else(|| std::env::temp_dir().join("refine-ls"))
        .join("locks");
    lock_file(&dir.join(format!("{name}.lock")))
}

/// Locks `file`, creating it and its folder.
fn lock_file(file: &Path) -> Result<LockGuard, FsError> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(file)
        .map_err(io("lock", file))?;
    f.lock().map_err(io("lock", file))?;
    Ok(LockGuard { _file: f })
}

/// `path` with the links of its longest existing ancestor resolved, so that every process names
/// the same store the same way whether or not its folder exists yet.
fn canonical_name(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut base = absolute.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(base) {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                base = parent;
            }
            _ => return absolute,
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    const MAX: u64 = 1024;

    /// A workspace and a folder beside it (outside it).
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join(".refine")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        (dir, root, outside)
    }

    #[test]
    fn a_plain_file_or_a_link_within_the_workspace_is_read_and_a_missing_one_is_none() {
        let (_d, root, _) = setup();
        std::fs::write(root.join("real.md"), "inside").unwrap();
        symlink("../real.md", root.join(".refine/principles.md")).unwrap();
        let read = |p: &str| read_in(&root, Path::new(p), MAX).unwrap();
        assert_eq!(read("real.md").as_deref(), Some("inside"));
        assert_eq!(read(".refine/principles.md").as_deref(), Some("inside"));
        assert_eq!(read(".refine/missing.md"), None);
    }

    #[test]
    fn a_link_out_of_the_workspace_is_refused_file_or_folder() {
        let (_d, root, outside) = setup();
        std::fs::write(outside.join("secret"), "canary").unwrap();
        symlink(outside.join("secret"), root.join(".refine/principles.md")).unwrap();
        let err = read_in(&root, Path::new(".refine/principles.md"), MAX).unwrap_err();
        assert!(matches!(err, FsError::OutsideWorkspace { .. }), "{err}");
        assert!(err.to_string().contains("principles.md"), "{err}");
        // A `.refine` that is itself a link out.
        std::fs::remove_dir_all(root.join(".refine")).unwrap();
        std::fs::write(outside.join("principles.md"), "canary").unwrap();
        symlink(&outside, root.join(".refine")).unwrap();
        let err = read_in(&root, Path::new(".refine/principles.md"), MAX).unwrap_err();
        assert!(matches!(err, FsError::OutsideWorkspace { .. }), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_self_environ_is_refused_through_a_link_and_for_the_users_own_files() {
        let (_d, root, _) = setup();
        symlink("/proc/self/environ", root.join(".refine/principles.md")).unwrap();
        let err = read_in(&root, Path::new(".refine/principles.md"), MAX).unwrap_err();
        assert!(matches!(err, FsError::OutsideWorkspace { .. }), "{err}");
        let err = read_bounded(&root.join(".refine/principles.md"), MAX).unwrap_err();
        assert!(matches!(err, FsError::NotRegular { .. }), "{err}");
    }

    #[test]
    fn a_fifo_a_folder_and_a_large_or_binary_file_are_refused() {
        let (_d, root, _) = setup();
        let fifo = root.join(".refine/principles.md");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        // Returns at once (no writer is waited for).
        let err = read_in(&root, &fifo, MAX).unwrap_err();
        assert!(matches!(err, FsError::NotRegular { .. }), "{err}");
        let err = read_bounded(&fifo, MAX).unwrap_err();
        assert!(matches!(err, FsError::NotRegular { .. }), "{err}");
        let err = read_in(&root, Path::new(".refine"), MAX).unwrap_err();
        assert!(matches!(err, FsError::NotRegular { .. }), "{err}");
        let big = root.join("big.md");
        std::fs::write(&big, vec![b'a'; 1025]).unwrap();
        let err = read_in(&root, &big, MAX).unwrap_err();
        assert!(matches!(err, FsError::TooLarge { max: 1024, .. }), "{err}");
        assert!(matches!(
            read_bounded(&big, MAX),
            Err(FsError::TooLarge { .. })
        ));
        std::fs::write(&big, vec![b'a'; 1024]).unwrap();
        assert_eq!(read_in(&root, &big, MAX).unwrap().unwrap().len(), 1024);
        std::fs::write(&big, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            read_in(&root, &big, MAX),
            Err(FsError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn writing_makes_folders_replaces_whole_and_keeps_permissions() {
        let (_d, root, _) = setup();
        let file = root.join("new/deeper/dismissed.toml");
        write_atomic_in(&root, &file, b"one").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "one");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic_in(&root, Path::new("new/deeper/dismissed.toml"), b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "two");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        // Nothing left behind but the file.
        let names: Vec<_> = std::fs::read_dir(root.join("new/deeper"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["dismissed.toml"]);
    }

    #[test]
    fn a_write_through_a_link_or_a_folder_out_is_refused_and_nothing_is_made_outside() {
        let (_d, root, outside) = setup();
        let store = root.join(".refine/dismissed.toml");
        // A link to a file outside: refused, the file unchanged.
        std::fs::write(outside.join("victim"), "mine").unwrap();
        symlink(outside.join("victim"), &store).unwrap();
        let err = write_atomic_in(&root, &store, b"x").unwrap_err();
        assert!(matches!(err, FsError::Link { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(outside.join("victim")).unwrap(),
            "mine"
        );
        // A dangling link: refused, nothing created where it points.
        std::fs::remove_file(&store).unwrap();
        symlink(outside.join("nowhere"), &store).unwrap();
        let err = write_atomic_in(&root, &store, b"x").unwrap_err();
        assert!(matches!(err, FsError::Link { .. }), "{err}");
        assert!(write_atomic(&store, b"x").is_err());
        assert!(!outside.join("nowhere").exists());
        // A folder on the way that is a link out: refused, nothing created under it.
        std::fs::remove_dir_all(root.join(".refine")).unwrap();
        symlink(&outside, root.join(".refine")).unwrap();
        let err = write_atomic_in(&root, &store, b"x").unwrap_err();
        assert!(matches!(err, FsError::OutsideWorkspace { .. }), "{err}");
        let err = write_atomic_in(&root, &root.join(".refine/sub/f"), b"x").unwrap_err();
        assert!(matches!(err, FsError::OutsideWorkspace { .. }), "{err}");
        assert!(!outside.join("dismissed.toml").exists());
        assert!(!outside.join("sub").exists());
        // A path that climbs out.
        let err = write_atomic_in(&root, Path::new("../outside/f"), b"x").unwrap_err();
        assert!(matches!(err, FsError::OutsideWorkspace { .. }), "{err}");
        assert!(!outside.join("f").exists());
    }

    #[test]
    fn the_lock_is_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("locks/store.lock");
        let held = lock_file(&file).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = file.clone();
        let waiter = std::thread::spawn(move || {
            let _g = lock_file(&other).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "a second lock was taken while the first was held"
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
    }

    #[test]
    fn a_store_has_one_lock_name_whether_or_not_its_folder_exists() {
        let (_d, root, _) = setup();
        let link = root.parent().unwrap().join("alias");
        symlink(&root, &link).unwrap();
        let before = canonical_name(&link.join("missing/.refine/dismissed.toml"));
        std::fs::create_dir_all(root.join("missing/.refine")).unwrap();
        let after = canonical_name(&root.join("missing/.refine/dismissed.toml"));
        assert_eq!(before, after);
    }
}

//! Copying a workspace (or one crate of it) into a scratch folder: build output, VCS data and
//! secrets files left behind, links not followed, a byte budget.

use std::path::Path;

use tokio_util::sync::CancellationToken;

/// Folders `verify.command`'s copy leaves behind (build output, VCS data, virtual
/// environments, caches), at any depth.
pub const SKIP: &[&str] = &[
    ".git",
    "target",
    "node_modules",
    ".venv",
    "venv",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    "dist",
    "build",
];

/// The default budget of a copy.
pub const MAX_COPY_BYTES: u64 = 512 << 20;

/// Copies the tree at `from` into `to` (which exists), leaving behind folders named in `skip`,
/// secrets files ([`crate::secrets::is_sensitive_path`]: `.env`, keys, `.npmrc`, ...; the
/// command runs code the model wrote and has no business reading them) and links (never
/// followed nor copied). Each copied file's size is taken from `budget`; a file that does not
/// fit is an error. Stops between files once `cancel` fires (the caller checks it).
pub fn copy_tree(
    from: &Path,
    to: &Path,
    skip: &[&str],
    budget: &mut u64,
    cancel: &CancellationToken,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let entry = entry?;
        let name = entry.file_name();
        let kind = entry.file_type()?;
        let target = to.join(&name);
        if kind.is_dir() {
            if skip.iter().any(|s| name == *s) {
                continue;
            }
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target, skip, budget, cancel)?;
        } else if kind.is_file() {
            if crate::secrets::is_sensitive_path(&name.to_string_lossy()) {
                continue;
            }
            let len = entry.metadata()?.len();
            let Some(left) = budget.checked_sub(len) else {
                return Err(std::io::Error::other(
                    "the tree is larger than the copy's byte budget",
                ));
            };
            *budget = left;
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_leaves_build_output_secrets_and_links_behind() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        let f = from.path();
        std::fs::create_dir_all(f.join("src")).unwrap();
        std::fs::create_dir_all(f.join("target/debug")).unwrap();
        std::fs::write(f.join("src/lib.rs"), "fn a() {}").unwrap();
        std::fs::write(f.join("target/debug/x"), "x").unwrap();
        std::fs::write(f.join(".env"), "KEY=1").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(f.join("src/lib.rs"), f.join("link.rs")).unwrap();
        let mut budget = 1 << 20;
        copy_tree(f, to.path(), SKIP, &mut budget, &CancellationToken::new()).unwrap();
        let t = to.path();
        assert!(t.join("src/lib.rs").is_file());
        assert!(!t.join("target").exists());
        assert!(!t.join(".env").exists());
        assert!(!t.join("link.rs").exists());
        assert_eq!(budget, (1 << 20) - 9);
        let mut small = 3;
        assert!(copy_tree(f, to.path(), SKIP, &mut small, &CancellationToken::new()).is_err());
    }
}

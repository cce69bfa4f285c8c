//! The private folder for scratch copies.

use std::path::{Path, PathBuf};

/// The private folder for scratch copies: `$REFINE_LS_SCRATCH_DIR`, else
/// `<cache dir>/refine-ls/scratch`; created if missing and, on unix, owned by the user and
/// made `0700` (re-chmodded when it exists with wider permissions). `None` (and a warning in
/// the log) when there is no such folder or it cannot be made private.
pub fn private_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("REFINE_LS_SCRATCH_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => crate::paths::platform_cache_dir()?.join("scratch"),
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

#[cfg(test)]
mod tests {
    use super::*;

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

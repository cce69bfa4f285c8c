//! What a sandboxed command sees of the home folder: all of it (read-only, the credential
//! stores hidden) for `verify.command`, or only the toolchains for probes, which run code the
//! model wrote and have no business reading anything else there.

use std::path::{Component, Path, PathBuf};

/// How much of the home folder a sandboxed command sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Home {
    /// All of it, read-only, the credential stores hidden (`verify.command`: a project's own
    /// build may read its tools' settings there).
    #[default]
    Whole,
    /// An empty home folder (a tmpfs) with only the toolchain folders bound back read-only
    /// (`~/.cargo`, `~/.rustup`, `~/.pyenv`, ...). Without bubblewrap this is [`Home::Whole`].
    Toolchains,
}

/// Programs whose installation folders a probe needs.
const TOOLS: &[&str] = &["rustc", "cargo", "python3"];

/// The folders under `home` that hold the toolchains: for each of [`TOOLS`] found on `PATH`
/// (its path and the path it resolves to), the first folder below `home`; plus `RUSTUP_HOME`
/// (else `~/.rustup`), `CARGO_HOME` and `PYENV_ROOT` when they are under `home`. Only folders
/// that exist, none inside another.
pub(super) fn toolchain_dirs(home: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in TOOLS {
        let Some(exe) = std::env::split_paths(&path)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
        else {
            continue;
        };
        let real = std::fs::canonicalize(&exe).ok();
        for p in std::iter::once(exe).chain(real) {
            found.extend(first_below(home, &p));
        }
    }
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    found.push(var("RUSTUP_HOME").unwrap_or_else(|| home.join(".rustup")));
    found.extend(var("CARGO_HOME"));
    found.extend(var("PYENV_ROOT"));
    found.retain(|p| p.starts_with(home) && p != home && p.is_dir());
    found.sort();
    found.dedup();
    let all = found.clone();
    found.retain(|p| !all.iter().any(|q| q != p && p.starts_with(q)));
    found
}

/// `home/first` for a `path` under `home`.
fn first_below(home: &Path, path: &Path) -> Option<PathBuf> {
    let rest = path.strip_prefix(home).ok()?;
    match rest.components().next()? {
        Component::Normal(first) => Some(home.join(first)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_folder_below_home_is_bound() {
        let home = Path::new("/home/u");
        assert_eq!(
            first_below(home, Path::new("/home/u/.cargo/bin/rustc")),
            Some(PathBuf::from("/home/u/.cargo"))
        );
        assert_eq!(first_below(home, Path::new("/usr/bin/python3")), None);
    }

    #[test]
    fn toolchain_folders_are_under_home_and_not_nested() {
        let Some(home) = dirs::home_dir() else {
            return;
        };
        let dirs = toolchain_dirs(&home);
        for d in &dirs {
            assert!(d.starts_with(&home) && d != &home, "{}", d.display());
            assert!(!dirs.iter().any(|o| o != d && d.starts_with(o)));
        }
    }
}

//! Trusted workspaces. A command refine-ls would run (`verify.command`) is taken from the
//! user's own configuration or the editor's settings; from a `.refine.toml` inside the
//! repository under review only once the user has trusted that workspace with
//! `refine-ls trust`, since anyone can commit such a file.

use std::path::{Path, PathBuf};

use crate::config::{Resolved, Source};

/// The list of trusted roots: `$REFINE_LS_TRUST_FILE`, else `<config dir>/refine-ls/trusted`.
pub fn trust_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REFINE_LS_TRUST_FILE") {
        return Some(PathBuf::from(p));
    }
    dirs::config_dir().map(|d| d.join("refine-ls").join("trusted"))
}

fn canonical(root: &Path) -> PathBuf {
    std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())
}

/// Whether the user trusted this workspace root.
pub fn is_trusted(root: &Path) -> bool {
    let Some(file) = trust_file() else {
        return false;
    };
    let want = canonical(root);
    std::fs::read_to_string(file)
        .map(|t| t.lines().any(|l| Path::new(l.trim()) == want))
        .unwrap_or(false)
}

/// Records a workspace root as trusted.
pub fn trust(root: &Path) -> Result<PathBuf, String> {
    let file = trust_file().ok_or("no configuration directory to keep the trust list in")?;
    let root = canonical(root);
    if is_trusted(&root) {
        return Ok(root);
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut text = std::fs::read_to_string(&file).unwrap_or_default();
    text.push_str(&format!("{}\n", root.display()));
    std::fs::write(&file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(root)
}

/// The `verify.command` that may run for this workspace, and why a configured one may not.
pub fn verify_command(
    resolved: &Resolved,
    root: Option<&Path>,
) -> (Option<String>, Option<String>) {
    let Some(cmd) = resolved
        .config
        .verify
        .command
        .clone()
        .filter(|c| !c.trim().is_empty())
    else {
        return (None, None);
    };
    if resolved.sources.get("verify.command") != Some(&Source::Workspace) {
        return (Some(cmd), None);
    }
    match root {
        Some(r) if is_trusted(r) => (Some(cmd), None),
        _ => (
            None,
            Some(format!(
                "verify.command from .refine.toml was not run: this workspace is not trusted (run `refine-ls trust {}` if you trust it)",
                root.map_or_else(|| ".".to_owned(), |r| r.display().to_string())
            )),
        ),
    }
}

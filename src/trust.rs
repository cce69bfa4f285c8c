//! Trusted workspaces, and the one rule of what a repository may decide.
//!
//! A cloned repository is untrusted input: anyone can commit a `.refine.toml`. The keys that
//! decide *where code or keys go, what runs or what is loaded* ([`needs_trust`]) are taken from
//! the user (their config file, the editor's settings, the command line), and from a
//! workspace's `.refine.toml` only once the user trusted that workspace, with `refine-ls trust`
//! or through the editor's own workspace trust (VS Code's). Everything else (the loop, hints,
//! the model's name) a repository may set.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The list of trusted roots: `$REFINE_LS_TRUST_FILE`, else `<config dir>/refine-ls/trusted`.
pub fn trust_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REFINE_LS_TRUST_FILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    dirs::config_dir().map(|d| d.join("refine-ls").join("trusted"))
}

fn canonical(root: &Path) -> PathBuf {
    std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())
}

/// The longest trust list read (a list of folders; anything larger is not one).
const MAX_TRUST_FILE: u64 = 1 << 20;

fn trusted_roots(file: &Path) -> Vec<PathBuf> {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(file) else {
        return Vec::new();
    };
    let mut text = String::new();
    if f.take(MAX_TRUST_FILE).read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Whether the user trusted this workspace root (`refine-ls trust`).
pub fn is_trusted(root: &Path) -> bool {
    let Some(file) = trust_file() else {
        return false;
    };
    let want = canonical(root);
    trusted_roots(&file).contains(&want)
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
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    writeln!(f, "{}", root.display())
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(root)
}

/// The provider keys (of `provider`, `critic` and `reviser`) that decide where code and keys
/// go, what is loaded and how it runs.
const GATED_PROVIDER_KEYS: &[&str] = &[
    "kind",
    "base_url",
    "api_key_env",
    "headers",
    "extra_body",
    "model_path",
    "threads",
    "gpu_layers",
];

/// Sections a workspace may set only when trusted, whole.
const GATED_SECTIONS: &[&str] = &["privacy", "verify", "learning"];

/// Whether a dotted configuration key decides where code or keys go, what runs or what is
/// loaded, so that a workspace's `.refine.toml` may set it only in a trusted workspace.
pub fn needs_trust(key: &str) -> bool {
    let mut parts = key.splitn(3, '.');
    let (Some(section), rest) = (parts.next(), parts.next()) else {
        return false;
    };
    if GATED_SECTIONS.contains(&section) {
        return true;
    }
    matches!(section, "provider" | "critic" | "reviser")
        && rest.is_some_and(|k| GATED_PROVIDER_KEYS.contains(&k))
}

/// Which keys need trust, as the README and `doctor` list them.
pub fn gated_keys() -> String {
    let provider: Vec<String> = GATED_PROVIDER_KEYS
        .iter()
        .map(|k| format!("{{provider,critic,reviser}}.{k}"))
        .collect();
    let sections: Vec<String> = GATED_SECTIONS.iter().map(|s| format!("{s}.*")).collect();
    format!("{}, {}", provider.join(", "), sections.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_decide_where_code_goes_need_trust_and_the_rest_do_not() {
        for k in [
            "provider.base_url",
            "critic.api_key_env",
            "reviser.headers",
            "provider.extra_body",
            "critic.kind",
            "provider.model_path",
            "provider.threads",
            "reviser.gpu_layers",
            "privacy.redact_secrets",
            "verify.command",
            "verify.network",
            "learning.record",
        ] {
            assert!(needs_trust(k), "{k}");
        }
        for k in [
            "provider.model",
            "critic.temperature",
            "loop.strategy",
            "hints.inlay",
            "cache.enabled",
            "provider",
            "loop.max_unbacked_severity",
        ] {
            assert!(!needs_trust(k), "{k}");
        }
    }
}

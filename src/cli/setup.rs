//! What every command of the command line sets up the same way: the configuration with the
//! provider flags on top, the review service, the workspace root, the interrupt token and the
//! exit status for an error.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::flags::ProviderFlags;
use crate::config::{Layers, Source};
use crate::service::ReviewService;

/// Exit status for "failed".
pub const EXIT_ERROR: u8 = 2;

/// Cancelled when the user interrupts the command (Ctrl-C, SIGTERM): a review then stops, kills
/// what `verify.command` started and removes its scratch copy before the process exits.
pub fn interrupted() -> &'static CancellationToken {
    static TOKEN: std::sync::OnceLock<CancellationToken> = std::sync::OnceLock::new();
    TOKEN.get_or_init(CancellationToken::new)
}

/// The service for a workspace, its review cache in `cache_dir` when one is given.
pub fn open_service(
    resolved: crate::config::Resolved,
    root: Option<PathBuf>,
    cache_dir: Option<&Path>,
) -> ReviewService {
    open_service_from(resolved, root.clone(), root, cache_dir)
}

/// [`open_service`], the workspace's own settings (prompts, principles, dismissals) read from
/// `settings` instead of the root (`review --diff` reads them from the base of the change).
pub fn open_service_from(
    resolved: crate::config::Resolved,
    root: Option<PathBuf>,
    settings: Option<PathBuf>,
    cache_dir: Option<&Path>,
) -> ReviewService {
    let cache = cache_dir
        .filter(|_| resolved.config.cache.enabled)
        .and_then(|d| crate::cache::Cache::open(&d.join("reviews.redb")))
        .map(std::sync::Arc::new);
    let prompts = std::sync::Arc::new(crate::prompts::Prompts::load(settings.as_deref()));
    ReviewService::new(resolved, root, prompts, cache).with_settings_from(settings)
}

/// Resolves the configuration for a workspace with the provider flags on top, and prints
/// its warnings.
pub fn load_config(root: Option<&Path>, flags: &ProviderFlags) -> crate::config::Resolved {
    let mut layers = Layers::default();
    layers.load_files(root);
    resolve_with_flags(layers, flags)
}

/// The configuration of `review --diff`: the workspace layer from `settings` (the base's copy),
/// trust from the root or `trust_base`.
pub fn load_config_from(
    root: &Path,
    settings: Option<&Path>,
    trust_base: bool,
    flags: &ProviderFlags,
) -> crate::config::Resolved {
    let mut layers = Layers::default();
    if trust_base {
        layers.grant_trust(crate::config::TrustedBy::CommandLine);
    }
    layers.load_files_from(Some(root), settings);
    resolve_with_flags(layers, flags)
}

fn resolve_with_flags(mut layers: Layers, flags: &ProviderFlags) -> crate::config::Resolved {
    layers.set(Source::CommandLine, flags.layer());
    let mut resolved = layers.resolve();
    for w in &resolved.warnings {
        eprintln!("refine-ls: warning: {w}");
    }
    resolved.config.provider.use_every_core();
    resolved
}

/// The nearest ancestor holding `.refine.toml` or `.git`, else the file's folder.
pub fn workspace_root(path: &Path) -> Option<PathBuf> {
    let abs = std::fs::canonicalize(path).ok()?;
    let abs = abs.as_path();
    let dir = abs.parent()?.to_path_buf();
    dir.ancestors()
        .find(|d| d.join(".refine.toml").exists() || d.join(".git").exists())
        .map(Path::to_path_buf)
        .or(Some(dir))
}

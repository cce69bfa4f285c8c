//! Where refine-ls keeps its own things on this machine: the user's config file, data folder
//! and the platform folders under which they live. A leaf: it imports nothing from the crate,
//! so every foundation (the configuration, workspace files, the sandbox, the learning record)
//! can ask it without importing each other.

use std::path::PathBuf;

/// The folder every platform folder of refine-ls is named.
const APP: &str = "refine-ls";

/// The platform's config folder for refine-ls (`~/.config/refine-ls`), whatever the
/// environment overrides for single files say.
pub fn platform_config_dir() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join(APP))
}

/// The platform's data folder for refine-ls (`~/.local/share/refine-ls`), whatever
/// `$REFINE_LS_DATA_DIR` says (see [`user_data_dir`] for the folder in use).
pub fn platform_data_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join(APP))
}

/// The platform's cache folder for refine-ls (`~/.cache/refine-ls`), whatever the
/// environment overrides for the review cache, the models and the scratch copies say.
pub fn platform_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join(APP))
}

/// The user's config file: `$REFINE_LS_CONFIG`, else `<config dir>/refine-ls/config.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REFINE_LS_CONFIG") {
        return Some(PathBuf::from(p));
    }
    platform_config_dir().map(|d| d.join("config.toml"))
}

/// The user's data folder for refine-ls (dismissals, the learning record): `$REFINE_LS_DATA_DIR`,
/// else the platform's data folder (`~/.local/share/refine-ls`).
pub fn user_data_dir() -> Option<PathBuf> {
    std::env::var_os("REFINE_LS_DATA_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(platform_data_dir)
}

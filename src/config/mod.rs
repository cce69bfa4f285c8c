//! Configuration: one schema, filled from layered sources (highest first): the editor
//! (`initializationOptions` / `workspace/didChangeConfiguration`, section `refine`) or the
//! command line, `.refine.toml` at the workspace root, the user's config file, and defaults.
//!
//! A bad key or value never stops the server: unknown keys and values of the wrong type are
//! skipped with a warning, and the rest of the layer still applies.
//!
//! `schema.rs` holds the keys and their defaults, `layers.rs` the sources, the workspace's
//! trust and their resolution, `tree.rs` the dotted-key operations on JSON values they share.
//! Where the user's files live is [`crate::paths`]' (re-exported here).

mod layers;
mod schema;
mod tree;

pub use crate::paths::{user_config_path, user_data_dir};
pub use layers::{Layers, Resolved, Source, TrustedBy};
pub use schema::{
    CacheConfig, Config, Drafting, HintsConfig, LearningConfig, LoopConfig, PrivacyConfig,
    ProviderConfig, ProviderOverride, Strategy, VerifyConfig,
};

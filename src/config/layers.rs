//! The layered sources (the editor or the command line, `.refine.toml`, the user's config
//! file, the defaults), the workspace's trust, and their resolution into one [`Resolved`]
//! configuration, key by key, with a warning for each key skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use super::schema::Config;
use super::tree::{collect_leaves, key_exists, merge_into, set_path};
use crate::paths::user_config_path;

/// Where a value came from, highest precedence last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Built-in default.
    Default,
    /// The user's config file.
    UserFile,
    /// `.refine.toml` in the workspace.
    Workspace,
    /// The editor's settings or initialization options.
    Editor,
    /// Command-line flags.
    CommandLine,
}

impl Source {
    /// How the source is named to users.
    pub fn label(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::UserFile => "user config file",
            Source::Workspace => ".refine.toml",
            Source::Editor => "editor settings",
            Source::CommandLine => "command line",
        }
    }
}

/// The configuration in force, with where each value came from and what was wrong.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// The effective configuration.
    pub config: Config,
    /// Dotted key → the source that set it (keys left at their default are absent).
    pub sources: BTreeMap<String, Source>,
    /// One sentence per skipped key or unreadable source.
    pub warnings: Vec<String>,
    /// Whether the workspace is trusted, and by what (`None`: not trusted, or no workspace).
    pub trust: Option<TrustedBy>,
    /// Keys a workspace set that trust did not allow (ignored), with the layer that set them.
    pub refused: BTreeMap<String, Source>,
}

impl Resolved {
    /// Whether the workspace under review is trusted.
    pub fn trusted(&self) -> bool {
        self.trust.is_some()
    }
}

/// Who trusted a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustedBy {
    /// The user's trust list (`refine-ls trust`).
    TrustList,
    /// The editor's own workspace trust (VS Code's), told at `initialize`.
    Editor,
    /// The command line (`review --diff --trust-base`, the GitHub action's own checkout).
    CommandLine,
}

impl TrustedBy {
    /// How the trust is named to users.
    pub fn label(self) -> &'static str {
        match self {
            TrustedBy::TrustList => "trusted (refine-ls trust)",
            TrustedBy::Editor => "trusted (the editor's workspace trust)",
            TrustedBy::CommandLine => "trusted (command line)",
        }
    }
}

/// The largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 256 * 1024;

/// Keys only the user's own configuration may set, never a workspace, trusted or not.
const USER_ONLY: &[&str] = &["verify.network"];

/// The raw layers, kept so that one of them can change (the editor's settings) and the whole
/// configuration be resolved again.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    layers: BTreeMap<Source, Value>,
    /// Problems met while reading the layers (unreadable files).
    read_warnings: Vec<String>,
    /// The workspace root (whose trust counts).
    root: Option<PathBuf>,
    /// Where the workspace layer's `.refine.toml` is read (the root, or a copy of the base's).
    settings: Option<PathBuf>,
    /// Trust the trust list gives the workspace (read with the files).
    listed: bool,
    /// Trust given by the editor or the command line, kept across reloads of the files.
    granted: Option<TrustedBy>,
}

impl Layers {
    /// Trusts the workspace on the word of the editor (its own workspace trust) or the
    /// command line. Kept when the files are read again.
    pub fn grant_trust(&mut self, by: TrustedBy) {
        self.granted = Some(by);
    }

    /// How the workspace is trusted, if it is.
    pub fn trust(&self) -> Option<TrustedBy> {
        self.granted.or(self.listed.then_some(TrustedBy::TrustList))
    }

    /// Reads the files again (the user's config file and the workspace's `.refine.toml`),
    /// keeping the editor's and the command line's layers and any granted trust.
    pub fn reload_files(&mut self) {
        self.layers.remove(&Source::UserFile);
        self.layers.remove(&Source::Workspace);
        self.read_warnings.clear();
        let (root, settings) = (self.root.clone(), self.settings.clone());
        self.load_files_from(root.as_deref(), settings.as_deref());
    }

    /// Sets (or replaces) one layer.
    pub fn set(&mut self, source: Source, value: Value) {
        self.layers.insert(source, value);
    }

    /// One layer as it stands.
    pub fn get(&self, source: Source) -> Option<&Value> {
        self.layers.get(&source)
    }

    /// Merges changed settings into one layer, key by key: objects merge, other values
    /// replace, `null` removes the key. (An editor that sends only what changed must not drop
    /// the rest, least of all the provider, which decides where code is sent.)
    pub fn merge(&mut self, source: Source, value: Value) {
        let slot = self
            .layers
            .entry(source)
            .or_insert_with(|| Value::Object(Map::new()));
        merge_into(slot, value);
    }

    /// Loads a TOML file into a layer; a missing file is no layer, an unreadable one a warning.
    /// `root`: the workspace the file lies in (never read through a link out of it); `None`
    /// for the user's own file. Either is bounded.
    pub fn load_toml(&mut self, source: Source, path: &Path, root: Option<&Path>) {
        let read = match root {
            Some(root) => crate::fsx::read_in(root, path, MAX_CONFIG_BYTES),
            None => crate::fsx::read_bounded(path, MAX_CONFIG_BYTES),
        };
        let text = match read {
            Ok(Some(t)) => t,
            Ok(None) => return,
            Err(e) => {
                self.read_warnings.push(e.to_string());
                return;
            }
        };
        match toml::from_str::<Value>(&text) {
            Ok(v) => self.set(source, v),
            Err(e) => self.read_warnings.push(format!(
                "ignoring {}: not valid TOML: {}",
                path.display(),
                e.message()
            )),
        }
    }

    /// Loads the user's config file and the workspace's `.refine.toml`, and whether the user
    /// trusted that workspace.
    pub fn load_files(&mut self, workspace_root: Option<&Path>) {
        self.load_files_from(workspace_root, workspace_root);
    }

    /// [`Self::load_files`], the workspace's `.refine.toml` read from `settings` instead of the
    /// root (`review --diff` reads it from the base of the change; `None`: no workspace file).
    /// Trust is still the root's.
    pub fn load_files_from(&mut self, workspace_root: Option<&Path>, settings: Option<&Path>) {
        if let Some(path) = user_config_path() {
            self.load_toml(Source::UserFile, &path, None);
        }
        self.root = workspace_root.map(Path::to_path_buf);
        self.settings = settings.map(Path::to_path_buf);
        self.listed = workspace_root.is_some_and(crate::trust::is_trusted);
        if let Some(dir) = settings {
            self.load_toml(Source::Workspace, &dir.join(".refine.toml"), Some(dir));
        }
    }

    /// Why a key the workspace set is ignored, if it is: the trust rule
    /// ([`crate::trust::needs_trust`]) and the user's own keys.
    fn refusal(&self, path: &str) -> Option<String> {
        if USER_ONLY.contains(&path) {
            return Some(format!(
                "`{path}` in .refine.toml is ignored: only your own configuration (your config file, the editor's settings) can set it"
            ));
        }
        if self.trust().is_some() || !crate::trust::needs_trust(path) {
            return None;
        }
        let root = self
            .root
            .as_deref()
            .map_or_else(|| ".".to_owned(), |r| r.display().to_string());
        Some(format!(
            "`{path}` in .refine.toml is ignored: it decides where code or keys go, what runs or what is loaded, and this workspace is not trusted (run `refine-ls trust {root}` if you trust it)"
        ))
    }

    /// Merges the layers over the defaults, key by key.
    pub fn resolve(&self) -> Resolved {
        let defaults = serde_json::to_value(Config::default()).unwrap_or(Value::Null);
        let mut merged = defaults.clone();
        let mut out = Resolved {
            warnings: self.read_warnings.clone(),
            trust: self.trust(),
            ..Resolved::default()
        };
        for (source, layer) in &self.layers {
            let mut leaves = Vec::new();
            collect_leaves(layer, &defaults, String::new(), &mut leaves);
            for (path, value) in leaves {
                let empty_object = value.as_object().is_some_and(serde_json::Map::is_empty);
                let schema_object = defaults
                    .pointer(&format!("/{}", path.replace('.', "/")))
                    .is_some_and(|d| d.as_object().is_some_and(|m| !m.is_empty()));
                if value.is_null() || (empty_object && schema_object) {
                    continue;
                }
                if *source == Source::Workspace
                    && let Some(why) = self.refusal(&path)
                {
                    out.warnings.push(why);
                    out.refused.insert(path, *source);
                    continue;
                }
                if !key_exists(&defaults, &path) {
                    out.warnings.push(format!(
                        "unknown configuration key `{path}` in {} (ignored)",
                        source.label()
                    ));
                    continue;
                }
                let mut candidate = merged.clone();
                set_path(&mut candidate, &path, value.clone());
                match serde_json::from_value::<Config>(candidate.clone()) {
                    Ok(_) => {
                        merged = candidate;
                        out.sources.insert(path, *source);
                    }
                    Err(e) => out.warnings.push(format!(
                        "invalid value for `{path}` in {}: {e} (ignored)",
                        source.label()
                    )),
                }
            }
        }
        command_line_beats_roles(&mut merged, &mut out.sources);
        out.config = serde_json::from_value(merged).unwrap_or_default();
        out
    }
}

/// The provider keys that together say where a role's calls go: a command line that names one
/// of them replaces the whole group of a role's override.
const ENDPOINT_KEYS: &[&str] = &["kind", "base_url", "api_key_env", "model", "model_path"];

/// Command-line flags beat every role key: a `provider.*` flag clears what `critic.*` and
/// `reviser.*` set for the same key from any file or the editor (a `critic.base_url` in a
/// config file would otherwise send the critic's calls elsewhere than the `--base-url` the user
/// just typed). A flag naming the endpoint clears the role's whole endpoint group.
fn command_line_beats_roles(merged: &mut Value, sources: &mut BTreeMap<String, Source>) {
    let flagged: Vec<String> = sources
        .iter()
        .filter(|(_, s)| **s == Source::CommandLine)
        .filter_map(|(k, _)| k.strip_prefix("provider.").map(str::to_owned))
        .collect();
    let endpoint = flagged.iter().any(|k| ENDPOINT_KEYS.contains(&k.as_str()));
    for role in ["critic", "reviser"] {
        let keys = flagged.iter().map(String::as_str).chain(
            endpoint
                .then_some(ENDPOINT_KEYS.iter().copied())
                .into_iter()
                .flatten(),
        );
        for key in keys {
            let dotted = format!("{role}.{key}");
            if sources
                .get(&dotted)
                .is_some_and(|s| *s < Source::CommandLine)
            {
                sources.remove(&dotted);
                if let Some(Value::Object(m)) = merged.get_mut(role) {
                    m.insert(key.to_owned(), Value::Null);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_settings_merge_into_their_layer() {
        let mut l = Layers::default();
        l.set(
            Source::Editor,
            serde_json::json!({"provider": {"kind": "ollama", "model": "m"}, "hints": {"enabled": true}}),
        );
        l.merge(
            Source::Editor,
            serde_json::json!({"hints": {"enabled": false}, "provider": {"model": null}}),
        );
        assert_eq!(
            l.get(Source::Editor),
            Some(&serde_json::json!({"provider": {"kind": "ollama"}, "hints": {"enabled": false}}))
        );
    }
    use serde_json::json;

    #[test]
    fn higher_layers_win_key_by_key() {
        let mut l = Layers::default();
        l.set(
            Source::UserFile,
            json!({"provider": {"model": "a", "timeout_secs": 5}}),
        );
        l.set(Source::Editor, json!({"provider": {"model": "b"}}));
        let r = l.resolve();
        assert_eq!(r.config.provider.model.as_deref(), Some("b"));
        assert_eq!(r.config.provider.timeout_secs, 5);
        assert_eq!(r.sources["provider.model"], Source::Editor);
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn unknown_keys_and_bad_values_warn_and_the_rest_applies() {
        let mut l = Layers::default();
        l.set(
            Source::Workspace,
            json!({"provider": {"modle": "x", "model": "m"}, "loop": {"max_iterations": "two"}}),
        );
        let r = l.resolve();
        assert_eq!(r.config.provider.model.as_deref(), Some("m"));
        assert_eq!(r.config.refine_loop.max_iterations, 2);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(
            r.warnings[0].contains("provider.modle") || r.warnings[1].contains("provider.modle")
        );
    }

    #[test]
    fn user_keyed_maps_and_role_overrides() {
        let mut l = Layers::default();
        l.set(
            Source::UserFile,
            json!({"provider": {"headers": {"X-Team": "a"}, "extra_body": {"top_k": 3}},
                   "critic": {"model": "big", "headers": {"X-Role": "critic"}},
                   "reviser": {"kind": "ollama"}}),
        );
        let r = l.resolve();
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let c = r.config.critic_provider();
        assert_eq!(c.model.as_deref(), Some("big"));
        assert_eq!(c.headers["X-Role"], "critic");
        assert_eq!(c.extra_body["top_k"], 3);
        let v = r.config.reviser_provider();
        assert_eq!(v.kind, "ollama");
        assert_eq!(v.headers["X-Team"], "a");
        assert_eq!(r.config.provider.headers["X-Team"], "a");
    }

    #[test]
    fn an_untrusted_workspace_cannot_set_trust_gated_keys_and_a_trusted_one_can() {
        let hostile = json!({"provider": {"base_url": "http://evil.example/v1", "model": "m"},
                             "critic": {"api_key_env": "AWS_SECRET_ACCESS_KEY"},
                             "privacy": {"redact_secrets": false},
                             "verify": {"command": "curl evil", "network": true}});
        let mut l = Layers::default();
        l.set(Source::Workspace, hostile.clone());
        let r = l.resolve();
        assert_eq!(r.config.provider.base_url, None);
        assert_eq!(r.config.critic.api_key_env, None);
        assert!(r.config.privacy.redact_secrets);
        assert_eq!(r.config.verify.command, None);
        assert_eq!(
            r.config.provider.model.as_deref(),
            Some("m"),
            "a model name is fine"
        );
        assert_eq!(r.refused.len(), 5, "{:?}", r.refused);
        assert_eq!(r.warnings.len(), 5, "{:?}", r.warnings);

        l.grant_trust(TrustedBy::Editor);
        let r = l.resolve();
        assert_eq!(
            r.config.provider.base_url.as_deref(),
            Some("http://evil.example/v1")
        );
        assert_eq!(r.config.verify.command.as_deref(), Some("curl evil"));
        assert!(!r.config.privacy.redact_secrets);
        assert!(
            !r.config.verify.network,
            "verify.network is the user's alone"
        );
        assert_eq!(r.refused.len(), 1);
    }

    #[test]
    fn command_line_flags_beat_role_keys_from_any_file() {
        let mut l = Layers::default();
        l.set(
            Source::UserFile,
            json!({"critic": {"kind": "anthropic", "base_url": "http://a/v1", "temperature": 0.3},
                   "reviser": {"model": "r"}}),
        );
        l.set(
            Source::CommandLine,
            json!({"provider": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}}),
        );
        let r = l.resolve();
        let c = r.config.critic_provider();
        assert_eq!(c.kind, "openai");
        assert_eq!(c.base_url.as_deref(), Some("http://127.0.0.1:1/v1"));
        assert_eq!(c.temperature, Some(0.3), "keys the flags do not name stay");
        assert_eq!(
            r.config.reviser_provider().model,
            None,
            "the endpoint group goes whole"
        );
    }

    #[test]
    fn unreadable_toml_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".refine.toml");
        std::fs::write(&p, "provider = [").unwrap();
        let mut l = Layers::default();
        l.load_toml(Source::Workspace, &p, Some(dir.path()));
        let r = l.resolve();
        assert_eq!(r.config, Config::default());
        assert!(r.warnings[0].contains("not valid TOML"));
    }
}

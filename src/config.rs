//! Configuration: one schema, filled from layered sources (highest first): the editor
//! (`initializationOptions` / `workspace/didChangeConfiguration`, section `refine`) or the
//! command line, `.refine.toml` at the workspace root, the user's config file, and defaults.
//!
//! A bad key or value never stops the server: unknown keys and values of the wrong type are
//! skipped with a warning, and the rest of the layer still applies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Everything refine-ls can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct Config {
    /// The model endpoint.
    pub provider: ProviderConfig,
    /// The refinement loop.
    #[serde(rename = "loop")]
    pub refine_loop: LoopConfig,
}

/// Which model to call and how.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ProviderConfig {
    /// Wire format: `openai` (any OpenAI-compatible chat-completions endpoint).
    pub kind: String,
    /// Base URL; unset means `OPENAI_BASE_URL`, then the provider's public endpoint.
    pub base_url: Option<String>,
    /// Model name; unset means the provider's default.
    pub model: Option<String>,
    /// Environment variable that holds the API key; unset means `OPENAI_API_KEY`.
    pub api_key_env: Option<String>,
    /// Timeout for one model call, in seconds.
    pub timeout_secs: u64,
    /// Sampling temperature; unset leaves it to the server.
    pub temperature: Option<f64>,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            kind: "openai".into(),
            base_url: None,
            model: None,
            api_key_env: None,
            timeout_secs: 120,
            temperature: Some(0.0),
        }
    }
}

/// How the critique → revise → re-critique loop runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LoopConfig {
    /// Revisions tried at most per review.
    pub max_iterations: u32,
    /// Findings below this confidence (0–1) are counted but not shown.
    pub min_confidence: f64,
    /// Lines of surrounding code shown to the model on each side of the selection.
    pub context_lines: usize,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            max_iterations: 2,
            min_confidence: 0.5,
            context_lines: 3,
        }
    }
}

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
}

/// The raw layers, kept so that one of them can change (the editor's settings) and the whole
/// configuration be resolved again.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    layers: BTreeMap<Source, Value>,
    /// Problems met while reading the layers (unreadable files).
    read_warnings: Vec<String>,
}

impl Layers {
    /// Sets (or replaces) one layer.
    pub fn set(&mut self, source: Source, value: Value) {
        self.layers.insert(source, value);
    }

    /// Loads a TOML file into a layer; a missing file is no layer, an unreadable one a warning.
    pub fn load_toml(&mut self, source: Source, path: &Path) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.read_warnings
                    .push(format!("cannot read {}: {e}", path.display()));
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

    /// Loads the user's config file and the workspace's `.refine.toml`.
    pub fn load_files(&mut self, workspace_root: Option<&Path>) {
        if let Some(path) = user_config_path() {
            self.load_toml(Source::UserFile, &path);
        }
        if let Some(root) = workspace_root {
            self.load_toml(Source::Workspace, &root.join(".refine.toml"));
        }
    }

    /// Merges the layers over the defaults, key by key.
    pub fn resolve(&self) -> Resolved {
        let defaults = serde_json::to_value(Config::default()).unwrap_or(Value::Null);
        let mut merged = defaults.clone();
        let mut out = Resolved {
            warnings: self.read_warnings.clone(),
            ..Resolved::default()
        };
        for (source, layer) in &self.layers {
            let mut leaves = Vec::new();
            collect_leaves(layer, String::new(), &mut leaves);
            for (path, value) in leaves {
                let empty_object = value.as_object().is_some_and(serde_json::Map::is_empty);
                if value.is_null() || (empty_object && key_exists(&defaults, &path)) {
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
        out.config = serde_json::from_value(merged).unwrap_or_default();
        out
    }
}

/// The user's config file: `$REFINE_LS_CONFIG`, else `<config dir>/refine-ls/config.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REFINE_LS_CONFIG") {
        return Some(PathBuf::from(p));
    }
    dirs::config_dir().map(|d| d.join("refine-ls").join("config.toml"))
}

/// Lists `(dotted.path, value)` for every non-object value and every empty object.
fn collect_leaves(value: &Value, prefix: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                collect_leaves(v, path, out);
            }
        }
        other => out.push((prefix, other.clone())),
    }
}

fn key_exists(defaults: &Value, path: &str) -> bool {
    let mut cur = defaults;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return false,
        }
    }
    true
}

fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut cur = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        if i + 1 == parts.len() {
            map.insert((*part).to_owned(), value);
            return;
        }
        cur = map.entry((*part).to_owned()).or_insert(Value::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn unreadable_toml_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".refine.toml");
        std::fs::write(&p, "provider = [").unwrap();
        let mut l = Layers::default();
        l.load_toml(Source::Workspace, &p);
        let r = l.resolve();
        assert_eq!(r.config, Config::default());
        assert!(r.warnings[0].contains("not valid TOML"));
    }
}

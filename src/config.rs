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
    /// Overrides of `provider` for critique calls.
    pub critic: ProviderOverride,
    /// Overrides of `provider` for revision calls.
    pub reviser: ProviderOverride,
    /// The refinement loop.
    #[serde(rename = "loop")]
    pub refine_loop: LoopConfig,
    /// What may leave the machine.
    pub privacy: PrivacyConfig,
    /// Checks every revision must pass.
    pub verify: VerifyConfig,
    /// The review cache.
    pub cache: CacheConfig,
    /// Inline hints, hover and code lenses.
    pub hints: HintsConfig,
    /// What the reviewer keeps of its user's choices (local only, off by default).
    pub learning: LearningConfig,
}

/// `learning.*`: the opt-in record of reviews and what the user did with them (for `refine-ls
/// learn export` / `stats`). The user's own choice: a workspace's `.refine.toml` cannot set it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LearningConfig {
    /// Record each review (redacted) and the fate of its findings and revision, as JSONL in the
    /// user's data folder.
    pub record: bool,
    /// The most the record may take on disk, in MiB (two files of half each; the older half
    /// is dropped when the newer is full).
    pub max_mb: u64,
}

impl Default for LearningConfig {
    fn default() -> Self {
        Self {
            record: false,
            max_mb: 32,
        }
    }
}

/// `hints.*`: how a review shows beside the code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct HintsConfig {
    /// Inlay hints at the end of lines with findings: `off`, `errors-and-warnings`, `all`.
    pub inlay: String,
    /// Longest hint, in characters.
    pub max_width: usize,
    /// Code lenses above reviewed ranges.
    pub code_lens: bool,
    /// Hover over a finding shows the critique and its proposed change.
    pub hover: bool,
}

impl Default for HintsConfig {
    fn default() -> Self {
        Self {
            inlay: "errors-and-warnings".to_owned(),
            max_width: 60,
            code_lens: true,
            hover: true,
        }
    }
}

/// `cache.*`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CacheConfig {
    /// Keep finished reviews and answer unchanged code from them.
    pub enabled: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// `verify.*`: an outside check of every revision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct VerifyConfig {
    /// A shell command run on a scratch copy of the workspace with the revision applied
    /// (`cargo check --message-format=short`). From `.refine.toml` only in trusted workspaces.
    pub command: Option<String>,
    /// How long it may run, in seconds.
    pub timeout_secs: u64,
    /// Let the command reach the network from its sandbox. Only the user's own configuration
    /// (their config file, the editor, the command line) can turn it on, never a workspace.
    pub network: bool,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            command: None,
            timeout_secs: 120,
            network: false,
        }
    }
}

impl Config {
    /// The provider settings for critique calls (`provider` with `critic` on top).
    pub fn critic_provider(&self) -> ProviderConfig {
        self.critic.apply(&self.provider)
    }

    /// The provider settings for revision calls (`provider` with `reviser` on top).
    pub fn reviser_provider(&self) -> ProviderConfig {
        self.reviser.apply(&self.provider)
    }
}

/// What may leave the machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PrivacyConfig {
    /// Replace credentials in prompts by placeholders before sending.
    pub redact_secrets: bool,
    /// Review files such as `.env`, `*.pem`, `*.key`, `id_rsa*` (off: they are never sent).
    pub review_sensitive_files: bool,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            redact_secrets: true,
            review_sensitive_files: false,
        }
    }
}

/// Any provider key, each optional: set ones replace `provider`'s.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct ProviderOverride {
    /// See [`ProviderConfig::kind`].
    pub kind: Option<String>,
    /// See [`ProviderConfig::base_url`].
    pub base_url: Option<String>,
    /// See [`ProviderConfig::model`].
    pub model: Option<String>,
    /// See [`ProviderConfig::api_key_env`].
    pub api_key_env: Option<String>,
    /// See [`ProviderConfig::timeout_secs`].
    pub timeout_secs: Option<u64>,
    /// See [`ProviderConfig::temperature`].
    pub temperature: Option<f64>,
    /// See [`ProviderConfig::headers`].
    pub headers: Option<BTreeMap<String, String>>,
    /// See [`ProviderConfig::extra_body`].
    pub extra_body: Option<Map<String, Value>>,
    /// See [`ProviderConfig::max_retries`].
    pub max_retries: Option<u32>,
    /// See [`ProviderConfig::rpm`].
    pub rpm: Option<u32>,
    /// See [`ProviderConfig::tpm`].
    pub tpm: Option<u32>,
    /// See [`ProviderConfig::stall_timeout_secs`].
    pub stall_timeout_secs: Option<u64>,
    /// See [`ProviderConfig::first_token_timeout_secs`].
    pub first_token_timeout_secs: Option<u64>,
    /// See [`ProviderConfig::max_tokens`].
    pub max_tokens: Option<u32>,
    /// See [`ProviderConfig::model_path`].
    pub model_path: Option<String>,
}

impl ProviderOverride {
    /// `base` with the keys this override sets replaced. A different `kind` starts from that
    /// kind's own defaults for the endpoint and key (not the base's).
    pub fn apply(&self, base: &ProviderConfig) -> ProviderConfig {
        let mut out = base.clone();
        if let Some(kind) = &self.kind {
            if *kind != base.kind {
                out.base_url = None;
                out.api_key_env = None;
                out.model = None;
            }
            out.kind = kind.clone();
        }
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { out.$f = v.clone().into(); } )* };
        }
        take!(base_url, model, api_key_env, temperature, model_path);
        if let Some(v) = self.timeout_secs {
            out.timeout_secs = v;
        }
        if let Some(v) = &self.headers {
            out.headers = v.clone();
        }
        if let Some(v) = &self.extra_body {
            out.extra_body = v.clone();
        }
        if let Some(v) = self.max_retries {
            out.max_retries = v;
        }
        if let Some(v) = self.stall_timeout_secs {
            out.stall_timeout_secs = v;
        }
        if let Some(v) = self.first_token_timeout_secs {
            out.first_token_timeout_secs = v;
        }
        if let Some(v) = self.max_tokens {
            out.max_tokens = Some(v);
        }
        if let Some(v) = self.rpm {
            out.rpm = Some(v);
        }
        if let Some(v) = self.tpm {
            out.tpm = Some(v);
        }
        out
    }
}

/// Which model to call and how.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ProviderConfig {
    /// Wire format: `auto` (the default: a configured endpoint, else a key or endpoint in the
    /// environment, else a local Ollama, else `local`), `openai` (any OpenAI-compatible
    /// chat-completions endpoint), `anthropic` (Messages API), `ollama` (native `/api/chat`), or
    /// `local` (a GGUF model run in-process, `model_path` or the default model).
    pub kind: String,
    /// Base URL; unset means the kind's variable (`OPENAI_BASE_URL`, `OLLAMA_HOST`), then its
    /// public or local default.
    pub base_url: Option<String>,
    /// Model name; unset means the provider's default.
    pub model: Option<String>,
    /// Environment variable that holds the API key; unset means `OPENAI_API_KEY` or
    /// `ANTHROPIC_API_KEY` (Ollama needs none).
    pub api_key_env: Option<String>,
    /// Timeout for one model call, in seconds (the whole reply).
    pub timeout_secs: u64,
    /// A stream that sends nothing for this long once the answer has begun is aborted, in
    /// seconds.
    pub stall_timeout_secs: u64,
    /// How long to wait for the answer's first token, in seconds: a server sends nothing
    /// while it reads the prompt (32 s for 1,181 tokens of a 1.5B model on 2 cores).
    pub first_token_timeout_secs: u64,
    /// Retries after a connection error, HTTP 429 or 5xx.
    pub max_retries: u32,
    /// Most requests per minute to this endpoint, shared by every call this process makes to
    /// it (`review --diff --jobs N`, critic and reviser): requests are spaced `60/rpm` seconds
    /// apart. Unset: no client-side limit. Not used by `local`.
    pub rpm: Option<u32>,
    /// Most tokens (prompt and answer) per minute to this endpoint, shared like `rpm`: a
    /// request waits until the prompt's estimated tokens fit, and the answer's reported usage
    /// is counted when it ends. Unset: no client-side limit. Not used by `local`.
    pub tpm: Option<u32>,
    /// Sampling temperature; unset leaves it to the server.
    pub temperature: Option<f64>,
    /// Extra HTTP headers (for gateways).
    pub headers: BTreeMap<String, String>,
    /// Keys merged into every request body as they are.
    pub extra_body: Map<String, Value>,
    /// `kind = "local"`: the GGUF model file run in-process.
    pub model_path: Option<String>,
    /// Most tokens one answer may have. Unset: 512 for `local`, 4096 for `anthropic` (which
    /// requires a value), and the server's own limit for `openai` and `ollama`.
    pub max_tokens: Option<u32>,
    /// `kind = "local"`: inference threads (0: all cores but one in the language server, every
    /// core on the command line).
    pub threads: usize,
    /// `kind = "local"`: model layers offloaded to the GPU (0: CPU only; needs a build with
    /// the `cuda`, `metal` or `vulkan` feature).
    pub gpu_layers: u32,
}

impl ProviderConfig {
    /// For the command line, where there is no editor to keep a core free for: `threads = 0`
    /// (the default) becomes every core, where the language server leaves one.
    pub fn use_every_core(&mut self) {
        if self.threads == 0 {
            self.threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        }
    }
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            kind: "auto".into(),
            base_url: None,
            model: None,
            api_key_env: None,
            timeout_secs: 120,
            stall_timeout_secs: 30,
            first_token_timeout_secs: 110,
            max_retries: 3,
            rpm: None,
            tpm: None,
            temperature: Some(0.0),
            headers: BTreeMap::new(),
            extra_body: Map::new(),
            model_path: None,
            max_tokens: None,
            threads: 0,
            gpu_layers: 0,
        }
    }
}

/// How the critique → revise → verify → judge loop runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LoopConfig {
    /// Revisions tried at most per review.
    pub max_iterations: u32,
    /// Findings below this confidence (0–1) are counted but not shown.
    pub min_confidence: f64,
    /// Lines of surrounding code shown to the model on each side of the selection.
    pub context_lines: usize,
    /// The highest severity shown for a finding no compiler, linter or test backs
    /// (`error` shows the model's word as it is).
    pub max_unbacked_severity: String,
    /// Principle ids whose findings are not shown (and that are left out of the prompt).
    pub disabled_principles: Vec<String>,
    /// One extra call scores each finding 0–10 for validity and importance.
    pub reflect: bool,
    /// With `reflect`, findings scoring below this (the lower of the two scores) are dropped.
    pub reflect_min_score: u32,
    /// Selections of at least this many lines are revised with search/replace blocks.
    pub search_replace_min_lines: usize,
    /// At most this many findings are shown per review (the most severe first).
    pub max_findings: usize,
    /// The critic's prompt profile: `compact` (a short head, one line per principle; for
    /// small models), `full`, or `auto` (compact for the embedded model and models named as
    /// 3B parameters or fewer).
    pub prompt_profile: String,
    /// `critique-first` (critique, then revise what it found, judged by evidence),
    /// `fix-first` (the reviser fixes directly, verification runs, then each changed hunk is
    /// explained as a finding), `single` (one fix call, verified, no findings: the baseline
    /// `refine-ls eval --mode single` measures against), or `auto` (fix-first for the embedded
    /// model, where EVAL.md measured it better, critique-first for endpoints, which EVAL.md
    /// has not measured). The default is `auto`. A fix-first fixer that fails (its call times
    /// out, say) or whose fixes all fail verification shows a critique instead.
    pub strategy: Strategy,
    /// Self-consistency: this many critiques at `sample_temperature`, a finding kept when at
    /// least half of them (rounded up) place one on the same lines. 1: one greedy critique.
    pub samples: u32,
    /// The temperature of each sample when `samples` > 1.
    pub sample_temperature: f64,
}

impl Strategy {
    /// `auto` made definite for a critic that is (or is not) the embedded model.
    pub fn resolve(self, embedded: bool) -> Strategy {
        match self {
            Strategy::Auto if embedded => Strategy::FixFirst,
            Strategy::Auto => Strategy::CritiqueFirst,
            s => s,
        }
    }
}

/// How the loop goes about a review (`loop.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Fix-first for the embedded model, else critique-first.
    #[default]
    Auto,
    /// Critique, revise, verify, judge.
    CritiqueFirst,
    /// Fix, verify, explain.
    FixFirst,
    /// One fix call, verified.
    Single,
}

impl Strategy {
    /// The name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::CritiqueFirst => "critique-first",
            Strategy::FixFirst => "fix-first",
            Strategy::Single => "single",
        }
    }
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            max_iterations: 2,
            min_confidence: 0.5,
            context_lines: 3,
            max_unbacked_severity: "warning".to_owned(),
            disabled_principles: Vec::new(),
            reflect: false,
            reflect_min_score: 5,
            search_replace_min_lines: 80,
            max_findings: 20,
            prompt_profile: "auto".to_owned(),
            strategy: Strategy::default(),
            samples: 1,
            sample_temperature: 0.7,
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

fn merge_into(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    a.remove(&k);
                } else {
                    merge_into(a.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The user's config file: `$REFINE_LS_CONFIG`, else `<config dir>/refine-ls/config.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REFINE_LS_CONFIG") {
        return Some(PathBuf::from(p));
    }
    dirs::config_dir().map(|d| d.join("refine-ls").join("config.toml"))
}

/// The user's data folder for refine-ls (dismissals, the learning record): `$REFINE_LS_DATA_DIR`,
/// else the platform's data folder (`~/.local/share/refine-ls`).
pub fn user_data_dir() -> Option<PathBuf> {
    std::env::var_os("REFINE_LS_DATA_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::data_dir().map(|d| d.join("refine-ls")))
}

/// Lists `(dotted.path, value)` for every value that is not an object the schema breaks down
/// further: objects whose keys are the user's own (headers, say: empty or unset in the
/// defaults) and empty objects are leaves as a whole.
fn collect_leaves(value: &Value, defaults: &Value, prefix: String, out: &mut Vec<(String, Value)>) {
    let opaque = !prefix.is_empty()
        && match defaults.pointer(&format!("/{}", prefix.replace('.', "/"))) {
            Some(Value::Null) => true,
            Some(Value::Object(m)) => m.is_empty(),
            _ => false,
        };
    match value {
        Value::Object(map) if !opaque && (!map.is_empty() || prefix.is_empty()) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                collect_leaves(v, defaults, path, out);
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

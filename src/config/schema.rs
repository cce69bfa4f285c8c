//! The schema: every key refine-ls can be told, in sections (`provider`, `loop`, `privacy`,
//! `verify`, `cache`, `hints`, `learning`, the `critic`/`reviser` overrides), with defaults.

use std::collections::BTreeMap;

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
    /// `kind = "local"`: how answers are decoded: `prompt-lookup` (the default: where the
    /// answer copies the prompt, as a revision copies the selection, the next tokens are
    /// guessed from it and checked in one pass; the answer is the one plain decoding gives) or
    /// `off` (one pass per token).
    pub drafting: Drafting,
}

/// How the embedded model decodes its answers (`provider.drafting`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Drafting {
    /// Guesses copied from the prompt, checked in one pass.
    #[default]
    PromptLookup,
    /// One pass per token.
    Off,
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
            drafting: Drafting::default(),
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
    /// The temperature of each sample when `samples` > 1 (and of each sampled fix).
    pub sample_temperature: f64,
    /// Sampled fixes besides the greedy one, at `sample_temperature`, their behaviour compared
    /// by probes (the fix most of them agree on wins). Unset: 4 on the embedded model, 1
    /// elsewhere. 0: the greedy fix alone.
    pub fix_samples: Option<u32>,
    /// Run the selected function on inputs (the model proposes them, edge cases first) in the
    /// original and in each revision, in the sandbox, so that a revision's behaviour change is
    /// evidence: a refactor (nothing changes) is a hint, a change the function's intent backs
    /// is a fix with its counterexample, a change nothing backs is refused as drift. Examples
    /// in doc comments run as tests either way. Without a sandbox, only in trusted workspaces.
    pub probes: bool,
    /// At most this many probe inputs per function.
    pub probe_inputs: u32,
}

impl LoopConfig {
    /// `fix_samples` made definite for a fixer that is (or is not) the embedded model.
    pub fn fix_samples(&self, embedded: bool) -> u32 {
        self.fix_samples
            .unwrap_or(if embedded { 4 } else { 1 })
            .min(16)
    }
}

impl Strategy {
    /// `auto` made definite for a critic that is (or is not) a small model (3B parameters or
    /// fewer: the embedded model, or an endpoint's model named so, `qwen2.5-coder:1.5b`).
    /// EVAL.md measured fix-first better on the 1.5B and 0.5B models, whatever serves them;
    /// larger models keep critique-first.
    pub fn resolve(self, small: bool) -> Strategy {
        match self {
            Strategy::Auto if small => Strategy::FixFirst,
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
            fix_samples: None,
            probes: true,
            probe_inputs: 6,
        }
    }
}

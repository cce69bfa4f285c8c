//! The embedded model (`provider.kind = "local"`): a quantized GGUF chat model (Llama
//! architecture: SmolLM2, Llama, ...) run in this process on candle, with the tokenizer and the
//! chat template read from the GGUF itself. Tokens stream to the caller as they are sampled;
//! cancellation is checked between tokens; a JSON-schema request is decoded under a JSON
//! automaton ([`json`]) so that even a small model answers with valid JSON.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use tokio_util::sync::CancellationToken;

use super::json::{ItemShape, JsonPrefix};
use super::tokenizer::Tokenizer;

/// candle's quantized Llama keeps this many positions (prompt + answer).
const MAX_CONTEXT: usize = 4096;
/// Candidates tried, best first, before a constrained step gives up and closes the JSON.
const CANDIDATES: usize = 512;

/// A loaded model and its tokenizer.
pub struct LocalModel {
    weights: ModelWeights,
    tokenizer: Tokenizer,
    template: Option<String>,
    bos: Option<String>,
    eos: Option<String>,
    stops: Vec<u32>,
    pool: Arc<rayon::ThreadPool>,
    /// The file, for messages.
    pub path: PathBuf,
}

/// What went wrong, as a sentence.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The file could not be read or is not a supported model.
    #[error("cannot load the local model {path}: {message}")]
    Load {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// Inference failed.
    #[error("the local model failed: {0}")]
    Inference(String),
    /// The prompt does not fit.
    #[error(
        "the prompt is {tokens} tokens, more than the local model's {max} (select fewer lines)"
    )]
    TooLong {
        /// Prompt tokens.
        tokens: usize,
        /// The limit.
        max: usize,
    },
    /// Cancelled between two tokens.
    #[error("cancelled")]
    Cancelled,
}

fn inference(e: impl std::fmt::Display) -> LocalError {
    LocalError::Inference(e.to_string())
}

pub type Shared = Arc<Mutex<LocalModel>>;
static LOADED: OnceLock<Mutex<HashMap<(PathBuf, usize), Shared>>> = OnceLock::new();

/// The model at `path`, loaded once per process (and per thread count) and shared.
pub fn load(path: &Path, threads: usize) -> Result<Shared, LocalError> {
    let key = (path.to_path_buf(), threads);
    let loaded = LOADED.get_or_init(Mutex::default);
    if let Some(m) = loaded.lock().ok().and_then(|l| l.get(&key).cloned()) {
        return Ok(m);
    }
    let model = Arc::new(Mutex::new(LocalModel::open(path, threads)?));
    if let Ok(mut l) = loaded.lock() {
        l.insert(key, model.clone());
    }
    Ok(model)
}

/// Threads for inference: all cores but one, so that the editor stays responsive.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(1)
}

fn meta_str(content: &gguf_file::Content, key: &str) -> Option<String> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .cloned()
}

fn meta_u32(content: &gguf_file::Content, key: &str) -> Option<u32> {
    content.metadata.get(key).and_then(|v| v.to_u32().ok())
}

fn meta_strings(content: &gguf_file::Content, key: &str) -> Vec<String> {
    match content.metadata.get(key) {
        Some(gguf_file::Value::Array(a)) => a
            .iter()
            .map(|v| v.to_string().cloned().unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    }
}

fn meta_i32s(content: &gguf_file::Content, key: &str) -> Vec<i32> {
    match content.metadata.get(key) {
        Some(gguf_file::Value::Array(a)) => a.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
        _ => Vec::new(),
    }
}

impl LocalModel {
    /// Reads a GGUF file: weights, tokenizer, chat template.
    pub fn open(path: &Path, threads: usize) -> Result<Self, LocalError> {
        let fail = |message: String| LocalError::Load {
            path: path.display().to_string(),
            message,
        };
        let mut file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|e| fail(format!("not a GGUF model file ({e})")))?;
        let arch = meta_str(&content, "general.architecture").unwrap_or_default();
        if arch != "llama" {
            return Err(fail(format!(
                "architecture `{arch}` is not supported (Llama-architecture GGUF models are)"
            )));
        }
        let tokens = meta_strings(&content, "tokenizer.ggml.tokens");
        let tokenizer = Tokenizer::new(
            &meta_str(&content, "tokenizer.ggml.model").unwrap_or_default(),
            tokens.clone(),
            meta_strings(&content, "tokenizer.ggml.merges"),
            meta_i32s(&content, "tokenizer.ggml.token_type"),
        )
        .map_err(|e| fail(e.to_string()))?;
        let name_of =
            |key: &str| meta_u32(&content, key).and_then(|i| tokens.get(i as usize).cloned());
        let bos = name_of("tokenizer.ggml.bos_token_id");
        let eos = name_of("tokenizer.ggml.eos_token_id");
        let template = meta_str(&content, "tokenizer.chat_template");
        let mut stops: Vec<u32> = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>"]
            .iter()
            .filter_map(|t| tokenizer.id(t))
            .collect();
        if let Some(e) = meta_u32(&content, "tokenizer.ggml.eos_token_id") {
            stops.push(e);
        }
        let weights = ModelWeights::from_gguf(content, &mut file, &Device::Cpu)
            .map_err(|e| fail(e.to_string()))?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("refine-local-{i}"))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            weights,
            tokenizer,
            template,
            bos,
            eos,
            stops,
            pool: Arc::new(pool),
            path: path.to_path_buf(),
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The conversation as the model expects it: its own chat template (from the GGUF), or
    /// ChatML when it has none or the template cannot be rendered.
    pub fn prompt(&self, messages: &[(&str, &str)]) -> String {
        if let Some(t) = &self.template {
            let mut env = minijinja::Environment::new();
            if env.add_template("chat", t).is_ok() {
                let msgs: Vec<_> = messages
                    .iter()
                    .map(|(r, c)| minijinja::context! { role => r, content => c })
                    .collect();
                if let Ok(p) = env.get_template("chat").and_then(|tpl| {
                    tpl.render(minijinja::context! {
                        messages => msgs,
                        add_generation_prompt => true,
                        bos_token => self.bos.clone().unwrap_or_default(),
                        eos_token => self.eos.clone().unwrap_or_default(),
                    })
                }) {
                    return p;
                }
            }
        }
        let mut p = String::new();
        for (role, content) in messages {
            p.push_str(&format!("<|im_start|>{role}\n{content}<|im_end|>\n"));
        }
        p.push_str("<|im_start|>assistant\n");
        p
    }

    /// Generates an answer. `prefill` is text the answer starts with (already counted as
    /// output); `json` (the request's JSON schema) constrains decoding to JSON of that shape
    /// and closes it if the budget runs out (an unfinished item is dropped).
    #[allow(clippy::too_many_arguments)]
    pub fn generate(
        &mut self,
        prompt: &str,
        prefill: &str,
        json: Option<&serde_json::Value>,
        max_tokens: usize,
        temperature: f64,
        cancel: &CancellationToken,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Generated, LocalError> {
        let pool = Arc::clone(&self.pool);
        pool.install(|| {
            self.generate_inner(
                prompt,
                prefill,
                json,
                max_tokens,
                temperature,
                cancel,
                on_delta,
            )
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn generate_inner(
        &mut self,
        prompt: &str,
        prefill: &str,
        json: Option<&serde_json::Value>,
        max_tokens: usize,
        temperature: f64,
        cancel: &CancellationToken,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Generated, LocalError> {
        let started = Instant::now();
        let mut ids = self.tokenizer.encode(prompt);
        ids.extend(self.tokenizer.encode(prefill));
        let prompt_tokens = ids.len();
        if prompt_tokens + 16 > MAX_CONTEXT {
            return Err(LocalError::TooLong {
                tokens: prompt_tokens,
                max: MAX_CONTEXT,
            });
        }
        let budget = max_tokens.min(MAX_CONTEXT - prompt_tokens);
        let input = Tensor::new(ids.as_slice(), &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .map_err(inference)?;
        if cancel.is_cancelled() {
            return Err(LocalError::Cancelled);
        }
        let mut logits = self.weights.forward(&input, 0).map_err(inference)?;
        let prompt_done = Instant::now();
        let mut text = prefill.to_owned();
        let shape = json.and_then(ItemShape::from_schema);
        let fresh = || match &shape {
            Some(s) => JsonPrefix::with_shape(s.clone()),
            None => JsonPrefix::default(),
        };
        let mut automaton = fresh();
        let json = json.is_some();
        if json && !automaton.feed(prefill) {
            return Err(LocalError::Inference("the prefill is not JSON".into()));
        }
        on_delta(prefill);
        let mut pending: Vec<u8> = Vec::new();
        let mut generated = 0;
        let mut pos = prompt_tokens;
        while generated < budget {
            if cancel.is_cancelled() {
                return Err(LocalError::Cancelled);
            }
            let scores: Vec<f32> = logits
                .squeeze(0)
                .and_then(|l| l.to_dtype(candle_core::DType::F32))
                .and_then(|l| l.to_vec1())
                .map_err(inference)?;
            let Some(id) = self.choose(&scores, json.then_some(&automaton), temperature) else {
                break;
            };
            if self.stops.contains(&id) || self.tokenizer.is_special(id) {
                break;
            }
            generated += 1;
            let bytes = self.tokenizer.token_bytes(id);
            if json {
                automaton.feed(&String::from_utf8_lossy(&bytes));
            }
            pending.extend(bytes);
            let valid = match std::str::from_utf8(&pending) {
                Ok(s) => s.len(),
                Err(e) => e.valid_up_to(),
            };
            if valid > 0 {
                let piece = String::from_utf8_lossy(&pending[..valid]).into_owned();
                pending.drain(..valid);
                text.push_str(&piece);
                on_delta(&piece);
            }
            if json && automaton.is_done() {
                break;
            }
            let next = Tensor::new(&[id], &Device::Cpu)
                .and_then(|t| t.unsqueeze(0))
                .map_err(inference)?;
            logits = self.weights.forward(&next, pos).map_err(inference)?;
            pos += 1;
        }
        if json && !automaton.is_done() {
            if let Some(keep) = automaton.whole_items_end() {
                // Out of budget inside an item: keep the whole items only (the final text is
                // what counts; a streamed partial item never became a finding).
                text = text.chars().take(keep).collect();
                let mut cut = fresh();
                cut.feed(&text);
                text.push_str(&cut.closing());
            } else {
                let closing = automaton.closing();
                text.push_str(&closing);
                on_delta(&closing);
            }
        }
        Ok(Generated {
            text,
            prompt_tokens,
            completion_tokens: generated,
            prompt_secs: (prompt_done - started).as_secs_f64(),
            generate_secs: prompt_done.elapsed().as_secs_f64(),
        })
    }

    /// The next token: the best one (or a sample at `temperature`) among those the JSON
    /// automaton accepts, when there is one.
    fn choose(
        &self,
        scores: &[f32],
        automaton: Option<&JsonPrefix>,
        temperature: f64,
    ) -> Option<u32> {
        let mut order: Vec<u32> = (0..scores.len() as u32).collect();
        let k = CANDIDATES.min(order.len());
        if k == 0 {
            return None;
        }
        order.select_nth_unstable_by(k - 1, |a, b| {
            scores[*b as usize].total_cmp(&scores[*a as usize])
        });
        order.truncate(k);
        order.sort_by(|a, b| scores[*b as usize].total_cmp(&scores[*a as usize]));
        let allowed = |id: u32| match automaton {
            None => true,
            Some(a) => {
                if self.tokenizer.is_special(id) || self.stops.contains(&id) {
                    return a.is_done();
                }
                let mut trial = a.clone();
                trial.feed(&String::from_utf8_lossy(&self.tokenizer.token_bytes(id)))
            }
        };
        if temperature <= 0.0 {
            return order.into_iter().find(|&id| allowed(id));
        }
        // Sampling among the 40 best allowed tokens.
        let pool: Vec<u32> = order
            .into_iter()
            .filter(|&id| allowed(id))
            .take(40)
            .collect();
        let top = scores[*pool.first()? as usize];
        let weights: Vec<f64> = pool
            .iter()
            .map(|&id| (((scores[id as usize] - top) as f64) / temperature).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut r = fastrand::f64() * total;
        for (id, w) in pool.iter().zip(&weights) {
            r -= w;
            if r <= 0.0 {
                return Some(*id);
            }
        }
        pool.last().copied()
    }
}

/// One answer and what it cost.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The answer (prefill included).
    pub text: String,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Time to process the prompt.
    pub prompt_secs: f64,
    /// Time to generate.
    pub generate_secs: f64,
}

/// The text a JSON-schema answer starts with: `{"<key>": [` when the schema's one required
/// property is an array (the critique's `findings`), else `{`.
pub fn json_prefill(schema: &serde_json::Value) -> String {
    let required = schema["required"].as_array();
    if let Some([key]) = required.map(Vec::as_slice) {
        if let Some(k) = key.as_str() {
            if schema["properties"][k]["type"] == "array" {
                return format!("{{\"{k}\": [");
            }
        }
    }
    "{".to_owned()
}

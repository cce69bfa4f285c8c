//! The embedded model on llama.cpp (`llama-cpp-2`, its vendored llama.cpp): any GGUF that
//! llama.cpp loads (Qwen2, Llama, Gemma, Phi, …), weights quantized and memory-mapped. The
//! tokenizer and the chat template come from the GGUF; a JSON-schema request is sampled under
//! the grammar llama.cpp derives from the schema, so even a small model answers valid JSON.
//!
//! Each loaded model has one worker thread that owns its context and answers one request at a
//! time, in order. The worker keeps the tokens of its KV cache: a prompt that starts like the
//! previous one (the same system prompt and principles) only processes what differs. The prompt
//! is processed in chunks and cancellation is checked between chunks and between tokens, so a
//! cancelled request stops within about a second; a request still queued when it is cancelled
//! is skipped.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use tokio_util::sync::CancellationToken;

/// Positions kept per context (prompt + answer).
const CONTEXT: u32 = 8192;
/// The prompt is decoded in chunks of this many tokens, with a cancellation check between
/// chunks: about 0.6 s each for the 1.5B model on two cores, 0.95 s on one. The size is fixed,
/// not fitted to measured speed: llama.cpp's results depend (in the last bits) on how a prompt
/// is split into batches, and a split that followed timing made the same review give different
/// answers from run to run. (llama.cpp's abort callback would allow large batches and stop
/// within one operation, but `llama-cpp-2` does not expose it.)
const CHUNK: usize = 16;
/// Sequences (slots) of the KV cache, one per kind of prompt a review sends (critic, reviser,
/// judge); they share the context's cells.
const SLOTS: usize = 3;
/// A slot is reused for a prompt when it holds at least this many of its first tokens (the
/// roles' prompts share a few tokens of chat template, which is not worth a slot).
const MIN_REUSE: usize = 32;

/// Why the embedded model failed, as a sentence.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// llama.cpp could not start.
    #[error("llama.cpp could not start: {0}")]
    Backend(String),
    /// The model file could not be loaded.
    #[error("cannot load the model {path}: {reason}")]
    Load {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The prompt and the answer do not fit the context.
    #[error(
        "the prompt ({prompt} tokens) and up to {answer} answer tokens do not fit the model's context of {context} tokens; review fewer lines or lower provider.max_tokens"
    )]
    ContextFull {
        /// Prompt tokens.
        prompt: usize,
        /// Answer budget.
        answer: usize,
        /// The context size.
        context: u32,
    },
    /// Inference failed.
    #[error("the local model failed: {0}")]
    Inference(String),
    /// The request was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// What one answer produced.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    /// The answer.
    pub text: String,
    /// Prompt tokens sent.
    pub prompt_tokens: usize,
    /// Prompt tokens that had to be processed (the rest were in the KV cache already).
    pub prompt_processed: usize,
    /// Answer tokens.
    pub completion_tokens: usize,
    /// Seconds spent processing the prompt.
    pub prompt_secs: f64,
    /// Seconds spent generating.
    pub generate_secs: f64,
    /// The answer stopped at `max_tokens`, not at its end.
    pub truncated: bool,
}

/// One request for the worker.
struct Job {
    prompt: String,
    grammar: Option<String>,
    max_tokens: usize,
    temperature: f32,
    cancel: CancellationToken,
    events: Sender<Event>,
}

/// What the worker sends back.
enum Event {
    Delta(String),
    Done(Result<Generated, LocalError>),
}

/// A loaded model and its worker.
pub struct LocalModel {
    model: Arc<LlamaModel>,
    template: Option<LlamaChatTemplate>,
    jobs: Mutex<Sender<Job>>,
    path: PathBuf,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn backend() -> Result<&'static LlamaBackend, LocalError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp's own logs go to our log (stderr or the log file), never to stdout.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LocalError::Backend(e.clone()))
}

/// Inference threads by default: all cores but one (the editor keeps one), at least one.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(1)
}

/// The model at `path`, loaded once per process (and per thread count and GPU layers).
pub fn load(path: &Path, threads: usize, gpu_layers: u32) -> Result<Arc<LocalModel>, LocalError> {
    type Loaded = HashMap<(PathBuf, usize, u32), Arc<LocalModel>>;
    static LOADED: OnceLock<Mutex<Loaded>> = OnceLock::new();
    let key = (path.to_path_buf(), threads, gpu_layers);
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(m) = loaded.get(&key) {
        return Ok(m.clone());
    }
    let m = Arc::new(LocalModel::open(path, threads, gpu_layers)?);
    loaded.insert(key, m.clone());
    Ok(m)
}

impl LocalModel {
    /// Loads (memory-maps) a GGUF and starts its worker.
    pub fn open(path: &Path, threads: usize, gpu_layers: u32) -> Result<Self, LocalError> {
        let backend = backend()?;
        let load_error = |reason: String| LocalError::Load {
            path: path.display().to_string(),
            reason,
        };
        if !path.is_file() {
            return Err(load_error("no such file".to_owned()));
        }
        // On the CPU, llama.cpp repacks most weights into an interleaved copy for its AVX2/NEON
        // kernels; memory-mapped, the file's pages it read for that stay resident as well (1.06
        // GB mapped + 0.6 GB repacked for the 1.5B model). Read into memory instead, each weight
        // is held once. With layers on a GPU the file stays memory-mapped.
        let params = LlamaModelParams::default()
            .with_n_gpu_layers(gpu_layers)
            .with_use_mmap(gpu_layers > 0);
        let model = LlamaModel::load_from_file(backend, path, &params).map_err(|e| {
            load_error(format!(
                "{e} (is it a GGUF model of an architecture llama.cpp supports?)"
            ))
        })?;
        let model = Arc::new(model);
        let template = model.chat_template(None).ok();
        let (tx, rx) = mpsc::channel::<Job>();
        let worker_model = model.clone();
        let threads = i32::try_from(threads.max(1)).unwrap_or(1);
        std::thread::Builder::new()
            .name("refine-local-model".to_owned())
            .spawn(move || worker(backend, &worker_model, threads, &rx))
            .map_err(|e| LocalError::Backend(format!("cannot start the model's thread: {e}")))?;
        Ok(Self {
            model,
            template,
            jobs: Mutex::new(tx),
            path: path.to_path_buf(),
        })
    }

    /// The prompt for a conversation of `(role, content)` messages, in the GGUF's chat template
    /// (ChatML when the model has none llama.cpp knows), ready for the assistant's answer.
    pub fn prompt(&self, messages: &[(&str, &str)]) -> String {
        let rendered = self.template.as_ref().and_then(|t| {
            let chat: Vec<LlamaChatMessage> = messages
                .iter()
                .filter_map(|(r, c)| {
                    LlamaChatMessage::new((*r).to_owned(), c.replace('\0', "")).ok()
                })
                .collect();
            self.model.apply_chat_template(t, &chat, true).ok()
        });
        rendered.unwrap_or_else(|| {
            let mut p = String::new();
            for (role, content) in messages {
                p.push_str(&format!("<|im_start|>{role}\n{content}<|im_end|>\n"));
            }
            p.push_str("<|im_start|>assistant\n");
            p
        })
    }

    /// How many tokens a text is in this model's vocabulary (special tokens parsed).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), false, true)
            .len()
    }

    /// Answers `prompt`, streaming text to `on_delta`; with `schema`, the answer follows it.
    /// Blocks until done; returns within about a second of `cancel`.
    pub fn generate(
        &self,
        prompt: &str,
        schema: Option<&serde_json::Value>,
        max_tokens: usize,
        temperature: f64,
        cancel: &CancellationToken,
        on_delta: &mut dyn FnMut(&str),
    ) -> Result<Generated, LocalError> {
        let grammar = schema
            .map(|s| {
                llama_cpp_2::json_schema_to_grammar(&s.to_string())
                    .map_err(|e| LocalError::Inference(format!("the schema has no grammar: {e}")))
            })
            .transpose()?;
        let (tx, rx) = mpsc::channel();
        let job = Job {
            prompt: prompt.to_owned(),
            grammar,
            max_tokens: max_tokens.max(1),
            temperature: temperature as f32,
            cancel: cancel.clone(),
            events: tx,
        };
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(job)
            .map_err(|_| LocalError::Inference("the model's thread has stopped".to_owned()))?;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Event::Delta(d)) => on_delta(&d),
                Ok(Event::Done(result)) => return result,
                // Queued behind another answer: the worker skips a cancelled job.
                Err(RecvTimeoutError::Timeout) if cancel.is_cancelled() => {
                    return Err(LocalError::Cancelled);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(LocalError::Inference(
                        "the model's thread has stopped".to_owned(),
                    ));
                }
            }
        }
    }

    /// Processes `prompt` into the KV cache without answering, so that later prompts that start
    /// the same way process only what differs. Runs in the background, behind other requests.
    pub fn warm(&self, prompt: &str) {
        let (tx, _rx) = mpsc::channel();
        let job = Job {
            prompt: prompt.to_owned(),
            grammar: None,
            max_tokens: 0,
            temperature: 0.0,
            cancel: CancellationToken::new(),
            events: tx,
        };
        let _ = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(job);
    }
}

/// The worker: owns the context, answers jobs in order.
fn worker(backend: &LlamaBackend, model: &LlamaModel, threads: i32, jobs: &Receiver<Job>) {
    let n_ctx = CONTEXT.min(model.n_ctx_train().max(512));
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_seq_max(SLOTS as u32)
        .with_kv_unified(true)
        .with_n_batch(CHUNK as u32)
        .with_n_ubatch(CHUNK as u32)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(c) => c,
        Err(e) => {
            let why = format!("cannot make a context of {n_ctx} tokens: {e}");
            for job in jobs {
                let _ = job
                    .events
                    .send(Event::Done(Err(LocalError::Inference(why.clone()))));
            }
            return;
        }
    };
    let mut slots: Vec<KvCache> = (0..SLOTS).map(|_| KvCache::default()).collect();
    let mut clock = 0u64;
    for job in jobs {
        let result = if job.cancel.is_cancelled() {
            Err(LocalError::Cancelled)
        } else {
            clock += 1;
            answer(model, &mut ctx, &mut slots, clock, &job, n_ctx)
        };
        let _ = job.events.send(Event::Done(result));
    }
}

/// The tokens whose keys and values one sequence of the context holds, in order.
#[derive(Default)]
struct KvCache {
    tokens: Vec<LlamaToken>,
    /// When it was last used (the worker's job count).
    used: u64,
}

/// The slot a prompt goes to: the one holding the longest stretch of its head, when that is
/// worth keeping; else the least recently used. The critic, the reviser and the judge each have
/// their own head, so each keeps a slot and none evicts another's.
fn choose_slot(slots: &[KvCache], tokens: &[LlamaToken]) -> usize {
    let shared = |s: &KvCache| crate::text::common_affixes(&s.tokens, tokens).0;
    let best = (0..slots.len()).max_by_key(|&i| (shared(&slots[i]), std::cmp::Reverse(i)));
    // Worth it: a long shared head, or a slot whose whole content the prompt continues (a
    // cancelled prompt resumed: nothing of it is lost by going on there).
    let worth = |s: &KvCache| {
        let n = shared(s);
        n >= MIN_REUSE || (n > 0 && n == s.tokens.len())
    };
    match best {
        Some(i) if worth(&slots[i]) => i,
        _ => (0..slots.len())
            .min_by_key(|&i| (slots[i].used, i))
            .unwrap_or(0),
    }
}

/// Turns token bytes into text without cutting a UTF-8 character.
#[derive(Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_some() => {
                // Not UTF-8 at all: replace it rather than wait for ever.
                let out = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                return out;
            }
            Err(e) => e.valid_up_to(),
        };
        let rest = self.pending.split_off(valid);
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending = rest;
        out
    }
}

/// A failed llama.cpp call as an error: what failed and why.
fn failed(what: &str, e: &dyn std::fmt::Display) -> LocalError {
    LocalError::Inference(format!("{what}: {e}"))
}

/// Processes the prompt (reusing the cached prefix of the slot it goes to) and samples the
/// answer.
fn answer(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    slots: &mut [KvCache],
    now: u64,
    job: &Job,
    n_ctx: u32,
) -> Result<Generated, LocalError> {
    let tokens = model.vocab().tokenize(job.prompt.as_bytes(), true, true);
    if tokens.is_empty() {
        return Err(LocalError::Inference("the prompt is empty".to_owned()));
    }
    if tokens.len().saturating_add(job.max_tokens) > n_ctx as usize {
        return Err(LocalError::ContextFull {
            prompt: tokens.len(),
            answer: job.max_tokens,
            context: n_ctx,
        });
    }
    let started = Instant::now();
    let slot = choose_slot(slots, &tokens);
    let seq = i32::try_from(slot).map_err(|e| failed("slot", &e))?;
    let seq_id = u32::try_from(slot).map_err(|e| failed("slot", &e))?;
    make_room(ctx, slots, slot, tokens.len() + job.max_tokens, n_ctx)?;
    let cache = &mut slots[slot];
    cache.used = now;
    let keep = reuse_prefix(ctx, cache, seq_id, &tokens);
    let mut batch = LlamaBatch::new(CHUNK, 1);
    decode_prompt(ctx, &mut batch, cache, &tokens, keep, seq, &job.cancel)?;
    let prompt_secs = started.elapsed().as_secs_f64();
    let mut out = Generated {
        prompt_tokens: tokens.len(),
        prompt_processed: tokens.len() - keep,
        prompt_secs,
        ..Generated::default()
    };
    if job.max_tokens == 0 {
        return Ok(out);
    }
    generate_answer(model, ctx, &mut batch, cache, seq, job, &mut out)?;
    Ok(out)
}

/// The slots share the context's cells: makes room for `needed` tokens in `slot` by emptying
/// the least recently used others until they fit.
fn make_room(
    ctx: &mut LlamaContext<'_>,
    slots: &mut [KvCache],
    slot: usize,
    needed: usize,
    n_ctx: u32,
) -> Result<(), LocalError> {
    loop {
        let others: usize = (0..slots.len())
            .filter(|&i| i != slot)
            .map(|i| slots[i].tokens.len())
            .sum();
        if others + needed <= n_ctx as usize {
            return Ok(());
        }
        let Some(victim) = (0..slots.len())
            .filter(|&i| i != slot && !slots[i].tokens.is_empty())
            .min_by_key(|&i| slots[i].used)
        else {
            return Ok(());
        };
        let v = u32::try_from(victim).map_err(|e| failed("slot", &e))?;
        let _ = ctx.clear_kv_cache_seq(Some(v), None, None);
        slots[victim].tokens.clear();
    }
}

/// Keeps the head of `cache` that `tokens` starts with (at least the last prompt token is
/// decoded again, for its logits) and drops the rest from sequence `seq_id`; returns how many
/// tokens were kept.
fn reuse_prefix(
    ctx: &mut LlamaContext<'_>,
    cache: &mut KvCache,
    seq_id: u32,
    tokens: &[LlamaToken],
) -> usize {
    let mut keep = crate::text::common_affixes(&cache.tokens, tokens).0;
    keep = keep.min(tokens.len() - 1);
    let removed = ctx
        .clear_kv_cache_seq(Some(seq_id), u32::try_from(keep).ok(), None)
        .unwrap_or(false);
    if !removed {
        let _ = ctx.clear_kv_cache_seq(Some(seq_id), None, None);
        keep = 0;
    }
    cache.tokens.truncate(keep);
    keep
}

/// Decodes `tokens` from position `keep` on into sequence `seq` (and `cache`), with a
/// cancellation check between chunks; the last token's logits are kept for sampling.
fn decode_prompt(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    cache: &mut KvCache,
    tokens: &[LlamaToken],
    keep: usize,
    seq: i32,
    cancel: &CancellationToken,
) -> Result<(), LocalError> {
    let mut at = keep;
    while at < tokens.len() {
        if cancel.is_cancelled() {
            return Err(LocalError::Cancelled);
        }
        // Chunks end on multiples of CHUNK, however much of the prompt was cached, so that a
        // prompt is split the same way with the prefix warm as cold.
        let end = ((at / CHUNK + 1) * CHUNK).min(tokens.len());
        batch.clear();
        for (i, t) in tokens[at..end].iter().enumerate() {
            let pos = i32::try_from(at + i).map_err(|e| failed("position", &e))?;
            let last = at + i + 1 == tokens.len();
            batch
                .add(*t, pos, &[seq], last)
                .map_err(|e| failed("batch", &e))?;
        }
        ctx.decode(batch)
            .map_err(|e| failed("prompt processing failed", &e))?;
        cache.tokens.extend_from_slice(&tokens[at..end]);
        at = end;
    }
    Ok(())
}

/// Samples up to `job.max_tokens` answer tokens after the prompt (`out.prompt_tokens` long,
/// its last logits in `batch`), each streamed to the job as text and kept in `cache`, into
/// `out`.
fn generate_answer(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    cache: &mut KvCache,
    seq: i32,
    job: &Job,
    out: &mut Generated,
) -> Result<(), LocalError> {
    let vocab = model.vocab();
    let mut grammar = job
        .grammar
        .as_deref()
        .map(|g| LlamaSampler::grammar(model, g, "root").map_err(|e| failed("grammar", &e)))
        .transpose()?;
    let mut sampler = if job.temperature > 0.0 {
        LlamaSampler::chain_simple([
            LlamaSampler::top_k(40),
            LlamaSampler::top_p(0.95, 1),
            LlamaSampler::temp(job.temperature),
            LlamaSampler::dist(fastrand::u32(..)),
        ])
    } else {
        LlamaSampler::greedy()
    };
    let generating = Instant::now();
    let mut text = Utf8Stream::default();
    let mut idx = batch.n_tokens() - 1;
    let at = out.prompt_tokens;
    out.truncated = true;
    for pos in at..at.saturating_add(job.max_tokens) {
        if job.cancel.is_cancelled() {
            return Err(LocalError::Cancelled);
        }
        let token = sample(ctx, idx, &mut sampler, grammar.as_mut());
        if vocab.is_eog(token) {
            out.truncated = false;
            break;
        }
        let piece = text.push(&vocab.token_to_piece(token, false, None));
        if !piece.is_empty() {
            out.text.push_str(&piece);
            let _ = job.events.send(Event::Delta(piece));
        }
        out.completion_tokens += 1;
        batch.clear();
        let p = i32::try_from(pos).map_err(|e| failed("position", &e))?;
        batch
            .add(token, p, &[seq], true)
            .map_err(|e| failed("batch", &e))?;
        ctx.decode(batch)
            .map_err(|e| failed("generation failed", &e))?;
        cache.tokens.push(token);
        idx = 0;
    }
    out.generate_secs = generating.elapsed().as_secs_f64();
    Ok(())
}

/// Samples one token. Under a grammar the token is drawn freely first and checked against the
/// grammar, and only when it does not fit is the grammar applied to the whole vocabulary (as
/// llama.cpp's own server does: a full grammar pass costs far more than one check).
fn sample(
    ctx: &LlamaContext<'_>,
    idx: i32,
    sampler: &mut LlamaSampler,
    grammar: Option<&mut LlamaSampler>,
) -> LlamaToken {
    let token = sampler.sample(ctx, idx);
    let Some(grammar) = grammar else {
        return token;
    };
    let mut one = LlamaTokenDataArray::from_iter([LlamaTokenData::new(token, 1.0, 0.0)], false);
    grammar.apply(&mut one);
    let fits = one.data.first().is_some_and(|d| d.logit().is_finite());
    let token = if fits {
        token
    } else {
        let mut all = ctx.token_data_array_ith(idx);
        grammar.apply(&mut all);
        sampler.apply(&mut all);
        all.selected_token().unwrap_or(token)
    };
    grammar.accept(token);
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_never_cut_between_tokens() {
        let mut s = Utf8Stream::default();
        let bytes = "é😀".as_bytes();
        assert_eq!(s.push(&bytes[..1]), "");
        assert_eq!(s.push(&bytes[1..3]), "é");
        assert_eq!(s.push(&bytes[3..]), "😀");
        assert_eq!(s.push(&[0xff]), "\u{fffd}");
    }

    #[test]
    fn each_kind_of_prompt_keeps_its_own_slot() {
        let toks = |v: std::ops::Range<i32>| v.map(LlamaToken::new).collect::<Vec<_>>();
        let slot = |tokens: Vec<LlamaToken>, used: u64| KvCache { tokens, used };
        // Empty slots: the first (least recently used, lowest index).
        let empty = [KvCache::default(), KvCache::default(), KvCache::default()];
        assert_eq!(choose_slot(&empty, &toks(0..100)), 0);
        // The critic's head is in slot 0; another critic prompt reuses it.
        let one = [
            slot(toks(0..100), 1),
            KvCache::default(),
            KvCache::default(),
        ];
        let mut critic = toks(0..80);
        critic.extend(toks(500..520));
        assert_eq!(choose_slot(&one, &critic), 0);
        // A prompt sharing only a few template tokens takes the least recently used slot.
        let mut reviser = toks(0..5);
        reviser.extend(toks(900..1000));
        assert_eq!(choose_slot(&one, &reviser), 1);
        let two = [
            slot(toks(0..100), 1),
            slot(reviser.clone(), 2),
            KvCache::default(),
        ];
        let mut judge = toks(0..5);
        judge.extend(toks(2000..2100));
        assert_eq!(
            choose_slot(&two, &judge),
            2,
            "the judge does not evict the critic"
        );
        // A prompt that continues a slot's whole (short) content goes on there.
        let short = [
            slot(toks(0..10), 1),
            slot(toks(50..150), 2),
            KvCache::default(),
        ];
        assert_eq!(choose_slot(&short, &toks(0..100)), 0);
        let three = [slot(toks(0..100), 3), slot(reviser, 2), slot(judge, 4)];
        assert_eq!(
            choose_slot(&three, &toks(7000..7100)),
            1,
            "least recently used"
        );
    }
}

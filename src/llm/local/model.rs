//! The embedded model on llama.cpp (`llama-cpp-2`, its vendored llama.cpp): any GGUF that
//! llama.cpp loads (Qwen2, Llama, Gemma, Phi, …), weights quantized and memory-mapped. The
//! tokenizer and the chat template come from the GGUF; a JSON-schema request is sampled under
//! the grammar llama.cpp derives from the schema, so even a small model answers valid JSON.
//!
//! Each loaded model has one worker thread that owns its context and answers one request at a
//! time, in order. The worker keeps the tokens of its KV cache: a prompt that starts like the
//! previous one (the same system prompt and principles) only processes what differs. The prompt
//! is processed in large batches; llama.cpp's abort callback (reached through the vendored
//! `llama-cpp-2`, see `Cargo.toml`) asks the request's cancellation token between the
//! operations of every computation, so a cancelled request stops within a fraction of a second
//! even in the middle of a batch, keeping the micro-batches already done; a request still queued
//! when it is cancelled is skipped.
//!
//! Answers are decoded with prompt-lookup drafting ("speculative edits"): a revision is mostly
//! a copy of code in the prompt, so where the last tokens written also occur earlier in the
//! prompt (or the answer), the tokens that followed them there are guessed as the next ones
//! and checked in one batch. Each position is still sampled from the model's own distribution
//! and a guess is kept only while it equals what was sampled, so the answer is the one plain
//! decoding gives (under greedy decoding the same tokens, up to llama.cpp's last-bit
//! differences between batch sizes; under sampling the same distribution) while the copied
//! stretches cost one batch instead of one pass per token.

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
use tokio_util::sync::CancellationToken;

mod draft;
mod sample;
mod slots;
mod utf8;

use draft::{DRAFT_MAX, Draft};
use sample::{margin, sample};
use slots::{KvCache, choose_slot, reuse_prefix};
use utf8::Utf8Stream;

// The sampled token and its guesses go in one micro-batch.
const _: () = assert!(DRAFT_MAX < UBATCH);

/// Positions kept per context (prompt + answer).
const CONTEXT: u32 = 8192;
/// The prompt is decoded in batches of this many tokens, each split by llama.cpp into
/// micro-batches of [`UBATCH`]; the abort callback can stop any of them between operations. The
/// sizes are fixed and batches end on multiples of `CHUNK`: llama.cpp's results depend (in the
/// last bits) on how a prompt is split, and a split that followed timing made the same review
/// give different answers from run to run. (Before the abort callback was reachable, batches
/// were 16 tokens so that a check between them came within a second: 0.84x the prompt speed of
/// llama.cpp's own server on 2 threads.)
const CHUNK: usize = 512;
/// Micro-batch size: what a cancelled prompt keeps is counted in these.
const UBATCH: usize = 128;
/// Sequences (slots) of the KV cache, one per kind of prompt a review sends (critic, reviser,
/// judge); they share the context's cells.
const SLOTS: usize = 3;
/// How answer tokens are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Decoding {
    /// One model pass per token.
    Plain,
    /// Prompt-lookup drafting: guesses copied from the prompt, checked in one batch.
    #[default]
    PromptLookup,
}

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
    /// Tokens guessed by prompt lookup, and how many of them the model confirmed.
    pub drafted: usize,
    /// Guessed tokens kept (each saved one model pass).
    pub draft_accepted: usize,
    /// Model passes (batches) spent generating.
    pub passes: usize,
    /// The answer's tokens.
    pub tokens: Vec<i32>,
    /// Under greedy decoding, for each token sampled (the answer's, then the one that ended it:
    /// an end of answer or the first past `max_tokens`), how far its logit is ahead of the
    /// runner-up's: where two decodings part, a small gap shows a near-tie (llama.cpp's results
    /// differ in their last bits between batch sizes), not a fault.
    pub margins: Vec<f32>,
}

/// One request for the worker.
struct Job {
    prompt: String,
    grammar: Option<String>,
    max_tokens: usize,
    temperature: f32,
    decoding: Decoding,
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
    /// Blocks until done; returns within about a second of `cancel`. Decodes with prompt-lookup
    /// drafting ([`Decoding::PromptLookup`]).
    pub fn generate(
        &self,
        prompt: &str,
        schema: Option<&serde_json::Value>,
        max_tokens: usize,
        temperature: f64,
        cancel: &CancellationToken,
        on_delta: &mut dyn FnMut(&str),
    ) -> Result<Generated, LocalError> {
        self.generate_with(
            prompt,
            schema,
            max_tokens,
            temperature,
            Decoding::default(),
            cancel,
            on_delta,
        )
    }

    /// [`LocalModel::generate`], decoded as `decoding` says.
    #[allow(clippy::too_many_arguments)]
    pub fn generate_with(
        &self,
        prompt: &str,
        schema: Option<&serde_json::Value>,
        max_tokens: usize,
        temperature: f64,
        decoding: Decoding,
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
            decoding,
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
            decoding: Decoding::Plain,
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
        .with_n_ubatch(UBATCH as u32)
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
    // llama.cpp asks, between the operations of each computation, whether the job at hand was
    // cancelled.
    let current = Arc::new(Mutex::new(CancellationToken::new()));
    let asked = current.clone();
    ctx.set_abort_callback(Some(Box::new(move || {
        asked
            .lock()
            .map(|t| t.is_cancelled())
            .unwrap_or_else(|poisoned| poisoned.get_ref().is_cancelled())
    })));
    let mut slots: Vec<KvCache> = (0..SLOTS).map(|_| KvCache::default()).collect();
    let mut clock = 0u64;
    for job in jobs {
        *current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = job.cancel.clone();
        let result = if job.cancel.is_cancelled() {
            Err(LocalError::Cancelled)
        } else {
            clock += 1;
            answer(model, &mut ctx, &mut slots, clock, &job, n_ctx)
        };
        let _ = job.events.send(Event::Done(result));
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
        if let Err(e) = ctx.decode(batch) {
            // Stopped by the abort callback, or failed: the micro-batches done stay in the
            // sequence; `cache` records them (a cancelled prompt resumed goes on from there).
            let done = usize::try_from(ctx.kv_cache_seq_pos_max(seq).saturating_add(1))
                .unwrap_or(0)
                .clamp(at, end);
            cache.tokens.extend_from_slice(&tokens[at..done]);
            let from = u32::try_from(done).map_err(|e| failed("position", &e))?;
            if !ctx
                .clear_kv_cache_seq(u32::try_from(seq).ok(), Some(from), None)
                .unwrap_or(false)
            {
                let _ = ctx.clear_kv_cache_seq(u32::try_from(seq).ok(), None, None);
                cache.tokens.clear();
            }
            if cancel.is_cancelled() {
                return Err(LocalError::Cancelled);
            }
            return Err(failed("prompt processing failed", &e));
        }
        cache.tokens.extend_from_slice(&tokens[at..end]);
        at = end;
    }
    Ok(())
}

/// Samples up to `job.max_tokens` answer tokens after the prompt (its last logits in `batch`),
/// each streamed to the job as text and kept in `cache`, into `out`. With prompt lookup, each
/// pass decodes the sampled token together with the guesses that follow it ([`Draft`]); every
/// position is sampled as plain decoding would, a guess is kept while it equals the sampled
/// token, and the keys and values of the guesses not kept are dropped from the sequence.
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
    let seq_id = u32::try_from(seq).map_err(|e| failed("slot", &e))?;
    let generating = Instant::now();
    let mut text = Utf8Stream::default();
    let greedy = job.temperature <= 0.0;
    let mut emit = |token: LlamaToken, out: &mut Generated| {
        out.tokens.push(token.0);
        let piece = text.push(&vocab.token_to_piece(token, false, None));
        if !piece.is_empty() {
            out.text.push_str(&piece);
            let _ = job.events.send(Event::Delta(piece));
        }
        out.completion_tokens += 1;
    };
    let mut draft = Draft::default();
    let mut next = sample(ctx, batch.n_tokens() - 1, &mut sampler, grammar.as_mut());
    if greedy {
        out.margins.push(margin(ctx, batch.n_tokens() - 1));
    }
    out.truncated = true;
    loop {
        if job.cancel.is_cancelled() {
            return Err(LocalError::Cancelled);
        }
        if vocab.is_eog(next) {
            out.truncated = false;
            break;
        }
        if out.completion_tokens >= job.max_tokens {
            break;
        }
        emit(next, out);
        let at = cache.tokens.len();
        cache.tokens.push(next);
        let room = job.max_tokens.saturating_sub(out.completion_tokens);
        let guesses = match job.decoding {
            Decoding::PromptLookup => draft.guess(&cache.tokens, room.min(DRAFT_MAX)).to_vec(),
            Decoding::Plain => Vec::new(),
        };
        batch.clear();
        for (i, t) in std::iter::once(&next).chain(&guesses).enumerate() {
            let pos = i32::try_from(at + i).map_err(|e| failed("position", &e))?;
            batch
                .add(*t, pos, &[seq], true)
                .map_err(|e| failed("batch", &e))?;
        }
        if let Err(e) = ctx.decode(batch) {
            // What the sequence holds is unknown now: it starts again next time.
            let _ = ctx.clear_kv_cache_seq(Some(seq_id), None, None);
            cache.tokens.clear();
            if job.cancel.is_cancelled() {
                return Err(LocalError::Cancelled);
            }
            return Err(failed("generation failed", &e));
        }
        out.passes += 1;
        out.drafted += guesses.len();
        // Each position sampled as plain decoding would; a guess counts while it is what was
        // sampled there.
        let mut kept = 0;
        let mut following = None;
        for (i, guess) in guesses
            .iter()
            .map(Some)
            .chain(std::iter::once(None))
            .enumerate()
        {
            let idx = i32::try_from(i).map_err(|e| failed("batch", &e))?;
            let token = sample(ctx, idx, &mut sampler, grammar.as_mut());
            if greedy {
                out.margins.push(margin(ctx, idx));
            }
            if guess != Some(&token) {
                following = Some(token);
                break;
            }
            if vocab.is_eog(token) {
                break;
            }
            emit(token, out);
            kept += 1;
        }
        cache.tokens.extend_from_slice(&guesses[..kept]);
        if kept < guesses.len() {
            let from = u32::try_from(cache.tokens.len()).map_err(|e| failed("position", &e))?;
            let _ = ctx.clear_kv_cache_seq(Some(seq_id), Some(from), None);
        }
        out.draft_accepted += kept;
        draft.kept(kept);
        match following {
            Some(token) => next = token,
            None => {
                // An end of the answer was guessed and confirmed.
                out.truncated = false;
                break;
            }
        }
    }
    out.generate_secs = generating.elapsed().as_secs_f64();
    Ok(())
}

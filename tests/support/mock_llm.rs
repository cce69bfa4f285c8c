//! A scripted model server on 127.0.0.1 (real HTTP) that speaks the three wire formats
//! refine-ls uses: OpenAI chat completions (`/v1/chat/completions`), Anthropic Messages
//! (`/v1/messages`) and Ollama (`/api/chat`), plain or streamed (SSE / NDJSON) in chunks cut
//! at awkward byte boundaries, with scripted faults. It tells critique calls from revision
//! calls by the role line of the system prompt (`# refine-ls critic` / `# refine-ls reviser`),
//! answers each from its own queue (the last reply repeats when a queue runs out), and records
//! every request (body and headers) and every client that hung up mid-stream.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::SinkExt;
use serde::Deserialize;
use serde_json::{Value, json};

/// How a reply is streamed.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamSpec {
    /// Characters of content per event.
    #[serde(default = "default_piece")]
    pub piece_chars: usize,
    /// Bytes per network chunk (cuts events, lines and UTF-8 characters).
    #[serde(default = "default_chunk")]
    pub chunk_bytes: usize,
    /// Pause between chunks.
    #[serde(default)]
    pub chunk_delay_ms: u64,
}

fn default_piece() -> usize {
    6
}

fn default_chunk() -> usize {
    7
}

/// One scripted answer.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Reply {
    /// The assistant's text.
    #[serde(default)]
    pub content: Option<String>,
    /// A raw body sent as is instead (for garbage and error bodies).
    #[serde(default)]
    pub raw: Option<String>,
    /// HTTP status (200 when left out).
    #[serde(default)]
    pub status: Option<u16>,
    /// A `Retry-After` header.
    #[serde(default)]
    pub retry_after: Option<String>,
    /// Wait this long before answering.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Stream the reply (when the request asked for a stream).
    #[serde(default)]
    pub stream: Option<StreamSpec>,
    /// `reset` (cut the connection halfway), `stall` (go silent halfway), `malformed` (a
    /// broken event halfway).
    #[serde(default)]
    pub fault: Option<String>,
}

impl Reply {
    /// A 200 reply with this content.
    pub fn content(c: impl Into<String>) -> Self {
        Self {
            content: Some(c.into()),
            ..Self::default()
        }
    }

    /// A critique reply with these findings.
    pub fn findings(findings: Value) -> Self {
        Self::content(json!({ "findings": findings }).to_string())
    }

    /// A revision reply: the code in one fenced block.
    pub fn code(code: &str) -> Self {
        Self::content(format!("```rust\n{}\n```", code.trim_end()))
    }

    /// An HTTP error with a body.
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status: Some(status),
            raw: Some(body.to_owned()),
            ..Self::default()
        }
    }

    /// A 200 reply with a raw body.
    pub fn raw(body: &str) -> Self {
        Self {
            raw: Some(body.to_owned()),
            ..Self::default()
        }
    }

    /// Delays the reply.
    pub fn delayed(mut self, ms: u64) -> Self {
        self.delay_ms = Some(ms);
        self
    }

    /// Streams the reply in small chunks.
    pub fn streamed(mut self, piece_chars: usize, chunk_bytes: usize, chunk_delay_ms: u64) -> Self {
        self.stream = Some(StreamSpec {
            piece_chars,
            chunk_bytes,
            chunk_delay_ms,
        });
        self
    }

    /// Adds a fault.
    pub fn fault(mut self, fault: &str) -> Self {
        self.fault = Some(fault.to_owned());
        self
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, v: &str) -> Self {
        self.retry_after = Some(v.to_owned());
        self
    }
}

/// The two queues and how the server behaves.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Script {
    /// Answers to critique calls, in order.
    #[serde(default)]
    pub critique: VecDeque<Reply>,
    /// Answers to revision calls, in order.
    #[serde(default)]
    pub revise: VecDeque<Reply>,
    /// Answers to reflection calls, in order.
    #[serde(default)]
    pub reflect: VecDeque<Reply>,
    /// Answers to the judge's calls (does a revision resolve the findings), in order. Empty: a
    /// reply with no verdicts, and the engine falls back to "a finding is resolved when the
    /// revision changes its lines".
    #[serde(default)]
    pub judge: VecDeque<Reply>,
    /// Answers to the fix-first explainer's calls (what each hunk of a fix fixes). Empty: a
    /// reply with no explanations. (The fixer's calls take the `revise` queue.)
    #[serde(default)]
    pub explain: VecDeque<Reply>,
    /// Answers to the prober's calls (inputs to run the functions on). Empty: a reply with no
    /// inputs, and the review goes on without probes.
    #[serde(default)]
    pub probe: VecDeque<Reply>,
    /// Answers to the intent question (what calls should return). Empty: no answers.
    #[serde(default)]
    pub intent: VecDeque<Reply>,
    /// Structured-output requests answered with HTTP 400 (like llama-cpp-python):
    /// `json_schema`, `json_object` (OpenAI `response_format.type`; for Ollama, a schema
    /// `format` counts as `json_schema` and `"json"` as `json_object`).
    #[serde(default)]
    pub reject_structured: Vec<String>,
    /// Model names listed by `/v1/models` and `/api/tags` (`mock-model` when empty).
    #[serde(default)]
    pub models: Vec<String>,
    /// Answers chosen by what the request says, tried before the queues (for benchmarks, where
    /// many reviews run at once and a queue's order means nothing).
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Every Nth chat request (counted as they arrive) is answered at once with HTTP 429, like
    /// a gateway over its quota.
    #[serde(default)]
    pub throttle_every: Option<usize>,
    /// The `Retry-After` header of those 429s (none when unset).
    #[serde(default)]
    pub throttle_retry_after: Option<String>,
}

/// `reply` answers any request of `role` (`critique`, `revise`, `reflect`) whose body contains
/// `contains`.
#[derive(Debug, Clone, Deserialize)]
pub struct Rule {
    /// Which kind of call.
    pub role: String,
    /// Text the request body must contain.
    pub contains: String,
    /// The answer.
    pub reply: Reply,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The path.
    pub path: String,
    /// The parsed body.
    pub body: Value,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// When it arrived (its body read).
    pub at: Instant,
    /// When a whole (not streamed) answer was handed to the connection.
    pub answered: Option<Instant>,
    /// Answered with `throttle_every`'s 429.
    pub throttled: bool,
}

#[derive(Default)]
struct Inner {
    script: Script,
    requests: Vec<Recorded>,
    /// Streams whose client hung up before the end.
    hangups: usize,
    /// When each streamed reply sent its last byte.
    stream_ends: Vec<Instant>,
    /// Every streamed chunk: when it was handed to the connection, and the reply's bytes sent
    /// so far (for measuring how soon the client acts on a given byte).
    chunk_log: Vec<(Instant, usize)>,
}

/// A running mock.
#[derive(Clone)]
pub struct MockLlm {
    /// `http://127.0.0.1:PORT/v1` (the OpenAI base URL).
    pub base_url: String,
    /// `http://127.0.0.1:PORT` (the Anthropic and Ollama base URL).
    pub root_url: String,
    inner: Arc<Mutex<Inner>>,
}

type Shared = Arc<Mutex<Inner>>;

impl MockLlm {
    /// Starts a mock on a free port with a script.
    pub async fn start(script: Script) -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("literal address"), script).await
    }

    /// Starts a mock on a given address.
    pub async fn start_on(addr: SocketAddr, script: Script) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            script,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/chat/completions", post(chat))
            .route("/v1/messages", post(chat))
            .route("/api/chat", post(chat))
            .route("/v1/models", get(models))
            .route("/api/tags", get(models))
            .route("/_requests", get(requests))
            .route("/_script", post(set_script))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind mock");
        let port = listener.local_addr().expect("local addr").port();
        tokio::spawn(async move {
            // No Nagle delay on replies written in pieces (as a real server would set it).
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            root_url: format!("http://127.0.0.1:{port}"),
            inner,
        }
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.recorded().into_iter().map(|r| r.body).collect()
    }

    /// Every request with its path, headers and arrival time.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.inner.lock().expect("mock lock").requests.clone()
    }

    /// How many streamed replies lost their client before the end.
    pub fn hangups(&self) -> usize {
        self.inner.lock().expect("mock lock").hangups
    }

    /// When streamed replies ended.
    pub fn stream_ends(&self) -> Vec<Instant> {
        self.inner.lock().expect("mock lock").stream_ends.clone()
    }

    /// When each streamed chunk went out, with the bytes of its reply sent so far.
    pub fn chunk_log(&self) -> Vec<(Instant, usize)> {
        self.inner.lock().expect("mock lock").chunk_log.clone()
    }

    /// Replaces the script.
    pub fn set_script(&self, script: Script) {
        self.inner.lock().expect("mock lock").script = script;
    }
}

/// Which queue a request belongs to.
pub fn role_of(body: &Value) -> &'static str {
    let text = body.to_string();
    if text.contains("# refine-ls reflector") {
        "reflect"
    } else if text.contains("# refine-ls judge") {
        "judge"
    } else if text.contains("# refine-ls explainer") {
        "explain"
    } else if text.contains("# refine-ls prober") {
        "probe"
    } else if text.contains("# refine-ls intent") {
        "intent"
    } else if text.contains("# refine-ls reviser") {
        "revise"
    } else if text.contains("# refine-ls critic") || body.get("response_format").is_some() {
        "critique"
    } else {
        "revise"
    }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Ollama,
}

/// The structured-output kind a request asks for, named as in `reject_structured`.
fn structured_kind(wire: Wire, body: &Value) -> Option<&'static str> {
    match wire {
        Wire::OpenAi => match body
            .pointer("/response_format/type")
            .and_then(Value::as_str)
        {
            Some("json_schema") => Some("json_schema"),
            Some("json_object") => Some("json_object"),
            _ => None,
        },
        Wire::Ollama => match body.get("format") {
            Some(Value::Object(_)) => Some("json_schema"),
            Some(Value::String(_)) => Some("json_object"),
            _ => None,
        },
        Wire::Anthropic => None,
    }
}

async fn chat(State(inner): State<Shared>, uri: Uri, headers: HeaderMap, body: String) -> Response {
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let wire = match uri.path() {
        "/v1/messages" => Wire::Anthropic,
        "/api/chat" => Wire::Ollama,
        _ => Wire::OpenAi,
    };
    let index;
    let reply = {
        let mut g = inner.lock().expect("mock lock");
        g.requests.push(Recorded {
            path: uri.path().to_owned(),
            body: parsed.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
            at: Instant::now(),
            answered: None,
            throttled: false,
        });
        index = g.requests.len() - 1;
        if let Some(n) = g.script.throttle_every.filter(|n| *n > 0)
            && (index + 1) % n == 0
        {
            g.requests[index].throttled = true;
            let mut resp = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({"error": {"message": "rate limit reached"}})),
            )
                .into_response();
            if let Some(v) = g.script.throttle_retry_after.as_deref()
                && let Ok(v) = v.parse()
            {
                resp.headers_mut().insert("retry-after", v);
            }
            return resp;
        }
        if let Some(kind) = structured_kind(wire, &parsed)
            && g.script.reject_structured.iter().any(|r| r == kind)
        {
            let msg =
                format!("response_format type {kind} is not supported; use text or json_object");
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"message": msg}})),
            )
                .into_response();
        }
        let role = role_of(&parsed);
        let ruled = g
            .script
            .rules
            .iter()
            .find(|r| r.role == role && body.contains(&r.contains))
            .map(|r| r.reply.clone());
        let queue = match role {
            "critique" => &mut g.script.critique,
            "reflect" => &mut g.script.reflect,
            "judge" => &mut g.script.judge,
            "explain" => &mut g.script.explain,
            "probe" => &mut g.script.probe,
            "intent" => &mut g.script.intent,
            _ => &mut g.script.revise,
        };
        if ruled.is_some() {
            ruled
        } else if matches!(role, "judge" | "explain" | "probe" | "intent") && queue.is_empty() {
            Some(Reply::content("(the mock has nothing scripted for this)"))
        } else if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        }
    };
    let Some(reply) = reply else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "mock: script exhausted").into_response();
    };
    if let Some(ms) = reply.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = StatusCode::from_u16(reply.status.unwrap_or(200)).unwrap_or(StatusCode::OK);
    if let Some(raw) = reply.raw {
        let mut resp = (status, raw).into_response();
        if let Some(ra) = &reply.retry_after
            && let Ok(v) = ra.parse()
        {
            resp.headers_mut().insert("retry-after", v);
        }
        return resp;
    }
    let content = with_request_placeholders(&reply.content.clone().unwrap_or_default(), &body);
    let wants_stream = parsed.get("stream").and_then(Value::as_bool) == Some(true);
    match (&reply.stream, wants_stream) {
        (Some(spec), true) => stream_reply(
            inner,
            wire,
            &content,
            spec.clone(),
            reply.fault.as_deref(),
            &parsed,
        ),
        _ => {
            let resp = (status, axum::Json(whole_reply(wire, &content, &parsed))).into_response();
            if let Some(r) = inner.lock().expect("mock lock").requests.get_mut(index) {
                r.answered = Some(Instant::now());
            }
            resp
        }
    }
}

/// A non-streamed reply in the request's wire format.
fn whole_reply(wire: Wire, content: &str, req: &Value) -> Value {
    match wire {
        Wire::OpenAi => json!({
            "id": "mock", "object": "chat.completion",
            "model": req.get("model").cloned().unwrap_or(Value::Null),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }),
        Wire::Anthropic => json!({
            "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": content}],
            "usage": {"input_tokens": 100, "output_tokens": 20},
        }),
        Wire::Ollama => json!({
            "model": req.get("model").cloned().unwrap_or(Value::Null),
            "message": {"role": "assistant", "content": content},
            "done": true, "prompt_eval_count": 100, "eval_count": 20,
        }),
    }
}

/// The wire bytes of a streamed reply, and the byte offset of its middle (for faults).
pub fn stream_bytes(wire: Wire, content: &str, piece_chars: usize) -> Vec<u8> {
    let chars: Vec<char> = content.chars().collect();
    let pieces: Vec<String> = chars
        .chunks(piece_chars.max(1))
        .map(|c| c.iter().collect())
        .collect();
    let mut out = String::new();
    match wire {
        Wire::OpenAi => {
            for p in &pieces {
                let ev = json!({"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]});
                out.push_str(&format!("data: {ev}\n\n"));
            }
            let usage = json!({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": pieces.len()}});
            out.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
        }
        Wire::Anthropic => {
            let start = json!({"type": "message_start", "message": {"usage": {"input_tokens": 100, "output_tokens": 1}}});
            out.push_str(&format!("event: message_start\ndata: {start}\n\n"));
            out.push_str("event: ping\ndata: {\"type\": \"ping\"}\n\n");
            for p in &pieces {
                let ev = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}});
                out.push_str(&format!("event: content_block_delta\ndata: {ev}\n\n"));
            }
            let delta = json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": pieces.len()}});
            out.push_str(&format!("event: message_delta\ndata: {delta}\n\n"));
            out.push_str("event: message_stop\ndata: {\"type\": \"message_stop\"}\n\n");
        }
        Wire::Ollama => {
            for p in &pieces {
                let ev = json!({"model": "m", "message": {"role": "assistant", "content": p}, "done": false});
                out.push_str(&format!("{ev}\n"));
            }
            let done = json!({"model": "m", "message": {"role": "assistant", "content": ""}, "done": true, "prompt_eval_count": 100, "eval_count": pieces.len()});
            out.push_str(&format!("{done}\n"));
        }
    }
    out.into_bytes()
}

fn stream_reply(
    inner: Shared,
    wire: Wire,
    content: &str,
    spec: StreamSpec,
    fault: Option<&str>,
    _req: &Value,
) -> Response {
    let mut bytes = stream_bytes(wire, content, spec.piece_chars);
    let half = bytes.len() / 2;
    let fault = fault.map(str::to_owned);
    if fault.as_deref() == Some("malformed") {
        // A broken event right after the middle (at an event boundary).
        let at = bytes[half..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(half, |p| half + p + 1);
        let junk: &[u8] = match wire {
            Wire::Ollama => b"{not json\n",
            _ => b"data: {not json\n\n",
        };
        bytes.splice(at..at, junk.iter().copied());
    }
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let chunk = spec.chunk_bytes.max(1);
    let delay = Duration::from_millis(spec.chunk_delay_ms);
    tokio::spawn(async move {
        let mut sent = 0;
        let total = bytes.len();
        for part in bytes.chunks(chunk) {
            if matches!(fault.as_deref(), Some("reset" | "stall")) && sent >= half {
                break;
            }
            if tx.send(Ok(Bytes::copy_from_slice(part))).await.is_err() {
                inner.lock().expect("mock lock").hangups += 1;
                return;
            }
            sent += part.len();
            inner
                .lock()
                .expect("mock lock")
                .chunk_log
                .push((Instant::now(), sent));
            if sent == total {
                inner
                    .lock()
                    .expect("mock lock")
                    .stream_ends
                    .push(Instant::now());
                return;
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
        match fault.as_deref() {
            Some("reset") => {
                let _ = tx
                    .send(Err(std::io::Error::other("mock: connection reset")))
                    .await;
            }
            Some("stall") => {
                // Silent until the client gives up (or a minute passes).
                for _ in 0..600 {
                    if tx.is_closed() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                inner.lock().expect("mock lock").hangups += 1;
            }
            _ => inner
                .lock()
                .expect("mock lock")
                .stream_ends
                .push(Instant::now()),
        }
    });
    let content_type = match wire {
        Wire::Ollama => "application/x-ndjson",
        _ => "text/event-stream",
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", content_type)
        .body(Body::from_stream(rx))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn models(State(inner): State<Shared>, uri: Uri) -> axum::Json<Value> {
    let mut names = inner.lock().expect("mock lock").script.models.clone();
    if names.is_empty() {
        names.push("mock-model".to_owned());
    }
    if uri.path() == "/api/tags" {
        axum::Json(
            json!({"models": names.iter().map(|n| json!({"name": n, "model": n})).collect::<Vec<_>>()}),
        )
    } else {
        axum::Json(
            json!({"object": "list", "data": names.iter().map(|n| json!({"id": n, "object": "model"})).collect::<Vec<_>>()}),
        )
    }
}

async fn requests(State(inner): State<Shared>) -> axum::Json<Value> {
    let g = inner.lock().expect("mock lock");
    axum::Json(Value::Array(
        g.requests.iter().map(|r| r.body.clone()).collect(),
    ))
}

async fn set_script(
    State(inner): State<Shared>,
    axum::Json(script): axum::Json<Script>,
) -> StatusCode {
    inner.lock().expect("mock lock").script = script;
    StatusCode::NO_CONTENT
}

/// Scripted replies write a review's placeholders as `REDACTED_SECRET_1`: the real ones carry a
/// random part per review (`REDACTED_SECRET_k3f9qa_1`) that no script can know, so they become
/// the request's own. Not when the request itself holds `REDACTED_SECRET_1` (code that holds
/// the word: then the reply means the word).
fn with_request_placeholders(content: &str, request: &str) -> String {
    let (Ok(scripted), Ok(own)) = (
        regex::Regex::new(r"REDACTED_SECRET_(\d+)"),
        regex::Regex::new(r"REDACTED_SECRET_([a-z][a-z0-9]{5})_\d"),
    ) else {
        return content.to_owned();
    };
    match own.captures(request) {
        Some(c) if !scripted.is_match(request) => scripted
            .replace_all(content, format!("REDACTED_SECRET_{}_${{1}}", &c[1]))
            .into_owned(),
        _ => content.to_owned(),
    }
}

//! A scripted OpenAI-compatible model server on 127.0.0.1 (real HTTP), for tests and for the
//! editor end-to-end runs. It tells critique calls from revision calls by the role line of
//! the system prompt (`# refine-ls critic` / `# refine-ls reviser`), answers each from its own
//! queue (the last reply repeats when a queue runs out), and records every request body.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Reply {
    /// The assistant message content (sent in an OpenAI completion body).
    #[serde(default)]
    pub content: Option<String>,
    /// A raw body sent as is instead (for garbage).
    #[serde(default)]
    pub raw: Option<String>,
    /// HTTP status (200 when left out).
    #[serde(default)]
    pub status: Option<u16>,
    /// Wait this long before answering.
    #[serde(default)]
    pub delay_ms: Option<u64>,
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

    /// A 200 reply with a raw (non-OpenAI) body.
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
}

/// The two queues.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Script {
    /// Answers to critique calls, in order.
    #[serde(default)]
    pub critique: VecDeque<Reply>,
    /// Answers to revision calls, in order.
    #[serde(default)]
    pub revise: VecDeque<Reply>,
}

#[derive(Default)]
struct Inner {
    script: Script,
    requests: Vec<Value>,
}

/// A running mock.
#[derive(Clone)]
pub struct MockLlm {
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
}

impl MockLlm {
    /// Starts a mock on a free port with a script.
    pub async fn start(script: Script) -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("literal address"), script).await
    }

    /// Starts a mock on a given address.
    pub async fn start_on(addr: SocketAddr, script: Script) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            script,
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/chat/completions", post(chat))
            .route("/_requests", get(requests))
            .route("/_script", post(set_script))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind mock");
        let port = listener.local_addr().expect("local addr").port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            inner,
        }
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.inner.lock().expect("mock lock").requests.clone()
    }

    /// Replaces the script.
    pub fn set_script(&self, script: Script) {
        self.inner.lock().expect("mock lock").script = script;
    }
}

/// Which queue a request belongs to.
pub fn role_of(body: &Value) -> &'static str {
    let system = body
        .pointer("/messages/0/content")
        .and_then(Value::as_str)
        .unwrap_or("");
    if system.contains("# refine-ls reviser") {
        "revise"
    } else if system.contains("# refine-ls critic") || body.get("response_format").is_some() {
        "critique"
    } else {
        "revise"
    }
}

async fn chat(State(inner): State<Arc<Mutex<Inner>>>, body: String) -> Response {
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let reply = {
        let mut g = inner.lock().expect("mock lock");
        g.requests.push(parsed.clone());
        let queue = if role_of(&parsed) == "critique" {
            &mut g.script.critique
        } else {
            &mut g.script.revise
        };
        if queue.len() > 1 {
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
        return (status, raw).into_response();
    }
    let content = reply.content.unwrap_or_default();
    let body = json!({
        "id": "mock",
        "object": "chat.completion",
        "model": parsed.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    });
    (status, axum::Json(body)).into_response()
}

async fn requests(State(inner): State<Arc<Mutex<Inner>>>) -> axum::Json<Value> {
    axum::Json(Value::Array(
        inner.lock().expect("mock lock").requests.clone(),
    ))
}

async fn set_script(
    State(inner): State<Arc<Mutex<Inner>>>,
    axum::Json(script): axum::Json<Script>,
) -> StatusCode {
    inner.lock().expect("mock lock").script = script;
    StatusCode::NO_CONTENT
}

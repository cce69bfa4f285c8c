//! A minimal LSP client that runs the real `refine-ls` binary and talks to it over stdio with
//! Content-Length framing, answering the server's own requests like an editor would.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Notify, oneshot};

/// How long any wait may take before the test fails instead of hanging.
pub const TIMEOUT: Duration = Duration::from_secs(20);

type Pending = Arc<Mutex<HashMap<i64, oneshot::Sender<Value>>>>;

/// What the server sent unprompted.
#[derive(Default)]
struct Inbox {
    notifications: Vec<Value>,
    /// When each notification arrived (same order).
    arrivals: Vec<std::time::Instant>,
    server_requests: Vec<Value>,
}

/// A running server and the client's end of the pipe.
pub struct LspClient {
    child: Child,
    stdin: Arc<tokio::sync::Mutex<ChildStdin>>,
    pending: Pending,
    inbox: Arc<Mutex<Inbox>>,
    arrived: Arc<Notify>,
    next_id: Mutex<i64>,
    /// What the client answers to `workspace/applyEdit`.
    pub apply_edit_result: Arc<Mutex<bool>>,
    /// What the client answers to `workspace/configuration` for section `refine` (null: nothing).
    pub configuration: Arc<Mutex<Value>>,
    /// The server's private cache and trust list (removed with the client).
    pub cache_dir: tempfile::TempDir,
}

impl LspClient {
    /// Starts the server binary with extra environment variables.
    pub fn start(envs: &[(&str, &str)]) -> Self {
        let cache_dir = tempfile::tempdir().expect("cache dir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_refine-ls"));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .env("REFINE_LS_CONFIG", super::test_config())
            .env("REFINE_LS_CACHE_DIR", cache_dir.path())
            .env("REFINE_LS_TRUST_FILE", cache_dir.path().join("trusted"))
            .env("REFINE_LS_MODELS_DIR", cache_dir.path().join("models"))
            .env("REFINE_LS_DATA_DIR", cache_dir.path().join("data"))
            .env("RUST_LOG", "refine_ls=info");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn refine-ls");
        let stdin = Arc::new(tokio::sync::Mutex::new(child.stdin.take().expect("stdin")));
        let stdout = child.stdout.take().expect("stdout");
        let pending: Pending = Arc::default();
        let inbox: Arc<Mutex<Inbox>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let apply_edit_result = Arc::new(Mutex::new(true));
        let configuration = Arc::new(Mutex::new(Value::Null));
        tokio::spawn(read_loop(
            BufReader::new(stdout),
            stdin.clone(),
            pending.clone(),
            inbox.clone(),
            arrived.clone(),
            apply_edit_result.clone(),
            configuration.clone(),
        ));
        Self {
            child,
            stdin,
            pending,
            inbox,
            arrived,
            next_id: Mutex::new(0),
            apply_edit_result,
            configuration,
            cache_dir,
        }
    }

    /// Sends raw bytes (for malformed-input tests).
    pub async fn send_raw(&self, bytes: &[u8]) {
        let mut w = self.stdin.lock().await;
        w.write_all(bytes).await.expect("write");
        w.flush().await.expect("flush");
    }

    async fn send(&self, msg: &Value) {
        write_frame(&self.stdin, msg).await;
    }

    /// Sends a request and waits for its response: `Ok(result)` or `Err(error)`.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, Value> {
        let id = {
            let mut n = self.next_id.lock().expect("id lock");
            *n += 1;
            *n
        };
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id, tx);
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let resp = tokio::time::timeout(TIMEOUT, rx)
            .await
            .unwrap_or_else(|_| panic!("no response to {method} within {TIMEOUT:?}"))
            .expect("response channel");
        match resp.get("error") {
            Some(e) => Err(e.clone()),
            None => Ok(resp.get("result").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    /// `initialize` + `initialized` with these client capabilities and options.
    pub async fn initialize(&self, capabilities: Value, options: Value) -> Value {
        let result = self
            .request(
                "initialize",
                json!({"processId": null, "rootUri": null, "capabilities": capabilities, "initializationOptions": options}),
            )
            .await
            .expect("initialize");
        self.notify("initialized", json!({})).await;
        result
    }

    /// Opens a document.
    pub async fn open(&self, uri: &str, language: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}}),
        )
        .await;
    }

    /// All notifications of a method received so far.
    pub fn notifications(&self, method: &str) -> Vec<Value> {
        self.inbox
            .lock()
            .expect("inbox lock")
            .notifications
            .iter()
            .filter(|n| n["method"] == method)
            .map(|n| n["params"].clone())
            .collect()
    }

    /// All notifications of a method with their arrival times.
    pub fn notifications_timed(&self, method: &str) -> Vec<(std::time::Instant, Value)> {
        let inbox = self.inbox.lock().expect("inbox lock");
        inbox
            .notifications
            .iter()
            .zip(&inbox.arrivals)
            .filter(|(n, _)| n["method"] == method)
            .map(|(n, at)| (*at, n["params"].clone()))
            .collect()
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// All requests of a method the server sent.
    pub fn server_requests(&self, method: &str) -> Vec<Value> {
        self.inbox
            .lock()
            .expect("inbox lock")
            .server_requests
            .iter()
            .filter(|n| n["method"] == method)
            .map(|n| n["params"].clone())
            .collect()
    }

    /// Waits for a notification of `method` whose params satisfy `pred`.
    pub async fn wait_for(&self, method: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_within(method, pred, TIMEOUT).await
    }

    /// [`Self::wait_for`] with its own time limit (for reviews on a real, slow model).
    pub async fn wait_for_within(
        &self,
        method: &str,
        pred: impl Fn(&Value) -> bool,
        limit: Duration,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.arrived.notified();
            if let Some(v) = self.notifications(method).into_iter().find(|v| pred(v)) {
                return v;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "no {method} notification matched within {limit:?}; got {:?}",
                    self.notifications(method)
                );
            }
        }
    }

    /// Waits for `refine/reviewFinished` of a review.
    pub async fn finished(&self, review_id: &str) -> Value {
        self.wait_for("refine/reviewFinished", |p| p["reviewId"] == review_id)
            .await
    }

    /// [`Self::finished`] with its own time limit.
    pub async fn finished_within(&self, review_id: &str, limit: Duration) -> Value {
        self.wait_for_within(
            "refine/reviewFinished",
            |p| p["reviewId"] == review_id,
            limit,
        )
        .await
    }

    /// The latest diagnostics published for a URI.
    pub fn diagnostics(&self, uri: &str) -> Vec<Value> {
        self.notifications("textDocument/publishDiagnostics")
            .into_iter()
            .rfind(|p| p["uri"] == uri)
            .and_then(|p| p["diagnostics"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Starts a review of a range and returns its id.
    pub async fn review(&self, uri: &str, range: Value) -> String {
        self.command("refine.review", json!([{"uri": uri, "range": range}]))
            .await
            .expect("refine.review")["reviewId"]
            .as_str()
            .expect("reviewId")
            .to_owned()
    }

    /// Starts a review that bypasses the cache and returns its id.
    pub async fn review_forced(&self, uri: &str, range: Value) -> String {
        self.command(
            "refine.review",
            json!([{"uri": uri, "range": range, "force": true}]),
        )
        .await
        .expect("refine.review")["reviewId"]
            .as_str()
            .expect("reviewId")
            .to_owned()
    }

    /// Runs `workspace/executeCommand`.
    pub async fn command(&self, command: &str, arguments: Value) -> Result<Value, Value> {
        self.request(
            "workspace/executeCommand",
            json!({"command": command, "arguments": arguments}),
        )
        .await
    }

    /// Code actions over a range.
    pub async fn code_actions(&self, uri: &str, range: Value) -> Vec<Value> {
        self.request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": range, "context": {"diagnostics": []}}),
        )
        .await
        .expect("codeAction")
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    /// Whether the server process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `shutdown` then `exit`, and waits for the process to end.
    pub async fn shutdown(mut self) -> std::process::ExitStatus {
        let _ = self.request("shutdown", Value::Null).await;
        self.notify("exit", Value::Null).await;
        tokio::time::timeout(TIMEOUT, self.child.wait())
            .await
            .expect("server exits after exit")
            .expect("wait")
    }
}

async fn write_frame(stdin: &tokio::sync::Mutex<ChildStdin>, msg: &Value) {
    let body = msg.to_string();
    let mut w = stdin.lock().await;
    let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
    if w.write_all(frame.as_bytes()).await.is_ok() {
        let _ = w.flush().await;
    }
}

async fn read_loop(
    mut out: BufReader<tokio::process::ChildStdout>,
    stdin: Arc<tokio::sync::Mutex<ChildStdin>>,
    pending: Pending,
    inbox: Arc<Mutex<Inbox>>,
    arrived: Arc<Notify>,
    apply_edit_result: Arc<Mutex<bool>>,
    configuration: Arc<Mutex<Value>>,
) {
    loop {
        let mut len = None;
        loop {
            let mut line = String::new();
            match out.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                len = v.trim().parse::<usize>().ok();
            }
        }
        let Some(len) = len else { continue };
        let mut buf = vec![0; len];
        if out.read_exact(&mut buf).await.is_err() {
            return;
        }
        let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
            continue;
        };
        let has_method = msg.get("method").is_some();
        let id = msg.get("id").cloned();
        match (has_method, id) {
            (false, Some(Value::Null)) => {
                // An error about a message the server could not read: kept for inspection.
                let mut inbox = inbox.lock().expect("inbox");
                inbox
                    .notifications
                    .push(json!({"method": "$/nullIdResponse", "params": msg}));
                inbox.arrivals.push(std::time::Instant::now());
                drop(inbox);
                arrived.notify_waiters();
            }
            (false, Some(id)) => {
                if let Some(tx) = id
                    .as_i64()
                    .and_then(|i| pending.lock().expect("pending").remove(&i))
                {
                    let _ = tx.send(msg);
                }
            }
            (true, Some(id)) => {
                let result = match msg["method"].as_str().unwrap_or("") {
                    "workspace/applyEdit" => {
                        json!({"applied": *apply_edit_result.lock().expect("flag")})
                    }
                    "workspace/configuration" => {
                        let answer = configuration.lock().expect("configuration").clone();
                        let items = msg["params"]["items"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        Value::Array(
                            items
                                .iter()
                                .map(|i| {
                                    if i["section"] == "refine" {
                                        answer.clone()
                                    } else {
                                        Value::Null
                                    }
                                })
                                .collect(),
                        )
                    }
                    _ => Value::Null,
                };
                inbox
                    .lock()
                    .expect("inbox")
                    .server_requests
                    .push(msg.clone());
                write_frame(
                    &stdin,
                    &json!({"jsonrpc": "2.0", "id": id, "result": result}),
                )
                .await;
                arrived.notify_waiters();
            }
            (true, None) => {
                let mut inbox = inbox.lock().expect("inbox");
                inbox.notifications.push(msg);
                inbox.arrivals.push(std::time::Instant::now());
                drop(inbox);
                arrived.notify_waiters();
            }
            (false, None) => {}
        }
    }
}

/// The first of `actions` whose title starts with `prefix`; panics, listing them, when none does.
pub fn action_titled<'a>(actions: &'a [Value], prefix: &str) -> &'a Value {
    actions
        .iter()
        .find(|x| x["title"].as_str().is_some_and(|t| t.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no action titled {prefix:?}: {actions:?}"))
}

/// Applies LSP text edits to a text, counting columns in the given encoding.
pub fn apply_edits(text: &str, edits: &[Value], encoding: &str) -> String {
    let offset = |pos: &Value| -> usize {
        let line = pos["line"].as_u64().expect("line") as usize;
        let col = pos["character"].as_u64().expect("character") as usize;
        let mut start = 0;
        for (i, l) in text.split_inclusive('\n').enumerate() {
            if i == line {
                let content = l.trim_end_matches('\n').trim_end_matches('\r');
                let mut units = 0;
                for (b, c) in content.char_indices() {
                    if units >= col {
                        return start + b;
                    }
                    units += match encoding {
                        "utf-8" => c.len_utf8(),
                        "utf-32" => 1,
                        _ => c.len_utf16(),
                    };
                }
                return start + content.len();
            }
            start += l.len();
        }
        text.len()
    };
    let mut ranges: Vec<(usize, usize, String)> = edits
        .iter()
        .map(|e| {
            (
                offset(&e["range"]["start"]),
                offset(&e["range"]["end"]),
                e["newText"].as_str().expect("newText").to_owned(),
            )
        })
        .collect();
    ranges.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out = text.to_owned();
    for (s, e, t) in ranges {
        out.replace_range(s..e, &t);
    }
    out
}

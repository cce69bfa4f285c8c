//! The real server in-process: `refine_ls::lsp::serve` (what `refine-ls --stdio` runs, the
//! transport guard and the tagger included) over a pair of `tokio::io::duplex` pipes, with
//! real Content-Length framing. For exchanges that need no model and no process: send one
//! message, compare what comes back with one JSON value.
//!
//! The process environment is shared by every test of a binary, so this harness sets none:
//! tests that need a private cache, trust list or user config use the stdio harness
//! ([`super::lsp_client`]). [`Duplex::initialize`] turns the review cache off instead, and
//! leaves `initialized` out (it would warm a local model, if the user has one).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::task::JoinHandle;

/// How long any wait may take before the test fails instead of hanging.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The client's end of an in-process server.
pub struct Duplex {
    /// What the client writes; the server reads it.
    to_server: DuplexStream,
    /// What the server writes.
    from_server: BufReader<DuplexStream>,
    /// The id of the last request sent.
    last_id: i64,
    /// Messages from the server no call has taken yet (notifications, its own requests).
    inbox: VecDeque<Value>,
    /// The server, until its input ends or it is told to exit.
    server: JoinHandle<()>,
}

impl Duplex {
    /// Starts a server.
    pub fn start() -> Self {
        let (to_server, server_input) = tokio::io::duplex(1 << 20);
        let (server_output, from_server) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(refine_ls::lsp::serve(server_input, server_output));
        Self {
            to_server,
            from_server: BufReader::new(from_server),
            last_id: 0,
            inbox: VecDeque::new(),
            server,
        }
    }

    /// Writes raw bytes to the server.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.to_server.write_all(bytes).await.expect("write");
        self.to_server.flush().await.expect("flush");
    }

    /// Writes one message, framed.
    pub async fn send(&mut self, msg: &Value) {
        let body = msg.to_string();
        let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
        self.send_raw(frame.as_bytes()).await;
    }

    /// Reads the next message the server writes.
    pub async fn recv(&mut self) -> Value {
        tokio::time::timeout(TIMEOUT, read_frame(&mut self.from_server))
            .await
            .unwrap_or_else(|_| panic!("the server wrote nothing within {TIMEOUT:?}"))
            .expect("the server closed its output")
    }

    /// Sends a request and returns the whole response message (`{"jsonrpc", "id", "result"}`
    /// or `{"jsonrpc", "id", "error"}`). Requests are numbered from 1.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.last_id += 1;
        let id = self.last_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let msg = self.recv().await;
            if msg.get("method").is_none() && msg["id"] == id {
                return msg;
            }
            self.take_in(msg).await;
        }
    }

    /// Sends a notification.
    pub async fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    /// The next notification of `method` the server sent (the whole message).
    pub async fn notification(&mut self, method: &str) -> Value {
        if let Some(at) = self.inbox.iter().position(|m| m["method"] == method) {
            return self.inbox.remove(at).expect("in the inbox");
        }
        loop {
            let msg = self.recv().await;
            if msg["method"] == method && msg.get("id").is_none() {
                return msg;
            }
            self.take_in(msg).await;
        }
    }

    /// Keeps a message for later; answers a request of the server's with `null`, as a client
    /// with nothing to say would.
    async fn take_in(&mut self, msg: Value) {
        if msg.get("method").is_some()
            && let Some(id) = msg.get("id").cloned()
        {
            self.send(&json!({"jsonrpc": "2.0", "id": id, "result": null}))
                .await;
        }
        self.inbox.push_back(msg);
    }

    /// `initialize` (request 1) with these client capabilities, the review cache off; returns
    /// the response.
    pub async fn initialize(&mut self, capabilities: Value) -> Value {
        self.request(
            "initialize",
            json!({
                "processId": null, "rootUri": null, "capabilities": capabilities,
                "initializationOptions": {"refine": {"cache": {"enabled": false}}},
            }),
        )
        .await
    }

    /// Opens a document at version 1.
    pub async fn open(&mut self, uri: &str, language: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}}),
        )
        .await;
    }

    /// `shutdown`, then `exit`; waits for the server to end.
    pub async fn shutdown(mut self) {
        let _ = self.request("shutdown", Value::Null).await;
        self.notify("exit", Value::Null).await;
        tokio::time::timeout(TIMEOUT, self.server)
            .await
            .expect("the server ends after exit")
            .expect("the server did not panic");
    }
}

/// Reads one Content-Length frame and parses its body; `None` at the end of the stream.
async fn read_frame(reader: &mut BufReader<DuplexStream>) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            if length.is_some() {
                break;
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).await.ok()?;
    Some(serde_json::from_slice(&body).expect("the server wrote JSON"))
}

//! A guard in front of the framework's stdin reader. tower-lsp-server's framed reader ends the
//! whole session on the first frame it cannot decode (bad JSON, bad UTF-8, a bad header), so
//! one malformed message from a client would kill the server. This layer reads the frames
//! first and replaces each malformed one by a well-formed request to
//! [`MALFORMED_METHOD`], whose handler answers with the JSON-RPC error the client should
//! have got (parse error or invalid request, id null). Nothing else is changed.
//!
//! It also carries what LSP 3.18 has and the framework's types do not: `CodeAction.tags`. The
//! guard notes whether the client's `initialize` announces `codeAction.tagSupport` with
//! `LLMGenerated` (1); [`tagger`] sits in front of stdout and turns the marker a model-made
//! code action carries in its `data` ([`super::ext::LLM_MARKER`]) into `tags: [1]` for such a
//! client, and drops it for any other.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::ext::{LLM_GENERATED, LLM_MARKER};

/// Whether the client announced `codeAction.tagSupport` with `LLMGenerated`.
#[derive(Debug, Clone, Default)]
pub struct Tags(Arc<AtomicBool>);

impl Tags {
    fn note_initialize(&self, body: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        if v.get("method").and_then(Value::as_str) != Some("initialize") {
            return;
        }
        let supported = v
            .pointer("/params/capabilities/textDocument/codeAction/tagSupport/valueSet")
            .and_then(Value::as_array)
            .is_some_and(|set| set.iter().any(|t| t.as_u64() == Some(LLM_GENERATED)));
        self.0.store(supported, Ordering::Relaxed);
    }
}

/// A writer for the framework: frames written to it reach `output` with the model-made marks
/// turned into tags (see the module). The task ends when the writer is dropped; await it so
/// that the last frames are out before the process ends.
pub fn tagger<W: AsyncWrite + Unpin + Send + 'static>(
    mut output: W,
    tags: Tags,
) -> (tokio::io::DuplexStream, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn(async move {
        let mut reader = BufReader::new(rx);
        while let Some(body) = next_frame(&mut reader).await {
            let body = retag(body, tags.0.load(Ordering::Relaxed));
            let frame = format!("Content-Length: {}\r\n\r\n", body.len());
            if output.write_all(frame.as_bytes()).await.is_err()
                || output.write_all(&body).await.is_err()
                || output.flush().await.is_err()
            {
                break;
            }
        }
    });
    (tx, task)
}

/// A response body with each marked code action tagged (or only unmarked).
fn retag(body: Vec<u8>, supported: bool) -> Vec<u8> {
    if !body
        .windows(LLM_MARKER.len())
        .any(|w| w == LLM_MARKER.as_bytes())
    {
        return body;
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let Some(result) = v.get_mut("result") else {
        return body;
    };
    let mut tag = |action: &mut Value| {
        let Some(obj) = action.as_object_mut() else {
            return;
        };
        let marked = obj
            .get_mut("data")
            .and_then(Value::as_object_mut)
            .and_then(|d| d.remove(LLM_MARKER))
            .is_some();
        if !marked {
            return;
        }
        if obj
            .get("data")
            .and_then(Value::as_object)
            .is_some_and(serde_json::Map::is_empty)
        {
            obj.remove("data");
        }
        if supported {
            obj.insert("tags".to_owned(), json!([LLM_GENERATED]));
        }
    };
    match result {
        Value::Array(items) => items.iter_mut().for_each(&mut tag),
        other => tag(other),
    }
    serde_json::to_vec(&v).unwrap_or(body)
}

/// The internal method a malformed frame is turned into.
pub const MALFORMED_METHOD: &str = "refine/malformedMessage";

/// Frames larger than this are discarded (and reported) rather than buffered.
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// Returns a reader that yields `input`'s frames with malformed ones replaced.
pub fn guard<R: AsyncRead + Unpin + Send + 'static>(input: R) -> tokio::io::DuplexStream {
    guard_noting(input, Tags::default())
}

/// [`guard`], noting the client's tag support from its `initialize`.
pub fn guard_noting<R: AsyncRead + Unpin + Send + 'static>(
    input: R,
    tags: Tags,
) -> tokio::io::DuplexStream {
    let (mut tx, rx) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut reader = BufReader::new(input);
        while let Some(body) = next_frame(&mut reader).await {
            tags.note_initialize(&body);
            let frame = format!("Content-Length: {}\r\n\r\n", body.len());
            if tx.write_all(frame.as_bytes()).await.is_err() || tx.write_all(&body).await.is_err() {
                break;
            }
        }
        let _ = tx.shutdown().await;
    });
    rx
}

/// Reads one frame and returns its (possibly replaced) body; `None` at the end of input.
async fn next_frame<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Option<Vec<u8>> {
    let mut length: Option<Result<usize, String>> = None;
    let mut saw_header = false;
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line).await.ok()?;
        if n == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&line);
        let mut text = text.trim_end_matches(['\r', '\n']);
        // A client that counted characters instead of bytes leaves the end of its last body in
        // front of the next header: resynchronise at the `Content-Length` header.
        if let Some(at) = text.to_ascii_lowercase().find("content-length:")
            && at > 0
        {
            tracing::warn!(
                "{at} stray byte(s) before a header (a Content-Length counted in characters?)"
            );
            text = &text[at..];
        }
        if text.is_empty() {
            if saw_header {
                break;
            }
            continue;
        }
        saw_header = true;
        if let Some((name, value)) = text.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length `{}`", value.trim())),
            );
        }
    }
    let len = match length {
        Some(Ok(len)) => len,
        Some(Err(why)) => return Some(malformed(-32700, &why)),
        None => return Some(malformed(-32700, "a header block without Content-Length")),
    };
    if len > MAX_FRAME {
        let mut rest = reader.take(len as u64);
        let _ = tokio::io::copy(&mut rest, &mut tokio::io::sink()).await;
        return Some(malformed(-32600, "a message larger than 256 MiB"));
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await.ok()?;
    if serde_json::from_slice::<Value>(&body).is_err() {
        // Too short by the bytes a character count misses: the rest of the body is what
        // stands before the next header (or all that is read in, when the next frame has not
        // come yet).
        // (Only what is already read in: waiting for more would hold back the error reply to
        // a body that is simply not JSON.)
        {
            let buffered = reader.buffer();
            let upto = find_header(buffered).unwrap_or(buffered.len());
            if upto > 0 && upto <= MAX_SHORTFALL {
                let mut longer = body.clone();
                longer.extend_from_slice(&buffered[..upto]);
                if serde_json::from_slice::<Value>(&longer).is_ok() {
                    reader.consume(upto);
                    return Some(check(longer));
                }
            }
        }
    }
    Some(check(body))
}

/// A body is repaired by at most this many bytes (one per multi-byte character counted).
const MAX_SHORTFALL: usize = 4096;

/// Where the next `Content-Length` header starts in `bytes`.
fn find_header(bytes: &[u8]) -> Option<usize> {
    const NAME: &[u8] = b"content-length:";
    bytes
        .windows(NAME.len())
        .position(|w| w.eq_ignore_ascii_case(NAME))
}

/// Keeps a well-formed body as it is, or replaces it.
fn check(body: Vec<u8>) -> Vec<u8> {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return malformed(-32700, &format!("the message is not JSON ({e})")),
    };
    match problem(&value) {
        None => body,
        Some(why) => malformed(-32600, why),
    }
}

/// What makes a JSON value not a JSON-RPC 2.0 message, if anything.
fn problem(v: &Value) -> Option<&'static str> {
    let Some(obj) = v.as_object() else {
        return Some("the message is not a JSON object");
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some("the message lacks \"jsonrpc\": \"2.0\"");
    }
    let id_ok = obj
        .get("id")
        .is_none_or(|id| id.is_null() || id.is_string() || id.as_i64().is_some());
    if !id_ok {
        return Some("the message's id is neither a number nor a string");
    }
    match obj.get("method") {
        Some(Value::String(_)) => {
            let params_ok = obj
                .get("params")
                .is_none_or(|p| p.is_object() || p.is_array() || p.is_null());
            (!params_ok).then_some("the message's params are neither an object nor an array")
        }
        Some(_) => Some("the message's method is not a string"),
        None if obj.contains_key("id")
            && (obj.contains_key("result") || obj.contains_key("error")) =>
        {
            None
        }
        None => Some("the message is neither a request, a notification nor a response"),
    }
}

/// The stand-in request for a malformed frame.
fn malformed(code: i64, reason: &str) -> Vec<u8> {
    json!({
        "jsonrpc": "2.0",
        "id": null,
        "method": MALFORMED_METHOD,
        "params": {"code": code, "reason": reason},
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn frame(body: &str) -> Vec<u8> {
        format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Random bytes, and good frames cut short or spliced with garbage: reading ends, never
        /// panics, and everything it yields is a JSON-RPC message (the stand-in for a malformed
        /// frame is one too).
        #[test]
        fn any_input_yields_json_rpc_messages_and_ends(
            noise in proptest::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..200,
            splice in 0usize..3,
        ) {
            let good = frame(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"t":"é"}}"#);
            let mut input = Vec::new();
            match splice {
                0 => input.extend_from_slice(&noise),
                1 => {
                    input.extend_from_slice(&good[..cut.min(good.len())]);
                    input.extend_from_slice(&noise);
                }
                _ => {
                    input.extend_from_slice(&noise);
                    input.extend_from_slice(&good);
                    input.extend_from_slice(&good[..cut.min(good.len())]);
                }
            }
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = rt.block_on(async {
                let mut reader = BufReader::new(&input[..]);
                let mut out = Vec::new();
                while let Some(body) = next_frame(&mut reader).await {
                    out.push(body);
                    if out.len() > 1000 {
                        break;
                    }
                }
                out
            });
            prop_assert!(got.len() <= 1000);
            for body in got {
                let v: Value = serde_json::from_slice(&body).expect("JSON");
                prop_assert!(problem(&v).is_none(), "{}", v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &'static [u8]) -> Vec<Value> {
        let mut reader = BufReader::new(input);
        let mut out = Vec::new();
        while let Some(body) = next_frame(&mut reader).await {
            out.push(serde_json::from_slice(&body).unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_length_counted_in_characters_loses_nothing() {
        // `é` is two bytes; the client counted one.
        let body = "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":{\"t\":\"é\"}}";
        let chars = body.chars().count();
        let next = "{\"jsonrpc\":\"2.0\",\"method\":\"initialized\"}";
        let input = format!(
            "Content-Length: {chars}\r\n\r\n{body}Content-Length: {}\r\n\r\n{next}",
            next.len()
        );
        let input: &'static [u8] = Box::leak(input.into_bytes().into_boxed_slice());
        let got = frames(input).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0]["params"]["t"], "é");
        assert_eq!(got[1]["method"], "initialized");
    }

    #[tokio::test]
    async fn good_frames_pass_unchanged() {
        let got =
            frames(b"Content-Length: 40\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"initialized\"}")
                .await;
        assert_eq!(got, [json!({"jsonrpc": "2.0", "method": "initialized"})]);
    }

    #[tokio::test]
    async fn malformed_frames_become_error_requests_and_reading_goes_on() {
        let got = frames(
            b"Content-Length: 9\r\n\r\n{garbage}Content-Length: x\r\n\r\nContent-Length: 5\r\n\r\n[1,2]Content-Length: 40\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"initialized\"}",
        )
        .await;
        assert_eq!(got.len(), 4);
        assert_eq!(got[0]["method"], MALFORMED_METHOD);
        assert_eq!(got[0]["params"]["code"], -32700);
        assert_eq!(got[1]["params"]["code"], -32700);
        assert_eq!(got[2]["params"]["code"], -32600);
        assert_eq!(got[3]["method"], "initialized");
    }

    #[test]
    fn messages_are_checked_for_shape() {
        assert!(problem(&json!({"jsonrpc": "2.0", "id": 1, "result": null})).is_none());
        assert!(
            problem(&json!({"jsonrpc": "2.0", "id": 1, "method": "x", "params": {}})).is_none()
        );
        assert!(problem(&json!({"jsonrpc": "1.0", "method": "x"})).is_some());
        assert!(problem(&json!({"jsonrpc": "2.0", "id": {}, "method": "x"})).is_some());
        assert!(problem(&json!({"jsonrpc": "2.0", "method": 3})).is_some());
        assert!(problem(&json!({"jsonrpc": "2.0", "method": "x", "params": 3})).is_some());
        assert!(problem(&json!({"jsonrpc": "2.0"})).is_some());
    }
}

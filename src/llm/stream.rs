//! Reading streamed replies: bytes into whole lines (so a UTF-8 character split across network
//! chunks is never cut), lines into server-sent events, events into text and usage.

/// Splits a byte stream into lines, whatever the chunk boundaries.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
}

impl LineBuffer {
    /// Adds a chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line, without its `\n` / `\r\n`.
    pub fn next_line(&mut self) -> Option<Vec<u8>> {
        let at = self.buf.iter().position(|&b| b == b'\n')?;
        let mut line: Vec<u8> = self.buf.drain(..=at).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(line)
    }

    /// What is left without a final newline (a last line some servers leave unterminated).
    pub fn rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// One server-sent event: its `event:` name and its `data:` lines joined.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` field, when sent.
    pub event: Option<String>,
    /// `data:` lines joined by newlines.
    pub data: String,
}

impl SseEvent {
    /// Feeds one line; returns the event a blank line completes.
    pub fn feed(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() && self.event.is_none() {
                return None;
            }
            return Some(std::mem::take(self));
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            "event" => self.event = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

/// What a streamed reply has delivered so far.
#[derive(Debug, Default)]
pub struct Accumulator {
    /// The reply text.
    pub text: String,
    /// Prompt tokens, when the provider said.
    pub input_tokens: Option<u64>,
    /// Completion tokens, when the provider said.
    pub output_tokens: Option<u64>,
    /// The provider said the reply is complete.
    pub done: bool,
    /// At least one event was understood.
    pub saw_event: bool,
    /// The provider said the reply stopped at the token limit.
    pub truncated: bool,
    /// Prompt tokens the server took from its prompt cache, when it said.
    pub cached_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_survive_any_split_including_inside_a_character() {
        let text = "data: {\"x\":\"é😀\"}\r\n\r\ndata: [DONE]\n\n".as_bytes();
        for cut in 1..text.len() {
            let mut lb = LineBuffer::default();
            let mut ev = SseEvent::default();
            let mut got = Vec::new();
            for part in [&text[..cut], &text[cut..]] {
                lb.push(part);
                while let Some(l) = lb.next_line() {
                    if let Some(e) = ev.feed(&String::from_utf8(l).unwrap()) {
                        got.push(e.data);
                    }
                }
            }
            assert_eq!(got, ["{\"x\":\"é😀\"}", "[DONE]"], "cut at {cut}");
        }
    }

    #[test]
    fn events_keep_their_names_and_ignore_comments() {
        let mut ev = SseEvent::default();
        assert_eq!(ev.feed(": keep-alive"), None);
        assert_eq!(ev.feed("event: message_stop"), None);
        assert_eq!(ev.feed("data: {}"), None);
        let e = ev.feed("").unwrap();
        assert_eq!(e.event.as_deref(), Some("message_stop"));
        assert_eq!(e.data, "{}");
    }
}

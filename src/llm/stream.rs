//! Reading streamed replies: bytes into whole lines (so a UTF-8 character split across network
//! chunks is never cut), lines into server-sent events (or NDJSON objects), events into text
//! and usage ([`ReplyReader`]).

/// The longest line read (one SSE line, one NDJSON object): a server that sends one endless
/// line is an error once it passes this, not a buffer that grows until memory runs out.
pub const MAX_LINE: usize = 1 << 20;

/// The longest reply text (or one event's data) kept: far beyond any answer refine-ls asks
/// for, so only a broken or hostile server reaches it.
pub const MAX_REPLY: usize = 4 << 20;

/// A line longer than [`MAX_LINE`] came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a line longer than {} MiB", MAX_LINE >> 20)]
pub struct LineTooLong;

/// Splits a byte stream into lines, whatever the chunk boundaries.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no newline (not searched again: an endless line in
    /// small chunks costs linear time, not quadratic).
    scanned: usize,
}

impl LineBuffer {
    /// Adds a chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line, without its `\n` / `\r\n`; an error once a line (complete or
    /// not) is longer than [`MAX_LINE`].
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, LineTooLong> {
        let from = self.scanned.min(self.buf.len());
        let Some(found) = self
            .buf
            .get(from..)
            .and_then(|b| b.iter().position(|&c| c == b'\n'))
        else {
            self.scanned = self.buf.len();
            // (One byte more may be the `\r` of a line at the bound.)
            if self.buf.len() > MAX_LINE.saturating_add(1) {
                return Err(LineTooLong);
            }
            return Ok(None);
        };
        let at = from.saturating_add(found);
        self.scanned = 0;
        let mut line: Vec<u8> = self.buf.drain(..=at).collect();
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        Ok(Some(line))
    }

    /// What is left without a final newline (a last line some servers leave unterminated).
    pub fn rest(&mut self) -> Vec<u8> {
        self.scanned = 0;
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

/// How much of a body is kept whole until an event is understood.
const MAX_RAW: usize = 8 << 20;

/// A streamed reply's bytes read into events, and the events' text and usage gathered in
/// [`Self::acc`]: server-sent events, or one JSON object a line (Ollama's NDJSON). Until an
/// event is understood the raw body is kept as well: a server that ignored `stream` sends one
/// plain JSON reply, and garbage is quoted in the error.
#[derive(Debug)]
pub struct ReplyReader {
    /// What the events read so far delivered.
    pub acc: Accumulator,
    lines: LineBuffer,
    /// Server-sent events, else one JSON object a line.
    sse: bool,
    /// The server-sent event being read.
    event: SseEvent,
    /// The body as it came, until an event is understood.
    raw: Vec<u8>,
}

impl ReplyReader {
    /// A reader of server-sent events (`sse`), else of NDJSON.
    pub fn new(sse: bool) -> Self {
        Self {
            acc: Accumulator::default(),
            lines: LineBuffer::default(),
            sse,
            event: SseEvent::default(),
            raw: Vec::new(),
        }
    }

    /// Adds a chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        if !self.acc.saw_event && self.raw.len() < MAX_RAW {
            self.raw.extend_from_slice(chunk);
        }
        self.lines.push(chunk);
    }

    /// The next event to read (`None`: more bytes are needed); `Err` says what was too long, a
    /// line or an event. Before an event is understood, server-sent events that are not JSON
    /// are skipped: some servers send other SSE first, and the raw body decides at the end.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, String> {
        loop {
            let Some(line) = self.lines.next_line().map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            let line = String::from_utf8_lossy(&line).into_owned();
            let payload = if self.sse {
                let ev = self.event.feed(&line);
                // `data:` lines with no blank line between: one event that never ends.
                if self.event.data.len() > MAX_REPLY {
                    return Err(format!("an event longer than {} MiB", MAX_REPLY >> 20));
                }
                match ev {
                    Some(ev) => ev,
                    None => continue,
                }
            } else {
                if line.trim().is_empty() {
                    continue;
                }
                SseEvent {
                    event: None,
                    data: line,
                }
            };
            if self.sse
                && !self.acc.saw_event
                && !payload.data.trim_start().starts_with(['{', '['])
                && payload.data.trim() != "[DONE]"
            {
                continue;
            }
            return Ok(Some(payload));
        }
    }

    /// A last line the server did not terminate, as an event, when the reply is not complete
    /// and its events were understood so far.
    pub fn tail(&mut self) -> Option<SseEvent> {
        let tail = self.lines.rest();
        if tail.is_empty() || self.acc.done || !self.acc.saw_event {
            return None;
        }
        let line = String::from_utf8_lossy(&tail).into_owned();
        if self.sse {
            self.event.feed(&line);
            self.event.feed("")
        } else {
            Some(SseEvent {
                event: None,
                data: line,
            })
        }
    }

    /// The body whole, trimmed, as one event: a plain (non-streamed) reply, or garbage to be
    /// judged whole (`None`: the body was empty).
    pub fn whole(&self) -> Option<SseEvent> {
        let data = String::from_utf8_lossy(&self.raw).trim().to_owned();
        (!data.is_empty()).then_some(SseEvent { event: None, data })
    }
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
                while let Some(l) = lb.next_line().unwrap() {
                    if let Some(e) = ev.feed(&String::from_utf8(l).unwrap()) {
                        got.push(e.data);
                    }
                }
            }
            assert_eq!(got, ["{\"x\":\"é😀\"}", "[DONE]"], "cut at {cut}");
        }
    }

    #[test]
    fn an_endless_line_is_an_error_and_lines_up_to_the_bound_are_read() {
        let mut lb = LineBuffer::default();
        let chunk = vec![b'x'; 64 << 10];
        let mut pushed = 0;
        let err = loop {
            lb.push(&chunk);
            pushed += chunk.len();
            assert!(
                pushed <= MAX_LINE + 1 + chunk.len(),
                "no error after {pushed} bytes"
            );
            match lb.next_line() {
                Ok(None) => {}
                Ok(Some(_)) => panic!("no newline was sent"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.to_string(), "a line longer than 1 MiB");

        // A complete line too long, in one chunk.
        let mut lb = LineBuffer::default();
        let mut long = vec![b'y'; MAX_LINE + 1];
        long.push(b'\n');
        lb.push(&long);
        assert_eq!(lb.next_line(), Err(LineTooLong));

        // At the bound, split anywhere: read.
        let mut lb = LineBuffer::default();
        let mut line = vec![b'z'; MAX_LINE];
        line.extend_from_slice(b"\r\nnext\n");
        for part in line.chunks(100_003) {
            lb.push(part);
        }
        assert_eq!(lb.next_line().unwrap().map(|l| l.len()), Some(MAX_LINE));
        assert_eq!(lb.next_line().unwrap().as_deref(), Some(&b"next"[..]));
        assert_eq!(lb.next_line(), Ok(None));
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

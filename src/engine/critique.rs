//! The critique wire format: its JSON schema, and a tolerant parser for what models actually
//! send (JSON in code fences, JSON surrounded by prose, a bare array, confidences out of 100).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How serious a finding is, most serious first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Certainly wrong.
    Error,
    /// Likely a problem.
    Warning,
    /// Worth knowing.
    Info,
    /// A small suggestion.
    Hint,
}

impl Severity {
    /// Weight in a version's score: lower scores are better versions.
    pub fn weight(self) -> u32 {
        match self {
            Severity::Error => 8,
            Severity::Warning => 4,
            Severity::Info => 2,
            Severity::Hint => 1,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Hint => "hint",
        }
    }

    /// Reads a severity name (synonyms such as `high` and `low` included).
    pub fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" | "critical" | "high" => Severity::Error,
            "info" | "information" | "low" => Severity::Info,
            "hint" | "note" | "style" => Severity::Hint,
            _ => Severity::Warning,
        }
    }
}

/// One finding as the model stated it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawFinding {
    /// First file line (1-based) the model claims.
    pub start_line: u32,
    /// Last file line (1-based) the model claims.
    pub end_line: u32,
    /// The exact code the finding is about.
    pub quote: String,
    /// How serious.
    pub severity: Severity,
    /// The principle id cited.
    pub principle: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub suggestion: Option<String>,
    /// 0–1.
    pub confidence: f64,
}

/// Why a critique reply could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CritiqueError {
    /// Nothing that looks like the critique JSON.
    #[error("the critique reply holds no JSON object with `findings`: {0}")]
    NoJson(String),
}

/// The JSON schema sent as `response_format` (name `critique`).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "findings": {
                "type": "array",
                "items": {
                    "type": "object",
                    // What is wrong first, then the code that shows it, then its lines: a
                    // model that has said the problem quotes and places it better (the order
                    // is the order a grammar-constrained model writes the fields in).
                    "properties": {
                        "message": {"type": "string"},
                        "quote": {"type": "string"},
                        "start_line": {"type": "integer"},
                        "end_line": {"type": "integer"},
                        "severity": {"type": "string", "enum": ["error", "warning", "info", "hint"]},
                        "principle": {"type": "string"},
                        "suggestion": {"type": "string"},
                        "confidence": {"type": "number"}
                    },
                    "required": ["message", "quote", "start_line", "end_line", "severity", "principle", "confidence"]
                }
            }
        },
        "required": ["findings"]
    })
}

/// The schema with `quote` limited to the given lines of code (each trimmed, as the model
/// saw them): a model sampled under it can only quote code that is there, never its own
/// message. For small models, whose quotes are otherwise often invented.
pub fn schema_quoting(lines: &[String]) -> Value {
    let mut s = schema();
    if let Some(q) = s.pointer_mut("/properties/findings/items/properties/quote") {
        *q = json!({"type": "string", "enum": lines});
    }
    s
}

/// The distinct non-blank lines of numbered code as it was sent (`   12 | code`), without their
/// numbers and trimmed (what [`schema_quoting`] allows), keeping the zero-based lines `keep`
/// accepts; `None` when none is left or more than `max` (the grammar would be too large to be
/// worth it).
pub fn quotable_lines(
    numbered: &str,
    keep: impl Fn(usize) -> bool,
    max: usize,
) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (i, l) in numbered.lines().enumerate() {
        let t = l.split_once(" | ").map_or(l, |(_, code)| code).trim();
        if keep(i) && !t.is_empty() && !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    (!out.is_empty() && out.len() <= max).then_some(out)
}

/// Parses a critique reply. Findings that lack a message or lines are skipped (returned as the
/// count of malformed items); a reply with no critique JSON at all is an error.
pub fn parse(reply: &str) -> Result<(Vec<RawFinding>, usize), CritiqueError> {
    let value = find_json(reply).ok_or_else(|| CritiqueError::NoJson(snippet(reply)))?;
    let items = match &value {
        Value::Object(o) => match o.get("findings") {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::Null) | None if o.is_empty() => Vec::new(),
            _ => return Err(CritiqueError::NoJson(snippet(reply))),
        },
        Value::Array(a) => a.clone(),
        _ => return Err(CritiqueError::NoJson(snippet(reply))),
    };
    let mut malformed = 0;
    let mut out = Vec::new();
    for item in &items {
        match finding_from(item) {
            Some(f) => out.push(f),
            None => malformed += 1,
        }
    }
    Ok((out, malformed))
}

/// The repetition guard: small models, once they repeat a finding, repeat it until the token
/// limit. A finding identical to an earlier one (same lines, quote and message) ends the list;
/// returns what is kept and how many were cut.
pub fn cut_repetition(mut findings: Vec<RawFinding>) -> (Vec<RawFinding>, usize) {
    let cut =
        (1..findings.len()).find(|&i| findings[..i].iter().any(|e| is_repeat(e, &findings[i])));
    match cut {
        Some(i) => {
            let n = findings.len() - i;
            findings.truncate(i);
            (findings, n)
        }
        None => (findings, 0),
    }
}

/// Whether `b` says again what `a` said: the same lines, quote and message.
pub fn is_repeat(a: &RawFinding, b: &RawFinding) -> bool {
    a.start_line == b.start_line
        && a.end_line == b.end_line
        && a.quote.trim() == b.quote.trim()
        && a.message.trim() == b.message.trim()
}

fn finding_from(v: &Value) -> Option<RawFinding> {
    let num = |k: &str| -> Option<u32> {
        match v.get(k)? {
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let message = text("message").filter(|m| !m.trim().is_empty())?;
    let start = num("start_line").or_else(|| num("line"))?;
    let end = num("end_line").unwrap_or(start);
    let (start_line, end_line) = if end < start {
        (end, start)
    } else {
        (start, end)
    };
    let mut confidence = match v.get("confidence") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.5),
        Some(Value::String(s)) => s.trim().trim_end_matches('%').parse().unwrap_or(0.5),
        _ => 0.5,
    };
    if confidence > 1.0 && confidence <= 100.0 {
        confidence /= 100.0;
    }
    Some(RawFinding {
        start_line,
        end_line,
        quote: text("quote").unwrap_or_default(),
        severity: Severity::parse(&text("severity").unwrap_or_default()),
        principle: text("principle")
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
        message,
        suggestion: text("suggestion").filter(|s| !s.trim().is_empty()),
        confidence: confidence.clamp(0.0, 1.0),
    })
}

/// Parses a reflection reply: `(index, validity, importance)` per scored finding.
pub fn parse_scores(reply: &str) -> Result<Vec<(usize, u32, u32)>, CritiqueError> {
    let trimmed = reply.trim();
    let value = serde_json::from_str::<Value>(trimmed)
        .ok()
        .or_else(|| {
            fenced_blocks(trimmed)
                .into_iter()
                .find_map(|b| serde_json::from_str(b.trim()).ok())
        })
        .or_else(|| {
            let start = trimmed.find('{')?;
            serde_json::Deserializer::from_str(&trimmed[start..])
                .into_iter::<Value>()
                .next()?
                .ok()
        })
        .ok_or_else(|| CritiqueError::NoJson(snippet(reply)))?;
    let items = value
        .get("scores")
        .and_then(Value::as_array)
        .ok_or_else(|| CritiqueError::NoJson(snippet(reply)))?;
    // Scores are 0–10; an index is any non-negative whole number (findings 11 and later are
    // scored too).
    let score = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_f64)
            .filter(|n| n.is_finite())
            .map(|n| n.clamp(0.0, 10.0) as u32)
    };
    let index = |v: &Value| {
        let i = v.get("index")?;
        i.as_u64()
            .or_else(|| {
                i.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .and_then(|n| usize::try_from(n).ok())
    };
    Ok(items
        .iter()
        .filter_map(|v| Some((index(v)?, score(v, "validity")?, score(v, "importance")?)))
        .collect())
}

/// Finds complete finding objects in a critique while it streams in, so each can be shown
/// before the reply ends. It follows JSON structure (strings, escapes, nesting) and reports
/// every object that closes directly inside the `findings` array (or a top-level array).
#[derive(Debug, Default)]
pub struct FindingScanner {
    text: String,
    /// Bytes of `text` already scanned.
    pos: usize,
    in_string: bool,
    escaped: bool,
    /// Open containers: `true` for an array that holds findings.
    stack: Vec<(u8, bool)>,
    /// Start of the last string, and the last string (a key candidate).
    string_start: usize,
    last_string: String,
    /// The key an array or object opening now would belong to.
    key: Option<String>,
    /// Start of the finding object being read.
    object_start: Option<usize>,
    emitted: usize,
}

impl FindingScanner {
    /// Adds streamed text; returns the findings it completed.
    pub fn push(&mut self, delta: &str) -> Vec<RawFinding> {
        self.text.push_str(delta);
        let mut out = Vec::new();
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() {
            let b = bytes[self.pos];
            let i = self.pos;
            self.pos += 1;
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    self.last_string = self.text[self.string_start..i].to_owned();
                }
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    self.string_start = i + 1;
                }
                b':' => self.key = Some(std::mem::take(&mut self.last_string)),
                b',' => self.key = None,
                b'[' => {
                    let findings = match self.stack.last() {
                        None => true,
                        Some((b'{', _)) => {
                            self.key.as_deref() == Some("findings") && self.stack.len() == 1
                        }
                        _ => false,
                    };
                    self.stack.push((b'[', findings));
                    self.key = None;
                }
                b'{' => {
                    if let Some((b'[', true)) = self.stack.last() {
                        self.object_start = Some(i);
                    }
                    self.stack.push((b'{', false));
                    self.key = None;
                }
                b'}' | b']' => {
                    self.stack.pop();
                    if b == b'}'
                        && let (Some(start), Some((b'[', true))) =
                            (self.object_start, self.stack.last())
                    {
                        self.object_start = None;
                        if let Ok(v) = serde_json::from_str::<Value>(&self.text[start..=i])
                            && let Some(f) = finding_from(&v)
                        {
                            out.push(f);
                        }
                    }
                }
                _ => {}
            }
        }
        self.emitted += out.len();
        out
    }

    /// Findings reported so far.
    pub fn count(&self) -> usize {
        self.emitted
    }
}

/// Finds the critique JSON in a reply: the whole text, a fenced block, or the first balanced
/// `{…}` / `[…]` that parses.
pub(crate) fn find_json(reply: &str) -> Option<Value> {
    let trimmed = reply.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        return Some(v);
    }
    for block in fenced_blocks(trimmed) {
        if let Ok(v) = serde_json::from_str::<Value>(block.trim()) {
            return Some(v);
        }
    }
    for (i, c) in trimmed.char_indices() {
        if c != '{' && c != '[' {
            continue;
        }
        let mut stream = serde_json::Deserializer::from_str(&trimmed[i..]).into_iter::<Value>();
        if let Some(Ok(v)) = stream.next() {
            let fits = match &v {
                Value::Object(o) => o.contains_key("findings"),
                Value::Array(a) => a.iter().all(Value::is_object),
                _ => false,
            };
            if fits {
                return Some(v);
            }
        }
    }
    None
}

/// The bodies of ``` fenced blocks, in order.
pub(crate) fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let Some(nl) = after.find('\n') else { break };
        let body = &after[nl + 1..];
        let Some(close) = body.find("```") else { break };
        out.push(&body[..close]);
        rest = &body[close + 3..];
    }
    out
}

fn snippet(text: &str) -> String {
    crate::text::excerpt(text, 80).map_or_else(|| "(empty reply)".to_owned(), |t| format!("`{t}`"))
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const REPLY: &str = r#"{"findings":[{"message":"skips xs[0] é","quote":"1..xs.len()","start_line":3,"end_line":3,"severity":"error","principle":"correctness","confidence":0.9},{"message":"second","quote":"s","start_line":4,"end_line":4,"severity":"hint","principle":"readability","confidence":0.6}]}"#;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Any text and any prefix of a good reply, fed in any pieces: nothing panics, a cut
        /// reply's findings are the complete ones, in order.
        #[test]
        fn the_parser_and_the_scanner_survive_anything(
            garbage in ".{0,200}",
            cut in 0usize..400,
            piece in 1usize..30,
        ) {
            let _ = parse(&garbage);
            let _ = parse_scores(&garbage);
            let full = parse(REPLY).unwrap().0;
            let cut_at = REPLY.char_indices().map(|(i, _)| i).chain([REPLY.len()])
                .take_while(|i| *i <= cut).last().unwrap_or(0);
            let prefix = &REPLY[..cut_at];
            let mut scanner = FindingScanner::default();
            let mut seen = Vec::new();
            let chars: Vec<char> = prefix.chars().collect();
            for chunk in chars.chunks(piece) {
                seen.extend(scanner.push(&chunk.iter().collect::<String>()));
            }
            prop_assert!(seen.len() <= full.len());
            prop_assert_eq!(&full[..seen.len()], &seen[..]);
            let _ = parse(prefix);
            let mut noisy = FindingScanner::default();
            let _ = noisy.push(&garbage);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"{"findings":[{"start_line":3,"end_line":3,"quote":"i <= n","severity":"error","principle":"correctness","message":"off by one","suggestion":"use <","confidence":0.9}]}"#;

    #[test]
    fn plain_json() {
        let (f, bad) = parse(ONE).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(f[0].quote, "i <= n");
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[0].suggestion.as_deref(), Some("use <"));
    }

    #[test]
    fn json_in_fences_and_prose() {
        let reply = format!("Here is my review:\n```json\n{ONE}\n```\nHope it helps.");
        assert_eq!(parse(&reply).unwrap().0.len(), 1);
        let reply = format!("Sure! {ONE} That's all.");
        assert_eq!(parse(&reply).unwrap().0.len(), 1);
    }

    #[test]
    fn no_issues_is_an_empty_list() {
        assert!(parse(r#"{"findings": []}"#).unwrap().0.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("I think the code is fine, mostly.").is_err());
        assert!(parse("").is_err());
        assert!(parse("{\"findings\": 3}").is_err());
        assert!(parse("```json\n{\"findings\": [\n```").is_err());
    }

    #[test]
    fn the_scanner_reports_each_finding_as_soon_as_it_closes() {
        let reply = format!(
            "Here you go: ```json\n{{\"findings\": [{a}, {b}]}}\n```",
            a = r#"{"start_line":1,"quote":"a \"}{\" b","severity":"warning","principle":"x","message":"m1","confidence":0.9}"#,
            b = r#"{"start_line":2,"quote":"c","severity":"info","principle":"y","message":"m2","confidence":0.8,"extra":{"nested":[1,{"k":2}]}}"#
        );
        // Fed one character at a time, split inside escapes and strings.
        let mut s = FindingScanner::default();
        let mut got = Vec::new();
        let mut first_at = None;
        for (i, c) in reply.char_indices() {
            let found = s.push(&c.to_string());
            if !found.is_empty() && first_at.is_none() {
                first_at = Some(i);
            }
            got.extend(found);
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].quote, "a \"}{\" b");
        assert_eq!(got[1].message, "m2");
        assert!(
            first_at.unwrap() < reply.find("m2").unwrap(),
            "the first finding came before the second was sent"
        );
        // The same findings as the whole-reply parser.
        assert_eq!(parse(&reply).unwrap().0, got);
    }

    #[test]
    fn the_scanner_ignores_objects_outside_findings() {
        let mut s = FindingScanner::default();
        let got = s.push(r#"{"meta": {"message": "no", "start_line": 1}, "findings": []}"#);
        assert!(got.is_empty());
        let mut s = FindingScanner::default();
        let got = s.push(r#"[{"start_line": 3, "message": "bare array"}]"#);
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn reflection_scores_reach_every_finding() {
        let scores = parse_scores(
            r#"{"scores":[{"index":12,"validity":3,"importance":40},{"index":-1,"validity":9,"importance":9},{"index":2.5,"validity":9,"importance":9},{"index":3.0,"validity":-4,"importance":7}]}"#,
        )
        .unwrap();
        assert_eq!(scores, vec![(12, 3, 10), (3, 0, 7)]);
    }

    #[test]
    fn a_repeated_finding_ends_the_list() {
        let f = |line: u32, msg: &str| RawFinding {
            start_line: line,
            end_line: line,
            quote: "x".into(),
            severity: Severity::Warning,
            principle: "correctness".into(),
            message: msg.into(),
            suggestion: None,
            confidence: 0.9,
        };
        let (kept, cut) =
            cut_repetition(vec![f(1, "a"), f(2, "b"), f(1, "a"), f(3, "c"), f(1, "a")]);
        assert_eq!(kept, vec![f(1, "a"), f(2, "b")]);
        assert_eq!(cut, 3);
        let (kept, cut) = cut_repetition(vec![f(1, "a"), f(1, "b")]);
        assert_eq!((kept.len(), cut), (2, 0));
        assert_eq!(cut_repetition(Vec::new()), (Vec::new(), 0));
    }

    #[test]
    fn sloppy_fields_are_tolerated_and_broken_items_counted() {
        let reply = r#"{"findings":[
            {"line":"7","quote":"x","severity":"HIGH","principle":"Security","message":"m","confidence":85},
            {"start_line":2,"quote":"y"}
        ]}"#;
        let (f, bad) = parse(reply).unwrap();
        assert_eq!(bad, 1);
        assert_eq!(f[0].start_line, 7);
        assert_eq!(f[0].end_line, 7);
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[0].principle, "security");
        assert!((f[0].confidence - 0.85).abs() < 1e-9);
    }
}

//! A JSON prefix automaton for constrained decoding: it accepts a text character by character
//! while the text can still become valid JSON, and says how to close whatever is open. The
//! sampler only takes tokens it accepts, so the model's output is always a valid JSON prefix,
//! and is closed into valid JSON if the token budget runs out.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Obj {
    KeyOrEnd,
    Key,
    Colon,
    Value,
    CommaOrEnd,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Arr {
    ValueOrEnd,
    Value,
    CommaOrEnd,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Frame {
    Obj(Obj),
    Arr(Arr),
}

#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    None,
    /// In a string; `key` when it is an object key; `escape`: 0 none, 1 after `\`, 2..=5 the
    /// hex digits of `\u`.
    Str {
        key: bool,
        escape: u8,
    },
    /// In a number: what the last character was.
    Num(NumAt),
    /// In `true`/`false`/`null`: what is left to type.
    Lit(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum NumAt {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpInt,
}

impl NumAt {
    fn complete(self) -> bool {
        matches!(self, Self::Zero | Self::Int | Self::Frac | Self::ExpInt)
    }
}

/// The type of one property of the array's items.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// `"integer"`.
    Integer,
    /// `"number"`.
    Number,
    /// `"string"`.
    Str,
    /// A string from a list.
    Enum(Vec<String>),
    /// `"boolean"`.
    Boolean,
}

/// The shape of the objects in the answer's one array (`{"findings": [ {…}, … ]}`): their
/// keys, each key's type, the required ones. Taken from the request's JSON schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemShape {
    props: Vec<(String, Ty)>,
    required: Vec<String>,
}

impl ItemShape {
    /// From a schema `{"type":"object","properties":{K:{"type":"array","items":{…}}},…}`
    /// whose items are flat objects; `None` for anything else.
    pub fn from_schema(schema: &serde_json::Value) -> Option<Self> {
        let required = schema["required"].as_array()?;
        let [key] = required.as_slice() else {
            return None;
        };
        let items = &schema["properties"][key.as_str()?]["items"];
        let mut props = Vec::new();
        for (name, p) in items["properties"].as_object()? {
            let ty = match (p["type"].as_str()?, p["enum"].as_array()) {
                ("string", Some(e)) => Ty::Enum(
                    e.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                ),
                ("string", None) => Ty::Str,
                ("integer", _) => Ty::Integer,
                ("number", _) => Ty::Number,
                ("boolean", _) => Ty::Boolean,
                _ => return None,
            };
            props.push((name.clone(), ty));
        }
        let required = items["required"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Some(Self { props, required })
    }
}

/// Where the item-level checks are.
#[derive(Debug, Clone, PartialEq, Default)]
struct ItemState {
    /// Keys seen in the current item.
    seen: Vec<String>,
    /// The key being typed, or the enum string being typed.
    buf: String,
    /// The type of the value being typed.
    ty: Option<Ty>,
    /// Chars fed when the last complete item closed (or the array opened).
    keep: usize,
}

/// The automaton. `Clone` to try a token without committing to it.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPrefix {
    stack: Vec<Frame>,
    scalar: Scalar,
    started: bool,
    done: bool,
    /// Whitespace characters in a row (capped, so a model cannot pad forever).
    blanks: u8,
    /// Item checks, when the answer has a known shape.
    shape: Option<std::sync::Arc<ItemShape>>,
    item: ItemState,
    /// Characters fed so far.
    fed: usize,
}

impl Default for JsonPrefix {
    fn default() -> Self {
        Self {
            stack: Vec::new(),
            scalar: Scalar::None,
            started: false,
            done: false,
            blanks: 0,
            shape: None,
            item: ItemState::default(),
            fed: 0,
        }
    }
}

const MAX_BLANKS: u8 = 8;

impl JsonPrefix {
    /// An automaton that also holds the array's items to `shape`: known keys only, each once,
    /// values of their type (enums spelled out), every required key before an item closes.
    pub fn with_shape(shape: ItemShape) -> Self {
        Self {
            shape: Some(std::sync::Arc::new(shape)),
            ..Self::default()
        }
    }

    /// Chars of a shaped answer that hold only whole items (the rest is cut when the budget
    /// runs out mid-item), or `None` when that does not apply.
    pub fn whole_items_end(&self) -> Option<usize> {
        (self.shape.is_some() && self.stack.len() >= 2 && !self.done).then_some(self.item.keep)
    }

    /// Whether the text so far is a whole JSON value.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds a text; false (and the state is then meaningless) when it cannot continue JSON.
    pub fn feed(&mut self, text: &str) -> bool {
        text.chars().all(|c| self.push(c))
    }

    /// Feeds one character.
    pub fn push(&mut self, c: char) -> bool {
        self.fed += 1;
        if !self.shape_allows(c) {
            return false;
        }
        self.push_json(c)
    }

    /// The item-level checks, before the character is taken as JSON.
    fn shape_allows(&mut self, c: char) -> bool {
        let Some(shape) = self.shape.clone() else {
            return true;
        };
        match (&self.scalar, self.stack.len()) {
            // Typing a key of an item: it must stay the start of an unused known key.
            (
                Scalar::Str {
                    key: true,
                    escape: 0,
                },
                3,
            ) => {
                if c == '"' {
                    let Some((_, ty)) = shape
                        .props
                        .iter()
                        .find(|(k, _)| *k == self.item.buf && !self.item.seen.contains(k))
                    else {
                        return false;
                    };
                    self.item.ty = Some(ty.clone());
                    let key = std::mem::take(&mut self.item.buf);
                    self.item.seen.push(key);
                    return true;
                }
                if c == '\\' {
                    return false;
                }
                self.item.buf.push(c);
                let buf = &self.item.buf;
                shape
                    .props
                    .iter()
                    .any(|(k, _)| k.starts_with(buf.as_str()) && !self.item.seen.contains(k))
            }
            // Typing an enum value: it must stay the start of one of its words.
            (
                Scalar::Str {
                    key: false,
                    escape: 0,
                },
                3,
            ) => match &self.item.ty {
                Some(Ty::Enum(words)) => {
                    if c == '"' {
                        let ok = words.contains(&self.item.buf);
                        self.item.buf.clear();
                        return ok;
                    }
                    if c == '\\' {
                        return false;
                    }
                    self.item.buf.push(c);
                    words.iter().any(|w| w.starts_with(self.item.buf.as_str()))
                }
                _ => true,
            },
            (Scalar::Num(_), 3)
                if self.item.ty == Some(Ty::Integer) && matches!(c, '.' | 'e' | 'E') =>
            {
                false
            }
            (Scalar::Num(at), 3) if number_step(*at, c).is_some() => true,
            // A character that ends a number (or any outside a scalar) is structure.
            (Scalar::None | Scalar::Num(_), depth) if !c.is_whitespace() => {
                let state = match self.scalar {
                    Scalar::Num(_) => Some(Frame::Obj(Obj::CommaOrEnd)),
                    _ => self.stack.last().copied(),
                };
                match (depth, state) {
                    // The root's one value is the array.
                    (1, Some(Frame::Obj(Obj::Value))) => {
                        self.item.keep = self.fed;
                        c == '['
                    }
                    // The root holds only the array: after it, the end.
                    (1, Some(Frame::Obj(Obj::CommaOrEnd))) => c == '}',
                    // The array holds items (objects).
                    (2, Some(Frame::Arr(Arr::ValueOrEnd | Arr::Value))) => {
                        if c == '{' {
                            self.item = ItemState {
                                keep: self.item.keep,
                                ..ItemState::default()
                            };
                            true
                        } else {
                            c == ']' && state == Some(Frame::Arr(Arr::ValueOrEnd))
                        }
                    }
                    (3, Some(Frame::Obj(Obj::Value))) => match self.item.ty {
                        Some(Ty::Integer | Ty::Number) => c == '-' || c.is_ascii_digit(),
                        Some(Ty::Str | Ty::Enum(_)) => c == '"',
                        Some(Ty::Boolean) => c == 't' || c == 'f',
                        None => false,
                    },
                    (3, Some(Frame::Obj(Obj::KeyOrEnd | Obj::CommaOrEnd))) if c == '}' => {
                        let complete = shape.required.iter().all(|r| self.item.seen.contains(r));
                        if complete {
                            self.item.keep = self.fed;
                        }
                        complete
                    }
                    _ => true,
                }
            }
            _ => true,
        }
    }

    fn push_json(&mut self, c: char) -> bool {
        match self.scalar.clone() {
            Scalar::Str { key, escape } => return self.in_string(c, key, escape),
            Scalar::Lit(rest) => {
                let mut it = rest.chars();
                if it.next() != Some(c) {
                    return false;
                }
                let left = it.as_str();
                if left.is_empty() {
                    self.scalar = Scalar::None;
                    self.value_done();
                } else {
                    self.scalar = Scalar::Lit(left);
                }
                return true;
            }
            Scalar::Num(at) => {
                if let Some(next) = number_step(at, c) {
                    self.scalar = Scalar::Num(next);
                    return true;
                }
                if !at.complete() {
                    return false;
                }
                self.scalar = Scalar::None;
                self.value_done();
                // The character after a number belongs to the structure.
            }
            Scalar::None => {}
        }
        if c.is_whitespace() {
            if c != ' ' && c != '\n' && c != '\t' && c != '\r' {
                return false;
            }
            self.blanks += 1;
            return self.blanks <= MAX_BLANKS;
        }
        self.blanks = 0;
        if self.done {
            return false;
        }
        match self.stack.last().copied() {
            None => {
                if self.started {
                    return false;
                }
                self.started = true;
                self.begin_value(c)
            }
            Some(Frame::Obj(state)) => match (state, c) {
                (Obj::KeyOrEnd, '}') => self.close(),
                (Obj::KeyOrEnd | Obj::Key, '"') => {
                    self.scalar = Scalar::Str {
                        key: true,
                        escape: 0,
                    };
                    true
                }
                (Obj::Colon, ':') => self.set(Frame::Obj(Obj::Value)),
                (Obj::Value, c) => self.begin_value(c),
                (Obj::CommaOrEnd, ',') => self.set(Frame::Obj(Obj::Key)),
                (Obj::CommaOrEnd, '}') => self.close(),
                _ => false,
            },
            Some(Frame::Arr(state)) => match (state, c) {
                (Arr::ValueOrEnd, ']') => self.close(),
                (Arr::ValueOrEnd | Arr::Value, c) => self.begin_value(c),
                (Arr::CommaOrEnd, ',') => self.set(Frame::Arr(Arr::Value)),
                (Arr::CommaOrEnd, ']') => self.close(),
                _ => false,
            },
        }
    }

    fn set(&mut self, f: Frame) -> bool {
        if let Some(top) = self.stack.last_mut() {
            *top = f;
        }
        true
    }

    fn close(&mut self) -> bool {
        self.stack.pop();
        self.value_done();
        true
    }

    /// A value just ended: what the enclosing structure expects next.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            None => self.done = true,
            Some(Frame::Obj(s)) => *s = Obj::CommaOrEnd,
            Some(Frame::Arr(s)) => *s = Arr::CommaOrEnd,
        }
    }

    fn begin_value(&mut self, c: char) -> bool {
        // The container now waits for what follows this value (set when it ends).
        match c {
            '{' => {
                self.stack.push(Frame::Obj(Obj::KeyOrEnd));
                true
            }
            '[' => {
                self.stack.push(Frame::Arr(Arr::ValueOrEnd));
                true
            }
            '"' => {
                self.scalar = Scalar::Str {
                    key: false,
                    escape: 0,
                };
                true
            }
            't' => {
                self.scalar = Scalar::Lit("rue");
                true
            }
            'f' => {
                self.scalar = Scalar::Lit("alse");
                true
            }
            'n' => {
                self.scalar = Scalar::Lit("ull");
                true
            }
            '-' => {
                self.scalar = Scalar::Num(NumAt::Minus);
                true
            }
            '0' => {
                self.scalar = Scalar::Num(NumAt::Zero);
                true
            }
            '1'..='9' => {
                self.scalar = Scalar::Num(NumAt::Int);
                true
            }
            _ => false,
        }
    }

    fn in_string(&mut self, c: char, key: bool, escape: u8) -> bool {
        match escape {
            0 => match c {
                '"' => {
                    self.scalar = Scalar::None;
                    if key {
                        self.set(Frame::Obj(Obj::Colon));
                    } else {
                        self.value_done();
                    }
                    true
                }
                '\\' => {
                    self.scalar = Scalar::Str { key, escape: 1 };
                    true
                }
                c if (c as u32) < 0x20 || c == '\u{FFFD}' => false,
                _ => true,
            },
            1 => {
                let next = match c {
                    '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't' => 0,
                    'u' => 2,
                    _ => return false,
                };
                self.scalar = Scalar::Str { key, escape: next };
                true
            }
            n => {
                if !c.is_ascii_hexdigit() {
                    return false;
                }
                let next = if n == 5 { 0 } else { n + 1 };
                self.scalar = Scalar::Str { key, escape: next };
                true
            }
        }
    }

    /// The text that closes everything open into valid JSON (a value is supplied where one is
    /// owed; a dangling key gets `null`).
    pub fn closing(&self) -> String {
        let mut out = String::new();
        let mut stack = self.stack.clone();
        let mut owe_value = false;
        match &self.scalar {
            Scalar::Str { key, escape } => {
                match escape {
                    1 => out.push('n'),
                    2..=5 => out.push_str(&"0".repeat((6 - *escape) as usize)),
                    _ => {}
                }
                out.push('"');
                if *key {
                    out.push_str(":null");
                }
            }
            Scalar::Num(at) if !at.complete() => out.push('0'),
            Scalar::Lit(rest) => out.push_str(rest),
            _ => {}
        }
        if matches!(self.scalar, Scalar::None) {
            match stack.last() {
                Some(Frame::Obj(Obj::Key)) => out.push_str("\"_\":null"),
                Some(Frame::Obj(Obj::Colon)) => out.push_str(":null"),
                Some(Frame::Obj(Obj::Value)) | Some(Frame::Arr(Arr::Value)) => owe_value = true,
                None if !self.started => owe_value = true,
                _ => {}
            }
        }
        if owe_value {
            out.push_str("null");
        }
        while let Some(f) = stack.pop() {
            out.push(match f {
                Frame::Obj(_) => '}',
                Frame::Arr(_) => ']',
            });
        }
        out
    }
}

fn number_step(at: NumAt, c: char) -> Option<NumAt> {
    use NumAt::*;
    Some(match (at, c) {
        (Minus, '0') => Zero,
        (Minus, '1'..='9') => Int,
        (Int, '0'..='9') => Int,
        (Zero | Int, '.') => Dot,
        (Dot | Frac, '0'..='9') => Frac,
        (Zero | Int | Frac, 'e' | 'E') => Exp,
        (Exp, '+' | '-') => ExpSign,
        (Exp | ExpSign | ExpInt, '0'..='9') => ExpInt,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(text: &str) -> bool {
        JsonPrefix::default().feed(text)
    }

    #[test]
    fn valid_json_and_its_prefixes_are_accepted() {
        let doc = r#"{"findings": [{"start_line": 4, "quote": "a \"b\" \u00e9", "confidence": 0.9, "ok": true, "x": null, "e": -1.5e+3}]}"#;
        for end in 0..=doc.len() {
            if doc.is_char_boundary(end) {
                assert!(accepts(&doc[..end]), "prefix {:?}", &doc[..end]);
            }
        }
        let mut p = JsonPrefix::default();
        assert!(p.feed(doc));
        assert!(p.is_done());
        assert!(!p.clone().feed("x"), "nothing after the value");
    }

    #[test]
    fn what_cannot_become_json_is_refused() {
        for bad in [
            "{findings",
            "{\"a\" 1}",
            "{\"a\":}",
            "[1,]",
            "\"raw\nnewline\"",
            "{\"a\":tru3",
            "[01]",
            "{\"a\":1,,",
            "]",
        ] {
            assert!(!accepts(bad), "{bad:?}");
        }
    }

    #[test]
    fn any_prefix_closes_into_valid_json() {
        let doc = r#"{"findings": [{"start_line": 4, "quote": "a\\b \u00e9", "confidence": 0.9, "ok": false}, {"k": [1, -2.5e3]}]}"#;
        for end in 0..=doc.len() {
            if !doc.is_char_boundary(end) {
                continue;
            }
            let mut p = JsonPrefix::default();
            assert!(p.feed(&doc[..end]));
            let closed = format!("{}{}", &doc[..end], p.closing());
            assert!(
                serde_json::from_str::<serde_json::Value>(&closed).is_ok(),
                "{closed}"
            );
        }
    }

    fn critique() -> JsonPrefix {
        JsonPrefix::with_shape(ItemShape::from_schema(&crate::engine::critique::schema()).unwrap())
    }

    #[test]
    fn shaped_items_keep_to_the_schema() {
        let item = r#"{"start_line": 4, "end_line": 4, "quote": "x", "severity": "warning", "principle": "correctness", "message": "m", "confidence": 0.5}"#;
        let whole = format!(r#"{{"findings": [{item}, {item}]}}"#);
        let mut p = critique();
        assert!(p.feed(&whole), "{whole}");
        assert!(p.is_done());
        let start = r#"{"findings": [{"#;
        for bad in [
            r#""colour""#,                      // unknown key
            r#""start_line": 1, "start_line""#, // twice
            r#""start_line": "4""#,             // wrong type
            r#""start_line": 4.5"#,             // integer
            r#""severity": "fatal""#,           // not in the enum
            r#""start_line": 4}"#,              // required keys missing
            r#""start_line": {"#,               // nested
        ] {
            assert!(!critique().feed(&format!("{start}{bad}")), "{bad}");
        }
        assert!(critique().feed(&format!("{start}\"severity\": \"warn")));
        assert!(!critique().feed(r#"{"findings": [1"#), "items are objects");
        assert!(
            !critique().feed(r#"{"findings": [], "x""#),
            "nothing after the array"
        );
    }

    #[test]
    fn an_unfinished_item_is_cut_back_to_the_whole_ones() {
        let item = r#"{"start_line": 4, "end_line": 4, "quote": "x", "severity": "info", "principle": "p", "message": "m", "confidence": 1}"#;
        let text = format!(r#"{{"findings": [{item}, {{"start_line": 7, "mess"#);
        let mut p = critique();
        assert!(p.feed(&text));
        let keep = p.whole_items_end().unwrap();
        let kept: String = text.chars().take(keep).collect();
        assert!(kept.ends_with(item), "{kept}");
        let mut q = critique();
        assert!(q.feed(&kept));
        let closed = format!("{kept}{}", q.closing());
        let v: serde_json::Value = serde_json::from_str(&closed).unwrap();
        assert_eq!(v["findings"].as_array().unwrap().len(), 1);
        // Nothing whole yet: back to the empty array.
        let mut p = critique();
        assert!(p.feed(r#"{"findings": [{"quote": "abc"#));
        let keep = p.whole_items_end().unwrap();
        assert_eq!(keep, r#"{"findings": ["#.chars().count());
    }

    #[test]
    fn endless_blank_space_is_cut() {
        assert!(!accepts(&format!("{{{}", " ".repeat(20))));
    }
}

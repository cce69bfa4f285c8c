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

/// The automaton. `Clone` to try a token without committing to it.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPrefix {
    stack: Vec<Frame>,
    scalar: Scalar,
    started: bool,
    done: bool,
    /// Whitespace characters in a row (capped, so a model cannot pad forever).
    blanks: u8,
}

impl Default for JsonPrefix {
    fn default() -> Self {
        Self {
            stack: Vec::new(),
            scalar: Scalar::None,
            started: false,
            done: false,
            blanks: 0,
        }
    }
}

const MAX_BLANKS: u8 = 8;

impl JsonPrefix {
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

    #[test]
    fn endless_blank_space_is_cut() {
        assert!(!accepts(&format!("{{{}", " ".repeat(20))));
    }
}

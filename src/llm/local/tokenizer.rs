//! The byte-level BPE tokenizer (GPT-2 style) built from a GGUF file's own metadata
//! (`tokenizer.ggml.tokens`, `.merges`, `.token_type`), so that one `.gguf` is all a model needs.

use std::collections::HashMap;
use std::sync::Mutex;

/// A GGUF `tokenizer.ggml.token_type` of a control token (`<|im_start|>`, `<|endoftext|>`).
const CONTROL: i32 = 3;
/// A user-defined special token.
const USER_DEFINED: i32 = 4;

/// Why a tokenizer cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The GGUF lacks a key or has it in another shape.
    #[error("the model file has no usable `{0}`")]
    Missing(&'static str),
    /// Not a byte-level BPE.
    #[error("tokenizer `{0}` is not supported (only byte-level BPE, `gpt2`)")]
    Unsupported(String),
}

/// A byte-level BPE vocabulary.
pub struct Tokenizer {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    /// Special tokens, longest first, matched literally before BPE.
    specials: Vec<(String, u32)>,
    is_special: Vec<bool>,
    byte_to_char: [char; 256],
    char_to_byte: HashMap<char, u8>,
    cache: Mutex<HashMap<String, Vec<u32>>>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

/// GPT-2's reversible map from bytes to printable characters.
fn byte_chars() -> [char; 256] {
    let mut map = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        map[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + n).unwrap_or('\u{FFFD}');
            n += 1;
            c
        };
    }
    map
}

impl Tokenizer {
    /// Builds the tokenizer from the GGUF key/values (`model`, `tokens`, `merges`, `token_type`).
    pub fn new(
        model: &str,
        tokens: Vec<String>,
        merges: Vec<String>,
        token_types: Vec<i32>,
    ) -> Result<Self, TokenizerError> {
        if model != "gpt2" {
            return Err(TokenizerError::Unsupported(model.to_owned()));
        }
        if tokens.is_empty() {
            return Err(TokenizerError::Missing("tokenizer.ggml.tokens"));
        }
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let ranks = merges
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let (a, b) = m.split_once(' ')?;
                Some(((a.to_owned(), b.to_owned()), i))
            })
            .collect();
        let is_special: Vec<bool> = (0..tokens.len())
            .map(|i| matches!(token_types.get(i), Some(&CONTROL | &USER_DEFINED)))
            .collect();
        let mut specials: Vec<(String, u32)> = tokens
            .iter()
            .enumerate()
            .filter(|(i, t)| is_special[*i] && !t.is_empty())
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        specials.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        let byte_to_char = byte_chars();
        let char_to_byte = byte_to_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        Ok(Self {
            tokens,
            ids,
            ranks,
            specials,
            is_special,
            byte_to_char,
            char_to_byte,
            cache: Mutex::default(),
        })
    }

    /// Vocabulary size.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the vocabulary is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of a token given by its text (special tokens included).
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// Whether an id is a special (control) token.
    pub fn is_special(&self, id: u32) -> bool {
        self.is_special.get(id as usize).copied().unwrap_or(false)
    }

    /// Encodes text; special-token strings in it become their ids.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            // The earliest special token in what is left.
            let next = self
                .specials
                .iter()
                .filter_map(|(s, id)| rest.find(s.as_str()).map(|at| (at, s.len(), *id)))
                .min_by_key(|&(at, len, _)| (at, usize::MAX - len));
            match next {
                Some((at, len, id)) => {
                    self.encode_plain(&rest[..at], &mut out);
                    out.push(id);
                    rest = &rest[at + len..];
                }
                None => {
                    self.encode_plain(rest, &mut out);
                    break;
                }
            }
        }
        out
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        for piece in pretokenize(text) {
            if let Some(ids) = self.cache.lock().ok().and_then(|c| c.get(piece).cloned()) {
                out.extend(ids);
                continue;
            }
            let ids = self.bpe(piece);
            if let Ok(mut c) = self.cache.lock() {
                if c.len() > 50_000 {
                    c.clear();
                }
                c.insert(piece.to_owned(), ids.clone());
            }
            out.extend(ids);
        }
    }

    fn bpe(&self, piece: &str) -> Vec<u32> {
        let mut parts: Vec<String> = piece
            .bytes()
            .map(|b| self.byte_to_char[b as usize].to_string())
            .collect();
        while parts.len() > 1 {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| {
                    self.ranks
                        .get(&(w[0].clone(), w[1].clone()))
                        .map(|r| (*r, i))
                })
                .min();
            let Some((_, i)) = best else { break };
            let merged = format!("{}{}", parts[i], parts[i + 1]);
            parts.splice(i..i + 2, [merged]);
        }
        parts
            .iter()
            .flat_map(|p| match self.ids.get(p) {
                Some(&id) => vec![id],
                // Not in the vocabulary as a whole: its bytes one by one.
                None => p
                    .chars()
                    .filter_map(|c| self.ids.get(&c.to_string()).copied())
                    .collect(),
            })
            .collect()
    }

    /// The bytes a token stands for (special tokens: their text).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(t) = self.tokens.get(id as usize) else {
            return Vec::new();
        };
        if self.is_special(id) {
            return t.as_bytes().to_vec();
        }
        t.chars()
            .map(|c| self.char_to_byte.get(&c).copied().unwrap_or(b'?'))
            .collect()
    }

    /// Decodes ids to text (invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&i| self.token_bytes(i)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Splits text like the GPT-2 / StarCoder pre-tokenizer: digits one by one, contractions,
/// letters with an optional leading space, other symbols with an optional leading space, and
/// whitespace runs (the last space of a run goes with the word after it).
pub fn pretokenize(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let c = chars[i].1;
        let class = |c: char| {
            if c.is_alphabetic() {
                1
            } else if c.is_numeric() {
                2
            } else if c.is_whitespace() {
                3
            } else {
                4
            }
        };
        if c == '\'' {
            let rest = &text[chars[i].0..];
            if let Some(len) = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
                .iter()
                .find(|p| rest.starts_with(**p))
                .map(|p| p.chars().count())
            {
                i += len;
                out.push(&text[chars[start].0..end_of(i)]);
                continue;
            }
        }
        // An optional leading space joins a letter run or a symbol run (not digits).
        let (lead, k) = if c == ' ' && i + 1 < chars.len() && matches!(class(chars[i + 1].1), 1 | 4)
        {
            (1, class(chars[i + 1].1))
        } else {
            (0, class(c))
        };
        i += lead;
        match k {
            2 => i += 1,
            3 => {
                let mut j = i;
                while j < chars.len() && chars[j].1.is_whitespace() {
                    j += 1;
                }
                // Leave the last whitespace for the next word when one follows.
                if j < chars.len() && j - i > 1 && chars[j - 1].1 == ' ' {
                    j -= 1;
                }
                i = j.max(i + 1);
            }
            k => {
                while i < chars.len() && class(chars[i].1) == k {
                    i += 1;
                }
            }
        }
        out.push(&text[chars[start].0..end_of(i)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretokenizing_keeps_every_byte() {
        for text in [
            "fn main() {\n    let x = 42;\n}\n",
            "it's   spaced  out\t\tand 😀 合計 1234",
            "  leading",
            "",
        ] {
            assert_eq!(pretokenize(text).concat(), text);
        }
        assert_eq!(pretokenize("a 12"), vec!["a", " ", "1", "2"]);
        assert_eq!(pretokenize("x  y"), vec!["x", " ", " y"]);
    }

    #[test]
    fn the_byte_map_is_reversible() {
        let m = byte_chars();
        let set: std::collections::HashSet<char> = m.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(m[b' ' as usize], 'Ġ');
        assert_eq!(m[b'\n' as usize], 'Ċ');
    }
}

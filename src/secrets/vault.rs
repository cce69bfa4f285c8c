//! A review's vault: the secrets it found, the placeholders sent in their place, and putting
//! them back in a revision.

use std::collections::HashSet;

use super::patterns::{PLACEHOLDER, PLACEHOLDER_WORD, find_spans};

/// One secret found and replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// The placeholder sent instead.
    pub placeholder: String,
    /// What it stands for.
    pub value: String,
    /// What kind of secret (`openai key`, `jwt`, …).
    pub kind: &'static str,
}

/// The secrets of one review, kept to put them back.
#[derive(Debug, Clone)]
pub struct Vault {
    secrets: Vec<Secret>,
    /// Every placeholder starts with `REDACTED_SECRET_{prefix}`: random per vault (`k3f9qa_`),
    /// or empty for [`Vault::stable`].
    prefix: String,
}

impl Default for Vault {
    /// A vault whose placeholders carry a fresh random part.
    fn default() -> Self {
        // A letter first: never read as the number of a placeholder without one.
        let mut prefix = String::from(fastrand::lowercase());
        for _ in 0..5 {
            prefix.push(fastrand::alphanumeric().to_ascii_lowercase());
        }
        prefix.push('_');
        Self {
            secrets: Vec::new(),
            prefix,
        }
    }
}

impl Vault {
    /// A vault whose placeholders have no random part (`REDACTED_SECRET_1`), for text that is
    /// stored and never restored (the learning record), so that records read alike. Its
    /// [`Vault::restore`] cannot tell its placeholders from the same words in the code.
    pub fn stable() -> Self {
        Self {
            secrets: Vec::new(),
            prefix: String::new(),
        }
    }

    /// What every placeholder of this vault starts with.
    fn start(&self) -> String {
        format!("{PLACEHOLDER}{}", self.prefix)
    }

    /// Replaces every secret in `text` by its placeholder (the same value always gets the same
    /// placeholder). Text that already looks like a placeholder is left as it is.
    pub fn redact(&mut self, text: &str) -> String {
        self.redact_parts(&[text])
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// Redacts `parts` as one text (each after the one before on a new line), so that a secret
    /// cut by a boundary between them (a key block that begins in the lines before a selection
    /// and ends in it) is found whole. Each secret's placeholder goes in the part where it
    /// starts; the rest of it is left out of the parts after.
    pub fn redact_parts(&mut self, parts: &[&str]) -> Vec<String> {
        let joined = parts.join("\n");
        let spans: Vec<(usize, usize, String)> = find_spans(&joined)
            .into_iter()
            .map(|(s, e, kind)| (s, e, self.placeholder_for(&joined[s..e], kind)))
            .collect();
        let mut placed = vec![false; spans.len()];
        let mut out = Vec::with_capacity(parts.len());
        let mut off = 0usize;
        for part in parts {
            let end = off.saturating_add(part.len());
            let mut text = String::with_capacity(part.len());
            let mut at = off;
            for ((s, e, placeholder), placed) in spans.iter().zip(&mut placed) {
                if *e <= off || *s >= end {
                    continue;
                }
                text.push_str(&joined[at..(*s).max(off)]);
                if !*placed {
                    text.push_str(placeholder);
                    *placed = true;
                }
                at = (*e).min(end);
            }
            text.push_str(&joined[at..end]);
            out.push(text);
            // Past the '\n' between this part and the next.
            off = end.saturating_add(1);
        }
        out
    }

    fn placeholder_for(&mut self, value: &str, kind: &'static str) -> String {
        if let Some(s) = self.secrets.iter().find(|s| s.value == value) {
            return s.placeholder.clone();
        }
        let placeholder = format!("{}{}", self.start(), self.secrets.len().saturating_add(1));
        self.secrets.push(Secret {
            placeholder: placeholder.clone(),
            value: value.to_owned(),
            kind,
        });
        placeholder
    }

    /// Puts the secrets back in place of this vault's placeholders; any other
    /// placeholder-like text stays as it is.
    pub fn restore(&self, text: &str) -> String {
        let start = self.start();
        if self.secrets.is_empty() || !text.contains(&start) {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find(&start) {
            let (before, from) = rest.split_at(i);
            let digits = from[start.len()..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            let (placeholder, after) = from.split_at(start.len().saturating_add(digits));
            out.push_str(before);
            match self.secrets.iter().find(|s| s.placeholder == placeholder) {
                Some(s) => out.push_str(&s.value),
                None => out.push_str(placeholder),
            }
            rest = after;
        }
        out.push_str(rest);
        out
    }

    /// Whether `revised` (a revision with the secrets put back) still holds a placeholder:
    /// one of this vault's (the model invented or mangled it), or any other placeholder-like
    /// word that `original` does not hold (the model made it up).
    pub fn holds_placeholder(&self, revised: &str, original: &str) -> bool {
        let Some(re) = PLACEHOLDER_WORD.as_ref() else {
            return false;
        };
        let start = self.start();
        let there: HashSet<&str> = re.find_iter(original).map(|m| m.as_str()).collect();
        re.find_iter(revised).any(|m| {
            let word = m.as_str();
            (!self.prefix.is_empty() && word.starts_with(&start)) || !there.contains(word)
        })
    }

    /// Replaces every occurrence of a secret already found by its placeholder, and every
    /// stretch of [`MIN_FRAGMENT`] characters or more of one, then any other secret in `text`:
    /// for text that may hold a secret where the patterns would not see it (a quote that cuts a
    /// key short of its prefix, a model's answer that repeats half of one).
    pub fn conceal(&mut self, text: &str) -> String {
        let mut known: Vec<&Secret> = self.secrets.iter().collect();
        known.sort_by_key(|s| std::cmp::Reverse(s.value.len()));
        let mut out = text.to_owned();
        for s in &known {
            if !s.value.is_empty() {
                out = out.replace(&s.value, &s.placeholder);
            }
        }
        for s in &known {
            out = conceal_fragments(&out, &s.value, &s.placeholder);
        }
        self.redact(&out)
    }

    /// The secrets replaced so far.
    pub fn secrets(&self) -> &[Secret] {
        &self.secrets
    }
}

/// The shortest part of a known secret [`Vault::conceal`] hides on its own.
pub const MIN_FRAGMENT: usize = 8;

/// `text` with each longest stretch of at least [`MIN_FRAGMENT`] bytes that also occurs in
/// `secret` replaced by `placeholder`. (If a stretch is not in the secret, no longer one from
/// the same start is, so each start is extended only while it matches.)
fn conceal_fragments(text: &str, secret: &str, placeholder: &str) -> String {
    if secret.len() < MIN_FRAGMENT || text.len() < MIN_FRAGMENT {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(c) = text[at..].chars().next() {
        let mut best = None;
        let mut end = at.saturating_add(MIN_FRAGMENT);
        while end <= text.len() {
            if text.is_char_boundary(end) {
                if !secret.contains(&text[at..end]) {
                    break;
                }
                best = Some(end);
            }
            end = end.saturating_add(1);
        }
        match best {
            Some(end) => {
                out.push_str(placeholder);
                at = end;
            }
            None => {
                out.push(c);
                at = at.saturating_add(c.len_utf8());
            }
        }
    }
    out
}

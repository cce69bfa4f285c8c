//! What never leaves the machine: credentials in the code under review are replaced by
//! placeholders before any prompt is sent, and put back when a revision comes home. A revision
//! that still holds a placeholder (one the model invented or mangled) is refused, so a
//! placeholder is never written into the user's file. Files that are secrets by nature
//! (`.env*`, `*.pem`, `*.key`, `id_rsa*`) are not reviewed at all unless configured.
//!
//! No mature secret-scanning crate exists for Rust; this is the usual approach: a set of
//! patterns for known key formats, plus an entropy check for values assigned to names that
//! sound like secrets.

use std::sync::LazyLock;

use regex::Regex;

/// Placeholders look like `REDACTED_SECRET_3`; nothing else in code does.
const PLACEHOLDER: &str = "REDACTED_SECRET_";

/// Known formats: (kind, pattern). The secret is the named group `s`, else the whole match.
const PATTERNS: &[(&str, &str)] = &[
    (
        "private key",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    ),
    ("anthropic key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
    (
        "openai key",
        r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    ),
    (
        "aws access key id",
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",
    ),
    (
        "aws secret key",
        r#"(?i)aws_?secret_?access_?key["']?\s*[:=]\s*["']?(?P<s>[A-Za-z0-9/+=]{40})"#,
    ),
    ("github token", r"\bgh[pousr]_[A-Za-z0-9]{36,}"),
    (
        "github fine-grained token",
        r"\bgithub_pat_[A-Za-z0-9_]{22,}",
    ),
    ("gitlab token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    ("slack token", r"\bxox[baprs]-[A-Za-z0-9\-]{10,}"),
    (
        "slack webhook",
        r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]+",
    ),
    (
        "stripe key",
        r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",
    ),
    ("google api key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("google oauth secret", r"\bGOCSPX-[A-Za-z0-9_\-]{20,}"),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    ),
    (
        "connection string password",
        r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]+:(?P<s>[^\s@/]{3,})@",
    ),
    ("twilio key", r"\bSK[0-9a-fA-F]{32}\b"),
    (
        "sendgrid key",
        r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
    ),
    ("npm token", r"\bnpm_[A-Za-z0-9]{36}"),
    ("pypi token", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}"),
    ("hugging face token", r"\bhf_[A-Za-z0-9]{34,}"),
    (
        "azure storage key",
        r"AccountKey=(?P<s>[A-Za-z0-9+/=]{40,})",
    ),
    ("digitalocean token", r"\bdop_v1_[a-f0-9]{64}"),
    ("shopify token", r"\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"),
    ("mailgun key", r"\bkey-[0-9a-f]{32}\b"),
];

/// A value assigned to a name that sounds like a secret: `api_key = "…"`, `TOKEN: '…'`.
const ASSIGNMENT: &str = r#"(?i)(?P<name>[A-Za-z0-9_.\-]*(?:key|token|secret|passw(?:or)?d|pwd|credential|auth)[A-Za-z0-9_.\-]*)["']?\s*(?::=|=>|[:=])\s*(?:[A-Za-z]*\()?["'`](?P<s>[^"'`\s]{6,})["'`]"#;

static SET: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    PATTERNS
        .iter()
        .filter_map(|(kind, p)| Regex::new(p).ok().map(|r| (*kind, r)))
        .collect()
});
static ASSIGN: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(ASSIGNMENT).ok());
static PLACEHOLDER_RE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!(r"{PLACEHOLDER}\d+")).ok());

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
#[derive(Debug, Clone, Default)]
pub struct Vault {
    secrets: Vec<Secret>,
}

impl Vault {
    /// Replaces every secret in `text` by its placeholder (the same value always gets the same
    /// placeholder).
    pub fn redact(&mut self, text: &str) -> String {
        let mut spans: Vec<(usize, usize, &'static str)> = Vec::new();
        for (kind, re) in SET.iter() {
            for caps in re.captures_iter(text) {
                if let Some(m) = caps.name("s").or_else(|| caps.get(0)) {
                    spans.push((m.start(), m.end(), kind));
                }
            }
        }
        if let Some(re) = ASSIGN.as_ref() {
            for caps in re.captures_iter(text) {
                let (Some(name), Some(m)) = (caps.name("name"), caps.name("s")) else {
                    continue;
                };
                let name = name.as_str().to_ascii_lowercase();
                let password = ["passw", "pwd"].iter().any(|p| name.contains(p));
                let value = m.as_str();
                if value.starts_with(PLACEHOLDER) {
                    continue;
                }
                if password || (value.len() >= 12 && entropy(value) >= 3.0) {
                    spans.push((
                        m.start(),
                        m.end(),
                        if password {
                            "password"
                        } else {
                            "secret-like value"
                        },
                    ));
                }
            }
        }
        if spans.is_empty() {
            return text.to_owned();
        }
        // Longest first at each start, then drop spans inside others.
        spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (s, e, kind) in spans {
            if s < at {
                continue;
            }
            out.push_str(&text[at..s]);
            out.push_str(&self.placeholder_for(&text[s..e], kind));
            at = e;
        }
        out.push_str(&text[at..]);
        out
    }

    fn placeholder_for(&mut self, value: &str, kind: &'static str) -> String {
        if let Some(s) = self.secrets.iter().find(|s| s.value == value) {
            return s.placeholder.clone();
        }
        let placeholder = format!("{PLACEHOLDER}{}", self.secrets.len() + 1);
        self.secrets.push(Secret {
            placeholder: placeholder.clone(),
            value: value.to_owned(),
            kind,
        });
        placeholder
    }

    /// Puts the secrets back in place of their placeholders.
    pub fn restore(&self, text: &str) -> String {
        if self.secrets.is_empty() || !text.contains(PLACEHOLDER) {
            return text.to_owned();
        }
        let Some(re) = PLACEHOLDER_RE.as_ref() else {
            return text.to_owned();
        };
        re.replace_all(text, |caps: &regex::Captures<'_>| {
            let p = &caps[0];
            self.secrets
                .iter()
                .find(|s| s.placeholder == p)
                .map_or_else(|| p.to_owned(), |s| s.value.clone())
        })
        .into_owned()
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

/// Whether text holds anything that looks like a placeholder.
pub fn has_placeholder(text: &str) -> bool {
    text.contains(PLACEHOLDER)
}

/// Shannon entropy in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = s.chars().count() as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Whether a path names a file that is a secret by nature.
pub fn is_sensitive_path(path: &str) -> bool {
    let name = path
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .to_ascii_lowercase();
    name.starts_with(".env")
        || name.ends_with(".pem")
        || name.ends_with(".key")
        || name.starts_with("id_rsa")
        || name.starts_with("id_ed25519")
        || name.starts_with("id_ecdsa")
}

/// Makes `path` (a file, or with `dir` a folder) readable and writable by its owner alone
/// (`0600`, folders `0700`). Does nothing off Unix, or when it cannot.
pub fn private(path: &std::path::Path, dir: bool) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if dir { 0o700 } else { 0o600 };
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            tracing::debug!("cannot restrict {}: {e}", path.display());
        }
    }
    #[cfg(not(unix))]
    let _ = (path, dir);
}

/// Creates `path` if it is missing, private from the start (`0600`: never world-readable,
/// not even for a moment), or makes an existing file private.
pub fn create_private(path: &std::path::Path) {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    if let Err(e) = options.open(path) {
        tracing::debug!("cannot create {}: {e}", path.display());
    }
    private(path, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_round_trips_and_reuses_placeholders() {
        let code = "let a = \"sk-proj-abcdefghijklmnopqrstuvwxyz012345\";\nlet b = \"sk-proj-abcdefghijklmnopqrstuvwxyz012345\";\n";
        let mut v = Vault::default();
        let r = v.redact(code);
        assert!(!r.contains("sk-proj"));
        assert_eq!(r.matches("REDACTED_SECRET_1").count(), 2);
        assert_eq!(v.restore(&r), code);
    }

    #[test]
    fn conceal_hides_a_known_secret_and_any_long_part_of_it() {
        let key = "sk-proj-abcdefghijklmnopqrstuvwxyz012345";
        let mut v = Vault::default();
        let code = v.redact(&format!("let k = \"{key}\";"));
        assert_eq!(code, "let k = \"REDACTED_SECRET_1\";");
        // Whole, cut short of its prefix, half of it inside other text, in non-ASCII text.
        for (text, want) in [
            (format!("uses {key} here"), "uses REDACTED_SECRET_1 here"),
            (
                "quote: ghijklmnopqrstuv".to_owned(),
                "quote: REDACTED_SECRET_1",
            ),
            ("é«qrstuvwxyz01»é".to_owned(), "é«REDACTED_SECRET_1»é"),
        ] {
            assert_eq!(v.conceal(&text), want, "{text}");
        }
        // Fewer than MIN_FRAGMENT characters of it, and ordinary words, stay.
        for text in [
            "abcdefg",
            "let x = 1; // wxyz",
            "ordinary text with no secret",
        ] {
            assert_eq!(v.conceal(text), text);
        }
    }

    #[test]
    fn ordinary_code_is_left_alone() {
        let code = "let key = map.get(&id);\nlet token_count = 3;\nconst PASSWORD_MIN: usize = 8;\nfn auth(user: &str) {}\nlet url = \"https://example.com/path\";\n";
        let mut v = Vault::default();
        assert_eq!(v.redact(code), code);
        assert!(v.secrets().is_empty());
    }

    #[test]
    fn sensitive_paths() {
        for p in [
            "/a/.env",
            ".env.local",
            "/k/server.pem",
            "tls.key",
            "/home/u/.ssh/id_rsa",
            "id_ed25519.pub",
        ] {
            assert!(is_sensitive_path(p), "{p}");
        }
        for p in ["/a/env.rs", "keys.rs", "pem.py"] {
            assert!(!is_sensitive_path(p), "{p}");
        }
    }
}

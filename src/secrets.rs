//! What never leaves the machine: credentials in the code under review are replaced by
//! placeholders before any prompt is sent, and put back when a revision comes home. A revision
//! that still holds a placeholder (one the model invented or mangled) is refused, so a
//! placeholder is never written into the user's file. Files that are secrets by nature
//! (`.env*`, `*.pem`, `*.key`, `id_rsa*`, `.netrc`, kubeconfigs, …) are not reviewed at all
//! unless configured.
//!
//! Each review's placeholders carry a random part (`REDACTED_SECRET_k3f9qa_1`), so code that
//! itself holds placeholder-like text (this project's own tests) is neither mistaken for a
//! secret on the way back nor confused with one.
//!
//! No mature secret-scanning crate exists for Rust; this is the usual approach: a set of
//! patterns for known key formats, plus an entropy check for values assigned to names that
//! sound like secrets.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

/// Every placeholder starts so; nothing else in code does.
const PLACEHOLDER: &str = "REDACTED_SECRET_";

/// The labels of private key blocks: PEM (`RSA`, `EC`, `OPENSSH`, `ENCRYPTED`, none) and PGP.
const KEY_LABEL: &str = r"[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?";

/// Known formats: (kind, pattern). The secret is the named group `s`, else the whole match.
const PATTERNS: &[(&str, &str)] = &[
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
    (
        "gitlab token",
        r"\bgl(?:pat|dt|rt|ptt|ft|cbt|imt|soat|oas)-[A-Za-z0-9_\-]{20,}",
    ),
    ("slack token", r"\bxox[a-z]-[A-Za-z0-9\-]{10,}"),
    ("slack app token", r"\bxapp-\d-[A-Za-z0-9\-]{10,}"),
    (
        "slack webhook",
        r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]+",
    ),
    (
        "stripe key",
        r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",
    ),
    ("stripe webhook secret", r"\bwhsec_[A-Za-z0-9+/=]{24,}"),
    ("google api key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("google oauth secret", r"\bGOCSPX-[A-Za-z0-9_\-]{20,}"),
    (
        "gcp private key id",
        r#""private_key_id"\s*:\s*"(?P<s>[0-9a-f]{40})""#,
    ),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    ),
    (
        "bearer token",
        r"\b[Bb]earer[ \t]+(?P<s>[A-Za-z0-9\-._~+/]{16,}=*)",
    ),
    (
        "basic auth credentials",
        r"\bBasic[ \t]+(?P<s>[A-Za-z0-9+/]{12,}={0,2})",
    ),
    (
        "connection string password",
        r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*:(?P<s>[^\s@/]{3,})@",
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
    (
        "azure shared access key",
        r"SharedAccessKey=(?P<s>[A-Za-z0-9+/=]{20,})",
    ),
    (
        "azure sas signature",
        r"[?&;]sig=(?P<s>[A-Za-z0-9%+/=]{16,})",
    ),
    ("digitalocean token", r"\bdop_v1_[a-f0-9]{64}"),
    ("shopify token", r"\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}"),
    ("mailgun key", r"\bkey-[0-9a-f]{32}\b"),
];

/// Names that sound like a secret.
const SECRET_NAME: &str =
    r"[A-Za-z0-9_.\-]*(?i:key|token|secret|passw(?:or)?d|pwd|credential|auth)[A-Za-z0-9_.\-]*";

/// A quoted value assigned to a name that sounds like a secret: `api_key = "…"`, `TOKEN: '…'`.
static ASSIGN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(?P<name>{SECRET_NAME})["']?\s*(?::=|=>|[:=])\s*(?:[A-Za-z]*\()?["'`](?P<s>[^"'`\s]{{6,}})["'`]"#
    ))
    .ok()
});

/// An unquoted value on a line of its own, as in `.env` files, YAML and shell:
/// `DB_PASSWORD=…`, `export TOKEN=…`, `password: …` (after a line number as prompts show it,
/// or a comment mark).
static ASSIGN_LINE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(?m)^(?:[ \t]*\d+ \| )?[ \t]*(?:(?:#|//|--|;|\*)[ \t]*)?(?:export[ \t]+|-[ \t]+)?(?P<name>{SECRET_NAME})[ \t]*[:=][ \t]*(?P<s>[^\s"'`]+)(?:[ \t]+#[^\n]*)?[ \t\r]*$"#
    ))
    .ok()
});

static SET: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    PATTERNS
        .iter()
        .filter_map(|(kind, p)| Regex::new(p).ok().map(|r| (*kind, r)))
        .collect()
});
static KEY_BLOCK: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(&format!(
        r"-----BEGIN {KEY_LABEL}-----[\s\S]*?-----END {KEY_LABEL}-----"
    ))
    .ok()
});
static KEY_BEGIN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!("-----BEGIN {KEY_LABEL}-----")).ok());
static KEY_END: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!("-----END {KEY_LABEL}-----")).ok());
/// What a key block's body holds (literal `\n` escapes run into it, as in JSON).
static BASE64_RUN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9+/]{32,}").ok());
/// One line of a key block's body, `b`, behind a line number, indentation, a comment mark or a
/// quote, and before a closing quote or string concatenation.
static BODY_LINE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"^[\s\d|#/*"'+]*?(?P<b>[A-Za-z0-9+/=\\]+)[\s"',+;]*$"#).ok());
/// Anything shaped like a placeholder, this review's or not.
static PLACEHOLDER_WORD: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!(r"{PLACEHOLDER}\w*")).ok());

/// How far after a key block's `BEGIN` line its body must start to count as one (headers such
/// as PGP's `Version:` come first).
const BODY_WITHIN: usize = 300;
/// The least base64 a cut key block must show to be taken for one.
const MIN_BODY: usize = 24;
/// The shortest body line above another (only a block's last lines are shorter).
const FULL_BODY_LINE: usize = 16;

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

/// Every secret in `text`: (start, end, kind), in order, none overlapping (overlapping finds
/// are merged, so no part of either is left out).
fn find_spans(text: &str) -> Vec<(usize, usize, &'static str)> {
    let mut spans = key_block_spans(text);
    for (kind, re) in SET.iter() {
        for caps in re.captures_iter(text) {
            if let Some(m) = caps.name("s").or_else(|| caps.get(0))
                && plausible(kind, m.as_str())
            {
                spans.push((m.start(), m.end(), kind));
            }
        }
    }
    for (re, quoted) in [(ASSIGN.as_ref(), true), (ASSIGN_LINE.as_ref(), false)] {
        let Some(re) = re else { continue };
        for caps in re.captures_iter(text) {
            let (Some(name), Some(m)) = (caps.name("name"), caps.name("s")) else {
                continue;
            };
            if let Some(kind) = assigned_secret(name.as_str(), m.as_str(), quoted) {
                spans.push((m.start(), m.end(), kind));
            }
        }
    }
    spans.retain(|(s, e, _)| s < e && !text[*s..*e].starts_with(PLACEHOLDER));
    // Longest first at each start, then merge overlaps.
    spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut merged: Vec<(usize, usize, &'static str)> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.0 < last.1 => last.1 = last.1.max(span.1),
            _ => merged.push(span),
        }
    }
    merged
}

/// Private key blocks (PEM, PGP): whole; cut at the end of the text (a `BEGIN` line and a body
/// after it, no `END`): to the end of the text; cut at its start (an `END` line with a body
/// above it, no `BEGIN`): from the body's first line.
fn key_block_spans(text: &str) -> Vec<(usize, usize, &'static str)> {
    let (Some(block), Some(begin), Some(end)) =
        (KEY_BLOCK.as_ref(), KEY_BEGIN.as_ref(), KEY_END.as_ref())
    else {
        return Vec::new();
    };
    let base64 = |t: &str| {
        BASE64_RUN
            .as_ref()
            .and_then(|re| re.find(t).map(|m| m.start()))
    };
    // Without a body between them, the two lines are code (a parser's constants).
    let mut spans: Vec<(usize, usize, &'static str)> = block
        .find_iter(text)
        .filter(|m| base64(m.as_str()).is_some())
        .map(|m| (m.start(), m.end(), "private key"))
        .collect();
    let whole = spans.clone();
    let inside = |at: usize| whole.iter().any(|(s, e, _)| *s <= at && at < *e);
    for m in begin.find_iter(text) {
        if inside(m.start()) {
            continue;
        }
        let body = base64(&text[m.end()..]).is_some_and(|at| at <= BODY_WITHIN);
        if body {
            spans.push((m.start(), text.len(), "private key (cut)"));
            // Everything after is in this span.
            break;
        }
    }
    for m in end.find_iter(text) {
        if inside(m.start()) {
            continue;
        }
        if let Some(start) = body_start_before(text, m.start()) {
            spans.push((start, m.end(), "private key (cut)"));
        }
    }
    spans
}

/// Where the body of a key block that ends at `end_at` starts: the base64 on the `END` line
/// itself (a one-line JSON key), then the body lines above it. `None` when there is too little
/// base64 there to be a key.
fn body_start_before(text: &str, end_at: usize) -> Option<usize> {
    let body_line = BODY_LINE.as_ref()?;
    let before = &text[..end_at];
    let line_start = before.rfind('\n').map_or(0, |i| i.saturating_add(1));
    let prefix = &before[line_start..];
    let run = prefix.len().saturating_sub(
        prefix
            .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || "+/=\\".contains(c))
            .len(),
    );
    let mut start = end_at.saturating_sub(run);
    let mut body = run;
    let mut full_seen = run >= FULL_BODY_LINE;
    let decoration = |c: char| c.is_whitespace() || c.is_ascii_digit() || "|#/*\"'+".contains(c);
    if prefix[..prefix.len().saturating_sub(run)]
        .chars()
        .all(decoration)
    {
        let mut line_end = line_start;
        while line_end > 0 {
            let above = &text[..line_end.saturating_sub(1)];
            let from = above.rfind('\n').map_or(0, |i| i.saturating_add(1));
            let Some(b) = body_line.captures(&above[from..]).and_then(|c| c.name("b")) else {
                break;
            };
            // Only a block's last lines are short (and the first, where the text cuts it).
            if b.len() < FULL_BODY_LINE && full_seen && from > 0 {
                break;
            }
            full_seen |= b.len() >= FULL_BODY_LINE;
            start = from.saturating_add(b.start());
            body = body.saturating_add(b.len());
            line_end = from;
        }
    }
    (body >= MIN_BODY).then_some(start)
}

/// Whether what a pattern of `kind` matched is a secret, not code that happens to look alike.
fn plausible(kind: &str, value: &str) -> bool {
    match kind {
        // `Bearer authentication_header` in prose or code is not a token.
        "bearer token" | "basic auth credentials" => {
            value.bytes().any(|b| b.is_ascii_digit())
                && value.bytes().any(|b| b.is_ascii_alphabetic())
                && entropy(value) >= 3.0
        }
        // `${DB_PASSWORD}`, `{password}`, `<password>`: filled in elsewhere.
        "connection string password" => !value.starts_with(['$', '{', '<', '%']),
        _ => true,
    }
}

/// The kind of secret a value assigned to `name` is, if it is one. A quoted value is a
/// literal; an unquoted one must look like one too (no call, type, path or reference).
fn assigned_secret(name: &str, value: &str, quoted: bool) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    let password = ["passw", "pwd"].iter().any(|p| name.contains(p));
    if !quoted {
        let literal = value.len() >= 8
            && !value.contains(['(', ')', '[', ']', '{', '}', '<', '>', ';', ','])
            && !value.starts_with(['$', '&', '*', '!', '/', '.', '~', '@'])
            && !value.contains("://")
            // A name (`self.password`, `default_token`) is code, not a value.
            && value
                .bytes()
                .any(|b| !(b.is_ascii_alphabetic() || b"_.-".contains(&b)));
        if !literal {
            return None;
        }
    }
    if password {
        Some("password")
    } else if value.len() >= 12 && entropy(value) >= 3.0 {
        Some("secret-like value")
    } else {
        None
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

/// Whether a path names a file that is a secret by nature: `.env*`, keys and certificates
/// (`*.pem`, `*.key`, `*.p12`, `*.pfx`, `id_rsa*`, …), credentials of package registries and
/// tools (`.npmrc`, `.pypirc`, `.netrc`, `.git-credentials`), kubeconfigs and Terraform
/// variables (`*.tfvars`).
pub fn is_sensitive_path(path: &str) -> bool {
    let path = path.replace('\\', "/").to_ascii_lowercase();
    let name = path.rsplit('/').next().unwrap_or(&path);
    name.starts_with(".env")
        || [".pem", ".key", ".p12", ".pfx", ".tfvars", ".tfvars.json"]
            .iter()
            .any(|ext| name.ends_with(ext))
        || ["id_rsa", "id_ed25519", "id_ecdsa", "id_dsa", "kubeconfig"]
            .iter()
            .any(|start| name.starts_with(start))
        || [".npmrc", ".netrc", "_netrc", ".pypirc", ".git-credentials"].contains(&name)
        || path == ".kube/config"
        || path.ends_with("/.kube/config")
}

/// [`is_sensitive_path`] for a file on disk, judged by its own path and, when it is a link (or
/// under one), by where it leads: `notes.txt -> ~/.netrc` is a secrets file too.
pub fn is_sensitive_file(path: &std::path::Path) -> bool {
    is_sensitive_path(&path.to_string_lossy())
        || std::fs::canonicalize(path).is_ok_and(|real| is_sensitive_path(&real.to_string_lossy()))
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

    /// `n` characters of `alphabet`, spread so that they look random.
    fn r(n: usize, alphabet: &str) -> String {
        let a: Vec<char> = alphabet.chars().collect();
        (0..n).map(|i| a[(i * 7 + n) % a.len()]).collect()
    }
    const ALNUM: &str = "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xYz";
    const HEX: &str = "0123456789abcdef";

    /// `text` redacted by a fresh vault: what is sent, and the vault.
    fn redacted(text: &str) -> (String, Vault) {
        let mut v = Vault::default();
        (v.redact(text), v)
    }

    #[test]
    fn redaction_round_trips_and_reuses_placeholders() {
        let code = "let a = \"sk-proj-abcdefghijklmnopqrstuvwxyz012345\";\nlet b = \"sk-proj-abcdefghijklmnopqrstuvwxyz012345\";\n";
        let (r, v) = redacted(code);
        assert!(!r.contains("sk-proj"));
        let p = &v.secrets()[0].placeholder;
        assert_eq!(r.matches(p.as_str()).count(), 2);
        assert_eq!(v.restore(&r), code);
    }

    #[test]
    fn placeholders_are_this_vaults_own_and_others_are_left_alone() {
        let key = "sk-proj-abcdefghijklmnopqrstuvwxyz012345";
        // This project's own tests hold placeholder-like words.
        let code = format!(
            "assert!(x.contains(\"REDACTED_SECRET_1\"));\nlet k = \"{key}\";\nlet t = \"REDACTED_SECRET_ab12cd_1\";\n"
        );
        let (a, va) = redacted(&code);
        let (b, vb) = redacted(&code);
        let (pa, pb) = (&va.secrets()[0].placeholder, &vb.secrets()[0].placeholder);
        assert_ne!(pa, pb, "a random part per vault");
        assert!(
            pa.starts_with("REDACTED_SECRET_") && pa.ends_with("_1"),
            "{pa}"
        );
        assert_eq!(
            va.secrets().len(),
            1,
            "placeholder-like words are no secrets"
        );
        assert!(a.contains("\"REDACTED_SECRET_1\"") && a.contains("REDACTED_SECRET_ab12cd_1"));
        // Each restores its own only, and the words the code held stay.
        assert_eq!(va.restore(&a), code);
        assert_eq!(vb.restore(&b), code);
        assert_eq!(va.restore(&b), b);
        // A revision keeping the words the code held is fine; this vault's placeholder left
        // over, or a placeholder-like word the code did not hold, is not.
        assert!(!va.holds_placeholder(&code, &code));
        assert!(va.holds_placeholder(&format!("{code}{pa}9"), &code));
        assert!(va.holds_placeholder(&format!("{code}REDACTED_SECRET_2"), &code));
    }

    #[test]
    fn conceal_hides_a_known_secret_and_any_long_part_of_it() {
        let key = "sk-proj-abcdefghijklmnopqrstuvwxyz012345";
        let mut v = Vault::stable();
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
        let code = "let key = map.get(&id);\nlet token_count = 3;\nconst PASSWORD_MIN: usize = 8;\nfn auth(user: &str) {}\nlet url = \"https://example.com/path\";\n\
            let key = compute();\nstruct S {\n    token: Token,\n    api_key: String,\n    secret_key: Option<String>,\n}\n\
            interface U { password: string; }\npassword = self.password\nkey = os.environ[\"API_KEY\"]\n\
            token = get_token()\napi_key: ${API_KEY}\npassword: *default_password\nkey_file: /etc/ssl/private/server.key\n\
            token_url: https://oauth2.googleapis.com/token\nauth_header = \"Bearer \" + token\nheaders[\"Authorization\"] = f\"Bearer {token}\"\n\
            // Bearer authentication_header_value is sent on every call\nDATABASE_URL=postgres://app:${DB_PASSWORD}@db/prod\n\
            if line.starts_with(\"-----BEGIN PRIVATE KEY-----\") { parse(lines) }\nif line == \"-----END PRIVATE KEY-----\" { break; }\n";
        let (r, v) = redacted(code);
        assert_eq!(r, code);
        assert!(v.secrets().is_empty(), "{:?}", v.secrets());
    }

    /// Each sample's secret part is redacted, and put back on restore.
    fn assert_redacted(samples: &[(&str, String, String)]) {
        for (kind, text, secret) in samples {
            let (r, v) = redacted(text);
            assert!(!r.contains(secret.as_str()), "{kind}: {r}");
            assert!(r.contains(PLACEHOLDER), "{kind}: {r}");
            assert_eq!(&v.restore(&r), text, "{kind}");
        }
    }

    #[test]
    fn key_formats_are_redacted() {
        let body = |n: usize| r(64, &format!("{ALNUM}+/{n}"));
        let pgp = format!(
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n{}\n{}\n=Zx9Q\n-----END PGP PRIVATE KEY BLOCK-----\n",
            body(1),
            body(2)
        );
        let gcp_body = r(64, ALNUM);
        let gcp = format!(
            "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"demo\",\n  \"private_key_id\": \"{}\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n{gcp_body}\\n{}\\n-----END PRIVATE KEY-----\\n\",\n  \"client_email\": \"a@demo.iam.gserviceaccount.com\"\n}}\n",
            r(40, HEX),
            r(64, "QWERTYqwerty0123456789")
        );
        let bearer = format!("eyZ{}", r(40, ALNUM));
        let sas = r(43, ALNUM);
        let samples = [
            ("pgp private key", pgp.clone(), body(1)),
            ("gcp private key", gcp.clone(), gcp_body.clone()),
            ("gcp private key id", gcp, r(40, HEX)),
            (
                "bearer",
                format!("curl -H \"Authorization: Bearer {bearer}\" https://api.example.com\n"),
                bearer,
            ),
            (
                "azure shared access key",
                format!(
                    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={}=\n",
                    r(43, ALNUM)
                ),
                r(43, ALNUM),
            ),
            (
                "azure sas",
                format!(
                    "url = \"https://acct.blob.core.windows.net/c/b?sv=2022-11-02&ss=b&sig={sas}%3D\"\n"
                ),
                sas,
            ),
            (
                "gitlab deploy token",
                format!("glrt-{}", r(20, ALNUM)),
                format!("glrt-{}", r(20, ALNUM)),
            ),
            (
                "slack user token",
                format!("SLACK = \"xoxe-1-{}\"", r(30, ALNUM)),
                r(30, ALNUM),
            ),
            (
                "slack app token",
                format!("xapp-1-A0{}-{}", r(10, ALNUM), r(30, HEX)),
                r(30, HEX),
            ),
            (
                "stripe restricted key",
                format!("rk_live_{}", r(24, ALNUM)),
                r(24, ALNUM),
            ),
            (
                "stripe webhook secret",
                format!("WEBHOOK = \"whsec_{}\"", r(32, ALNUM)),
                r(32, ALNUM),
            ),
            (
                "redis with an empty user",
                "REDIS = \"redis://:hunter2pw@cache:6379/0\"".to_owned(),
                "hunter2pw".to_owned(),
            ),
            (
                "yaml password",
                "db:\n  user: app\n  password: hunter2secret\n".to_owned(),
                "hunter2secret".to_owned(),
            ),
            (
                "export",
                format!("export TOKEN={}\n", r(32, ALNUM)),
                r(32, ALNUM),
            ),
            (
                "dotenv",
                "DB_HOST=db\nDB_PASSWORD=s3cr3t!pass # prod\n".to_owned(),
                "s3cr3t!pass".to_owned(),
            ),
            (
                "yaml api key",
                format!("service:\n  api_key: {}\n", r(24, ALNUM)),
                r(24, ALNUM),
            ),
            (
                "numbered as the critic sees it",
                format!("    7 |   api_key: {}", r(24, ALNUM)),
                r(24, ALNUM),
            ),
        ];
        assert_redacted(&samples);
    }

    #[test]
    fn a_key_block_cut_by_the_end_or_start_of_the_text_is_redacted() {
        let lines: Vec<String> = (0..4).map(|i| r(64, &format!("{ALNUM}{i}"))).collect();
        let tail = "-----END RSA PRIVATE KEY-----\nfn after() {}\n";
        let head = "fn before() {}\n-----BEGIN RSA PRIVATE KEY-----\n";
        // No END: from BEGIN to the end of the text.
        let cut_end = format!("{head}{}\n{}\n", lines[0], lines[1]);
        // No BEGIN: from the body (here the text's start, mid-line) to END.
        let cut_start = format!("{}\n{}\n{tail}", &lines[2][20..], lines[3]);
        // Commented, behind line numbers as prompts show code.
        let numbered = format!(
            "   10 |     # {}\n   11 |     # {}\n   12 |     # -----END RSA PRIVATE KEY-----\n   13 | x = 1",
            lines[0], lines[1]
        );
        // One-line JSON, cut at the start.
        let json = format!(
            "{}\\n{}\\n-----END PRIVATE KEY-----\\n\",\n",
            lines[2], lines[3]
        );
        for text in [&cut_end, &cut_start, &numbered, &json] {
            let (r, v) = redacted(text);
            for l in &lines {
                assert!(!r.contains(&l[30..]), "{r}");
            }
            assert!(r.contains(PLACEHOLDER), "{r}");
            assert_eq!(&v.restore(&r), text);
        }
        let (r, _) = redacted(&cut_start);
        assert!(
            r.starts_with(PLACEHOLDER) && r.ends_with("_1\nfn after() {}\n"),
            "{r}"
        );
        let (r, _) = redacted(&cut_end);
        assert!(r.starts_with("fn before() {}\n"), "{r}");
        let (r, _) = redacted(&numbered);
        assert!(r.starts_with("   10 |     # REDACTED_SECRET_") && r.ends_with("\n   13 | x = 1"));
    }

    #[test]
    fn parts_are_redacted_as_one_text() {
        let body: Vec<String> = (0..4).map(|i| r(64, &format!("{ALNUM}{i}"))).collect();
        let before = format!(
            "x = 1\n-----BEGIN RSA PRIVATE KEY-----\n{}\n{}",
            body[0], body[1]
        );
        let selection = format!(
            "{}\n{}\n-----END RSA PRIVATE KEY-----\ny = 2",
            body[2], body[3]
        );
        let after = "z = 3";
        let mut v = Vault::default();
        let parts = v.redact_parts(&[&before, &selection, after]);
        let p = &v.secrets()[0].placeholder;
        assert_eq!(parts[0], format!("x = 1\n{p}"));
        assert_eq!(parts[1], "\ny = 2");
        assert_eq!(parts[2], after);
        let end = selection.find("\ny = 2").unwrap();
        assert_eq!(
            v.restore(&parts[0]),
            format!("{before}\n{}", &selection[..end])
        );
        assert_eq!(v.secrets().len(), 1);
        // Alone, the selection's part of the key is still found (cut at its start).
        let alone = v.redact(&selection);
        assert!(
            !alone.contains(&body[3]) && alone.ends_with("y = 2"),
            "{alone}"
        );
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
            "/home/u/.npmrc",
            "/home/u/.netrc",
            "C:\\Users\\u\\_netrc",
            ".pypirc",
            "/home/u/.git-credentials",
            "/home/u/.kube/config",
            ".kube/config",
            "deploy/kubeconfig-prod.yaml",
            "prod.tfvars",
            "infra/secrets.auto.tfvars.json",
            "cert.p12",
            "/x/Client.PFX",
        ] {
            assert!(is_sensitive_path(p), "{p}");
        }
        for p in [
            "/a/env.rs",
            "keys.rs",
            "pem.py",
            "/app/config",
            "kube.rs",
            "variables.tf",
            "netrc.rs",
        ] {
            assert!(!is_sensitive_path(p), "{p}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_to_a_secrets_file_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let netrc = dir.path().join(".netrc");
        std::fs::write(&netrc, "machine h login u password p\n").unwrap();
        let notes = dir.path().join("notes.txt");
        std::os::unix::fs::symlink(&netrc, &notes).unwrap();
        let plain = dir.path().join("plain.txt");
        std::fs::write(&plain, "hello\n").unwrap();
        assert!(is_sensitive_file(&notes));
        assert!(!is_sensitive_path(&notes.to_string_lossy()));
        assert!(!is_sensitive_file(&plain));
        assert!(
            is_sensitive_file(&dir.path().join(".npmrc")),
            "missing, by name"
        );
    }
}

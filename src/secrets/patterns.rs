//! What a secret looks like: known key formats, private key blocks (whole or cut by the text's
//! edges), and values assigned to names that sound like secrets, with an entropy check.

use std::sync::LazyLock;

use regex::Regex;

/// Every placeholder starts so; nothing else in code does.
pub(super) const PLACEHOLDER: &str = "REDACTED_SECRET_";

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
pub(super) static PLACEHOLDER_WORD: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(&format!(r"{PLACEHOLDER}\w*")).ok());

/// How far after a key block's `BEGIN` line its body must start to count as one (headers such
/// as PGP's `Version:` come first).
const BODY_WITHIN: usize = 300;
/// The least base64 a cut key block must show to be taken for one.
const MIN_BODY: usize = 24;
/// The shortest body line above another (only a block's last lines are shorter).
const FULL_BODY_LINE: usize = 16;

/// Every secret in `text`: (start, end, kind), in order, none overlapping (overlapping finds
/// are merged, so no part of either is left out).
pub(super) fn find_spans(text: &str) -> Vec<(usize, usize, &'static str)> {
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

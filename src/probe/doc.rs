//! Examples in doc comments and docstrings as calls with an expected value: Rust doc tests
//! (`assert_eq!(f(x), y)`, `assert!(f(x))`), Python doctests (`>>> f(x)` and the line after),
//! and `f(x) == y` lines in either.

use super::{Call, Language};

/// At most this many examples are taken from one doc.
const MAX_EXAMPLES: usize = 20;

/// The examples of `doc` (markers already stripped) that call `function`.
pub fn examples(language: Language, function: &str, doc: &str) -> Vec<Call> {
    let mut found: Vec<(String, String)> = Vec::new();
    match language {
        Language::Rust => rust_examples(function, doc, &mut found),
        Language::Python => python_examples(function, doc, &mut found),
    }
    let mut calls: Vec<Call> = Vec::new();
    for (args, expected) in found {
        let call = Call {
            function: function.to_owned(),
            args,
            expected: Some(expected),
        };
        if !calls.contains(&call) && calls.len() < MAX_EXAMPLES {
            calls.push(call);
        }
    }
    calls
}

/// A call of the function in a text: where its name starts (a qualifier before it skipped
/// back over), its arguments, and the byte after its closing parenthesis.
struct Found<'a> {
    start: usize,
    args: &'a str,
    end: usize,
}

/// Every call of `function` in `text`.
fn calls<'a>(language: Language, function: &str, text: &'a str) -> Vec<Found<'a>> {
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = text.get(from..).and_then(|t| t.find(function)) {
        let name = from + pos;
        from = name + function.len().max(1);
        let before_ok = name == 0 || bytes.get(name - 1).is_some_and(|b| !ident(*b));
        let after = text.get(name + function.len()..).unwrap_or_default();
        let open = name + function.len() + (after.len() - after.trim_start_matches(' ').len());
        if !before_ok || bytes.get(open) != Some(&b'(') {
            continue;
        }
        let Some(close) = matching(language, text, open) else {
            continue;
        };
        out.push(Found {
            start: qualifier_start(text, name),
            args: text.get(open + 1..close).unwrap_or_default(),
            end: close + 1,
        });
        from = close + 1;
    }
    out
}

/// The start of the path that ends at `name` (`crate::m::f`, `module.f`).
fn qualifier_start(text: &str, name: usize) -> usize {
    let mut start = name;
    loop {
        let before = text.get(..start).unwrap_or_default();
        let rest = if let Some(r) = before.strip_suffix("::") {
            r
        } else if let Some(r) = before.strip_suffix('.') {
            r
        } else {
            return start;
        };
        let segment = rest.len()
            - rest
                .trim_end_matches(|c: char| c.is_alphanumeric() || c == '_')
                .len();
        if segment == 0 {
            return start;
        }
        start = rest.len() - segment;
    }
}

/// The index of the bracket closing the one at `open`, strings and char literals skipped.
fn matching(language: Language, text: &str, open: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut stack: Vec<u8> = Vec::new();
    let mut i = open;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'(' | b'[' | b'{' => stack.push(b),
            b')' | b']' | b'}' => {
                let want = match b {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                if stack.pop() != Some(want) {
                    return None;
                }
                if stack.is_empty() {
                    return Some(i);
                }
            }
            b'"' | b'\'' => {
                i = skip_string(language, bytes, i);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index after the string or char literal starting at `i` (a lone Rust `'`, a lifetime,
/// is one char).
fn skip_string(language: Language, bytes: &[u8], i: usize) -> usize {
    let Some(&quote) = bytes.get(i) else {
        return i + 1;
    };
    let triple = language == Language::Python
        && bytes.get(i + 1) == Some(&quote)
        && bytes.get(i + 2) == Some(&quote);
    if triple {
        let mut j = i + 3;
        while j + 2 < bytes.len() {
            if bytes.get(j..j + 3) == Some(&[quote, quote, quote][..]) {
                return j + 3;
            }
            j += 1;
        }
        return bytes.len();
    }
    let mut j = i + 1;
    while let Some(&b) = bytes.get(j) {
        if b == b'\\' {
            j += 2;
            continue;
        }
        if b == quote {
            return j + 1;
        }
        if b == b'\n' || (language == Language::Rust && quote == b'\'' && j > i + 4) {
            break;
        }
        j += 1;
    }
    // Unterminated (or a Rust lifetime): the quote is one char.
    i + 1
}

/// The expression starting at `from`: up to a `,`, `;`, backtick or line end at its own
/// depth, or a closing bracket it did not open; trimmed.
fn take_expr(language: Language, text: &str, from: usize) -> &str {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth == 0 => break,
            b')' | b']' | b'}' => depth -= 1,
            b',' | b';' | b'\n' | b'`' if depth == 0 => break,
            b'"' | b'\'' => {
                i = skip_string(language, bytes, i);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    text.get(from..i).unwrap_or_default().trim()
}

/// The expected value after an `==`, `->`, `=>` or `returns` (in backticks or not), if the
/// text after a call starts with one.
fn after_operator(language: Language, text: &str, from: usize) -> Option<String> {
    let rest = text.get(from..)?;
    let trimmed = rest.trim_start_matches([' ', '\t']);
    let skipped = rest.len() - trimmed.len();
    let op = ["==", "->", "=>", "returns"]
        .iter()
        .find(|op| trimmed.starts_with(**op))?;
    let after = trimmed.get(op.len()..)?;
    let value_at =
        from + skipped + op.len() + (after.len() - after.trim_start_matches([' ', '\t']).len());
    let value = text.get(value_at..)?;
    let expr = match value.strip_prefix('`') {
        Some(v) => v.split('`').next().unwrap_or_default().trim(),
        None => take_expr(language, text, value_at),
    };
    let expr = expr.trim_end_matches([';', ',']).trim_end();
    // A sentence's full stop is not part of the value (a range's `..` is).
    let expr = match expr.strip_suffix('.') {
        Some(e) if !expr.ends_with("..") => e,
        _ => expr,
    };
    (!expr.is_empty()).then(|| expr.to_owned())
}

/// Arguments as a call takes them: trimmed, a trailing `,` dropped.
fn clean_args(args: &str) -> String {
    args.trim().trim_end_matches(',').trim_end().to_owned()
}

fn rust_examples(function: &str, doc: &str, out: &mut Vec<(String, String)>) {
    let lang = Language::Rust;
    for call in calls(lang, function, doc) {
        let before = doc.get(..call.start).unwrap_or_default().trim_end();
        let after = doc.get(call.end..).unwrap_or_default().trim_start();
        let expected = if before.ends_with("assert_eq!(") {
            after.strip_prefix(',').map(|rest| {
                let at = doc.len() - rest.len();
                take_expr(lang, doc, at).to_owned()
            })
        } else if before.ends_with("assert!(!") && after.starts_with(')') {
            Some("false".to_owned())
        } else if before.ends_with("assert!(") && after.starts_with(')') {
            Some("true".to_owned())
        } else {
            after_operator(lang, doc, call.end)
        };
        if let Some(expected) = expected.filter(|e| !e.is_empty()) {
            out.push((clean_args(call.args), expected));
        }
    }
}

fn python_examples(function: &str, doc: &str, out: &mut Vec<(String, String)>) {
    let lang = Language::Python;
    let lines: Vec<&str> = doc.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        let Some(expr) = trimmed.strip_prefix(">>>") else {
            for call in calls(lang, function, line) {
                if let Some(expected) = after_operator(lang, line, call.end) {
                    out.push((clean_args(call.args), expected));
                }
            }
            continue;
        };
        let expr = expr.trim();
        let Some(call) = calls(lang, function, expr).into_iter().next() else {
            continue;
        };
        if call.start != 0 {
            continue;
        }
        if call.end >= expr.len() {
            let output: Vec<&str> = lines
                .iter()
                .skip(n + 1)
                .map(|l| l.trim())
                .take_while(|l| !l.is_empty() && !l.starts_with(">>>") && !l.starts_with("..."))
                .collect();
            if output.first().is_some_and(|l| !l.starts_with("Traceback")) {
                out.push((clean_args(call.args), output.join(" ")));
            }
        } else if let Some(expected) = after_operator(lang, expr, call.end) {
            out.push((clean_args(call.args), expected));
        }
    }
}

#[cfg(test)]
mod tests;

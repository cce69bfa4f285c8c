//! The revision wire format: one fenced code block with the whole revised selection, or
//! search/replace blocks applied to it. Both are parsed here; a reply that is neither, or a
//! block that matches nowhere or more than once, is an error, never a guess.

use serde::{Deserialize, Serialize};

/// Why a revision reply could not be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevisionError {
    /// No fenced code block and no search/replace block.
    #[error("the reviser's reply holds no code block")]
    NoCode,
    /// A fence or block was opened and never closed.
    #[error("the reviser's reply was cut off (an unclosed {0})")]
    Truncated(Unclosed),
    /// A SEARCH part is not in the selection.
    #[error("search/replace block {0} matches nothing in the selection")]
    NoMatch(usize),
    /// A SEARCH part is in the selection more than once.
    #[error("search/replace block {0} matches the selection more than once")]
    Ambiguous(usize),
}

/// What a cut-off reply left open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unclosed {
    /// A fenced code block.
    CodeBlock,
    /// A search/replace block.
    SearchReplace,
}

impl std::fmt::Display for Unclosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unclosed::CodeBlock => "code block",
            Unclosed::SearchReplace => "search/replace block",
        })
    }
}

const SEARCH: &str = "<<<<<<< SEARCH";
const DIVIDER: &str = "=======";
const REPLACE: &str = ">>>>>>> REPLACE";

/// Turns a reviser's reply into the complete revised selection.
pub fn apply_reply(original: &str, reply: &str) -> Result<String, RevisionError> {
    let revised = if reply.lines().any(|l| l.trim_end() == SEARCH) {
        apply_blocks(original, &parse_blocks(reply)?)?
    } else {
        full_block(reply)?
    };
    Ok(normalize(original, &strip_line_numbers(&revised)))
}

/// The body of the first fenced block (its info string dropped), fenced as CommonMark says:
/// an opening fence of three or more backticks (or tildes) indented at most three spaces; the
/// closing fence is a line of at least as many of the same character and nothing else, so a
/// doc comment's `/// ```` inside the code does not end it. Only when no such line follows is
/// a fence glued to the end of the last code line (`}````, as small models write) taken as
/// the close.
fn full_block(reply: &str) -> Result<String, RevisionError> {
    let lines: Vec<&str> = reply.lines().collect();
    let Some((open, ch, len)) = lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| opening_fence(l).map(|(ch, len)| (i, ch, len)))
    else {
        return Err(RevisionError::NoCode);
    };
    let body = &lines[open + 1..];
    let finish = |code: &[&str]| {
        let mut text = code.join("\n");
        text.push('\n');
        text
    };
    if let Some(close) = body.iter().position(|l| is_closing_fence(l, ch, len)) {
        return Ok(finish(&body[..close]));
    }
    let fence: String = std::iter::repeat_n(ch, len).collect();
    for (i, line) in body.iter().enumerate() {
        if let Some(code) = line.trim_end().strip_suffix(fence.as_str()) {
            let mut kept = body[..i].to_vec();
            kept.push(code);
            return Ok(finish(&kept));
        }
    }
    Err(RevisionError::Truncated(Unclosed::CodeBlock))
}

/// `(fence char, fence length)` when `line` opens a fenced block.
fn opening_fence(line: &str) -> Option<(char, usize)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let t = &line[indent..];
    let ch = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = t.chars().take_while(|c| *c == ch).count();
    // A backtick fence's info string holds no backtick.
    let info = &t[len..];
    (len >= 3 && !(ch == '`' && info.contains('`'))).then_some((ch, len))
}

fn is_closing_fence(line: &str, ch: char, len: usize) -> bool {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return false;
    }
    let t = line.trim();
    let n = t.chars().take_while(|c| *c == ch).count();
    n >= len && n == t.chars().count()
}

/// Parses `<<<<<<< SEARCH … ======= … >>>>>>> REPLACE` blocks.
fn parse_blocks(reply: &str) -> Result<Vec<(String, String)>, RevisionError> {
    enum State {
        Outside,
        Search(Vec<String>),
        Replace(Vec<String>, Vec<String>),
    }
    let mut state = State::Outside;
    let mut blocks = Vec::new();
    for line in reply.lines() {
        let t = line.trim_end();
        state = match state {
            State::Outside if t == SEARCH => State::Search(Vec::new()),
            State::Outside => State::Outside,
            State::Search(s) if t == DIVIDER => State::Replace(s, Vec::new()),
            State::Search(mut s) => {
                s.push(line.to_owned());
                State::Search(s)
            }
            State::Replace(s, r) if t == REPLACE => {
                blocks.push((join_lines(&s), join_lines(&r)));
                State::Outside
            }
            State::Replace(s, mut r) => {
                r.push(line.to_owned());
                State::Replace(s, r)
            }
        };
    }
    if !matches!(state, State::Outside) {
        return Err(RevisionError::Truncated(Unclosed::SearchReplace));
    }
    if blocks.is_empty() {
        return Err(RevisionError::NoCode);
    }
    Ok(blocks)
}

fn join_lines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Applies blocks in order: an exact unique match first, else a unique match that ignores
/// each line's leading and trailing whitespace.
fn apply_blocks(original: &str, blocks: &[(String, String)]) -> Result<String, RevisionError> {
    let mut text = original.replace("\r\n", "\n");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    for (i, (search, replace)) in blocks.iter().enumerate() {
        let n = i + 1;
        if search.trim().is_empty() {
            return Err(RevisionError::NoMatch(n));
        }
        // Exact matches count only where they start a line: a block is whole lines.
        let exact: Vec<usize> = text
            .match_indices(search.as_str())
            .map(|(i, _)| i)
            .filter(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n')
            .collect();
        let (at, len) = match exact.len() {
            1 => (exact[0], search.len()),
            0 => tolerant_match(&text, search).map_err(|e| e.with_block(n))?,
            _ => return Err(RevisionError::Ambiguous(n)),
        };
        text.replace_range(at..at + len, replace);
    }
    Ok(text)
}

enum Tolerant {
    None,
    Many,
}

impl Tolerant {
    fn with_block(self, n: usize) -> RevisionError {
        match self {
            Tolerant::None => RevisionError::NoMatch(n),
            Tolerant::Many => RevisionError::Ambiguous(n),
        }
    }
}

/// Byte offset and length of the unique run of whole lines equal to `search`'s lines once
/// each is trimmed.
fn tolerant_match(text: &str, search: &str) -> Result<(usize, usize), Tolerant> {
    let want: Vec<&str> = search.lines().map(str::trim).collect();
    let mut starts = vec![0];
    starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    let lines: Vec<&str> = text.lines().collect();
    let mut found = None;
    for i in 0..lines.len() {
        if i + want.len() > lines.len() {
            break;
        }
        if lines[i..i + want.len()]
            .iter()
            .zip(&want)
            .all(|(a, b)| a.trim() == *b)
        {
            if found.is_some() {
                return Err(Tolerant::Many);
            }
            let end = starts.get(i + want.len()).copied().unwrap_or(text.len());
            found = Some((starts[i], end - starts[i]));
        }
    }
    found.ok_or(Tolerant::None)
}

/// Removes `  12 | ` prefixes when every non-empty line has one (a model echoing the prompt).
fn strip_line_numbers(text: &str) -> String {
    let rest = |l: &str| -> Option<String> {
        let (num, rest) = l.split_once(" |")?;
        let n = num.trim();
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        match rest.strip_prefix(' ') {
            Some(r) => Some(r.to_owned()),
            None if rest.is_empty() => Some(String::new()),
            None => None,
        }
    };
    let numbered = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .all(|l| rest(l).is_some());
    if !numbered || text.trim().is_empty() {
        return text.to_owned();
    }
    text.lines()
        .map(|l| format!("{}\n", rest(l).unwrap_or_default()))
        .collect()
}

/// Gives the revision the original's line endings and its final newline (or lack of one).
fn normalize(original: &str, revised: &str) -> String {
    let mut text = revised.replace("\r\n", "\n");
    let ends_nl = original.ends_with('\n') || original.ends_with('\r');
    while text.ends_with('\n') {
        text.pop();
    }
    if ends_nl {
        text.push('\n');
    }
    if original.contains("\r\n") {
        text = text.replace('\n', "\r\n");
    }
    text
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn any_reply_is_a_revision_or_an_error_never_a_panic(
            reply in "(```|~~~|<<<<<<< SEARCH\n|=======\n|>>>>>>> REPLACE\n|fn f\\(\\) \\{\n|\n| |x|`){0,40}",
        ) {
            let _ = apply_reply("fn f() {\n    1\n}\n", &reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIG: &str =
        "fn f(n: u32) -> u32 {\n    let mut s = 0;\n    for i in 0..=n { s += i; }\n    s\n}\n";

    #[test]
    fn a_fenced_block_is_the_whole_revision() {
        let reply = "Here you go:\n```rust\nfn f(n: u32) -> u32 {\n    (0..n).sum()\n}\n```\nDone.";
        assert_eq!(
            apply_reply(ORIG, reply).unwrap(),
            "fn f(n: u32) -> u32 {\n    (0..n).sum()\n}\n"
        );
    }

    #[test]
    fn search_replace_blocks_apply_in_order() {
        let reply = "<<<<<<< SEARCH\n    for i in 0..=n { s += i; }\n=======\n    for i in 0..n { s += i; }\n>>>>>>> REPLACE\n";
        let out = apply_reply(ORIG, reply).unwrap();
        assert_eq!(out, ORIG.replace("0..=n", "0..n"));
    }

    #[test]
    fn search_blocks_match_despite_indentation() {
        let reply = "<<<<<<< SEARCH\nfor i in 0..=n { s += i; }\n=======\n    for i in 0..n { s += i; }\n>>>>>>> REPLACE";
        assert_eq!(
            apply_reply(ORIG, reply).unwrap(),
            ORIG.replace("0..=n", "0..n")
        );
    }

    #[test]
    fn a_block_matching_nothing_or_twice_fails() {
        let none = "<<<<<<< SEARCH\nnot there\n=======\nx\n>>>>>>> REPLACE";
        assert_eq!(apply_reply(ORIG, none), Err(RevisionError::NoMatch(1)));
        let twice = "<<<<<<< SEARCH\n    s\n=======\nx\n>>>>>>> REPLACE";
        let orig2 = "    s\n    s\n";
        assert_eq!(apply_reply(orig2, twice), Err(RevisionError::Ambiguous(1)));
    }

    #[test]
    fn garbage_and_truncated_replies_are_errors() {
        assert_eq!(
            apply_reply(ORIG, "I would not change anything."),
            Err(RevisionError::NoCode)
        );
        assert_eq!(
            apply_reply(ORIG, "```rust\nfn f() {"),
            Err(RevisionError::Truncated(Unclosed::CodeBlock))
        );
        assert!(apply_reply(ORIG, "<<<<<<< SEARCH\nx\n=======\n").is_err());
    }

    #[test]
    fn echoed_line_numbers_are_removed_and_crlf_kept() {
        let orig = "a\r\nb\r\n";
        let reply = "```\n   10 | a\n   11 | c\n```";
        assert_eq!(apply_reply(orig, reply).unwrap(), "a\r\nc\r\n");
    }

    #[test]
    fn a_doc_test_fence_inside_the_code_does_not_close_the_block() {
        let code = "/// Adds.\n///\n/// ```\n/// assert_eq!(add(1, 2), 3);\n/// ```\nfn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n";
        let reply = format!("```rust\n{code}```\n");
        assert_eq!(full_block(&reply).unwrap(), code);
        // A longer opening fence needs a closing one as long.
        let inner = "x = 1\n```\ny = 2\n";
        assert_eq!(
            full_block(&format!("````python\n{inner}````\n")).unwrap(),
            inner
        );
        // A docstring with a fenced example, tildes outside.
        let py = "def f():\n    \"\"\"\n    ```\n    f()\n    ```\n    \"\"\"\n";
        assert_eq!(full_block(&format!("~~~\n{py}~~~\n")).unwrap(), py);
        assert_eq!(
            full_block("```rust\nfn f() {}\n/// ```\n"),
            Ok("fn f() {}\n/// \n".to_owned()),
            "with no closing line, the glued fence closes (what small models write)"
        );
    }

    #[test]
    fn a_fence_glued_to_the_last_line_closes_the_block() {
        assert_eq!(apply_reply("a\nb\n", "```\na\nc```").unwrap(), "a\nc\n");
    }

    #[test]
    fn a_selection_without_final_newline_stays_without() {
        assert_eq!(apply_reply("x", "```\ny\n```").unwrap(), "y");
    }
}

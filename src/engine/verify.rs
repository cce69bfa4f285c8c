//! Verification from outside the model: every revision is parsed (tree-sitter) in the whole
//! file and must not add syntax errors; it may not change the signatures of functions, types
//! or items in the selection unless a finding asks for it; and, when the user configured one, a
//! command (`verify.command`) runs on a scratch copy of the workspace with the revision in it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tree_sitter::{InputEdit, Node, Parser, Point, Tree};

use crate::lang::{INTERFACE_CONTAINERS, grammar, interface_kinds};
use crate::sandbox;

use super::critique::RawFinding;

fn parse(language: &str, text: &str, old: Option<&Tree>) -> Option<Tree> {
    let mut parser = Parser::new();
    parser.set_language(&grammar(language)?).ok()?;
    parser.parse(text, old)
}

/// Recently parsed texts (whole files and selections), newest last. A review's original is
/// parsed once, ahead of time ([`warm`], while the critic works), and each revision is then
/// parsed incrementally from it: only what changed is parsed again.
const TREES_KEPT: usize = 16;
type Trees = Vec<([u8; 32], Tree)>;
static TREES: OnceLock<Mutex<Trees>> = OnceLock::new();

fn trees() -> std::sync::MutexGuard<'static, Trees> {
    TREES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn tree_key(language: &str, text: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(language.as_bytes());
    h.update(&[0]);
    h.update(text.as_bytes());
    *h.finalize().as_bytes()
}

/// The syntax tree of `text`, from the cache or parsed (and cached).
fn tree_of(language: &str, text: &str) -> Option<Tree> {
    let key = tree_key(language, text);
    if let Some(t) = trees()
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, t)| t.clone())
    {
        return Some(t);
    }
    let tree = parse(language, text, None)?;
    let mut cache = trees();
    if !cache.iter().any(|(k, _)| *k == key) {
        if cache.len() >= TREES_KEPT {
            cache.remove(0);
        }
        cache.push((key, tree.clone()));
    }
    Some(tree)
}

/// Parses `text` ahead of time so that checking revisions of it is incremental. Cheap when
/// already cached; does nothing for a language without grammar.
pub fn warm(language: &str, text: &str) {
    if grammar(language).is_some() {
        let _ = tree_of(language, text);
    }
}

/// The row/column (bytes) of a byte offset.
fn point(text: &str, byte: usize) -> Point {
    let before = &text.as_bytes()[..byte];
    let row = before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    Point::new(row, byte - line_start)
}

/// The single edit (common prefix and suffix kept) that turns `old` into `new`.
fn input_edit(old: &str, new: &str) -> InputEdit {
    let (a, b) = (old.as_bytes(), new.as_bytes());
    let (mut prefix, mut suffix) = crate::text::common_affixes(a, b);
    while !old.is_char_boundary(prefix) || !new.is_char_boundary(prefix) {
        prefix -= 1;
    }
    suffix = suffix.min(a.len().min(b.len()) - prefix);
    while !old.is_char_boundary(a.len() - suffix) || !new.is_char_boundary(b.len() - suffix) {
        suffix -= 1;
    }
    let (old_end, new_end) = (a.len() - suffix, b.len() - suffix);
    InputEdit {
        start_byte: prefix,
        old_end_byte: old_end,
        new_end_byte: new_end,
        start_position: point(old, prefix),
        old_end_position: point(old, old_end),
        new_end_position: point(new, new_end),
    }
}

/// `new`'s tree, parsed incrementally from `old`'s (cached) tree.
fn tree_after(language: &str, old: &str, new: &str) -> Option<(Tree, Tree)> {
    let before = tree_of(language, old)?;
    let mut edited = before.clone();
    edited.edit(&input_edit(old, new));
    let after = parse(language, new, Some(&edited))?;
    Some((before, after))
}

/// Syntax errors before and after a revision, counted in the top-level items the change
/// touches (parsed on their own: top-level items do not depend on each other's syntax), so the
/// cost follows the change, not the file. The original file's tree is cached ([`warm`]).
fn syntax_errors_around_change(language: &str, old: &str, new: &str) -> Option<(usize, usize)> {
    let tree = tree_of(language, old)?;
    let edit = input_edit(old, new);
    let (mut start, mut end) = (edit.start_byte, edit.old_end_byte);
    let root = tree.root_node();
    let mut cursor = root.walk();
    for child in root.children(&mut cursor) {
        if child.end_byte() >= edit.start_byte && child.start_byte() <= edit.old_end_byte {
            start = start.min(child.start_byte());
            end = end.max(child.end_byte());
        }
    }
    // Whole lines on both sides.
    start = old[..start].rfind('\n').map_or(0, |i| i + 1);
    end = old[end..].find('\n').map_or(old.len(), |i| end + i + 1);
    let new_end = end + edit.new_end_byte - edit.old_end_byte;
    let before = count_errors(&tree_of(language, old.get(start..end)?)?);
    let after = count_errors(&parse(language, new.get(start..new_end)?, None)?);
    Some((before, after))
}

/// Number of syntax errors (ERROR and MISSING nodes), or `None` for a language without grammar.
pub fn syntax_errors(language: &str, text: &str) -> Option<usize> {
    parse(language, text, None).map(|t| count_errors(&t))
}

fn count_errors(tree: &Tree) -> usize {
    let root = tree.root_node();
    if !root.has_error() {
        return 0;
    }
    let mut count = 0;
    let mut cursor = root.walk();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            count += 1;
            continue;
        }
        if node.has_error() {
            stack.extend(node.children(&mut cursor));
        }
    }
    count
}

/// Name → normalised signature of the interface items in `text`, or `None` without grammar.
pub fn signatures(language: &str, text: &str) -> Option<BTreeMap<String, String>> {
    let tree = parse(language, text, None)?;
    Some(signatures_in(language, &tree, text))
}

fn signatures_in(language: &str, tree: &Tree, text: &str) -> BTreeMap<String, String> {
    let kinds = interface_kinds(language);
    let mut out = BTreeMap::new();
    let mut stack = vec![tree.root_node()];
    let mut cursor = tree.walk();
    // Items inside function bodies and type definitions are not interfaces: not walked (the
    // walk is most of the cost). Traits and classes hold methods: walked.
    while let Some(node) = stack.pop() {
        if let Some((kind, whole)) = kinds.iter().find(|(k, _)| *k == node.kind()) {
            if let Some(name) = item_name(&node, text) {
                let end = match (whole, node.child_by_field_name("body")) {
                    (false, Some(body)) => body.start_byte(),
                    _ => node.end_byte(),
                };
                let sig = text.get(node.start_byte()..end).unwrap_or("");
                out.insert(name, sig.split_whitespace().collect::<Vec<_>>().join(" "));
            }
            if !INTERFACE_CONTAINERS.contains(kind) {
                continue;
            }
        }
        stack.extend(node.children(&mut cursor));
    }
    out
}

/// Two signatures written alike but for whitespace (`numbers:Vec<f32>` and
/// `numbers: Vec<f32>`: a reviser that reformats a signature has not changed it).
fn same_tokens(a: &str, b: &str) -> bool {
    a.chars()
        .filter(|c| !c.is_whitespace())
        .eq(b.chars().filter(|c| !c.is_whitespace()))
}

fn item_name(node: &Node<'_>, text: &str) -> Option<String> {
    let name = node.child_by_field_name("name").or_else(|| {
        // Go's type_declaration holds a type_spec with the name.
        let mut c = node.walk();
        node.children(&mut c)
            .find(|n| n.kind() == "type_spec")
            .and_then(|spec| spec.child_by_field_name("name"))
    })?;
    text.get(name.start_byte()..name.end_byte())
        .map(str::to_owned)
}

/// Whether some finding explicitly asks to change `name`'s interface.
fn asked_for(findings: &[&RawFinding], name: &str) -> bool {
    const WORDS: &[&str] = &[
        "signature",
        "parameter",
        "argument",
        "return type",
        "rename",
        "interface",
        "type of",
    ];
    findings.iter().any(|f| {
        let text = format!(
            "{} {} {}",
            f.message,
            f.suggestion.as_deref().unwrap_or(""),
            f.quote
        )
        .to_lowercase();
        text.contains(&name.to_lowercase()) && WORDS.iter().any(|w| text.contains(w))
    })
}

/// Why a revision fails the syntax or intent check, if it does.
pub fn check(
    language: &str,
    original_file: &str,
    revised_file: &str,
    original_selection: &str,
    revised_selection: &str,
    findings: &[&RawFinding],
) -> Result<(), String> {
    if let Some((before, after)) =
        syntax_errors_around_change(language, original_file, revised_file)
        && after > before
    {
        return Err(format!(
            "it does not parse: {after} syntax error(s) where the original file has {before}"
        ));
    }
    if let Some((before_tree, after_tree)) =
        tree_after(language, original_selection, revised_selection)
    {
        let before = signatures_in(language, &before_tree, original_selection);
        let after = signatures_in(language, &after_tree, revised_selection);
        for (name, sig) in &before {
            match after.get(name) {
                Some(new) if same_tokens(new, sig) => {}
                _ if asked_for(findings, name) => {}
                Some(new) => {
                    return Err(format!(
                        "it changes the signature of `{name}` (`{sig}` → `{new}`) and no finding asks for that"
                    ));
                }
                None => {
                    return Err(format!(
                        "it removes or renames `{name}` and no finding asks for that"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `verify.command`, run in a scratch copy of the workspace.
#[derive(Debug, Clone)]
pub struct CommandCheck {
    /// A shell command (`cargo check`, `pytest -q tests/test_x.py`).
    pub command: String,
    /// The workspace root, copied once per review.
    pub root: PathBuf,
    /// The reviewed file, relative to the root.
    pub file: PathBuf,
    /// How long one run may take.
    pub timeout: Duration,
    /// Whether the command may use the network (`verify.network`; off by default: a
    /// repository's tests should not reach out, and under bubblewrap they cannot).
    pub network: bool,
}

/// A scratch copy of the workspace in the private scratch folder ([`sandbox::private_dir`]),
/// deleted when dropped: the copy in `work/`, the command's `TMPDIR` in `tmp/`.
pub struct Scratch {
    dir: tempfile::TempDir,
    root: PathBuf,
    file: PathBuf,
}

/// What a command run said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// Exit status 0.
    pub passed: bool,
    /// The exit code (`None`: killed by a signal, or timed out). When the command fails on
    /// the original too, a revision on which it fails with another code fails in a new way
    /// (the tests failed; now the code does not compile).
    pub code: Option<i32>,
    /// The end of stdout and stderr (at most 4,000 chars), for the reviser and the critic.
    pub output: String,
    /// The command ran in the bubblewrap sandbox (no network, read-only filesystem).
    pub sandboxed: bool,
}

/// What matters of a failing command's output, for the reviser: the first compiler error with
/// its context, else the first failing assertion (a panic and the lines after it, a Python
/// assertion), else the last lines. At most [`GIST_LINES`] lines and [`GIST_CHARS`] chars.
pub fn gist(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let starts = |l: &str| {
        let t = l.trim_start();
        t.starts_with("error[") || t.starts_with("error:")
    };
    let failing = |l: &str| {
        l.contains("panicked at")
            || l.contains("AssertionError")
            || l.contains("assertion")
            || l.trim_start().starts_with("FAILED")
            || l.trim_start().starts_with("E ")
    };
    let picked: Vec<&str> = if let Some(i) = lines.iter().position(|l| starts(l)) {
        lines[i..]
            .iter()
            .take_while(|l| !l.trim().is_empty())
            .take(GIST_LINES)
            .copied()
            .collect()
    } else if let Some(i) = lines.iter().position(|l| failing(l)) {
        lines[i..]
            .iter()
            .filter(|l| !l.trim().is_empty())
            .take(GIST_LINES.min(6))
            .copied()
            .collect()
    } else {
        let kept: Vec<&str> = lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .copied()
            .collect();
        kept[kept.len().saturating_sub(GIST_LINES)..].to_vec()
    };
    let text = picked.join("\n");
    match text.char_indices().nth(GIST_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// At most this many lines of a failure go back to the reviser.
const GIST_LINES: usize = 12;
/// ... and at most this many chars.
const GIST_CHARS: usize = 1_500;

/// The last non-blank line of a command's output, trimmed.
pub fn last_line(output: &str) -> &str {
    output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// Folders never copied into the scratch workspace.
const SKIP: &[&str] = &[
    ".git",
    "target",
    "node_modules",
    ".venv",
    "venv",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    "dist",
    "build",
];
/// A workspace larger than this is not copied.
const MAX_COPY_BYTES: u64 = 512 << 20;

impl CommandCheck {
    /// Copies the workspace (without build output and VCS data) to a scratch folder in the
    /// private scratch folder, never the shared `/tmp` (where tools read configuration from
    /// parent folders: `/tmp/.cargo/config.toml`, `/tmp/conftest.py`); stops between files once
    /// `cancel` fires.
    pub fn scratch(&self, cancel: &CancellationToken) -> Result<Scratch, String> {
        let private = sandbox::private_dir().ok_or(
            "cannot make a private scratch folder (set REFINE_LS_SCRATCH_DIR to a folder of yours)",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("verify-")
            .tempdir_in(&private)
            .map_err(|e| format!("cannot make a scratch folder in {}: {e}", private.display()))?;
        let root = dir.path().join("work");
        std::fs::create_dir(&root).map_err(|e| format!("cannot make a scratch folder: {e}"))?;
        let mut budget = MAX_COPY_BYTES;
        copy_tree(&self.root, &root, &mut budget, cancel).map_err(|e| {
            format!(
                "cannot copy the workspace {} for verify.command: {e}",
                self.root.display()
            )
        })?;
        if cancel.is_cancelled() {
            return Err(CANCELLED.to_owned());
        }
        Ok(Scratch {
            file: root.join(&self.file),
            root,
            dir,
        })
    }

    /// Writes `text` as the reviewed file in the scratch copy and runs the command there
    /// ([`sandbox::Run`]: sandboxed where bubblewrap works, a clean environment, its own
    /// process group killed on timeout, `cancel` or drop, bounded output).
    pub async fn run(
        &self,
        scratch: &Scratch,
        text: &str,
        cancel: &CancellationToken,
    ) -> Result<CommandResult, String> {
        tokio::fs::write(&scratch.file, text)
            .await
            .map_err(|e| format!("cannot write {}: {e}", scratch.file.display()))?;
        let run = sandbox::Run {
            command: self.command.clone(),
            dir: scratch.root.clone(),
            tmp: scratch.dir.path().join("tmp"),
            network: self.network,
            timeout: self.timeout,
            max_output: MAX_OUTPUT_BYTES,
        };
        let result = run.run(cancel).await.map_err(|e| match e {
            sandbox::RunError::Cancelled => CANCELLED.to_owned(),
            e => format!("cannot run verify.command `{}`: {e}", self.command),
        })?;
        let mut text = result.output.clone();
        if result.timed_out {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "verify.command timed out after {} s",
                self.timeout.as_secs()
            ));
        }
        let tail: String = {
            let chars: Vec<char> = text.chars().collect();
            chars[chars.len().saturating_sub(OUTPUT_CHARS)..]
                .iter()
                .collect()
        };
        // The scratch path means nothing to the model or the user.
        let tail = tail
            .replace(&scratch.root.display().to_string(), ".")
            .replace(&scratch.dir.path().display().to_string(), ".");
        Ok(CommandResult {
            passed: result.passed() && !result.timed_out,
            code: result.code,
            output: tail,
            sandboxed: result.sandboxed,
        })
    }
}

/// What a cancelled verification says.
pub const CANCELLED: &str = "cancelled";

/// Output kept from a run (its end) before the last [`OUTPUT_CHARS`] are taken.
const MAX_OUTPUT_BYTES: usize = 64 << 10;
/// The characters of a command's output kept for the reviser and the critic.
const OUTPUT_CHARS: usize = 4_000;

fn copy_tree(
    from: &Path,
    to: &Path,
    budget: &mut u64,
    cancel: &CancellationToken,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let entry = entry?;
        let name = entry.file_name();
        let kind = entry.file_type()?;
        let target = to.join(&name);
        if kind.is_dir() {
            if SKIP.iter().any(|s| name == *s) {
                continue;
            }
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target, budget, cancel)?;
        } else if kind.is_file() {
            // Secrets files (`.env`, keys, `.npmrc`, …) stay behind: the command runs code the
            // model wrote and has no business reading them. Links are not copied at all.
            if crate::secrets::is_sensitive_path(&name.to_string_lossy()) {
                continue;
            }
            let len = entry.metadata()?.len();
            if len > *budget {
                return Err(std::io::Error::other(
                    "the workspace is larger than 512 MiB",
                ));
            }
            *budget -= len;
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gist_of_a_failure_is_its_first_error_or_failing_assertion() {
        let rustc = "warning: unused\n\nerror[E0308]: mismatched types\n --> src/lib.rs:3:5\n  |\n3 |     x\n  |     ^ expected `i32`\n\nerror: aborting due to 1 previous error\n";
        assert_eq!(
            gist(rustc),
            "error[E0308]: mismatched types\n --> src/lib.rs:3:5\n  |\n3 |     x\n  |     ^ expected `i32`"
        );
        let test = "running 1 test\ntest tests::t ... FAILED\n\nfailures:\n\n---- tests::t stdout ----\nthread 'tests::t' panicked at src/lib.rs:9:5:\nassertion `left == right` failed\n  left: 5\n right: 6\n\nfailures:\n    tests::t\n";
        assert!(gist(test).starts_with("thread 'tests::t' panicked at src/lib.rs:9:5:\nassertion"));
        assert!(gist(test).contains("right: 6"));
        let long = "x\n".repeat(100);
        assert_eq!(gist(&long).lines().count(), GIST_LINES);
        assert_eq!(gist("").len(), 0);
        assert!(gist(&"é".repeat(5000)).chars().count() <= GIST_CHARS + 1);
    }

    #[test]
    fn syntax_is_checked_around_the_change_only() {
        let file = "fn a() {\n    1\n}\n\nfn b() {\n    let x = 1;\n    x\n}\n\nfn broken( {\n}\n";
        // A fine change: no new errors (the broken item elsewhere is not counted).
        let ok = file.replace("let x = 1;", "let x = 2;");
        assert_eq!(syntax_errors_around_change("rust", file, &ok), Some((0, 0)));
        // A change that breaks its item is seen.
        let bad = file.replace("let x = 1;", "let x = ;");
        let (before, after) = syntax_errors_around_change("rust", file, &bad).unwrap();
        assert!(after > before, "{before} {after}");
        // Inserting a whole item, and deleting one.
        let added = file.replace("fn b()", "fn c() {}\n\nfn b()");
        assert_eq!(
            syntax_errors_around_change("rust", file, &added),
            Some((0, 0))
        );
        let removed = file.replace("fn a() {\n    1\n}\n\n", "");
        assert_eq!(
            syntax_errors_around_change("rust", file, &removed),
            Some((0, 0))
        );
    }

    #[test]
    fn incremental_parses_agree_with_fresh_ones() {
        let old = "// 合計 😀\nfn f(xs: &[i32]) -> i32 {\n    xs.iter().sum()\n}\n\nfn g() {}\n";
        for new in [
            old.replace("xs.iter().sum()", "xs.iter().copied().sum::<i32>()"),
            old.replace("😀", "🎉🎉"),
            old.replace("fn g() {}", "fn g() {"),
            old.replace("}\n\nfn g", "\nfn g"),
            format!("{old}fn h() {{}}\n"),
            old.replacen("// 合計 😀\n", "", 1),
        ] {
            let (_, after) = tree_after("rust", old, &new).unwrap();
            let fresh = parse("rust", &new, None).unwrap();
            assert_eq!(
                after.root_node().to_sexp(),
                fresh.root_node().to_sexp(),
                "{new}"
            );
            assert_eq!(count_errors(&after), syntax_errors("rust", &new).unwrap());
        }
    }

    #[test]
    fn syntax_errors_are_counted_per_language() {
        assert_eq!(syntax_errors("rust", "fn f() -> i32 { 1 }\n"), Some(0));
        assert!(syntax_errors("rust", "fn f() -> i32 { 1 \n").unwrap() > 0);
        assert_eq!(
            syntax_errors("python", "def f(x):\n    return x\n"),
            Some(0)
        );
        assert!(syntax_errors("python", "def f(x:\n    return x\n").unwrap() > 0);
        assert_eq!(
            syntax_errors("go", "package p\nfunc F() int { return 1 }\n"),
            Some(0)
        );
        assert_eq!(
            syntax_errors("typescript", "function f(x: number): number { return x }\n"),
            Some(0)
        );
        assert!(syntax_errors("javascript", "function f( { return 1 }\n").unwrap() > 0);
        assert_eq!(syntax_errors("cobol", "anything"), None);
    }

    #[test]
    fn signatures_ignore_bodies_and_whitespace() {
        let a = signatures("rust", "pub fn f(x: i32) -> i32 {\n    x + 1\n}\n").unwrap();
        let b = signatures("rust", "pub fn f(x:  i32) -> i32 { x + 2 }\n").unwrap();
        assert_eq!(a, b);
        assert_eq!(a["f"], "pub fn f(x: i32) -> i32");
        let py = signatures(
            "python",
            "class A:\n    def m(self, x) -> int:\n        return x\n",
        )
        .unwrap();
        assert_eq!(py["m"], "def m(self, x) -> int:");
        assert!(py.contains_key("A"));
    }

    #[test]
    fn a_reformatted_signature_is_not_a_changed_one() {
        let orig =
            "fn has_close_elements(numbers:Vec<f32>, threshold: f32) -> bool{\n    true\n}\n";
        let rev =
            "fn has_close_elements(numbers: Vec<f32>, threshold: f32) -> bool {\n    false\n}\n";
        assert_eq!(check("rust", orig, rev, orig, rev, &[]), Ok(()));
        let changed = rev.replace("Vec<f32>", "&[f32]");
        assert!(check("rust", orig, &changed, orig, &changed, &[]).is_err());
    }

    #[test]
    fn a_changed_signature_is_rejected_unless_a_finding_asks() {
        let orig = "fn f(xs: &[i32]) -> i32 { 0 }\n";
        let rev = "fn f(xs: &[i64]) -> i64 { 0 }\n";
        let err = check("rust", orig, rev, orig, rev, &[]).unwrap_err();
        assert!(err.contains("changes the signature of `f`"), "{err}");
        let ask = RawFinding {
            start_line: 1,
            end_line: 1,
            quote: "i32".into(),
            severity: super::super::critique::Severity::Warning,
            principle: "correctness".into(),
            message: "f overflows: its return type should be i64".into(),
            suggestion: None,
            confidence: 0.9,
        };
        assert!(check("rust", orig, rev, orig, rev, &[&ask]).is_ok());
        let err = check(
            "rust",
            orig,
            "fn g(xs: &[i32]) -> i32 { 0 }\n",
            orig,
            "fn g(xs: &[i32]) -> i32 { 0 }\n",
            &[],
        )
        .unwrap_err();
        assert!(err.contains("removes or renames `f`"));
    }

    #[test]
    fn new_syntax_errors_are_rejected_old_ones_tolerated() {
        let broken_elsewhere = "fn a() { let = ; }\n\nfn f() -> i32 { 1 }\n";
        let ok = "fn a() { let = ; }\n\nfn f() -> i32 { 2 }\n";
        assert!(check("rust", broken_elsewhere, ok, "", "", &[]).is_ok());
        let worse = "fn a() { let = ; }\n\nfn f() -> i32 { 2 ) }\n";
        assert!(check("rust", broken_elsewhere, worse, "", "", &[]).is_err());
    }
}

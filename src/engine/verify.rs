//! Verification from outside the model: every revision is parsed (tree-sitter) in the whole
//! file and must not add syntax errors; it may not change the signatures of functions, types
//! or items in the selection unless a finding asks for it; and, when the user configured one, a
//! command (`verify.command`) runs on a scratch copy of the workspace with the revision in it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tree_sitter::{Language, Node, Parser};

use super::critique::RawFinding;

/// The grammar for a language id, when refine-ls was built with it.
pub fn grammar(language: &str) -> Option<Language> {
    match language {
        #[cfg(feature = "lang-rust")]
        "rust" => Some(tree_sitter_rust::LANGUAGE.into()),
        #[cfg(feature = "lang-python")]
        "python" => Some(tree_sitter_python::LANGUAGE.into()),
        #[cfg(feature = "lang-javascript")]
        "javascript" | "javascriptreact" => Some(tree_sitter_javascript::LANGUAGE.into()),
        #[cfg(feature = "lang-typescript")]
        "typescript" => Some(tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into()),
        #[cfg(feature = "lang-typescript")]
        "typescriptreact" => Some(tree_sitter_typescript::LANGUAGE_TSX.into()),
        #[cfg(feature = "lang-go")]
        "go" => Some(tree_sitter_go::LANGUAGE.into()),
        _ => None,
    }
}

fn parse(language: &str, text: &str) -> Option<tree_sitter::Tree> {
    let mut parser = Parser::new();
    parser.set_language(&grammar(language)?).ok()?;
    parser.parse(text, None)
}

/// Number of syntax errors (ERROR and MISSING nodes), or `None` for a language without grammar.
pub fn syntax_errors(language: &str, text: &str) -> Option<usize> {
    let tree = parse(language, text)?;
    let root = tree.root_node();
    if !root.has_error() {
        return Some(0);
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
    Some(count)
}

/// Node kinds whose header is an interface, per language, and whether the whole node counts
/// (types) or only the part before the body (functions, classes).
fn interface_kinds(language: &str) -> &'static [(&'static str, bool)] {
    match language {
        "rust" => &[
            ("function_item", false),
            ("function_signature_item", true),
            ("struct_item", true),
            ("enum_item", true),
            ("trait_item", false),
            ("type_item", true),
        ],
        "python" => &[("function_definition", false), ("class_definition", false)],
        "javascript" | "javascriptreact" | "typescript" | "typescriptreact" => &[
            ("function_declaration", false),
            ("generator_function_declaration", false),
            ("method_definition", false),
            ("class_declaration", false),
            ("interface_declaration", true),
            ("type_alias_declaration", true),
        ],
        "go" => &[
            ("function_declaration", false),
            ("method_declaration", false),
            ("type_declaration", true),
        ],
        _ => &[],
    }
}

/// Name → normalised signature of the interface items in `text`, or `None` without grammar.
pub fn signatures(language: &str, text: &str) -> Option<BTreeMap<String, String>> {
    let tree = parse(language, text)?;
    let kinds = interface_kinds(language);
    let mut out = BTreeMap::new();
    let mut stack = vec![tree.root_node()];
    let mut cursor = tree.walk();
    while let Some(node) = stack.pop() {
        if let Some((_, whole)) = kinds.iter().find(|(k, _)| *k == node.kind()) {
            if let Some(name) = item_name(&node, text) {
                let end = match (whole, node.child_by_field_name("body")) {
                    (false, Some(body)) => body.start_byte(),
                    _ => node.end_byte(),
                };
                let sig = text.get(node.start_byte()..end).unwrap_or("");
                out.insert(name, sig.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
        stack.extend(node.children(&mut cursor));
    }
    Some(out)
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
    if let (Some(before), Some(after)) = (
        syntax_errors(language, original_file),
        syntax_errors(language, revised_file),
    ) {
        if after > before {
            return Err(format!(
                "it does not parse: {after} syntax error(s) where the original file has {before}"
            ));
        }
    }
    if let (Some(before), Some(after)) = (
        signatures(language, original_selection),
        signatures(language, revised_selection),
    ) {
        for (name, sig) in &before {
            match after.get(name) {
                Some(new) if new == sig => {}
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
}

/// A scratch copy of the workspace, deleted when dropped.
pub struct Scratch {
    dir: tempfile::TempDir,
    file: PathBuf,
}

/// What a command run said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// Exit status 0.
    pub passed: bool,
    /// The end of stdout and stderr (at most 4,000 chars), for the reviser and the critic.
    pub output: String,
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
    /// Copies the workspace (without build output and VCS data) to a scratch folder.
    pub fn scratch(&self) -> Result<Scratch, String> {
        let dir = tempfile::Builder::new()
            .prefix("refine-verify-")
            .tempdir()
            .map_err(|e| format!("cannot make a scratch folder: {e}"))?;
        let mut budget = MAX_COPY_BYTES;
        copy_tree(&self.root, dir.path(), &mut budget).map_err(|e| {
            format!(
                "cannot copy the workspace {} for verify.command: {e}",
                self.root.display()
            )
        })?;
        Ok(Scratch {
            file: dir.path().join(&self.file),
            dir,
        })
    }

    /// Writes `text` as the reviewed file in the scratch copy and runs the command there.
    pub async fn run(&self, scratch: &Scratch, text: &str) -> Result<CommandResult, String> {
        tokio::fs::write(&scratch.file, text)
            .await
            .map_err(|e| format!("cannot write {}: {e}", scratch.file.display()))?;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(&self.command)
            .current_dir(scratch.dir.path())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let run = cmd.output();
        let output = match tokio::time::timeout(self.timeout, run).await {
            Err(_) => {
                return Ok(CommandResult {
                    passed: false,
                    output: format!(
                        "verify.command timed out after {} s",
                        self.timeout.as_secs()
                    ),
                });
            }
            Ok(Err(e)) => return Err(format!("cannot run verify.command `{}`: {e}", self.command)),
            Ok(Ok(o)) => o,
        };
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let tail: String = {
            let chars: Vec<char> = text.chars().collect();
            chars[chars.len().saturating_sub(4000)..].iter().collect()
        };
        // The scratch path means nothing to the model or the user.
        let tail = tail.replace(&scratch.dir.path().display().to_string(), ".");
        Ok(CommandResult {
            passed: output.status.success(),
            output: tail,
        })
    }
}

fn copy_tree(from: &Path, to: &Path, budget: &mut u64) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let kind = entry.file_type()?;
        let target = to.join(&name);
        if kind.is_dir() {
            if SKIP.iter().any(|s| name == *s) {
                continue;
            }
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target, budget)?;
        } else if kind.is_file() {
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

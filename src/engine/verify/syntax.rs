//! The syntax and intent checks (tree-sitter): a revision must not add syntax errors around
//! its change, nor change the signatures of functions, types or items in the selection unless
//! a finding asks for it. Trees are cached by content hash, so a review's original is parsed
//! once and each revision incrementally from it.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use tree_sitter::{InputEdit, Node, Parser, Point, Tree};

use crate::engine::critique::RawFinding;
use crate::engine::note::Rejection;
use crate::lang::{INTERFACE_CONTAINERS, grammar, interface_kinds};

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
) -> Result<(), Rejection> {
    if let Some((before, after)) =
        syntax_errors_around_change(language, original_file, revised_file)
        && after > before
    {
        return Err(Rejection::DoesNotParse { before, after });
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
                    return Err(Rejection::ChangesSignature {
                        name: name.clone(),
                        old: sig.clone(),
                        new: new.clone(),
                    });
                }
                None => return Err(Rejection::RemovesItem { name: name.clone() }),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            err.to_string().contains("changes the signature of `f`"),
            "{err}"
        );
        let ask = RawFinding {
            start_line: 1,
            end_line: 1,
            quote: "i32".into(),
            severity: crate::engine::critique::Severity::Warning,
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
        assert!(err.to_string().contains("removes or renames `f`"));
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

//! Which functions of a selection a harness can call: free functions with concrete parameter
//! types, at the top level of the file (a method needs a receiver, a generic function a
//! concrete type, a function inside a module or class another path).

use tree_sitter::{Node, Parser};

use super::{Language, Target};

/// The functions of `selection` (a byte range of `file`) that a harness can call, in order,
/// with their doc comments and doc examples; `Err` says, in one sentence, why none can be
/// ("`area` is a method: it needs a receiver").
pub fn targets(
    language: Language,
    file: &str,
    selection: std::ops::Range<usize>,
) -> Result<Vec<Target>, String> {
    let id = match language {
        Language::Rust => "rust",
        Language::Python => "python",
    };
    let grammar = crate::lang::grammar(id)
        .ok_or_else(|| format!("refine-ls was built without the {id} grammar"))?;
    let mut parser = Parser::new();
    parser
        .set_language(&grammar)
        .map_err(|e| format!("cannot load the {id} grammar: {e}"))?;
    let tree = parser
        .parse(file, None)
        .ok_or_else(|| "the file does not parse".to_owned())?;
    let mut found = Vec::new();
    collect(
        language,
        file,
        tree.root_node(),
        &selection,
        Place::Top,
        &mut found,
    );
    let mut callable = Vec::new();
    let mut first_why = None;
    for f in found {
        match f {
            Ok(t) => callable.push(t),
            Err(why) => {
                first_why.get_or_insert(why);
            }
        }
    }
    if !callable.is_empty() {
        return Ok(callable);
    }
    Err(first_why.unwrap_or_else(|| "the selection holds no function".to_owned()))
}

/// Where a function item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// At the top level of the file.
    Top,
    /// In an `impl`, a `trait` or a class.
    Type,
    /// In a `mod`.
    Module,
}

/// Whether `node` overlaps `sel` (an empty selection: the cursor is inside it).
fn overlaps(node: Node, sel: &std::ops::Range<usize>) -> bool {
    if sel.start >= sel.end {
        return node.start_byte() <= sel.start && sel.start < node.end_byte();
    }
    node.start_byte() < sel.end && sel.start < node.end_byte()
}

/// The functions under `node` that overlap `sel`, callable (`Ok`) or not (`Err`, why).
fn collect(
    language: Language,
    file: &str,
    node: Node,
    sel: &std::ops::Range<usize>,
    place: Place,
    out: &mut Vec<Result<Target, String>>,
) {
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        if !overlaps(child, sel) {
            continue;
        }
        let inner = match (language, child.kind()) {
            (Language::Rust, "function_item") => {
                out.push(rust_target(file, child, place));
                continue;
            }
            (Language::Python, "function_definition") => {
                out.push(python_target(file, child, place));
                continue;
            }
            (Language::Python, "decorated_definition") => {
                if let Some(def) = child.child_by_field_name("definition")
                    && def.kind() == "function_definition"
                {
                    out.push(python_target(file, def, place));
                    continue;
                }
                Place::Type
            }
            (Language::Rust, "impl_item" | "trait_item") => Place::Type,
            (Language::Rust, "mod_item") => Place::Module,
            (Language::Rust, "declaration_list") => place,
            (Language::Python, "class_definition") => Place::Type,
            (Language::Python, "block") => place,
            _ => continue,
        };
        let body = child.child_by_field_name("body").unwrap_or(child);
        let place = if place == Place::Top { inner } else { place };
        collect(language, file, body, sel, place, out);
    }
}

/// The text of `node`.
fn text<'a>(file: &'a str, node: Node) -> &'a str {
    file.get(node.byte_range()).unwrap_or_default()
}

/// The name of a function node.
fn name_of(file: &str, node: Node) -> String {
    node.child_by_field_name("name")
        .map(|n| text(file, n).to_owned())
        .unwrap_or_default()
}

/// The text from `start` to the function's body, trimmed.
fn signature(file: &str, start: usize, func: Node) -> String {
    let end = func
        .child_by_field_name("body")
        .map_or(func.end_byte(), |b| b.start_byte());
    file.get(start..end).unwrap_or_default().trim().to_owned()
}

/// A Rust function item as a target, or why it is none.
fn rust_target(file: &str, func: Node, place: Place) -> Result<Target, String> {
    let name = name_of(file, func);
    let has = |kind: &str| has_descendant(func.child_by_field_name("parameters"), kind);
    if has("self_parameter") {
        return Err(format!("`{name}` is a method: it needs a receiver"));
    }
    match place {
        Place::Type => {
            return Err(format!(
                "`{name}` is an associated function: it is called through its type"
            ));
        }
        Place::Module => return Err(format!("`{name}` is inside a module")),
        Place::Top => {}
    }
    let generic = func
        .child_by_field_name("type_parameters")
        .is_some_and(|tp| {
            let mut c = tp.walk();
            tp.named_children(&mut c).any(|p| {
                !matches!(
                    p.kind(),
                    "lifetime_parameter" | "lifetime" | "attribute_item"
                )
            })
        });
    if generic || has("abstract_type") {
        return Err(format!(
            "`{name}` has generic parameters without a concrete type"
        ));
    }
    let mut cursor = func.walk();
    let extern_ = func.children(&mut cursor).any(|c| {
        c.kind() == "function_modifiers" && {
            let mut c2 = c.walk();
            c.children(&mut c2).any(|m| m.kind() == "extern_modifier")
        }
    });
    if extern_ {
        return Err(format!("`{name}` is an extern function"));
    }
    let doc = rust_doc(file, func.start_byte());
    Ok(Target {
        examples: super::doc::examples(Language::Rust, &name, &doc),
        signature: signature(file, func.start_byte(), func),
        name,
        doc,
    })
}

/// Whether `node` has a descendant of `kind`.
fn has_descendant(node: Option<Node>, kind: &str) -> bool {
    let Some(node) = node else {
        return false;
    };
    if node.kind() == kind {
        return true;
    }
    let mut cursor = node.walk();
    node.named_children(&mut cursor)
        .any(|c| has_descendant(Some(c), kind))
}

/// The `///` lines right above `start` (attributes between them skipped), markers stripped.
fn rust_doc(file: &str, start: usize) -> String {
    let before = file.get(..start).unwrap_or_default();
    let mut lines: Vec<&str> = Vec::new();
    // The item's own line up to `start` is whitespace (or a visibility already in the node).
    for line in before
        .lines()
        .rev()
        .skip(usize::from(!before.ends_with('\n')))
    {
        let t = line.trim_start();
        if let Some(doc) = t.strip_prefix("///") {
            lines.push(doc.strip_prefix(' ').unwrap_or(doc));
        } else if t.starts_with("#[") {
            continue;
        } else {
            break;
        }
    }
    lines.reverse();
    lines.join("\n")
}

/// A Python function definition as a target, or why it is none.
fn python_target(file: &str, func: Node, place: Place) -> Result<Target, String> {
    let name = name_of(file, func);
    if place != Place::Top {
        return Err(format!("`{name}` is a method: it needs a receiver"));
    }
    let mut cursor = func.walk();
    if func.children(&mut cursor).any(|c| c.kind() == "async") {
        return Err(format!("`{name}` is async: async functions are not probed"));
    }
    let doc = python_doc(file, func);
    let sig = signature(file, func.start_byte(), func);
    Ok(Target {
        examples: super::doc::examples(Language::Python, &name, &doc),
        signature: sig.strip_suffix(':').unwrap_or(&sig).trim_end().to_owned(),
        name,
        doc,
    })
}

/// The docstring of a Python function: the body's first statement when it is a string,
/// quotes stripped and dedented.
fn python_doc(file: &str, func: Node) -> String {
    let Some(body) = func.child_by_field_name("body") else {
        return String::new();
    };
    let Some(first) = body.named_child(0) else {
        return String::new();
    };
    let Some(string) = first
        .named_child(0)
        .filter(|s| first.kind() == "expression_statement" && s.kind() == "string")
    else {
        return String::new();
    };
    let raw = text(file, string);
    let raw = raw.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let inner = ["\"\"\"", "'''", "\"", "'"]
        .iter()
        .find_map(|q| raw.strip_prefix(q).and_then(|r| r.strip_suffix(q)))
        .unwrap_or(raw);
    dedent(inner)
}

/// Python's `inspect.cleandoc`: the first line stripped, the others dedented by their common
/// indentation, blank lines at the start and end dropped.
fn dedent(doc: &str) -> String {
    let mut lines = doc.lines();
    let first = lines.next().unwrap_or_default().trim().to_owned();
    let rest: Vec<&str> = lines.collect();
    let indent = rest
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: Vec<String> = vec![first];
    out.extend(rest.iter().map(|l| {
        l.get(indent..)
            .unwrap_or(l.trim_start())
            .trim_end()
            .to_owned()
    }));
    while out.first().is_some_and(|l| l.is_empty()) {
        out.remove(0);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

#[cfg(test)]
mod tests;

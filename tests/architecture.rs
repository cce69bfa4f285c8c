//! The shape of the crate, checked on its source: no import cycle between the files of `src/`
//! (inside one folder too), imports pointing down the layers only, and no file of `src/` over
//! 700 lines.
//!
//! Imports are read from the text: `use crate::…`, `use super::…`, `use self::…`, `pub use`,
//! grouped (`use crate::{a, b::c}`) and over several lines, a child module named bare
//! (`use child::…`, `child::f()`), and paths used inline in code (`crate::x::y(…)`). Each is
//! resolved to the longest module path that is a file of `src/`: `crate::a::b::Item` is an
//! import of the file of `a::b`. A `mod x;` declaration is not an import (re-exporting a child
//! with `pub use` is). Comments and string literals are skipped, and so are `#[cfg(test)]`
//! inline modules (a test may reach anywhere); a test module in a file of its own is read like
//! any file.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// Import cycles tolerated: none. An entry here (the modules of one strongly connected
/// component, sorted) would let a cycle stand while it is being broken; the test fails when an
/// entry is no longer a cycle, so that the list only shrinks.
const KNOWN_CYCLES: &[&[&str]] = &[];

/// Files of `src/` tolerated over [`MAX_LINES`]: none. The test fails when an entry is no
/// longer over, so that the list only shrinks.
const KNOWN_BIG_FILES: &[&str] = &[];

/// The most lines a file of `src/` may have.
const MAX_LINES: usize = 700;

/// The layers, top first, by their top-level modules (`crate`: `lib.rs` and `main.rs`). A
/// module may import from its own layer and those below; every module not named here is a
/// foundation, the lowest layer.
const LAYERS: &[(&str, &[&str])] = &[
    ("the crate root", &["crate"]),
    ("protocol / command line", &["lsp", "cli"]),
    ("service", &["service"]),
    ("engine", &["engine"]),
    ("providers", &["llm"]),
];

/// A module path (`["engine", "verify"]`); empty: the crate root.
type Module = Vec<String>;

/// Where an import is written.
#[derive(Debug, Clone)]
struct Site {
    file: String,
    line: usize,
}

/// Each module's imports of other modules, with where the first of each is written.
type Graph = BTreeMap<Module, BTreeMap<Module, Site>>;

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".to_owned()
    } else {
        m.join("::")
    }
}

/// Every `.rs` file under `src/`: its path (`src/a/b.rs`), its module and its text.
fn source_files() -> Vec<(String, Module, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src/") {
            let path = entry.expect("read src/").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(&src).expect("under src/");
                let rel: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                let text = std::fs::read_to_string(&path).expect("read a source file");
                files.push((format!("src/{}", rel.join("/")), module_of(&rel), text));
            }
        }
    }
    files.sort();
    files
}

/// `a/b.rs` and `a/b/mod.rs` → `a::b`; `lib.rs` and `main.rs` → the crate root.
fn module_of(rel: &[String]) -> Module {
    let mut m: Module = rel.to_vec();
    if let Some(last) = m.last_mut() {
        *last = last.trim_end_matches(".rs").to_owned();
    }
    if m.last().is_some_and(|l| l == "mod") {
        m.pop();
    }
    if m == ["lib"] || m == ["main"] {
        m.clear();
    }
    m
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Rust source as identifiers, `::` and punctuation, without comments, strings, characters
/// and numbers.
fn lex(text: &str) -> Vec<Token> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        let tok = if let Some(end) = skipped_end(&c, i) {
            line += c[i..end].iter().filter(|ch| **ch == '\n').count();
            i = end;
            None
        } else if ch.is_whitespace() {
            line += usize::from(ch == '\n');
            i += 1;
            None
        } else if ident_start(ch) || ch.is_ascii_digit() {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            // A number (`1u8`) is no identifier.
            ident_start(ch).then(|| Tok::Ident(c[start..i].iter().collect()))
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            i += 2;
            Some(Tok::PathSep)
        } else {
            i += 1;
            Some(Tok::Punct(ch))
        };
        if let Some(tok) = tok {
            out.push(Token { tok, line });
        }
    }
    out
}

fn ident_start(ch: char) -> bool {
    ch.is_ascii_alphabetic() || ch == '_'
}

/// Where what starts at `i` and is skipped ends: a comment, a string or character literal; for
/// a lifetime or a raw identifier (`'a`, `r#type`), where its name starts. `None`: nothing
/// skipped starts there. Always past `i`.
fn skipped_end(c: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let ch = c[i];
    let end = if ch == '/' && at(i + 1) == '/' {
        (i..c.len()).find(|k| c[*k] == '\n').unwrap_or(c.len())
    } else if ch == '/' && at(i + 1) == '*' {
        let mut depth = 0usize;
        let mut j = i;
        while j < c.len() {
            if c[j] == '/' && at(j + 1) == '*' {
                depth += 1;
                j += 2;
            } else if c[j] == '*' && at(j + 1) == '/' {
                depth = depth.saturating_sub(1);
                j += 2;
                if depth == 0 {
                    break;
                }
            } else {
                j += 1;
            }
        }
        j
    } else if let Some(end) = raw_string_end(c, i) {
        end
    } else if ch == '"' || (matches!(ch, 'b' | 'c') && at(i + 1) == '"') {
        let mut j = if ch == '"' { i + 1 } else { i + 2 };
        while j < c.len() && c[j] != '"' {
            j += if c[j] == '\\' { 2 } else { 1 };
        }
        j + 1
    } else if ch == '\'' || (ch == 'b' && at(i + 1) == '\'') {
        let q = if ch == '\'' { i } else { i + 1 };
        if at(q + 1) == '\\' {
            // An escaped character: `'\n'`, `'\''`, `'\u{1F600}'`.
            (q + 3..c.len())
                .find(|k| c[*k] == '\'')
                .map_or(c.len(), |k| k + 1)
        } else if at(q + 2) == '\'' {
            q + 3
        } else {
            // A lifetime or a label: its name follows as an identifier.
            q + 1
        }
    } else if ch == 'r' && at(i + 1) == '#' && ident_start(at(i + 2)) {
        i + 2
    } else {
        return None;
    };
    Some(end.min(c.len()))
}

/// Where a raw string literal starting at `i` (`r"…"`, `r#"…"#`, `br"…"`) ends.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(c.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = c[j..].iter().take_while(|ch| **ch == '#').count();
    j += hashes;
    if c.get(j) != Some(&'"') {
        return None;
    }
    let closes = |k: usize| {
        c[k] == '"'
            && c.get(k + 1..k + 1 + hashes)
                .is_some_and(|h| h.iter().all(|ch| *ch == '#'))
    };
    let end = (j + 1..c.len()).find(|k| closes(*k));
    Some(end.map_or(c.len(), |k| k + 1 + hashes))
}

fn is_ident(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token { tok: Tok::Ident(w), .. }) if w == word)
}

fn is_tok(t: Option<&Token>, tok: &Tok) -> bool {
    t.is_some_and(|t| t.tok == *tok)
}

fn ident(t: Option<&Token>) -> Option<&str> {
    match t {
        Some(Token {
            tok: Tok::Ident(w), ..
        }) => Some(w),
        _ => None,
    }
}

/// Whether the `mod` at `at` carries a `#[cfg(…test…)]` attribute (not `cfg(not(test))`).
fn is_test_module(toks: &[Token], at: usize) -> bool {
    let visibility = |t: &Token| match &t.tok {
        Tok::Ident(w) => ["pub", "crate", "super", "self", "in"].contains(&w.as_str()),
        Tok::Punct(p) => *p == '(' || *p == ')',
        Tok::PathSep => true,
    };
    let mut j = at;
    while j > 0 && visibility(&toks[j - 1]) {
        j -= 1;
    }
    // `j` is just past the attributes, if any.
    while j > 0 && is_tok(toks.get(j - 1), &Tok::Punct(']')) {
        let close = j - 1;
        let mut depth = 0;
        let mut open = close;
        loop {
            match toks[open].tok {
                Tok::Punct(']') => depth += 1,
                Tok::Punct('[') => depth -= 1,
                _ => {}
            }
            if depth == 0 || open == 0 {
                break;
            }
            open -= 1;
        }
        let inner = &toks[open + 1..close];
        let has = |w: &str| inner.iter().any(|t| is_ident(Some(t), w));
        if is_ident(inner.first(), "cfg") && has("test") && !has("not") {
            return true;
        }
        j = open.saturating_sub(1);
    }
    false
}

/// Parses the use tree at `i` under `prefix`, pushing each path it names (a group's `self`
/// and a glob name their prefix). Returns the index after it.
fn use_tree(
    toks: &[Token],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let mut path = prefix.to_vec();
    if is_tok(toks.get(i), &Tok::PathSep) {
        i += 1;
    }
    loop {
        let Some(t) = toks.get(i) else { return i };
        match &t.tok {
            Tok::Punct('{') => {
                i += 1;
                while let Some(t) = toks.get(i) {
                    match t.tok {
                        Tok::Punct('}') => return i + 1,
                        Tok::Punct(',') => i += 1,
                        _ => i = use_tree(toks, i, &path, out).max(i + 1),
                    }
                }
                return i;
            }
            Tok::Punct('*') => {
                out.push((path, t.line));
                return i + 1;
            }
            Tok::Ident(seg) => {
                i += 1;
                if seg == "self" && !path.is_empty() {
                    out.push((path, t.line));
                } else {
                    path.push(seg.clone());
                    if is_tok(toks.get(i), &Tok::PathSep) {
                        i += 1;
                        continue;
                    }
                    out.push((path, t.line));
                }
                if is_ident(toks.get(i), "as") {
                    i += 2;
                }
                return i;
            }
            _ => return i,
        }
    }
}

/// The module paths a file names, each with its line and the (inline) module it is named
/// in: `use` trees, and paths in code that start with `crate`, `super`, `self` or any name
/// followed by `::` (resolving drops those that name no module of ours).
fn named_paths(file_module: &[String], text: &str) -> Vec<(Module, Vec<String>, usize)> {
    let toks = lex(text);
    let mut out = Vec::new();
    // Inline modules open here: (name, brace depth outside it, under `#[cfg(test)]`).
    let mut scopes: Vec<(String, usize, bool)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match toks[i].tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if scopes.last().is_some_and(|s| s.1 == depth) {
                    scopes.pop();
                }
            }
            _ => {}
        }
        if scopes.iter().any(|s| s.2) {
            i += 1;
            continue;
        }
        let scope: Module = file_module
            .iter()
            .cloned()
            .chain(scopes.iter().map(|s| s.0.clone()))
            .collect();
        let before = i.checked_sub(1).and_then(|b| toks.get(b));
        if is_ident(toks.get(i), "mod")
            && is_tok(toks.get(i + 2), &Tok::Punct('{'))
            && let Some(m) = ident(toks.get(i + 1))
        {
            scopes.push((m.to_owned(), depth, is_test_module(&toks, i)));
            depth += 1;
            i += 3;
            continue;
        }
        if is_ident(toks.get(i), "use") && !is_tok(toks.get(i + 1), &Tok::Punct('<')) {
            let mut paths = Vec::new();
            i = use_tree(&toks, i + 1, &[], &mut paths).max(i + 1);
            out.extend(paths.into_iter().map(|(p, line)| (scope.clone(), p, line)));
            continue;
        }
        let starts_path = ident(toks.get(i)).is_some()
            && is_tok(toks.get(i + 1), &Tok::PathSep)
            && !is_tok(before, &Tok::PathSep)
            && !is_ident(before, "in");
        if starts_path {
            let line = toks[i].line;
            let mut path = Vec::new();
            let mut j = i;
            while let Some(seg) = ident(toks.get(j)) {
                path.push(seg.to_owned());
                if !is_tok(toks.get(j + 1), &Tok::PathSep) {
                    j += 1;
                    break;
                }
                j += 2;
            }
            out.push((scope, path, line));
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// The module of ours `path` (named in `scope`) leads to: the longest module path that is a
/// file. `None`: not ours (`std::…`, a crate, a type's associated item).
fn resolve(path: &[String], scope: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    let first = path.first()?.as_str();
    let mut full: Module = match first {
        "crate" => Vec::new(),
        "self" => scope.to_vec(),
        "super" => {
            let ups = path.iter().take_while(|s| *s == "super").count();
            scope[..scope.len().checked_sub(ups)?].to_vec()
        }
        _ => {
            let mut child = scope.to_vec();
            child.push(first.to_owned());
            if !modules.contains(&child) {
                return None;
            }
            scope.to_vec()
        }
    };
    let rest = match first {
        "crate" | "self" => &path[1..],
        "super" => &path[path.iter().take_while(|s| *s == "super").count()..],
        _ => path,
    };
    full.extend(rest.iter().cloned());
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|m| modules.contains(m))
}

/// The imports between the files, each with where it is first written. Imports of a file's
/// own module and of the crate root (which only declares modules) are left out.
fn graph(files: &[(String, Module, String)]) -> Graph {
    let modules: BTreeSet<Module> = files.iter().map(|f| f.1.clone()).collect();
    let mut g = Graph::new();
    for (file, module, text) in files {
        let edges = g.entry(module.clone()).or_default();
        for (scope, path, line) in named_paths(module, text) {
            let Some(target) = resolve(&path, &scope, &modules) else {
                continue;
            };
            if target != *module && !target.is_empty() {
                edges.entry(target).or_insert_with(|| Site {
                    file: file.clone(),
                    line,
                });
            }
        }
    }
    g
}

/// The strongly connected components of more than one module (Tarjan), each sorted.
fn cycles(g: &Graph) -> Vec<Vec<Module>> {
    struct Tarjan<'a> {
        g: &'a Graph,
        next: usize,
        index: BTreeMap<&'a Module, (usize, usize)>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a Module) {
            self.index.insert(v, (self.next, self.next));
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            let g = self.g;
            for w in g.get(v).into_iter().flat_map(BTreeMap::keys) {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.index[w].1.min(self.index[v].1);
                    self.index.entry(v).and_modify(|e| e.1 = low);
                } else if self.on_stack.contains(w) {
                    let low = self.index[w].0.min(self.index[v].1);
                    self.index.entry(v).and_modify(|e| e.1 = low);
                }
            }
            if self.index[v].0 == self.index[v].1 {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        g,
        next: 0,
        index: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.found.sort();
    t.found
}

/// One cycle through the component's first module (breadth first), and every import inside
/// the component with where it is written.
fn describe_cycle(g: &Graph, component: &[Module]) -> String {
    let inside: BTreeSet<&Module> = component.iter().collect();
    let start = &component[0];
    let mut came_from: BTreeMap<&Module, &Module> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    let mut closing = None;
    while let Some(v) = queue.pop_front() {
        for w in g[v].keys().filter(|w| inside.contains(w)) {
            if w == start {
                closing = Some(v);
                break;
            }
            if let Entry::Vacant(e) = came_from.entry(w) {
                e.insert(v);
                queue.push_back(w);
            }
        }
        if closing.is_some() {
            break;
        }
    }
    let mut ring = vec![start.clone()];
    let mut v = closing;
    while let Some(m) = v.filter(|m| *m != start) {
        ring.push(m.clone());
        v = came_from.get(m).copied();
    }
    ring.push(start.clone());
    let last = ring.len() - 1;
    ring[1..last].reverse();
    let names = |ms: &[Module], sep: &str| {
        ms.iter()
            .map(Vec::as_slice)
            .map(name)
            .collect::<Vec<_>>()
            .join(sep)
    };
    let mut out = format!(
        "import cycle: {} (the cycle among {})\n",
        names(&ring, " -> "),
        names(component, ", ")
    );
    for from in component {
        for (to, site) in g[from].iter().filter(|(to, _)| inside.contains(to)) {
            out.push_str(&format!(
                "    {} -> {} ({}:{})\n",
                name(from),
                name(to),
                site.file,
                site.line
            ));
        }
    }
    out
}

/// The layer of a module: its index in [`LAYERS`], foundations below all of them.
fn layer(m: &[String]) -> usize {
    let top = m.first().map_or("crate", String::as_str);
    LAYERS
        .iter()
        .position(|(_, tops)| tops.contains(&top))
        .unwrap_or(LAYERS.len())
}

fn layer_name(index: usize) -> &'static str {
    LAYERS.get(index).map_or("foundations", |l| l.0)
}

#[test]
fn no_import_cycle_between_files() {
    let g = graph(&source_files());
    let found = cycles(&g);
    let known: Vec<Vec<Module>> = KNOWN_CYCLES
        .iter()
        .map(|c| {
            c.iter()
                .map(|m| m.split("::").map(str::to_owned).collect())
                .collect()
        })
        .collect();
    let mut problems = Vec::new();
    for component in found.iter().filter(|c| !known.contains(c)) {
        problems.push(describe_cycle(&g, component));
    }
    for stale in known.iter().filter(|k| !found.contains(k)) {
        let names: Vec<String> = stale.iter().map(Vec::as_slice).map(name).collect();
        problems.push(format!(
            "KNOWN_CYCLES lists {names:?}, which is no longer a cycle: take it off the list"
        ));
    }
    let now: Vec<Vec<String>> = found
        .iter()
        .map(|c| c.iter().map(Vec::as_slice).map(name).collect())
        .collect();
    assert!(
        problems.is_empty(),
        "{}\n(the cycles now: {now:?})",
        problems.join("\n")
    );
}

#[test]
fn imports_point_down_the_layers() {
    let g = graph(&source_files());
    let mut breaches = Vec::new();
    for (from, imports) in &g {
        for (to, site) in imports {
            if layer(from) > layer(to) {
                breaches.push(format!(
                    "{} ({}) imports {} ({}) at {}:{}",
                    name(from),
                    layer_name(layer(from)),
                    name(to),
                    layer_name(layer(to)),
                    site.file,
                    site.line
                ));
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "imports up the layers:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn no_source_file_over_700_lines() {
    let big: Vec<(String, usize)> = source_files()
        .into_iter()
        .map(|(file, _, text)| (file, text.lines().count()))
        .filter(|(_, lines)| *lines > MAX_LINES)
        .collect();
    let mut problems: Vec<String> = big
        .iter()
        .filter(|(file, _)| !KNOWN_BIG_FILES.contains(&file.as_str()))
        .map(|(file, lines)| format!("{file} has {lines} lines (at most {MAX_LINES})"))
        .collect();
    for stale in KNOWN_BIG_FILES {
        if !big.iter().any(|(file, _)| file == stale) {
            problems.push(format!(
                "KNOWN_BIG_FILES lists {stale}, which is no longer over {MAX_LINES} lines: take it off the list"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The reader itself, on a made-up crate.
#[test]
fn imports_are_read_grouped_inline_and_relative() {
    let modules: BTreeSet<Module> = ["", "a", "a::b", "a::c", "d", "e", "f", "g", "h"]
        .iter()
        .map(|m| {
            m.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect();
    let targets = |module: &str, text: &str| -> BTreeSet<String> {
        let module: Module = module.split("::").map(str::to_owned).collect();
        named_paths(&module, text)
            .into_iter()
            .filter_map(|(scope, path, _)| resolve(&path, &scope, &modules))
            .filter(|t| *t != module)
            .map(|t| name(&t))
            .collect()
    };
    let child = r##"
        use super::{c, self as parent};
        pub use crate::{
            d::Item,
            e::{self, Other},
        };
        use std::collections::BTreeMap;
        // crate::f::commented();
        /* crate::f::in_a_block /* nested */ crate::f::still(); */
        fn run<'a>(x: &'a str) -> char {
            let _ = "crate::f::quoted \" crate::f::escaped";
            let _ = r#"crate::f::raw"#;
            crate::g::run(x);
            '\''
        }
        #[cfg(test)]
        mod tests {
            use crate::h::Helper;
        }
    "##;
    let want: BTreeSet<String> = ["a", "a::c", "d", "e", "g"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(targets("a::b", child), want);
    let parent = "mod b;\nmod c;\npub use c::Thing;\nfn f() { b::go(); }\n";
    let want: BTreeSet<String> = ["a::b", "a::c"].iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(targets("a", parent), want);
}

/// The cycle finder and its report, on a made-up graph.
#[test]
fn a_cycle_is_found_and_shown_with_its_imports() {
    let m = |s: &str| -> Module { s.split("::").map(str::to_owned).collect() };
    let site = |line| Site {
        file: "src/x.rs".to_owned(),
        line,
    };
    let mut g = Graph::new();
    g.entry(m("a")).or_default().insert(m("a::b"), site(1));
    g.entry(m("a::b")).or_default().insert(m("a::c"), site(2));
    g.entry(m("a::c")).or_default().insert(m("a"), site(3));
    g.entry(m("a::c")).or_default().insert(m("d"), site(4));
    g.entry(m("d")).or_default();
    let found = cycles(&g);
    assert_eq!(found, vec![vec![m("a"), m("a::b"), m("a::c")]]);
    let shown = describe_cycle(&g, &found[0]);
    assert!(
        shown.starts_with("import cycle: a -> a::b -> a::c -> a (the cycle among a, a::b, a::c)\n"),
        "{shown}"
    );
    assert!(shown.contains("a::c -> a (src/x.rs:3)"), "{shown}");
    assert!(!shown.contains("-> d"), "{shown}");
}

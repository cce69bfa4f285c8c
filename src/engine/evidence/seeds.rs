//! Inputs the evidence stage makes itself from a function's parameter types (edge cases
//! first: empty, one element, zero, negative), and the small repairs a model's argument lists
//! need to fit the signature (`[1, 2]` for a `&[i64]` parameter is `&[1, 2]`; for a `Vec<i32>`
//! it is `vec![1, 2]`). Small models propose a couple of ordinary inputs and forget the `&`:
//! the types know better.

use crate::probe::{Call, Language, Target};

/// At most this many inputs per function are made from its types.
const MAX_SEEDS: usize = 4;

/// The parameter types of a signature (`fn f(xs: &[i64], n: usize) -> T` → `&[i64]`, `usize`;
/// Python annotations, `None` where a parameter has none).
pub(crate) fn parameter_types(language: Language, signature: &str) -> Vec<Option<String>> {
    let Some(open) = signature.find('(') else {
        return Vec::new();
    };
    let Some(inner) = signature.get(open + 1..).and_then(|rest| {
        let close = matching_close(rest)?;
        rest.get(..close)
    }) else {
        return Vec::new();
    };
    split_top(inner)
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .filter(|p| {
            !matches!(p.trim(), "self" | "*" | "/")
                && !p.trim().starts_with("**")
                && !p.trim().starts_with('*')
        })
        .map(|p| {
            let p = match language {
                // A default value is not part of the type.
                Language::Python => p.split('=').next().unwrap_or(p),
                Language::Rust => p,
            };
            p.split_once(':').map(|(_, t)| t.trim().to_owned())
        })
        .collect()
}

/// Inputs from the types of `target`'s parameters: the i-th canonical value of each type
/// together, edge cases first; none when a type has no canonical values.
pub(crate) fn seeds(language: Language, target: &Target) -> Vec<Call> {
    let types = parameter_types(language, &target.signature);
    if types.is_empty() {
        return Vec::new();
    }
    let values: Option<Vec<Vec<String>>> = types
        .iter()
        .map(|t| t.as_deref().and_then(|t| canonical(language, t)))
        .collect();
    let Some(values) = values else {
        return Vec::new();
    };
    let n = values
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .min(MAX_SEEDS);
    (0..n)
        .map(|i| Call {
            function: target.name.clone(),
            args: values
                .iter()
                .map(|v| v.get(i).or_else(|| v.last()).cloned().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", "),
            expected: None,
        })
        .collect()
}

/// Canonical values of a type, edge cases first.
fn canonical(language: Language, ty: &str) -> Option<Vec<String>> {
    let t: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
    let list = |items: &[&str]| Some(items.iter().map(|s| (*s).to_owned()).collect());
    match language {
        Language::Rust => {
            let (prefix, inner) =
                if let Some(e) = t.strip_prefix("&[").and_then(|r| r.strip_suffix(']')) {
                    ("&", e.to_owned())
                } else if let Some(e) = t.strip_prefix("&Vec<").and_then(|r| r.strip_suffix('>')) {
                    ("&vec!", e.to_owned())
                } else if let Some(e) = t.strip_prefix("Vec<").and_then(|r| r.strip_suffix('>')) {
                    ("vec!", e.to_owned())
                } else {
                    return scalar_rust(&t).map(|v| v.into_iter().map(str::to_owned).collect());
                };
            let element = scalar_rust(&inner)?;
            let pick = |i: usize| element.get(i).copied().unwrap_or("0");
            let lists = [
                String::new(),
                pick(2).to_owned(),
                format!("{}, {}, {}, {}", pick(1), pick(2), pick(3), pick(2)),
                format!("{}, {}", pick(3), pick(0)),
            ];
            Some(lists.iter().map(|l| format!("{prefix}[{l}]")).collect())
        }
        Language::Python => match t.as_str() {
            "int" => list(&["0", "1", "-1", "2"]),
            "float" => list(&["0.0", "1.5", "-2.0", "2.0"]),
            "str" => list(&["''", "'a'", "'abc'", "'Ab a'"]),
            "bool" => list(&["True", "False"]),
            "list[int]" | "List[int]" => list(&["[]", "[2]", "[1, 2, 3, 2]", "[-1, 0]"]),
            "list[float]" | "List[float]" => {
                list(&["[]", "[2.0]", "[1.0, 2.0, 3.5]", "[-1.5, 0.0]"])
            }
            "list[str]" | "List[str]" => list(&["[]", "['a']", "['a', 'b', 'a']", "['']"]),
            _ => None,
        },
    }
}

/// Canonical values of a Rust scalar type: [zero-ish, one, two, negative-or-other].
fn scalar_rust(t: &str) -> Option<Vec<&'static str>> {
    Some(match t {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => vec!["0", "1", "2", "-1"],
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => vec!["0", "1", "2", "3"],
        "f32" | "f64" => vec!["0.0", "1.5", "2.0", "-2.5"],
        "bool" => vec!["false", "true"],
        "&str" => vec!["\"\"", "\"a\"", "\"abc\"", "\"Ab a\""],
        "String" => vec![
            "String::new()",
            "String::from(\"a\")",
            "String::from(\"abc\")",
            "String::from(\"Ab a\")",
        ],
        "char" => vec!["'a'", "'Z'", "'0'", "' '"],
        _ => return None,
    })
}

/// A model's argument list fitted to the parameter types where the fix is certain: a `&`
/// before a list or string for a reference parameter, `vec!` before a list for a `Vec`,
/// `String::from` around a literal for a `String`.
pub(crate) fn repair(language: Language, target: &Target, args: &str) -> String {
    if language != Language::Rust {
        return args.to_owned();
    }
    let types = parameter_types(language, &target.signature);
    let parts = split_top(args);
    if parts.len() != types.len() {
        return args.to_owned();
    }
    parts
        .iter()
        .zip(&types)
        .map(|(a, t)| {
            let a = a.trim();
            let t: String = t
                .as_deref()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let list = a.starts_with('[');
            let string = a.starts_with('"');
            if (t.starts_with("&[") && list) || (t == "&str" && a.starts_with("String::from(")) {
                format!("&{a}")
            } else if t.starts_with("&Vec<") && list {
                format!("&vec!{a}")
            } else if t.starts_with("Vec<") && list {
                format!("vec!{a}")
            } else if t == "String" && string {
                format!("String::from({a})")
            } else if t.starts_with("&Vec<") && a.starts_with("vec!") {
                format!("&{a}")
            } else {
                a.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the bracket that closes an already open `(` is in `s`.
fn matching_close(s: &str) -> Option<usize> {
    let mut depth = 1usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' | '<' => depth += 1,
            ')' | ']' | '}' | '>' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `s` split at commas outside brackets and string literals.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0usize;
    walk(s, |i, c, depth| {
        if c == ',' && depth == 0 {
            parts.push(s.get(start..i).unwrap_or(""));
            start = i + 1;
        }
        true
    });
    parts.push(s.get(start..).unwrap_or(""));
    parts
}

/// Whether the brackets of `s` (outside string literals) close in order and all close.
pub(crate) fn balanced(s: &str) -> bool {
    let mut last = 0i64;
    walk(s, |_, _, depth| {
        last = depth;
        depth >= 0
    }) && last == 0
}

/// Calls `f(byte index, char, depth after it)` for each char of `s` outside string and char
/// literals (`<`/`>` count as brackets, `->` does not); stops, returning `false`, when `f` does.
fn walk(s: &str, mut f: impl FnMut(usize, char, i64) -> bool) -> bool {
    let mut depth = 0i64;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut prev = ' ';
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            prev = c;
            continue;
        }
        match c {
            '"' => quote = Some(c),
            // A char literal, not a lifetime (`&'a`).
            '\'' if prev != '&' => quote = Some(c),
            '(' | '[' | '{' | '<' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            '>' if prev != '-' => depth -= 1,
            _ => {}
        }
        prev = c;
        if !f(i, c, depth) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(sig: &str) -> Target {
        Target {
            name: "f".into(),
            signature: sig.into(),
            doc: String::new(),
            examples: Vec::new(),
        }
    }

    #[test]
    fn parameter_types_are_read_from_the_signature() {
        assert_eq!(
            parameter_types(
                Language::Rust,
                "pub fn f(xs: &[i64], m: HashMap<u8, Vec<i32>>) -> i64"
            ),
            vec![Some("&[i64]".into()), Some("HashMap<u8, Vec<i32>>".into())]
        );
        assert_eq!(
            parameter_types(Language::Python, "def f(xs: list[int], n=3, *args)"),
            vec![Some("list[int]".into()), None]
        );
    }

    #[test]
    fn seeds_start_with_edge_cases_and_need_every_type() {
        let s = seeds(Language::Rust, &target("fn f(xs: &[i64]) -> i64"));
        let args: Vec<&str> = s.iter().map(|c| c.args.as_str()).collect();
        assert_eq!(args, ["&[]", "&[2]", "&[1, 2, -1, 2]", "&[-1, 0]"]);
        let s = seeds(Language::Rust, &target("fn f(v: Vec<f32>, t: f32) -> bool"));
        assert_eq!(s[0].args, "vec![], 0.0");
        assert!(seeds(Language::Rust, &target("fn f(m: Foo) -> i64")).is_empty());
        assert_eq!(
            seeds(Language::Python, &target("def f(s: str) -> int"))[0].args,
            "''"
        );
        assert!(seeds(Language::Python, &target("def f(s)")).is_empty());
    }

    #[test]
    fn a_models_arguments_get_their_missing_reference_or_vec() {
        let t = target("fn f(xs: &[i64], v: Vec<i32>, s: String, r: &str) -> i64");
        assert_eq!(
            repair(Language::Rust, &t, "[1, 2], [3], \"a\", \"b\""),
            "&[1, 2], vec![3], String::from(\"a\"), \"b\""
        );
        assert_eq!(repair(Language::Rust, &t, "[1, 2]"), "[1, 2]");
        let t = target("fn f(xs: &Vec<f64>) -> f64");
        assert_eq!(repair(Language::Rust, &t, "vec![1.0]"), "&vec![1.0]");
    }
}

use super::*;

fn all(language: Language, file: &str) -> Result<Vec<Target>, String> {
    targets(language, file, 0..file.len())
}

const RUST: &str = "use std::fmt;\n\n/// Returns the sum.\n///\n/// ```\n/// assert_eq!(sum_even(&[2]), 2);\n/// ```\n#[inline]\npub fn sum_even(xs: &[i64]) -> i64 {\n    xs.iter().sum()\n}\n\nfn longest<'a>(a: &'a str, b: &'a str) -> &'a str { a }\n";

#[test]
fn rust_top_level_functions_with_their_docs_and_examples() {
    let t = all(Language::Rust, RUST).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].name, "sum_even");
    assert_eq!(t[0].signature, "pub fn sum_even(xs: &[i64]) -> i64");
    assert_eq!(
        t[0].doc,
        "Returns the sum.\n\n```\nassert_eq!(sum_even(&[2]), 2);\n```"
    );
    assert_eq!(t[0].examples.len(), 1);
    assert_eq!(t[0].examples[0].expected.as_deref(), Some("2"));
    // Lifetimes alone are fine.
    assert_eq!(t[1].name, "longest");
    assert_eq!(t[1].doc, "");
}

#[test]
fn only_functions_overlapping_the_selection() {
    let at = RUST.find("fn longest").unwrap();
    let t = targets(Language::Rust, RUST, at..at + 3).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].name, "longest");
    // A cursor inside the body.
    let at = RUST.find("xs.iter()").unwrap();
    assert_eq!(
        targets(Language::Rust, RUST, at..at).unwrap()[0].name,
        "sum_even"
    );
    assert_eq!(
        targets(Language::Rust, RUST, 0..5).unwrap_err(),
        "the selection holds no function"
    );
}

#[test]
fn rust_methods_generics_modules_and_extern_are_not_callable() {
    let m = "struct S;\nimpl S {\n    fn area(&self) -> f64 { 1.0 }\n    fn new() -> S { S }\n}\n";
    assert_eq!(
        all(Language::Rust, m).unwrap_err(),
        "`area` is a method: it needs a receiver"
    );
    let at = m.find("fn new").unwrap();
    assert!(
        targets(Language::Rust, m, at..at + 2)
            .unwrap_err()
            .contains("`new` is an associated")
    );
    let g = "fn f<T: Clone>(x: T) -> T { x }\n";
    assert_eq!(
        all(Language::Rust, g).unwrap_err(),
        "`f` has generic parameters without a concrete type"
    );
    let i = "fn g(x: impl Fn()) {}\n";
    assert!(
        all(Language::Rust, i)
            .unwrap_err()
            .contains("`g` has generic")
    );
    let md = "mod inner {\n    pub fn f() -> i32 { 1 }\n}\n";
    assert_eq!(
        all(Language::Rust, md).unwrap_err(),
        "`f` is inside a module"
    );
    let ex = "extern \"C\" fn h() {}\n";
    assert!(all(Language::Rust, ex).unwrap_err().contains("`h`"));
    // async, unsafe and const are fine; a callable one beside a method is returned.
    let ok = "const fn c() -> i32 { 1 }\nunsafe fn u() {}\nasync fn a() {}\n";
    assert_eq!(all(Language::Rust, ok).unwrap().len(), 3);
    let mixed = format!("{m}fn free() -> i32 {{ 2 }}\n");
    let t = all(Language::Rust, &mixed).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].name, "free");
}

const PY: &str = "import os\n\n@cache\ndef f(xs: list) -> int:\n    \"\"\"Sums.\n\n    >>> f([1, 2])\n    3\n    \"\"\"\n    def inner():\n        pass\n    return sum(xs)\n\n\ndef g(a, b=2):\n    return a\n\n\nclass C:\n    def m(self):\n        return 1\n\n\nasync def h():\n    pass\n";

#[test]
fn python_top_level_functions_with_their_docstrings() {
    let t = all(Language::Python, PY).unwrap();
    let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["f", "g"]);
    assert_eq!(t[0].signature, "def f(xs: list) -> int");
    assert_eq!(t[0].doc, "Sums.\n\n>>> f([1, 2])\n3");
    assert_eq!(t[0].examples[0].args, "[1, 2]");
    assert_eq!(t[0].examples[0].expected.as_deref(), Some("3"));
    assert_eq!(t[1].signature, "def g(a, b=2)");
}

#[test]
fn python_methods_and_async_are_not_callable() {
    let at = PY.find("def m").unwrap();
    assert_eq!(
        targets(Language::Python, PY, at..at + 1).unwrap_err(),
        "`m` is a method: it needs a receiver"
    );
    let at = PY.find("async def").unwrap();
    assert_eq!(
        targets(Language::Python, PY, at..at + 1).unwrap_err(),
        "`h` is async: async functions are not probed"
    );
}

#[test]
fn docstrings_are_dedented() {
    assert_eq!(
        dedent("First.\n\n    Body\n      more\n    "),
        "First.\n\nBody\n  more"
    );
    assert_eq!(dedent("\n    Only\n    "), "Only");
}

use super::*;

fn pairs(language: Language, function: &str, doc: &str) -> Vec<(String, Option<String>)> {
    examples(language, function, doc)
        .into_iter()
        .map(|c| (c.args, c.expected))
        .collect()
}

fn p(args: &str, expected: &str) -> (String, Option<String>) {
    (args.to_owned(), Some(expected.to_owned()))
}

#[test]
fn rust_assertions() {
    let doc = "```\nuse my_crate::sum_even;\nassert_eq!(sum_even(&[2]), 2);\nassert_eq!(my_crate::sum_even(&[1, 2, 3, 4]), 6);\nassert!(is_even(4));\nassert!(!is_even(3));\n```";
    assert_eq!(
        pairs(Language::Rust, "sum_even", doc),
        [p("&[2]", "2"), p("&[1, 2, 3, 4]", "6")]
    );
    assert_eq!(
        pairs(Language::Rust, "is_even", doc),
        [p("4", "true"), p("3", "false")]
    );
}

#[test]
fn rust_prose_forms() {
    let doc = "Examples:\n- `f(1) == 2`\n- f(2) -> 3\n- f(3) => Some(4),\n- f(4) returns `5`.\n- f(5) returns 6.\n- not f(6) alone\n- g(f(7)) == 1";
    assert_eq!(
        pairs(Language::Rust, "f", doc),
        [
            p("1", "2"),
            p("2", "3"),
            p("3", "Some(4)"),
            p("4", "5"),
            p("5", "6")
        ]
    );
}

#[test]
fn nested_brackets_and_strings_in_arguments() {
    let doc = "assert_eq!(f(vec![(1, 2)], \"a)b\", ')'), (3, \"x,y\"));\nassert_eq!(f(&g(h(1)), 'a'), [1, 2],);";
    assert_eq!(
        pairs(Language::Rust, "f", doc),
        [
            p("vec![(1, 2)], \"a)b\", ')'", "(3, \"x,y\")"),
            p("&g(h(1)), 'a'", "[1, 2]")
        ]
    );
    // A lifetime's quote does not start a char literal.
    let doc = "assert_eq!(f(&x as &'static str), 1);";
    assert_eq!(
        pairs(Language::Rust, "f", doc),
        [p("&x as &'static str", "1")]
    );
}

#[test]
fn only_calls_of_the_function_and_no_duplicates() {
    let doc =
        "assert_eq!(ff(1), 2);\nassert_eq!(f(1), 2);\nassert_eq!(f(1), 2);\nassert_eq!(a.f(2), 3);";
    assert_eq!(pairs(Language::Rust, "f", doc), [p("1", "2"), p("2", "3")]);
    let many: String = (0..30).map(|i| format!("f({i}) == {i}\n")).collect();
    assert_eq!(examples(Language::Rust, "f", &many).len(), MAX_EXAMPLES);
}

#[test]
fn python_doctests() {
    let doc = "Sums.\n\n>>> f([1, 2])\n3\n>>> mod.f('a)', \"b\")\n'a)b'\n>>> f({1: [2]})\n{1: [2],\n 3: 4}\n>>> f(0)\nTraceback (most recent call last):\nValueError\n>>> f(1) + 1\n2\n>>> f(5) == 6\nTrue\nf(7) == [7]";
    assert_eq!(
        pairs(Language::Python, "f", doc),
        [
            p("[1, 2]", "3"),
            p("'a)', \"b\"", "'a)b'"),
            p("{1: [2]}", "{1: [2], 3: 4}"),
            p("5", "6"),
            p("7", "[7]")
        ]
    );
}

#[test]
fn python_triple_quoted_arguments() {
    let doc = ">>> f('''x)''', b=2)\nTrue";
    assert_eq!(
        pairs(Language::Python, "f", doc),
        [p("'''x)''', b=2", "True")]
    );
}

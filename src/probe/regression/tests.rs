use super::*;

fn call(args: &str, expected: &str) -> Call {
    Call {
        function: "sum_even".into(),
        args: args.into(),
        expected: Some(expected.into()),
    }
}

#[test]
fn a_rust_test_goes_into_the_files_tests_module() {
    let file = "fn sum_even(xs: &[i64]) -> i64 { 0 }\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n    fn sum_even_counterexample() {}\n}\n";
    let t = regression_test(Language::Rust, file, &call("&[2]", "2")).unwrap();
    assert_eq!(t.name, "sum_even_counterexample_2");
    assert_eq!(t.path, "tests::sum_even_counterexample_2");
    let out = t.insert_into(file);
    assert!(out.ends_with(
        "    fn sum_even_counterexample() {}\n\n    #[test]\n    fn sum_even_counterexample_2() {\n        assert_eq!(sum_even(&[2]), 2);\n    }\n}\n"
    ), "{out}");
    assert!(
        regression_test(
            Language::Rust,
            file,
            &Call {
                expected: None,
                ..call("1", "1")
            }
        )
        .is_none()
    );
}

#[test]
fn a_rust_file_without_tests_gets_a_tests_module() {
    let file = "fn sum_even(xs: &[i64]) -> i64 { 0 }";
    let t = regression_test(Language::Rust, file, &call("&[2]", "2")).unwrap();
    assert_eq!(t.at, file.len());
    assert_eq!(
        t.insert_into(file),
        "fn sum_even(xs: &[i64]) -> i64 { 0 }\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n    fn sum_even_counterexample() {\n        assert_eq!(sum_even(&[2]), 2);\n    }\n}\n"
    );
}

#[test]
fn a_python_test_goes_at_the_end() {
    let file = "def sum_even(xs):\n    return 0\n";
    let t = regression_test(Language::Python, file, &call("[2]", "2")).unwrap();
    assert_eq!(t.path, "test_sum_even_counterexample");
    assert_eq!(
        t.insert_into(file),
        "def sum_even(xs):\n    return 0\n\n\ndef test_sum_even_counterexample():\n    assert sum_even([2]) == 2\n"
    );
}

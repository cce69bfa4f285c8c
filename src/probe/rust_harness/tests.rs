use super::*;

fn call(args: &str, expected: Option<&str>) -> Call {
    Call {
        function: "f".into(),
        args: args.into(),
        expected: expected.map(str::to_owned),
    }
}

#[test]
fn the_harness_holds_the_file_the_versions_and_a_test_per_version() {
    let file = "pub fn f(x: i32) -> i32 { x }\n";
    let versions = vec![
        "pub fn f(x: i32) -> i32 { x }".to_owned(),
        "pub fn f(x: i32) -> i32 {\n    x + 1\n}".to_owned(),
    ];
    let calls = vec![call("1", Some("2")), call("\"a)\"", None)];
    let plan = Plan {
        versions: &versions,
        tests: vec![(0, vec![0, 1]), (1, vec![0])],
        calls: &calls,
        per_call: Duration::from_millis(1500),
    };
    let h = harness(file, &plan);
    assert!(h.text.starts_with(file));
    assert!(
        h.text
            .contains("mod __refine_v1 {\n#[allow(unused_imports)]\nuse super::*;\npub fn f")
    );
    assert!(h.text.contains("from_millis(1500)"));
    assert!(h.text.contains("fn v0()") && h.text.contains("fn v1()"));
    assert!(h.text.contains("super::__refine_v1::f(\n1\n"));
    assert!(h.text.contains("Some(like(&r,\n2\n"));
    assert_eq!(h.owners.len(), h.text.lines().count());
    // Every line is owned by what wrote it.
    let line_of = |needle: &str| h.text.lines().position(|l| l == needle).unwrap() + 1;
    assert_eq!(h.owner(1), Owner::Original);
    assert_eq!(h.owner(line_of("    x + 1")), Owner::Version(1));
    assert_eq!(
        h.owner(line_of("\"a)\"")),
        Owner::Call {
            version: 0,
            call: 1
        }
    );
    assert_eq!(h.owner(h.owners.len() + 5), Owner::Probe);
}

#[test]
fn short_errors_are_read_with_their_lines() {
    let out = "lib.rs:12:5: error[E0308]: mismatched types\nlib.rs:3:1: warning: unused\nerror: aborting due to 1 previous error\nlib.rs:40:9: error: expected `;`\n";
    assert_eq!(
        errors(out, "lib.rs"),
        [
            (12, "error[E0308]: mismatched types".to_owned()),
            (40, "error: expected `;`".to_owned())
        ]
    );
    let cargo =
        "src/util.rs:7:3: error[E0425]: cannot find value `x`\nsrc/lib.rs:2:1: error: other file\n";
    assert_eq!(
        errors(cargo, "src/util.rs"),
        [(7, "error[E0425]: cannot find value `x`".to_owned())]
    );
}

#[test]
fn a_candidates_private_function_is_made_callable_from_the_probe() {
    let text = "/// Sum.\nfn sum(xs: &[i32]) -> i32 {\n    fn sum_inner() {}\n    0\n}\npub fn other() {}\nconst fn sum2() {}\n";
    assert_eq!(
        super::visible(text, &["sum", "sum2"]),
        "/// Sum.\npub(crate) fn sum(xs: &[i32]) -> i32 {\n    fn sum_inner() {}\n    0\n}\npub fn other() {}\npub(crate) const fn sum2() {}\n"
    );
}

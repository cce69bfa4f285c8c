//! A counterexample as a regression test in the file's own style: a Rust `#[test]` in the
//! file's test module (or a new `#[cfg(test)] mod tests`), a pytest function at the end of a
//! Python file.

use tokio_util::sync::CancellationToken;
use tree_sitter::Parser;

use super::cargo::Copy;
use super::exec::{self, Scratch};
use super::{Call, Crate, Language, Limits, ProbeError};

/// A test that asserts `call` returns its expected value, and where it goes in `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegressionTest {
    /// The test's name (`sum_even_counterexample`), unique in the file.
    pub name: String,
    /// The text to insert at [`RegressionTest::at`] (with its own leading and trailing newlines).
    pub text: String,
    /// Byte offset in `file` where `text` goes.
    pub at: usize,
    /// How the harness runs only this test (Rust: `tests::sum_even_counterexample`).
    pub path: String,
}

impl RegressionTest {
    /// `file` with the test inserted.
    pub fn insert_into(&self, file: &str) -> String {
        let at = self.at.min(file.len());
        match (file.get(..at), file.get(at..)) {
            (Some(a), Some(b)) => format!("{a}{}{b}", self.text),
            _ => format!("{file}{}", self.text),
        }
    }
}

/// The regression test for `call` (its `expected` set) in `file`; `None` without an expected value.
pub fn regression_test(language: Language, file: &str, call: &Call) -> Option<RegressionTest> {
    let expected = call.expected.as_deref()?;
    let function = &call.function;
    match language {
        Language::Rust => {
            let name = unique(file, &format!("{function}_counterexample"), "fn ");
            let body = |indent: &str| {
                format!(
                    "{indent}#[test]\n{indent}fn {name}() {{\n{indent}    assert_eq!({function}({}), {expected});\n{indent}}}\n",
                    call.args
                )
            };
            let (at, text) = match tests_module(file) {
                Some((close, indent)) => (close, format!("\n{}", body(&indent))),
                None => {
                    let lead = if file.ends_with('\n') || file.is_empty() {
                        "\n"
                    } else {
                        "\n\n"
                    };
                    let text = format!(
                        "{lead}#[cfg(test)]\nmod tests {{\n    use super::*;\n\n{}}}\n",
                        body("    ")
                    );
                    (file.len(), text)
                }
            };
            Some(RegressionTest {
                path: format!("tests::{name}"),
                name,
                text,
                at,
            })
        }
        Language::Python => {
            let name = unique(file, &format!("test_{function}_counterexample"), "def ");
            let lead = if file.ends_with('\n') || file.is_empty() {
                "\n\n"
            } else {
                "\n\n\n"
            };
            Some(RegressionTest {
                text: format!(
                    "{lead}def {name}():\n    assert {function}({}) == {expected}\n",
                    call.args
                ),
                at: file.len(),
                path: name.clone(),
                name,
            })
        }
    }
}

/// `base`, or `base_2`, `base_3`, ... whichever `file` does not define yet (`keyword` before it).
fn unique(file: &str, base: &str, keyword: &str) -> String {
    let taken = |name: &str| file.contains(&format!("{keyword}{name}("));
    if !taken(base) {
        return base.to_owned();
    }
    (2..)
        .map(|n| format!("{base}_{n}"))
        .find(|n| !taken(n))
        .unwrap_or_else(|| base.to_owned())
}

/// The byte offset of the closing brace of the file's top-level `mod tests { ... }` and the
/// indentation of its items.
fn tests_module(file: &str) -> Option<(usize, String)> {
    let mut parser = Parser::new();
    parser.set_language(&crate::lang::grammar("rust")?).ok()?;
    let tree = parser.parse(file, None)?;
    let root = tree.root_node();
    let mut cursor = root.walk();
    let module = root.named_children(&mut cursor).find(|n| {
        n.kind() == "mod_item"
            && n.child_by_field_name("name")
                .and_then(|m| file.get(m.byte_range()))
                == Some("tests")
    })?;
    let body = module.child_by_field_name("body")?;
    let close = body.end_byte().checked_sub(1)?;
    let indent = body
        .named_child(0)
        .map(|item| {
            let line_start = file
                .get(..item.start_byte())
                .and_then(|b| b.rfind('\n'))
                .map_or(0, |i| i + 1);
            file.get(line_start..item.start_byte())
                .unwrap_or_default()
                .to_owned()
        })
        .filter(|i| i.chars().all(char::is_whitespace) && !i.is_empty())
        .unwrap_or_else(|| "    ".to_owned());
    Some((close, indent))
}

/// Builds and runs only `test` in the sandbox, in the file with the original selection and in
/// the file with the revision (both with the test inserted): whether it passes on each. A Rust
/// file of a library crate (`krate`) is tested in a copy of its crate with `cargo test`, the
/// way the probes build it; when the test does not even run there (the crate does not build
/// offline), the file alone.
pub async fn verify(
    language: Language,
    file_with_test_in_original: &str,
    file_with_test_in_revision: &str,
    test: &RegressionTest,
    krate: Option<&Crate>,
    limits: Limits,
    cancel: &CancellationToken,
) -> Result<(bool, bool), ProbeError> {
    if let Some(krate) = krate.filter(|_| language == Language::Rust && exec::on_path("cargo")) {
        let files = (file_with_test_in_original, file_with_test_in_revision);
        match in_crate(krate, files, test, limits, cancel).await {
            Ok(Some(both)) => return Ok(both),
            Ok(None) => tracing::debug!("the regression test does not run in its crate"),
            Err(ProbeError::Cancelled) => return Err(ProbeError::Cancelled),
            Err(e) => tracing::debug!("the regression test cannot run in its crate: {e}"),
        }
    }
    let tool = match language {
        Language::Rust => "rustc",
        Language::Python => "python3",
    };
    if !exec::on_path(tool) {
        return Err(ProbeError::Toolchain(format!("{tool} is not on PATH")));
    }
    let original = passes(language, file_with_test_in_original, test, limits, cancel).await?;
    let revision = passes(language, file_with_test_in_revision, test, limits, cancel).await?;
    Ok((original, revision))
}

/// Whether `test` passes in the crate's copy with each file; `None` when it does not run on the
/// original at all (the crate does not build, or the file is not in its library).
async fn in_crate(
    krate: &Crate,
    (original, revision): (&str, &str),
    test: &RegressionTest,
    limits: Limits,
    cancel: &CancellationToken,
) -> Result<Option<(bool, bool)>, ProbeError> {
    let copy = Copy::new(krate, cancel).await?;
    let bounds = (limits.total, limits.output_bytes);
    let on_original = copy.test(original, &test.path, bounds, cancel).await?;
    if !on_original.output.contains("running 1 test") {
        return Ok(None);
    }
    let on_revision = copy.test(revision, &test.path, bounds, cancel).await?;
    let passed =
        |r: &crate::sandbox::RunResult| r.passed() && !r.timed_out && r.output.contains("1 passed");
    Ok(Some((passed(&on_original), passed(&on_revision))))
}

/// Whether `test` passes in `file`.
async fn passes(
    language: Language,
    file: &str,
    test: &RegressionTest,
    limits: Limits,
    cancel: &CancellationToken,
) -> Result<bool, ProbeError> {
    let scratch = Scratch::new()?;
    let ulimit = exec::ulimit(&limits);
    let command = match language {
        Language::Rust => {
            scratch.write("lib.rs", file)?;
            format!(
                "rustc --edition 2021 --test -A warnings -o t lib.rs && ({ulimit}exec ./t --exact {} --test-threads 1)",
                test.path
            )
        }
        Language::Python => {
            scratch.write("subject.py", file)?;
            scratch.write(
                "t.py",
                &format!(
                    "{PY_RUNNER}getattr(m, {:?})()\nprint('1 passed')\n",
                    test.path
                ),
            )?;
            format!("{ulimit}exec python3 -B t.py")
        }
    };
    let ran = scratch
        .run(command, limits.total, limits.output_bytes, cancel)
        .await?;
    // `--exact` with a name that matches nothing passes too: the test must have run.
    Ok(ran.passed() && !ran.timed_out && ran.output.contains("1 passed"))
}

/// Loads `subject.py` as a module `m` (its `__main__` block not run).
const PY_RUNNER: &str = "import importlib.util, sys\nspec = importlib.util.spec_from_file_location('subject', 'subject.py')\nm = importlib.util.module_from_spec(spec)\nsys.modules['subject'] = m\nspec.loader.exec_module(m)\n";

#[cfg(test)]
mod tests;

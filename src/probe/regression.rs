//! A counterexample as a regression test in the file's own style: a Rust `#[test]` in the
//! file's test module (or a new `#[cfg(test)] mod tests`), a pytest function at the end of a
//! Python file.

use super::{Call, Language};

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

/// The regression test for `call` (its `expected` set) in `file`; `None` without an expected value.
pub fn regression_test(language: Language, file: &str, call: &Call) -> Option<RegressionTest> {
    let _ = (language, file, call);
    None
}

/// Builds and runs just `test` in the file as it is and in the revised file (each with the test
/// inserted), in the sandbox: (passes on the original, passes on the revision).
pub async fn verify(
    language: Language,
    original_with_test: &str,
    revised_with_test: &str,
    test: &RegressionTest,
    limits: super::Limits,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<(bool, bool), super::ProbeError> {
    let _ = (
        language,
        original_with_test,
        revised_with_test,
        test,
        limits,
        cancel,
    );
    Err(super::ProbeError::NoHarness("not built yet".to_owned()))
}

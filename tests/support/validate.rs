//! Outside validators (schema checkers, linters) run on a test's output.

#![allow(dead_code)]

use std::process::Command;

/// Runs `cmd` (the validator `name`), which must succeed; its output is the failure message.
pub fn must_pass(name: &str, cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

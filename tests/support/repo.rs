//! Git repositories made in temp dirs for the tests of `review --diff` and its hook.

#![allow(dead_code)]

use std::path::Path;
use std::process::Output;

/// Runs git in `dir` with a fixed identity (a test machine may have none).
pub fn git(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("run git")
}

/// [`git`], which must succeed.
pub fn git_ok(dir: &Path, args: &[&str]) {
    let out = git(dir, args);
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

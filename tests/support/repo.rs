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

/// The name of the function in file `i` of [`many_files`] (each one unique as a substring, so
/// the mock can tell which file a request is about).
pub fn item_name(i: usize) -> String {
    format!("item_{i:04}")
}

/// A repository whose branch `feature` changes one line of each of `n` Rust files against
/// `main` (one region each), checked out.
pub fn many_files(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    git_ok(d, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(d.join("src")).expect("mkdir");
    let write = |body: &str| {
        for i in 0..n {
            let name = item_name(i);
            let text = format!("pub fn {name}(x: i32) -> i32 {{\n    {body}\n}}\n");
            std::fs::write(d.join(format!("src/{name}.rs")), text).expect("write");
        }
    };
    write("x + 1");
    git_ok(d, &["add", "."]);
    git_ok(d, &["commit", "-q", "-m", "base"]);
    git_ok(d, &["checkout", "-q", "-b", "feature"]);
    write("x + 2");
    git_ok(d, &["commit", "-q", "-am", "change every file"]);
    dir
}

/// Sets (`Some`) or removes (`None`) a file on branch `branch` in a new commit, leaving the
/// checkout and the working tree alone: the settings a team landed on the base branch, which
/// `review --diff` reads there (never from the change under review).
pub fn set_on_branch(dir: &Path, branch: &str, path: &str, content: Option<&str>) {
    let run = |args: &[&str], index: &Path, input: Option<&str>| -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .env("GIT_INDEX_FILE", index)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run git");
        if let Some(text) = input {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let index = tmp.path().join("index");
    run(&["read-tree", branch], &index, None);
    match content {
        Some(text) => {
            let blob = run(&["hash-object", "-w", "--stdin"], &index, Some(text));
            run(
                &[
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    &format!("100644,{blob},{path}"),
                ],
                &index,
                None,
            );
        }
        None => {
            run(&["update-index", "--force-remove", path], &index, None);
        }
    }
    let tree = run(&["write-tree"], &index, None);
    let commit = run(
        &["commit-tree", &tree, "-p", branch, "-m", "settings"],
        &index,
        None,
    );
    run(
        &["update-ref", &format!("refs/heads/{branch}"), &commit],
        &index,
        None,
    );
}

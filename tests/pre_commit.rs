//! The repository's `.pre-commit-hooks.yaml` in a real `pre-commit` (PyPI) on a temp
//! repository, against the scripted model over real HTTP: the hook reviews the staged change
//! and fails the commit on an error-level finding. pre-commit comes from `PRE_COMMIT`, else
//! `.tools/py/bin/pre-commit` (what `scripts/test` installs).

mod support;

use std::path::PathBuf;

use serde_json::json;
use support::mock_llm::{MockLlm, Reply, Script};
use support::repo::git_ok;

fn pre_commit() -> PathBuf {
    let candidate = std::env::var_os("PRE_COMMIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/py/bin/pre-commit")
        });
    assert!(
        candidate.is_file(),
        "this test needs pre-commit: run scripts/test (it installs one under .tools/py), or set PRE_COMMIT=/path/to/pre-commit"
    );
    candidate
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hook_reviews_the_staged_change_in_a_real_pre_commit() {
    let tool = pre_commit();
    let finding = json!([{"start_line": 2, "end_line": 2, "quote": "a / b",
        "severity": "error", "principle": "correctness",
        "message": "divides by zero when b is 0", "confidence": 0.9}]);
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(finding)].into(),
        revise: vec![Reply::content("no code"), Reply::content("no code")].into(),
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    git_ok(&d, &["init", "-q", "-b", "main"]);
    // No compiler backs the model's "error" here, and loop.max_unbacked_severity would show
    // it as a warning: this configuration lets it stand, so the default --fail-on error fails.
    let config = d.join("refine.toml");
    std::fs::write(&config, "[loop]\nmax_unbacked_severity = \"error\"\n").unwrap();
    std::fs::write(
        d.join("div.rs"),
        "fn div(a: i32, b: i32) -> i32 {\n    a / b\n}\n",
    )
    .unwrap();
    git_ok(&d, &["add", "."]);
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_refine-ls"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let base_url = mock.base_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        // `try-repo` runs the hook from this checkout's working tree, so the test sees the
        // hooks file as it is now, committed or not.
        std::process::Command::new(&tool)
            .args([
                "try-repo",
                env!("CARGO_MANIFEST_DIR"),
                "refine-ls",
                "--verbose",
            ])
            .current_dir(&d)
            .env("PATH", path)
            .env("PRE_COMMIT_HOME", d.join(".pre-commit-home"))
            // try-repo commits uncommitted changes of this checkout into a shadow repository:
            // a CI machine may have no git identity.
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env_remove("OPENAI_API_KEY")
            .env("OPENAI_BASE_URL", base_url)
            .env("REFINE_LS_CONFIG", config)
            .env("REFINE_LS_CACHE_DIR", d.join(".cache-test"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "the finding fails the hook: {printed}"
    );
    assert!(
        printed.contains("refine-ls review (staged lines)"),
        "{printed}"
    );
    assert!(
        printed.contains("div.rs:2:5: error: divides by zero when b is 0 [correctness]"),
        "{printed}"
    );
    let critiques = mock
        .requests()
        .into_iter()
        .filter(|r| support::mock_llm::role_of(r) == "critique")
        .count();
    assert_eq!(critiques, 1, "the staged function, reviewed once");
}

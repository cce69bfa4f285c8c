//! The Neovim plugin in a real headless Neovim (0.11+) against the real `refine-ls` binary and
//! the scripted model. Each scenario is a Lua file in `tests/neovim/`; it exits non-zero on a
//! failed check. Neovim comes from `NVIM`, else `.tools/nvim/bin/nvim` (what `scripts/test`
//! installs), else PATH.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use support::mock_llm::{MockLlm, Reply, Script};

const CODE: &str = "// 合計を求める 😀\nfn sum(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    let _e = \"😀\"; for i in 1..xs.len() { s += xs[i]; }\n    s\n}\n";
const FIXED: &str = "// 合計を求める 😀\nfn sum(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    let _e = \"😀\"; for i in 0..xs.len() { s += xs[i]; }\n    s\n}\n";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A Neovim of version 0.11 or later.
fn nvim() -> PathBuf {
    let candidates: Vec<PathBuf> = std::env::var_os("NVIM")
        .map(PathBuf::from)
        .into_iter()
        .chain([root().join(".tools/nvim/bin/nvim"), PathBuf::from("nvim")])
        .collect();
    for c in &candidates {
        let Ok(out) = std::process::Command::new(c).arg("--version").output() else {
            continue;
        };
        let v = String::from_utf8_lossy(&out.stdout);
        let minor = v
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("NVIM v0."))
            .and_then(|r| r.split('.').next())
            .and_then(|m| m.parse::<u32>().ok());
        if minor.is_some_and(|m| m >= 11) {
            return c.clone();
        }
    }
    panic!(
        "these tests need Neovim 0.11+: run scripts/test (it installs one under .tools/), or set NVIM=/path/to/nvim"
    );
}

fn findings() -> Script {
    Script {
        critique: vec![
            Reply::findings(json!([{"start_line": 4, "end_line": 4, "quote": "1..xs.len()", "severity": "warning",
                                    "principle": "correctness", "message": "the loop skips xs[0]", "confidence": 0.9}])),
            Reply::findings(json!([])),
        ]
        .into(),
        revise: vec![Reply::code(FIXED)].into(),
        models: vec!["gpt-4o-mini".into()],
        ..Script::default()
    }
}

async fn run(scenario: &str, script: Script) {
    let mock = MockLlm::start(script).await;
    let work = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_refine-ls"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let nvim = nvim();
    let file = root().join("tests/neovim").join(scenario);
    let base_url = mock.base_url.clone();
    let work_dir = work.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(nvim)
            .args(["--headless", "-u", "NONE", "-i", "NONE", "-l"])
            .arg(&file)
            .current_dir(&work_dir)
            .env("PATH", path)
            .env("OPENAI_BASE_URL", base_url)
            .env_remove("OPENAI_API_KEY")
            .env("REFINE_LS_CONFIG", support::test_config())
            .env("REFINE_LS_CACHE_DIR", work_dir.join("cache"))
            .env("XDG_CONFIG_HOME", work_dir.join("xdg-config"))
            .env("XDG_DATA_HOME", work_dir.join("xdg-data"))
            .env("XDG_STATE_HOME", work_dir.join("xdg-state"))
            .env("REFINE_PLUGIN_DIR", root().join("editors/neovim"))
            .env("REFINE_TEST_DIR", root().join("tests/neovim"))
            .env("REFINE_WORK", &work_dir)
            .env("REFINE_CODE", CODE)
            .env("REFINE_FIXED", FIXED)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start nvim");
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("nvim output")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{scenario} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn review_a_range_then_accept() {
    run("review_accept.lua", findings()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_click_reject_then_accept() {
    let mut script = findings();
    script.critique = vec![
        script.critique[0].clone(),
        Reply::findings(json!([])),
        script.critique[0].clone(),
        Reply::findings(json!([])),
    ]
    .into();
    script.revise = vec![Reply::code(FIXED), Reply::code(FIXED)].into();
    run("one_click.lua", script).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_and_edit_during_a_review() {
    let mut script = findings();
    script.critique = vec![script.critique[0].clone().delayed(2000)].into();
    run("cancel_and_edit.lua", script).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_config_and_checkhealth() {
    run("zero_config.lua", findings()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_act_on_the_cursor_and_the_current_buffer() {
    let mut script = findings();
    script.critique = vec![
        script.critique[0].clone(),
        script.critique[0].clone().delayed(3000),
        script.critique[0].clone(),
    ]
    .into();
    run("cursor_and_buffers.lua", script).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dismiss_hides_a_finding_across_reviews_and_undismiss_brings_it_back() {
    // The critic reports the finding on every review (the last reply of a queue repeats).
    let mut script = findings();
    script.critique = vec![script.critique[0].clone()].into();
    script.revise = vec![Reply::content("no code")].into();
    run("dismiss.lua", script).await;
}

//! A cloned repository is untrusted input (issue 26): its `.refine/` files may be links out of
//! it, to a secret or to a file to overwrite. The real binary, against the scripted model over
//! real HTTP: nothing a link out points at reaches the model, and no dismissal is written
//! through one; dismissals made at once all land.
#![cfg(unix)]

mod support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::json;
use support::mock_llm::{MockLlm, Reply, Script};

const CODE: &str = "fn sum(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 1..xs.len() { s += xs[i]; }\n    s\n}\n";

/// A folder holding a workspace `ws` (a git checkout, with `src/sum.rs` and `.refine/`) and,
/// beside it, files outside the workspace.
struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join(".git")).unwrap();
        std::fs::create_dir_all(ws.join(".refine/prompts")).unwrap();
        std::fs::create_dir_all(ws.join("src")).unwrap();
        std::fs::write(ws.join("src/sum.rs"), CODE).unwrap();
        Self { dir }
    }

    fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn outside(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `refine-ls <args>` in the workspace, with its own data, cache and (no) user config.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_refine-ls"));
        c.args(args)
            .current_dir(self.ws())
            .env_remove("OPENAI_API_KEY")
            .env("REFINE_LS_DATA_DIR", self.outside("data"))
            .env("REFINE_LS_CACHE_DIR", self.outside("cache"))
            .env("REFINE_LS_CONFIG", self.outside("no-config.toml"));
        c
    }

    /// `refine-ls review src/sum.rs` against `mock`, one critique and no revision.
    async fn review(&self, mock: &MockLlm, env: &[(&str, &str)]) -> Output {
        std::fs::write(
            self.ws().join(".refine.toml"),
            "[loop]\nmax_iterations = 0\n",
        )
        .unwrap();
        let mut c = self.command(&["review", "src/sum.rs", "--format", "json"]);
        c.env("OPENAI_BASE_URL", &mock.base_url)
            .envs(env.iter().copied());
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    }

    /// `refine-ls dismiss src/sum.rs --principle correctness --quote <quote>`.
    fn dismiss(&self, quote: &str) -> Command {
        self.command(&[
            "dismiss",
            "src/sum.rs",
            "--principle",
            "correctness",
            "--quote",
            quote,
        ])
    }
}

async fn quiet_mock() -> MockLlm {
    MockLlm::start(Script {
        critique: vec![Reply::findings(json!([])); 4].into(),
        ..Script::default()
    })
    .await
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every request the mock received, as one string.
fn sent(mock: &MockLlm) -> String {
    let requests = mock.requests();
    assert!(!requests.is_empty(), "the review asked the model nothing");
    serde_json::to_string(&requests).unwrap()
}

/// The review ran (exit 0: no findings) and warned that `name` was refused.
fn reviewed_with_warning(out: &Output, name: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.contains("warning")
            && l.contains(name)
            && l.contains("outside the workspace")),
        "no warning names {name}: {stderr}"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn principles_linked_to_the_process_environment_are_not_sent() {
    let l = Layout::new();
    symlink("/proc/self/environ", l.ws().join(".refine/principles.md")).unwrap();
    let mock = quiet_mock().await;
    let canary = "env-canary-5f1c0e7a9b";
    let out = l.review(&mock, &[("REFINE_LINKS_CANARY", canary)]).await;
    reviewed_with_warning(&out, "principles.md");
    let sent = sent(&mock);
    assert!(!sent.contains(canary), "the environment reached the model");
    assert!(!sent.contains("REFINE_LINKS_CANARY"));
    // The built-in principles were used instead.
    assert!(sent.contains("preserve-intent"), "{sent}");
}

#[tokio::test(flavor = "multi_thread")]
async fn principles_linked_to_a_file_outside_the_workspace_are_not_sent() {
    let l = Layout::new();
    let canary = "file-canary-8d2b4c6e1a";
    std::fs::write(
        l.outside("secret.md"),
        format!("## {canary}\nAsks: {canary}.\n"),
    )
    .unwrap();
    symlink("../../secret.md", l.ws().join(".refine/principles.md")).unwrap();
    let mock = quiet_mock().await;
    let out = l.review(&mock, &[]).await;
    reviewed_with_warning(&out, "principles.md");
    assert!(
        !sent(&mock).contains(canary),
        "the outside file reached the model"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prompt_template_linked_outside_the_workspace_is_not_used() {
    let l = Layout::new();
    let canary = "template-canary-3e9f7d1b5c";
    std::fs::write(l.outside("template.md"), format!("{canary} {{{{ path }}}}")).unwrap();
    symlink(
        l.outside("template.md"),
        l.ws().join(".refine/prompts/critique_user.md"),
    )
    .unwrap();
    let mock = quiet_mock().await;
    let out = l.review(&mock, &[]).await;
    reviewed_with_warning(&out, "critique_user.md");
    let sent = sent(&mock);
    assert!(!sent.contains(canary), "the outside template was used");
    assert!(
        sent.contains("1..xs.len()"),
        "the built-in template sent the code"
    );
}

#[test]
fn a_dismissal_store_linked_outside_is_refused_and_the_outside_file_unchanged() {
    let l = Layout::new();
    let outside = l.outside("outside.toml");
    let theirs = "[[dismissed]]\npath = \"a.rs\"\nscope = \"file\"\n";
    std::fs::write(&outside, theirs).unwrap();
    symlink("../../outside.toml", l.ws().join(".refine/dismissed.toml")).unwrap();
    let out = l.dismiss("1..xs.len()").output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("refine-ls: ") && stderr.contains("dismissed.toml"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), theirs);
}

#[test]
fn a_dangling_dismissal_store_link_creates_nothing_outside() {
    let l = Layout::new();
    symlink("../../nowhere.toml", l.ws().join(".refine/dismissed.toml")).unwrap();
    let out = l.dismiss("1..xs.len()").output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("dismissed.toml"), "{stderr}");
    assert!(!l.outside("nowhere.toml").exists());
    assert!(
        std::fs::symlink_metadata(l.ws().join(".refine/dismissed.toml"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was not replaced either"
    );
}

/// Reads the dismissals' fingerprints from the workspace's store.
fn fingerprints(store: &Path) -> Vec<String> {
    let t: toml::Value = toml::from_str(&std::fs::read_to_string(store).unwrap()).unwrap();
    t["dismissed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["fingerprint"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn dismissals_made_at_once_all_land() {
    let l = Layout::new();
    let quotes: Vec<String> = (0..8).map(|i| format!("xs[{i}] + {i}")).collect();
    let children: Vec<_> = quotes
        .iter()
        .map(|q| {
            l.dismiss(q)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let mut found = fingerprints(&l.ws().join(".refine/dismissed.toml"));
    found.sort();
    let mut want: Vec<String> = quotes
        .iter()
        .map(|q| refine_ls::dismissed::fingerprint("src/sum.rs", "correctness", q))
        .collect();
    want.sort();
    assert_eq!(found, want);
}

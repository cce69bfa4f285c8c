//! The learning record (`learning.record = true`) over the real transport against the scripted
//! model: a session that applies one revision (as the editor applies a code action: its edit,
//! then its command), previews and discards another and dismisses a finding gives exactly the
//! expected JSONL and DPO rows through `refine-ls learn export`; a secret in the reviewed code
//! is in no recorded or exported file; with recording off nothing is written. When
//! `REFINE_TEST_PYTHON` names a Python with `datasets` and TRL (scripts/test installs them), the
//! exports are loaded and rendered by TRL's own data utilities (`tests/support/trl_check.py`).

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::lsp_client::{LspClient, action_titled, apply_edits};
use support::mock_llm::{MockLlm, Reply, Script};

const SECRET: &str = "sk-proj-Q7vLmN2xR8tY4wZ1aB6cD3eF9gH0jK5s";

fn code() -> String {
    format!(
        "fn sum(xs: &[i32]) -> i32 {{\n    let mut s = 0;\n    for i in 1..xs.len() {{ s += xs[i]; }}\n    s\n}}\n\nfn key() -> &'static str {{\n    let k = \"{SECRET}\";\n    let n = k.len() - 1;\n    &k[..n]\n}}\n\nfn greet(name: &str) -> String {{\n    format!(\"hi {{}}\", name)\n}}\n"
    )
}

const SUM_FIXED: &str = "fn sum(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 0..xs.len() { s += xs[i]; }\n    s\n}";
/// The reviser sees the secret as a placeholder and answers with it.
const KEY_FIXED_SENT: &str = "fn key() -> &'static str {\n    let k = \"REDACTED_SECRET_1\";\n    let n = k.len();\n    &k[..n]\n}";

fn finding(line: u32, quote: &str, principle: &str, message: &str) -> Value {
    json!([{
        "start_line": line, "end_line": line, "quote": quote, "severity": "warning",
        "principle": principle, "message": message, "confidence": 0.9
    }])
}

fn range(l0: u32, l1: u32) -> Value {
    json!({"start": {"line": l0, "character": 0}, "end": {"line": l1, "character": 0}})
}

fn session_script() -> Script {
    Script {
        critique: vec![
            Reply::findings(finding(
                3,
                "1..xs.len()",
                "correctness",
                "the loop skips xs[0]",
            )),
            Reply::findings(finding(
                9,
                "k.len() - 1",
                "correctness",
                "drops the last char",
            )),
            Reply::findings(finding(
                14,
                "format!(\"hi {}\", name)",
                "readability",
                "use an inline format argument",
            )),
        ]
        .into(),
        revise: vec![
            Reply::code(SUM_FIXED),
            Reply::code(KEY_FIXED_SENT),
            Reply::content("no code"),
        ]
        .into(),
        ..Script::default()
    }
}

async fn start(mock: &MockLlm, record: bool) -> LspClient {
    let client = LspClient::start(&[("OPENAI_BASE_URL", &mock.base_url)]);
    client
        .initialize(
            json!({"workspace": {"workspaceEdit": {"documentChanges": true}}}),
            json!({"refine": {"learning": {"record": record}}}),
        )
        .await;
    client
}

/// The editor's side of a session: review three functions; apply the first one's revision
/// through its code action; look at the second's and leave it; dismiss the third's finding.
async fn session(client: &LspClient, uri: &str, record: bool) {
    let mut text = code();
    client.open(uri, "rust", &text).await;
    let a = client.review(uri, range(0, 5)).await;
    let done = client.finished(&a).await;
    assert_eq!(
        (&done["findings"], &done["revision"]),
        (&json!(1), &json!(true)),
        "{done}"
    );
    let b = client.review(uri, range(6, 11)).await;
    let done = client.finished(&b).await;
    assert_eq!(
        (&done["findings"], &done["revision"]),
        (&json!(1), &json!(true)),
        "{done}"
    );
    let c = client.review(uri, range(12, 15)).await;
    let done = client.finished(&c).await;
    assert_eq!(done["findings"], 1, "{done}");

    // B: the diff is looked at, and nothing applied.
    let shown = client
        .command("refine.showRevision", json!([{"uri": uri, "reviewId": b}]))
        .await
        .unwrap();
    assert!(
        shown["diff"]
            .as_str()
            .is_some_and(|d| d.contains("k.len()")),
        "{shown}"
    );

    // C: "Refine: dismiss this finding".
    let diags = client.diagnostics(uri);
    let on_c = diags
        .iter()
        .find(|d| d["data"]["reviewId"] == c.as_str())
        .expect("C's diagnostic");
    let actions = client.code_actions(uri, on_c["range"].clone()).await;
    let dismiss = actions
        .iter()
        .find(|a| a["title"] == "Refine: dismiss this finding")
        .expect("dismiss action");
    client
        .command(
            "refine.dismissFinding",
            dismiss["command"]["arguments"].clone(),
        )
        .await
        .unwrap();

    // A: the revision's code action, as an editor runs it: the edit, then the command.
    let on_a = diags
        .iter()
        .find(|d| d["data"]["reviewId"] == a.as_str())
        .expect("A's diagnostic");
    let actions = client.code_actions(uri, on_a["range"].clone()).await;
    let apply = action_titled(&actions, "Refine: apply revision");
    let change = &apply["edit"]["documentChanges"][0];
    assert_eq!(change["textDocument"]["version"], 1);
    text = apply_edits(&text, change["edits"].as_array().unwrap(), "utf-16");
    assert!(text.contains("for i in 0..xs.len()"), "{text}");
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": text}]}),
        )
        .await;
    assert_eq!(apply["command"]["command"], "refine.applied");
    let res = client
        .command("refine.applied", apply["command"]["arguments"].clone())
        .await
        .unwrap();
    assert_eq!(res["recorded"], record, "{res}");
}

fn export(data: &Path, format: &str, out: &Path) -> String {
    let run = Command::new(env!("CARGO_BIN_EXE_refine-ls"))
        .args(["learn", "export", "--format", format, "--output"])
        .arg(out)
        .env("REFINE_LS_DATA_DIR", data)
        .env("REFINE_LS_CONFIG", support::test_config())
        .output()
        .expect("refine-ls learn export");
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{stderr}");
    stderr
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn all_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn a_recorded_session_exports_exactly_its_decisions_and_never_a_secret() {
    let mock = MockLlm::start(session_script()).await;
    let client = start(&mock, true).await;
    let uri = "file:///work/demo/src/lib.rs";
    session(&client, uri, true).await;
    let data = client.cache_dir.path().join("data");
    // The fates are written as they happen; the server is still up.
    let record = data.join("learning/record.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&record).is_ok_and(|t| t.contains("\"applied\"")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no applied fate recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let out = tempfile::tempdir().unwrap();
    let jsonl = out.path().join("reviews.jsonl");
    let summary = export(&data, "jsonl", &jsonl);
    assert!(summary.contains("3 rows from 3 reviews"), "{summary}");
    let rows = lines(&jsonl);
    let fates: Vec<(Value, Vec<Value>)> = rows
        .iter()
        .map(|r| {
            (
                r["revision"]["fate"].clone(),
                r["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["fate"].clone())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        fates,
        vec![
            (json!("applied"), vec![json!("fixed")]),
            (json!("discarded"), vec![json!("ignored")]),
            (Value::Null, vec![json!("dismissed")]),
        ],
        "{rows:?}"
    );
    assert_eq!(rows[0]["path"], "/work/demo/src/lib.rs");
    assert_eq!(rows[0]["language"], "rust");
    assert_eq!(rows[0]["findings"][0]["quote"], "1..xs.len()");
    assert_eq!(rows[0]["findings"][0]["start_line"], 3);
    assert_eq!(rows[0]["revision"]["code"], format!("{SUM_FIXED}\n"));
    assert_eq!(rows[1]["redactions"], 1);
    assert!(
        rows[1]["code"]
            .as_str()
            .unwrap()
            .contains("\"REDACTED_SECRET_1\""),
        "{}",
        rows[1]["code"]
    );
    // The revision as applied would hold the secret again; as recorded it holds the placeholder.
    assert_eq!(rows[1]["revision"]["code"], format!("{KEY_FIXED_SENT}\n"));
    assert!(
        rows[2]["critic"].as_str().unwrap().contains("openai"),
        "{}",
        rows[2]
    );

    let dpo = out.path().join("dpo.jsonl");
    let summary = export(&data, "dpo", &dpo);
    assert!(
        summary.contains(
            "3 rows from 3 reviews (1 accepted-revision pairs, 1 discarded-revision pairs, 1 critic pairs)"
        ),
        "{summary}"
    );
    let pairs = lines(&dpo);
    for p in &pairs {
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["prompt", "chosen", "rejected"], "{p}");
        assert_eq!(p["prompt"][0]["role"], "system");
        assert_eq!(p["prompt"][1]["role"], "user");
    }
    // A: the applied revision over the original.
    assert_eq!(
        pairs[0]["chosen"][0]["content"],
        format!("```rust\n{SUM_FIXED}\n```")
    );
    assert!(
        pairs[0]["rejected"][0]["content"]
            .as_str()
            .unwrap()
            .contains("1..xs.len()")
    );
    assert!(
        pairs[0]["prompt"][1]["content"]
            .as_str()
            .unwrap()
            .contains("the loop skips xs[0]")
    );
    // B: the original over the discarded revision.
    assert!(
        pairs[1]["chosen"][0]["content"]
            .as_str()
            .unwrap()
            .contains("k.len() - 1")
    );
    assert_eq!(
        pairs[1]["rejected"][0]["content"],
        format!("```rust\n{KEY_FIXED_SENT}\n```")
    );
    // C: no findings kept over the dismissed one.
    let kept: Value =
        serde_json::from_str(pairs[2]["chosen"][0]["content"].as_str().unwrap()).unwrap();
    let all: Value =
        serde_json::from_str(pairs[2]["rejected"][0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(kept, json!({"findings": []}));
    assert_eq!(
        all["findings"][0]["message"],
        "use an inline format argument"
    );
    assert!(
        pairs[2]["prompt"][1]["content"]
            .as_str()
            .unwrap()
            .contains("format!(\"hi {}\", name)")
    );

    let sft = out.path().join("sft.jsonl");
    let summary = export(&data, "sft", &sft);
    assert!(
        summary.contains("1 rows from 3 reviews (1 accepted revisions)"),
        "{summary}"
    );
    let rows = lines(&sft);
    assert_eq!(
        rows[0]["completion"][0]["content"],
        format!("```rust\n{SUM_FIXED}\n```")
    );

    // Stats: the user's precision figure.
    let run = Command::new(env!("CARGO_BIN_EXE_refine-ls"))
        .args(["learn", "stats", "--json"])
        .env("REFINE_LS_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(run.status.success());
    let stats: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(stats["total"]["findings"], 3);
    assert_eq!(stats["total"]["dismissed"], 1);
    assert_eq!(stats["total"]["fixed"], 1);
    assert_eq!(stats["total"]["revisions"], 2);
    assert_eq!(stats["total"]["acceptance_rate"], 0.5);
    assert_eq!(stats["by_principle"]["readability"]["dismissal_rate"], 1.0);
    assert_eq!(stats["by_principle"]["correctness"]["precision"], 1.0);

    // The secret is in no recorded or exported file.
    let files: Vec<_> = all_files(&data.join("learning"))
        .into_iter()
        .chain(all_files(out.path()))
        .collect();
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(SECRET), "{} holds the secret", f.display());
        assert!(
            !text.contains("Q7vLmN2xR8tY4wZ1"),
            "{} holds part of it",
            f.display()
        );
    }

    // The exports load as a trainer reads them: `datasets` loads them, TRL's data utilities
    // take them for conversational rows and render them with the test model's chat template.
    if let Ok(python) = std::env::var("REFINE_TEST_PYTHON") {
        // The chat template comes from the test model's GGUF.
        let gguf = support::test_gguf();
        let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/trl_check.py");
        let run = Command::new(python)
            .arg(check)
            .arg(&dpo)
            .arg(&sft)
            .arg(&gguf)
            .env("HF_DATASETS_OFFLINE", "1")
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_HOME", out.path().join("hf"))
            .output()
            .expect("python");
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(stdout.contains("trl ok 3 1"), "{stdout}");
    } else {
        eprintln!("REFINE_TEST_PYTHON is not set: the datasets/TRL loader check is skipped");
    }
}

#[tokio::test]
async fn with_recording_off_nothing_is_written() {
    let mock = MockLlm::start(session_script()).await;
    let client = start(&mock, false).await;
    session(&client, "file:///work/demo/src/lib.rs", false).await;
    let data = client.cache_dir.path().join("data");
    assert!(
        !data.join("learning").exists(),
        "{:?}",
        all_files(&data.join("learning"))
    );
}

#[test]
fn a_workspace_cannot_turn_recording_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".refine.toml"),
        "[learning]\nrecord = true\n",
    )
    .unwrap();
    let mut layers = refine_ls::config::Layers::default();
    layers.load_files(Some(dir.path()));
    let resolved = layers.resolve();
    assert!(!resolved.config.learning.record);
    assert!(
        resolved
            .warnings
            .iter()
            .any(|w| w.contains("`learning.record`") && w.contains("not trusted")),
        "{:?}",
        resolved.warnings
    );
}

/// LSP 3.18's change annotations: a revision's edit needs confirming change by change until
/// the user has looked at its diff.
#[tokio::test]
async fn a_revision_needs_confirmation_until_it_is_previewed() {
    let mock = MockLlm::start(session_script()).await;
    let client = LspClient::start(&[("OPENAI_BASE_URL", &mock.base_url)]);
    client
        .initialize(
            json!({"workspace": {"workspaceEdit": {"documentChanges": true, "changeAnnotationSupport": {}}}}),
            json!({}),
        )
        .await;
    let uri = "file:///work/demo/src/lib.rs";
    client.open(uri, "rust", &code()).await;
    let a = client.review(uri, range(0, 5)).await;
    client.finished(&a).await;
    let confirm = || async {
        let actions = client.code_actions(uri, range(2, 3)).await;
        let apply = action_titled(&actions, "Refine: apply revision").clone();
        let edit = &apply["edit"];
        let id = edit["documentChanges"][0]["edits"][0]["annotationId"]
            .as_str()
            .unwrap()
            .to_owned();
        edit["changeAnnotations"][id]["needsConfirmation"].clone()
    };
    assert_eq!(confirm().await, json!(true));
    client
        .command("refine.showRevision", json!([{"uri": uri, "reviewId": a}]))
        .await
        .unwrap();
    assert_eq!(confirm().await, json!(false));
}

/// LSP 3.18's code-action niceties: with `tagSupport` for `LLMGenerated` the revision actions
/// carry `tags: [1]` (a client without it gets none); with `resolveSupport` for `edit` the edit
/// comes from `codeAction/resolve`, and a stale one is refused with a sentence.
#[tokio::test]
async fn revision_actions_are_tagged_and_their_edits_resolved_lazily() {
    let mock = MockLlm::start(session_script()).await;
    let client = LspClient::start(&[("OPENAI_BASE_URL", &mock.base_url)]);
    let init = client
        .initialize(
            json!({"textDocument": {"codeAction": {
                "tagSupport": {"valueSet": [1]},
                "resolveSupport": {"properties": ["edit"]},
                "dataSupport": true}},
              "workspace": {"workspaceEdit": {"documentChanges": true}}}),
            json!({}),
        )
        .await;
    assert_eq!(
        init["capabilities"]["codeActionProvider"]["resolveProvider"], true,
        "{init}"
    );
    let uri = "file:///work/demo/src/lib.rs";
    let text = code();
    client.open(uri, "rust", &text).await;
    let a = client.review(uri, range(0, 5)).await;
    client.finished(&a).await;
    let actions = client.code_actions(uri, range(2, 3)).await;
    let apply = action_titled(&actions, "Refine: apply revision").clone();
    assert_eq!(apply["tags"], json!([1]), "{apply}");
    assert!(apply.get("edit").is_none(), "{apply}");
    assert!(apply["data"].get("refineLlmGenerated").is_none(), "{apply}");
    // The model had no part in these.
    for other in actions.iter().filter(|x| {
        x["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Refine: dismiss"))
    }) {
        assert!(other.get("tags").is_none(), "{other}");
    }
    let resolved = client
        .request("codeAction/resolve", apply.clone())
        .await
        .unwrap();
    assert_eq!(resolved["tags"], json!([1]), "{resolved}");
    let change = &resolved["edit"]["documentChanges"][0];
    assert_eq!(change["textDocument"]["version"], 1);
    let fixed = apply_edits(&text, change["edits"].as_array().unwrap(), "utf-16");
    assert!(fixed.contains("for i in 0..xs.len()"), "{fixed}");
    // Once the document has moved on, the same action is refused, never applied stale.
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2},
                   "contentChanges": [{"text": format!("// top\n{text}")}]}),
        )
        .await;
    let err = client
        .request("codeAction/resolve", apply)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the document changed since review"),
        "{err}"
    );
    // Resolve requests the server did not make: data of another kind or shape comes back as
    // it went, a revision of a review that does not exist is refused with the same sentence,
    // and a request that is no code action is a JSON-RPC error. The server stays up.
    for foreign in [
        json!({"title": "someone else's", "data": {"kind": "other"}}),
        json!({"title": "bad shape", "data": {"refine": "revision", "version": "three"}}),
        json!({"title": "no data"}),
    ] {
        let back = client
            .request("codeAction/resolve", foreign.clone())
            .await
            .unwrap();
        assert_eq!(back["title"], foreign["title"], "{back}");
        assert_eq!(back.get("data"), foreign.get("data"), "{back}");
        assert!(back.get("edit").is_none(), "{back}");
    }
    let unknown = json!({"title": "Refine: apply revision", "data": {
        "refine": "revision", "uri": uri, "reviewId": "review-999", "findingId": null,
        "version": 2}});
    let err = client
        .request("codeAction/resolve", unknown)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the document changed since review review-999"),
        "{err}"
    );
    let err = client
        .request("codeAction/resolve", json!({"no": "title"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("title"), "{err}");
    assert!(
        !client.code_actions(uri, range(0, 1)).await.is_empty(),
        "the server still answers"
    );

    // A client without tag support gets no tags and no marker.
    let plain = LspClient::start(&[("OPENAI_BASE_URL", &mock.base_url)]);
    plain
        .initialize(
            json!({"workspace": {"workspaceEdit": {"documentChanges": true}}}),
            json!({}),
        )
        .await;
    mock.set_script(session_script());
    plain.open(uri, "rust", &text).await;
    let a = plain.review(uri, range(0, 5)).await;
    plain.finished(&a).await;
    let actions = plain.code_actions(uri, range(2, 3)).await;
    let apply = action_titled(&actions, "Refine: apply revision");
    assert!(apply.get("tags").is_none(), "{apply}");
    assert!(apply.get("data").is_none(), "{apply}");
    assert!(
        apply["edit"]["documentChanges"][0]["edits"].is_array(),
        "{apply}"
    );
}

/// `refine-ls dismiss … --scope workspace|user`: the same dismissal an editor writes, in the
/// workspace's file (relative path) or the user's own (absolute path).
#[test]
fn the_command_line_dismisses_into_either_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join(".git")).unwrap();
    std::fs::create_dir_all(d.join("src")).unwrap();
    std::fs::write(d.join("src/sum.rs"), "fn f() {}\n").unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_refine-ls"))
            .args([
                "dismiss",
                "src/sum.rs",
                "--principle",
                "correctness",
                "--quote",
                "1..xs.len()",
            ])
            .args(extra)
            .current_dir(d)
            .env("REFINE_LS_DATA_DIR", d.join("data"))
            .env("REFINE_LS_CONFIG", d.join("none.toml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let written = run(&[]);
    assert!(written.ends_with(".refine/dismissed.toml"), "{written}");
    let t: toml::Value = toml::from_str(&std::fs::read_to_string(&written).unwrap()).unwrap();
    assert_eq!(t["dismissed"][0]["path"].as_str(), Some("src/sum.rs"));
    assert_eq!(
        t["dismissed"][0]["fingerprint"].as_str(),
        Some(
            refine_ls::dismissed::fingerprint("src/sum.rs", "correctness", "1..xs.len()").as_str()
        )
    );
    let written = run(&["--scope", "user"]);
    assert_eq!(
        std::path::PathBuf::from(&written),
        d.join("data/dismissed.toml")
    );
    let t: toml::Value = toml::from_str(&std::fs::read_to_string(&written).unwrap()).unwrap();
    let path = t["dismissed"][0]["path"].as_str().unwrap();
    assert!(
        path.starts_with('/') && path.ends_with("src/sum.rs"),
        "{path}"
    );
}

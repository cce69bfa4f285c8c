//! What leaves the machine: a corpus of secrets in the reviewed code never reaches the model
//! (the mock records every byte it is sent), revisions get the real values back, keys never
//! appear in logs, and secrets files are not reviewed at all.

mod support;

use serde_json::{Value, json};
use support::lsp_client::{LspClient, apply_edits};
use support::mock_llm::{MockLlm, Reply, Script};

const URI: &str = "file:///work/demo/src/settings.py";

/// Fake credentials of 24 kinds, assembled at run time so that no file in the repository
/// holds a string that looks like a live key.
fn corpus() -> Vec<(&'static str, String)> {
    let r = |n: usize, alphabet: &str| -> String {
        let a: Vec<char> = alphabet.chars().collect();
        (0..n).map(|i| a[(i * 7 + n) % a.len()]).collect()
    };
    let alnum = "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xYz";
    let hex = "0123456789abcdef";
    let upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    vec![
        ("openai", format!("sk-proj-{}", r(40, alnum))),
        ("anthropic", format!("sk-ant-api03-{}", r(40, alnum))),
        ("aws id", format!("AKIA{}", r(16, upper))),
        (
            "aws secret",
            format!("aws_secret_access_key = \"{}\"", r(40, alnum)),
        ),
        ("github", format!("ghp_{}", r(36, alnum))),
        ("github pat", format!("github_pat_{}", r(40, alnum))),
        ("gitlab", format!("glpat-{}", r(20, alnum))),
        ("slack", format!("xoxb-{}-{}", r(12, hex), r(24, alnum))),
        (
            "slack hook",
            format!(
                "https://hooks.slack.com/services/T{}/B{}/{}",
                r(8, upper),
                r(8, upper),
                r(24, alnum)
            ),
        ),
        ("stripe", format!("sk_live_{}", r(24, alnum))),
        ("google", format!("AIza{}", r(35, alnum))),
        ("google oauth", format!("GOCSPX-{}", r(28, alnum))),
        (
            "jwt",
            format!("eyJ{}.eyJ{}.{}", r(20, alnum), r(30, alnum), r(43, alnum)),
        ),
        (
            "postgres",
            format!("postgres://app:{}@db.internal:5432/prod", r(16, alnum)),
        ),
        (
            "mongodb",
            format!(
                "mongodb+srv://admin:{}@cluster0.example.net/db",
                r(14, alnum)
            ),
        ),
        ("twilio", format!("SK{}", r(32, hex))),
        ("sendgrid", format!("SG.{}.{}", r(22, alnum), r(43, alnum))),
        ("npm", format!("npm_{}", r(36, alnum))),
        ("pypi", format!("pypi-AgEIcHlwaS5vcmc{}", r(60, alnum))),
        ("hugging face", format!("hf_{}", r(34, alnum))),
        (
            "azure",
            format!(
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={};",
                r(64, alnum)
            ),
        ),
        ("digitalocean", format!("dop_v1_{}", r(64, hex))),
        ("password", "db_password = \"hunter2!x\"".to_owned()),
        (
            "private key",
            format!(
                "-----BEGIN RSA PRIVATE KEY-----\n{}\n{}\n-----END RSA PRIVATE KEY-----",
                r(64, alnum),
                r(64, alnum)
            ),
        ),
        (
            "generic token",
            format!("SERVICE_TOKEN = \"{}\"", r(32, alnum)),
        ),
    ]
}

/// The part of a corpus entry that is the secret itself.
fn secret_part(entry: &str) -> String {
    if let Some((_, v)) = entry.split_once(" = \"") {
        return v.trim_end_matches('"').to_owned();
    }
    if let Some(rest) = entry
        .strip_prefix("postgres://app:")
        .or_else(|| entry.strip_prefix("mongodb+srv://admin:"))
    {
        return rest.split('@').next().unwrap_or("").to_owned();
    }
    if let Some(rest) = entry.split("AccountKey=").nth(1) {
        return rest.trim_end_matches(';').to_owned();
    }
    if entry.starts_with("-----BEGIN") {
        return entry.lines().nth(1).unwrap_or("").to_owned();
    }
    entry.to_owned()
}

fn settings_file() -> String {
    let mut s = String::from("def connect():\n");
    for (i, (_, secret)) in corpus().iter().enumerate() {
        if secret.contains('\n') || secret.contains(" = ") {
            for line in secret.lines() {
                s.push_str(&format!("    # {line}\n"));
            }
        } else {
            s.push_str(&format!("    value_{i} = \"{secret}\"\n"));
        }
    }
    s.push_str("    return open_db(value_0)\n");
    s
}

#[tokio::test]
async fn no_secret_of_the_corpus_reaches_the_model_and_revisions_get_them_back() {
    let text = settings_file();
    let lines = text.lines().count() as u32;
    // The model flags the last line and revises it; its reply quotes the placeholders it saw.
    let finding = json!([{"start_line": lines, "end_line": lines, "quote": "open_db(value_0)", "severity": "warning",
                          "principle": "robustness", "message": "the connection is never closed", "confidence": 0.9}]);
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(finding), Reply::findings(json!([]))].into(),
        revise: vec![Reply::content("pending")].into(),
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("refine.log");
    let cache = dir.path().join("cache");
    let client = LspClient::start(&[
        ("OPENAI_BASE_URL", &mock.base_url),
        ("OPENAI_API_KEY", "sk-test-KEYSHOULDNEVERBELOGGED0123456789"),
        ("RUST_LOG", "debug"),
        ("REFINE_LS_LOG_FILE", log.to_str().unwrap()),
        ("REFINE_LS_CACHE_DIR", cache.to_str().unwrap()),
    ]);
    client.initialize(json!({}), json!({})).await;
    client.open(URI, "python", &text).await;

    // The reviser echoes what it was sent, with the last line changed.
    let sent_selection = {
        let id = client
            .review(URI, json!({"start": {"line": 0, "character": 0}, "end": {"line": lines, "character": 0}}))
            .await;
        let done = client.finished(&id).await;
        assert!(done["redactions"].as_u64().unwrap() >= 24, "{done}");
        assert!(
            done["notes"]
                .to_string()
                .contains("replaced by placeholders")
        );
        let reqs = mock.requests();
        let revise = reqs
            .iter()
            .find(|r| {
                r["messages"][0]["content"]
                    .as_str()
                    .unwrap()
                    .contains("# refine-ls reviser")
            })
            .unwrap();
        let user = revise["messages"][1]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        let start = user.find("```python\n").unwrap() + "```python\n".len();
        let end = start + user[start..].find("\n```").unwrap();
        user[start..end].to_owned()
    };
    assert!(sent_selection.contains("REDACTED_SECRET_1"));

    // Nothing secret in any recorded request.
    let everything: String = mock.requests().iter().map(Value::to_string).collect();
    for (kind, entry) in corpus() {
        let secret = secret_part(&entry);
        let as_json = serde_json::to_string(&secret).unwrap();
        assert!(
            !everything.contains(as_json.trim_matches('"')),
            "{kind} secret reached the model"
        );
    }

    // A revision built on the placeholders is written back with the real values.
    let revised = format!(
        "{}\n",
        sent_selection.replace(
            "return open_db(value_0)",
            "with open_db(value_0) as db:\n        return db"
        )
    );
    mock.set_script(Script {
        critique: vec![
            Reply::findings(json!([{"start_line": lines, "end_line": lines, "quote": "open_db(value_0)", "severity": "warning",
                                    "principle": "robustness", "message": "never closed", "confidence": 0.9}])),
            Reply::findings(json!([])),
        ]
        .into(),
        revise: vec![Reply::code(&revised)].into(),
        ..Script::default()
    });
    let id = client
        .review_forced(
            URI,
            json!({"start": {"line": 0, "character": 0}, "end": {"line": lines, "character": 0}}),
        )
        .await;
    let done = client.finished(&id).await;
    assert_eq!(done["revision"], true, "{done}");
    let actions = client
        .code_actions(
            URI,
            json!({"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}),
        )
        .await;
    let apply = actions
        .iter()
        .find(|a| a["title"].as_str().unwrap().contains("apply revision"))
        .unwrap();
    let edits = apply["edit"]["documentChanges"][0]["edits"]
        .as_array()
        .unwrap();
    let after = apply_edits(&text, edits, "utf-16");
    assert!(
        !after.contains("REDACTED_SECRET"),
        "a placeholder would be written"
    );
    assert_eq!(
        after,
        text.replace(
            "    return open_db(value_0)\n",
            "    with open_db(value_0) as db:\n        return db\n"
        )
    );

    // A revision with a placeholder that matches nothing is refused.
    mock.set_script(Script {
        critique: vec![Reply::findings(json!([{"start_line": lines, "end_line": lines, "quote": "open_db(value_0)", "severity": "warning",
                                                "principle": "robustness", "message": "m", "confidence": 0.9}]))]
        .into(),
        revise: vec![Reply::code(&revised.replace("REDACTED_SECRET_1\"", "REDACTED_SECRET_999\""))].into(),
        ..Script::default()
    });
    let id = client
        .review_forced(
            URI,
            json!({"start": {"line": 0, "character": 0}, "end": {"line": lines, "character": 0}}),
        )
        .await;
    let done = client.finished(&id).await;
    assert_eq!(done["revision"], false);
    assert!(done["notes"].to_string().contains("placeholder"), "{done}");

    // The log has the request bodies (redacted) and never the key or a secret.
    drop(client);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("model request"),
        "request bodies are logged at debug"
    );
    assert!(logged.contains("REDACTED_SECRET_1"));
    assert!(!logged.contains("KEYSHOULDNEVERBELOGGED"));
    for (kind, entry) in corpus() {
        assert!(
            !logged.contains(&secret_part(&entry)),
            "{kind} secret in the log"
        );
    }
    // Nothing in the cache folder holds a secret (the offered revision had them restored),
    // and the cache and the log are the user's alone.
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(&cache).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            stored.extend(std::fs::read(&path).unwrap());
        }
    }
    let stored = String::from_utf8_lossy(&stored);
    for (kind, entry) in corpus() {
        assert!(
            !stored.contains(&secret_part(&entry)),
            "{kind} secret in the cache folder"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&log), 0o600, "the log file");
        assert_eq!(mode(&cache.join("reviews.redb")), 0o600, "the review cache");
        assert_eq!(mode(&cache), 0o700, "the cache folder");
    }
}

#[tokio::test]
async fn secrets_files_are_not_reviewed_unless_configured() {
    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let client = LspClient::start(&[("OPENAI_BASE_URL", &mock.base_url)]);
    client.initialize(json!({}), json!({})).await;
    let env = "file:///work/demo/.env.production";
    client
        .open(
            env,
            "dotenv",
            "DATABASE_URL=postgres://app:s3cretpass@h/db\n",
        )
        .await;
    let err = client
        .command("refine.review", json!([{"uri": env, "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}}]))
        .await
        .unwrap_err();
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("privacy.review_sensitive_files"),
        "{err}"
    );
    assert!(mock.requests().is_empty());

    client
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"refine": {"privacy": {"review_sensitive_files": true}}}}),
        )
        .await;
    let id = client
        .review(
            env,
            json!({"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}),
        )
        .await;
    client.finished(&id).await;
    assert_eq!(mock.requests().len(), 1);
    assert!(
        !mock.requests()[0].to_string().contains("s3cretpass"),
        "still redacted"
    );
}

#[tokio::test]
async fn a_settings_change_that_names_only_hints_keeps_the_provider_it_was_given() {
    // The environment points elsewhere (where `auto` would send code): it must never be used.
    let chosen = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let elsewhere = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        ..Script::default()
    })
    .await;
    let client = LspClient::start(&[("OPENAI_BASE_URL", &elsewhere.base_url)]);
    client
        .initialize(
            json!({}),
            json!({"refine": {"provider": {"kind": "openai", "base_url": chosen.base_url,
                                           "model": "chosen-model"}}}),
        )
        .await;
    let uri = "file:///work/demo/src/lib.rs";
    client
        .open(uri, "rust", "fn f() -> i32 {\n    1\n}\n")
        .await;
    let all = json!({"start": {"line": 0, "character": 0}, "end": {"line": 3, "character": 0}});
    let id = client.review(uri, all.clone()).await;
    client.finished(&id).await;
    client
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"refine": {"hints": {"inlay": "all"}}}}),
        )
        .await;
    let id = client.review_forced(uri, all.clone()).await;
    client.finished(&id).await;
    // And a change to one provider key keeps the others.
    client
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"refine": {"provider": {"model": "renamed-model"}}}}),
        )
        .await;
    let id = client.review_forced(uri, all).await;
    client.finished(&id).await;
    assert!(elsewhere.requests().is_empty(), "no code went elsewhere");
    let models: Vec<Value> = chosen
        .requests()
        .iter()
        .map(|r| r["model"].clone())
        .collect();
    assert_eq!(
        models,
        vec![
            json!("chosen-model"),
            json!("chosen-model"),
            json!("renamed-model")
        ]
    );
}

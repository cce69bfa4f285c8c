//! What leaves the machine: a corpus of secrets in the reviewed code never reaches the model
//! (the mock records every byte it is sent), revisions get the real values back, keys never
//! appear in logs, and secrets files are not reviewed at all.

mod support;

use serde_json::{Value, json};
use support::lsp_client::{LspClient, apply_edits};
use support::mock_llm::{MockLlm, Reply, Script};

const URI: &str = "file:///work/demo/src/settings.py";

/// Fake credentials of 42 kinds, assembled at run time so that no file in the repository
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
        (
            "pgp private key",
            format!(
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n{}\n{}\n=Qx7b\n-----END PGP PRIVATE KEY BLOCK-----",
                r(64, "lQOYBFZxCk8BEACy5tRz7Wn+/3Hd"),
                r(64, alnum)
            ),
        ),
        (
            "bearer",
            format!("Authorization: Bearer {}", r(40, "Xk2Ja9Lz4Qm7Np1Rt")),
        ),
        (
            "gcp private key",
            format!(
                "\"private_key\": \"-----BEGIN PRIVATE KEY-----\\n{}\\n{}\\n-----END PRIVATE KEY-----\\n\",",
                r(64, "MIIEvgIBADANBgkqhkiG9w0"),
                r(64, alnum)
            ),
        ),
        (
            "gcp private key id",
            format!("\"private_key_id\": \"{}\",", r(40, "0123456789abcdef")),
        ),
        (
            "azure service bus",
            format!(
                "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={}",
                r(44, "Zy8Xw7Vu6Ts5Rq4Po3")
            ),
        ),
        (
            "azure sas",
            format!(
                "https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&sp=r&sig={}%3D",
                r(43, "Hg5Fe4Dc3Ba2Zy1Xw")
            ),
        ),
        ("gitlab runner", format!("glrt-{}", r(24, alnum))),
        (
            "slack app",
            format!("xapp-1-A0{}-{}", r(9, upper), r(30, alnum)),
        ),
        ("slack user", format!("xoxe-1-{}", r(40, "Pq9Rs8Tu7Vw6"))),
        ("stripe restricted", format!("rk_live_{}", r(26, alnum))),
        ("stripe webhook", format!("whsec_{}", r(32, "Mn4Bv5Cx6Za7"))),
        (
            "redis",
            format!("redis://:{}@cache.internal:6379/0", r(14, "Wq3Er4Ty5")),
        ),
        ("yaml password", "password: hunter2secret".to_owned()),
        (
            "export",
            format!("export DEPLOY_TOKEN={}", r(32, "Gh7Jk8Lm9Np")),
        ),
        ("dotenv", "DB_PASSWORD=s3cr3t!pass".to_owned()),
        ("yaml api key", format!("api_key: {}", r(28, "Ui6Op5As4Df"))),
    ]
}

/// Entries that are lines of a config file (`.env`, YAML, JSON, a key block), not a value.
fn is_line(entry: &str) -> bool {
    entry.contains('\n')
        || entry.contains(" = ")
        || entry.contains(": ")
        || entry.starts_with("export ")
        || entry.starts_with("DB_")
}

/// The part of a corpus entry that is the secret itself.
fn secret_part(entry: &str) -> String {
    let after = |marker: &str| entry.split(marker).nth(1).map(str::to_owned);
    if let Some(v) = after("-----BEGIN PRIVATE KEY-----\\n") {
        return v.split("\\n").next().unwrap_or("").to_owned();
    }
    if let Some(v) = after("\"private_key_id\": \"") {
        return v.split('"').next().unwrap_or("").to_owned();
    }
    if let Some(v) = after("redis://:") {
        return v.split('@').next().unwrap_or("").to_owned();
    }
    for marker in [
        "Bearer ",
        "SharedAccessKey=",
        "password: ",
        "api_key: ",
        "TOKEN=",
        "PASSWORD=",
    ] {
        if let Some(v) = after(marker) {
            return v;
        }
    }
    if let Some(v) = after("sig=") {
        return v.trim_end_matches("%3D").to_owned();
    }
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
        let body = entry.lines().find(|l| l.len() >= 32);
        return body.unwrap_or("").to_owned();
    }
    entry.to_owned()
}

fn settings_file() -> String {
    let mut s = String::from("def connect():\n");
    for (i, (_, secret)) in corpus().iter().enumerate() {
        if is_line(secret) {
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

/// What the placeholders in `text` start with: `REDACTED_SECRET_` and the random part of the
/// review that sent it (`REDACTED_SECRET_k3f9qa_`).
fn placeholder_start(text: &str) -> String {
    const START: &str = "REDACTED_SECRET_";
    let (at, _) = text
        .match_indices(START)
        .find(|(at, _)| {
            text[at + START.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase())
        })
        .unwrap_or_else(|| panic!("no placeholder with a random part in {text}"));
    let rest = &text[at + START.len()..];
    let part: String = rest
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    format!("{START}{part}_")
}

/// Starts a forced review of `range` in `uri` whose critic says `flag`, with the reviser
/// answering `revision(placeholder start)`: the critic's reply waits while the test reads this
/// review's placeholders off the critic's request and scripts the reviser's answer with them.
/// Returns the review's id.
async fn review_revised_with(
    mock: &MockLlm,
    client: &LspClient,
    (uri, range): (&str, Value),
    flag: Reply,
    revision: impl Fn(&str) -> String,
) -> String {
    let seen = mock.requests().len();
    mock.set_script(Script {
        critique: vec![flag.delayed(1500), Reply::findings(json!([]))].into(),
        revise: vec![Reply::content("not scripted yet")].into(),
        ..Script::default()
    });
    let id = client.review_forced(uri, range).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let critic_request = loop {
        if let Some(r) = mock.requests().get(seen) {
            break r.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no critic request");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    mock.set_script(Script {
        critique: vec![Reply::findings(json!([]))].into(),
        revise: vec![Reply::code(&revision(&placeholder_start(&critic_request)))].into(),
        ..Script::default()
    });
    id
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
        assert!(
            done["redactions"].as_u64().unwrap() >= corpus().len() as u64,
            "{done}"
        );
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
    let first = placeholder_start(&sent_selection);
    assert!(
        sent_selection.contains(&format!("{first}1\"")),
        "{sent_selection}"
    );

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

    // A revision built on the placeholders (this review's own: each review picks a random
    // part) is written back with the real values.
    let revised = format!(
        "{}\n",
        sent_selection.replace(
            "return open_db(value_0)",
            "with open_db(value_0) as db:\n        return db"
        )
    );
    let flag = |message: &str| {
        Reply::findings(
            json!([{"start_line": lines, "end_line": lines, "quote": "open_db(value_0)", "severity": "warning",
                                "principle": "robustness", "message": message, "confidence": 0.9}]),
        )
    };
    let whole =
        json!({"start": {"line": 0, "character": 0}, "end": {"line": lines, "character": 0}});
    let id = review_revised_with(
        &mock,
        &client,
        (URI, whole.clone()),
        flag("never closed"),
        |start| revised.replace(&first, start),
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

    // A revision with a placeholder of this review that matches nothing is refused, and so
    // is one with a placeholder-like word the code does not hold (another review's).
    for invented in ["{start}999\"", "REDACTED_SECRET_zz9zz9_1\""] {
        let id = review_revised_with(&mock, &client, (URI, whole.clone()), flag("m"), |start| {
            revised
                .replace(&first, start)
                .replace(&format!("{start}1\""), &invented.replace("{start}", start))
        })
        .await;
        let done = client.finished(&id).await;
        assert_eq!(done["revision"], false, "{invented}: {done}");
        assert!(done["notes"].to_string().contains("placeholder"), "{done}");
    }

    // The log has the request bodies (redacted) and never the key or a secret.
    drop(client);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("model request"),
        "request bodies are logged at debug"
    );
    assert!(logged.contains(&first));
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
async fn a_key_block_cut_by_the_selection_reaches_neither_the_model_nor_the_log() {
    let r = |n: usize, alphabet: &str| -> String {
        let a: Vec<char> = alphabet.chars().collect();
        (0..n).map(|i| a[(i * 7 + n) % a.len()]).collect()
    };
    let body: Vec<String> = [
        "MIIEpAIBAAKCAQEA3Tz2",
        "Kq8Lm3Np7Rs",
        "Vw4Xy6Za9Bc",
        "Df2Gh5Jk1Lo",
    ]
    .iter()
    .map(|a| r(64, a))
    .collect();
    // Lines 1-6 (0-based) are the key; each review cuts it in two, the rest in the context.
    let text = format!(
        "def load():\n    key = \"\"\"-----BEGIN RSA PRIVATE KEY-----\n{}\n{}\n{}\n{}\n-----END RSA PRIVATE KEY-----\"\"\"\n    return key\n\ndef other():\n    return 1\n",
        body[0], body[1], body[2], body[3]
    );
    let uri = "file:///work/demo/src/keys.py";
    let flag = |line: u32, quote: &str| {
        Reply::findings(
            json!([{"start_line": line, "end_line": line, "quote": quote, "severity": "warning",
                                "principle": "robustness", "message": "m", "confidence": 0.9}]),
        )
    };
    let mock = MockLlm::start(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("refine.log");
    let client = LspClient::start(&[
        ("OPENAI_BASE_URL", &mock.base_url),
        ("RUST_LOG", "debug"),
        ("REFINE_LS_LOG_FILE", log.to_str().unwrap()),
    ]);
    client.initialize(json!({}), json!({})).await;
    client.open(uri, "python", &text).await;
    let range = |a: u32, b: u32| json!({"start": {"line": a, "character": 0}, "end": {"line": b, "character": 0}});
    // The key's BEGIN and first lines in the context before, the rest in the selection; then
    // the selection ending halfway through the key, the rest in the context after. The
    // critic flags a line and the reviser is asked too (its answer holds no code).
    for (selection, flagged) in [
        ((4, 11), flag(8, "return key")),
        ((0, 4), flag(1, "def load():")),
    ] {
        mock.set_script(Script {
            critique: vec![flagged].into(),
            revise: vec![Reply::content("no code")].into(),
            ..Script::default()
        });
        let id = client
            .review_forced(uri, range(selection.0, selection.1))
            .await;
        let done = client.finished(&id).await;
        assert!(done["redactions"].as_u64().unwrap() >= 1, "{done}");
    }
    let reqs = mock.requests();
    assert!(
        reqs.iter()
            .any(|r| r.to_string().contains("# refine-ls reviser"))
    );
    // The key's placeholder where it starts: in the context before, behind `"""`.
    assert!(
        reqs.iter().any(|r| r["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("key = \"\"\"REDACTED_SECRET_")),
        "the critic saw the context before"
    );
    drop(client);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("model request"),
        "request bodies are logged"
    );
    let everything: String = reqs.iter().map(Value::to_string).collect();
    for (i, line) in body.iter().enumerate() {
        // Any 24 characters of the key's lines.
        for piece in [&line[..24], &line[20..44], &line[40..]] {
            assert!(
                !everything.contains(piece),
                "key line {i} reached the model"
            );
            assert!(!logged.contains(piece), "key line {i} in the log");
        }
    }
}

#[tokio::test]
async fn a_placeholder_written_in_the_code_stays_as_it_is() {
    // Code that itself holds a placeholder-like word (a test of redaction) and a real key.
    let key = format!("sk-proj-{}", "Zq7Xw3Vb9Nm1Lk5Jh8Gf2Dd4Ss6Aa0Pp3Oo7Ii");
    let text = format!(
        "def test_redaction():\n    assert \"REDACTED_SECRET_1\" in redact(KEY)\n\nKEY = \"{key}\"\n\ndef f():\n    return 1\n"
    );
    let uri = "file:///work/demo/tests/test_redact.py";
    let mock = MockLlm::start(Script::default()).await;
    let client = LspClient::start(&[("OPENAI_BASE_URL", &mock.base_url)]);
    client.initialize(json!({}), json!({})).await;
    client.open(uri, "python", &text).await;
    let flag = Reply::findings(
        json!([{"start_line": 7, "end_line": 7, "quote": "return 1", "severity": "warning",
                                       "principle": "correctness", "message": "should be 2", "confidence": 0.9}]),
    );
    // The reviser answers with what it was sent, one line changed: the key as this review's
    // placeholder, the word the code held as it was.
    let whole = json!({"start": {"line": 0, "character": 0}, "end": {"line": 7, "character": 0}});
    let id = review_revised_with(&mock, &client, (uri, whole), flag, |start| {
        text.replace(&key, &format!("{start}1"))
            .replace("return 1", "return 2")
    })
    .await;
    let done = client.finished(&id).await;
    assert_eq!(done["revision"], true, "{done}");
    let sent = mock.requests()[0].to_string();
    assert!(!sent.contains(&key) && sent.contains("\\\"REDACTED_SECRET_1\\\" in redact"));
    let actions = client
        .code_actions(
            uri,
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
    assert_eq!(
        apply_edits(&text, edits, "utf-16"),
        text.replace("return 1", "return 2"),
        "the key is back and the word the code held is untouched"
    );
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

//! The GitHub composite action (`action.yml`): its inputs and steps hang together, and its own
//! steps (install, review, fail) run as GitHub would run them (their `env` evaluated from the
//! inputs, `GITHUB_OUTPUT`/`GITHUB_PATH` files, the base branch fetched from `origin`) in a real
//! repository against the scripted model over HTTP. The `uses:` steps (cache, SARIF upload,
//! reviewdog's setup) are GitHub's own and are checked for their wiring only.
//!
//! action.yml is read with PyYAML (`REFINE_TEST_PYTHON`, a Python that has it) and validated by
//! `@action-validator/cli` (`ACTION_VALIDATOR`); scripts/test sets both. Without them the tests
//! say so and stop.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use support::mock_llm::{MockLlm, Reply, Script};
use support::repo::git_ok as git;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn action() -> Option<Value> {
    let Ok(python) = std::env::var("REFINE_TEST_PYTHON") else {
        eprintln!(
            "action.yml not read: set REFINE_TEST_PYTHON to a Python with PyYAML (scripts/test does)"
        );
        return None;
    };
    let out = std::process::Command::new(python)
        .arg(Path::new(ROOT).join("tests/support/yaml_to_json.py"))
        .arg(Path::new(ROOT).join("action.yml"))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "action.yml is not YAML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("JSON from the YAML"))
}

fn step<'a>(action: &'a Value, name: &str) -> &'a Value {
    action["runs"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name:?}"))
}

/// Every `inputs.NAME` in `text` (in `${{ }}` and in `if:` conditions).
fn inputs_used(text: &str) -> Vec<String> {
    let re = regex::Regex::new(r"\binputs\.([A-Za-z0-9_-]+)").unwrap();
    re.captures_iter(text).map(|c| c[1].to_owned()).collect()
}

#[test]
fn the_action_declares_every_input_it_uses_and_its_scripts_exist() {
    let Some(action) = action() else { return };
    assert_eq!(action["runs"]["using"], "composite");
    let declared: Vec<String> = action["inputs"]
        .as_object()
        .expect("inputs")
        .keys()
        .cloned()
        .collect();
    let text = std::fs::read_to_string(Path::new(ROOT).join("action.yml")).unwrap();
    let used = inputs_used(&text);
    for u in &used {
        assert!(declared.contains(u), "input {u} is used but not declared");
    }
    for d in &declared {
        assert!(used.contains(d), "input {d} is declared but never used");
    }
    for name in ["Install refine-ls", "Review the change"] {
        let run = step(&action, name)["run"].as_str().expect("a run step");
        let script = run
            .trim_matches(|c| c == '"' || c == '\'')
            .replace("$GITHUB_ACTION_PATH", ROOT);
        let meta = std::fs::metadata(&script).unwrap_or_else(|e| panic!("{script}: {e}"));
        use std::os::unix::fs::PermissionsExt;
        assert!(
            meta.permissions().mode() & 0o111 != 0,
            "{script} is not executable"
        );
    }
    let upload = step(&action, "Upload the findings to code scanning");
    assert!(
        upload["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("github/codeql-action/upload-sarif@")),
        "{upload}"
    );
    assert_eq!(
        upload["with"]["sarif_file"],
        "${{ steps.review.outputs.sarif-file }}"
    );
    assert_eq!(step(&action, "Review the change")["id"], "review");
}

/// action.yml against SchemaStore's schema for GitHub action metadata, with npm's
/// `@action-validator/cli` (`ACTION_VALIDATOR`; scripts/test installs it).
#[test]
fn the_action_is_valid_action_metadata() {
    let Ok(tool) = std::env::var("ACTION_VALIDATOR") else {
        eprintln!("action.yml not validated: set ACTION_VALIDATOR (scripts/test does)");
        return;
    };
    support::validate::must_pass(
        "action-validator",
        std::process::Command::new(tool).arg(Path::new(ROOT).join("action.yml")),
    );
}

/// A step's `env` with `${{ inputs.X }}` replaced by the input's value (given, else its
/// default), `${{ steps.S.outputs.X }}` by what earlier steps wrote to `GITHUB_OUTPUT`, and any
/// other expression by the empty string.
fn step_env(
    action: &Value,
    step: &Value,
    given: &BTreeMap<&str, String>,
    outputs: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let re = regex::Regex::new(r"\$\{\{\s*([^}]*?)\s*\}\}").unwrap();
    let Some(env) = step["env"].as_object() else {
        return Vec::new();
    };
    env.iter()
        .map(|(k, v)| {
            let v = v.as_str().unwrap_or_default();
            let value = re.replace_all(v, |c: &regex::Captures| {
                let expr = &c[1];
                match expr.strip_prefix("inputs.") {
                    Some(name) => given.get(name).cloned().unwrap_or_else(|| {
                        action["inputs"][name]["default"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned()
                    }),
                    None => expr
                        .strip_prefix("steps.")
                        .and_then(|e| e.split_once(".outputs."))
                        .and_then(|(_, name)| outputs.get(name).cloned())
                        .unwrap_or_default(),
                }
            });
            (k.clone(), value.into_owned())
        })
        .collect()
}

/// The `KEY=VALUE` lines of a `GITHUB_OUTPUT` file.
fn outputs(file: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_actions_steps_review_a_pull_request_and_write_sarif_and_rdjson() {
    let Some(action) = action() else { return };
    // A pull request: `feature` changes `b`'s loop; `origin` has `main`, as on GitHub.
    let dir = tempfile::tempdir().unwrap();
    let origin = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(d.join("src")).unwrap();
    let base = "fn b(xs: &[i32]) -> i32 {\n    let mut s = 0;\n    for i in 0..xs.len() {\n        s += xs[i];\n    }\n    s\n}\n";
    std::fs::write(d.join("src/lib.rs"), base).unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "base"]);
    git(
        origin.path(),
        &["clone", "-q", "--bare", d.to_str().unwrap(), "."],
    );
    git(
        d,
        &["remote", "add", "origin", origin.path().to_str().unwrap()],
    );
    git(d, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(d.join("src/lib.rs"), base.replace("0..xs", "1..xs")).unwrap();
    git(d, &["commit", "-q", "-am", "start at 1"]);

    let mock = MockLlm::start(Script {
        critique: vec![Reply::findings(json!([{"start_line": 3, "end_line": 3,
            "quote": "1..xs.len()", "severity": "warning", "principle": "correctness",
            "message": "the loop skips xs[0]", "confidence": 0.9}]))]
        .into(),
        revise: vec![Reply::code(&base.replace("\n}\n", "\n}"))].into(),
        ..Script::default()
    })
    .await;

    let runner = tempfile::tempdir().unwrap();
    let output_file = runner.path().join("output");
    let path_file = runner.path().join("path");
    let given: BTreeMap<&str, String> = [
        ("binary", env!("CARGO_BIN_EXE_refine-ls").to_owned()),
        ("base-url", mock.base_url.clone()),
        ("provider", "openai".to_owned()),
        ("fail-on", "warning".to_owned()),
        ("reviewdog", "true".to_owned()),
        ("jobs", "2".to_owned()),
    ]
    .into_iter()
    .collect();
    let run_step = |name: &str, extra_path: &str, given: &BTreeMap<&str, String>| {
        let step = step(&action, name);
        let mut cmd = std::process::Command::new("bash");
        cmd.arg("-c")
            .arg(step["run"].as_str().expect("a run step"))
            .current_dir(d)
            .env("GITHUB_ACTION_PATH", ROOT)
            .env("RUNNER_TEMP", runner.path())
            .env("GITHUB_OUTPUT", &output_file)
            .env("GITHUB_PATH", &path_file)
            .env("GITHUB_BASE_REF", "main")
            .env(
                "PATH",
                format!("{extra_path}:{}", std::env::var("PATH").unwrap_or_default()),
            )
            .env("REFINE_LS_CONFIG", support::test_config())
            .env_remove("OPENAI_BASE_URL");
        for (k, v) in step_env(&action, step, given, &outputs(&output_file)) {
            cmd.env(k, v);
        }
        cmd.output().expect("run the step")
    };

    let install = run_step("Install refine-ls", "", &given);
    assert!(
        install.status.success(),
        "install: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let bin_dir = std::fs::read_to_string(&path_file).unwrap();
    let bin_dir = bin_dir.trim();
    assert!(Path::new(bin_dir).join("refine-ls").exists(), "{bin_dir}");

    // Blocking here is fine: the mock answers on the runtime's other workers.
    let review = tokio::task::block_in_place(|| run_step("Review the change", bin_dir, &given));
    let stderr = String::from_utf8_lossy(&review.stderr).into_owned();
    assert!(
        review.status.success(),
        "the review step itself succeeds: {stderr}"
    );
    let out = outputs(&output_file);
    assert_eq!(
        out.get("exit-code").map(String::as_str),
        Some("1"),
        "{out:?} {stderr}"
    );
    let sarif_file = d.join(out.get("sarif-file").expect("sarif-file output"));
    let sarif: Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif_file).unwrap()).unwrap();
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "correctness", "{sarif}");
    assert_eq!(
        result["locations"][0]["physicalLocation"]["region"]["startLine"],
        3
    );
    assert_eq!(
        result["fixes"][0]["artifactChanges"][0]["replacements"][0]["insertedContent"]["text"], "0",
        "the verified fix: {sarif}"
    );
    let rdjson: Value = serde_json::from_str(
        &std::fs::read_to_string(d.join(out.get("rdjson-file").expect("rdjson-file output")))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rdjson["diagnostics"][0]["location"]["path"], "src/lib.rs");
    // The rdjson came from the review cache: the model was asked once.
    let critiques = mock
        .requests()
        .iter()
        .filter(|b| support::mock_llm::role_of(b) == "critique")
        .count();
    assert_eq!(critiques, 1, "{stderr}");
    let cache_dir = outputs(&output_file)
        .get("cache-dir")
        .cloned()
        .expect("the install step names the cache folder");
    assert!(
        Path::new(&cache_dir).is_dir() && Path::new(&cache_dir).starts_with(runner.path()),
        "the cache folder the action restores, outside the checkout: {cache_dir}"
    );
    assert!(
        !d.join(".refine-ls-cache").exists(),
        "no cache inside the checkout"
    );
    assert_eq!(out.get("category").map(String::as_str), Some("refine-ls"));
    assert!(
        sarif["runs"][0].get("automationDetails").is_none(),
        "{sarif}"
    );

    // One job of a matrix of two: the change's one region is the first shard's, so the second
    // reviews nothing, passes, and uploads under its own category.
    let mut second = given.clone();
    second.insert("shard", "2".to_owned());
    second.insert("shards", "2".to_owned());
    std::fs::write(&output_file, "").unwrap();
    let review = tokio::task::block_in_place(|| run_step("Review the change", bin_dir, &second));
    let stderr = String::from_utf8_lossy(&review.stderr).into_owned();
    let out2 = outputs(&output_file);
    assert_eq!(
        out2.get("exit-code").map(String::as_str),
        Some("0"),
        "{stderr}"
    );
    assert_eq!(
        out2.get("category").map(String::as_str),
        Some("refine-ls/shard-2-of-2")
    );
    assert!(stderr.contains("0 region(s) (shard 2/2)"), "{stderr}");
    let sarif: Value = serde_json::from_str(
        &std::fs::read_to_string(d.join(out2.get("sarif-file").expect("sarif-file"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        sarif["runs"][0]["automationDetails"]["id"], "refine-ls/shard-2-of-2/",
        "{sarif}"
    );
    assert_eq!(sarif["runs"][0]["results"], json!([]));

    // The last step fails the job on the review's exit status.
    std::fs::write(&output_file, "").unwrap();
    let fail = step(&action, "Fail on findings at or above fail-on");
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(fail["run"].as_str().unwrap())
        .env("EXIT_CODE", out["exit-code"].as_str())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
}

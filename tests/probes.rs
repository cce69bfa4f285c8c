//! Probes against the real toolchains under real bubblewrap: the README's buggy `sum_even`
//! and a fixed candidate, hostile candidates (endless loops, floods of output, exits, reads
//! and deletes outside the scratch copy, unbounded allocation), in Rust and Python.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use refine_ls::probe::{self, Call, Language, Limits, Outcome, ProbeError, Request};
use tokio_util::sync::CancellationToken;

const BUGGY: &str = include_str!("../examples/buggy_sum.rs");

/// Whether the toolchain and bubblewrap are here; prints why not.
fn ready(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|d| d.join(tool).is_file()) {
        eprintln!("skipped: {tool} is not on PATH");
        return false;
    }
    if !refine_ls::sandbox::available() {
        eprintln!("skipped: bubblewrap does not work here");
        return false;
    }
    true
}

fn call(function: &str, args: &str, expected: Option<&str>) -> Call {
    Call {
        function: function.into(),
        args: args.into(),
        expected: expected.map(str::to_owned),
    }
}

fn value(v: &str) -> Outcome {
    Outcome::Value(v.into())
}

/// The selection of `sum_even` in the buggy file.
fn rust_selection() -> std::ops::Range<usize> {
    let start = BUGGY.find("pub fn sum_even").unwrap();
    let end = BUGGY.find("\n\n/// Returns the average").unwrap() + 1;
    start..end
}

async fn probe(
    language: Language,
    file: &str,
    selection: std::ops::Range<usize>,
    versions: &[String],
    calls: &[Call],
    limits: Limits,
) -> Result<probe::Report, ProbeError> {
    let req = Request {
        language,
        file,
        selection,
        versions,
        calls,
        krate: None,
        limits,
    };
    probe::runner::run(&req, &CancellationToken::new()).await
}

/// A folder of this test's own under the real home's cache (not /tmp, which the sandbox
/// replaces with its own).
fn victim_dir() -> tempfile::TempDir {
    let base = dirs::home_dir().unwrap().join(".cache/refine-ls-tests");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("probe-")
        .tempdir_in(base)
        .unwrap()
}

#[tokio::test]
async fn rust_the_buggy_sum_and_its_fix() {
    if !ready("rustc") {
        return;
    }
    let sel = rust_selection();
    let original = BUGGY[sel.clone()].to_owned();
    let fixed = original.replace("1..xs.len()", "0..xs.len()");
    let calls = [
        call("sum_even", "&[2]", None),
        call("sum_even", "&[]", None),
        call("sum_even", "&[1, 2, 3, 4]", None),
        call("sum_even", "&[2]", Some("2")),
    ];
    let started = Instant::now();
    let r = probe(
        Language::Rust,
        BUGGY,
        sel,
        &[original, fixed],
        &calls,
        Limits::default(),
    )
    .await
    .unwrap();
    eprintln!("rust: 2 versions x 4 calls in {:?}", started.elapsed());
    assert!(r.sandboxed);
    assert_eq!(
        r.outcomes[0],
        [value("0"), value("0"), value("6"), value("0")]
    );
    assert_eq!(
        r.outcomes[1],
        [value("2"), value("0"), value("6"), value("2")]
    );
    assert_eq!(r.matches[0], [None, None, None, Some(false)]);
    assert_eq!(r.matches[1], [None, None, None, Some(true)]);
    assert!(r.dropped.is_empty());
}

#[tokio::test]
async fn rust_a_call_that_does_not_type_check_is_dropped_and_a_broken_candidate_marked() {
    if !ready("rustc") {
        return;
    }
    let sel = rust_selection();
    let original = BUGGY[sel.clone()].to_owned();
    let broken = original.replace("total\n}", "total +\n}");
    let changed = original
        .replace("xs: &[i64]", "xs: &[i32]")
        .replace("total += xs[i]", "total += xs[i] as i64");
    let calls = [
        call("sum_even", "&[2, 4]", None),
        call("sum_even", "\"not a slice\"", None),
        call("sum_even", "&[2i64]", None),
    ];
    let r = probe(
        Language::Rust,
        BUGGY,
        sel,
        &[original, broken, changed],
        &calls,
        Limits::default(),
    )
    .await
    .unwrap();
    assert_eq!(r.dropped.len(), 1, "{r:?}");
    assert_eq!(r.dropped[0].0, 1);
    assert_eq!(r.outcomes[0][0], value("4"));
    assert!(matches!(&r.outcomes[0][1], Outcome::NotRun(_)));
    assert!(
        matches!(&r.outcomes[1][0], Outcome::NotRun(w) if w.starts_with("does not compile")),
        "{r:?}"
    );
    // The candidate that changed the parameter's type runs what still compiles.
    assert_eq!(r.outcomes[2][0], value("4"));
    assert!(
        matches!(&r.outcomes[2][2], Outcome::NotRun(w) if w.starts_with("does not compile")),
        "{r:?}"
    );
}

#[tokio::test]
async fn rust_hostile_candidates_are_contained() {
    if !ready("rustc") {
        return;
    }
    let victims = victim_dir();
    let victim = victims.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let secret = dirs::home_dir()
        .unwrap()
        .join(format!(".refine-ls-probe-secret-{}", std::process::id()));
    std::fs::write(&secret, "secret").unwrap();
    let sel = rust_selection();
    let original = BUGGY[sel.clone()].to_owned();
    let sig = "pub fn sum_even(xs: &[i64]) -> i64 {";
    let versions = [
        original.clone(),
        format!("{sig}\n    loop {{}}\n}}\n"),
        format!(
            "{sig}\n    use std::io::Write;\n    let chunk = vec![b'x'; 1 << 20];\n    for _ in 0..100 {{ let _ = std::io::stdout().write_all(&chunk); }}\n    xs.len() as i64\n}}\n"
        ),
        format!("{sig}\n    std::process::exit(3)\n}}\n"),
        format!(
            "{sig}\n    let _ = std::fs::remove_file({:?});\n    let _ = std::fs::remove_file({:?});\n    std::fs::read_to_string({:?}).map(|s| s.len() as i64).unwrap_or(-1) + std::fs::read_dir({:?}).map(|d| d.count() as i64).unwrap_or(-10)\n}}\n",
            victim,
            secret,
            secret,
            dirs::home_dir().unwrap().join(".ssh")
        ),
        format!(
            "{sig}\n    let mut v: Vec<Vec<u8>> = Vec::new();\n    loop {{ v.push(vec![1u8; 1 << 24]); }}\n}}\n"
        ),
    ];
    let calls = [
        call("sum_even", "&[2]", None),
        call("sum_even", "&[1, 2, 3, 4]", None),
    ];
    let limits = Limits {
        per_call: Duration::from_secs(2),
        total: Duration::from_secs(60),
        memory_bytes: 1 << 30,
        output_bytes: 64 << 10,
    };
    let started = Instant::now();
    let r = probe(Language::Rust, BUGGY, sel, &versions, &calls, limits)
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!(
        "rust hostile: 6 versions x 2 calls in {took:?}: {:?}",
        r.outcomes
    );
    assert!(took < Duration::from_secs(40), "{took:?}");
    assert_eq!(r.outcomes[0], [value("0"), value("6")]);
    // The loop never ends: the first call times out; the second too, or (on a loaded machine,
    // with the first call's thread still spinning) the version's process is ended first.
    assert_eq!(r.outcomes[1][0], Outcome::Timeout, "{:?}", r.outcomes[1]);
    assert!(
        matches!(
            r.outcomes[1][1],
            Outcome::Timeout | Outcome::Exited(None) | Outcome::NotRun(_)
        ),
        "{:?}",
        r.outcomes[1]
    );
    assert_eq!(r.outcomes[2], [value("1"), value("4")]);
    assert_eq!(r.outcomes[3][0], Outcome::Exited(Some(3)));
    assert!(matches!(&r.outcomes[3][1], Outcome::NotRun(_)));
    // Nothing outside the scratch copy was deleted, nothing of the home folder read: the
    // folder holding the victim is not there at all, the secret and `~/.ssh` neither.
    assert_eq!(r.outcomes[4], [value("-11"), value("-11")]);
    assert!(victim.exists() && secret.exists());
    assert!(
        matches!(&r.outcomes[5][0], Outcome::Exited(_) | Outcome::Panic(_)),
        "{:?}",
        r.outcomes[5]
    );
    std::fs::remove_file(&secret).unwrap();
}

#[test]
fn rust_a_method_is_not_a_target() {
    let file = "struct Rect { w: f64, h: f64 }\nimpl Rect {\n    fn area(&self) -> f64 { self.w * self.h }\n}\n";
    assert_eq!(
        probe::target::targets(Language::Rust, file, 0..file.len()).unwrap_err(),
        "`area` is a method: it needs a receiver"
    );
}

const PY_BUGGY: &str = "import os\nimport sys\n\n\ndef sum_even(xs):\n    \"\"\"Returns the sum of the even numbers in xs.\n\n    >>> sum_even([2])\n    2\n    \"\"\"\n    total = 0\n    for i in range(1, len(xs)):\n        if xs[i] % 2 == 0:\n            total += xs[i]\n    return total\n\n\nif __name__ == \"__main__\":\n    print(sum_even([1]))\n    sys.exit(9)\n";

fn py_selection() -> std::ops::Range<usize> {
    let start = PY_BUGGY.find("def sum_even").unwrap();
    let end = PY_BUGGY.find("\n\n\nif __name__").unwrap() + 1;
    start..end
}

#[tokio::test]
async fn python_the_buggy_sum_and_its_fix_with_its_doctest() {
    if !ready("python3") {
        return;
    }
    let sel = py_selection();
    let original = PY_BUGGY[sel.clone()].to_owned();
    let fixed = original.replace("range(1, len(xs))", "range(len(xs))");
    let targets = probe::target::targets(Language::Python, PY_BUGGY, sel.clone()).unwrap();
    let mut calls = vec![
        call("sum_even", "[2]", None),
        call("sum_even", "[]", None),
        call("sum_even", "[1, 2, 3, 4]", None),
        call("sum_even", "undefined_name", None),
    ];
    calls.extend(targets[0].examples.iter().cloned());
    assert_eq!(calls[4], call("sum_even", "[2]", Some("2")));
    let started = Instant::now();
    let r = probe(
        Language::Python,
        PY_BUGGY,
        sel,
        &[original, fixed],
        &calls,
        Limits::default(),
    )
    .await
    .unwrap();
    eprintln!("python: 2 versions x 5 calls in {:?}", started.elapsed());
    assert!(r.sandboxed);
    assert_eq!(r.outcomes[0][..3], [value("0"), value("0"), value("6")]);
    assert_eq!(r.outcomes[1][..3], [value("2"), value("0"), value("6")]);
    assert_eq!(r.matches[0][4], Some(false));
    assert_eq!(r.matches[1][4], Some(true));
    assert_eq!(
        r.dropped,
        [(
            3,
            "NameError: name 'undefined_name' is not defined".to_owned()
        )]
    );
    assert!(matches!(&r.outcomes[1][3], Outcome::NotRun(_)));
}

#[tokio::test]
async fn python_hostile_candidates_are_contained() {
    if !ready("python3") {
        return;
    }
    let victims = victim_dir();
    let victim: PathBuf = victims.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let secret = dirs::home_dir()
        .unwrap()
        .join(format!(".refine-ls-probe-pysecret-{}", std::process::id()));
    std::fs::write(&secret, "secret").unwrap();
    let sel = py_selection();
    let original = PY_BUGGY[sel.clone()].to_owned();
    let versions = [
        original,
        "def sum_even(xs):\n    while True:\n        pass\n".to_owned(),
        "def sum_even(xs):\n    sys.exit(3)\n".to_owned(),
        format!(
            "def sum_even(xs):\n    for p in ({:?}, {:?}):\n        try:\n            os.remove(p)\n        except OSError:\n            pass\n    try:\n        return open({:?}).read()\n    except OSError as e:\n        return type(e).__name__\n",
            victim.display().to_string(),
            secret.display().to_string(),
            secret.display().to_string()
        ),
        "import no_such_module_for_refine\n\ndef sum_even(xs):\n    return 0\n".to_owned(),
        "def sum_even(xs):\n    return [bytearray(1 << 24) for _ in range(10**6)]\n".to_owned(),
    ];
    let calls = [
        call("sum_even", "[2]", None),
        call("sum_even", "[1, 2, 3, 4]", None),
    ];
    let limits = Limits {
        per_call: Duration::from_secs(2),
        total: Duration::from_secs(60),
        memory_bytes: 1 << 30,
        output_bytes: 64 << 10,
    };
    let started = Instant::now();
    let r = probe(Language::Python, PY_BUGGY, sel, &versions, &calls, limits)
        .await
        .unwrap();
    let took = started.elapsed();
    eprintln!(
        "python hostile: 6 versions x 2 calls in {took:?}: {:?}",
        r.outcomes
    );
    assert!(took < Duration::from_secs(40), "{took:?}");
    assert_eq!(r.outcomes[0], [value("0"), value("6")]);
    // The loop never ends: the first call times out; the second too, or (on a loaded machine,
    // with the first call's thread still spinning) the version's process is ended first.
    assert_eq!(r.outcomes[1][0], Outcome::Timeout, "{:?}", r.outcomes[1]);
    assert!(
        matches!(
            r.outcomes[1][1],
            Outcome::Timeout | Outcome::Exited(None) | Outcome::NotRun(_)
        ),
        "{:?}",
        r.outcomes[1]
    );
    assert_eq!(r.outcomes[2][0], Outcome::Exited(Some(3)));
    assert_eq!(
        r.outcomes[3],
        [value("'FileNotFoundError'"), value("'FileNotFoundError'")]
    );
    assert!(victim.exists() && secret.exists());
    assert!(
        matches!(&r.outcomes[4][0], Outcome::NotRun(w) if w.starts_with("does not import: ModuleNotFoundError"))
    );
    assert!(
        // MemoryError, or the process killed: not the machine.
        matches!(&r.outcomes[5][0], Outcome::Panic(_) | Outcome::Exited(_)),
        "{:?}",
        r.outcomes[5]
    );
    std::fs::remove_file(&secret).unwrap();
}

#[tokio::test]
async fn a_regression_test_fails_on_the_original_and_passes_on_the_fix() {
    if !ready("rustc") || !ready("python3") {
        return;
    }
    let sel = rust_selection();
    let fixed_file = BUGGY.replace("1..xs.len()", "0..xs.len()");
    let c = call("sum_even", "&[2]", Some("2"));
    let t = probe::regression::regression_test(Language::Rust, BUGGY, &c).unwrap();
    let _ = sel;
    let (on_original, on_fix) = probe::regression::verify(
        Language::Rust,
        &t.insert_into(BUGGY),
        &t.insert_into(&fixed_file),
        &t,
        None,
        Limits::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!((on_original, on_fix), (false, true));
    let fixed_py = PY_BUGGY.replace("range(1, len(xs))", "range(len(xs))");
    let c = call("sum_even", "[2]", Some("2"));
    let t = probe::regression::regression_test(Language::Python, PY_BUGGY, &c).unwrap();
    let got = probe::regression::verify(
        Language::Python,
        &t.insert_into(PY_BUGGY),
        &t.insert_into(&fixed_py),
        &t,
        None,
        Limits::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(got, (false, true));
}

const CRATE_LIB: &str = "pub mod util;

/// Sums the even numbers of `xs`.
pub fn sum_even(xs: &[i64]) -> i64 {
    let mut total = 0;
    for i in 1..xs.len() {
        if crate::util::is_even(xs[i]) {
            total += xs[i];
        }
    }
    total
}
";
const CRATE_UTIL: &str =
    "/// Whether `x` is even.\npub fn is_even(x: i64) -> bool {\n    x % 2 == 0\n}\n";

/// Every file under `dir` with its bytes.
fn snapshot(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn rust_a_file_of_a_crate_is_probed_in_its_crate_and_the_build_is_kept() {
    if !ready("cargo") {
        return;
    }
    let dir = victim_dir();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join("target")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"probe_fixture\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(root.join("src/lib.rs"), CRATE_LIB).unwrap();
    std::fs::write(root.join("src/util.rs"), CRATE_UTIL).unwrap();
    std::fs::write(root.join("target/mine"), "the user's build").unwrap();
    let before = snapshot(root);
    let krate = probe::cargo::find_crate(&root.join("src/lib.rs"), Some(root)).unwrap();
    let build = probe::cargo::build_folder(root).unwrap();
    let start = CRATE_LIB.find("/// Sums").unwrap();
    let original = CRATE_LIB[start..].to_owned();
    let versions = [
        original.clone(),
        original.replace("1..xs.len()", "0..xs.len()"),
        original.replace("total += xs[i];", "total += no_such_name;"),
    ];
    let calls = [
        call("sum_even", "&[2]", None),
        call("sum_even", "&[]", None),
    ];
    let mut times = Vec::new();
    for run in 0..2 {
        let req = Request {
            language: Language::Rust,
            file: CRATE_LIB,
            selection: start..CRATE_LIB.len(),
            versions: &versions,
            calls: &calls,
            limits: Limits {
                total: Duration::from_secs(300),
                ..Limits::default()
            },
            krate: Some(krate.clone()),
        };
        let started = Instant::now();
        let report = probe::runner::run(&req, &CancellationToken::new())
            .await
            .unwrap();
        times.push(started.elapsed());
        assert_eq!(report.outcomes[0], [value("0"), value("0")], "{report:?}");
        assert_eq!(report.outcomes[1], [value("2"), value("0")], "{report:?}");
        // cargo's error in the appended candidate module is laid at that candidate's door.
        assert!(
            matches!(&report.outcomes[2][0], Outcome::NotRun(why) if why.contains("no_such_name")),
            "{report:?}"
        );
        assert!(report.sandboxed);
        assert!(build.join("debug").is_dir(), "{}", build.display());
        if run == 0 {
            std::fs::write(build.join("kept"), "").unwrap();
        }
    }
    eprintln!(
        "crate probe: first run {:?}, second run {:?}",
        times[0], times[1]
    );
    // The second run used the same build folder (not made anew).
    assert!(build.join("kept").is_file());
    // The crate itself, its own build folder included, is as it was.
    assert_eq!(snapshot(root), before);
    if let Some(base) = build.parent() {
        let _ = std::fs::remove_dir_all(base);
    }
}

#[tokio::test]
async fn rust_a_crate_that_does_not_build_offline_falls_back_to_the_file_alone() {
    if !ready("cargo") {
        return;
    }
    let dir = victim_dir();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"probe_offline\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nrefine-no-such-crate = \"9.9\"\n",
    )
    .unwrap();
    std::fs::write(root.join("src/lib.rs"), BUGGY).unwrap();
    let krate = probe::cargo::find_crate(&root.join("src/lib.rs"), Some(root)).unwrap();
    let sel = rust_selection();
    let versions = [BUGGY[sel.clone()].to_owned()];
    let calls = [call("sum_even", "&[2]", None)];
    let req = Request {
        language: Language::Rust,
        file: BUGGY,
        selection: sel,
        versions: &versions,
        calls: &calls,
        limits: Limits::default(),
        krate: Some(krate),
    };
    let report = probe::runner::run(&req, &CancellationToken::new())
        .await
        .unwrap();
    assert!(report.outcomes[0][0].ran(), "{report:?}");
    if let Some(base) = probe::cargo::build_folder(root).and_then(|b| b.parent().map(PathBuf::from))
    {
        let _ = std::fs::remove_dir_all(base);
    }
}

#[tokio::test]
async fn rust_a_regression_test_runs_in_its_crate() {
    if !ready("cargo") {
        return;
    }
    let dir = victim_dir();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"probe_regression\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(root.join("src/lib.rs"), CRATE_LIB).unwrap();
    std::fs::write(root.join("src/util.rs"), CRATE_UTIL).unwrap();
    let krate = probe::cargo::find_crate(&root.join("src/lib.rs"), Some(root)).unwrap();
    let fixed = CRATE_LIB.replace("1..xs.len()", "0..xs.len()");
    let c = call("sum_even", "&[2]", Some("2"));
    let t = probe::regression::regression_test(Language::Rust, CRATE_LIB, &c).unwrap();
    let got = probe::regression::verify(
        Language::Rust,
        &t.insert_into(CRATE_LIB),
        &t.insert_into(&fixed),
        &t,
        Some(&krate),
        Limits::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    // `crate::util` resolves only in the crate: the file alone would not build.
    assert_eq!(got, (false, true));
    if let Some(base) = probe::cargo::build_folder(root).and_then(|b| b.parent().map(PathBuf::from))
    {
        let _ = std::fs::remove_dir_all(base);
    }
}

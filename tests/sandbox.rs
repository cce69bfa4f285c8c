//! The sandbox `verify.command` runs in (issue 26): the real `refine_ls::sandbox` running real
//! commands under the machine's bubblewrap. The test process gets a fake home (with fake
//! credential stores and a file that must survive) and canary credentials in its environment;
//! nothing here may leak into, or be changed by, the command.
//!
//! Tests that need bubblewrap are skipped, with the reason printed, only when it is not
//! installed; installed but unable to make a sandbox is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use refine_ls::sandbox::{self, Run, RunError, Sandbox};
use tokio_util::sync::CancellationToken;

const CANARY: &str = "canary-4f1d9c2e";

struct Fixture {
    home: PathBuf,
    _keep: tempfile::TempDir,
}

/// Sets up the process once, before any test reads the environment: a fake `HOME` outside
/// `/tmp` (under the real home's `.cache`: `target/` is under `/tmp` when the checkout is, and
/// inside the sandbox `/tmp` is an empty tmpfs), the real cargo and rustup homes (so the
/// toolchain is still found), a scratch folder, and canary credentials.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let real_home = std::env::var_os("HOME").map(PathBuf::from).unwrap();
        let base = real_home.join(".cache/refine-ls-tests");
        std::fs::create_dir_all(&base).unwrap();
        let keep = tempfile::tempdir_in(&base).unwrap();
        let home = keep.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".ssh/id_x"), "PRIVATE KEY").unwrap();
        std::fs::write(home.join(".netrc"), "machine x login u password p").unwrap();
        std::fs::create_dir_all(home.join(".config/refine-ls")).unwrap();
        std::fs::write(home.join(".config/refine-ls/config.toml"), CANARY).unwrap();
        std::fs::write(home.join("keep.txt"), "still here").unwrap();
        let set = |name: &str, value: &std::ffi::OsStr| {
            // SAFETY: runs once, inside the OnceLock, before this test's use of the
            // environment; every test starts by calling `fixture()`.
            unsafe { std::env::set_var(name, value) }
        };
        for (var, dir) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
            if std::env::var_os(var).is_none() {
                set(var, real_home.join(dir).as_os_str());
            }
        }
        set("HOME", home.as_os_str());
        set("XDG_CONFIG_HOME", home.join(".config").as_os_str());
        set(
            "REFINE_LS_SCRATCH_DIR",
            keep.path().join("scratch").as_os_str(),
        );
        set("REFINE_TEST_CANARY_TOKEN", CANARY.as_ref());
        set("OPENAI_API_KEY", CANARY.as_ref());
        Fixture { home, _keep: keep }
    })
}

/// Whether the tests needing bubblewrap run: skipped only when it is not installed.
fn bwrap() -> bool {
    fixture();
    match sandbox::detect() {
        Sandbox::Bwrap(_) => true,
        Sandbox::None(why) => {
            let installed = std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("bwrap").is_file()));
            assert!(
                !installed || std::env::var_os("REFINE_LS_BWRAP").is_some(),
                "bwrap is installed but no sandbox: {why}"
            );
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// A scratch copy as `verify.command` gets one: `work/` and `tmp/` in the private folder.
fn scratch() -> (tempfile::TempDir, Run) {
    let dir = tempfile::Builder::new()
        .prefix("verify-")
        .tempdir_in(sandbox::private_dir().unwrap())
        .unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    let run = Run {
        command: String::new(),
        dir: dir.path().join("work"),
        tmp: dir.path().join("tmp"),
        network: false,
        timeout: Duration::from_secs(60),
        max_output: 64 << 10,
        home: refine_ls::sandbox::Home::Whole,
        writable: Vec::new(),
    };
    (dir, run)
}

async fn run(run: &Run) -> sandbox::RunResult {
    run.run(&CancellationToken::new()).await.unwrap()
}

#[tokio::test]
async fn without_network_nothing_connects_and_with_it_it_does() {
    if !bwrap() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (_dir, mut r) = scratch();
    r.command = format!("bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}' && echo connected");
    let off = run(&r).await;
    assert!(off.sandboxed);
    assert!(!off.passed(), "{off:?}");
    assert!(!off.output.contains("connected"));
    assert!(listener.accept().is_err(), "the listener got a connection");

    r.network = true;
    let on = run(&r).await;
    assert!(on.passed(), "{on:?}");
    assert!(on.output.contains("connected"));
    assert!(listener.accept().is_ok());
}

#[tokio::test]
async fn the_command_sees_no_credentials_and_writes_only_its_copy() {
    if !bwrap() {
        return;
    }
    let home = &fixture().home;
    let (_dir, mut r) = scratch();
    r.command = [
        r#"touch "$HOME/x" 2>/dev/null && echo wrote-home"#,
        r#"echo "ssh=$(ls -A "$HOME/.ssh" | wc -l)""#,
        r#"echo "netrc=$(wc -c < "$HOME/.netrc")""#,
        r#"cat "$HOME/.config/refine-ls/config.toml" 2>/dev/null"#,
        "env",
        "touch in-copy && echo wrote-copy",
        r#"mktemp >/dev/null && echo wrote-tmp"#,
    ]
    .join("; ");
    let result = run(&r).await;
    assert!(result.sandboxed);
    let out = &result.output;
    assert!(!out.contains("wrote-home"), "{out}");
    assert!(!home.join("x").exists());
    assert!(out.contains("ssh=0"), "{out}");
    assert!(out.contains("netrc=0"), "{out}");
    assert!(!out.contains(CANARY), "{out}");
    assert!(!out.contains("OPENAI_API_KEY"), "{out}");
    assert!(
        out.contains(&format!("TMPDIR={}", r.tmp.display())),
        "{out}"
    );
    assert!(
        out.contains("wrote-copy") && out.contains("wrote-tmp"),
        "{out}"
    );
    assert!(r.dir.join("in-copy").exists());
    // The real stores are untouched.
    assert_eq!(
        std::fs::read_to_string(home.join(".ssh/id_x")).unwrap(),
        "PRIVATE KEY"
    );
}

#[tokio::test]
async fn a_hostile_command_cannot_delete_or_remount_its_way_out() {
    if !bwrap() {
        return;
    }
    let home = &fixture().home;
    let (_dir, mut r) = scratch();
    // As root, without dropping capabilities, the remount would succeed.
    r.command = r#"rm -rf "$HOME/keep.txt"; mount -o remount,bind,rw / 2>/dev/null; mount -o remount,rw "$HOME" 2>/dev/null; rm -rf "$HOME/keep.txt"; ls "$HOME/keep.txt""#.into();
    let result = run(&r).await;
    assert!(result.sandboxed);
    assert_eq!(
        std::fs::read_to_string(home.join("keep.txt")).unwrap(),
        "still here",
        "{result:?}"
    );
}

#[tokio::test]
async fn cargo_check_works_offline_on_a_read_only_home() {
    if !bwrap() {
        return;
    }
    let (_dir, mut r) = scratch();
    std::fs::create_dir(r.dir.join("src")).unwrap();
    std::fs::write(
        r.dir.join("Cargo.toml"),
        "[package]\nname = \"scratch\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(r.dir.join("src/lib.rs"), "pub fn f() -> i32 { 1 }\n").unwrap();
    r.command = "cargo check".into();
    r.timeout = Duration::from_secs(300);
    let result = run(&r).await;
    assert!(result.sandboxed);
    assert!(result.passed(), "{result:?}");
    assert!(
        r.dir.join("target").exists(),
        "the copy's own target folder"
    );
    // And a compile error is seen as one.
    std::fs::write(r.dir.join("src/lib.rs"), "pub fn f() -> i32 { \"no\" }\n").unwrap();
    let failed = run(&r).await;
    assert!(!failed.passed());
    assert!(failed.output.contains("error[E0308]"), "{failed:?}");
}

#[tokio::test]
async fn endless_output_times_out_with_its_end_kept() {
    fixture();
    let (_dir, mut r) = scratch();
    r.command = "yes".into();
    r.timeout = Duration::from_secs(3);
    r.max_output = 1000;
    let started = Instant::now();
    let result = run(&r).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(result.timed_out && !result.passed());
    assert!(result.truncated);
    assert!(result.output.len() <= 1000);
    assert!(result.output.ends_with("y\n"), "{:?}", result.output);
}

/// Whether a process running `sleep <arg>` exists (a killed, unreaped one has no command line).
fn sleeping(arg: &str) -> bool {
    let want = format!("sleep\0{arg}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes()))
}

async fn wait_for(what: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if what() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Starts a command that leaves `sleep <arg>` in the background, then stops it with `stop`
/// (cancel, or dropping the run): the background process must be gone.
async fn background_is_killed(arg: &str, cancel_it: bool) {
    let (_dir, mut r) = scratch();
    r.command = format!("sleep {arg} & wait");
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let task = tokio::spawn(async move { r.run(&token).await });
    assert!(
        wait_for(|| sleeping(arg)).await,
        "the command did not start"
    );
    if cancel_it {
        cancel.cancel();
        assert!(matches!(task.await.unwrap(), Err(RunError::Cancelled)));
    } else {
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    }
    assert!(
        wait_for(|| !sleeping(arg)).await,
        "`sleep {arg}` outlived the run"
    );
}

#[tokio::test]
async fn cancelling_or_dropping_a_run_kills_what_it_started() {
    fixture();
    background_is_killed("987651", true).await;
    background_is_killed("987652", false).await;
}

#[tokio::test]
async fn without_bubblewrap_the_command_still_gets_a_clean_environment() {
    fixture();
    // The sandbox is detected once per process: the case without it runs in a child process.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["unsandboxed_child", "--exact", "--nocapture"])
        .env("REFINE_LS_BWRAP", "")
        .env("REFINE_TEST_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The body of the test above, in a process where `REFINE_LS_BWRAP` is empty.
#[tokio::test]
async fn unsandboxed_child() {
    if std::env::var_os("REFINE_TEST_CHILD").is_none() {
        return;
    }
    fixture();
    assert!(sandbox::describe().starts_with("off: "));
    let (_dir, mut r) = scratch();
    r.command = "env; pwd".into();
    let result = run(&r).await;
    assert!(!result.sandboxed && result.passed(), "{result:?}");
    assert!(!result.output.contains(CANARY), "{}", result.output);
    assert!(!result.output.contains("OPENAI_API_KEY"));
    assert!(
        result
            .output
            .contains(&format!("TMPDIR={}", r.tmp.display()))
    );
    assert!(result.output.contains(&r.dir.display().to_string()));
    background_is_killed("987653", true).await;
    background_is_killed("987654", false).await;
}

#[test]
fn scratch_copies_are_kept_private() {
    fixture();
    let dir = sandbox::private_dir().unwrap();
    assert!(!dir.starts_with(Path::new("/tmp")));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}

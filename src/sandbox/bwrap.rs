//! bubblewrap: whether it works here, and what every sandboxed command gets (read-only
//! filesystem, no network, the credential stores hidden).

use std::path::PathBuf;
#[cfg(target_os = "linux")]
use std::process::Stdio;
use std::sync::OnceLock;

/// How commands from the workspace are confined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// bubblewrap at this path works here.
    Bwrap(PathBuf),
    /// No sandbox, and why: the command runs with a clean environment in its scratch copy only.
    None(String),
}

/// The sandbox available on this machine, probed once: `bwrap` on `PATH` (or
/// `$REFINE_LS_BWRAP`; empty turns the sandbox off) that can actually make one (kernels may
/// forbid user namespaces).
pub fn detect() -> Sandbox {
    static DETECTED: OnceLock<Sandbox> = OnceLock::new();
    DETECTED.get_or_init(probe).clone()
}

#[cfg(target_os = "linux")]
fn probe() -> Sandbox {
    let path = match std::env::var_os("REFINE_LS_BWRAP") {
        Some(p) if p.is_empty() => return Sandbox::None("REFINE_LS_BWRAP is empty".into()),
        Some(p) => PathBuf::from(p),
        None => match find_on_path("bwrap") {
            Some(p) => p,
            None => {
                return Sandbox::None(
                    "bubblewrap (bwrap) is not installed; install it to confine verify.command"
                        .into(),
                );
            }
        },
    };
    // The flags a real run uses, so that a kernel refusing any of them is found here.
    let probed = std::process::Command::new(&path)
        .args(base_args(false))
        .args(["--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probed {
        Ok(o) if o.status.success() => Sandbox::Bwrap(path),
        Ok(o) => Sandbox::None(format!(
            "{} cannot make a sandbox here (are user namespaces disabled?): {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Sandbox::None(format!("cannot run {}: {e}", path.display())),
    }
}

#[cfg(not(target_os = "linux"))]
fn probe() -> Sandbox {
    Sandbox::None("no sandbox on this platform".into())
}

#[cfg(target_os = "linux")]
fn find_on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// One sentence on the sandbox, for `doctor`.
pub fn describe() -> String {
    match detect() {
        Sandbox::Bwrap(path) => format!(
            "bubblewrap ({}): no network, read-only filesystem, credential stores hidden",
            path.display()
        ),
        Sandbox::None(why) => format!("off: {why}"),
    }
}

/// bubblewrap's flags common to the probe and every run: a read-only view of the whole
/// filesystem, a private `/dev`, `/proc` and `/tmp`, new PID and IPC namespaces, a new session
/// (no typing into the editor's terminal with TIOCSTI), death with refine-ls, and no network
/// unless asked.
pub(super) fn base_args(network: bool) -> Vec<&'static str> {
    let mut args = vec![
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--unshare-pid",
        "--unshare-ipc",
        "--new-session",
        "--die-with-parent",
    ];
    if !network {
        args.push("--unshare-net");
    }
    // bwrap run by root keeps root's capabilities inside, and with CAP_SYS_ADMIN the command
    // could simply remount `/` read-write. Unprivileged bwrap drops them by itself.
    #[cfg(unix)]
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        args.extend(["--cap-drop", "ALL"]);
    }
    args
}

/// Credential stores under the home folder, hidden from the command (folders behind an empty
/// tmpfs, files behind `/dev/null`).
const HOME_SECRETS: &[&str] = &[
    ".ssh",
    ".aws",
    ".azure",
    ".gnupg",
    ".kube",
    ".password-store",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".config/git/credentials",
    ".local/share/keyrings",
    ".docker/config.json",
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".pgpass",
    ".cargo/credentials",
    ".cargo/credentials.toml",
];
/// Sockets that would hand out more than the command should have (the container daemons run
/// anything as root). The user's runtime folder (agents, keyrings) is hidden too.
const SOCKETS: &[&str] = &[
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
];

/// Everything hidden from a sandboxed command that exists on this machine.
pub(super) fn hidden_paths() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    if let Some(home) = dirs::home_dir() {
        paths.extend(HOME_SECRETS.iter().map(|p| home.join(p)));
    }
    if let Some(cargo) = std::env::var_os("CARGO_HOME") {
        let cargo = PathBuf::from(cargo);
        paths.push(cargo.join("credentials"));
        paths.push(cargo.join("credentials.toml"));
    }
    // refine-ls's own configuration (with the trust list), data and cache (reviews of other
    // workspaces, other scratch copies).
    paths.extend(
        [
            crate::paths::platform_config_dir(),
            crate::paths::platform_data_dir(),
            crate::paths::platform_cache_dir(),
        ]
        .into_iter()
        .flatten(),
    );
    if let Some(trust) = crate::trust::trust_file() {
        paths.push(trust);
    }
    if let Some(run) = std::env::var_os("XDG_RUNTIME_DIR") {
        paths.push(PathBuf::from(run));
    }
    paths.extend(SOCKETS.iter().map(PathBuf::from));
    paths.retain(|p| p.exists());
    paths
}

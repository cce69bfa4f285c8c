//! The environment a command from the workspace gets: allowlisted, credentials left out.

use std::ffi::OsString;

/// Variables a command from the workspace may see: what finds tools and toolchains, the locale
/// and the terminal. Everything else (API keys, agent sockets, cloud settings) is left out.
const ALLOWED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TERM",
    "TZ",
    "SHELL",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_HOME",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "NODE_PATH",
    "JAVA_HOME",
    "GOPATH",
    "GOROOT",
    "GOCACHE",
    "GOFLAGS",
    "GOMODCACHE",
    "DOTNET_ROOT",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
];
/// ... and every variable starting with one of these.
const ALLOWED_PREFIXES: &[&str] = &["LC_"];
/// A name holding one of these (any case) is dropped even when allowed.
const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "KEY",
    "AUTH",
    "CREDENTIAL",
    "COOKIE",
    "SESSION",
];

/// The environment a command from the workspace gets: this process's variables, allowlisted,
/// without any whose name looks like a credential. [`Run`] adds `TMPDIR` (the scratch copy's
/// tmp folder) and a few tool settings.
pub fn clean_env() -> Vec<(OsString, OsString)> {
    filter_env(std::env::vars_os())
}

fn filter_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .filter(|(name, _)| {
            let Some(name) = name.to_str() else {
                return false;
            };
            let allowed =
                ALLOWED.contains(&name) || ALLOWED_PREFIXES.iter().any(|p| name.starts_with(p));
            let upper = name.to_ascii_uppercase();
            allowed && !SECRET_WORDS.iter().any(|w| upper.contains(w))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(n, v)| (OsString::from(n), OsString::from(v)))
            .collect()
    }

    #[test]
    fn the_environment_is_allowlisted_and_credentials_are_dropped() {
        let kept = filter_env(vars(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/home/u"),
            ("LC_ALL", "C.UTF-8"),
            ("CARGO_HOME", "/home/u/.cargo"),
            ("VIRTUAL_ENV", "/w/.venv"),
            ("OPENAI_API_KEY", "sk-1"),
            ("GITHUB_TOKEN", "ghp_1"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("SSH_AUTH_SOCK", "/run/user/1000/ssh"),
            ("CARGO_TARGET_DIR", "/home/u/target"),
            ("REFINE_LS_TRUST_FILE", "/x"),
            ("LD_PRELOAD", "/evil.so"),
            // Allowed by prefix, dropped by name.
            ("LC_SESSION_ID", "1"),
            ("lc_auth", "1"),
        ]));
        let names: Vec<&str> = kept.iter().filter_map(|(n, _)| n.to_str()).collect();
        assert_eq!(
            names,
            ["PATH", "HOME", "LC_ALL", "CARGO_HOME", "VIRTUAL_ENV"]
        );
        assert_eq!(kept[0].1, "/usr/bin");
    }
}

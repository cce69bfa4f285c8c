//! Files that are secrets by nature, and files kept private to their owner.

/// Whether a path names a file that is a secret by nature: `.env*`, keys and certificates
/// (`*.pem`, `*.key`, `*.p12`, `*.pfx`, `id_rsa*`, …), credentials of package registries and
/// tools (`.npmrc`, `.pypirc`, `.netrc`, `.git-credentials`), kubeconfigs and Terraform
/// variables (`*.tfvars`).
pub fn is_sensitive_path(path: &str) -> bool {
    let path = path.replace('\\', "/").to_ascii_lowercase();
    let name = path.rsplit('/').next().unwrap_or(&path);
    name.starts_with(".env")
        || [".pem", ".key", ".p12", ".pfx", ".tfvars", ".tfvars.json"]
            .iter()
            .any(|ext| name.ends_with(ext))
        || ["id_rsa", "id_ed25519", "id_ecdsa", "id_dsa", "kubeconfig"]
            .iter()
            .any(|start| name.starts_with(start))
        || [".npmrc", ".netrc", "_netrc", ".pypirc", ".git-credentials"].contains(&name)
        || path == ".kube/config"
        || path.ends_with("/.kube/config")
}

/// [`is_sensitive_path`] for a file on disk, judged by its own path and, when it is a link (or
/// under one), by where it leads: `notes.txt -> ~/.netrc` is a secrets file too.
pub fn is_sensitive_file(path: &std::path::Path) -> bool {
    is_sensitive_path(&path.to_string_lossy())
        || std::fs::canonicalize(path).is_ok_and(|real| is_sensitive_path(&real.to_string_lossy()))
}

/// Makes `path` (a file, or with `dir` a folder) readable and writable by its owner alone
/// (`0600`, folders `0700`). Does nothing off Unix, or when it cannot.
pub fn private(path: &std::path::Path, dir: bool) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if dir { 0o700 } else { 0o600 };
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            tracing::debug!("cannot restrict {}: {e}", path.display());
        }
    }
    #[cfg(not(unix))]
    let _ = (path, dir);
}

/// Creates `path` if it is missing, private from the start (`0600`: never world-readable,
/// not even for a moment), or makes an existing file private.
pub fn create_private(path: &std::path::Path) {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    if let Err(e) = options.open(path) {
        tracing::debug!("cannot create {}: {e}", path.display());
    }
    private(path, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_paths() {
        for p in [
            "/a/.env",
            ".env.local",
            "/k/server.pem",
            "tls.key",
            "/home/u/.ssh/id_rsa",
            "id_ed25519.pub",
            "/home/u/.npmrc",
            "/home/u/.netrc",
            "C:\\Users\\u\\_netrc",
            ".pypirc",
            "/home/u/.git-credentials",
            "/home/u/.kube/config",
            ".kube/config",
            "deploy/kubeconfig-prod.yaml",
            "prod.tfvars",
            "infra/secrets.auto.tfvars.json",
            "cert.p12",
            "/x/Client.PFX",
        ] {
            assert!(is_sensitive_path(p), "{p}");
        }
        for p in [
            "/a/env.rs",
            "keys.rs",
            "pem.py",
            "/app/config",
            "kube.rs",
            "variables.tf",
            "netrc.rs",
        ] {
            assert!(!is_sensitive_path(p), "{p}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_link_to_a_secrets_file_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let netrc = dir.path().join(".netrc");
        std::fs::write(&netrc, "machine h login u password p\n").unwrap();
        let notes = dir.path().join("notes.txt");
        std::os::unix::fs::symlink(&netrc, &notes).unwrap();
        let plain = dir.path().join("plain.txt");
        std::fs::write(&plain, "hello\n").unwrap();
        assert!(is_sensitive_file(&notes));
        assert!(!is_sensitive_path(&notes.to_string_lossy()));
        assert!(!is_sensitive_file(&plain));
        assert!(
            is_sensitive_file(&dir.path().join(".npmrc")),
            "missing, by name"
        );
    }
}

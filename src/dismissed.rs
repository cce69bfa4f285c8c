//! Dismissed findings: what a codebase does not want reported again (issue 17). A dismissal is
//! kept in `.refine/dismissed.toml` at the workspace root (meant to be committed, so a team
//! shares it; paths relative to the root) or in the user's own store (`user_file`; absolute
//! paths). It names a finding by its fingerprint (path,
//! principle and the whitespace-normalised code it quotes: never its line, so it survives lines
//! moving), or every finding of one principle in a file, or every finding in a file.
//!
//! The file is written sorted and without duplicates, so that it reads the same whatever order
//! dismissals were made in and merges cleanly between branches.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsx;

/// The fingerprint of a finding: 16 hex digits of SHA-256 over path, principle and quote
/// (whitespace-normalised). The same for the CI baseline, SARIF's `partialFingerprints` and
/// dismissals.
pub fn fingerprint(path: &str, principle: &str, quote: &str) -> String {
    let quote: Vec<&str> = quote.split_whitespace().collect();
    let mut h = Sha256::new();
    for part in [path, principle, &quote.join(" ")] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How much one dismissal covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// This finding (its fingerprint), wherever it moves in the file.
    Finding,
    /// Every finding of this principle in this file.
    Principle,
    /// Every finding in this file.
    File,
}

/// One dismissal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dismissal {
    /// Path relative to the workspace root, `/`-separated.
    pub path: String,
    /// What it covers.
    pub scope: Scope,
    /// The principle (`finding` and `principle` scopes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principle: Option<String>,
    /// The finding's fingerprint (`finding` scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The quoted code, for the reader of the file and for telling the critic (`finding` scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// The finding's message, for the reader of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Dismissal {
    /// Does this dismissal cover a finding of `principle` quoting `quote` in `path`?
    pub fn covers(&self, path: &str, principle: &str, quote: &str) -> bool {
        self.path == path && self.matches(principle, || fingerprint(path, principle, quote))
    }

    /// [`Self::covers`] for a finding in this dismissal's file; `fingerprint` gives the
    /// finding's, asked for only by a `finding` dismissal.
    fn matches<F: AsRef<str>>(&self, principle: &str, fingerprint: impl FnOnce() -> F) -> bool {
        match self.scope {
            Scope::File => true,
            Scope::Principle => self.principle.as_deref() == Some(principle),
            Scope::Finding => self.fingerprint.as_deref() == Some(fingerprint().as_ref()),
        }
    }
}

impl Dismissal {
    /// Whether `other` dismisses the same thing (its quote and message aside: they are for
    /// people, and concealing a secret in them need not give the same text twice).
    fn same(&self, other: &Self) -> bool {
        (&self.path, self.scope, &self.principle, &self.fingerprint)
            == (
                &other.path,
                other.scope,
                &other.principle,
                &other.fingerprint,
            )
    }
}

/// The file's shape.
#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default, rename = "dismissed")]
    dismissed: Vec<Dismissal>,
}

/// The dismissals of one store (a workspace's file, or the user's).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dismissals {
    list: Vec<Dismissal>,
}

/// Where a workspace's dismissals live.
pub fn workspace_file(root: &Path) -> PathBuf {
    root.join(".refine").join("dismissed.toml")
}

/// Where the user's own dismissals live (paths in it are absolute): `$REFINE_LS_DATA_DIR`,
/// else the user's data folder (`~/.local/share/refine-ls`).
pub fn user_file() -> Option<PathBuf> {
    crate::config::user_data_dir().map(|d| d.join("dismissed.toml"))
}

/// The most a dismissal file may hold.
const MAX_BYTES: u64 = 1024 * 1024;

/// Why a dismissal store could not be read or written. Each reads as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum DismissalError {
    /// The file could not be read or written (a link out of the workspace, too large, I/O).
    #[error(transparent)]
    File(#[from] crate::fsx::FsError),
    /// The file is not a dismissal file (nothing overwrites what a person wrote).
    #[error("{}not a dismissal file: {reason}", .path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    NotDismissals {
        /// The file, when it was read from one.
        path: Option<std::path::PathBuf>,
        /// What the TOML reader said.
        reason: String,
    },
    /// The dismissals could not be written as TOML.
    #[error("cannot write the dismissals: {0}")]
    Serialize(String),
    /// There is no data folder for the user's store.
    #[error("no data folder for the user's dismissals (set REFINE_LS_DATA_DIR)")]
    NoUserStore,
}

impl Dismissals {
    /// Reads a store (empty when there is no file): a workspace's (`root`: the workspace) never
    /// through a link out of it, the user's (`None`) following links; either bounded. A file
    /// that is not a dismissal file is an error, so that nothing overwrites what a person wrote.
    pub fn read(store: &Path, root: Option<&Path>) -> Result<Self, DismissalError> {
        let text = match root {
            Some(root) => fsx::read_in(root, store, MAX_BYTES),
            None => fsx::read_bounded(store, MAX_BYTES),
        }?;
        match text {
            None => Ok(Self::default()),
            Some(text) => Self::parse(&text).map_err(|e| match e {
                DismissalError::NotDismissals { reason, .. } => DismissalError::NotDismissals {
                    path: Some(store.to_path_buf()),
                    reason,
                },
                other => other,
            }),
        }
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Self, DismissalError> {
        let f: File = toml::from_str(text).map_err(|e| DismissalError::NotDismissals {
            path: None,
            reason: e.to_string(),
        })?;
        let mut d = Self { list: f.dismissed };
        d.normalise();
        Ok(d)
    }

    /// The file's text: a header, then the dismissals sorted, one table each.
    pub fn to_toml(&self) -> Result<String, DismissalError> {
        let body = toml::to_string(&File {
            dismissed: self.list.clone(),
        })
        .map_err(|e| DismissalError::Serialize(e.to_string()))?;
        Ok(format!(
            "# Findings refine-ls does not report again here (\"Refine: dismiss this finding\").\n\
             # Commit this file to share it; remove an entry (or run refine.undismiss) to undo.\n\n{body}"
        ))
    }

    /// Writes a store whole or not at all, creating its folder: a workspace's (`root`) never
    /// through a link, nor into a folder that leads out of it; the user's never through a link
    /// either.
    fn write(&self, store: &Path, root: Option<&Path>) -> Result<(), DismissalError> {
        let text = self.to_toml()?;
        Ok(match root {
            Some(root) => fsx::write_atomic_in(root, store, text.as_bytes()),
            None => fsx::write_atomic(store, text.as_bytes()),
        }?)
    }

    /// Reads a store, lets `f` change it and writes it back when it changed, all under the
    /// store's lock, so that two processes dismissing at once both land. `root` as for
    /// [`Self::read`].
    pub fn update<R>(
        store: &Path,
        root: Option<&Path>,
        f: impl FnOnce(&mut Self) -> R,
    ) -> Result<R, DismissalError> {
        let _lock = fsx::lock(store)?;
        let mut all = Self::read(store, root)?;
        let before = all.clone();
        let out = f(&mut all);
        if all != before {
            all.write(store, root)?;
        }
        Ok(out)
    }

    fn normalise(&mut self) {
        self.list.sort();
        self.list.dedup_by(|a, b| a.same(b));
    }

    /// Adds a dismissal; `false` when it was there already. Its quote and message are kept with
    /// any secret in them concealed (the file is meant to be committed); its fingerprint, from
    /// the real quote, is what matches the finding.
    pub fn add(&mut self, mut d: Dismissal) -> bool {
        if self.list.iter().any(|x| x.same(&d)) {
            return false;
        }
        let conceal = |t: String| crate::secrets::Vault::default().redact(&t);
        d.quote = d.quote.map(conceal);
        d.message = d.message.map(conceal);
        self.list.push(d);
        self.normalise();
        true
    }

    /// Removes the dismissals that cover a finding of `principle` quoting `quote` in `path`,
    /// and says how many.
    pub fn remove_covering(&mut self, path: &str, principle: &str, quote: &str) -> usize {
        let before = self.list.len();
        self.list.retain(|d| !d.covers(path, principle, quote));
        before - self.list.len()
    }

    /// Is a finding of `principle` quoting `quote` in `path` dismissed?
    pub fn covers(&self, path: &str, principle: &str, quote: &str) -> bool {
        // The finding's fingerprint, hashed once however many dismissals ask for it.
        let fp = std::cell::OnceCell::new();
        self.list.iter().filter(|d| d.path == path).any(|d| {
            d.matches(principle, || {
                fp.get_or_init(|| fingerprint(path, principle, quote))
                    .as_str()
            })
        })
    }

    /// Is it dismissed under any of the names `paths` gives its file (relative to the
    /// workspace, absolute)?
    pub fn covers_any(&self, paths: &[String], principle: &str, quote: &str) -> bool {
        paths.iter().any(|p| self.covers(p, principle, quote))
    }

    /// This store and `other` together.
    pub fn merged(mut self, other: Self) -> Self {
        self.list.extend(other.list);
        self.normalise();
        self
    }

    /// Every dismissal.
    pub fn all(&self) -> &[Dismissal] {
        &self.list
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(path: &str, principle: &str, quote: &str) -> Dismissal {
        Dismissal {
            path: path.to_owned(),
            scope: Scope::Finding,
            principle: Some(principle.to_owned()),
            fingerprint: Some(fingerprint(path, principle, quote)),
            quote: Some(quote.to_owned()),
            message: Some("a name could be better".to_owned()),
        }
    }

    #[test]
    fn fingerprints_ignore_whitespace_and_follow_path_principle_and_quote() {
        let a = fingerprint("a.rs", "correctness", "for i in  1..n");
        assert_eq!(a, fingerprint("a.rs", "correctness", "for i in 1..n"));
        assert_ne!(a, fingerprint("a.rs", "correctness", "for i in 0..n"));
        assert_ne!(a, fingerprint("b.rs", "correctness", "for i in 1..n"));
        assert_ne!(a, fingerprint("a.rs", "readability", "for i in 1..n"));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn each_scope_covers_what_it_says() {
        let one = finding("src/a.rs", "readability", "let mut s = 0;");
        assert!(one.covers("src/a.rs", "readability", "let  mut s = 0;"));
        assert!(!one.covers("src/a.rs", "readability", "let mut t = 0;"));
        assert!(!one.covers("src/b.rs", "readability", "let mut s = 0;"));
        let principle = Dismissal {
            scope: Scope::Principle,
            fingerprint: None,
            quote: None,
            ..one.clone()
        };
        assert!(principle.covers("src/a.rs", "readability", "anything"));
        assert!(!principle.covers("src/a.rs", "correctness", "anything"));
        let file = Dismissal {
            scope: Scope::File,
            principle: None,
            ..principle
        };
        assert!(file.covers("src/a.rs", "correctness", "anything"));
        assert!(!file.covers("src/ab.rs", "correctness", "anything"));
    }

    #[test]
    fn the_file_is_valid_toml_and_the_same_whatever_the_order() {
        let a = finding("src/a.rs", "readability", "let mut s = 0;");
        let b = finding("src/b.rs", "correctness", "1..xs.len()");
        let mut one = Dismissals::default();
        assert!(one.add(a.clone()));
        assert!(one.add(b.clone()));
        assert!(!one.add(a.clone()), "a repeat is not added");
        let mut other = Dismissals::default();
        other.add(b);
        other.add(a);
        let text = one.to_toml().unwrap();
        assert_eq!(text, other.to_toml().unwrap());
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(parsed["dismissed"].as_array().unwrap().len(), 2);
        // Read back, it is the same store; shuffled by hand, it is written back sorted.
        assert_eq!(Dismissals::parse(&text).unwrap(), one);
        let tables: Vec<&str> = text.split("[[dismissed]]").skip(1).collect();
        let swapped = format!("[[dismissed]]{}[[dismissed]]{}", tables[1], tables[0]);
        assert_eq!(
            Dismissals::parse(&swapped).unwrap().to_toml().unwrap(),
            text
        );
    }

    #[test]
    fn undismissing_removes_what_covers_the_finding() {
        let mut d = Dismissals::default();
        d.add(finding("src/a.rs", "readability", "let mut s = 0;"));
        d.add(finding("src/a.rs", "readability", "let mut t = 0;"));
        assert!(d.covers("src/a.rs", "readability", "let mut s = 0;"));
        assert_eq!(
            d.remove_covering("src/a.rs", "readability", "let mut s = 0;"),
            1
        );
        assert!(!d.covers("src/a.rs", "readability", "let mut s = 0;"));
        assert_eq!(d.all().len(), 1);
    }

    #[test]
    fn a_file_that_is_not_a_dismissal_file_is_refused_and_a_missing_one_is_empty() {
        assert!(Dismissals::parse("dismissed = 3").is_err());
        assert!(Dismissals::parse("[[dismissed]]\npath = 'a'\nscope = 'everything'\n").is_err());
        let dir = tempfile::tempdir().unwrap();
        let root = Some(dir.path());
        let file = workspace_file(dir.path());
        assert!(Dismissals::read(&file, root).unwrap().is_empty());
        let added = Dismissals::update(&file, root, |d| d.add(finding("a.rs", "readability", "x")));
        assert!(added.unwrap());
        let mut d = Dismissals::default();
        d.add(finding("a.rs", "readability", "x"));
        assert_eq!(Dismissals::read(&file, root).unwrap(), d);
        std::fs::write(&file, "dismissed = 3").unwrap();
        let err = Dismissals::update(&file, root, |d| d.add(finding("b.rs", "security", "y")));
        let err = err.unwrap_err();
        assert!(
            matches!(&err, DismissalError::NotDismissals { path: Some(p), .. } if *p == file),
            "{err}"
        );
        assert!(err.to_string().contains("not a dismissal file"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "dismissed = 3");
    }

    #[test]
    fn a_dismissed_secret_is_stored_concealed_and_still_matches_its_finding() {
        let key = "sk-ant-api03-Zq4vB8nR2xL7mT1pK9wY3cF6hJ0sD5gA-eU2iO8uQ7tR4yW1zX6vN3bM0kL9jH2gF5dS8aP_Q7wE4rT1yU6iAA";
        let quote = format!("let client = Client::new(\"{key}\");");
        let message = format!("the key {key} is in the code");
        let dir = tempfile::tempdir().unwrap();
        let root = Some(dir.path());
        let file = workspace_file(dir.path());
        let d = Dismissal {
            message: Some(message),
            ..finding("src/main.rs", "security", &quote)
        };
        assert!(Dismissals::update(&file, root, |all| all.add(d.clone())).unwrap());
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("sk-ant-"), "{text}");
        assert!(!text.contains(&key[10..40]), "{text}");
        assert!(text.contains("let client = Client::new("), "{text}");
        let back = Dismissals::read(&file, root).unwrap();
        assert!(back.covers("src/main.rs", "security", &quote));
        assert!(!back.covers("src/main.rs", "security", "let client = Client::new(x);"));
        // The same finding again is not added twice, and undismissing it takes it out.
        assert!(!Dismissals::update(&file, root, |all| all.add(d)).unwrap());
        let removed = Dismissals::update(&file, root, |all| {
            all.remove_covering("src/main.rs", "security", &quote)
        });
        assert_eq!(removed.unwrap(), 1);
        assert!(Dismissals::read(&file, root).unwrap().is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_workspace_store_that_links_out_is_neither_read_nor_written() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join(".refine")).unwrap();
        let outside = dir.path().join("outside.toml");
        let mine = "[[dismissed]]\npath = \"a.rs\"\nscope = \"file\"\n";
        std::fs::write(&outside, mine).unwrap();
        let file = workspace_file(&root);
        std::os::unix::fs::symlink("../../outside.toml", &file).unwrap();
        let outside_workspace = |e: &DismissalError| {
            matches!(
                e,
                DismissalError::File(crate::fsx::FsError::OutsideWorkspace { .. })
            )
        };
        let err = Dismissals::read(&file, Some(&root)).unwrap_err();
        assert!(outside_workspace(&err), "{err}");
        let err = Dismissals::update(&file, Some(&root), |d| {
            d.add(finding("b.rs", "security", "y"))
        })
        .unwrap_err();
        assert!(outside_workspace(&err), "{err}");
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), mine);
    }
}

//! Prompt templates: compiled into the binary from `prompts/`, overridable per user
//! (`<config dir>/refine-ls/prompts/`) and per workspace (`.refine/prompts/`), rendered with
//! minijinja. Only the engine builds prompts from these.

use std::path::{Path, PathBuf};

use minijinja::Environment;
use serde::Serialize;

/// The templates and their built-in text.
const BUILTIN: &[(&str, &str)] = &[
    ("principles.md", include_str!("../prompts/principles.md")),
    (
        "critique_system.md",
        include_str!("../prompts/critique_system.md"),
    ),
    (
        "critique_system_compact.md",
        include_str!("../prompts/critique_system_compact.md"),
    ),
    (
        "critique_user.md",
        include_str!("../prompts/critique_user.md"),
    ),
    (
        "revise_system.md",
        include_str!("../prompts/revise_system.md"),
    ),
    ("revise_user.md", include_str!("../prompts/revise_user.md")),
    (
        "judge_system.md",
        include_str!("../prompts/judge_system.md"),
    ),
    ("judge_user.md", include_str!("../prompts/judge_user.md")),
    ("fix_system.md", include_str!("../prompts/fix_system.md")),
    (
        "probe_system.md",
        include_str!("../prompts/probe_system.md"),
    ),
    ("probe_user.md", include_str!("../prompts/probe_user.md")),
    (
        "intent_system.md",
        include_str!("../prompts/intent_system.md"),
    ),
    ("intent_user.md", include_str!("../prompts/intent_user.md")),
    ("fix_user.md", include_str!("../prompts/fix_user.md")),
    (
        "explain_system.md",
        include_str!("../prompts/explain_system.md"),
    ),
    (
        "explain_user.md",
        include_str!("../prompts/explain_user.md"),
    ),
    (
        "reflect_system.md",
        include_str!("../prompts/reflect_system.md"),
    ),
    (
        "reflect_user.md",
        include_str!("../prompts/reflect_user.md"),
    ),
];

/// A prompt template failed to render.
#[derive(Debug, thiserror::Error)]
#[error("prompt template {name} failed: {source}")]
pub struct PromptError {
    name: &'static str,
    #[source]
    source: minijinja::Error,
}

/// The loaded templates, ready to render.
pub struct Prompts {
    env: Environment<'static>,
    principles: String,
    principle_ids: Vec<String>,
    /// Where each overridden template came from (for `doctor` and logs).
    pub overrides: Vec<PathBuf>,
    /// Templates that could not be loaded (the built-in was kept).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Prompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompts")
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

impl Default for Prompts {
    fn default() -> Self {
        Self::load(None)
    }
}

impl Prompts {
    /// Loads the built-in templates, then the user's and the workspace's overrides.
    pub fn load(workspace_root: Option<&Path>) -> Self {
        let mut dirs = Vec::new();
        if let Some(d) = dirs::config_dir() {
            dirs.push((d.join("refine-ls").join("prompts"), None));
        }
        if let Some(root) = workspace_root {
            dirs.push((root.join(".refine").join("prompts"), Some(root)));
        }
        let mut prompts = Self::load_within(&dirs);
        if let Some(root) = workspace_root {
            prompts.apply_workspace_principles(root);
        }
        prompts
    }

    /// A workspace `.refine/principles.md` replaces the principles, or extends them when its
    /// first line is `<!-- extends -->`.
    fn apply_workspace_principles(&mut self, root: &Path) {
        let path = root.join(".refine").join("principles.md");
        let text = match read_override(&path, Some(root)) {
            Ok(Some(t)) => t,
            Ok(None) => return,
            Err(e) => {
                self.warnings.push(e);
                return;
            }
        };
        let extends = text
            .lines()
            .next()
            .is_some_and(|l| l.trim() == "<!-- extends -->");
        self.principles = if extends {
            format!(
                "{}\n{}",
                self.principles.trim_end(),
                text.lines().skip(1).collect::<Vec<_>>().join("\n")
            )
        } else {
            text
        };
        self.principle_ids = parse_principle_ids(&self.principles);
        self.overrides.push(path);
    }

    /// Loads the built-ins, each overridden by the same file name in the later of `dirs` (the
    /// user's own folders).
    pub fn load_from(dirs: &[PathBuf]) -> Self {
        let dirs: Vec<(PathBuf, Option<&Path>)> = dirs.iter().map(|d| (d.clone(), None)).collect();
        Self::load_within(&dirs)
    }

    /// [`Self::load_from`] for folders each of the user's own (`None`) or in a workspace (its
    /// root), whose files are read without following links out of it.
    fn load_within(dirs: &[(PathBuf, Option<&Path>)]) -> Self {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        let mut overrides = Vec::new();
        let mut warnings = Vec::new();
        let mut principles = String::new();
        for (name, builtin) in BUILTIN {
            let mut text = (*builtin).to_owned();
            for (dir, root) in dirs {
                let path = dir.join(name);
                match read_override(&path, *root) {
                    Ok(Some(t)) => {
                        text = t;
                        overrides.push(path);
                    }
                    Ok(None) => {}
                    Err(e) => warnings.push(e),
                }
            }
            if *name == "principles.md" {
                principles = text.clone();
            }
            if let Err(e) = env.add_template_owned(*name, text) {
                warnings.push(format!(
                    "template {name} is invalid ({e}); using the built-in"
                ));
                let _ = env.add_template_owned(*name, (*builtin).to_owned());
            }
        }
        let principle_ids = parse_principle_ids(&principles);
        Self {
            env,
            principles,
            principle_ids,
            overrides,
            warnings,
        }
    }

    /// A hash of every template and the principles, for cache keys.
    pub fn fingerprint(&self) -> String {
        let mut h = blake3::Hasher::new();
        for (name, _) in BUILTIN {
            if let Ok(t) = self.env.get_template(name) {
                h.update(t.source().as_bytes());
            }
        }
        h.update(self.principles.as_bytes());
        h.finalize().to_hex().to_string()
    }

    /// The principles text given to the critic.
    pub fn principles(&self) -> &str {
        &self.principles
    }

    /// The principles without the `## id` sections a user switched off.
    pub fn principles_without(&self, disabled: &[String]) -> String {
        if disabled.is_empty() {
            return self.principles.clone();
        }
        let mut out = String::new();
        let mut skipping = false;
        for line in self.principles.lines() {
            if let Some(id) = line.strip_prefix("## ") {
                skipping = disabled.iter().any(|d| d == id.trim());
            } else if line.starts_with("# ") {
                skipping = false;
            }
            if !skipping {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The principles in one line each (`- id: what it asks`), for the compact prompts: the
    /// `Asks:` line of each `## id` section.
    pub fn principles_short(&self, disabled: &[String]) -> String {
        let mut out = String::new();
        let mut id: Option<&str> = None;
        let mut asks: Option<String> = None;
        let mut flush = |id: Option<&str>, asks: &mut Option<String>| {
            if let (Some(i), Some(a)) = (id, asks.take()) {
                out.push_str(&format!("- {i}: {}\n", a.trim()));
            }
        };
        for line in self.principles.lines() {
            let t = line.trim();
            if let Some(h) = line.strip_prefix("## ") {
                flush(id, &mut asks);
                id = Some(h.trim()).filter(|h| !disabled.iter().any(|d| d == h));
            } else if let Some(a) = t.strip_prefix("Asks:") {
                asks = Some(a.trim().to_owned());
            } else if t.is_empty() || t.starts_with("Does not ask") || t.starts_with('#') {
                flush(id, &mut asks);
            } else if let Some(a) = asks.as_mut() {
                a.push(' ');
                a.push_str(t);
            }
        }
        flush(id, &mut asks);
        out
    }

    /// The ids a finding may cite (the `## id` headings of the principles).
    pub fn principle_ids(&self) -> &[String] {
        &self.principle_ids
    }

    /// Renders one template with a serializable context.
    pub fn render<C: Serialize>(&self, name: &'static str, ctx: C) -> Result<String, PromptError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|source| PromptError { name, source })
    }
}

/// The most an override may hold: a prompt, not a file to send whole.
const MAX_OVERRIDE_BYTES: u64 = 256 * 1024;

/// An override's text (`None`: there is none): a workspace's (`root` given) never through a
/// link out of it, the user's bounded; a refusal is the warning to show, the built-in kept.
fn read_override(path: &Path, root: Option<&Path>) -> Result<Option<String>, String> {
    match root {
        Some(root) => crate::fsx::read_in(root, path, MAX_OVERRIDE_BYTES),
        None => crate::fsx::read_bounded(path, MAX_OVERRIDE_BYTES),
    }
    .map_err(|e| {
        tracing::warn!("prompt override not used: {e}");
        format!("{e}; using the built-in")
    })
}

/// Principle ids are the second-level headings of `principles.md`.
fn parse_principle_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_principles_have_the_six_ids() {
        let p = Prompts::load_from(&[]);
        assert_eq!(
            p.principle_ids(),
            [
                "correctness",
                "robustness",
                "security",
                "performance",
                "readability",
                "preserve-intent"
            ]
        );
    }

    #[test]
    fn a_workspace_template_overrides_the_builtin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("revise_system.md"), "custom {{ language }}").unwrap();
        let p = Prompts::load_from(&[dir.path().to_path_buf()]);
        let out = p
            .render("revise_system.md", serde_json::json!({"language": "go"}))
            .unwrap();
        assert_eq!(out, "custom go");
        assert_eq!(p.overrides.len(), 1);
    }

    #[test]
    fn workspace_principles_replace_or_extend_and_can_be_switched_off() {
        let dir = tempfile::tempdir().unwrap();
        let refine = dir.path().join(".refine");
        std::fs::create_dir_all(&refine).unwrap();
        std::fs::write(
            refine.join("principles.md"),
            "<!-- extends -->\n## no-panics\nAsks: no panics.\n",
        )
        .unwrap();
        let p = Prompts::load(Some(dir.path()));
        assert_eq!(p.principle_ids().len(), 7);
        assert!(p.principle_ids().contains(&"no-panics".to_owned()));
        let text = p.principles_without(&["readability".into(), "no-panics".into()]);
        assert!(!text.contains("## readability") && !text.contains("no panics"));
        assert!(text.contains("## security"));
        std::fs::write(refine.join("principles.md"), "## only-this\nAsks: x.\n").unwrap();
        assert_eq!(
            Prompts::load(Some(dir.path())).principle_ids(),
            ["only-this"]
        );
    }

    #[test]
    fn a_broken_override_falls_back_to_the_builtin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("critique_user.md"), "{% if %}").unwrap();
        let p = Prompts::load_from(&[dir.path().to_path_buf()]);
        assert_eq!(p.warnings.len(), 1);
        let out = p
            .render(
                "critique_user.md",
                serde_json::json!({"path": "a.rs", "selection": "x", "first_line": 1, "last_line": 1}),
            )
            .unwrap();
        assert!(out.contains("a.rs"));
    }

    #[cfg(unix)]
    #[test]
    fn workspace_overrides_that_link_out_are_refused_with_a_warning_and_the_builtin_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        let prompts = root.join(".refine").join("prompts");
        std::fs::create_dir_all(&prompts).unwrap();
        let outside = dir.path().join("outside.md");
        std::fs::write(&outside, "## canary-principle\nAsks: CANARY.\n").unwrap();
        std::os::unix::fs::symlink(&outside, root.join(".refine/principles.md")).unwrap();
        std::os::unix::fs::symlink(&outside, prompts.join("critique_user.md")).unwrap();
        let p = Prompts::load(Some(&root));
        assert!(!p.principles().contains("CANARY"));
        assert_eq!(p.principle_ids().len(), 6);
        let out = p
            .render(
                "critique_user.md",
                serde_json::json!({"path": "a.rs", "selection": "x", "first_line": 1, "last_line": 1}),
            )
            .unwrap();
        assert!(!out.contains("CANARY"), "{out}");
        assert!(p.overrides.is_empty(), "{:?}", p.overrides);
        for name in ["principles.md", "critique_user.md"] {
            assert!(
                p.warnings
                    .iter()
                    .any(|w| w.contains(name) && w.contains("outside the workspace")),
                "{:?}",
                p.warnings
            );
        }
        // The user's own folder may link wherever it likes.
        let user = Prompts::load_from(&[prompts]);
        assert!(user.overrides.len() == 1 && user.warnings.is_empty());
    }
}

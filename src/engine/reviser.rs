//! The reviser: asks the model for a new version of the selection that addresses its
//! findings (whole, or as SEARCH/REPLACE blocks for large selections), optionally with the
//! reason the last attempt was refused, and restores secrets in what comes back.

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::anchor::Selection;
use super::candidate::Candidate;
use super::critique::RawFinding;
use super::note::Rejection;
use super::outcome::{EngineError, ReviewInput, ReviewOutcome};
use super::revision;
use super::run::{Engine, Run};
use crate::llm::{ChatRequest, Message};
use crate::secrets::Vault;

impl Engine<'_> {
    /// Asks the reviser for a new version of `base`, addressing its findings.
    pub(crate) async fn revise(
        &self,
        input: &ReviewInput,
        base: &Candidate,
        vault: &mut Vault,
        out: &mut ReviewOutcome,
        cancel: &CancellationToken,
        feedback: Option<&str>,
    ) -> Result<String, EngineError> {
        let findings: Vec<&RawFinding> = base.critique.shown.iter().map(|(f, _)| f).collect();
        let line_count = Selection::new(&base.text, input.first_line)
            .line_count()
            .max(1);
        let sent_selection = redact(self.redact_secrets, vault, &base.text);
        let findings: Vec<RawFinding> = findings
            .into_iter()
            .map(|f| RawFinding {
                quote: if self.redact_secrets {
                    vault.redact(&f.quote)
                } else {
                    f.quote.clone()
                },
                ..f.clone()
            })
            .collect();
        let edit_format = self.edit_format(line_count);
        let feedback = feedback.map(|f| redact(self.redact_secrets, vault, f));
        let (system, user) = self.code_prompts(
            ("revise_system.md", "revise_user.md"),
            input,
            &sent_selection,
            (edit_format, line_count),
            &[("findings", json!(findings))],
            feedback.as_deref(),
        )?;
        self.ask_for_code(
            (&base.text, &sent_selection),
            code_request(system, user, None),
            vault,
            out,
            cancel,
        )
        .await
    }

    /// Asks the reviser to fix `original` with no critique to go on (the fix-first strategy
    /// and the single-call baseline): the facts outside tools report, and why the last fix was
    /// refused. Returns the selection unchanged when the model finds nothing to fix.
    /// `temperature`: the call's own, over the provider's (a sampled second ask).
    pub(crate) async fn propose_fix(
        &self,
        input: &ReviewInput,
        original: &str,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        (feedback, temperature): (Option<&str>, Option<f64>),
    ) -> Result<String, EngineError> {
        let Run {
            vault,
            cancel,
            facts,
            ..
        } = run;
        let line_count = Selection::new(original, input.first_line)
            .line_count()
            .max(1);
        let redacting = self.redact_secrets;
        let sent_selection = redact(redacting, vault, original);
        let facts: Vec<String> = facts.iter().map(|f| redact(redacting, vault, f)).collect();
        let feedback = feedback.map(|f| redact(redacting, vault, f));
        // What this codebase dismissed here: the fixer is not to "fix" it either.
        let unwanted: Vec<String> = input
            .unwanted
            .iter()
            .map(|u| redact(redacting, vault, u))
            .collect();
        let edit_format = self.edit_format(line_count);
        let (system, user) = self.code_prompts(
            ("fix_system.md", "fix_user.md"),
            input,
            &sent_selection,
            (edit_format, line_count),
            &[("facts", json!(facts)), ("unwanted", json!(unwanted))],
            feedback.as_deref(),
        )?;
        match self
            .ask_for_code(
                (original, &sent_selection),
                code_request(system, user, temperature),
                vault,
                out,
                cancel,
            )
            .await
        {
            // With search/replace blocks, "nothing to fix" is a reply with no block.
            Err(EngineError::Revision(revision::RevisionError::NoCode))
                if edit_format == "search_replace" =>
            {
                Ok(original.to_owned())
            }
            other => other,
        }
    }

    /// The system and user prompts of a call that answers with code (the reviser's or the fixer's):
    /// the selection as sent, its lines, what to act on (`findings` or `facts`), and why the
    /// last attempt was refused.
    fn code_prompts(
        &self,
        (system_template, user_template): (&'static str, &'static str),
        input: &ReviewInput,
        sent_selection: &str,
        (edit_format, line_count): (&str, usize),
        extra: &[(&str, serde_json::Value)],
        feedback: Option<&str>,
    ) -> Result<(String, String), EngineError> {
        let system = self.prompts.render(
            system_template,
            json!({"language": input.language, "edit_format": edit_format}),
        )?;
        let mut values = json!({
            "path": input.path,
            "language": input.language,
            "selection": sent_selection.trim_end_matches(['\n', '\r']),
            "first_line": input.first_line + 1,
            "last_line": input.first_line + line_count,
            "feedback": feedback,
        });
        for (key, value) in extra {
            values[*key] = value.clone();
        }
        let user = self.prompts.render(user_template, values)?;
        Ok((system, user))
    }

    /// The fixer's system prompt for `language` code in the whole-selection format (the one a
    /// selection under `search_replace_min_lines` lines gets): the same for every such review.
    pub(crate) fn fixer_system(
        &self,
        language: &str,
    ) -> Result<String, crate::prompts::PromptError> {
        self.prompts.render(
            "fix_system.md",
            json!({"language": language, "edit_format": "full"}),
        )
    }

    fn edit_format(&self, line_count: usize) -> &'static str {
        if line_count >= self.config.search_replace_min_lines {
            "search_replace"
        } else {
            "full"
        }
    }

    /// One reviser call: the reply parsed into the whole selection, secrets restored. Refused
    /// when the revision would write a placeholder, or when putting the secrets back would
    /// change a line the model left as it was sent.
    async fn ask_for_code(
        &self,
        (original, sent_selection): (&str, &str),
        req: ChatRequest,
        vault: &mut Vault,
        out: &mut ReviewOutcome,
        cancel: &CancellationToken,
    ) -> Result<String, EngineError> {
        let resp = Self::call(self.reviser, &req, out, cancel, &mut |_| {}).await?;
        tracing::debug!(reply = %resp.content, "revision reply");
        let revised = revision::apply_reply(sent_selection, &resp.content)?;
        let restored = vault.restore(&revised);
        if vault.holds_placeholder(&restored, original) {
            return Err(EngineError::Refused(Rejection::Placeholder));
        }
        let touched = restore_touches_kept_lines(vault, original, sent_selection, &revised);
        if !touched.is_empty() {
            let lines: Vec<String> = touched
                .iter()
                .map(|l| l.saturating_add(1).to_string())
                .collect();
            return Err(EngineError::Refused(Rejection::RestoreChangedKeptLines(
                lines.join(", "),
            )));
        }
        Ok(restored)
    }
}

/// The lines (0-based, of what was sent) that the model kept as they were sent in `received`
/// but that read differently from `original` once the secrets are put back: restoring must
/// touch only what the model changed. (A sent line stands for its restored text, one line or,
/// for a multi-line secret, several; the restored sent text is lined up with the original.)
fn restore_touches_kept_lines(
    vault: &Vault,
    original: &str,
    sent: &str,
    received: &str,
) -> Vec<usize> {
    let sent_lines: Vec<&str> = sent.split_inclusive('\n').collect();
    let received_lines: Vec<&str> = received.split_inclusive('\n').collect();
    let restored: Vec<String> = sent_lines.iter().map(|l| vault.restore(l)).collect();
    // Each restored line, and the sent line it comes from.
    let (pieces, owners): (Vec<&str>, Vec<usize>) = restored
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.split_inclusive('\n').map(move |p| (p, i)))
        .unzip();
    let original_lines: Vec<&str> = original.split_inclusive('\n').collect();
    let mut unfaithful = std::collections::BTreeSet::new();
    for op in similar::capture_diff_slices(similar::Algorithm::Myers, &original_lines, &pieces) {
        if !matches!(op, similar::DiffOp::Equal { .. }) {
            unfaithful.extend(op.new_range().filter_map(|j| owners.get(j).copied()));
        }
    }
    let mut touched = Vec::new();
    for op in similar::capture_diff_slices(similar::Algorithm::Myers, &sent_lines, &received_lines)
    {
        if let similar::DiffOp::Equal { old_index, len, .. } = op {
            touched.extend(
                (old_index..old_index.saturating_add(len)).filter(|i| unfaithful.contains(i)),
            );
        }
    }
    touched
}

fn redact(redacting: bool, vault: &mut Vault, text: &str) -> String {
    if redacting {
        vault.redact(text)
    } else {
        text.to_owned()
    }
}

/// A call that answers with code: free text (a fenced block or search/replace blocks), at the
/// provider's temperature unless `temperature` says otherwise.
fn code_request(system: String, user: String, temperature: Option<f64>) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::system(system), Message::user(user)],
        json_schema: None,
        temperature,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-proj-abcdefghijklmnopqrstuvwxyz012345";

    #[test]
    fn a_restore_that_changes_a_kept_line_is_caught() {
        // A vault whose placeholders read like a word the code already holds (what every
        // placeholder was before they had a random part): putting the key back also rewrites
        // the line the model kept.
        let original =
            format!("let fake = \"REDACTED_SECRET_1\";\nlet key = \"{KEY}\";\nlet n = 1;\n");
        let mut vault = Vault::stable();
        let sent = vault.redact(&original);
        assert_eq!(
            sent,
            "let fake = \"REDACTED_SECRET_1\";\nlet key = \"REDACTED_SECRET_1\";\nlet n = 1;\n"
        );
        let received = sent.replace("let n = 1;", "let n = 2;");
        assert_eq!(
            restore_touches_kept_lines(&vault, &original, &sent, &received),
            vec![0]
        );
        // The model rewrote that line itself: restoring it is not restore's doing.
        let received = sent.replace("let fake = ", "let fake2 = ");
        assert!(restore_touches_kept_lines(&vault, &original, &sent, &received).is_empty());
    }

    #[test]
    fn a_faithful_restore_passes_with_multi_line_secrets() {
        let body = "MIIEowIBAAKCAQEAx1y2z3ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop";
        let original = format!(
            "const PEM: &str = \"-----BEGIN RSA PRIVATE KEY-----\n{body}\n{body}\n-----END RSA PRIVATE KEY-----\";\nlet key = \"{KEY}\";\nlet fake = \"REDACTED_SECRET_1\";\nlet n = 1;\n"
        );
        let mut vault = Vault::default();
        let sent = vault.redact(&original);
        assert_eq!(sent.lines().count(), 4, "{sent}");
        let received = format!("// header\n{}", sent.replace("let n = 1;", "let n = 2;"));
        assert!(restore_touches_kept_lines(&vault, &original, &sent, &received).is_empty());
        assert!(vault.restore(&received).contains(body));
        assert!(!vault.holds_placeholder(&vault.restore(&received), &original));
    }
}

//! The reviser: asks the model for a new version of the selection that addresses its
//! findings (whole, or as SEARCH/REPLACE blocks for large selections), optionally with the
//! reason the last attempt was refused, and restores secrets in what comes back.

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::anchor::Selection;
use super::critique::RawFinding;
use super::{Candidate, Engine, EngineError, ReviewInput, ReviewOutcome, Run, revision};
use crate::llm::{ChatRequest, Message};
use crate::secrets::{Vault, has_placeholder};

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
            &sent_selection,
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
                &sent_selection,
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

    fn edit_format(&self, line_count: usize) -> &'static str {
        if line_count >= self.config.search_replace_min_lines {
            "search_replace"
        } else {
            "full"
        }
    }

    /// One reviser call: the reply parsed into the whole selection, secrets restored.
    async fn ask_for_code(
        &self,
        sent_selection: &str,
        req: ChatRequest,
        vault: &mut Vault,
        out: &mut ReviewOutcome,
        cancel: &CancellationToken,
    ) -> Result<String, EngineError> {
        let resp = Self::call(self.reviser, &req, out, cancel, &mut |_| {}).await?;
        tracing::debug!(reply = %resp.content, "revision reply");
        let revised = revision::apply_reply(sent_selection, &resp.content)?;
        let restored = vault.restore(&revised);
        if has_placeholder(&restored) {
            return Err(EngineError::Placeholder);
        }
        Ok(restored)
    }
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

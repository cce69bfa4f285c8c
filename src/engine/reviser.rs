//! The reviser: asks the model for a new version of the selection that addresses its
//! findings (whole, or as SEARCH/REPLACE blocks for large selections), optionally with the
//! reason the last attempt was refused, and restores secrets in what comes back.

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::anchor::Selection;
use super::critique::RawFinding;
use super::{Candidate, Engine, EngineError, ReviewInput, ReviewOutcome, revision};
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
        let sent_selection = if self.redact_secrets {
            vault.redact(&base.text)
        } else {
            base.text.clone()
        };
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
        let edit_format = if line_count >= self.config.search_replace_min_lines {
            "search_replace"
        } else {
            "full"
        };
        let feedback = feedback.map(|f| {
            if self.redact_secrets {
                vault.redact(f)
            } else {
                f.to_owned()
            }
        });
        let system = self.prompts.render(
            "revise_system.md",
            json!({"language": input.language, "edit_format": edit_format}),
        )?;
        let user = self.prompts.render(
            "revise_user.md",
            json!({
                "path": input.path,
                "language": input.language,
                "selection": sent_selection.trim_end_matches(['\n', '\r']),
                "first_line": input.first_line + 1,
                "last_line": input.first_line + line_count,
                "findings": findings,
                "feedback": feedback,
            }),
        )?;
        let req = ChatRequest {
            messages: vec![Message::system(system), Message::user(user)],
            json_schema: None,
        };
        let resp = Self::call(self.reviser, &req, out, cancel, &mut |_| {}).await?;
        tracing::debug!(reply = %resp.content, "revision reply");
        let revised = revision::apply_reply(&sent_selection, &resp.content)?;
        let restored = vault.restore(&revised);
        if has_placeholder(&restored) {
            return Err(EngineError::Placeholder);
        }
        Ok(restored)
    }
}

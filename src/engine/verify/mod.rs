//! Verification from outside the model: every revision is parsed (tree-sitter) in the whole
//! file and must not add syntax errors; it may not change the signatures of functions, types
//! or items in the selection unless a finding asks for it ([`syntax`]); and, when the user
//! configured one, a command (`verify.command`) runs on a scratch copy of the workspace with
//! the revision in it ([`command`]). A revision that fails the command where the original
//! passed goes back to the reviser once, with the failure.

pub mod command;
pub mod syntax;

use std::ops::Range;

use crate::engine::candidate::Candidate;
use crate::engine::critique::RawFinding;
use crate::engine::note::Rejection;
use crate::engine::outcome::{EngineError, ReviewInput, ReviewOutcome, Stop};
use crate::engine::run::{Engine, Run, Subject};
use crate::llm::ProviderError;
pub use command::{CommandCheck, CommandError, CommandResult, Scratch, gist, last_line};
pub use syntax::{check, signatures, syntax_errors, warm};

/// A revision that passed verification.
pub(crate) struct Verified {
    /// The revision (the reviser's second attempt, when the first failed the command).
    pub(crate) text: String,
    /// Whether `verify.command` passes on it (`None`: not run).
    pub(crate) passes: Option<bool>,
}

/// Why verification ended without a verified revision.
enum Failure {
    Stop,
    Rejected(Rejection),
}

impl From<Rejection> for Failure {
    fn from(why: Rejection) -> Self {
        Failure::Rejected(why)
    }
}

impl From<CommandError> for Failure {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Cancelled => Failure::Stop,
            CommandError::Failed(why) => Failure::Rejected(Rejection::Command(why)),
        }
    }
}

/// What the checks of one revision read: the review's subject and the version revised.
struct Checks<'x> {
    input: &'x ReviewInput,
    original: &'x str,
    scratch: Option<&'x Scratch>,
    base: &'x Candidate,
    region: Range<usize>,
    original_file: String,
    findings: Vec<&'x RawFinding>,
}

impl<'x> Checks<'x> {
    fn new(at: &Subject<'x>, base: &'x Candidate) -> Self {
        Checks {
            input: at.input,
            original: at.original,
            scratch: at.scratch,
            base,
            region: at.input.region(),
            original_file: at.input.text.to_string(),
            findings: base.critique.shown.iter().map(|(f, _)| f).collect(),
        }
    }

    /// The file with `sel` in place of the selection.
    fn whole(&self, sel: &str) -> String {
        let text = &self.input.text;
        let mut t = text.slice(..self.region.start).to_string();
        t.push_str(sel);
        t.push_str(&text.slice(self.region.end..).to_string());
        t
    }

    /// The cheap checks, then syntax and intent.
    fn statics(&self, revised: &str) -> Result<(), Rejection> {
        cheap_checks(self.original, &self.base.text, revised)?;
        check(
            &self.input.language,
            &self.original_file,
            &self.whole(revised),
            self.original,
            revised,
            &self.findings,
        )
    }
}

impl Engine<'_> {
    /// Verifies a revision of `base`: cheap checks, syntax and intent, then `verify.command`
    /// with (when `retry`) one more attempt from the reviser when the command fails where the
    /// original passed. A failure's gist is left in `run.last_failure`. A refusal while the
    /// review is being cancelled (a command or a call cut short) is the cancellation.
    pub(crate) async fn verify_revision(
        &self,
        at: &Subject<'_>,
        base: &Candidate,
        revised: String,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        (round, retry): (u32, bool),
    ) -> Result<Result<Verified, Rejection>, Stop> {
        let checks = Checks::new(at, base);
        match self
            .verify_with(&checks, revised, run, out, (round, retry))
            .await
        {
            Ok(v) => Ok(Ok(v)),
            Err(Failure::Stop) => Err(Stop),
            Err(Failure::Rejected(_)) if run.cancel.is_cancelled() => Err(Stop),
            Err(Failure::Rejected(why)) => Ok(Err(why)),
        }
    }

    async fn verify_with(
        &self,
        checks: &Checks<'_>,
        revised: String,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        (round, retry): (u32, bool),
    ) -> Result<Verified, Failure> {
        checks.statics(&revised)?;
        let (Some(check), Some(scratch)) = (self.command, checks.scratch) else {
            return Ok(Verified {
                text: revised,
                passes: None,
            });
        };
        let result = run_command(check, scratch, &checks.whole(&revised), run).await?;
        let Some(why) = regression(
            check,
            out.command_passed_on_original,
            run.original_code,
            &result,
        ) else {
            return Ok(Verified {
                text: revised,
                passes: Some(result.passed),
            });
        };
        if !retry {
            return Err(why.into());
        }
        // Self-debugging: the failure goes back to the reviser once.
        tracing::info!(
            round,
            "verify.command failed on the revision; one more attempt"
        );
        let second = match self
            .retry(checks.input, checks.base, run, out, &gist(&result.output))
            .await
        {
            Ok(t) => t,
            Err(EngineError::Provider(ProviderError::Cancelled)) => return Err(Failure::Stop),
            Err(e) => {
                return Err(Rejection::RetryFailed {
                    command: check.command.clone(),
                    why: Box::new(e.into()),
                }
                .into());
            }
        };
        checks.statics(&second)?;
        let again = run_command(check, scratch, &checks.whole(&second), run).await?;
        match regression(
            check,
            out.command_passed_on_original,
            run.original_code,
            &again,
        ) {
            None => Ok(Verified {
                text: second,
                passes: Some(again.passed),
            }),
            Some(why) => Err(Rejection::AgainOnRetry(Box::new(why)).into()),
        }
    }

    /// The reviser's second attempt at the same base, told why the first failed: a revision
    /// of the findings (critique-first), or a fresh fix (fix-first, whose base has none).
    async fn retry(
        &self,
        input: &ReviewInput,
        base: &Candidate,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        why: &str,
    ) -> Result<String, EngineError> {
        if base.critique.shown.is_empty() {
            self.propose_fix(input, &base.text, run, out, (Some(why), None))
                .await
        } else {
            self.revise(input, base, run.vault, out, run.cancel, Some(why))
                .await
        }
    }
}

/// Runs the command on `file`, the gist of a failure left in `run.last_failure`.
async fn run_command(
    check: &CommandCheck,
    scratch: &Scratch,
    file: &str,
    run: &mut Run<'_>,
) -> Result<CommandResult, CommandError> {
    let result = check.run(scratch, file, run.cancel).await?;
    if !result.passed {
        run.last_failure = Some(gist(&result.output));
    }
    Ok(result)
}

/// Why a command result on a revision is a regression, if it is: the command passes on the
/// original and fails on it, or fails on both with different exit codes (the tests failed,
/// now the code does not compile).
fn regression(
    check: &CommandCheck,
    passed_on_original: Option<bool>,
    original_code: Option<i32>,
    result: &CommandResult,
) -> Option<Rejection> {
    if result.passed {
        return None;
    }
    match passed_on_original {
        Some(true) => Some(Rejection::BreaksCheck {
            command: check.command.clone(),
            last_line: last_line(&result.output).to_owned(),
        }),
        Some(false) if result.code != original_code => Some(Rejection::FailsAnew {
            command: check.command.clone(),
            code: result.code,
            original: original_code,
            last_line: last_line(&result.output).to_owned(),
        }),
        _ => None,
    }
}

/// The cheap checks every revision passes first.
fn cheap_checks(original: &str, base: &str, revised: &str) -> Result<(), Rejection> {
    if revised.trim().is_empty() {
        return Err(Rejection::Empty);
    }
    if revised == original || revised == base {
        return Err(Rejection::ChangesNothing);
    }
    Ok(())
}

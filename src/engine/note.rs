//! What a review wants the user to know, typed: a [`Note`] per thing that happened along the
//! way, whose `Display` is the sentence the editors and the command line show; why a revision
//! or fix was refused ([`Rejection`]); and the kinds of refusal `refine-ls eval` counts
//! ([`Refusal`]). Nothing reads a note's text back: what a note means is its variant.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::revision::RevisionError;

/// Something a review wants the user to know, typed. `Display` gives the sentence the editors
/// and the CLI show (the wire keeps `notes: Vec<String>`, unchanged text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Note {
    /// The outcome is a stored one: no model was called.
    FromCache,
    /// Secrets were replaced by placeholders before anything was sent (their kinds).
    Redacted {
        /// One kind per secret.
        kinds: Vec<String>,
    },
    /// `verify.command` could not be run on the original (the copy or the run failed).
    CommandNotRun {
        /// Why, as one sentence.
        why: String,
    },
    /// The reflection pass dropped findings.
    ReflectionDropped {
        /// How many.
        dropped: usize,
        /// `loop.reflect_min_score`.
        min_score: u32,
    },
    /// The reflection pass failed; every finding was kept.
    ReflectionFailed {
        /// Why, as one sentence.
        why: String,
    },
    /// The repetition guard stopped the critic.
    CritiqueRepeating {
        /// Findings complete before the repeat.
        kept: usize,
    },
    /// The critique was cut off at the token limit; its complete findings were kept.
    CritiqueCutOff {
        /// Output tokens of the reply.
        tokens: u64,
        /// Complete findings kept.
        kept: usize,
    },
    /// A revision or fix was refused (by verification, or its reply could not be used).
    Rejected {
        /// Which one.
        attempt: Attempt,
        /// Why.
        why: Rejection,
    },
    /// `verify.command` fails on the original and passes on revision `round`: accepted on
    /// that evidence alone.
    TestsDecide {
        /// Which revision.
        round: u32,
    },
    /// A verified revision was not kept.
    SetAside {
        /// Which revision.
        round: u32,
        /// Why.
        why: SetAside,
    },
    /// The judge gave no verdict on revision `round`: the changed lines decided.
    ChangedLinesDecide {
        /// Which revision.
        round: u32,
        /// Why there was no verdict.
        why: Unjudged,
    },
    /// Critique-first revised, and no revision passed verification and resolved a finding.
    NoRevisionOffered,
    /// A fix call failed; the critique is shown instead.
    FixFailed {
        /// Which fix.
        round: u32,
        /// The call's error, as one sentence.
        why: String,
    },
    /// The fixer gave the code back unchanged although `verify.command` fails on it: asked
    /// again.
    UnchangedAskedAgain {
        /// Which fix.
        round: u32,
    },
    /// The fixer's first answer is the code as it is.
    NothingToFix,
    /// A later fix gave the code back unchanged.
    FixUnchanged {
        /// Which fix.
        round: u32,
    },
    /// The failing `verify.command` still fails on a fix verification let through.
    FixStillFails {
        /// Which fix.
        round: u32,
    },
    /// No fix passed verification.
    NoFixPassed {
        /// A critique of the original is shown instead (fix-first; not the `single` baseline).
        critique_instead: bool,
    },
    /// The verified fix could not be explained (its prompt failed): nothing is offered.
    NotExplained {
        /// Why, as one sentence.
        why: String,
    },
    /// The explainer's reply could not be read.
    ExplanationUnreadable {
        /// The start of the reply (`None`: it was empty).
        reply: Option<String>,
    },
    /// The explanation call failed.
    ExplanationFailed {
        /// The call's error, as one sentence.
        why: String,
    },
    /// The dismissal stores could not be read.
    DismissalsNotApplied {
        /// Why, as one sentence.
        why: String,
    },
    /// Findings taken out because they are dismissed.
    Dismissed {
        /// How many.
        count: usize,
    },
    /// The revision changed code only for dismissed findings: not offered.
    OnlyDismissedFixes,
    /// No probe ran, and why (a method needs a receiver, no harness for the language, the
    /// workspace is not trusted and there is no sandbox): severities stay at hints unless a
    /// test, doc example or diagnostic backs them.
    NoProbes {
        /// Why, as one sentence.
        why: String,
    },
    /// Doc examples fail on the original: a fact as strong as a failing test.
    DocExamplesFail {
        /// How many fail.
        failing: usize,
        /// How many ran.
        of: usize,
    },
    /// A version changes what the function does on an input, and nothing says the original is
    /// wrong there: refused as drift.
    Drift {
        /// Which attempt.
        attempt: Attempt,
        /// `changes \`f([])\` from \`0\` to \`None\``.
        change: String,
    },
    /// The offered revision does what the original does on every probe input: a refactor,
    /// shown as hints.
    BehaviourUnchanged {
        /// Inputs it ran on.
        inputs: usize,
    },
    /// Sampled fixes agree with the chosen one's behaviour.
    FixesAgree {
        /// Fixes (the chosen one included) with the chosen behaviour.
        agree: usize,
        /// Fixes compared.
        of: usize,
    },
}

impl Note {
    /// Why a revision or fix was refused or set aside, when this note says one was.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Note::Rejected { why, .. } => Some(why.refusal()),
            Note::SetAside { why, .. } => Some(why.refusal()),
            Note::FixStillFails { .. } => Some(Refusal::CheckStillFails),
            Note::Drift { .. } => Some(Refusal::Drift),
            _ => None,
        }
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::FromCache => {
                f.write_str("from the review cache (no model call); review with force to refresh")
            }
            Note::Redacted { kinds } => write!(
                f,
                "{} secret(s) in the code were replaced by placeholders before sending: {}",
                kinds.len(),
                kinds.join(", ")
            ),
            Note::CommandNotRun { why } => write!(f, "verify.command was not run: {why}"),
            Note::ReflectionDropped { dropped, min_score } => write!(
                f,
                "the reflection pass dropped {dropped} finding(s) it scored below {min_score}"
            ),
            Note::ReflectionFailed { why } => {
                write!(f, "the reflection pass failed ({why}); all findings kept")
            }
            Note::CritiqueRepeating { kept } => write!(
                f,
                "the critique began repeating a finding after {kept} finding(s); the model was stopped there"
            ),
            Note::CritiqueCutOff { tokens, kept } => write!(
                f,
                "the critique was cut off at the token limit ({tokens} tokens); {kept} complete finding(s) kept; raise provider.max_tokens for more"
            ),
            Note::Rejected { attempt, why } => write!(f, "{attempt} rejected: {why}"),
            Note::TestsDecide { round } => write!(
                f,
                "revision {round}: verify.command fails on the original and passes on it; accepted on that alone"
            ),
            Note::SetAside { round, why } => write!(f, "revision {round} set aside: {why}"),
            Note::ChangedLinesDecide { round, why } => write!(
                f,
                "revision {round}: {why}; a finding counts as resolved when the revision changes its lines"
            ),
            Note::NoRevisionOffered => f.write_str(
                "no revision is offered: none passed verification and resolved a finding",
            ),
            Note::FixFailed { round, why } => {
                write!(f, "fix {round} failed ({why}); a critique is shown instead")
            }
            Note::UnchangedAskedAgain { round } => write!(
                f,
                "fix {round}: the reviser gave the code back unchanged although verify.command fails on it; asked again"
            ),
            Note::NothingToFix => f.write_str("the reviser found nothing to fix"),
            Note::FixUnchanged { round } => {
                write!(f, "fix {round}: the reviser gave the code back unchanged")
            }
            Note::FixStillFails { round } => write!(f, "fix {round}: {}", SetAside::StillFails),
            Note::NoFixPassed { critique_instead } => {
                f.write_str("no revision is offered: no fix passed verification")?;
                if *critique_instead {
                    f.write_str("; a critique is shown instead")?;
                }
                Ok(())
            }
            Note::NotExplained { why } => write!(f, "the fix could not be explained: {why}"),
            Note::ExplanationUnreadable { reply } => {
                write!(f, "the explanation could not be read: {}", Excerpt(reply))
            }
            Note::ExplanationFailed { why } => write!(f, "the explanation call failed ({why})"),
            Note::DismissalsNotApplied { why } => write!(f, "dismissals not applied: {why}"),
            Note::Dismissed { count } => write!(
                f,
                "{count} finding(s) not shown: dismissed (.refine/dismissed.toml or your own)"
            ),
            Note::OnlyDismissedFixes => {
                f.write_str("the revision only changes code for dismissed findings: not offered")
            }
            Note::NoProbes { why } => write!(
                f,
                "no probes: {why}; findings no test or diagnostic backs are shown as hints"
            ),
            Note::DocExamplesFail { failing, of } => {
                write!(
                    f,
                    "{failing} of {of} doc example(s) fail on the code as it is"
                )
            }
            Note::Drift { attempt, change } => write!(
                f,
                "{attempt} refused as drift: it {change}; nothing says the original is wrong"
            ),
            Note::BehaviourUnchanged { inputs } => write!(
                f,
                "the revision behaves as the original on {inputs} input(s): a refactor, shown as hints"
            ),
            Note::FixesAgree { agree, of } => write!(
                f,
                "{agree} of {of} fixes behave as the one offered on every probe input"
            ),
        }
    }
}

/// The start of a model's reply in a note: quoted, or `(empty)`.
struct Excerpt<'a>(&'a Option<String>);

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(t) => write!(f, "{t:?}"),
            None => f.write_str("(empty)"),
        }
    }
}

/// Which attempt a note is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Attempt {
    /// Revision `n` of the critique-first loop.
    Revision(u32),
    /// Fix `n` of fix-first (or of the single-call baseline).
    Fix(u32),
    /// Sampled fix `n` (fix-first with probes).
    Sample(u32),
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attempt::Revision(n) => write!(f, "revision {n}"),
            Attempt::Fix(n) => write!(f, "fix {n}"),
            Attempt::Sample(n) => write!(f, "sampled fix {n}"),
        }
    }
}

/// Why a verified revision was not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SetAside {
    /// Only the failing `verify.command` was to be fixed, and it still fails.
    #[error("the failing verify.command still fails on it")]
    StillFails,
    /// The judge could not be asked (its prompt failed).
    #[error("{0}")]
    JudgeFailed(String),
    /// The judge finds none of the findings resolved.
    #[error("it resolves none of the {asked} finding(s) it was asked to fix")]
    ResolvesNone {
        /// Findings it was asked to fix.
        asked: usize,
    },
}

impl SetAside {
    fn refusal(&self) -> Refusal {
        match self {
            SetAside::StillFails => Refusal::CheckStillFails,
            SetAside::JudgeFailed(_) => Refusal::Other,
            SetAside::ResolvesNone { .. } => Refusal::JudgedUnresolved,
        }
    }
}

/// Why the judge gave no verdict (the changed lines decide instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Unjudged {
    /// The judge call failed (other than by cancellation).
    #[error("the judge call failed ({0})")]
    CallFailed(String),
    /// No verdict could be read from its reply (its start; `None`: it was empty).
    #[error("the judge's reply could not be read: {}", Excerpt(.0))]
    Unreadable(Option<String>),
}

/// Why a revision or fix was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    /// The revision is blank.
    #[error("the revision is empty")]
    Empty,
    /// The revision is the original or the version it revises.
    #[error("the revision changes nothing")]
    ChangesNothing,
    /// It adds syntax errors around the change.
    #[error("it does not parse: {after} syntax error(s) where the original file has {before}")]
    DoesNotParse {
        /// Syntax errors of the original around the change.
        before: usize,
        /// ... and of the revision.
        after: usize,
    },
    /// It changes an item's signature and no finding asks for that.
    #[error(
        "it changes the signature of `{name}` (`{old}` → `{new}`) and no finding asks for that"
    )]
    ChangesSignature {
        /// The item.
        name: String,
        /// Its signature in the original.
        old: String,
        /// ... and in the revision.
        new: String,
    },
    /// It removes or renames an item and no finding asks for that.
    #[error("it removes or renames `{name}` and no finding asks for that")]
    RemovesItem {
        /// The item.
        name: String,
    },
    /// `verify.command` passes on the original and fails on it.
    #[error("`{command}` passes on the original but fails on it: {last_line}")]
    BreaksCheck {
        /// The command.
        command: String,
        /// The last line of its output.
        last_line: String,
    },
    /// `verify.command` fails on both, with another exit code (the tests failed; now the
    /// code does not compile).
    #[error(
        "`{command}` fails on it in a new way (exit {}, where the original's is {}): {last_line}",
        Exit(.code),
        Exit(.original)
    )]
    FailsAnew {
        /// The command.
        command: String,
        /// Its exit code on the revision (`None`: a signal).
        code: Option<i32>,
        /// ... and on the original.
        original: Option<i32>,
        /// The last line of its output.
        last_line: String,
    },
    /// The reviser's second attempt, told why the first failed `verify.command`, fails too.
    #[error("{0} (and on the retry)")]
    AgainOnRetry(Box<Rejection>),
    /// The reviser's second attempt could not be had.
    #[error("`{command}` failed on it, and the retry failed: {why}")]
    RetryFailed {
        /// The command the first attempt failed.
        command: String,
        /// Why the retry failed.
        why: Box<Rejection>,
    },
    /// The reviser's reply holds no usable revision.
    #[error(transparent)]
    Unreadable(RevisionError),
    /// The revision would write a secret placeholder into the file.
    #[error(
        "the revision holds a secret placeholder that matches no redacted secret, so it would write the placeholder into the file"
    )]
    Placeholder,
    /// Putting the secrets back would change lines the model kept as they were.
    #[error(
        "putting the secrets back would change line(s) the revision did not change ({0}), so it was refused"
    )]
    RestoreChangedKeptLines(String),
    /// `verify.command` could not be run on it.
    #[error("{0}")]
    Command(String),
    /// The call failed otherwise (its prompt could not be rendered), as one sentence.
    #[error("{0}")]
    Failed(String),
}

impl Rejection {
    /// The kind `refine-ls eval` counts this refusal as.
    pub fn refusal(&self) -> Refusal {
        match self {
            Rejection::ChangesNothing => Refusal::ChangesNothing,
            Rejection::DoesNotParse { .. } => Refusal::DoesNotParse,
            Rejection::ChangesSignature { .. } => Refusal::ChangesSignature,
            Rejection::BreaksCheck { .. } => Refusal::BreaksCheck,
            Rejection::AgainOnRetry(why) | Rejection::RetryFailed { why, .. } => why.refusal(),
            Rejection::Unreadable(_) => Refusal::UnreadableReply,
            // Counted as `other`, as eval always has.
            Rejection::Empty
            | Rejection::RemovesItem { .. }
            | Rejection::FailsAnew { .. }
            | Rejection::Placeholder
            | Rejection::RestoreChangedKeptLines(_)
            | Rejection::Command(_)
            | Rejection::Failed(_) => Refusal::Other,
        }
    }
}

/// An exit code in a sentence: the number, or `signal`.
struct Exit<'a>(&'a Option<i32>);

impl fmt::Display for Exit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, "{c}"),
            None => f.write_str("signal"),
        }
    }
}

/// The kinds of refusal `refine-ls eval` counts (serialized as their labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Refusal {
    /// The revision adds syntax errors.
    #[serde(rename = "does not parse")]
    DoesNotParse,
    /// It changes a signature no finding asks to change.
    #[serde(rename = "changes a signature")]
    ChangesSignature,
    /// `verify.command` passes on the original and fails on it.
    #[serde(rename = "breaks the check")]
    BreaksCheck,
    /// The failing `verify.command` still fails on it.
    #[serde(rename = "check still fails")]
    CheckStillFails,
    /// It changes nothing.
    #[serde(rename = "changes nothing")]
    ChangesNothing,
    /// The judge finds none of its findings resolved.
    #[serde(rename = "judged unresolved")]
    JudgedUnresolved,
    /// The reviser's reply could not be read.
    #[serde(rename = "unreadable reply")]
    UnreadableReply,
    /// It changes what the function does where nothing says the original is wrong.
    #[serde(rename = "drift")]
    Drift,
    /// Anything else.
    #[serde(rename = "other")]
    Other,
}

impl Refusal {
    /// eval's label: "does not parse", "changes a signature", "breaks the check",
    /// "check still fails", "changes nothing", "judged unresolved", "unreadable reply", "drift",
    /// "other".
    pub fn label(self) -> &'static str {
        match self {
            Refusal::DoesNotParse => "does not parse",
            Refusal::ChangesSignature => "changes a signature",
            Refusal::BreaksCheck => "breaks the check",
            Refusal::CheckStillFails => "check still fails",
            Refusal::ChangesNothing => "changes nothing",
            Refusal::JudgedUnresolved => "judged unresolved",
            Refusal::UnreadableReply => "unreadable reply",
            Refusal::Drift => "drift",
            Refusal::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::revision::Unclosed;

    #[test]
    fn notes_read_as_the_sentences_editors_show() {
        let rejected = Note::Rejected {
            attempt: Attempt::Revision(2),
            why: Rejection::DoesNotParse {
                before: 0,
                after: 3,
            },
        };
        assert_eq!(
            rejected.to_string(),
            "revision 2 rejected: it does not parse: 3 syntax error(s) where the original file has 0"
        );
        assert_eq!(rejected.refusal(), Some(Refusal::DoesNotParse));
        let anew = Rejection::FailsAnew {
            command: "cargo test".into(),
            code: Some(101),
            original: None,
            last_line: "error: could not compile".into(),
        };
        assert_eq!(
            anew.to_string(),
            "`cargo test` fails on it in a new way (exit 101, where the original's is signal): error: could not compile"
        );
        assert_eq!(
            Note::FixStillFails { round: 1 }.to_string(),
            "fix 1: the failing verify.command still fails on it"
        );
        assert_eq!(
            Note::NoFixPassed {
                critique_instead: true
            }
            .to_string(),
            "no revision is offered: no fix passed verification; a critique is shown instead"
        );
        assert_eq!(
            Note::ChangedLinesDecide {
                round: 1,
                why: Unjudged::Unreadable(None)
            }
            .to_string(),
            "revision 1: the judge's reply could not be read: (empty); a finding counts as resolved when the revision changes its lines"
        );
        assert_eq!(
            Note::ExplanationUnreadable {
                reply: Some("no".into())
            }
            .to_string(),
            "the explanation could not be read: \"no\""
        );
    }

    #[test]
    fn a_refusal_is_known_from_the_note_not_its_text() {
        let retry = Rejection::RetryFailed {
            command: "does not parse".into(),
            why: Box::new(Rejection::Unreadable(RevisionError::Truncated(
                Unclosed::CodeBlock,
            ))),
        };
        assert_eq!(retry.refusal(), Refusal::UnreadableReply);
        let set_aside = Note::SetAside {
            round: 1,
            why: SetAside::ResolvesNone { asked: 2 },
        };
        assert_eq!(set_aside.refusal(), Some(Refusal::JudgedUnresolved));
        assert_eq!(Note::NothingToFix.refusal(), None);
        assert_eq!(Refusal::BreaksCheck.label(), "breaks the check");
        assert_eq!(
            serde_json::to_string(&Refusal::UnreadableReply).unwrap(),
            "\"unreadable reply\""
        );
        let back: Note = serde_json::from_str(&serde_json::to_string(&set_aside).unwrap()).unwrap();
        assert_eq!(back, set_aside);
    }
}

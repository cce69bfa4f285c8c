//! The `refine.*` commands (`workspace/executeCommand`) by name. The names are a contract:
//! editors, code actions and code lenses send them.

/// A command the server executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `refine.review`: review a range of lines.
    Review,
    /// `refine.refine`: review a range and apply the best revision.
    Refine,
    /// `refine.cancel`: cancel a running review.
    Cancel,
    /// `refine.clear`: drop every review of a document.
    Clear,
    /// `refine.showRevision`: a revision's diff and revised document.
    ShowRevision,
    /// `refine.applyRevision`: ask the client to apply a revision.
    ApplyRevision,
    /// `refine.reReview`: the same lines again, bypassing the cache.
    ReReview,
    /// `refine.dismiss`: hide a review.
    Dismiss,
    /// `refine.dismissFinding`: dismiss a finding (or its principle, or the file).
    DismissFinding,
    /// `refine.undismiss`: bring a review's dismissed findings back.
    Undismiss,
    /// `refine.applied`: a revision quick fix's edit went in.
    Applied,
}

impl Command {
    /// Every command, in the order `initialize` announces them (the first four are a contract).
    pub const ALL: [Command; 11] = [
        Command::Review,
        Command::Refine,
        Command::Cancel,
        Command::Clear,
        Command::ShowRevision,
        Command::ApplyRevision,
        Command::ReReview,
        Command::Dismiss,
        Command::DismissFinding,
        Command::Undismiss,
        Command::Applied,
    ];

    /// The command's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Command::Review => "refine.review",
            Command::Refine => "refine.refine",
            Command::Cancel => "refine.cancel",
            Command::Clear => "refine.clear",
            Command::ShowRevision => "refine.showRevision",
            Command::ApplyRevision => "refine.applyRevision",
            Command::ReReview => "refine.reReview",
            Command::Dismiss => "refine.dismiss",
            Command::DismissFinding => "refine.dismissFinding",
            Command::Undismiss => "refine.undismiss",
            Command::Applied => "refine.applied",
        }
    }

    /// The command of a name, if it is one of ours.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Every command's name, in [`Self::ALL`]'s order.
    pub fn names() -> Vec<String> {
        Self::ALL.iter().map(|c| c.name().to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_the_core_four_come_first() {
        for c in Command::ALL {
            assert_eq!(Command::parse(c.name()), Some(c));
        }
        assert_eq!(
            Command::names()[..4],
            [
                "refine.review",
                "refine.refine",
                "refine.cancel",
                "refine.clear"
            ]
        );
        assert_eq!(Command::parse("refine.explode"), None);
    }
}

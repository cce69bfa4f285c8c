//! Prompt-lookup drafting: which tokens to guess next, from where the answer is copying the
//! tokens so far (prompt and answer).

use llama_cpp_2::token::LlamaToken;

/// The most tokens guessed at once (the sampled token and its guesses make one batch).
pub(super) const DRAFT_MAX: usize = 15;
/// The longest and shortest run of last tokens looked up to find a guess: longer runs are
/// tried first (a match of four tokens is far likelier to go on as before than one of one).
pub(super) const NGRAM_MAX: usize = 4;
pub(super) const NGRAM_MIN: usize = 3;
/// Tokens guessed from a source just found.
pub(super) const DRAFT_START: usize = 3;
/// After a source just found was wrong from its first guess, no new source is looked up for
/// this many tokens, doubling on each such miss up to [`COOLDOWN_MAX`]: an answer that writes
/// its own words (an explanation, a critique) is not charged a batch of wrong guesses per token.
pub(super) const COOLDOWN_START: usize = 2;
pub(super) const COOLDOWN_MAX: usize = 32;

/// Where the guesses come from: the place in the tokens so far (prompt and answer) that the
/// answer is copying, found by looking up its last few tokens and followed while the model
/// goes on copying; and how many tokens to guess. On a CPU a guessed token costs about two
/// thirds of a pass of its own, so a guess pays only where it is likely to be kept: a new
/// source gets a few guesses, and a source the model keeps copying gets twice as many each
/// time, up to [`DRAFT_MAX`]; a new source wrong from its first guess holds off the next lookups
/// for a while.
#[derive(Debug)]
pub(super) struct Draft {
    /// The index whose token the answer's last token is believed to copy, and how many
    /// guesses were offered from just after it.
    source: Option<(usize, usize)>,
    /// Tokens to guess from the source next.
    len: usize,
    /// Whether the last guesses came from a source just looked up.
    fresh: bool,
    /// Tokens left before the next lookup, and the pause the next miss brings.
    cooldown: usize,
    pause: usize,
}

impl Default for Draft {
    fn default() -> Self {
        Self {
            source: None,
            len: DRAFT_START,
            fresh: false,
            cooldown: 0,
            pause: COOLDOWN_START,
        }
    }
}

impl Draft {
    /// Up to `max` tokens guessed to follow `history` (whose last token was just sampled).
    pub(super) fn guess<'h>(&mut self, history: &'h [LlamaToken], max: usize) -> &'h [LlamaToken] {
        let Some((&last, before)) = history.split_last() else {
            return &[];
        };
        // Still copying: the token after the source is the one just sampled.
        let following = self
            .source
            .map(|(s, _)| s + 1)
            .filter(|&s| s < before.len() && before[s] == last);
        if following.is_none() {
            self.len = DRAFT_START;
            if self.cooldown > 0 {
                self.cooldown -= 1;
                self.source = None;
                return &[];
            }
        }
        self.fresh = following.is_none();
        let aligned = following.or_else(|| lookup(history));
        self.source = None;
        let Some(s) = aligned else {
            return &[];
        };
        let from = s + 1;
        let to = from.saturating_add(max.min(self.len)).min(history.len());
        let guesses = history.get(from..to).unwrap_or(&[]);
        self.source = Some((s, guesses.len()));
        guesses
    }

    /// `kept` of the last guesses were confirmed: the source moves on by as many, and when all
    /// were kept, the next guess is longer.
    pub(super) fn kept(&mut self, kept: usize) {
        if let Some((s, offered)) = self.source {
            if kept >= offered {
                self.len = self.len.saturating_mul(2).min(DRAFT_MAX);
            }
            if offered > 0 && self.fresh {
                if kept == 0 {
                    self.cooldown = self.pause;
                    self.pause = self.pause.saturating_mul(2).min(COOLDOWN_MAX);
                } else {
                    self.pause = COOLDOWN_START;
                }
            }
            self.source = Some((s + kept.min(offered), 0));
        }
    }
}

/// The index of the token that ends the latest earlier occurrence of the last `n` tokens of
/// `history` (the longest `n` from [`NGRAM_MAX`] down to [`NGRAM_MIN`] that occurs).
pub(super) fn lookup(history: &[LlamaToken]) -> Option<usize> {
    let len = history.len();
    (NGRAM_MIN..=NGRAM_MAX).rev().find_map(|n| {
        let tail = history.get(len.checked_sub(n)?..)?;
        // An occurrence that ends before the last token, so that a token follows it.
        let starts = len.checked_sub(n)?;
        (0..starts)
            .rev()
            .find(|&i| history.get(i..i + n) == Some(tail))
            .map(|i| i + n - 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_follow_the_copied_source_and_grow_while_kept() {
        let t = |v: &[i32]| v.iter().copied().map(LlamaToken::new).collect::<Vec<_>>();
        // The prompt holds 10 11 … 19; the answer has begun "… 10 11 12".
        let mut history = t(&[1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 2, 3, 10, 11, 12]);
        assert_eq!(
            lookup(&history),
            Some(3),
            "`10 11 12` first ends at index 3"
        );
        let mut draft = Draft::default();
        assert_eq!(
            draft.guess(&history, 100),
            &t(&[13, 14, 15])[..],
            "a few first"
        );
        draft.kept(3);
        // All kept and the model went on with 16: the next guess is twice as long.
        history.extend(t(&[13, 14, 15, 16]));
        assert_eq!(draft.guess(&history, 100), &t(&[17, 18, 19, 2, 3, 10])[..]);
        // Only one kept, then the model wrote 7: no longer copying; `16 17 7` occurs nowhere.
        draft.kept(1);
        history.extend(t(&[17, 7]));
        assert_eq!(draft.guess(&history, 100), &[] as &[LlamaToken]);
        draft.kept(0);
        // A budget caps the guesses (the latest occurrence of `10 11 12` is the answer's).
        history.extend(t(&[10, 11, 12]));
        assert_eq!(draft.guess(&history, 2), &t(&[13, 14])[..]);
        assert_eq!(Draft::default().guess(&[], 5), &[] as &[LlamaToken]);
        assert_eq!(lookup(&t(&[5, 6])), None);
        // The longest run of last tokens wins over a later, shorter one.
        let h = t(&[4, 5, 6, 7, 100, 9, 5, 6, 7, 200, 4, 5, 6, 7]);
        assert_eq!(
            lookup(&h),
            Some(3),
            "`4 5 6 7` at the start, not `5 6 7` later"
        );
    }

    #[test]
    fn a_new_source_wrong_at_once_holds_off_lookups_for_longer_each_time() {
        let t = |v: &[i32]| v.iter().copied().map(LlamaToken::new).collect::<Vec<_>>();
        let mut history = t(&[1, 2, 3, 4, 9, 1, 2, 3]);
        let mut draft = Draft::default();
        assert_eq!(draft.guess(&history, 10), &t(&[4, 9, 1])[..]);
        draft.kept(0);
        // The model wrote 5, not 4: for the next COOLDOWN_START tokens nothing is looked up,
        // even where a lookup would find something.
        let mut offered = Vec::new();
        for _ in 0..6 {
            history.extend(t(&[1, 2, 3]));
            offered.push(draft.guess(&history, 10).len());
            draft.kept(0);
        }
        assert_eq!(
            offered,
            vec![0, 0, 3, 0, 0, 0],
            "2 skipped, a miss, then 4 skipped"
        );
        // A kept guess ends the pauses.
        let mut draft = Draft::default();
        assert_eq!(draft.guess(&history, 10).len(), 3);
        draft.kept(1);
        assert_eq!(draft.pause, COOLDOWN_START);
        assert_eq!(draft.cooldown, 0);
    }
}

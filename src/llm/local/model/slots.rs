//! The KV cache's sequences (slots): what each holds, and which one a prompt goes to.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::LlamaToken;

/// A slot is reused for a prompt when it holds at least this many of its first tokens (the
/// roles' prompts share a few tokens of chat template, which is not worth a slot).
pub(super) const MIN_REUSE: usize = 32;
/// The tokens whose keys and values one sequence of the context holds, in order.
#[derive(Default)]
pub(super) struct KvCache {
    pub(super) tokens: Vec<LlamaToken>,
    /// When it was last used (the worker's job count).
    pub(super) used: u64,
}

/// The slot a prompt goes to: the one holding the longest stretch of its head, when that is
/// worth keeping; else the least recently used. The critic, the reviser and the judge each have
/// their own head, so each keeps a slot and none evicts another's.
pub(super) fn choose_slot(slots: &[KvCache], tokens: &[LlamaToken]) -> usize {
    let shared = |s: &KvCache| crate::text::common_affixes(&s.tokens, tokens).0;
    let best = (0..slots.len()).max_by_key(|&i| (shared(&slots[i]), std::cmp::Reverse(i)));
    // Worth it: a long shared head, or a slot whose whole content the prompt continues (a
    // cancelled prompt resumed: nothing of it is lost by going on there).
    let worth = |s: &KvCache| {
        let n = shared(s);
        n >= MIN_REUSE || (n > 0 && n == s.tokens.len())
    };
    match best {
        Some(i) if worth(&slots[i]) => i,
        _ => (0..slots.len())
            .min_by_key(|&i| (slots[i].used, i))
            .unwrap_or(0),
    }
}

/// Keeps the head of `cache` that `tokens` starts with (at least the last prompt token is
/// decoded again, for its logits) and drops the rest from sequence `seq_id`; returns how many
/// tokens were kept.
pub(super) fn reuse_prefix(
    ctx: &mut LlamaContext<'_>,
    cache: &mut KvCache,
    seq_id: u32,
    tokens: &[LlamaToken],
) -> usize {
    let mut keep = crate::text::common_affixes(&cache.tokens, tokens).0;
    keep = keep.min(tokens.len() - 1);
    let removed = ctx
        .clear_kv_cache_seq(Some(seq_id), u32::try_from(keep).ok(), None)
        .unwrap_or(false);
    if !removed {
        let _ = ctx.clear_kv_cache_seq(Some(seq_id), None, None);
        keep = 0;
    }
    cache.tokens.truncate(keep);
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_prompt_keeps_its_own_slot() {
        let toks = |v: std::ops::Range<i32>| v.map(LlamaToken::new).collect::<Vec<_>>();
        let slot = |tokens: Vec<LlamaToken>, used: u64| KvCache { tokens, used };
        // Empty slots: the first (least recently used, lowest index).
        let empty = [KvCache::default(), KvCache::default(), KvCache::default()];
        assert_eq!(choose_slot(&empty, &toks(0..100)), 0);
        // The critic's head is in slot 0; another critic prompt reuses it.
        let one = [
            slot(toks(0..100), 1),
            KvCache::default(),
            KvCache::default(),
        ];
        let mut critic = toks(0..80);
        critic.extend(toks(500..520));
        assert_eq!(choose_slot(&one, &critic), 0);
        // A prompt sharing only a few template tokens takes the least recently used slot.
        let mut reviser = toks(0..5);
        reviser.extend(toks(900..1000));
        assert_eq!(choose_slot(&one, &reviser), 1);
        let two = [
            slot(toks(0..100), 1),
            slot(reviser.clone(), 2),
            KvCache::default(),
        ];
        let mut judge = toks(0..5);
        judge.extend(toks(2000..2100));
        assert_eq!(
            choose_slot(&two, &judge),
            2,
            "the judge does not evict the critic"
        );
        // A prompt that continues a slot's whole (short) content goes on there.
        let short = [
            slot(toks(0..10), 1),
            slot(toks(50..150), 2),
            KvCache::default(),
        ];
        assert_eq!(choose_slot(&short, &toks(0..100)), 0);
        let three = [slot(toks(0..100), 3), slot(reviser, 2), slot(judge, 4)];
        assert_eq!(
            choose_slot(&three, &toks(7000..7100)),
            1,
            "least recently used"
        );
    }
}

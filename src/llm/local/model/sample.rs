//! Sampling one token from a context's logits, under a grammar or not, and the margin of the
//! best logit over the runner-up.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;

/// How far the best logit at `idx` is ahead of the runner-up.
pub(super) fn margin(ctx: &LlamaContext<'_>, idx: i32) -> f32 {
    let (mut first, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &l in ctx.get_logits_ith(idx) {
        if l > first {
            second = first;
            first = l;
        } else if l > second {
            second = l;
        }
    }
    first - second
}

/// Samples one token. Under a grammar the token is drawn freely first and checked against the
/// grammar, and only when it does not fit is the grammar applied to the whole vocabulary (as
/// llama.cpp's own server does: a full grammar pass costs far more than one check).
pub(super) fn sample(
    ctx: &LlamaContext<'_>,
    idx: i32,
    sampler: &mut LlamaSampler,
    grammar: Option<&mut LlamaSampler>,
) -> LlamaToken {
    let token = sampler.sample(ctx, idx);
    let Some(grammar) = grammar else {
        return token;
    };
    let mut one = LlamaTokenDataArray::from_iter([LlamaTokenData::new(token, 1.0, 0.0)], false);
    grammar.apply(&mut one);
    let fits = one.data.first().is_some_and(|d| d.logit().is_finite());
    let token = if fits {
        token
    } else {
        let mut all = ctx.token_data_array_ith(idx);
        grammar.apply(&mut all);
        sampler.apply(&mut all);
        all.selected_token().unwrap_or(token)
    };
    grammar.accept(token);
    token
}

//! The critic: asks the model about one version of the selection, reads its findings as they
//! stream, places each on the text it quotes (`anchor`), caps the severity of what no outside
//! fact backs, and scores the findings again in the optional reflection pass.

use std::ops::Range;

use serde_json::json;

use super::anchor::{self, AnchorError, Selection};
use super::critique::{self, RawFinding};
use super::note::Note;
use super::outcome::{EngineError, Event, Finding, ReviewInput, ReviewOutcome, Withheld};
use super::run::{Engine, Run};
use crate::document::line_span;
use crate::llm::{ChatRequest, ChatResponse, JsonSchema, Message, ProviderError};
use crate::secrets::Vault;
pub use crate::text::number_lines;

/// At most this many self-consistency samples per critique.
const MAX_SAMPLES: u32 = 9;

/// Self-consistency: the findings at least `need` samples place on overlapping lines, each
/// once (the first sample's wording), in the order the samples gave them. The other counts
/// are the first sample's.
pub(crate) fn vote(samples: Vec<Critiqued>, sel: &Selection<'_>, need: usize) -> Critiqued {
    let lines: Vec<Vec<(usize, usize)>> = samples
        .iter()
        .map(|c| c.shown.iter().map(|(_, r)| sel.lines_of(r)).collect())
        .collect();
    let overlap = |a: (usize, usize), b: (usize, usize)| a.0 <= b.1 && b.0 <= a.1;
    let mut kept: Vec<(RawFinding, Range<usize>)> = Vec::new();
    let mut kept_lines: Vec<(usize, usize)> = Vec::new();
    let mut rejected_lines: Vec<(usize, usize)> = Vec::new();
    for (c, ls) in samples.iter().zip(&lines) {
        for ((f, r), l) in c.shown.iter().zip(ls) {
            if kept_lines.iter().any(|k| overlap(*k, *l)) {
                continue;
            }
            let votes = lines
                .iter()
                .filter(|other| other.iter().any(|o| overlap(*o, *l)))
                .count();
            if votes >= need {
                kept.push((f.clone(), r.clone()));
                kept_lines.push(*l);
            } else if !rejected_lines.iter().any(|k| overlap(*k, *l)) {
                rejected_lines.push(*l);
            }
        }
    }
    let not_agreed = rejected_lines
        .iter()
        .filter(|l| !kept_lines.iter().any(|k| overlap(*k, **l)))
        .count();
    let mut first = samples.into_iter().next().unwrap_or_default();
    first.shown = kept;
    first.withheld.not_agreed = not_agreed;
    first
}

/// One version's critique, anchored in that version's selection text.
#[derive(Default)]
pub(crate) struct Critiqued {
    /// Findings with their char range in the version's selection text.
    pub(crate) shown: Vec<(RawFinding, Range<usize>)>,
    /// How many findings are not shown, by reason.
    pub(crate) withheld: Withheld,
    /// Findings below `loop.min_confidence`.
    pub(crate) low_confidence: Vec<RawFinding>,
}

/// The critic's reply as it streamed.
struct Streamed {
    /// The response (`None`: the repetition guard stopped the model).
    resp: Option<ChatResponse>,
    /// The findings complete when the stream ended.
    complete: Vec<RawFinding>,
}

/// The findings of a streamed critique and how many the repetition cut took out: the reply
/// parsed or, when it was cut off at the token limit or stopped by the repetition guard, the
/// findings that were complete.
fn read_streamed(
    Streamed { resp, complete }: Streamed,
    out: &mut ReviewOutcome,
) -> Result<(Vec<RawFinding>, usize), EngineError> {
    let Some(resp) = resp else {
        let (raw, repeated) = critique::cut_repetition(complete);
        // The repeat that stopped the model (what it would have said after is unknown).
        return Ok((raw, repeated.saturating_add(1)));
    };
    tracing::debug!(reply = %resp.content, "critique reply");
    let raw = match critique::parse(&resp.content) {
        Ok((raw, malformed)) => {
            if malformed > 0 {
                tracing::info!(malformed, "critique items without message or line skipped");
            }
            raw
        }
        // Cut off at the token limit: the findings that were complete still count.
        Err(_) if resp.truncated => {
            out.notes.push(Note::CritiqueCutOff {
                tokens: resp.usage.output_tokens,
                kept: complete.len(),
            });
            complete
        }
        Err(e) => return Err(e.into()),
    };
    Ok(critique::cut_repetition(raw))
}

impl Engine<'_> {
    /// The critic's system prompt. The built-in template uses none of the per-review values,
    /// so it is the same for every review: a stable prompt prefix that the embedded model (and
    /// a server's prefix cache) processes once.
    pub fn critic_system(
        &self,
        language: &str,
        first_line: usize,
        last_line: usize,
    ) -> Result<String, crate::prompts::PromptError> {
        let disabled = &self.config.disabled_principles;
        let template = if self.compact_prompts() {
            "critique_system_compact.md"
        } else {
            "critique_system.md"
        };
        self.prompts.render(
            template,
            json!({
                "language": language,
                "principles": self.prompts.principles_without(disabled),
                "principles_short": self.prompts.principles_short(disabled),
                "principle_ids": self.prompts.principle_ids().join(", "),
                "first_line": first_line,
                "last_line": last_line,
            }),
        )
    }

    /// The critique's JSON schema. With the compact profile, `quote` may only be one of the
    /// selection's lines (as sent, so redacted): small models otherwise quote their message.
    fn critique_schema(&self, numbered: &str) -> serde_json::Value {
        const MAX_QUOTABLE_LINES: usize = 400;
        if !self.compact_prompts() {
            return critique::schema();
        }
        match critique::quotable_lines(numbered, |_| true, MAX_QUOTABLE_LINES) {
            Some(lines) => critique::schema_quoting(&lines),
            None => critique::schema(),
        }
    }

    /// `loop.prompt_profile`: `compact` for small models (`auto`), or as configured.
    pub(crate) fn compact_prompts(&self) -> bool {
        match self.config.prompt_profile.as_str() {
            "compact" => true,
            "full" => false,
            _ => self.critic.is_small_model(),
        }
    }

    /// Asks the critic about one version of the selection and anchors what it says. With
    /// `stream_base` (the selection's char offset in the document), each finding is reported
    /// as soon as the stream completes it.
    pub(crate) async fn critique(
        &self,
        input: &ReviewInput,
        selection: &str,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        progress: &mut (dyn FnMut(Event) + Send),
        stream_base: Option<usize>,
    ) -> Result<Critiqued, EngineError> {
        let sel = Selection::new(selection, input.first_line);
        let req = self.critique_request(input, selection, &sel, run)?;
        let streamed = self
            .stream_critique(&req, &sel, run, out, progress, stream_base)
            .await?;
        let (raw, repeated) = read_streamed(streamed, out)?;
        let backing = (run.fact_lines.as_slice(), run.check_failed());
        Ok(self.placed(raw, repeated, &sel, &*run.vault, backing))
    }

    /// The critic's request for one version of the selection: its lines numbered, the context
    /// around them, the facts and what this codebase does not want (all redacted when
    /// `privacy.redact_secrets`).
    fn critique_request(
        &self,
        input: &ReviewInput,
        selection: &str,
        sel: &Selection<'_>,
        run: &mut Run<'_>,
    ) -> Result<ChatRequest, EngineError> {
        let vault = &mut *run.vault;
        let facts: Vec<String> = if self.redact_secrets {
            run.facts.iter().map(|f| vault.redact(f)).collect()
        } else {
            run.facts.clone()
        };
        let unwanted: Vec<String> = if self.redact_secrets {
            input.unwanted.iter().map(|u| vault.redact(u)).collect()
        } else {
            input.unwanted.clone()
        };
        let last_line = input.first_line + sel.line_count().max(1) - 1;
        let mut ctx = self.context(input, selection, sel.line_count());
        let mut numbered = number_lines(selection, input.first_line);
        if self.redact_secrets {
            // As one text: a key block cut by the selection's edge is found whole.
            let mut parts = vault.redact_parts(&[&ctx.0, &numbered, &ctx.1]).into_iter();
            ctx.0 = parts.next().unwrap_or_default();
            numbered = parts.next().unwrap_or_default();
            ctx.1 = parts.next().unwrap_or_default();
        }
        let schema = self.critique_schema(&numbered);
        let system = self.critic_system(&input.language, input.first_line + 1, last_line + 1)?;
        let user = self.prompts.render(
            "critique_user.md",
            json!({
                "path": input.path,
                "language": input.language,
                "context_before": ctx.0,
                "selection": numbered,
                "context_after": ctx.1,
                "first_line": input.first_line + 1,
                "last_line": last_line + 1,
                "facts": facts,
                "unwanted": unwanted,
            }),
        )?;
        Ok(ChatRequest {
            messages: vec![Message::system(system), Message::user(user)],
            json_schema: Some(JsonSchema {
                name: "critique",
                schema,
            }),
            temperature: run.temperature,
        })
    }

    /// The critic's call, its findings read as the reply streams: each placed one reported
    /// at once (with `stream_base`), and the first repeat stops the model (the repetition
    /// guard; what came before counts).
    async fn stream_critique(
        &self,
        req: &ChatRequest,
        sel: &Selection<'_>,
        run: &Run<'_>,
        out: &mut ReviewOutcome,
        progress: &mut (dyn FnMut(Event) + Send),
        stream_base: Option<usize>,
    ) -> Result<Streamed, EngineError> {
        let vault: &Vault = &*run.vault;
        let backing = (run.fact_lines.as_slice(), run.check_failed());
        let mut scanner = critique::FindingScanner::default();
        let mut shown_early = 0;
        let mut streamed_chars = 0usize;
        let mut last_reported = (0usize, 0u64);
        let mut complete: Vec<RawFinding> = Vec::new();
        let stop = run.cancel.child_token();
        let mut repeating = false;
        let mut on_delta = |delta: &str| {
            streamed_chars += delta.len();
            for mut f in scanner.push(delta) {
                if repeating || complete.iter().any(|e| critique::is_repeat(e, &f)) {
                    repeating = true;
                    stop.cancel();
                    continue;
                }
                complete.push(f.clone());
                let Some(base) = stream_base else { continue };
                f.quote = vault.restore(&f.quote);
                if let Some((f, r)) = self.place(sel, f, backing) {
                    progress(Event::Finding(Finding {
                        id: shown_early,
                        raw: f,
                        range: base + r.start..base + r.end,
                        evidence: None,
                    }));
                    shown_early += 1;
                }
            }
            let now = (scanner.count(), (streamed_chars as u64).div_ceil(4));
            if now.0 != last_reported.0 || now.1 >= last_reported.1 + 64 {
                last_reported = now;
                progress(Event::Streaming {
                    findings: now.0,
                    tokens: now.1,
                });
            }
        };
        let result = Self::call(self.critic, req, out, &stop, &mut on_delta).await;
        match result {
            // Stopped by the repetition guard, not by the user: what came before counts.
            Err(ProviderError::Cancelled) if repeating && !run.cancel.is_cancelled() => {
                out.notes.push(Note::CritiqueRepeating {
                    kept: complete.len(),
                });
                Ok(Streamed {
                    resp: None,
                    complete,
                })
            }
            r => Ok(Streamed {
                resp: Some(r?),
                complete,
            }),
        }
    }

    /// The critique of one version from its findings: each placed on the text it quotes (or
    /// counted where it is not shown), the most severe first, at most `loop.max_findings`.
    fn placed(
        &self,
        raw: Vec<RawFinding>,
        repeated: usize,
        sel: &Selection<'_>,
        vault: &Vault,
        backing: (&[usize], bool),
    ) -> Critiqued {
        let mut c = Critiqued {
            withheld: Withheld {
                repeated,
                ..Withheld::default()
            },
            ..Critiqued::default()
        };
        for mut f in raw {
            if !self.prompts.principle_ids().contains(&f.principle) {
                f.principle = "other".to_owned();
            }
            if self.config.disabled_principles.contains(&f.principle) {
                continue;
            }
            f.quote = vault.restore(&f.quote);
            if anchor::is_the_message(&f.quote, &f.message) {
                c.withheld.quote_is_message += 1;
                continue;
            }
            match sel.anchor(f.start_line, f.end_line, &f.quote) {
                Err(AnchorError::OutsideSelection) => c.withheld.outside_selection += 1,
                Err(AnchorError::NotFound) => c.withheld.unanchored += 1,
                Ok(_) if f.confidence < self.config.min_confidence => c.low_confidence.push(f),
                Ok(r) => {
                    self.cap_severity(&mut f, sel, &r, backing);
                    c.shown.push((f, r));
                }
            }
        }
        // The most severe first (stable: the model's order among equals), at most the cap.
        c.shown.sort_by_key(|(f, _)| f.severity);
        let cap = self.config.max_findings.max(1);
        if c.shown.len() > cap {
            c.withheld.over_limit = c.shown.len() - cap;
            c.shown.truncate(cap);
        }
        c
    }

    /// The critique of the original: one greedy call, or with `loop.samples = k` > 1, `k`
    /// calls at `loop.sample_temperature` and a vote (see [`vote`]). Samples are not streamed:
    /// a finding is known to be kept only once every sample is in.
    pub(crate) async fn critique_voted(
        &self,
        input: &ReviewInput,
        selection: &str,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        progress: &mut (dyn FnMut(Event) + Send),
        stream_base: Option<usize>,
    ) -> Result<Critiqued, EngineError> {
        let k = self.config.samples.clamp(1, MAX_SAMPLES);
        if k == 1 {
            return self
                .critique(input, selection, run, out, progress, stream_base)
                .await;
        }
        let mut samples = Vec::new();
        run.temperature = Some(self.config.sample_temperature.clamp(0.0, 2.0));
        for _ in 0..k {
            let sample = self
                .critique(input, selection, run, out, progress, None)
                .await;
            match sample {
                Ok(c) => samples.push(c),
                Err(e) => {
                    run.temperature = None;
                    return Err(e);
                }
            }
        }
        run.temperature = None;
        let sel = Selection::new(selection, input.first_line);
        Ok(vote(
            samples,
            &sel,
            usize::try_from(k.div_ceil(2)).unwrap_or(1),
        ))
    }

    /// An error the model asserts stays an error only when something outside the model backs
    /// it (an editor diagnostic on its lines, or `verify.command` failing on the original);
    /// otherwise it is shown at `loop.max_unbacked_severity` at most.
    pub(crate) fn cap_severity(
        &self,
        f: &mut RawFinding,
        sel: &Selection<'_>,
        r: &Range<usize>,
        (fact_lines, command_failed): (&[usize], bool),
    ) {
        let cap = critique::Severity::parse(&self.config.max_unbacked_severity);
        if f.severity >= cap || command_failed {
            return;
        }
        let (a, b) = sel.lines_of(r);
        let (first, last) = (sel.first_line() + a, sel.first_line() + b);
        if !fact_lines.iter().any(|l| (first..=last).contains(l)) {
            f.severity = cap;
        }
    }

    /// A finding as it would be shown (principle normalised, anchored, confident enough), or
    /// `None` when it would not be.
    fn place(
        &self,
        sel: &Selection<'_>,
        mut f: RawFinding,
        backing: (&[usize], bool),
    ) -> Option<(RawFinding, Range<usize>)> {
        if !self.prompts.principle_ids().contains(&f.principle) {
            f.principle = "other".to_owned();
        }
        if f.confidence < self.config.min_confidence
            || self.config.disabled_principles.contains(&f.principle)
            || anchor::is_the_message(&f.quote, &f.message)
        {
            return None;
        }
        let r = sel.anchor(f.start_line, f.end_line, &f.quote).ok()?;
        self.cap_severity(&mut f, sel, &r, backing);
        Some((f, r))
    }

    /// The reflection pass: scores each finding; returns which to keep.
    pub(crate) async fn reflect(
        &self,
        input: &ReviewInput,
        selection: &str,
        first: &Critiqued,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
    ) -> Result<Vec<bool>, EngineError> {
        let mut numbered = number_lines(selection, input.first_line);
        let mut findings: Vec<RawFinding> = first.shown.iter().map(|(f, _)| f.clone()).collect();
        if self.redact_secrets {
            numbered = run.vault.redact(&numbered);
            for f in &mut findings {
                f.quote = run.vault.redact(&f.quote);
            }
        }
        let line_count = Selection::new(selection, input.first_line)
            .line_count()
            .max(1);
        let system = self
            .prompts
            .render("reflect_system.md", json!({"language": input.language}))?;
        let user = self.prompts.render(
            "reflect_user.md",
            json!({
                "path": input.path,
                "language": input.language,
                "selection": numbered,
                "first_line": input.first_line + 1,
                "last_line": input.first_line + line_count,
                "findings": findings,
            }),
        )?;
        let req = ChatRequest {
            messages: vec![Message::system(system), Message::user(user)],
            json_schema: Some(JsonSchema {
                name: "scores",
                schema: json!({"type": "object", "properties": {"scores": {"type": "array", "items": {"type": "object", "properties": {"index": {"type": "integer"}, "validity": {"type": "integer"}, "importance": {"type": "integer"}}, "required": ["index", "validity", "importance"]}}}, "required": ["scores"]}),
            }),
            temperature: None,
        };
        let resp = Self::call(self.critic, &req, out, run.cancel, &mut |_| {}).await?;
        let scores = critique::parse_scores(&resp.content)?;
        let min = self.config.reflect_min_score;
        Ok((0..findings.len())
            .map(|i| {
                scores
                    .iter()
                    .find(|(idx, _, _)| *idx == i)
                    .is_none_or(|(_, v, imp)| (*v).min(*imp) >= min)
            })
            .collect())
    }

    /// Numbered context lines before and after a version of the selection.
    pub(crate) fn context(
        &self,
        input: &ReviewInput,
        selection: &str,
        sel_lines: usize,
    ) -> (String, String) {
        let n = self.config.context_lines;
        let rope = &input.text;
        let total = rope.len_lines();
        let before_first = input.first_line.saturating_sub(n);
        let before = if input.first_line > 0 && n > 0 {
            let span = line_span(rope, before_first, input.first_line - 1);
            number_lines(&rope.slice(span).to_string(), before_first)
        } else {
            String::new()
        };
        let after_first = input.last_line + 1;
        let has_after = after_first < total && rope.line(after_first).len_chars() > 0;
        let after = if has_after && n > 0 && selection.ends_with(['\n', '\r']) {
            let span = line_span(rope, after_first, (after_first + n - 1).min(total - 1));
            // After a revision the following lines are numbered as they would then be.
            let shifted = input.first_line + sel_lines;
            number_lines(&rope.slice(span).to_string(), shifted)
        } else {
            String::new()
        };
        (before, after)
    }
}

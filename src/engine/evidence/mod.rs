//! The evidence stage both strategies share: the loop makes evidence of its own where the user
//! has no tests. The selected functions' doc examples run on the original (a failing one is a
//! fact as strong as a failing test); the model proposes inputs, edge cases first; the original
//! and every candidate version run on them in the sandbox ([`crate::probe`]); a candidate that
//! changes an outcome is a fix only where the function's intent (its doc, name and signature,
//! asked without the body) agrees with it and not with the original, and a change nothing
//! backs is refused as drift. Severity then follows the evidence ([`apply_severity`]).
//!
//! The questions and their parsers are in [`ask`]; the decision, pure, in [`decide`].

pub(crate) mod ask;
pub(crate) mod decide;
pub(crate) mod seeds;

use decide::{Class, Intent, Verdict};

use super::critique::Severity;
use super::note::{Attempt, Note};
use super::outcome::{Event, Evidence, ReviewOutcome, Stage, Stop};
use super::run::{Engine, ProbePolicy, Run, Subject};
use crate::llm::ProviderError;
use crate::probe::regression::regression_test;
use crate::probe::{self, Call, Language, Limits, ProbeError, Report, Target};

/// At most this many differing inputs are put to the intent.
const MAX_QUESTIONS: usize = 3;

/// What the evidence stage knows of one review's functions.
pub(crate) struct Probing {
    language: Language,
    /// The whole file as reviewed, and the selection's byte range in it (made once per review).
    file: String,
    selection: std::ops::Range<usize>,
    /// The file's library crate, for the crate route (looked up once per review).
    krate: Option<probe::Crate>,
    targets: Vec<Target>,
    /// Doc examples (calls with an expected value).
    examples: Vec<Call>,
    /// The model's inputs, asked once, when there is a candidate to weigh.
    inputs: Option<Vec<Call>>,
    /// The first doc example that fails on the original, as the evidence's words.
    failing_example: Option<String>,
    /// The chosen version's counterexamples, one per function it fixes.
    chosen: Vec<super::outcome::Counterexample>,
}

impl Probing {
    /// What backs a finding on file line `line` (zero-based) of a version backed by
    /// `evidence`: a counterexample only when the function the line is in has one (a hunk in
    /// another function is not backed by it); other kinds as they are.
    pub(crate) fn evidence_at(
        &self,
        at: &Subject<'_>,
        line: usize,
        evidence: &Evidence,
    ) -> Option<Evidence> {
        if !matches!(evidence, Evidence::Counterexample(_)) {
            return Some(evidence.clone());
        }
        let function = self.function_at(at, line)?;
        self.chosen
            .iter()
            .find(|c| c.function == function)
            .map(|c| Evidence::Counterexample(c.clone()))
    }

    /// The target whose definition holds file line `line`: the last one starting at or before
    /// it (each starts at the first line of its signature in the selection).
    fn function_at(&self, at: &Subject<'_>, line: usize) -> Option<String> {
        let lines: Vec<&str> = at.original.lines().collect();
        let mut found = None;
        for t in &self.targets {
            let head = t.signature.lines().next().unwrap_or("").trim();
            let Some(i) = lines
                .iter()
                .position(|l| !head.is_empty() && l.trim().starts_with(head))
            else {
                continue;
            };
            if at.input.first_line + i <= line {
                found = Some(t.name.clone());
            }
        }
        found
    }
}

/// What weighing the candidates came to.
pub(crate) enum Weighed {
    /// No probe ran (the note says why): the candidates stand as they are.
    Unprobed,
    /// The candidate to offer, and what backs it.
    Chosen(usize, Evidence),
    /// Every candidate changes behaviour where nothing backs it (or breaks): none is offered.
    NoneSupported,
}

/// A candidate version to weigh: its text, and whether the failing `verify.command` passes on
/// it (executed evidence on its own).
pub(crate) struct Weighable {
    pub(crate) text: String,
    pub(crate) passes_failing_check: bool,
    pub(crate) attempt: Attempt,
}

impl Engine<'_> {
    /// The functions a harness can call, and their doc examples run on the original (failing
    /// ones become facts for the fixer and the critic). `None` (with a note saying why) when
    /// nothing can be probed.
    pub(crate) async fn prepare_probes(
        &self,
        at: &Subject<'_>,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
        progress: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Option<Probing>, Stop> {
        let why_not = match &self.probes {
            ProbePolicy::Off => return Ok(None),
            ProbePolicy::NotAllowed(why) => Some(why.clone()),
            ProbePolicy::Allowed => None,
        };
        let found = match (why_not, Language::of(&at.input.language)) {
            (Some(why), _) => Err(why),
            (None, None) => Err(format!(
                "there is no probe harness for {}",
                at.input.language
            )),
            (None, Some(language)) => {
                let (file, range) = file_and_range(at);
                probe::target::targets(language, &file, range.clone())
                    .map(|t| (language, t, file, range))
            }
        };
        let (language, targets, file, selection) = match found {
            Ok(found) => found,
            Err(why) => {
                no_probes(out, why);
                return Ok(None);
            }
        };
        let examples: Vec<Call> = targets.iter().flat_map(|t| t.examples.clone()).collect();
        let mut probing = Probing {
            language,
            krate: self.krate(at, language),
            file,
            selection,
            targets,
            examples,
            inputs: None,
            failing_example: None,
            chosen: Vec::new(),
        };
        if !probing.examples.is_empty() {
            progress(Event::Stage(Stage::Probe));
            self.run_examples(at, &mut probing, run, out).await?;
        }
        Ok(Some(probing))
    }

    /// The doc examples on the original: failing ones become facts (as strong as a failing test).
    async fn run_examples(
        &self,
        at: &Subject<'_>,
        probing: &mut Probing,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
    ) -> Result<(), Stop> {
        let versions = [at.original.to_owned()];
        let report = match self
            .probe(probing, &versions, &probing.examples, run)
            .await?
        {
            Ok(r) => r,
            Err(why) => {
                no_probes(out, why);
                return Ok(());
            }
        };
        let matches = report.matches.first().cloned().unwrap_or_default();
        let outcomes = report.outcomes.first().cloned().unwrap_or_default();
        let ran = matches.iter().filter(|m| m.is_some()).count();
        out.evidence.doc_examples = ran;
        let mut failing = 0;
        for (i, call) in probing.examples.iter().enumerate() {
            if matches.get(i).copied().flatten() != Some(false) {
                continue;
            }
            failing += 1;
            let got = outcomes
                .get(i)
                .map(probe::Outcome::show)
                .unwrap_or_default();
            let expected = call.expected.clone().unwrap_or_default();
            let fact = format!(
                "the doc example `{}` should give `{expected}` but the code gives `{got}`",
                call.show()
            );
            run.facts.push(run.vault.redact(&fact));
            probing
                .failing_example
                .get_or_insert_with(|| format!("the doc example `{} == {expected}`", call.show()));
        }
        out.evidence.doc_examples_failing = failing;
        if failing > 0 {
            run.examples_failed = true;
            out.notes.push(Note::DocExamplesFail { failing, of: ran });
        }
        Ok(())
    }

    /// Weighs candidate versions by what they do (see the module's doc). Drift is noted; the
    /// outcome's evidence summary is filled.
    pub(crate) async fn weigh_candidates(
        &self,
        at: &Subject<'_>,
        probing: &mut Probing,
        candidates: &[Weighable],
        run: &mut Run<'_>,
        (out, progress): (&mut ReviewOutcome, &mut (dyn FnMut(Event) + Send)),
    ) -> Result<Weighed, Stop> {
        let inputs = self.inputs(at, probing, run, out).await?;
        let mut calls = inputs.clone();
        calls.extend(probing.examples.iter().cloned());
        if calls.is_empty() {
            no_probes(
                out,
                "the model proposed no inputs the harness could use".to_owned(),
            );
            return Ok(Weighed::Unprobed);
        }
        progress(Event::Stage(Stage::Probe));
        let mut versions = vec![at.original.to_owned()];
        versions.extend(candidates.iter().map(|c| c.text.clone()));
        let report = match self.probe(probing, &versions, &calls, run).await? {
            Ok(r) => r,
            Err(why) => {
                no_probes(out, why);
                return Ok(Weighed::Unprobed);
            }
        };
        summarise(out, &report, inputs.len(), candidates.len());
        if !report
            .outcomes
            .first()
            .is_some_and(|o| o.iter().any(probe::Outcome::ran))
        {
            let why = report.dropped.first().map_or_else(
                || "no input could be run".to_owned(),
                |(_, why)| format!("no input could be run ({why})"),
            );
            no_probes(out, why);
            return Ok(Weighed::Unprobed);
        }
        let checks: Vec<bool> = candidates.iter().map(|c| c.passes_failing_check).collect();
        let classes = decide::classify(&report, inputs.len(), &checks);
        let asked = self
            .ask_intent(at, probing, &classes, &calls, run, out)
            .await?;
        let second = match &asked {
            Some(asked) => {
                let asked_calls: Vec<Call> = asked.iter().map(|(_, c)| c.clone()).collect();
                self.probe(probing, &versions, &asked_calls, run)
                    .await?
                    .ok()
            }
            None => None,
        };
        let said_by = said_by(&probing.targets);
        let intent = match (&asked, &second) {
            (Some(asked), Some(r)) => Some(Intent {
                asked,
                matches: &r.matches,
                said_by: &said_by,
            }),
            _ => None,
        };
        let executed = probing
            .failing_example
            .clone()
            .or_else(|| {
                self.command
                    .map(|c| format!("verify.command `{}`", c.command))
            })
            .unwrap_or_else(|| "the check".to_owned());
        let verdicts = decide::verdicts(&classes, &report, &calls, intent.as_ref(), &executed);
        note_drift(out, &verdicts, candidates);
        Ok(match decide::choose(&verdicts, &report, inputs.len()) {
            Some((i, evidence)) => {
                if let Some(Verdict::Fix(all)) = verdicts.get(i) {
                    probing.chosen.clone_from(all);
                }
                let (agree, behaviours) = decide::agreement(&report, inputs.len(), i);
                out.evidence.behaviours = behaviours;
                if candidates.len() > 1 {
                    out.notes.push(Note::FixesAgree {
                        agree,
                        of: candidates.len(),
                    });
                }
                match &evidence {
                    Evidence::Counterexample(c) => out.evidence.counterexample = Some(c.clone()),
                    Evidence::Unchanged { inputs } => {
                        out.notes.push(Note::BehaviourUnchanged { inputs: *inputs });
                    }
                    Evidence::Executed { .. } => {}
                }
                Weighed::Chosen(i, evidence)
            }
            None => Weighed::NoneSupported,
        })
    }

    /// The model's inputs for the functions, asked once per review.
    async fn inputs(
        &self,
        at: &Subject<'_>,
        probing: &mut Probing,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
    ) -> Result<Vec<Call>, Stop> {
        if let Some(inputs) = &probing.inputs {
            return Ok(inputs.clone());
        }
        let max = self.config.probe_inputs.clamp(1, 20);
        let selection = if self.redact_secrets {
            run.vault.redact(at.original)
        } else {
            at.original.to_owned()
        };
        let req = match ask::inputs_request(
            self.prompts,
            (&at.input.path, &at.input.language),
            &probing.targets,
            &selection,
            max,
        ) {
            Ok(r) => r,
            Err(e) => {
                no_probes(out, e.to_string());
                probing.inputs = Some(Vec::new());
                return Ok(Vec::new());
            }
        };
        let proposed = match Self::call(self.critic, &req, out, run.cancel, &mut |_| {}).await {
            Ok(r) => ask::parse_inputs(&r.content, &probing.targets, max as usize),
            Err(ProviderError::Cancelled) => return Err(Stop),
            Err(e) => {
                tracing::info!("the prober's call failed: {e}");
                Vec::new()
            }
        };
        // Edge cases from the parameter types first, then the model's inputs fitted to them.
        let mut inputs: Vec<Call> = Vec::new();
        for target in &probing.targets {
            let theirs = proposed
                .iter()
                .filter(|c| c.function == target.name)
                .map(|c| Call {
                    args: seeds::repair(probing.language, target, &c.args),
                    ..c.clone()
                });
            for call in seeds::seeds(probing.language, target)
                .into_iter()
                .chain(theirs)
            {
                if !inputs
                    .iter()
                    .any(|c| c.function == call.function && c.args == call.args)
                {
                    inputs.push(call);
                }
            }
        }
        probing.inputs = Some(inputs.clone());
        Ok(inputs)
    }

    /// One intent question for the inputs candidates change: what should each call return, by
    /// the functions' docs, names and signatures. The answers as calls with expected values
    /// (input index, call); `None` when nothing was asked or answered.
    async fn ask_intent(
        &self,
        at: &Subject<'_>,
        probing: &Probing,
        classes: &[Class],
        calls: &[Call],
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
    ) -> Result<Option<Vec<(usize, Call)>>, Stop> {
        let ids = decide::questions(classes, MAX_QUESTIONS);
        if ids.is_empty() {
            return Ok(None);
        }
        let shown: Vec<String> = ids
            .iter()
            .filter_map(|&i| calls.get(i))
            .map(|c| run.vault.redact(&c.show()))
            .collect();
        let targets: Vec<Target> = probing
            .targets
            .iter()
            .map(|t| Target {
                doc: run.vault.redact(&t.doc),
                ..t.clone()
            })
            .collect();
        let Ok(req) = ask::intent_request(self.prompts, &at.input.language, &targets, &shown)
        else {
            return Ok(None);
        };
        let answers = match Self::call(self.critic, &req, out, run.cancel, &mut |_| {}).await {
            Ok(r) => ask::parse_intent(&r.content, ids.len()),
            Err(ProviderError::Cancelled) => return Err(Stop),
            Err(e) => {
                tracing::info!("the intent call failed: {e}");
                return Ok(None);
            }
        };
        let asked: Vec<(usize, Call)> = ids
            .iter()
            .zip(answers)
            .filter_map(|(&i, said)| {
                let mut call = calls.get(i)?.clone();
                call.expected = Some(run.vault.restore(&said?));
                Some((i, call))
            })
            .collect();
        Ok((!asked.is_empty()).then_some(asked))
    }

    /// One probe run of `calls` on `versions` (`Err`: why no probe ran; cancelled: `Stop`).
    async fn probe(
        &self,
        probing: &Probing,
        versions: &[String],
        calls: &[Call],
        run: &mut Run<'_>,
    ) -> Result<Result<Report, String>, Stop> {
        let req = probe::Request {
            language: probing.language,
            file: &probing.file,
            selection: probing.selection.clone(),
            versions,
            calls,
            limits: Limits::default(),
            krate: probing.krate.clone(),
        };
        match probe::runner::run(&req, run.cancel).await {
            Ok(r) => {
                tracing::debug!(?calls, report = ?r, "probe run");
                Ok(Ok(r))
            }
            Err(ProbeError::Cancelled) => Err(Stop),
            Err(e) => Ok(Err(e.to_string())),
        }
    }
}

impl Engine<'_> {
    /// The library crate of the reviewed file on disk, for a Rust probe (see
    /// [`probe::cargo::find_crate`]).
    fn krate(&self, at: &Subject<'_>, language: Language) -> Option<probe::Crate> {
        if language != Language::Rust {
            return None;
        }
        probe::cargo::find_crate(at.input.file.as_deref()?, self.workspace)
    }

    /// With a counterexample: checks that it, as a regression test in the file's own style,
    /// fails on the original and passes on `revised` (the code action offers it only then).
    pub(crate) async fn check_regression_test(
        &self,
        at: &Subject<'_>,
        revised: &str,
        run: &mut Run<'_>,
        out: &mut ReviewOutcome,
    ) -> Result<(), Stop> {
        let (Some(c), Some(language)) = (
            out.evidence.counterexample.clone(),
            Language::of(&at.input.language),
        ) else {
            return Ok(());
        };
        let call = c.expected_call();
        let (file, range) = file_and_range(at);
        let mut revised_file = file.clone();
        revised_file.replace_range(range, revised);
        let (Some(t0), Some(t1)) = (
            regression_test(language, &file, &call),
            regression_test(language, &revised_file, &call),
        ) else {
            return Ok(());
        };
        let (with0, with1) = (t0.insert_into(&file), t1.insert_into(&revised_file));
        match probe::regression::verify(
            language,
            &with0,
            &with1,
            &t0,
            self.krate(at, language).as_ref(),
            Limits::default(),
            run.cancel,
        )
        .await
        {
            Ok((false, true)) => out.evidence.regression_test_verified = true,
            Ok(other) => {
                tracing::info!("the regression test does not tell the versions apart: {other:?}")
            }
            Err(ProbeError::Cancelled) => return Err(Stop),
            Err(e) => tracing::info!("the regression test could not be checked: {e}"),
        }
        Ok(())
    }
}

/// The whole file and the selection's byte range in it.
fn file_and_range(at: &Subject<'_>) -> (String, std::ops::Range<usize>) {
    let text = &at.input.text;
    let region = at.input.region();
    let start = text.char_to_byte(region.start.min(text.len_chars()));
    let end = text.char_to_byte(region.end.min(text.len_chars()));
    (text.to_string(), start..end)
}

/// Who the intent speaks for: the doc when the functions have one, else their names.
fn said_by(targets: &[Target]) -> String {
    if targets.iter().any(|t| !t.doc.trim().is_empty()) {
        "its doc and name".to_owned()
    } else {
        "its name and signature".to_owned()
    }
}

fn no_probes(out: &mut ReviewOutcome, why: String) {
    if out.evidence.no_probes.is_none() {
        out.notes.push(Note::NoProbes { why: why.clone() });
        out.evidence.no_probes = Some(why);
    }
}

/// The probe counts of a run into the outcome's summary.
fn summarise(out: &mut ReviewOutcome, report: &Report, inputs: usize, candidates: usize) {
    let ran_inputs = (0..inputs)
        .filter(|&c| {
            report
                .outcomes
                .first()
                .and_then(|o| o.get(c))
                .is_some_and(probe::Outcome::ran)
        })
        .count();
    out.evidence.probe_inputs = ran_inputs;
    out.evidence.probe_calls += report
        .outcomes
        .iter()
        .map(|v| v.iter().filter(|o| o.ran()).count())
        .sum::<usize>();
    out.evidence.candidates = candidates;
}

/// A note for each drifting candidate (one per distinct change), counted in the summary.
fn note_drift(out: &mut ReviewOutcome, verdicts: &[Verdict], candidates: &[Weighable]) {
    let mut said: Vec<&str> = Vec::new();
    for (v, c) in verdicts.iter().zip(candidates) {
        if let Verdict::Drift(change) = v {
            out.evidence.drift_refused += 1;
            if !said.contains(&change.as_str()) {
                said.push(change);
                out.notes.push(Note::Drift {
                    attempt: c.attempt,
                    change: change.clone(),
                });
            }
        }
    }
}

/// Severity follows evidence: an error only with executed evidence (a failing test, doc
/// example or diagnostic on its lines), a warning at most with a counterexample the intent
/// backs, a hint otherwise (a refactor, or nothing). Where no probe could run, findings keep
/// `loop.max_unbacked_severity`'s cap (already applied when they were placed). `backed(f)`:
/// an outside tool flags the finding's lines.
pub(crate) fn apply_severity(
    out: &mut ReviewOutcome,
    probed: bool,
    backed: &dyn Fn(&super::outcome::Finding) -> bool,
) {
    for f in &mut out.findings {
        let cap = match &f.evidence {
            Some(Evidence::Executed { .. }) => continue,
            Some(Evidence::Counterexample(_)) => Severity::Warning,
            Some(Evidence::Unchanged { .. }) => Severity::Hint,
            None if backed(f) || !probed => continue,
            None => Severity::Hint,
        };
        // `Severity` orders from the most severe.
        if f.raw.severity < cap {
            f.raw.severity = cap;
        }
    }
}

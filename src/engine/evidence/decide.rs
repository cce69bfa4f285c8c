//! Deciding by evidence, pure: what each candidate version does on the probes compared with the
//! original, which differing inputs to ask the intent about, and which candidate (if any) the
//! evidence supports, in the order: failing doc examples or checks that a candidate
//! makes pass; a behaviour change the intent backs (a counterexample); behaviour unchanged (a
//! refactor); and a change nothing backs is drift. Among supported candidates, the behaviour
//! most of them share wins (self-consistency).

use crate::engine::outcome::{Counterexample, Evidence};
use crate::probe::{Call, Outcome, Report};

/// What one candidate does, next to the original, before the intent is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Class {
    /// The original fails a doc example (or the failing check) and this passes them all.
    PassesFailing,
    /// It breaks a doc example the original passes.
    BreaksExample(usize),
    /// The same outcome as the original on every input that ran (how many ran).
    Unchanged(usize),
    /// Differs from the original on these inputs.
    Changes(Vec<usize>),
    /// Nothing of it ran (it does not compile or import).
    Broken,
}

/// Classifies every candidate (`report` versions 1..): the first `inputs` calls are probe
/// inputs, the rest doc examples. `passes_check[i]`: the failing `verify.command` passes on
/// candidate `i`.
pub(crate) fn classify(report: &Report, inputs: usize, passes_check: &[bool]) -> Vec<Class> {
    let Some(original) = report.outcomes.first() else {
        return Vec::new();
    };
    let orig_matches = report.matches.first().cloned().unwrap_or_default();
    let example_ids: Vec<usize> = (inputs..original.len()).collect();
    let fails_example = example_ids
        .iter()
        .any(|&c| orig_matches.get(c).copied().flatten() == Some(false));
    report
        .outcomes
        .iter()
        .zip(&report.matches)
        .skip(1)
        .enumerate()
        .map(|(i, (outcomes, matches))| {
            if !outcomes.iter().any(Outcome::ran) {
                return Class::Broken;
            }
            let passes_all = example_ids
                .iter()
                .all(|&c| matches.get(c).copied().flatten() == Some(true));
            let check = passes_check.get(i).copied().unwrap_or(false);
            if (fails_example && passes_all && !example_ids.is_empty()) || check {
                return Class::PassesFailing;
            }
            if let Some(&c) = example_ids.iter().find(|&&c| {
                orig_matches.get(c).copied().flatten() == Some(true)
                    && matches.get(c).copied().flatten() != Some(true)
            }) {
                return Class::BreaksExample(c);
            }
            let both_ran: Vec<usize> = (0..inputs)
                .filter(|&c| {
                    original.get(c).is_some_and(Outcome::ran)
                        && outcomes.get(c).is_some_and(Outcome::ran)
                })
                .collect();
            let differ: Vec<usize> = both_ran
                .iter()
                .copied()
                .filter(|&c| original.get(c) != outcomes.get(c))
                .collect();
            if differ.is_empty() {
                Class::Unchanged(both_ran.len())
            } else {
                Class::Changes(differ)
            }
        })
        .collect()
}

/// The differing inputs to ask the intent about: those most candidates change first, then in
/// input order (edge cases come first), at most `max`.
pub(crate) fn questions(classes: &[Class], max: usize) -> Vec<usize> {
    let mut counts: Vec<(usize, usize)> = Vec::new();
    for class in classes {
        if let Class::Changes(diffs) = class {
            for &c in diffs {
                match counts.iter_mut().find(|(k, _)| *k == c) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((c, 1)),
                }
            }
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts.into_iter().take(max).map(|(c, _)| c).collect()
}

/// What the evidence says of one candidate in the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Backed by execution (a failing doc example or check it makes pass).
    Executed(String),
    /// A behaviour change the intent backs: a counterexample per function, at least one.
    Fix(Vec<Counterexample>),
    /// No behaviour change on the probes.
    Unchanged(usize),
    /// A behaviour change nothing backs: `changes \`f(x)\` from \`a\` to \`b\``.
    Drift(String),
    /// Nothing of it ran.
    Broken,
}

/// What the intent said of the asked calls: per asked call, `matches[v]` of the second probe
/// run (the calls with the intent's answers as their expected values).
pub(crate) struct Intent<'a> {
    /// The calls asked about (`calls[k]` is input `asked[k]`), with the intent's answer.
    pub(crate) asked: &'a [(usize, Call)],
    /// The second run's `matches[v][k]` (`v` over the original and every candidate).
    pub(crate) matches: &'a [Vec<Option<bool>>],
    /// Who the intent is (`its doc and name`).
    pub(crate) said_by: &'a str,
}

/// Turns each class into a verdict, with the intent's answers for the asked inputs.
pub(crate) fn verdicts(
    classes: &[Class],
    report: &Report,
    calls: &[Call],
    intent: Option<&Intent<'_>>,
    executed: &str,
) -> Vec<Verdict> {
    let original = report.outcomes.first().cloned().unwrap_or_default();
    classes
        .iter()
        .enumerate()
        .map(|(i, class)| {
            let outcomes = report.outcomes.get(i + 1).cloned().unwrap_or_default();
            let change = |c: usize| drift_text(calls.get(c), original.get(c), outcomes.get(c));
            match class {
                Class::PassesFailing => Verdict::Executed(executed.to_owned()),
                Class::BreaksExample(c) => Verdict::Drift(format!(
                    "breaks the doc example `{}`: {}",
                    calls.get(*c).map(Call::show).unwrap_or_default(),
                    change(*c)
                )),
                Class::Unchanged(n) => Verdict::Unchanged(*n),
                Class::Broken => Verdict::Broken,
                Class::Changes(diffs) => {
                    match intent.and_then(|it| backed(it, i + 1, diffs, &original, &outcomes)) {
                        Some(c) => Verdict::Fix(c),
                        None => {
                            Verdict::Drift(diffs.first().map(|&c| change(c)).unwrap_or_default())
                        }
                    }
                }
            }
        })
        .collect()
}

/// The counterexamples the intent backs for version `v` (the first per function), if it backs
/// one and contradicts none.
fn backed(
    intent: &Intent<'_>,
    v: usize,
    diffs: &[usize],
    original: &[Outcome],
    outcomes: &[Outcome],
) -> Option<Vec<Counterexample>> {
    let orig_m = intent.matches.first()?;
    let mine = intent.matches.get(v)?;
    let mut support: Vec<Counterexample> = Vec::new();
    for (k, (input, call)) in intent.asked.iter().enumerate() {
        if !diffs.contains(input) {
            continue;
        }
        let (o, m) = (
            orig_m.get(k).copied().flatten(),
            mine.get(k).copied().flatten(),
        );
        if o == Some(true) && m != Some(true) {
            // The intent sides with the original here: this change is not a fix.
            return None;
        }
        if m == Some(true)
            && o != Some(true)
            && !support.iter().any(|c| c.function == call.function)
        {
            support.push(Counterexample {
                function: call.function.clone(),
                args: call.args.clone(),
                original: original.get(*input).map(Outcome::show).unwrap_or_default(),
                expected: call.expected.clone().unwrap_or_default(),
                said_by: intent.said_by.to_owned(),
                revised: outcomes.get(*input).map(Outcome::show).unwrap_or_default(),
            });
        }
    }
    (!support.is_empty()).then_some(support)
}

/// "changes `f([])` from `0` to `None`".
fn drift_text(call: Option<&Call>, from: Option<&Outcome>, to: Option<&Outcome>) -> String {
    format!(
        "changes `{}` from `{}` to `{}`",
        call.map(Call::show).unwrap_or_default(),
        from.map(Outcome::show).unwrap_or_default(),
        to.map(Outcome::show).unwrap_or_default()
    )
}

/// The candidate to offer and what backs it: the strongest kind of verdict present (executed,
/// then a counterexample, then unchanged), and within it the behaviour (outcomes on the probe
/// inputs) most candidates of that kind share; ties go to the earliest (the greedy fix first).
pub(crate) fn choose(
    verdicts: &[Verdict],
    report: &Report,
    inputs: usize,
) -> Option<(usize, Evidence)> {
    let rank = |v: &Verdict| match v {
        Verdict::Executed(_) => 3,
        Verdict::Fix(_) => 2,
        Verdict::Unchanged(_) => 1,
        Verdict::Drift(_) | Verdict::Broken => 0,
    };
    let best = verdicts.iter().map(rank).max().filter(|r| *r > 0)?;
    let members: Vec<usize> = (0..verdicts.len())
        .filter(|&i| verdicts.get(i).map(rank) == Some(best))
        .collect();
    let behaviour = |i: usize| {
        report
            .outcomes
            .get(i + 1)
            .map(|o| o.iter().take(inputs).cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let chosen = members.iter().copied().max_by(|&a, &b| {
        let count = |i: usize| {
            members
                .iter()
                .filter(|&&j| behaviour(j) == behaviour(i))
                .count()
        };
        count(a).cmp(&count(b)).then(b.cmp(&a))
    })?;
    let evidence = match verdicts.get(chosen)? {
        Verdict::Executed(what) => Evidence::Executed { what: what.clone() },
        Verdict::Fix(c) => Evidence::Counterexample(c.first()?.clone()),
        Verdict::Unchanged(n) => Evidence::Unchanged { inputs: *n },
        Verdict::Drift(_) | Verdict::Broken => return None,
    };
    Some((chosen, evidence))
}

/// How many candidates share the chosen one's behaviour on the probe inputs, and how many
/// distinct behaviours there are among the candidates that ran.
pub(crate) fn agreement(report: &Report, inputs: usize, chosen: usize) -> (usize, usize) {
    let behaviour = |v: &Vec<Outcome>| v.iter().take(inputs).cloned().collect::<Vec<_>>();
    let ran: Vec<Vec<Outcome>> = report
        .outcomes
        .iter()
        .skip(1)
        .filter(|o| o.iter().any(Outcome::ran))
        .map(behaviour)
        .collect();
    let mine = report
        .outcomes
        .get(chosen + 1)
        .map(behaviour)
        .unwrap_or_default();
    let agree = ran.iter().filter(|b| **b == mine).count();
    let mut distinct: Vec<&Vec<Outcome>> = Vec::new();
    for b in &ran {
        if !distinct.contains(&b) {
            distinct.push(b);
        }
    }
    (agree, distinct.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Outcome {
        Outcome::Value(s.into())
    }

    fn call(args: &str) -> Call {
        Call {
            function: "sum_even".into(),
            args: args.into(),
            expected: None,
        }
    }

    /// Original, then: a fix, a refactor, the same fix again, a drift, a broken version.
    fn report() -> Report {
        let no = || vec![None, None, None];
        Report {
            outcomes: vec![
                vec![v("0"), v("0"), v("6")],
                vec![v("2"), v("0"), v("6")],
                vec![v("0"), v("0"), v("6")],
                vec![v("2"), v("0"), v("6")],
                vec![v("0"), v("1"), v("6")],
                vec![Outcome::NotRun("x".into()); 3],
            ],
            matches: vec![no(), no(), no(), no(), no(), no()],
            dropped: Vec::new(),
            sandboxed: true,
        }
    }

    #[test]
    fn candidates_are_classed_against_the_original() {
        let classes = classify(&report(), 3, &[]);
        assert_eq!(
            classes,
            vec![
                Class::Changes(vec![0]),
                Class::Unchanged(3),
                Class::Changes(vec![0]),
                Class::Changes(vec![1]),
                Class::Broken
            ]
        );
        assert_eq!(questions(&classes, 3), vec![0, 1]);
    }

    #[test]
    fn the_intent_backs_a_fix_and_refuses_drift_and_most_fixes_agree() {
        let r = report();
        let classes = classify(&r, 3, &[]);
        let calls = [call("&[2]"), call("&[]"), call("&[1, 2, 3, 4]")];
        let mut asked_0 = calls[0].clone();
        asked_0.expected = Some("2".into());
        let mut asked_1 = calls[1].clone();
        asked_1.expected = Some("0".into());
        let asked = [(0, asked_0), (1, asked_1)];
        // [call &[2] says 2, call &[] says 0], per version.
        let m = |a: bool, b: bool| vec![Some(a), Some(b)];
        let matches = vec![
            m(false, true),
            m(true, true),
            m(false, true),
            m(true, true),
            m(false, false),
            vec![None, None],
        ];
        let intent = Intent {
            asked: &asked,
            matches: &matches,
            said_by: "its doc and name",
        };
        let verdicts = verdicts(&classes, &r, &calls, Some(&intent), "");
        assert!(
            matches!(&verdicts[0], Verdict::Fix(c) if c[0].sentence() == "`sum_even(&[2])` returns 0; its doc and name say 2; the revision returns 2")
        );
        assert_eq!(verdicts[1], Verdict::Unchanged(3));
        assert_eq!(
            verdicts[3],
            Verdict::Drift("changes `sum_even(&[])` from `0` to `1`".into())
        );
        assert_eq!(verdicts[4], Verdict::Broken);
        let (chosen, evidence) = choose(&verdicts, &r, 3).unwrap();
        assert_eq!(chosen, 0);
        assert!(matches!(evidence, Evidence::Counterexample(_)));
        assert_eq!(agreement(&r, 3, 0), (2, 3));
        // Without the intent, every change is drift, and the refactor is what is left.
        let alone = super::verdicts(&classes, &r, &calls, None, "");
        assert_eq!(choose(&alone, &r, 3).map(|c| c.0), Some(1));
    }

    #[test]
    fn failing_doc_examples_decide_first_and_breaking_one_is_drift() {
        let mut r = report();
        // A fourth call: the doc example `sum_even(&[2]) == 2`.
        for (o, val) in r.outcomes.iter_mut().zip(["0", "2", "0", "2", "0", "x"]) {
            o.push(v(val));
        }
        r.matches = vec![
            vec![None, None, None, Some(false)],
            vec![None, None, None, Some(true)],
            vec![None, None, None, Some(false)],
            vec![None, None, None, Some(true)],
            vec![None, None, None, Some(false)],
            vec![None; 4],
        ];
        let classes = classify(&r, 3, &[]);
        assert_eq!(classes[0], Class::PassesFailing);
        assert_eq!(classes[1], Class::Unchanged(3));
        let calls = [
            call("&[2]"),
            call("&[]"),
            call("&[1, 2, 3, 4]"),
            call("&[2]"),
        ];
        let verdicts = verdicts(&classes, &r, &calls, None, "the doc example");
        assert_eq!(
            choose(&verdicts, &r, 3),
            Some((
                0,
                Evidence::Executed {
                    what: "the doc example".into()
                }
            ))
        );
        // The original passes the example and a candidate breaks it.
        r.matches[0][3] = Some(true);
        r.matches[2][3] = Some(false);
        let classes = classify(&r, 3, &[]);
        assert_eq!(classes[1], Class::BreaksExample(3));
    }
}

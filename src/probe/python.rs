//! The Python harness: each version of the file as a module of its own in a private scratch
//! folder, a script that imports one and calls every input in a thread (an exception caught,
//! a call that does not end left behind), run by `python3` in the sandbox one version at a time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::exec::{self, Ending, Line, Scratch};
use super::{Outcome, ProbeError, Report, Request};

/// The harness script (`python3 probe.py VERSION SECONDS_PER_CALL`).
const SCRIPT: &str = include_str!("probe.py");

/// Runs the request's calls on its versions.
pub async fn run(req: &Request<'_>, cancel: &CancellationToken) -> Result<Report, ProbeError> {
    if !exec::on_path("python3") {
        return Err(ProbeError::Toolchain("python3 is not on PATH".to_owned()));
    }
    let started = Instant::now();
    let scratch = Scratch::new()?;
    scratch.write("probe.py", SCRIPT)?;
    scratch.write("calls.json", &calls_json(req))?;
    let versions = req.versions.len();
    let mut report = Report {
        outcomes: vec![Vec::new(); versions],
        matches: vec![Vec::new(); versions],
        dropped: Vec::new(),
        sandboxed: crate::sandbox::available(),
    };
    let all: Vec<usize> = (0..req.calls.len()).collect();
    let bound = req
        .limits
        .per_call
        .saturating_mul(
            u32::try_from(all.len())
                .unwrap_or(u32::MAX)
                .saturating_add(1),
        )
        .saturating_add(Duration::from_secs(5));
    let mut dropped: BTreeMap<usize, String> = BTreeMap::new();
    for v in 0..versions {
        scratch.write(&format!("v{v}.py"), &version_file(req, v))?;
        let command = format!(
            "{}exec python3 -B probe.py {v} {}",
            exec::ulimit(&req.limits),
            req.limits.per_call.as_secs_f64()
        );
        let remaining = req.limits.total.saturating_sub(started.elapsed());
        let ran = scratch
            .run(
                command,
                bound.min(remaining),
                req.limits.output_bytes,
                cancel,
            )
            .await?;
        report.sandboxed &= ran.sandboxed;
        let lines = scratch.results(&format!("out-v{v}.txt"));
        let (outcomes, matches) =
            version_outcomes(v, &all, &lines, Ending::of(&ran), &mut dropped)?;
        if let (Some(o), Some(m)) = (report.outcomes.get_mut(v), report.matches.get_mut(v)) {
            *o = outcomes;
            *m = matches;
        }
    }
    // A call whose arguments do not evaluate against the original is left out everywhere.
    for (c, why) in &dropped {
        for (o, m) in report.outcomes.iter_mut().zip(report.matches.iter_mut()) {
            if let (Some(o), Some(m)) = (o.get_mut(*c), m.get_mut(*c)) {
                *o = Outcome::NotRun(format!("its arguments do not evaluate: {why}"));
                *m = None;
            }
        }
        report.dropped.push((*c, why.clone()));
    }
    Ok(report)
}

/// The outcomes of version `v` from its result lines; an import failure of the original is
/// the harness's failure, a `drop` line of the original drops the call.
fn version_outcomes(
    v: usize,
    calls: &[usize],
    lines: &BTreeMap<usize, Line>,
    ending: Ending,
    dropped: &mut BTreeMap<usize, String>,
) -> Result<(Vec<Outcome>, Vec<Option<bool>>), ProbeError> {
    if let Some(import) = lines.get(&usize::MAX) {
        if v == 0 {
            return Err(ProbeError::Build(import.text.clone()));
        }
        let why = Outcome::NotRun(format!("does not import: {}", import.text));
        return Ok((vec![why; calls.len()], vec![None; calls.len()]));
    }
    let mut by_call = exec::outcomes(calls, lines, ending);
    let mut outcomes = Vec::new();
    let mut matches = Vec::new();
    for c in calls {
        let (outcome, matched) = by_call
            .remove(c)
            .unwrap_or((Outcome::NotRun("not run".to_owned()), None));
        if v == 0
            && let Some(line) = lines.get(c).filter(|l| l.kind == "drop")
        {
            dropped.insert(*c, line.text.clone());
        }
        outcomes.push(outcome);
        matches.push(matched);
    }
    Ok((outcomes, matches))
}

/// The calls as the script reads them: `[[index, function, args, expected or null], ...]`.
fn calls_json(req: &Request<'_>) -> String {
    let calls: Vec<serde_json::Value> = req
        .calls
        .iter()
        .enumerate()
        .map(|(i, c)| serde_json::json!([i, c.function, c.args, c.expected]))
        .collect();
    serde_json::Value::Array(calls).to_string()
}

/// The whole file with version `v` in place of the selection (`v == 0`: the file as it is).
fn version_file(req: &Request<'_>, v: usize) -> String {
    let text = req.versions.get(v).map(String::as_str).unwrap_or_default();
    match (
        req.file.get(..req.selection.start),
        req.file.get(req.selection.end..),
    ) {
        (Some(before), Some(after)) if v > 0 => format!("{before}{text}{after}"),
        _ => req.file.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Call, Language, Limits};

    #[test]
    fn versions_replace_the_selection_and_calls_are_json() {
        let file = "import os\n\ndef f(x):\n    return x\n";
        let start = file.find("def").unwrap();
        let versions = vec![
            file[start..].to_owned(),
            "def f(x):\n    return x + 1\n".to_owned(),
        ];
        let calls = vec![Call {
            function: "f".into(),
            args: "'a\"b', 2".into(),
            expected: None,
        }];
        let req = Request {
            language: Language::Python,
            file,
            selection: start..file.len(),
            versions: &versions,
            calls: &calls,
            krate: None,
            limits: Limits::default(),
        };
        assert_eq!(version_file(&req, 0), file);
        assert_eq!(
            version_file(&req, 1),
            "import os\n\ndef f(x):\n    return x + 1\n"
        );
        assert_eq!(calls_json(&req), r#"[[0,"f","'a\"b', 2",null]]"#);
    }

    #[test]
    fn an_import_failure_marks_the_version_or_fails_the_original() {
        let lines = exec::parse_results("-\timport\tModuleNotFoundError: x\n");
        let ending = Ending {
            timed_out: false,
            code: Some(0),
        };
        let mut dropped = BTreeMap::new();
        let (o, _) = version_outcomes(1, &[0, 1], &lines, ending, &mut dropped).unwrap();
        assert_eq!(
            o[1],
            Outcome::NotRun("does not import: ModuleNotFoundError: x".into())
        );
        assert_eq!(
            version_outcomes(0, &[0], &lines, ending, &mut dropped),
            Err(ProbeError::Build("ModuleNotFoundError: x".into()))
        );
        let lines = exec::parse_results("0\tdrop\tNameError: y\n1\tvalue\t3\n");
        let (o, _) = version_outcomes(0, &[0, 1], &lines, ending, &mut dropped).unwrap();
        assert_eq!(o[1], Outcome::Value("3".into()));
        assert_eq!(dropped[&0], "NameError: y");
    }
}

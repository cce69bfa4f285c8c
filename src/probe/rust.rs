//! The Rust harness: the file as it is, each candidate version in a module of its own
//! (`mod __refine_v1 { use super::*; … }`), and a test per version that calls every input in a
//! thread of its own (a panic caught, a call that does not end left behind), built by
//! `rustc --test` in a private scratch folder and run in the sandbox one version at a time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::exec::{self, Ending, Scratch};
use super::rust_harness::{self, Owner, Plan};
use super::{Outcome, ProbeError, Report, Request};

/// At most this many builds: a failed one drops the calls and versions its errors are in.
const MAX_BUILDS: usize = 3;
/// Output kept of a build.
const BUILD_OUTPUT: usize = 256 << 10;

/// What is left out of the harness, and why.
#[derive(Default)]
struct Excluded {
    /// Calls whose arguments do not compile against the original: left out everywhere.
    calls: BTreeMap<usize, String>,
    /// Candidate versions that do not compile.
    versions: BTreeMap<usize, String>,
    /// One call in one candidate version (its signature changed).
    pairs: BTreeMap<(usize, usize), String>,
}

impl Excluded {
    /// The versions tested and the calls each runs.
    fn tests(&self, versions: usize, calls: usize) -> Vec<(usize, Vec<usize>)> {
        (0..versions)
            .filter(|v| !self.versions.contains_key(v))
            .map(|v| {
                let run = (0..calls)
                    .filter(|c| !self.calls.contains_key(c) && !self.pairs.contains_key(&(v, *c)))
                    .collect();
                (v, run)
            })
            .filter(|(_, run): &(usize, Vec<usize>)| !run.is_empty())
            .collect()
    }

    /// Why call `c` of version `v` is left out, if it is.
    fn why(&self, v: usize, c: usize) -> Option<String> {
        if let Some(m) = self.calls.get(&c) {
            return Some(format!("its arguments do not compile: {m}"));
        }
        if let Some(m) = self.versions.get(&v) {
            return Some(format!("does not compile: {m}"));
        }
        self.pairs
            .get(&(v, c))
            .map(|m| format!("does not compile: {m}"))
    }
}

/// Runs the request's calls on its versions.
pub async fn run(req: &Request<'_>, cancel: &CancellationToken) -> Result<Report, ProbeError> {
    if !exec::on_path("rustc") {
        return Err(ProbeError::Toolchain("rustc is not on PATH".to_owned()));
    }
    let started = Instant::now();
    let scratch = Scratch::new()?;
    let (excluded, tests) = build(req, &scratch, started, cancel).await?;
    let versions = req.versions.len();
    let mut report = Report {
        outcomes: vec![Vec::new(); versions],
        matches: vec![Vec::new(); versions],
        dropped: excluded
            .calls
            .iter()
            .map(|(c, m)| (*c, m.clone()))
            .collect(),
        sandboxed: crate::sandbox::available(),
    };
    let mut results: BTreeMap<usize, BTreeMap<usize, (Outcome, Option<bool>)>> = BTreeMap::new();
    for (v, calls) in &tests {
        let remaining = req.limits.total.saturating_sub(started.elapsed());
        let bound = req
            .limits
            .per_call
            .saturating_mul(
                u32::try_from(calls.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(1),
            )
            .saturating_add(Duration::from_secs(5));
        let command = format!(
            "{}exec ./probe --exact __refine_probe::v{v} --nocapture --test-threads 1",
            exec::ulimit(&req.limits)
        );
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
        results.insert(*v, exec::outcomes(calls, &lines, Ending::of(&ran)));
    }
    for v in 0..versions {
        for c in 0..req.calls.len() {
            let (outcome, matched) = match results.get(&v).and_then(|r| r.get(&c)) {
                Some(r) => r.clone(),
                None => {
                    let why = excluded
                        .why(v, c)
                        .unwrap_or_else(|| "the probe ran out of time".to_owned());
                    (Outcome::NotRun(why), None)
                }
            };
            if let (Some(o), Some(m)) = (report.outcomes.get_mut(v), report.matches.get_mut(v)) {
                o.push(outcome);
                m.push(matched);
            }
        }
    }
    Ok(report)
}

/// Builds the harness, leaving out what does not compile, at most [`MAX_BUILDS`] times.
async fn build(
    req: &Request<'_>,
    scratch: &Scratch,
    started: Instant,
    cancel: &CancellationToken,
) -> Result<(Excluded, Vec<(usize, Vec<usize>)>), ProbeError> {
    let mut excluded = Excluded::default();
    for attempt in 1..=MAX_BUILDS {
        let tests = excluded.tests(req.versions.len(), req.calls.len());
        if tests.is_empty() {
            return Ok((excluded, tests));
        }
        let plan = Plan {
            versions: req.versions,
            tests: tests.clone(),
            calls: req.calls,
            per_call: req.limits.per_call,
        };
        let harness = rust_harness::harness(req.file, &plan);
        scratch.write("lib.rs", &harness.text)?;
        let remaining = req.limits.total.saturating_sub(started.elapsed());
        let command =
            "rustc --edition 2021 --test -A warnings --error-format=short -o probe lib.rs";
        let built = scratch
            .run(command.to_owned(), remaining, BUILD_OUTPUT, cancel)
            .await?;
        if built.timed_out {
            return Err(ProbeError::Build("the build ran out of time".to_owned()));
        }
        if built.passed() {
            return Ok((excluded, tests));
        }
        let errors = rust_harness::errors(&built.output);
        let Some((_, first)) = errors.first() else {
            return Err(ProbeError::Build(exec::gist(&built.output)));
        };
        if attempt == MAX_BUILDS {
            return Err(ProbeError::Build(first.clone()));
        }
        for (line, msg) in errors {
            match harness.owner(line) {
                Owner::Original | Owner::Probe => return Err(ProbeError::Build(msg)),
                Owner::Version(v) => {
                    excluded.versions.entry(v).or_insert(msg);
                }
                Owner::Call { version: 0, call } => {
                    excluded.calls.entry(call).or_insert(msg);
                }
                Owner::Call { version, call } => {
                    excluded.pairs.entry((version, call)).or_insert(msg);
                }
            }
        }
    }
    Err(ProbeError::Build("the harness does not build".to_owned()))
}

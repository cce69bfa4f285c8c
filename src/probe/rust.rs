//! The Rust harness: the file as it is, each candidate version in a module of its own
//! (`mod __refine_v1 { use super::*; … }`), and a test per version that calls every input in a
//! thread of its own (a panic caught, a call that does not end left behind), run in the sandbox
//! one version at a time. It is built in a copy of the file's crate by `cargo` when the file
//! belongs to a library crate ([`super::cargo`]); when that does not build (the crate's
//! dependencies are not in the offline registry cache), or the file has no crate, the file
//! alone by `rustc --test` in a private scratch folder.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::cargo::Copy;
use super::exec::{self, Ending, Line, Scratch};
use super::rust_harness::{self, Owner, Plan};
use super::{Outcome, ProbeError, Report, Request};
use crate::sandbox::RunResult;

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

/// Where the harness is built and run.
enum Route {
    /// The file alone, `rustc --test`.
    Standalone(Scratch),
    /// A test module in a copy of the file's crate, `cargo test`.
    Crate(Copy),
}

impl Route {
    /// Builds `text` as the harness, for at most `timeout`.
    async fn build(
        &mut self,
        text: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<RunResult, ProbeError> {
        match self {
            Route::Standalone(scratch) => {
                scratch.write("lib.rs", text)?;
                let command =
                    "rustc --edition 2021 --test -A warnings --error-format=short -o probe lib.rs";
                scratch
                    .run(command.to_owned(), timeout, BUILD_OUTPUT, cancel)
                    .await
            }
            Route::Crate(copy) => copy.build(text, timeout, BUILD_OUTPUT, cancel).await,
        }
    }

    /// The build's errors in the harness file, by line.
    fn errors(&self, output: &str) -> Vec<(usize, String)> {
        match self {
            Route::Standalone(_) => rust_harness::errors(output, "lib.rs"),
            Route::Crate(copy) => rust_harness::errors(output, copy.shown()),
        }
    }

    /// Runs version `v`'s test, its address space bounded (`prefix`).
    async fn run_test(
        &self,
        prefix: &str,
        v: usize,
        bounds: (Duration, usize),
        cancel: &CancellationToken,
    ) -> Result<RunResult, ProbeError> {
        match self {
            Route::Standalone(scratch) => {
                let command = format!(
                    "{prefix}exec ./probe --exact __refine_probe::v{v} --nocapture --test-threads 1"
                );
                scratch.run(command, bounds.0, bounds.1, cancel).await
            }
            Route::Crate(copy) => copy.run_test(prefix, v, bounds, cancel).await,
        }
    }

    fn results(&self, name: &str) -> BTreeMap<usize, Line> {
        match self {
            Route::Standalone(scratch) => scratch.results(name),
            Route::Crate(copy) => copy.results(name),
        }
    }
}

/// Runs the request's calls on its versions: in the file's crate when it has one (see the
/// module's doc), else, or when the crate does not build, the file alone. When both fail, the
/// crate's error is the one said.
pub async fn run(req: &Request<'_>, cancel: &CancellationToken) -> Result<Report, ProbeError> {
    let Some(krate) = req.krate.as_ref().filter(|_| exec::on_path("cargo")) else {
        return standalone(req, cancel).await;
    };
    let started = Instant::now();
    let failed = match Copy::new(krate, cancel).await {
        Ok(copy) => match probe(req, Route::Crate(copy), started, cancel).await {
            Ok(report) => return Ok(report),
            Err(e) => e,
        },
        Err(e) => e,
    };
    if !matches!(failed, ProbeError::Build(_) | ProbeError::Io(_)) {
        return Err(failed);
    }
    tracing::debug!("the probe does not build in its crate ({failed}): the file alone");
    let mut alone = req.clone();
    alone.krate = None;
    alone.limits.total = req.limits.total.saturating_sub(started.elapsed());
    match standalone(&alone, cancel).await {
        Ok(report) => Ok(report),
        Err(ProbeError::Cancelled) => Err(ProbeError::Cancelled),
        Err(_) => Err(failed),
    }
}

/// The file alone, `rustc --test`.
async fn standalone(req: &Request<'_>, cancel: &CancellationToken) -> Result<Report, ProbeError> {
    if !exec::on_path("rustc") {
        return Err(ProbeError::Toolchain("rustc is not on PATH".to_owned()));
    }
    let started = Instant::now();
    probe(req, Route::Standalone(Scratch::new()?), started, cancel).await
}

/// Builds the harness on `route` and runs each version's test.
async fn probe(
    req: &Request<'_>,
    mut route: Route,
    started: Instant,
    cancel: &CancellationToken,
) -> Result<Report, ProbeError> {
    let (excluded, tests) = build(req, &mut route, started, cancel).await?;
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
        let bounds = (bound.min(remaining), req.limits.output_bytes);
        let ran = route
            .run_test(&exec::ulimit(&req.limits), *v, bounds, cancel)
            .await?;
        report.sandboxed &= ran.sandboxed;
        let lines = route.results(&format!("out-v{v}.txt"));
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
    route: &mut Route,
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
        let remaining = req.limits.total.saturating_sub(started.elapsed());
        let built = route.build(&harness.text, remaining, cancel).await?;
        if built.timed_out {
            return Err(ProbeError::Build("the build ran out of time".to_owned()));
        }
        if built.passed() {
            return Ok((excluded, tests));
        }
        let errors = route.errors(&built.output);
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

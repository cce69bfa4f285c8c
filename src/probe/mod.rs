//! Probes: the selected function run on inputs, in the original and in each candidate version,
//! so that the loop has evidence of its own where the user has no tests. A harness is built in
//! a private scratch copy and run in the sandbox (bubblewrap: no network, nothing of the home
//! folder but the toolchains, bounded in time, memory and output).
//!
//! Where things are: which functions of a selection a harness can call ([`target`]); examples
//! in doc comments and docstrings as calls with an expected value ([`doc`]); the Rust harness
//! ([`rust`]: a generated test module in a scratch copy of the file's crate built by `cargo`
//! ([`cargo`]), else a standalone file through `rustc --test`) and the Python one
//! ([`python`]); the counterexample as a regression test in the file's own style
//! ([`regression`]).

pub mod cargo;
pub mod doc;
mod exec;
pub mod python;
pub mod regression;
pub mod runner;
pub mod rust;
mod rust_harness;
pub mod target;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A language a harness exists for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// A test module in the file's crate (`cargo test`), else `rustc --test` on the file alone.
    Rust,
    /// `python3` importing each version as a module.
    Python,
}

impl Language {
    /// The harness language for an editor language id (`rust`, `python`), if there is one.
    pub fn of(language: &str) -> Option<Self> {
        match language {
            "rust" => Some(Language::Rust),
            "python" => Some(Language::Python),
            _ => None,
        }
    }
}

/// A function of the selection a harness can call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Its name (`sum_even`).
    pub name: String,
    /// Its signature as written (`pub fn sum_even(xs: &[i64]) -> i64`, `def f(xs: list) -> int`).
    pub signature: String,
    /// Its doc comment or docstring, markers stripped (`Returns the sum of ...`).
    pub doc: String,
    /// The examples its doc gives (`sum_even(&[2]) == 2`), as calls with an expected value.
    pub examples: Vec<Call>,
}

/// One call of a target: `name(args)`, optionally with the value it should return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The function called (a [`Target::name`]).
    pub function: String,
    /// The arguments in the language's own syntax, without the parentheses (`&[1, 2], 3`).
    pub args: String,
    /// The value it should return, an expression in the language's own syntax (`Some(2)`), for
    /// doc examples and the intent's answers. The harness compares it with the returned value
    /// (Rust: their `{:?}` text; Python: `==`).
    pub expected: Option<String>,
}

impl Call {
    /// `name(args)`.
    pub fn show(&self) -> String {
        format!("{}({})", self.function, self.args)
    }
}

/// What one call did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "text", rename_all = "snake_case")]
pub enum Outcome {
    /// It returned: the value as the language's debug format prints it (Rust `{:?}`, Python
    /// `repr`), at most [`MAX_VALUE_CHARS`] chars.
    Value(String),
    /// It panicked or raised: the message (`attempt to subtract with overflow`,
    /// `ZeroDivisionError: division by zero`), bounded the same way.
    Panic(String),
    /// It did not end within the call's time.
    Timeout,
    /// The process ended during the call (`process::exit`, `sys.exit`, a signal, out of memory).
    Exited(Option<i32>),
    /// It was not run, and why (the version does not compile, an earlier call did not end).
    NotRun(String),
}

impl Outcome {
    /// As a user reads it: `2`, `panics: attempt to subtract with overflow`, `does not end`.
    pub fn show(&self) -> String {
        match self {
            Outcome::Value(v) => v.clone(),
            Outcome::Panic(m) => format!("panics ({m})"),
            Outcome::Timeout => "does not end".to_owned(),
            Outcome::Exited(Some(c)) => format!("exits the process with code {c}"),
            Outcome::Exited(None) => "kills the process".to_owned(),
            Outcome::NotRun(why) => format!("not run ({why})"),
        }
    }

    /// Whether it is an outcome of the function (not of the harness): a value, a panic, a
    /// timeout or an exit.
    pub fn ran(&self) -> bool {
        !matches!(self, Outcome::NotRun(_))
    }
}

/// A value's or message's text is cut to this many chars.
pub const MAX_VALUE_CHARS: usize = 300;

/// The bounds of one probe run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// One call.
    pub per_call: Duration,
    /// The whole run (build included).
    pub total: Duration,
    /// Address space of the process that runs the calls, in bytes.
    pub memory_bytes: u64,
    /// Output kept of the run, in bytes.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_call: Duration::from_secs(2),
            total: Duration::from_secs(60),
            memory_bytes: 1 << 31,
            output_bytes: 64 << 10,
        }
    }
}

/// What to probe: the file as it is, the selection's versions, the calls.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The harness's language.
    pub language: Language,
    /// The whole file as it is now (the original selection in place).
    pub file: &'a str,
    /// The selection's byte range in `file`.
    pub selection: std::ops::Range<usize>,
    /// The selection's versions: `versions[0]` is the original (the text of `selection`),
    /// the others are candidates in the same place.
    pub versions: &'a [String],
    /// The calls, each run on every version.
    pub calls: &'a [Call],
    /// Bounds.
    pub limits: Limits,
    /// The library crate the file belongs to (Rust): the harness is built in a copy of it, so
    /// that `use crate::...`, `mod x;` and the crate's dependencies resolve. `None`: the file
    /// is built on its own.
    pub krate: Option<Crate>,
}

/// A library crate on disk and a file of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crate {
    /// The folder holding its `Cargo.toml`.
    pub root: PathBuf,
    /// The file, relative to [`Crate::root`] (`src/util.rs`).
    pub file: PathBuf,
}

/// What a probe run found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// `outcomes[v][c]`: what call `c` did in version `v`.
    pub outcomes: Vec<Vec<Outcome>>,
    /// `matches[v][c]`: whether call `c`'s value in version `v` equals its expected value
    /// (`None`: the call has none, or did not return).
    pub matches: Vec<Vec<Option<bool>>>,
    /// Calls left out because their arguments (or expected value) do not compile or evaluate,
    /// with the reason; their outcomes are [`Outcome::NotRun`].
    pub dropped: Vec<(usize, String)>,
    /// The calls ran in the bubblewrap sandbox.
    pub sandboxed: bool,
}

/// Why no probe ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// No harness can call this code, and why ("`area` is a method: it needs a receiver").
    #[error("{0}")]
    NoHarness(String),
    /// The toolchain is missing (`rustc` or `python3` not found).
    #[error("{0}")]
    Toolchain(String),
    /// The harness does not build for a reason of the original code, as a short gist.
    #[error("the probe harness does not build: {0}")]
    Build(String),
    /// The scratch folder or the sandbox failed.
    #[error("{0}")]
    Io(String),
    /// The review was cancelled.
    #[error("cancelled")]
    Cancelled,
}

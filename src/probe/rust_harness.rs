//! The text of the Rust harness and where each of its lines comes from, so that a compiler
//! error can be laid at the door of the original file, a candidate version or one call.

use std::time::Duration;

use super::Call;

/// What a line of the harness belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    /// The file as it is.
    Original,
    /// Candidate version `i`'s module.
    Version(usize),
    /// Call `call` in version `version`'s test.
    Call {
        /// The version.
        version: usize,
        /// The call.
        call: usize,
    },
    /// The harness's own code.
    Probe,
}

/// What to build: the candidate versions included (by index, with their text), and per
/// version tested, the calls it runs in order.
pub(super) struct Plan<'a> {
    /// The function's versions (`[0]` the original, whose text is already in the file).
    pub versions: &'a [String],
    /// Included versions, each with the calls it runs.
    pub tests: Vec<(usize, Vec<usize>)>,
    /// The calls.
    pub calls: &'a [Call],
    /// One call's time.
    pub per_call: Duration,
}

/// The harness: its text and the owner of each line (`owners[n]` for line `n + 1`).
pub(super) struct Harness {
    /// The text of `lib.rs`.
    pub text: String,
    /// The owner of each line.
    pub owners: Vec<Owner>,
}

impl Harness {
    fn push(&mut self, text: &str, owner: Owner) {
        self.text.push_str(text);
        if !text.ends_with('\n') {
            self.text.push('\n');
        }
        let lines = text.lines().count().max(1);
        self.owners.extend(std::iter::repeat_n(owner, lines));
    }

    /// The owner of 1-based line `line`.
    pub fn owner(&self, line: usize) -> Owner {
        line.checked_sub(1)
            .and_then(|i| self.owners.get(i))
            .copied()
            .unwrap_or(Owner::Probe)
    }
}

/// The module that holds candidate version `i`.
pub(super) fn module(i: usize) -> String {
    format!("__refine_v{i}")
}

/// The harness for `file` (the original in place) and `plan`.
pub(super) fn harness(file: &str, plan: &Plan<'_>) -> Harness {
    let mut h = Harness {
        text: String::new(),
        owners: Vec::new(),
    };
    h.push(file, Owner::Original);
    for &(v, _) in &plan.tests {
        let Some(text) = plan.versions.get(v).filter(|_| v > 0) else {
            continue;
        };
        h.push(
            &format!(
                "#[allow(unused, dead_code)]\nmod {} {{\n#[allow(unused_imports)]\nuse super::*;",
                module(v)
            ),
            Owner::Version(v),
        );
        let names: Vec<&str> = plan.calls.iter().map(|c| c.function.as_str()).collect();
        h.push(&visible(text, &names), Owner::Version(v));
        h.push("}", Owner::Version(v));
    }
    h.push(
        &PRELUDE.replace("PER_CALL_MS", &plan.per_call.as_millis().to_string()),
        Owner::Probe,
    );
    for (v, calls) in &plan.tests {
        test(&mut h, plan, *v, calls);
    }
    h.push("}", Owner::Probe);
    h
}

/// A candidate's text with its called functions made visible to the probe module beside it
/// (`fn sum(` → `pub(crate) fn sum(`): a private function of a module cannot be called from
/// its sibling. Line for line, so compile errors still point at the candidate's own lines.
fn visible(text: &str, names: &[&str]) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let body = line.trim_start();
            let indent = line.get(..line.len() - body.len()).unwrap_or("");
            let mut rest = body;
            for q in ["const ", "async ", "unsafe "] {
                rest = rest.strip_prefix(q).unwrap_or(rest);
            }
            let named = rest.strip_prefix("fn ").is_some_and(|after| {
                names.iter().any(|n| {
                    after.strip_prefix(n).is_some_and(|t| {
                        t.starts_with('(') || t.starts_with('<') || t.starts_with(' ')
                    })
                })
            });
            if named {
                format!("{indent}pub(crate) {body}")
            } else {
                line.to_owned()
            }
        })
        .collect()
}

/// The test of version `v`: every call in order, then the end of the process.
fn test(h: &mut Harness, plan: &Plan<'_>, v: usize, calls: &[usize]) {
    h.push(
        &format!(
            "    #[test]\n    fn v{v}() {{\n        std::panic::set_hook(Box::new(|_| {{}}));\n        let mut r = Runner {{ out: \"out-v{v}.txt\", timeouts: 0 }};"
        ),
        Owner::Probe,
    );
    let path = if v == 0 {
        "super::".to_owned()
    } else {
        format!("super::{}::", module(v))
    };
    for &c in calls {
        let Some(call) = plan.calls.get(c) else {
            continue;
        };
        // The expected value takes the returned value's type (`None`, `vec![]` and `2` need
        // one), and both are compared as their `{:?}` text.
        let expected = match &call.expected {
            Some(e) => format!("Some(like(&r,\n{e}\n            ))"),
            None => "None".to_owned(),
        };
        h.push(
            &format!(
                "        r.call({c}, move || {{\n            let r = {path}{}(\n{}\n            );\n            let v = format!(\"{{:?}}\", r);\n            let e: Option<String> = {expected};\n            (v, e)\n        }});",
                call.function, call.args
            ),
            Owner::Call { version: v, call: c },
        );
    }
    h.push("        std::process::exit(0);\n    }", Owner::Probe);
}

/// The harness's own code: a runner that calls each input in a thread of its own, catches
/// its panic, waits for it a bounded time and appends its result to the version's file.
const PRELUDE: &str = r#"#[cfg(test)]
#[allow(unused, unused_imports, unused_mut, clippy::all)]
mod __refine_probe {
    use std::io::Write as _;

    /// `e` as its `{:?}` text, typed as the value `_r` it is compared with.
    fn like<T: std::fmt::Debug>(_r: &T, e: T) -> String {
        format!("{e:?}")
    }

    fn escape(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars().take(4096) {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
        out
    }

    fn message(p: Box<dyn std::any::Any + Send>) -> String {
        if let Some(s) = p.downcast_ref::<&str>() {
            return (*s).to_string();
        }
        if let Some(s) = p.downcast_ref::<String>() {
            return s.clone();
        }
        "a panic without a message".to_string()
    }

    struct Runner {
        out: &'static str,
        timeouts: u32,
    }

    impl Runner {
        fn record(&self, line: String) {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(self.out) {
                let _ = f.write_all(line.as_bytes());
                let _ = f.flush();
            }
        }

        fn call<F: FnOnce() -> (String, Option<String>) + Send + 'static>(&mut self, i: usize, f: F) {
            if self.timeouts >= 2 {
                self.record(format!("{i}\tnotrun\tan earlier call did not end\n"));
                return;
            }
            let (tx, rx) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new().stack_size(16 << 20).spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                let _ = tx.send(r.map_err(message));
            });
            if spawned.is_err() {
                self.record(format!("{i}\tnotrun\tcannot start a thread\n"));
                return;
            }
            let line = match rx.recv_timeout(std::time::Duration::from_millis(PER_CALL_MS)) {
                Ok(Ok((v, Some(e)))) => format!("{i}\tvalue\t{}\t{}\n", escape(&v), u8::from(v == e)),
                Ok(Ok((v, None))) => format!("{i}\tvalue\t{}\n", escape(&v)),
                Ok(Err(m)) => format!("{i}\tpanic\t{}\n", escape(&m)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    self.timeouts += 1;
                    format!("{i}\ttimeout\t\n")
                }
                Err(_) => format!("{i}\tpanic\tthe call's thread ended without a result\n"),
            };
            self.record(line);
        }
    }
"#;

/// The errors in `file` of rustc's (or cargo's) short output: (line, message). `file` as the
/// compiler names it (`lib.rs`, `src/util.rs`).
pub(super) fn errors(output: &str, file: &str) -> Vec<(usize, String)> {
    output
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(file)?.strip_prefix(':')?;
            let mut parts = rest.splitn(3, ':');
            let line = parts.next()?.parse().ok()?;
            let _col = parts.next()?;
            let msg = parts.next()?.trim();
            msg.starts_with("error")
                .then(|| (line, msg.chars().take(300).collect()))
        })
        .collect()
}

#[cfg(test)]
mod tests;

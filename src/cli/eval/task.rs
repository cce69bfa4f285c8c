//! A task of the dataset (HumanEvalPack's format): the file each of its solutions makes, the
//! lines under review, and the lines the bug is on.

use std::path::Path;

use serde::Deserialize;

use super::args::Docs;

/// One task as the dataset states it.
#[derive(Debug, Clone, Deserialize)]
pub struct Task {
    /// `Rust/0`.
    pub task_id: String,
    /// Imports and the signature.
    pub declaration: String,
    /// A correct body.
    pub canonical_solution: String,
    /// The body with one bug.
    pub buggy_solution: String,
    /// A `#[cfg(test)]` module.
    pub test: String,
    /// Kind of bug.
    #[serde(default)]
    pub bug_type: String,
    /// What the function is for (HumanEvalPack's, without comment markers).
    #[serde(default)]
    pub docstring: String,
}

/// Crates the sample's declarations import that a bare `rustc` does not have: the import,
/// the name a solution uses, and the path prefix a test uses.
const EXTERNAL_USES: &[(&str, &str, &str)] = &[
    ("use rand::Rng;", "rand", "rand::"),
    ("use regex::Regex;", "Regex", "regex::"),
    ("use md5;", "md5", "md5::"),
];

impl Task {
    /// The file for one solution: declaration (with the docstring as the function's doc
    /// comment when `docs` is `fix`), body, tests; external imports dropped when unused (`None`
    /// when the solution needs them).
    pub(super) fn file(&self, solution: &str, docs: Docs) -> Option<String> {
        let mut decl = self.declaration(docs);
        for (line, name, path) in EXTERNAL_USES {
            // A test that needs the crate cannot be run, and the task cannot be judged.
            if self.canonical_solution.contains(name)
                || self.buggy_solution.contains(name)
                || self.test.contains(path)
            {
                return None;
            }
            decl = decl.replace(line, "");
        }
        Some(format!(
            "#![allow(unused, deprecated)]\n{}{}\n{}",
            decl, solution, self.test
        ))
    }

    /// The doc comment `docs` asks for, one `/// ` line per docstring line (none for `none`,
    /// or when the task has no docstring).
    pub(super) fn doc_comment(&self, docs: Docs) -> Vec<String> {
        if docs == Docs::None || self.docstring.trim().is_empty() {
            return Vec::new();
        }
        self.docstring
            .trim_end()
            .lines()
            .map(|l| format!("/// {l}").trim_end().to_owned())
            .collect()
    }

    /// The declaration with the doc comment `docs` asks for directly above the function's
    /// `fn` line, indented as it is.
    fn declaration(&self, docs: Docs) -> String {
        let doc = self.doc_comment(docs);
        let Some(at) = fn_line(&self.declaration).filter(|_| !doc.is_empty()) else {
            return self.declaration.clone();
        };
        let mut out = String::with_capacity(self.declaration.len() + self.docstring.len() * 2);
        for (i, line) in self.declaration.split_inclusive('\n').enumerate() {
            if i == at {
                let indent = &line[..line.len() - line.trim_start().len()];
                for d in &doc {
                    out.push_str(indent);
                    out.push_str(d);
                    out.push('\n');
                }
            }
            out.push_str(line);
        }
        out
    }

    /// Zero-based lines of the function under review: from its doc comment's first line (the
    /// declaration's last `fn` line when it has none) to the end of the body.
    pub(super) fn function_lines(&self, file: &str, solution: &str, docs: Docs) -> (usize, usize) {
        let head = file.len() - solution.len() - 1 - self.test.len();
        let before: &str = &file[..head];
        let fn_line = fn_line(before).unwrap_or(0);
        let first = fn_line.saturating_sub(self.doc_comment(docs).len());
        let end = before.lines().count() + solution.trim_end().lines().count();
        (first, end.saturating_sub(1).max(fn_line))
    }

    /// Zero-based file lines where the buggy body differs from the correct one.
    pub(super) fn bug_lines(&self, file: &str) -> Vec<usize> {
        let head = file.len() - self.buggy_solution.len() - 1 - self.test.len();
        let offset = file[..head].lines().count();
        let diff = similar::TextDiff::from_lines(&self.buggy_solution, &self.canonical_solution);
        let mut lines = Vec::new();
        for op in diff.ops() {
            let r = op.old_range();
            match op.tag() {
                similar::DiffTag::Equal => {}
                similar::DiffTag::Insert => lines.push(offset + r.start.saturating_sub(1)),
                _ => lines.extend(r.map(|l| offset + l)),
            }
        }
        lines
    }
}

/// The zero-based line of the last `fn` line in `text` (the function under review).
fn fn_line(text: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("fn ") || l.contains(" fn "))
        .map(|(i, _)| i)
        .last()
}

/// The tasks of a JSONL dataset, at most `limit` of them.
pub fn read_tasks(path: &Path, limit: Option<usize>) -> Result<Vec<Task>, String> {
    // (`limit` None: all of them.)
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut tasks = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let task: Task = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: not a task ({e})", path.display(), i + 1))?;
        tasks.push(task);
    }
    tasks.truncate(limit.unwrap_or(usize::MAX));
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &str) -> Task {
        include_str!("../../../tests/data/humanevalpack-rust-sample.jsonl")
            .lines()
            .map(|l| serde_json::from_str::<Task>(l).unwrap())
            .find(|t| t.task_id == id)
            .unwrap()
    }

    #[test]
    fn the_docstring_is_the_doc_comment_right_above_fn_and_the_selection_starts_at_it() {
        let t = sample("Rust/0");
        let doc = t.doc_comment(Docs::Fix);
        assert_eq!(
            doc,
            vec![
                "/// Check if in given list of numbers, are any two numbers closer to each other than",
                "/// given threshold.",
            ]
        );
        let n = doc.len();
        let plain = t.file(&t.buggy_solution, Docs::None).unwrap();
        let fixed = t.file(&t.buggy_solution, Docs::Fix).unwrap();
        let lines: Vec<&str> = fixed.lines().collect();
        let (first, last) = t.function_lines(&fixed, &t.buggy_solution, Docs::Fix);
        let (plain_first, plain_last) = t.function_lines(&plain, &t.buggy_solution, Docs::None);
        assert_eq!(lines[first], doc[0], "the selection starts at the doc");
        assert_eq!(lines[first + 1], doc[1]);
        assert!(
            lines[first + n].starts_with("fn has_close_elements("),
            "{fixed}"
        );
        assert_eq!(first, plain_first, "the doc takes the fn line's place");
        assert_eq!(last, plain_last + n, "the body's end shifts by the doc");
        let plain_lines: Vec<&str> = plain.lines().collect();
        let bugs = t.bug_lines(&fixed);
        let plain_bugs = t.bug_lines(&plain);
        assert_eq!(
            bugs,
            plain_bugs.iter().map(|l| l + n).collect::<Vec<_>>(),
            "the bug's lines shift by the doc's"
        );
        assert!(lines[bugs[0]].contains("distance < threshold"));
        assert_eq!(lines[bugs[0]], plain_lines[plain_bugs[0]]);
        assert!(bugs.iter().all(|l| (first..=last).contains(l)));
    }

    #[test]
    fn without_docs_the_file_is_run_twos() {
        let t = sample("Rust/8");
        let decl = t
            .declaration
            .replace("use rand::Rng;", "")
            .replace("use regex::Regex;", "")
            .replace("use md5;", "");
        assert_eq!(
            t.file(&t.canonical_solution, Docs::None).unwrap(),
            format!(
                "#![allow(unused, deprecated)]\n{decl}{}\n{}",
                t.canonical_solution, t.test
            )
        );
        let (first, _) = t.function_lines(
            &t.file(&t.canonical_solution, Docs::None).unwrap(),
            &t.canonical_solution,
            Docs::None,
        );
        let file = t.file(&t.canonical_solution, Docs::None).unwrap();
        assert!(
            file.lines()
                .nth(first)
                .unwrap()
                .starts_with("fn sum_product(")
        );
    }

    #[test]
    fn the_doc_is_indented_as_its_fn_and_a_doc_mentioning_fn_does_not_move_the_selection() {
        let t = Task {
            task_id: "T/1".to_owned(),
            declaration: "\nmod m {\n    fn helper() {}\n    fn f(x: i32) -> i32 {\n".to_owned(),
            canonical_solution: "        x\n    }\n}\n".to_owned(),
            buggy_solution: "        x + 1\n    }\n}\n".to_owned(),
            test: "\n#[cfg(test)]\nmod tests {}\n".to_owned(),
            bug_type: String::new(),
            docstring: "Returns x: the fn is the identity.\n\nNothing more.".to_owned(),
        };
        let file = t.file(&t.buggy_solution, Docs::Fix).unwrap();
        let lines: Vec<&str> = file.lines().collect();
        let (first, last) = t.function_lines(&file, &t.buggy_solution, Docs::Fix);
        assert_eq!(lines[first], "    /// Returns x: the fn is the identity.");
        assert_eq!(
            lines[first + 1],
            "    ///",
            "an empty docstring line has no trailing space"
        );
        assert_eq!(lines[first + 3], "    fn f(x: i32) -> i32 {");
        assert_eq!(lines[last], "}");
        assert_eq!(t.bug_lines(&file), vec![first + 4]);
        let none = Task {
            docstring: "  \n".to_owned(),
            ..t.clone()
        };
        assert_eq!(
            none.file(&none.buggy_solution, Docs::Fix),
            none.file(&none.buggy_solution, Docs::None),
            "no docstring, no doc comment"
        );
    }
}

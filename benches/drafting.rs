//! Speculative edits: the fixer's answer decoded plainly (one model pass per token) and with
//! prompt-lookup drafting, side by side in one run, on the README example and on sample tasks'
//! buggy solutions, each with the real fixer prompts (`prompts/fix_*.md`) and greedy decoding.
//! Reports, per case, the median generation tokens/s of each, their ratio, how many of the
//! guessed tokens the model kept, and whether the two answers are identical; where they are
//! not, the first token where they part and the gap between the model's two best logits there
//! under plain decoding (a near-tie: the batch and one-token passes differ in their last bits).
//!
//! ```sh
//! cargo bench --bench drafting -- [--model FILE.gguf] [--threads 2] [--runs 3] [--tasks 5]
//! ```
//! `--model` defaults to the default model in the models folder.

use std::path::PathBuf;

use refine_ls::llm::local::{Decoding, Generated, LocalModel};
use refine_ls::prompts::Prompts;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Opts {
    model: PathBuf,
    threads: usize,
    runs: usize,
    tasks: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        model: refine_ls::models::default_model_path().unwrap_or_default(),
        threads: 2,
        runs: 3,
        tasks: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |d: usize| args.next().and_then(|n| n.parse().ok()).unwrap_or(d);
        match a.as_str() {
            "--model" => o.model = args.next().map(PathBuf::from).unwrap_or_default(),
            "--threads" => o.threads = num(2),
            "--runs" => o.runs = num(3),
            "--tasks" => o.tasks = num(5),
            _ => {}
        }
    }
    o
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// (name, path, selection): the README example and the first `n` sample tasks' buggy
/// solutions, each with its docstring as the doc comment, as `eval --docs fix` selects them.
fn cases(n: usize) -> Vec<(String, String, String)> {
    let readme = std::fs::read_to_string(root().join("examples/buggy_sum.rs")).unwrap_or_default();
    let mut out = vec![(
        "README example".to_owned(),
        "examples/buggy_sum.rs".to_owned(),
        readme,
    )];
    let sample = std::fs::read_to_string(root().join("tests/data/humanevalpack-rust-sample.jsonl"))
        .unwrap_or_default();
    for line in sample.lines().take(n) {
        let Ok(t) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let s = |k: &str| t[k].as_str().unwrap_or_default().to_owned();
        let decl = s("declaration");
        let decl = decl
            .find("fn ")
            .map_or(decl.as_str(), |i| &decl[i..])
            .to_owned();
        let doc: String = s("docstring")
            .lines()
            .map(|l| format!("/// {l}\n"))
            .collect();
        out.push((
            s("task_id"),
            "src/main.rs".to_owned(),
            format!("{doc}{decl}{}", s("buggy_solution")),
        ));
    }
    out
}

/// The fixer's prompt for `selection`, as the engine renders it.
fn fix_prompt(model: &LocalModel, prompts: &Prompts, path: &str, selection: &str) -> String {
    let selection = selection.trim_end_matches('\n');
    let system = prompts
        .render(
            "fix_system.md",
            json!({"language": "rust", "edit_format": "full"}),
        )
        .expect("the fixer's system prompt renders");
    let user = prompts
        .render(
            "fix_user.md",
            json!({"path": path, "language": "rust", "selection": selection,
                "first_line": 1, "last_line": selection.lines().count()}),
        )
        .expect("the fixer's prompt renders");
    model.prompt(&[("system", &system), ("user", &user)])
}

fn run(model: &LocalModel, prompt: &str, decoding: Decoding) -> Generated {
    model
        .generate_with(
            prompt,
            None,
            512,
            0.0,
            decoding,
            &CancellationToken::new(),
            &mut |_| {},
        )
        .expect("the embedded model answers")
}

fn main() {
    let o = opts();
    if !o.model.is_file() {
        eprintln!(
            "no model at {} (`refine-ls model pull` fetches the default)",
            o.model.display()
        );
        return;
    }
    let model = LocalModel::open(&o.model, o.threads, 0).expect("the model loads");
    let prompts = Prompts::load(None);
    println!(
        "model {} · {} threads · {} runs each, in turn · greedy, up to 512 tokens\n",
        o.model.display(),
        o.threads,
        o.runs
    );
    println!(
        "| case | tokens | plain tok/s | lookup tok/s | ratio | guesses kept | passes | identical |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    let mut identical_all = true;
    let mut divergences = Vec::new();
    for (name, path, selection) in cases(o.tasks) {
        let prompt = fix_prompt(&model, &prompts, &path, &selection);
        // Once each first, so the prompt is in the KV cache for both alike.
        let _ = run(&model, &prompt, Decoding::Plain);
        let (mut plain, mut lookup) = (Vec::new(), Vec::new());
        let (mut plain_out, mut lookup_out) = (Generated::default(), Generated::default());
        for _ in 0..o.runs {
            plain_out = run(&model, &prompt, Decoding::Plain);
            plain.push(plain_out.completion_tokens as f64 / plain_out.generate_secs);
            lookup_out = run(&model, &prompt, Decoding::PromptLookup);
            lookup.push(lookup_out.completion_tokens as f64 / lookup_out.generate_secs);
        }
        let (p, l) = (median(plain), median(lookup));
        ratios.push(l / p);
        let identical = plain_out.tokens == lookup_out.tokens;
        identical_all &= identical;
        println!(
            "| {name} | {} | {p:.1} | {l:.1} | {:.2}× | {}/{} | {} | {} |",
            plain_out.completion_tokens,
            l / p,
            lookup_out.draft_accepted,
            lookup_out.drafted,
            lookup_out.passes,
            if identical { "yes" } else { "**no**" }
        );
        if !identical {
            let at = plain_out
                .tokens
                .iter()
                .zip(&lookup_out.tokens)
                .position(|(a, b)| a != b)
                .unwrap_or(plain_out.tokens.len().min(lookup_out.tokens.len()));
            let gap = plain_out.margins.get(at).copied().unwrap_or(f32::NAN);
            let median_gap = median(plain_out.margins.iter().map(|&m| f64::from(m)).collect());
            println!(
                "| ↳ {name} | parts at token {at} | top-2 logit gap there {gap:.3} | median gap {median_gap:.2} | | | | |"
            );
            divergences.push(f64::from(gap));
        }
    }
    println!(
        "\nmedian ratio {:.2}× over {} cases; answers identical: {}",
        median(ratios.clone()),
        ratios.len(),
        if identical_all { "all" } else { "not all" }
    );
    if !divergences.is_empty() {
        println!(
            "where they part, the top-2 logit gap under plain decoding: {divergences:.3?} (a near-tie)"
        );
    }
}

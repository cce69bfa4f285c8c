//! Micro-benchmarks of the hot paths (criterion): `cargo bench --bench hot_paths`.
//! The macro benchmark (the real server over its real transport) is `benches/macro.rs`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use refine_ls::document::{self, Document, PositionEncoding, TextPos};
use refine_ls::engine::anchor::Selection;
use refine_ls::engine::{critique, edits, revision, verify};
use refine_ls::prompts::Prompts;
use ropey::Rope;
use serde_json::json;

#[path = "support.rs"]
mod support;
use support::rust_file;

fn critique_reply(n: usize) -> String {
    let findings: Vec<_> = (0..n)
        .map(|i| {
            json!({"start_line": 4 + i * 9, "end_line": 4 + i * 9, "quote": "for x in xs", "severity": "warning",
                   "principle": "correctness", "message": format!("finding {i}: the loop may overflow on large inputs"),
                   "suggestion": "use checked_add", "confidence": 0.8})
        })
        .collect();
    json!({ "findings": findings }).to_string()
}

fn edits_bench(c: &mut Criterion) {
    let text = rust_file(25_000); // ~1 MB
    let mut g = c.benchmark_group("document");
    g.throughput(Throughput::Elements(1));
    g.bench_function("apply_single_char_edit_1MB_utf16", |b| {
        let mut doc = Document::new(&text, 1, "rust");
        let mut line = 0u32;
        b.iter(|| {
            line = (line + 37) % 25_000;
            let p = TextPos::new(line, 4);
            doc.apply_change(Some((p, p)), "x", PositionEncoding::Utf16)
                .unwrap();
        })
    });
    let rope = Rope::from_str(&text);
    for enc in [
        PositionEncoding::Utf8,
        PositionEncoding::Utf16,
        PositionEncoding::Utf32,
    ] {
        g.bench_with_input(
            BenchmarkId::new("position_to_char_and_back", enc.lsp_name()),
            &enc,
            |b, &enc| {
                let mut line = 0u32;
                b.iter(|| {
                    line = (line + 101) % 25_000;
                    let c = document::to_char(&rope, TextPos::new(line, 30), enc);
                    black_box(document::from_char(&rope, c, enc))
                })
            },
        );
    }
    g.finish();
}

fn prompt_bench(c: &mut Criterion) {
    let prompts = Prompts::default();
    let selection = rust_file(200);
    c.bench_function("prompt/critique_user_200_lines", |b| {
        b.iter(|| {
            prompts
                .render(
                    "critique_user.md",
                    json!({"path": "src/lib.rs", "language": "rust", "context_before": "", "selection": selection,
                           "context_after": "", "first_line": 1, "last_line": 200, "facts": []}),
                )
                .unwrap()
        })
    });
}

fn parse_bench(c: &mut Criterion) {
    let reply = critique_reply(10);
    let mut g = c.benchmark_group("critique");
    g.throughput(Throughput::Bytes(reply.len() as u64));
    g.bench_function("parse_whole_10_findings", |b| {
        b.iter(|| critique::parse(black_box(&reply)).unwrap())
    });
    // Streamed as a model sends it: a few characters per delta.
    let deltas: Vec<String> = reply
        .chars()
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|c| c.iter().collect())
        .collect();
    g.bench_function("parse_streamed_10_findings_4_chars_per_delta", |b| {
        b.iter(|| {
            let mut s = critique::FindingScanner::default();
            let mut n = 0;
            for d in &deltas {
                n += s.push(d).len();
            }
            assert_eq!(n, 10);
        })
    });
    g.finish();
}

fn anchor_bench(c: &mut Criterion) {
    let selection = rust_file(200);
    let sel = Selection::new(&selection, 100);
    c.bench_function("anchor/quote_on_claimed_line_200_lines", |b| {
        b.iter(|| sel.anchor(black_box(150), 150, "total += x").unwrap())
    });
    c.bench_function("anchor/quote_found_nearby_200_lines", |b| {
        b.iter(|| {
            sel.anchor(black_box(120), 120, "let mut total = 0")
                .unwrap()
        })
    });
}

fn diff_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("revision");
    for n in [50usize, 200, 800] {
        let original = rust_file(n);
        let revised =
            original.replacen("total += x * 3;", "total = total.saturating_add(x * 3);", 1);
        g.bench_with_input(
            BenchmarkId::new("minimal_edits_one_line_change", n),
            &n,
            |b, _| b.iter(|| edits::minimal_edits(&original, &revised, 1000)),
        );
    }
    let original = rust_file(300);
    let reply = "<<<<<<< SEARCH\n        total += x * 3;\n=======\n        total = total.saturating_add(x * 3);\n>>>>>>> REPLACE\n";
    g.bench_function("apply_search_replace_reply_300_lines", |b| {
        b.iter(|| revision::apply_reply(&original, reply).unwrap())
    });
    g.finish();
}

fn verify_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify");
    for n in [200usize, 5_000] {
        let file = rust_file(n);
        g.bench_with_input(BenchmarkId::new("syntax_errors_rust", n), &n, |b, _| {
            b.iter(|| verify::syntax_errors("rust", &file).unwrap())
        });
    }
    // A one-line revision of a 200-line selection checked in its 5,000-line file: the original
    // is parsed once (cached), the revision incrementally.
    let file = rust_file(5_000);
    let sel_start = file.match_indices('\n').nth(2399).map_or(0, |(i, _)| i + 1);
    let sel_end = file
        .match_indices('\n')
        .nth(2599)
        .map_or(file.len(), |(i, _)| i + 1);
    let original_sel = &file[sel_start..sel_end];
    let revised_sel = original_sel.replacen("total += x", "total = total.saturating_add(x)", 1);
    let revised_file = format!("{}{}{}", &file[..sel_start], revised_sel, &file[sel_end..]);
    verify::warm("rust", &file);
    verify::warm("rust", original_sel);
    g.bench_function("check_one_line_revision_200_of_5000_lines", |b| {
        b.iter(|| {
            verify::check(
                "rust",
                &file,
                &revised_file,
                original_sel,
                &revised_sel,
                &[],
            )
            .unwrap()
        })
    });
    let selection = rust_file(200);
    g.bench_function("signatures_rust_200_lines", |b| {
        b.iter(|| verify::signatures("rust", &selection).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    edits_bench,
    prompt_bench,
    parse_bench,
    anchor_bench,
    diff_bench,
    verify_bench
);
criterion_main!(benches);

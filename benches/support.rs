//! Inputs shared by the benchmarks.
#![allow(dead_code)]

/// A Rust file of `n` lines: 9-line functions (`sum_<i>`) with some non-ASCII text. Line
/// `9 * i + 4` (zero-based) is `        total += x * <i>;`.
pub fn rust_file(n: usize) -> String {
    let mut out = String::new();
    let mut lines = 0;
    let mut i = 0;
    while lines < n {
        let f = format!(
            "/// Sums the values of bucket {i} (合計 😀).\nfn sum_{i}(xs: &[i64]) -> i64 {{\n    let mut total = 0;\n    for x in xs {{\n        total += x * {i};\n    }}\n    total\n}}\n\n"
        );
        for l in f.lines() {
            if lines == n {
                break;
            }
            out.push_str(l);
            out.push('\n');
            lines += 1;
        }
        i += 1;
    }
    out
}

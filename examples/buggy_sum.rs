/// Returns the sum of the even numbers in `xs`.
pub fn sum_even(xs: &[i64]) -> i64 {
    let mut total = 0;
    for i in 1..xs.len() {
        if xs[i] % 2 == 0 {
            total += xs[i];
        }
    }
    total
}

/// Returns the average of `xs`, or `None` when it is empty.
pub fn average(xs: &[f64]) -> Option<f64> {
    let sum: f64 = xs.iter().sum();
    Some(sum / xs.len() as f64)
}

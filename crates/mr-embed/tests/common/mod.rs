//! Helpers shared by the test files of mr-embed.

#![allow(dead_code)]

/// Largest absolute elementwise difference of two equally long vectors.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared vectors differ in length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// How an embedder runs on the CPU, for messages: its host kernels or burn's own ops.
pub fn cpu_path(host_kernels: bool) -> &'static str {
    if host_kernels {
        "host kernels"
    } else {
        "burn ops"
    }
}

//! Measures G+D training-iteration time (burn flex / ndarray vs torch) and writes
//! `results/bench/models.{json,md}`; the same code `cargo xtask bench models` runs.
//!
//! `cargo run --release -p mr-models --features ndarray --example step_bench [-- OUT_DIR]`

#[path = "bench.rs"]
mod bench_models;

/// mimalloc instead of the system allocator: a training step allocates and frees hundreds of
/// 0.1–30 MB tensors, which glibc serves with fresh, page-faulted `mmap`s; with mimalloc the
/// DCGAN-small paper iteration ran ≈ 10 % faster (`results/bench/models-profile.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let out = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("results/bench"));
    if let Err(e) = bench_models::run(&out) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

//! Embedding throughput, burn flex vs torch 1.13 CPU, on the same images (the code of
//! `cargo xtask bench embed`, which runs this example).
//!
//! `cargo run --release -p mr-embed --example bench_embed [OUT_DIR]` (default `results/bench`,
//! relative to the working directory; run it from the workspace root).

#[path = "bench.rs"]
mod bench_embed;

fn main() {
    let out = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "results/bench".into());
    if let Err(e) = bench_embed::run(&out) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

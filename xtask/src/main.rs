//! `cargo xtask <command>`: the one automation entry of the workspace (alias in
//! `.cargo/config.toml`). This file only parses the command line and dispatches; each command
//! lives in its own module. Errors print as one line (`error: {:#}`) and exit 2 for bad input,
//! 1 for any other failure.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench_cargo;
mod bench_data;
mod bench_jpeg;
mod bench_metrics;
mod datasets;
mod fetch;
mod gpu_check;
mod reproduce;
mod train_small_cnn;

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    about = "Workspace automation: reproduce the paper's figures, fetch data and weights, list datasets, benchmarks, train the small-cnn embedder"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch a dataset or weight file listed in datasets/manifest.toml into the data root.
    Fetch(fetch::FetchArgs),
    /// List every registered dataset name: present or not, variant, count, classes, content hash.
    Datasets(datasets::DatasetsArgs),
    /// Benchmarks against the reference Python tools, side by side; results in results/bench/.
    Bench {
        #[command(subcommand)]
        target: BenchTarget,
    },
    /// Train the small-cnn embedder on CIFAR-10 (weights + run record; bundled by mr-embed).
    TrainSmallCnn(train_small_cnn::TrainSmallCnnArgs),
    /// Reproduce the paper's figures (train the τ sweep, sample, embed, measure, draw) at the
    /// smoke, cpu or paper scale; results in results/<profile>/<fig>/.
    Reproduce(reproduce::ReproduceArgs),
    /// Build the device check (parity, images/s, MR step cost) with --features cuda into target-gpu/.
    GpuCheck(gpu_check::GpuCheckArgs),
}

#[derive(Debug, Subcommand)]
enum BenchTarget {
    /// FID, C_T and exact NN search vs pytorch-fid/scipy, data-copying/scikit-learn and faiss-cpu.
    Metrics(bench_metrics::BenchMetricsArgs),
    /// Image decoding (images/s) vs Python PIL + numpy on the same files.
    Data(bench_data::BenchDataArgs),
    /// What the CIFAR-10 JPEG mirror does to features, FID, KID, C_T and NN distances (exact vs
    /// JPEG pixels of the same images) → results/bench/jpeg-mirror.{md,json}.
    Jpeg(bench_jpeg::BenchJpegArgs),
    /// GAN training-step time (burn flex / ndarray) vs the same networks in torch (CPU).
    Models(bench_cargo::BenchExampleArgs),
    /// Embedding throughput (images/s) of inception-fid, effnet-lite0 and small-cnn vs torch (CPU).
    Embed(bench_cargo::BenchExampleArgs),
    /// Training step time with memorization rejection vs without (small-cnn, CPU).
    Train(bench_cargo::BenchExampleArgs),
}

/// An error caused by the user's input (exit code 2).
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn is_bad_input(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<BadInput>().is_some()
            || matches!(
                c.downcast_ref::<mr_data::DataError>(),
                Some(
                    mr_data::DataError::BadSpec { .. }
                        | mr_data::DataError::UnknownClass { .. }
                        | mr_data::DataError::Checksum { .. }
                )
            )
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Fetch(a) => fetch::run(&a),
        Command::Datasets(a) => datasets::run(&a),
        Command::Bench { target } => match target {
            BenchTarget::Metrics(a) => bench_metrics::run(&a),
            BenchTarget::Data(a) => bench_data::run(&a),
            BenchTarget::Jpeg(a) => bench_jpeg::run(&a),
            BenchTarget::Models(a) => bench_cargo::run("mr-models", "ndarray", "step_bench", &a),
            BenchTarget::Embed(a) => bench_cargo::run("mr-embed", "", "bench_embed", &a),
            BenchTarget::Train(a) => bench_cargo::run("mr-train", "", "mr_cost", &a),
        },
        Command::TrainSmallCnn(a) => train_small_cnn::run(&a),
        Command::GpuCheck(a) => gpu_check::run(&a),
        Command::Reproduce(a) => reproduce::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(if is_bad_input(&e) { 2 } else { 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}

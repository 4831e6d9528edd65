//! `cargo xtask train-small-cnn`: train the `small-cnn` embedder on CIFAR-10 and write its
//! weights and run record (by default into `crates/mr-embed/weights/`, where the crate bundles
//! them). The training code is mr-embed's `train_small_cnn` example, run through cargo so that
//! xtask stays free of burn.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct TrainSmallCnnArgs {
    /// Output folder for `small-cnn-cifar10.mpk` and `small-cnn-cifar10.json`.
    #[arg(long, default_value = "crates/mr-embed/weights")]
    pub out: PathBuf,
    /// Training epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Train on a seeded random subset of this many CIFAR-10 training images (0 = all 50,000).
    #[arg(long, default_value_t = 30000)]
    pub train_subset: usize,
    /// Seed of the initialisation, subset, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `cargo run --release -p mr-embed --example train_small_cnn -- --out … --epochs … …`.
pub fn run(args: &TrainSmallCnnArgs) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "run",
        "--release",
        "-p",
        "mr-embed",
        "--example",
        "train_small_cnn",
        "--",
    ]);
    cmd.arg("--out").arg(&args.out);
    cmd.args(["--epochs", &args.epochs.to_string()]);
    cmd.args(["--seed", &args.seed.to_string()]);
    if args.train_subset > 0 {
        cmd.args(["--train-subset", &args.train_subset.to_string()]);
    }
    let status = cmd
        .status()
        .context("cannot run the train_small_cnn example of mr-embed")?;
    ensure!(
        status.success(),
        "mr-embed example train_small_cnn failed ({status})"
    );
    Ok(())
}

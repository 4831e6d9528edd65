//! `cargo xtask train-small-cnn [--variant small-cnn-mnist]`: train a `small-cnn` embedder
//! (`small-cnn` on CIFAR-10, `small-cnn-mnist` on MNIST, `small-cnn-fmnist` on Fashion-MNIST) and
//! write its weights and run record
//! (by default into `crates/mr-embed/weights/`, where the crate bundles them). The training code
//! is mr-embed's `train_small_cnn` example, run through cargo (dev profile: the workspace
//! optimizes every crate there, and a release build would compile burn a second time) so that
//! xtask stays free of burn.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct TrainSmallCnnArgs {
    /// Which embedder: `small-cnn` (CIFAR-10), `small-cnn-mnist` (MNIST) or `small-cnn-fmnist`
    /// (Fashion-MNIST; both on all 60,000 training images unless --train-subset says otherwise).
    #[arg(long, default_value = "small-cnn")]
    pub variant: String,
    /// Output folder for the weights (`<variant file>.mpk`) and the run record (`.json`).
    #[arg(long, default_value = "crates/mr-embed/weights")]
    pub out: PathBuf,
    /// Training epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Train on a seeded random subset of this many training images (0 = all of them). The
    /// bundled `small-cnn` used 30,000 CIFAR-10 images, the MNIST variants all 60,000.
    #[arg(long)]
    pub train_subset: Option<usize>,
    /// Seed of the initialisation, subset, shuffling and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `cargo run -p mr-embed --example train_small_cnn -- --variant … --out … --epochs … …`.
pub fn run(args: &TrainSmallCnnArgs) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "run",
        "-p",
        "mr-embed",
        "--example",
        "train_small_cnn",
        "--",
    ]);
    cmd.args(["--variant", &args.variant]);
    cmd.arg("--out").arg(&args.out);
    cmd.args(["--epochs", &args.epochs.to_string()]);
    cmd.args(["--seed", &args.seed.to_string()]);
    let subset = args.train_subset.unwrap_or(if args.variant == "small-cnn" {
        30000
    } else {
        0
    });
    if subset > 0 {
        cmd.args(["--train-subset", &subset.to_string()]);
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

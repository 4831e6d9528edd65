//! Benchmarks that live as release examples of the burn crates (`bench models`, `bench embed`):
//! xtask runs them through cargo so that xtask itself stays free of burn (and quick to build
//! for `cargo xtask fetch` in CI).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct BenchExampleArgs {
    /// Output folder.
    #[arg(long, default_value = "results/bench")]
    pub out: PathBuf,
}

/// `cargo run --release -p <package> --features <features> --example <example> -- <out>`.
pub fn run(package: &str, features: &str, example: &str, args: &BenchExampleArgs) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["run", "--release", "-p", package, "--example", example]);
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    cmd.arg("--").arg(&args.out);
    let status = cmd
        .status()
        .with_context(|| format!("cannot run the {example} example of {package}"))?;
    ensure!(
        status.success(),
        "{package} example {example} failed ({status})"
    );
    Ok(())
}
